variable "project" {
  description = "Google Cloud project that holds the cluster, its registry and service accounts (config/federation.yaml: cluster.project)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a Google Cloud project id: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "location" {
  description = "Zone of the (zonal) cluster and its node pools, e.g. us-central1-a (config/federation.yaml: cluster.zone)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", var.location))
    error_message = "location must be a Google Cloud zone such as us-central1-a."
  }
}

variable "name" {
  description = "Name of the GKE cluster (config/federation.yaml: cluster.name); also the prefix of its service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of at most 22 characters (it prefixes service account ids)."
  }
}

variable "kubernetes_version" {
  description = "Minimum Kubernetes version of the control plane, as in config/federation.yaml (\"1.34\"); GKE picks the newest patch of that minor in the release channel."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]+(\\.[0-9]+(-gke\\.[0-9]+)?)?$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34, 1.34.1 or 1.34.1-gke.1234."
  }
}

variable "release_channel" {
  description = "GKE release channel that upgrades the control plane and nodes."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.release_channel)
    error_message = "release_channel must be one of RAPID, REGULAR, STABLE, EXTENDED."
  }
}

variable "network" {
  description = "VPC network the cluster joins."
  type        = string
  default     = "default"
}

variable "core_machine_type" {
  description = "Machine type of the core pool (hub, proxy, binder, ingress, monitoring)."
  type        = string
  default     = "n2-standard-4"

  validation {
    condition     = length(trimspace(var.core_machine_type)) > 0
    error_message = "core_machine_type must not be empty."
  }
}

variable "user_machine_type" {
  description = "Machine type of the user pool (user servers and image builds)."
  type        = string
  default     = "n2-highmem-8"

  validation {
    condition     = length(trimspace(var.user_machine_type)) > 0
    error_message = "user_machine_type must not be empty."
  }
}

variable "core_disk_size_gb" {
  description = "Boot disk size of core nodes, in GB."
  type        = number
  default     = 100
}

variable "user_disk_size_gb" {
  description = "Boot disk size of user nodes, in GB: built and pulled images live here."
  type        = number
  default     = 200
}

variable "core_nodes" {
  description = "Autoscaling bounds of the core pool."
  type = object({
    min = number
    max = number
  })
  default = { min = 1, max = 3 }

  validation {
    condition     = var.core_nodes.min >= 1 && var.core_nodes.max >= var.core_nodes.min
    error_message = "core_nodes needs min >= 1 (the hub must run somewhere) and max >= min."
  }
}

variable "user_nodes" {
  description = "Autoscaling bounds of the user pool."
  type = object({
    min = number
    max = number
  })
  default = { min = 1, max = 10 }

  validation {
    condition     = var.user_nodes.min >= 0 && var.user_nodes.max >= var.user_nodes.min && var.user_nodes.max >= 1
    error_message = "user_nodes needs 0 <= min <= max and max >= 1."
  }
}

variable "registry_repository" {
  description = "Artifact Registry repository id for built images (the r2d- prefix in the member's image_prefix lives in it)."
  type        = string
  default     = "binder"
}

variable "registry_location" {
  description = "Region of the Artifact Registry repository; null means the cluster zone's region."
  type        = string
  default     = null
}

variable "deploy_roles" {
  description = "Project roles of the CI deploy service account (see main.tf for why each is needed)."
  type        = set(string)
  default     = ["roles/container.developer", "roles/artifactregistry.writer"]

  validation {
    condition     = alltrue([for r in var.deploy_roles : !contains(["roles/owner", "roles/editor", "roles/container.admin", "roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator"], r)])
    error_message = "deploy_roles must not contain owner, editor, container.admin or roles that impersonate other service accounts."
  }
}
