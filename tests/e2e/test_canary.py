"""Three hard secrets - a long one that YAML folds over lines, a non-ASCII one that YAML
escapes, and one that is base64 already - through render, validate, diff, deploy (a success,
a rotation, a failure with rollback) and status: no output, written file, report or
temporary file may hold any form of them."""
from __future__ import annotations

import base64
import json

import pytest

from tests.e2e.test_deploy import fleet, health_server  # noqa: F401  (fixtures)
from tests.support import write_secrets

LONG = ("tangerine quokka velvet harbour lantern meridian saffron juniper obsidian "
        "marzipan cobalt thimble wolverine paprika")
UMLAUT = "Grüße-Käsebrötchen-Süßigkeiten-geheim-42"
B64 = base64.b64encode(b"binary-key-material-0123456789-abcdefghij").decode()
ROTATED = {"long": LONG.replace("tangerine", "nectarine").replace("velvet", "corduroy"),
           "umlaut": UMLAUT.replace("42", "43").replace("Grüße", "Größe"),
           "b64": base64.b64encode(b"rotated-key-material-9876543210-zyx").decode()}
FIRST = {"long": LONG, "umlaut": UMLAUT, "b64": B64}


def _secrets_yaml(values: dict) -> str:
    return (
        "binderhub:\n"
        "  registry:\n"
        f"    password: {json.dumps(values['b64'])}\n"
        "  jupyterhub:\n"
        "    hub:\n"
        "      config:\n"
        "        GitHubOAuthenticator:\n"
        f"          client_secret: {json.dumps(values['long'])}\n"
        "        BinderSpawner:\n"
        f"          smoke_phrase: {json.dumps(values['umlaut'])}\n"
        f"          signing_key: {json.dumps(values['b64'])}\n")


def _forms(values: dict) -> list[str]:
    """Distinctive pieces of every form the secrets could take in output."""
    out = []
    for word in values["long"].split():
        if len(word) >= 6:
            out.append(word)
    umlaut = values["umlaut"]
    out += [umlaut, "geheim", umlaut.encode("unicode_escape").decode(),
            json.dumps(umlaut)[1:-1], umlaut.split("-")[1]]
    out += [values["b64"], base64.b64decode(values["b64"]).decode(),
            base64.b64encode(values["b64"].encode()).decode()[:24]]
    return out


LEAKS = _forms(FIRST) + _forms(ROTATED)


def _clean(label: str, text: str) -> None:
    found = [piece for piece in LEAKS if piece in text]
    assert not found, f"{label} shows {found}"


@pytest.fixture
def canary_fleet(fleet, repo, env):  # noqa: F811
    write_secrets(repo, "secrets/staging.yaml", _secrets_yaml(FIRST), env)
    return fleet


def test_the_secrets_really_reach_the_cluster(cli, canary_fleet, repo, tmp_path):
    """The test means something only if the values are rendered and deployed."""
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    hub = json.loads(canary_fleet.object("configmaps", "staging", "hub")["data"][
        "hub-config.json"])
    assert hub["GitHubOAuthenticator"]["client_secret"] == LONG
    assert (hub["BinderSpawner"]["smoke_phrase"], hub["BinderSpawner"]["signing_key"]) == \
        (UMLAUT, B64)


def test_no_form_of_a_secret_leaks_through_any_command(cli, cli_command, canary_fleet, repo, env,
                                                       tmp_path):
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    run_env = {"TMPDIR": str(scratch)}
    out, reports = tmp_path / "rendered", tmp_path / "reports"
    reports.mkdir()
    runs = [
        ("render", cli("render", "staging", extra_env=run_env)),
        ("render --manifests", cli("render", "staging", "--manifests", extra_env=run_env)),
        ("render --output", cli("render", "staging", "--output", out, extra_env=run_env)),
        ("validate", cli("validate", "staging", extra_env=run_env)),
        ("diff (install)", cli("diff", "staging", extra_env=run_env)),
        ("deploy --dry-run", cli("deploy", "staging", "--dry-run", extra_env=run_env)),
        ("deploy", cli("deploy", "staging", "--timeout", "60", "--report", reports / "1.json",
                       extra_env=run_env)),
        ("status", cli("status", "staging", extra_env=run_env)),
    ]
    # a rotation: the diff and the deploy hold the old and the new values
    write_secrets(repo, "secrets/staging.yaml", _secrets_yaml(ROTATED), env)
    runs += [
        ("diff (rotation)", cli("diff", "staging", extra_env=run_env)),
        ("deploy (rotation)", cli("deploy", "staging", "--timeout", "60", "--report",
                                  reports / "2.json", extra_env=run_env)),
    ]
    # a failure: the rollout never finishes, the deploy rolls back
    write_secrets(repo, "secrets/staging.yaml", _secrets_yaml(FIRST), env)
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    canary_fleet.faults.never_ready("deployments", "staging", "static",
                                    when=lambda obj: obj["spec"]["replicas"] == 3)
    runs.append(("deploy (failing)", cli("deploy", "staging", "--timeout", "3", "--report",
                                         reports / "3.json", extra_env=run_env)))
    # a validation error quoting a misplaced secret
    path.write_text(path.read_text().replace("static:\n  replicas: 3\n", "") +
                    f"static:\n  replicas: {json.dumps(LONG)}\n")
    runs.append(("validate (misplaced secret)", cli("validate", "staging", extra_env=run_env)))
    codes = {label: result.returncode for label, result in runs}
    assert codes == {"render": 0, "render --manifests": 0, "render --output": 0, "validate": 0,
                     "diff (install)": 0, "deploy --dry-run": 0, "deploy": 0, "status": 0,
                     "diff (rotation)": 0, "deploy (rotation)": 0, "deploy (failing)": 1,
                     "validate (misplaced secret)": 1}, {k: r.stderr[-500:] for k, r in runs}
    for label, result in runs:
        _clean(f"{label} stdout", result.stdout)
        _clean(f"{label} stderr", result.stderr)
    rotation = dict(runs)["diff (rotation)"].stdout
    assert "changed  ConfigMap/hub (secret values changed; not shown)" in rotation
    for written in [*out.rglob("*"), *reports.glob("*.json")]:
        if written.is_file():
            _clean(str(written), written.read_text())
    assert json.loads((reports / "3.json").read_text())["deploys"][0]["outcome"] == \
        "rolled back"
    assert list(scratch.iterdir()) == [], "no temporary file is left behind"
