output "kubeconfig" {
  description = "Admin kubeconfig of the k3s server: sops-encrypt it into secrets/kubeconfigs/hetzner-fsn.yaml, never print it."
  value       = module.k3s.kubeconfig
  sensitive   = true
}

output "server_ipv4" {
  description = "Public IPv4 address of the server."
  value       = module.k3s.server_ipv4
}

output "server_ipv6" {
  description = "Public IPv6 address of the server."
  value       = module.k3s.server_ipv6
}

output "kubernetes_version" {
  description = "The k3s release the server was installed with."
  value       = module.k3s.kubernetes_version
}
