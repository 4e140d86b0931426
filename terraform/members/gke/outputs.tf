output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = module.cluster.cluster_name
}

output "endpoint" {
  description = "IP address of the cluster's Kubernetes API."
  value       = module.cluster.endpoint
}

output "location" {
  description = "Zone of the cluster."
  value       = module.cluster.location
}

output "kubernetes_version" {
  description = "Current version of the control plane."
  value       = module.cluster.kubernetes_version
}

output "registry_url" {
  description = "Docker registry prefix for built images."
  value       = module.cluster.registry_url
}

output "deploy_service_account_email" {
  description = "Service account CI deploys with."
  value       = module.cluster.deploy_service_account_email
}
