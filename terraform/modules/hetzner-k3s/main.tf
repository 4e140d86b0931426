# One Hetzner Cloud server running a single-node k3s for a BinderHub member: a private
# network, a firewall that lets in only SSH and the Kubernetes API (from the operators'
# networks) and HTTP/HTTPS (from anyone), cloud-init that installs a pinned k3s without its
# bundled traefik (the chart brings its own ingress), and the kubeconfig fetched over SSH.

locals {
  labels = merge(var.labels, {
    "binder-member" = var.name
    "managed-by"    = "terraform"
  })

  network_zones = {
    fsn1 = "eu-central"
    nbg1 = "eu-central"
    hel1 = "eu-central"
    ash  = "us-east"
    hil  = "us-west"
    sin  = "ap-southeast"
  }

  world = ["0.0.0.0/0", "::/0"]

  # The k3s server's flags. `$public_ipv4` is a shell variable of the install script (the
  # address is not known before the server exists), not a Terraform interpolation.
  k3s_exec = join(" ", concat(
    ["server", "--disable", "traefik", "--write-kubeconfig-mode", "600", "--secrets-encryption"],
    ["--tls-san", "$public_ipv4"],
    flatten([for san in var.tls_sans : ["--tls-san", san]]),
  ))

  k3s_kubeconfig = "/etc/rancher/k3s/k3s.yaml"
  renew_seconds  = 90 * 24 * 3600
  # k3s writes its kubeconfig once the API server is up; wait for it (cloud-init may
  # still be installing k3s when SSH first answers).
  wait_for_kubeconfig = "timeout 600 sh -c 'until [ -s ${local.k3s_kubeconfig} ]; do sleep 5; done'"
}

resource "hcloud_ssh_key" "operator" {
  name       = "${var.name}-operator"
  public_key = var.ssh_public_key
}

resource "hcloud_network" "this" {
  name     = var.name
  ip_range = var.network_ip_range
}

resource "hcloud_network_subnet" "this" {
  network_id   = hcloud_network.this.id
  type         = "cloud"
  network_zone = local.network_zones[var.location]
  ip_range     = var.subnet_ip_range
}

resource "hcloud_firewall" "this" {
  name   = var.name
  labels = local.labels

  rule {
    description = "SSH from the operators' networks"
    direction   = "in"
    protocol    = "tcp"
    port        = "22"
    source_ips  = var.admin_cidrs
  }

  rule {
    description = "HTTP from anywhere (ACME challenges, redirects to HTTPS)"
    direction   = "in"
    protocol    = "tcp"
    port        = "80"
    source_ips  = local.world
  }

  rule {
    description = "HTTPS from anywhere (BinderHub, JupyterHub)"
    direction   = "in"
    protocol    = "tcp"
    port        = "443"
    source_ips  = local.world
  }

  rule {
    description = "Kubernetes API from the operators' networks and CI"
    direction   = "in"
    protocol    = "tcp"
    port        = "6443"
    source_ips  = var.admin_cidrs
  }
}

resource "hcloud_server" "this" {
  name         = var.name
  server_type  = var.server_type
  image        = "ubuntu-24.04"
  location     = var.location
  ssh_keys     = [hcloud_ssh_key.operator.id]
  firewall_ids = [hcloud_firewall.this.id]
  labels       = local.labels

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    k3s_version = var.k3s_version
    k3s_exec    = local.k3s_exec
  })

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  lifecycle {
    # user_data and ssh_keys only take effect when the server is created, and a change to
    # either would replace the server (a new cluster, a new address): k3s is upgraded in
    # place and keys are rotated on the host, so later changes are not applied here.
    ignore_changes = [user_data, ssh_keys]
  }
}

resource "hcloud_server_network" "this" {
  server_id  = hcloud_server.this.id
  network_id = hcloud_network.this.id
  ip         = cidrhost(var.subnet_ip_range, 10)

  depends_on = [hcloud_network_subnet.this]
}

# The kubeconfig k3s wrote, with its server address (https://127.0.0.1:6443) rewritten to
# the server's public address and var.api_port (the sed keeps the scheme as written).
# `result` is the output of the last command only.
resource "ssh_resource" "kubeconfig" {
  host        = hcloud_server.this.ipv4_address
  port        = var.ssh_port
  user        = "root"
  private_key = var.ssh_private_key
  timeout     = "10m"
  retry_delay = "10s"

  # Fetched once; `deploy.py terraform kubeconfig` fetches again with
  # -replace=<this resource>. k3s client certificates last a year: one that expires within
  # 90 days is renewed first (k3s rewrites its kubeconfig with the new certificate when it
  # starts again).
  commands = [
    local.wait_for_kubeconfig,
    "if ! grep 'client-certificate-data:' ${local.k3s_kubeconfig} | awk '{print $2}' | base64 -d | openssl x509 -noout -checkend ${local.renew_seconds} >/dev/null 2>&1; then systemctl stop k3s && rm -f ${local.k3s_kubeconfig} && k3s certificate rotate >&2 && systemctl start k3s; fi",
    local.wait_for_kubeconfig,
    "sed 's#://127.0.0.1:6443#://${hcloud_server.this.ipv4_address}:${var.api_port}#' ${local.k3s_kubeconfig}",
  ]

  depends_on = [hcloud_server_network.this]
}
