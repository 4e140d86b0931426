"""The real CLI as an operator runs it: exit codes, one-line errors, nothing written on failure."""
import json

import pytest

from tests.support import OTHER_KEY


def test_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("render", "explain", "secrets", "members"):
        assert command in result.stdout


def test_members_json_is_derived_from_federation_data(cli):
    result = cli("members", "--json")
    assert result.returncode == 0, result.stderr
    members = json.loads(result.stdout)
    assert [m["name"] for m in members] == ["staging", "gke", "aws", "hetzner-fsn", "uni-lab"]
    assert members[1]["url"] == "https://gke.example-binder.org"
    assert json.loads(cli("members", "--json", "--role", "staging").stdout)[0]["name"] == "staging"


def test_render_prints_merged_values(cli):
    result = cli("render", "staging")
    assert result.returncode == 0, result.stderr
    assert "hub_url: https://hub.staging.example-binder.org" in result.stdout
    assert "password: '***'" in result.stdout


def test_render_all_writes_one_directory_per_member(cli, tmp_path):
    out = tmp_path / "out"
    result = cli("render", "--all", "--output", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["aws", "gke", "hetzner-fsn", "staging",
                                                     "uni-lab"]


def _one_error_line(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


BAD_INPUT = {
    "malformed YAML": (lambda r: (r / "config/gke.yaml").write_text("binderhub: [\n"),
                       "config/gke.yaml:2: malformed YAML"),
    "schema violation": (lambda r: (r / "config/federation.yaml").write_text(
        (r / "config/federation.yaml").read_text().replace("weight: 60", "weight: -1")),
        "members.gke.federation.weight: expected a number >= 0, got -1"),
    "missing values file": (lambda r: (r / "config/gke.yaml").unlink(),
                            "config/gke.yaml: values file of member 'gke' not found"),
    "missing secrets file": (lambda r: (r / "secrets/gke.yaml").unlink(),
                             "secrets/gke.yaml: file not found"),
    "plaintext secrets": (lambda r: (r / "secrets/gke.yaml").write_text("a: b\n"),
                          "secrets/gke.yaml: not encrypted with sops"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, repo, tmp_path, case):
    damage, expected = BAD_INPUT[case]
    damage(repo)
    out = tmp_path / "out"
    line = _one_error_line(cli("render", "gke", "--output", out))
    assert expected in line
    assert not out.exists()


def test_unknown_member(cli, tmp_path):
    line = _one_error_line(cli("render", "gkee", "--output", tmp_path / "out"))
    assert "unknown member 'gkee'" in line
    assert not (tmp_path / "out").exists()


def test_undecryptable_secrets(cli, tmp_path):
    result = cli("render", "gke", "--output", tmp_path / "out",
                 extra_env={"SOPS_AGE_KEY_FILE": str(OTHER_KEY)})
    line = _one_error_line(result)
    assert "secrets/gke.yaml: cannot decrypt" in line and "encrypted to: age1" in line
    assert not (tmp_path / "out").exists()


def test_missing_tool_says_how_to_install(cli, tmp_path):
    empty = tmp_path / "no-tools"
    empty.mkdir()
    result = cli("render", "gke", extra_env={"DEPLOYER_TOOLS_DIR": str(empty), "PATH": str(empty)})
    line = _one_error_line(result)
    assert "sops not found (need sops 3.11.0)" in line
    assert "scripts/install-tools" in line


def test_explain_reports_unset_keys_with_exit_1(cli):
    result = cli("explain", "gke", "binderhub.no.such.key")
    assert result.returncode == 1
    assert "(not set)" in result.stdout


def test_explain_output(cli):
    key = r"binderhub.ingress.annotations.cert-manager\.io/cluster-issuer"
    result = cli("explain", "uni-lab", key)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{key} = (not set)"
    assert any("config/common.yaml:27" in x and "'letsencrypt-prod'" in x and "overridden" in x
               for x in lines), lines
    assert any("config/uni-lab.yaml:15" in x and "null (deletes the key)" in x for x in lines)
