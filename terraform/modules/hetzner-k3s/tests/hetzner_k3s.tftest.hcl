# Module logic of hetzner-k3s against mocked hcloud and ssh providers (no cloud, no SSH):
#   terraform init && terraform test   (in terraform/modules/hetzner-k3s)

mock_provider "hcloud" {
  override_during = plan

  # hcloud ids are numbers in strings: server_id, network_id and firewall_ids take numbers
  mock_resource "hcloud_server" {
    defaults = {
      id           = "1001"
      ipv4_address = "192.0.2.10"
      ipv6_address = "2001:db8::10"
    }
  }

  mock_resource "hcloud_network" {
    defaults = {
      id = "2001"
    }
  }

  mock_resource "hcloud_firewall" {
    defaults = {
      id = "3001"
    }
  }
}

mock_provider "ssh" {
  override_during = plan

  mock_resource "ssh_resource" {
    defaults = {
      result = "apiVersion: v1\nkind: Config\n"
    }
  }
}

variables {
  name               = "test-k3s"
  server_type        = "cpx41"
  location           = "fsn1"
  kubernetes_version = "1.34"
  k3s_version        = "v1.34.1+k3s1"
  tls_sans           = ["fsn.example-binder.org"]
  admin_cidrs        = ["198.51.100.0/24", "2001:db8:1::/48"]
  ssh_public_key     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly test@example"
  ssh_private_key    = "not-a-real-key"
}

run "firewall_opens_only_ssh_http_https_and_the_api" {
  command = plan

  assert {
    condition     = length(hcloud_firewall.this.rule) == 4
    error_message = "The firewall has exactly four rules."
  }

  assert {
    condition     = toset([for r in hcloud_firewall.this.rule : r.port]) == toset(["22", "80", "443", "6443"])
    error_message = "Only 22, 80, 443 and 6443 are open."
  }

  assert {
    condition     = alltrue([for r in hcloud_firewall.this.rule : r.direction == "in" && r.protocol == "tcp"])
    error_message = "Every rule is inbound TCP."
  }

  assert {
    condition     = alltrue([for r in hcloud_firewall.this.rule : toset(r.source_ips) == toset(["198.51.100.0/24", "2001:db8:1::/48"]) if contains(["22", "6443"], r.port)])
    error_message = "SSH and the Kubernetes API are open only to admin_cidrs."
  }

  assert {
    condition     = alltrue([for r in hcloud_firewall.this.rule : toset(r.source_ips) == toset(["0.0.0.0/0", "::/0"]) if contains(["80", "443"], r.port)])
    error_message = "HTTP and HTTPS are open to everyone."
  }

  assert {
    condition     = [for id in hcloud_server.this.firewall_ids : tostring(id)] == [hcloud_firewall.this.id]
    error_message = "The server is behind the firewall."
  }
}

run "cloud_init_installs_the_pinned_k3s_without_traefik" {
  command = plan

  assert {
    condition     = strcontains(hcloud_server.this.user_data, "INSTALL_K3S_VERSION='v1.34.1+k3s1'")
    error_message = "cloud-init must pin the k3s release."
  }

  assert {
    condition     = strcontains(hcloud_server.this.user_data, "--disable traefik") && strcontains(hcloud_server.this.user_data, "--write-kubeconfig-mode 600")
    error_message = "k3s runs without its bundled traefik, and its kubeconfig is root-only."
  }

  assert {
    condition     = strcontains(hcloud_server.this.user_data, "--tls-san $public_ipv4") && strcontains(hcloud_server.this.user_data, "--tls-san fsn.example-binder.org")
    error_message = "The API certificate names the public address and the extra names."
  }

  assert {
    condition     = hcloud_server.this.image == "ubuntu-24.04"
    error_message = "The server runs Ubuntu 24.04."
  }
}

run "kubeconfig_is_sensitive_and_points_at_the_server" {
  command = plan

  variables {
    ssh_port = 2222
    api_port = 16443
  }

  assert {
    condition     = issensitive(output.kubeconfig)
    error_message = "The kubeconfig output must be sensitive."
  }

  assert {
    condition     = ssh_resource.kubeconfig.host == "192.0.2.10" && ssh_resource.kubeconfig.port == "2222" && ssh_resource.kubeconfig.user == "root"
    error_message = "The kubeconfig is fetched from the server's public address on ssh_port, as root."
  }

  assert {
    condition     = strcontains(ssh_resource.kubeconfig.commands[length(ssh_resource.kubeconfig.commands) - 1], "s#://127.0.0.1:6443#://192.0.2.10:16443#")
    error_message = "The last command prints k3s.yaml with the server's address and api_port."
  }

}

run "a_certificate_that_expires_soon_is_renewed_before_the_fetch" {
  command = plan

  assert {
    condition     = anytrue([for c in ssh_resource.kubeconfig.commands : strcontains(c, "openssl x509 -noout -checkend 7776000") && strcontains(c, "k3s certificate rotate")])
    error_message = "A client certificate that expires within 90 days is rotated before the kubeconfig is read."
  }
}

run "bad_location_is_refused" {
  command = plan

  variables {
    location = "mars1"
  }

  expect_failures = [var.location]
}

run "k3s_of_another_minor_is_refused" {
  command = plan

  variables {
    k3s_version = "v1.33.5+k3s1"
  }

  expect_failures = [var.k3s_version]
}

run "world_open_admin_cidrs_are_refused" {
  command = plan

  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.admin_cidrs]
}

run "empty_server_type_is_refused" {
  command = plan

  variables {
    server_type = ""
  }

  expect_failures = [var.server_type]
}
