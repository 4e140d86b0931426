# Terraform root of the "hetzner-fsn" member (config/federation.yaml): k3s on a Hetzner
# Cloud server. The deployer passes member_name, domain, kubernetes_version and
# provider_kind as -var (derived from config/federation.yaml); the rest is in
# terraform.tfvars, except the SSH private key (TF_VAR_ssh_private_key).

terraform {
  required_version = ">= 1.11"

  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = "~> 1.52"
    }
    ssh = {
      source  = "loafoe/ssh"
      version = "~> 2.7"
    }
  }

  # State is secret (it holds the kubeconfig): a private bucket in Hetzner Object Storage
  # next to the servers, so this member depends on no other cloud; credentials from
  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (a Hetzner S3 key pair). The skip_* settings
  # turn off the AWS-only calls (STS, IMDS, account id, region list, checksums) that
  # Hetzner's S3 API does not serve; use_lockfile locks with a conditional write (no
  # DynamoDB). Tests replace this block with a local backend (a *_override.tf file).
  backend "s3" {
    bucket                      = "example-binder-terraform-state"
    key                         = "members/hetzner-fsn/terraform.tfstate"
    region                      = "fsn1"
    endpoints                   = { s3 = "https://fsn1.your-objectstorage.com" }
    use_path_style              = true
    use_lockfile                = true
    skip_credentials_validation = true
    skip_region_validation      = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_s3_checksum            = true
  }
}

# The API token comes from HCLOUD_TOKEN in the environment, never from a variable.
provider "hcloud" {}

provider "ssh" {}

module "k3s" {
  source = "../../modules/hetzner-k3s"

  name               = var.member_name
  server_type        = var.server_type
  location           = var.location
  kubernetes_version = var.kubernetes_version
  k3s_version        = var.k3s_version
  tls_sans           = [var.domain]
  admin_cidrs        = var.admin_cidrs

  ssh_public_key  = var.ssh_public_key
  ssh_private_key = var.ssh_private_key
  ssh_port        = var.ssh_port
  api_port        = var.api_port
}
