# Module logic of gke-cluster against a mocked google provider (no cloud, no credentials):
#   terraform init && terraform test   (in terraform/modules/gke-cluster)
# Nested blocks are read with try(one(x), x) so the assertions hold whether the provider
# schema nests a block as a list/set (the real provider) or as a single object.

mock_provider "google" {
  override_during = plan

  mock_resource "google_service_account" {
    defaults = {
      email = "account@example-binder-test.iam.gserviceaccount.com"
    }
  }
}

variables {
  project            = "example-binder-test"
  location           = "us-central1-a"
  name               = "test"
  kubernetes_version = "1.34"
}

run "user_pool_is_labelled_and_tainted_for_user_pods" {
  command = plan

  assert {
    condition     = google_container_node_pool.user.name == "user"
    error_message = "The members' values select user nodes with cloud.google.com/gke-nodepool: user."
  }

  assert {
    condition     = try(one(google_container_node_pool.user.node_config), google_container_node_pool.user.node_config).labels["hub.jupyter.org/node-purpose"] == "user"
    error_message = "User nodes must carry hub.jupyter.org/node-purpose=user."
  }

  assert {
    condition = toset([
      for t in try(one(google_container_node_pool.user.node_config), google_container_node_pool.user.node_config).taint :
      "${t.key}=${t.value}:${t.effect}"
    ]) == toset(["hub.jupyter.org_dedicated=user:NO_SCHEDULE"])
    error_message = "User nodes must carry the taint z2jh's user pods tolerate, and only it."
  }
}

run "core_pool_is_labelled_and_untainted" {
  command = plan

  assert {
    condition     = try(one(google_container_node_pool.core.node_config), google_container_node_pool.core.node_config).labels["hub.jupyter.org/node-purpose"] == "core"
    error_message = "Core nodes must carry hub.jupyter.org/node-purpose=core."
  }

  assert {
    condition     = try(length(try(one(google_container_node_pool.core.node_config), google_container_node_pool.core.node_config).taint), 0) == 0
    error_message = "Core nodes must not be tainted: system pods and ingress run there."
  }
}

run "pools_autoscale_and_use_the_node_account" {
  command = plan

  variables {
    core_nodes = { min = 1, max = 2 }
    user_nodes = { min = 0, max = 7 }
  }

  assert {
    condition     = try(one(google_container_node_pool.user.autoscaling), google_container_node_pool.user.autoscaling).max_node_count == 7
    error_message = "The user pool's autoscaling bounds come from user_nodes."
  }

  assert {
    condition     = try(one(google_container_node_pool.core.autoscaling), google_container_node_pool.core.autoscaling).min_node_count == 1
    error_message = "The core pool's autoscaling bounds come from core_nodes."
  }

  assert {
    condition     = try(one(google_container_node_pool.user.node_config), google_container_node_pool.user.node_config).service_account == google_service_account.nodes.email
    error_message = "Nodes run as the dedicated node service account, not the Compute Engine default."
  }
}

run "cluster_is_protected_and_uses_workload_identity" {
  command = plan

  assert {
    condition     = google_container_cluster.this.deletion_protection && google_container_cluster.this.remove_default_node_pool
    error_message = "The cluster must be deletion-protected and drop GKE's default pool."
  }

  assert {
    condition     = try(one(google_container_cluster.this.workload_identity_config), google_container_cluster.this.workload_identity_config).workload_pool == "example-binder-test.svc.id.goog"
    error_message = "Workload Identity must use the project's pool."
  }

  assert {
    condition     = google_container_cluster.this.min_master_version == "1.34"
    error_message = "The control plane version comes from kubernetes_version."
  }
}

run "registry_and_deploy_account" {
  command = plan

  assert {
    condition     = google_artifact_registry_repository.images.format == "DOCKER" && google_artifact_registry_repository.images.location == "us-central1"
    error_message = "Built images go to a DOCKER repository in the cluster's region."
  }

  assert {
    condition     = output.registry_url == "us-central1-docker.pkg.dev/example-binder-test/binder"
    error_message = "registry_url must be the image prefix of the repository."
  }

  assert {
    condition     = toset([for m in google_project_iam_member.deploy : m.role]) == toset(["roles/container.developer", "roles/artifactregistry.writer"])
    error_message = "The deploy account gets exactly the roles CI needs."
  }

  assert {
    condition     = alltrue([for m in google_project_iam_member.deploy : m.member == "serviceAccount:${google_service_account.deploy.email}"])
    error_message = "The roles go to the deploy service account."
  }
}

run "bad_location_is_refused" {
  command = plan

  variables {
    location = "mars-north1"
  }

  expect_failures = [var.location]
}

run "broad_deploy_roles_are_refused" {
  command = plan

  variables {
    deploy_roles = ["roles/container.developer", "roles/owner"]
  }

  expect_failures = [var.deploy_roles]
}
