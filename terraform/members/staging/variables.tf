# Derived from config/federation.yaml by the deployer and passed as -var.

variable "member_name" {
  description = "Name of the member in config/federation.yaml."
  type        = string
}

variable "domain" {
  description = "The member's BinderHub domain (config/federation.yaml: domains.binder)."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the member (config/federation.yaml: kubernetes_version)."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.34."
  }
}

variable "provider_kind" {
  description = "cluster.provider of the member in config/federation.yaml."
  type        = string

  validation {
    condition     = var.provider_kind == "gke"
    error_message = "This root builds a GKE cluster: the member's cluster.provider must be gke."
  }
}

# The stack's own settings (terraform.tfvars). project, zone and cluster_name must agree
# with the member's cluster block in config/federation.yaml (checked by the tests).

variable "project" {
  description = "Google Cloud project of the cluster (federation.yaml: cluster.project)."
  type        = string
}

variable "zone" {
  description = "Zone of the cluster (federation.yaml: cluster.zone)."
  type        = string
}

variable "cluster_name" {
  description = "Name of the GKE cluster (federation.yaml: cluster.name)."
  type        = string
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"
}

variable "core_machine_type" {
  description = "Machine type of the core node pool."
  type        = string
}

variable "user_machine_type" {
  description = "Machine type of the user node pool."
  type        = string
}

variable "core_nodes" {
  description = "Autoscaling bounds of the core node pool."
  type = object({
    min = number
    max = number
  })
}

variable "user_nodes" {
  description = "Autoscaling bounds of the user node pool."
  type = object({
    min = number
    max = number
  })
}

variable "registry_repository" {
  description = "Artifact Registry repository for built images (the member's image_prefix names it)."
  type        = string
  default     = "binder"
}
