output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.this.name
}

output "endpoint" {
  description = "IP address of the cluster's Kubernetes API."
  value       = google_container_cluster.this.endpoint
}

output "location" {
  description = "Zone of the cluster."
  value       = google_container_cluster.this.location
}

output "kubernetes_version" {
  description = "Current version of the control plane."
  value       = google_container_cluster.this.master_version
}

output "registry_url" {
  description = "Docker registry prefix for built images: <region>-docker.pkg.dev/<project>/<repository>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${google_artifact_registry_repository.images.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "deploy_service_account_email" {
  description = "Service account CI deploys with."
  value       = google_service_account.deploy.email
}

output "node_service_account_email" {
  description = "Service account of the nodes."
  value       = google_service_account.nodes.email
}
