# A zonal GKE cluster for one BinderHub member: a core pool for the hub, proxy, BinderHub
# and ingress, a tainted user pool for user servers and image builds, an Artifact Registry
# repository for built images, and the service account CI deploys with.

locals {
  # us-central1-a -> us-central1
  registry_location = coalesce(var.registry_location, regex("^([a-z]+-[a-z]+[0-9])-[a-z]$", var.location)[0])

  # Labels and taints the z2jh chart's scheduling expects (jupyterhub.values.schema.yaml,
  # scheduling.corePods / scheduling.userPods): pods prefer nodes labelled
  # hub.jupyter.org/node-purpose=core|user, and user pods (and BinderHub's build pods,
  # KubernetesBuildExecutor.tolerations) tolerate hub.jupyter.org_dedicated=user:NoSchedule.
  # GKE does not accept "/" in taint keys, hence the "_" spelling z2jh tolerates too.
  node_purpose_label = "hub.jupyter.org/node-purpose"
  user_taint = {
    key    = "hub.jupyter.org_dedicated"
    value  = "user"
    effect = "NO_SCHEDULE"
  }

  # cloud-platform scope with a dedicated, minimal node service account is what GKE
  # recommends: the account's IAM roles, not the legacy scopes, bound what nodes may do.
  node_oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]

  # Roles of the node service account:
  node_roles = toset([
    # logging, monitoring and metadata writes that every GKE node needs; Google's
    # least-privilege replacement for the Compute Engine default service account
    "roles/container.defaultNodeServiceAccount",
    # pull the images BinderHub built into this project's registry
    "roles/artifactregistry.reader",
  ])
}

resource "google_container_cluster" "this" {
  name               = var.name
  location           = var.location
  project            = var.project
  network            = var.network
  min_master_version = var.kubernetes_version

  # Node pools are managed below; GKE insists on creating one, which is removed at once.
  remove_default_node_pool = true
  initial_node_count       = 1

  # `terraform destroy` alone must not delete a cluster with users on it; the deployer
  # also refuses plans that destroy or replace it without --allow-destroy.
  deletion_protection = true

  release_channel {
    channel = var.release_channel
  }

  # Pods get Google identities through Kubernetes service accounts, not node credentials.
  workload_identity_config {
    workload_pool = "${var.project}.svc.id.goog"
  }
}

resource "google_service_account" "nodes" {
  project      = var.project
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name}"
}

resource "google_project_iam_member" "nodes" {
  for_each = local.node_roles

  project = var.project
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_node_pool" "core" {
  name     = "core"
  cluster  = google_container_cluster.this.name
  location = var.location
  project  = var.project

  autoscaling {
    min_node_count = var.core_nodes.min
    max_node_count = var.core_nodes.max
  }

  node_config {
    machine_type    = var.core_machine_type
    disk_size_gb    = var.core_disk_size_gb
    oauth_scopes    = local.node_oauth_scopes
    service_account = google_service_account.nodes.email
    labels = {
      (local.node_purpose_label) = "core"
    }
  }
}

resource "google_container_node_pool" "user" {
  # Named "user": the members' values select it with cloud.google.com/gke-nodepool: user.
  name     = "user"
  cluster  = google_container_cluster.this.name
  location = var.location
  project  = var.project

  autoscaling {
    min_node_count = var.user_nodes.min
    max_node_count = var.user_nodes.max
  }

  node_config {
    machine_type    = var.user_machine_type
    disk_size_gb    = var.user_disk_size_gb
    oauth_scopes    = local.node_oauth_scopes
    service_account = google_service_account.nodes.email
    labels = {
      (local.node_purpose_label) = "user"
    }

    # Only pods that tolerate it (user servers, builds) land here.
    taint {
      key    = local.user_taint.key
      value  = local.user_taint.value
      effect = local.user_taint.effect
    }
  }
}

resource "google_artifact_registry_repository" "images" {
  project       = var.project
  location      = local.registry_location
  repository_id = var.registry_repository
  format        = "DOCKER"
  description   = "Images built by BinderHub ${var.name} (repo2docker) and pushed by its CI."
}

# The identity CI deploys with. Its roles (var.deploy_roles), each the least that works:
# - roles/container.developer: get cluster credentials (container.clusters.get) and
#   create/update/delete the chart's Kubernetes objects through the Kubernetes API; it
#   grants no cluster create/delete/update, unlike roles/container.admin or clusterAdmin.
#   Kubernetes' RBAC escalation check still applies to the chart's Roles and
#   RoleBindings: where the account lacks what they grant, an operator binds it once in
#   the cluster at bootstrap (outside Terraform: this stack has no kubernetes provider).
# - roles/artifactregistry.writer: push the images CI builds to the repository above
#   (and read them); no repository create/delete. A project-level grant because the
#   repository-level IAM resource is not part of this module's provider surface.
resource "google_service_account" "deploy" {
  project      = var.project
  account_id   = "${var.name}-deploy"
  display_name = "CI deploys to ${var.name}"
}

resource "google_project_iam_member" "deploy" {
  for_each = var.deploy_roles

  project = var.project
  role    = each.value
  member  = "serviceAccount:${google_service_account.deploy.email}"
}
