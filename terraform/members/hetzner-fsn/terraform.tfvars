# k3s on one dedicated-vCPU Hetzner Cloud server in Falkenstein.
server_type = "ccx33"
location    = "fsn1"
k3s_version = "v1.34.1+k3s1"

# Operators' and CI's egress networks (documentation ranges: replace with the real ones).
admin_cidrs = ["203.0.113.0/24", "2001:db8::/32"]

# The key the deployer logs in with (its private half: secrets/terraform/hetzner-fsn.yaml).
# TEST-ONLY, like every example secret: replace both with your own.
ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1/rVw9aBhrqRiqalhX/tNleF0hQBSRXUJ0f8ghTcAL TEST-ONLY hetzner-fsn deploy key"
