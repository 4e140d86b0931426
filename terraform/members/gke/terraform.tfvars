# Production on GKE: the largest member.
project      = "example-binder-prod"
zone         = "us-central1-a"
cluster_name = "prod"

release_channel   = "STABLE"
core_machine_type = "n2-standard-4"
user_machine_type = "n2-highmem-8"
core_nodes        = { min = 2, max = 4 }
user_nodes        = { min = 2, max = 20 }

registry_repository = "binder"
