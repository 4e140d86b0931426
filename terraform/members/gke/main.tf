# Terraform root of the "gke" member (config/federation.yaml): its GKE cluster.
# The deployer passes member_name, domain, kubernetes_version and provider_kind as -var
# (derived from config/federation.yaml); everything else is in terraform.tfvars.

terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
  }

  # State is secret (it holds what the resources return): a versioned GCS bucket with
  # uniform bucket-level access, readable only by the operators and CI, with GCS's own
  # state locking. Tests replace this block with a local backend (a *_override.tf file).
  backend "gcs" {
    bucket = "example-binder-terraform-state"
    prefix = "members/gke"
  }
}

# Credentials come from the environment (Application Default Credentials, or CI's
# workload identity federation); every resource names its project and location itself.
provider "google" {}

module "cluster" {
  source = "../../modules/gke-cluster"

  project            = var.project
  location           = var.zone
  name               = var.cluster_name
  kubernetes_version = var.kubernetes_version
  release_channel    = var.release_channel

  core_machine_type = var.core_machine_type
  user_machine_type = var.user_machine_type
  core_nodes        = var.core_nodes
  user_nodes        = var.user_nodes

  registry_repository = var.registry_repository
}
