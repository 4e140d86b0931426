"""A canary secret must appear in no output, log or file a command writes (unless asked)."""
import base64
import os
import stat

import pytest
import yaml

from tests.support import write_secrets

CANARY = "canary-7f3a9c-do-not-print"
CANARY_B64 = base64.b64encode(CANARY.encode()).decode()


@pytest.fixture
def canary_repo(repo, env):
    write_secrets(repo, "secrets/staging.yaml",
                  "binderhub:\n  registry:\n    password: " + CANARY + "\n"
                  "  jupyterhub:\n    hub:\n      extraEnv:\n        TOKEN: " + CANARY + "\n"
                  "grafana:\n  adminPassword: short\n", env)
    # the same value also typed into a plain layer must still be masked there
    (repo / "config/staging.yaml").write_text(
        (repo / "config/staging.yaml").read_text()
        .replace("banner_message: This is the staging site",
                 "banner_message: copied " + CANARY + " by mistake. This is the staging site"))
    return repo


def _assert_clean(*texts):
    for text in texts:
        assert CANARY not in text
        assert CANARY_B64 not in text


def _files_under(path):
    return [p for p in path.rglob("*") if p.is_file()]


def test_no_command_prints_or_writes_the_canary(cli, canary_repo, tmp_path):
    out = tmp_path / "rendered"
    runs = [
        cli("render", "staging"),
        cli("render", "staging", "--output", out),
        cli("explain", "staging", "binderhub.registry.password"),
        cli("explain", "staging", "binderhub"),
        cli("explain", "staging", "binderhub.config.BinderHub.banner_message"),
        cli("secrets", "view", "staging"),
    ]
    for result in runs:
        assert result.returncode == 0, result.stderr
        _assert_clean(result.stdout, result.stderr)
    for path in _files_under(out):
        _assert_clean(path.read_text())
    assert "password: '***'" in runs[0].stdout
    assert "banner_message: copied *** by mistake" in runs[0].stdout
    manifests = (out / "staging" / "manifests.yaml").read_text()
    assert "kind: Secret" in manifests
    # masked output is still YAML: every *** is quoted where a bare one would be an alias
    for text in [runs[0].stdout, runs[5].stdout, *(p.read_text() for p in _files_under(out))]:
        assert list(yaml.safe_load_all(text)), text[:200]
    view = yaml.safe_load(runs[5].stdout)
    assert view["binderhub"]["registry"]["password"] == "***"
    rendered = yaml.safe_load((out / "staging" / "values.yaml").read_text())
    assert rendered["binderhub"]["registry"]["password"] == "***"


def test_explain_of_a_key_inside_a_secret_scalar_masks_it(cli, canary_repo):
    for key in ("binderhub.registry.password.0",
                "binderhub.config.BinderHub.banner_message[0]"):
        result = cli("explain", "staging", key)
        assert result.returncode == 2, result.stderr
        assert "is a string ('" in result.stderr and "***" in result.stderr, result.stderr
        _assert_clean(result.stdout, result.stderr)


def test_numeric_secrets_and_secret_keys_are_quoted_masks(cli, repo, env, tmp_path):
    """A numeric secret would print as a bare *** (an alias: no longer YAML) wherever the
    number appears unless it is masked into a quoted string; so would a mapping key that
    holds a secret (a plain layer that names a service after its token)."""
    write_secrets(repo, "secrets/staging.yaml",
                  "binderhub:\n  config:\n    GitHubRepoProvider:\n      client_id: 48151623\n"
                  "  jupyterhub:\n    hub:\n      services:\n        binder:\n"
                  "          apiToken: " + CANARY + "\n", env)
    (repo / "config/staging.yaml").write_text(
        (repo / "config/staging.yaml").read_text() + "binderhub:\n  extraConfig:\n"
        "    " + CANARY + ": {}\n    retries: 48151623\n"
        if "\nbinderhub:" not in (repo / "config/staging.yaml").read_text() else
        (repo / "config/staging.yaml").read_text().replace(
            "\nbinderhub:\n", "\nbinderhub:\n  extraConfig:\n    " + CANARY +
            ": {}\n    retries: 48151623\n", 1))
    out = tmp_path / "rendered"
    runs = [cli("render", "staging"), cli("render", "staging", "--output", out),
            cli("secrets", "view", "staging")]
    for result in runs:
        assert result.returncode == 0, result.stderr
        _assert_clean(result.stdout, result.stderr)
        assert "48151623" not in result.stdout
    values = yaml.safe_load(runs[0].stdout)
    assert values["binderhub"]["config"]["GitHubRepoProvider"]["client_id"] == "***"
    assert values["binderhub"]["extraConfig"] == {"***": {}, "retries": "***"}
    assert yaml.safe_load((out / "staging" / "values.yaml").read_text()) == values
    assert list(yaml.safe_load_all((out / "staging" / "manifests.yaml").read_text()))
    assert yaml.safe_load(runs[2].stdout)["binderhub"]["config"]["GitHubRepoProvider"] == \
        {"client_id": "***"}


def test_show_secrets_reveals_and_files_are_private(cli, canary_repo, tmp_path):
    out = tmp_path / "rendered"
    result = cli("render", "staging", "--output", out, "--show-secrets")
    assert result.returncode == 0, result.stderr
    values = out / "staging" / "values.yaml"
    assert CANARY in values.read_text()
    assert stat.S_IMODE(os.stat(values).st_mode) == 0o600
    explained = cli("explain", "staging", "binderhub.registry.password", "--show-secrets")
    assert CANARY in explained.stdout
