variable "name" {
  description = "Name of the member (config/federation.yaml); names the server, network, firewall and key."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label (lowercase letters, digits, hyphens)."
  }
}

variable "server_type" {
  description = "Hetzner Cloud server type, e.g. cpx41 or ccx33."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+[0-9]+[a-z]*$", var.server_type))
    error_message = "server_type must be a Hetzner Cloud server type name such as cpx41 (not empty)."
  }
}

variable "location" {
  description = "Hetzner Cloud location of the server."
  type        = string

  validation {
    condition     = contains(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"], var.location)
    error_message = "location must be one of fsn1, nbg1, hel1, ash, hil, sin."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the member, as in config/federation.yaml (\"1.34\")."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.34."
  }
}

variable "k3s_version" {
  description = "Pinned k3s release installed when the server is created (e.g. v1.34.1+k3s1); its minor must be kubernetes_version. It is install-time only: the server ignores later changes of its cloud-init, so upgrade k3s in place and then record the new release here."
  type        = string

  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+\\+k3s[0-9]+$", var.k3s_version))
    error_message = "k3s_version must be a k3s release such as v1.34.1+k3s1."
  }

  validation {
    condition     = startswith(var.k3s_version, "v${var.kubernetes_version}.")
    error_message = "k3s_version must be a release of the member's kubernetes_version minor."
  }
}

variable "tls_sans" {
  description = "Extra host names in the API server certificate (the server's public IPv4 is always added)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.tls_sans : can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", s))])
    error_message = "tls_sans must be host names (lowercase letters, digits, dots, hyphens)."
  }
}

variable "admin_cidrs" {
  description = "Networks allowed to reach SSH (22) and the Kubernetes API (6443): the operators' and CI's egress addresses."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must be a non-empty list of CIDR blocks."
  }

  validation {
    condition     = !anytrue([for c in var.admin_cidrs : contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "admin_cidrs must not open SSH and the Kubernetes API to the whole internet."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key of the operator, installed for root on the server."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key line."
  }
}

variable "ssh_private_key" {
  description = "Private key matching ssh_public_key, used to fetch the kubeconfig (pass it as TF_VAR_ssh_private_key, never in a file)."
  type        = string
  sensitive   = true
}

variable "ssh_port" {
  description = "Port the server's SSH daemon listens on."
  type        = number
  default     = 22

  validation {
    condition     = var.ssh_port >= 1 && var.ssh_port <= 65535
    error_message = "ssh_port must be a TCP port."
  }
}

variable "api_port" {
  description = "Port of the Kubernetes API as written into the kubeconfig."
  type        = number
  default     = 6443

  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535
    error_message = "api_port must be a TCP port."
  }
}

variable "network_ip_range" {
  description = "IP range of the private network."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.network_ip_range, 0))
    error_message = "network_ip_range must be a CIDR block."
  }
}

variable "subnet_ip_range" {
  description = "IP range of the server's subnet, inside network_ip_range."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrhost(var.subnet_ip_range, 0))
    error_message = "subnet_ip_range must be a CIDR block."
  }
}

variable "labels" {
  description = "Extra Hetzner labels on the server and firewall."
  type        = map(string)
  default     = {}
}
