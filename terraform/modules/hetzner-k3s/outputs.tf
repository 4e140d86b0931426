output "kubeconfig" {
  description = "Admin kubeconfig of the k3s server, pointing at its public address. Goes straight into sops; never print it."
  value       = ssh_resource.kubeconfig.result
  sensitive   = true
}

output "server_ipv4" {
  description = "Public IPv4 address of the server."
  value       = hcloud_server.this.ipv4_address
}

output "server_ipv6" {
  description = "Public IPv6 address of the server."
  value       = hcloud_server.this.ipv6_address
}

output "kubernetes_version" {
  description = "The k3s release the server was installed with."
  value       = var.k3s_version
}
