"""A federation shaped like a real one (tests/fixtures/federations/real): a k3s staging member,
a GKE member at the apex domain that runs only the federation redirector, two bare-metal k3s
members (the prime among them), a member on another cloud, host aliases, custom TLS secret
names, shared secrets (secrets/common.yaml) and ban lists with per-member additions. It must
render and validate with the real helm and sops against the stand-in chart repository, with
no workaround."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import chart_repo
import yaml

from tests.support import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "federations" / "real"
MEMBERS = {"staging", "apex", "fsn", "lab", "ovh"}


@pytest.fixture
def real(tmp_path) -> Path:
    """A copy of the fixture federation with the repository's chart."""
    dest = tmp_path / "real"
    shutil.copytree(FIXTURE, dest)
    shutil.copytree(ROOT / "mybinder", dest / "mybinder",
                    ignore=shutil.ignore_patterns("charts", "*.tgz"))
    return dest


@pytest.fixture
def run(cli_command, real):
    prefix, base = cli_command
    prefix = prefix[:-1] + [str(real)]          # --root <the real federation>

    def go(*args, extra_env=None):
        return subprocess.run([*prefix, *map(str, args)], env={**base, **(extra_env or {})},
                              capture_output=True, text=True, cwd=real, timeout=300)
    return go


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, chart_mirror):
    """`render --all --output` of a pristine copy, once for the module's read-only checks."""
    tmp = tmp_path_factory.mktemp("real-render")
    dest = tmp / "real"
    shutil.copytree(FIXTURE, dest)
    shutil.copytree(ROOT / "mybinder", dest / "mybinder",
                    ignore=shutil.ignore_patterns("charts", "*.tgz"))
    home = tmp / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "LANG": "C.UTF-8", "SOPS_AGE_KEY_FILE": str(ROOT / "tests/keys/test-only-operator.agekey"),
           "DEPLOYER_TOOLS_DIR": str(ROOT / ".tools" / "bin"),
           "HELM_CONFIG_HOME": str(home / "c"), "HELM_CACHE_HOME": str(home / "k"),
           "HELM_DATA_HOME": str(home / "d"), "DEPLOYER_CHART_MIRROR": chart_mirror,
           "DEPLOYER_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "prepared-charts")}
    out = tmp / "out"
    result = subprocess.run([sys.executable, str(ROOT / "deploy.py"), "--root", str(dest),
                             "render", "--all", "--output", str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def _objects(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_validate_all_passes_with_no_workaround(run):
    result = run("validate", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]
            if len(line.split()) == 5}
    assert set(rows) == MEMBERS
    assert all(r[4] == "ok" for r in rows.values()), rows
    if chart_repo.UPSTREAM:      # with the real binderhub schema, no key goes unread either
        assert "warning:" not in result.stderr, result.stderr


def test_redirector_config_names_the_chosen_prime(rendered):
    objects = _objects(rendered / "apex" / "manifests.yaml")
    config = json.loads(_find(objects, "ConfigMap", "federation-redirect")["data"]["config.json"])
    assert set(config["hosts"]) == {"fsn", "lab", "ovh"}      # not apex, not staging
    assert [n for n, h in config["hosts"].items() if h.get("prime")] == ["fsn"]
    assert config["hosts"]["lab"]["url"] == "https://binder.lab.example.edu"
    assert config["hosts"]["ovh"]["weight"] == 30
    ingress = _find(objects, "Ingress", "federation-redirect")
    assert ingress["spec"]["rules"][0]["host"] == "real-binder.org"
    assert ingress["spec"]["tls"][0]["secretName"] == "kubelego-tls-redirector"
    # staging's own redirector routes to staging alone, its own prime
    staging = json.loads(_find(_objects(rendered / "staging" / "manifests.yaml"), "ConfigMap",
                               "federation-redirect")["data"]["config.json"])
    assert {n: h.get("prime") for n, h in staging["hosts"].items()} == {"staging": True}


def test_redirector_only_member_renders_no_binderhub(rendered):
    objects = _objects(rendered / "apex" / "manifests.yaml")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "federation-redirect") in names
    assert ("Ingress", "static") in names
    assert _find(objects, "Ingress", "static")["spec"]["tls"][0]["secretName"] == \
        "kubelego-tls-static"
    assert not [n for n in names if n[1] in ("binder", "hub", "proxy")], names
    assert not [o for o in objects if "binderhub" in json.dumps(o.get("metadata", {})
                                                                 .get("labels", {}))]
    values = yaml.safe_load((rendered / "apex" / "values.yaml").read_text())
    assert values["binderhubEnabled"] is False
    # a member running BinderHub does not run the redirector unless it says so
    fsn = {(o["kind"], o["metadata"]["name"]) for o in
           _objects(rendered / "fsn" / "manifests.yaml")}
    assert ("Deployment", "federation-redirect") not in fsn


def test_aliases_and_tls_names_reach_the_ingresses(rendered):
    objects = _objects(rendered / "fsn" / "manifests.yaml")
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    by_host = {rule["host"]: o for o in ingresses for rule in o["spec"]["rules"]}
    assert {"fsn.real-binder.org", "binder.fsn-hosting.example.net", "hub.fsn.real-binder.org",
            "hub.fsn-hosting.example.net"} <= set(by_host)
    tls = {h: t["secretName"] for o in ingresses for t in o["spec"].get("tls", [])
           for h in t["hosts"]}
    assert tls["fsn.real-binder.org"] == tls["binder.fsn-hosting.example.net"] == \
        "kubelego-tls-binder"
    assert tls["hub.fsn-hosting.example.net"] == "kubelego-tls-hub"
    # members that name no TLS secrets keep the names their certificates already have
    ovh = [o for o in _objects(rendered / "ovh" / "manifests.yaml") if o["kind"] == "Ingress"]
    names = {t["secretName"] for o in ovh for t in o["spec"].get("tls", [])}
    assert {"binder-tls", "hub-tls", "static-tls"} <= names


def test_ban_lists_add_to_the_common_list(rendered):
    def values(member):
        return yaml.safe_load((rendered / member / "values.yaml").read_text())

    fsn, lab = values("fsn"), values("lab")
    cidrs = fsn["networkPolicy"]["egress"]["bannedCIDRs"]
    assert cidrs[:2] == ["169.254.169.254/32", "10.0.0.0/8"]        # the chart's own stay
    assert "203.0.113.0/24" in cidrs and "198.51.100.0/24" in cidrs   # common + fsn's own
    assert "198.51.100.0/24" not in lab["networkPolicy"]["egress"]["bannedCIDRs"]
    specs = lab["binderhub"]["config"]["GitHubRepoProvider"]["banned_specs"]
    assert specs == ["^miner-org/.*", "^someone/xmrig.*", "^lab-specific-abuser/.*"]
    assert fsn["binderhub"]["config"]["GitHubRepoProvider"]["banned_specs"] == specs[:2]
    assert lab["binderhub"]["config"]["GitLabRepoProvider"]["banned_specs"] == ["^abuse-group/.*"]
    # the rendered egress policy excepts them
    policy = _find(_objects(rendered / "fsn" / "manifests.yaml"), "NetworkPolicy", "user-egress")
    except_ = [b["ipBlock"]["except"] for rule in policy["spec"]["egress"]
               for b in rule.get("to", []) if "ipBlock" in b][0]
    assert "198.51.100.0/24" in except_


def test_shared_secrets_reach_every_member_masked(rendered):
    for member in MEMBERS - {"apex"}:
        values = yaml.safe_load((rendered / member / "values.yaml").read_text())
        provider = values["binderhub"]["config"]["GitHubRepoProvider"]
        assert provider["access_token"] == "***", member
        assert "shared-github-token" not in (rendered / member / "manifests.yaml").read_text()


def test_explain_shows_the_shared_secrets_layer(run):
    result = run("explain", "lab", "binderhub.config.GitHubRepoProvider.access_token")
    assert result.returncode == 0, result.stderr
    assert "secrets/common.yaml:" in result.stdout and "common secrets" in result.stdout
    assert "shared-github-token" not in result.stdout


def test_the_partner_key_deploys_its_member_with_the_shared_secrets(run, real):
    partner = ROOT / "tests/keys/test-only-partner.agekey"
    result = run("render", "lab", extra_env={"SOPS_AGE_KEY_FILE": str(partner)})
    assert result.returncode == 0, result.stderr
    assert "access_token: '***'" in result.stdout


def test_common_secrets_not_encrypted_to_a_members_recipients_is_an_error(run, real):
    text = (real / ".sops.yaml").read_text()
    (real / ".sops.yaml").write_text(text.replace("    age: [*core, *partner]\n  # the partner",
                                                  "    age: [*core]\n  # the partner"))
    result = run("render", "fsn")
    assert result.returncode == 2
    assert ".sops.yaml: creation_rules: secrets/common.yaml must reach every member" in \
        result.stderr
    assert "secrets/lab.yaml" in result.stderr
    # the hint names a command that exists
    assert "./deploy.py secrets rotate-recipients secrets/common.yaml" in result.stderr


def test_a_member_file_overriding_generated_values_is_an_error(run, real):
    path = real / "config" / "fsn.yaml"
    path.write_text(path.read_text() + "  ingress:\n    tls:\n      - secretName: renamed\n")
    result = run("validate", "--all")
    assert result.returncode != 0
    line = next(x for x in result.stderr.splitlines() if "fsn:" in x and "also generated" in x)
    assert "config/fsn.yaml:9: binderhub.ingress.tls: also generated from federation data at " \
        f"config/federation.yaml:{_line(real, '      binder: kubelego-tls-binder')}" in line
    assert "config/federation.yaml:" in line
    rows = {r.split()[0]: r.split()[-1] for r in result.stdout.splitlines()[2:]
            if len(r.split()) == 5}
    assert rows["fsn"] == "FAILED" and rows["ovh"] == "ok"


def test_render_all_reports_every_failing_member(run, real, tmp_path):
    for member in ("lab", "ovh"):
        (real / "config" / f"{member}.yaml").write_text(
            "binderhub:\n  config:\n    BinderHub:\n      hub_url: https://by-hand\n")
    result = run("render", "--all", "--output", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    errors = [x for x in result.stderr.splitlines() if "also generated" in x]
    assert [e.split(": ")[1] for e in errors] == ["lab", "ovh"], result.stderr
    assert "config/lab.yaml:4: binderhub.config.BinderHub.hub_url: also generated from " \
        f"federation data at config/federation.yaml:{_line(real, '      hub: hub.binder.lab.example.edu')}" \
        in errors[0]
    # the others rendered (their errors would show), but nothing is written: bad input
    assert "2 of 5 members failed to render; nothing was written" in result.stderr
    assert not list((tmp_path / "out").rglob("*.yaml"))


def _line(root: Path, text: str) -> int:
    lines = (root / "config" / "federation.yaml").read_text().splitlines()
    return lines.index(text) + 1


def test_secrets_view_common_is_masked(run):
    result = run("secrets", "view", "common")
    assert result.returncode == 0, result.stderr
    assert "access_token: '***'" in result.stdout and "shared-github-token" not in result.stdout


def test_shared_secrets_are_optional(run, real):
    (real / "secrets" / "common.yaml").unlink()
    result = run("render", "fsn")
    assert result.returncode == 0, result.stderr
    assert "access_token" not in result.stdout
