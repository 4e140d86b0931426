# Staging: small and cheap, the same node layout as production.
project      = "example-binder-staging"
zone         = "us-central1-a"
cluster_name = "staging"

release_channel   = "REGULAR"
core_machine_type = "n2-standard-2"
user_machine_type = "n2-standard-4"
core_nodes        = { min = 1, max = 2 }
user_nodes        = { min = 1, max = 3 }

registry_repository = "binder"
