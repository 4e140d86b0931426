"""A canary secret must appear in no output, log or file a command writes (unless asked)."""
import base64
import os
import stat

import pytest

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


def test_show_secrets_reveals_and_files_are_private(cli, canary_repo, tmp_path):
    out = tmp_path / "rendered"
    result = cli("render", "staging", "--output", out, "--show-secrets")
    assert result.returncode == 0, result.stderr
    values = out / "staging" / "values.yaml"
    assert CANARY in values.read_text()
    assert stat.S_IMODE(os.stat(values).st_mode) == 0o600
    explained = cli("explain", "staging", "binderhub.registry.password", "--show-secrets")
    assert CANARY in explained.stdout
