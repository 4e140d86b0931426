# Derived from config/federation.yaml by the deployer and passed as -var.

variable "member_name" {
  description = "Name of the member in config/federation.yaml; names the server and its resources."
  type        = string
}

variable "domain" {
  description = "The member's BinderHub domain (config/federation.yaml: domains.binder); also in the API certificate."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the member (config/federation.yaml: kubernetes_version); k3s_version must be a release of it."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.34."
  }
}

variable "provider_kind" {
  description = "cluster.provider of the member in config/federation.yaml: a bare-metal k3s member is reached by kubeconfig."
  type        = string

  validation {
    condition     = var.provider_kind == "kubeconfig"
    error_message = "This root builds a k3s server reached by kubeconfig: the member's cluster.provider must be kubeconfig."
  }
}

# The stack's own settings (terraform.tfvars).

variable "server_type" {
  description = "Hetzner Cloud server type."
  type        = string
}

variable "location" {
  description = "Hetzner Cloud location."
  type        = string
}

variable "k3s_version" {
  description = "Pinned k3s release, of the kubernetes_version minor."
  type        = string
}

variable "admin_cidrs" {
  description = "Networks allowed to reach SSH and the Kubernetes API."
  type        = list(string)
}

variable "ssh_public_key" {
  description = "The operator's OpenSSH public key."
  type        = string
}

variable "ssh_private_key" {
  description = "Private key matching ssh_public_key (TF_VAR_ssh_private_key, from the member's sops secrets)."
  type        = string
  sensitive   = true
}

variable "ssh_port" {
  description = "SSH port of the server."
  type        = number
  default     = 22
}

variable "api_port" {
  description = "Kubernetes API port written into the kubeconfig."
  type        = number
  default     = 6443
}
