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


def test_render_all_writes_nothing_when_one_member_fails(cli, repo, tmp_path):
    out = tmp_path / "out"
    assert cli("render", "--all", "--output", out).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*.yaml")}
    (repo / "config/staging.yaml").write_text("static: [\n")
    (repo / "config/gke.yaml").write_text((repo / "config/gke.yaml").read_text()
                                          + "static:\n  replicas: 5\n")
    result = cli("render", "--all", "--output", out)
    assert result.returncode == 2, result.stderr
    assert "error: staging: config/staging.yaml:2: malformed YAML" in result.stderr
    assert f"1 of 5 members failed to render; nothing was written to {out}" in result.stderr
    assert "wrote" not in result.stderr + result.stdout
    assert {p: p.read_bytes() for p in out.rglob("*.yaml")} == before   # gke's too


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
    "invalid UTF-8": (lambda r: (r / "config/common.yaml").write_bytes(
        (r / "config/common.yaml").read_bytes() + b"extra: caf\xe9\n"),
        "config/common.yaml:"),
    "python tag": (lambda r: (r / "config/gke.yaml").write_text(
        "binderhub: !!python/object/apply:os.system [echo pwned]\n"),
        "config/gke.yaml:1: binderhub: unsupported YAML tag !!python/object/apply:os.system"),
    "custom tag": (lambda r: (r / "config/gke.yaml").write_text("static: !vault abc\n"),
                   "config/gke.yaml:1: static: unsupported YAML tag !vault"),
    "deep nesting": (lambda r: (r / "config/gke.yaml").write_text(
        "a: " + "[" * 3000 + "]" * 3000 + "\n"), "config/gke.yaml: nested deeper than 64"),
    "alias bomb": (lambda r: (r / "config/gke.yaml").write_text(_alias_bomb()),
                   "config/gke.yaml: expands to more than 200000 values"),
    "huge file": (lambda r: (r / "config/gke.yaml").write_text("# x\n" * 1_300_000),
                  "config/gke.yaml: file is 5.0 MiB; the limit is 4 MiB"),
    "values left in clear by sops": (lambda r: _clear_sops(r, "secrets/gke.yaml"),
                                     "secrets/gke.yaml:2: grafana.adminPassword: value is not "
                                     "encrypted"),
}


def _alias_bomb() -> str:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _clear_sops(repo, rel):
    """What `sops encrypt --unencrypted-regex '.*'` writes: sops metadata, values in clear."""
    import subprocess

    from deployer.adapters import tools
    from tests.support import OPERATOR_KEY

    env = {"PATH": "/usr/bin:/bin", "SOPS_AGE_KEY_FILE": str(OPERATOR_KEY)}
    plain = repo / "plain.yaml"
    plain.write_text("grafana:\n  adminPassword: in-clear\n")
    out = subprocess.run([tools.find("sops", {"PATH": ""}), "--disable-version-check", "encrypt",
                          "--unencrypted-regex", ".*", "--filename-override", rel, str(plain)],
                         cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    (repo / rel).write_text(out)
    plain.unlink()


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


def test_explain_output(cli, repo):
    key = r"binderhub.ingress.annotations.cert-manager\.io/cluster-issuer"
    result = cli("explain", "uni-lab", key)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{key} = (not set)"
    line = next(i for i, x in enumerate((repo / "config/common.yaml").read_text().splitlines(), 1)
                if "cert-manager.io/cluster-issuer: letsencrypt-prod" in x)
    assert any(f"config/common.yaml:{line}" in x and "'letsencrypt-prod'" in x and "overridden" in x
               for x in lines), lines
    assert any("config/uni-lab.yaml:15" in x and "null (deletes the key)" in x for x in lines)


@pytest.mark.parametrize("key,expected", [
    ("binderhub.registry.url.0", "binderhub.registry.url.0: binderhub.registry.url is a "
     "string ('https://harbor.uni-lab.example.edu'), not a list or map: it has no item 0"),
    ("binderhub.registry.url[0]", "binderhub.registry.url[0]: binderhub.registry.url is a "
     "string ('https://harbor.uni-lab.example.edu'), not a list or map: it has no item 0"),
    ("traefikEnabled.x", "traefikEnabled.x: traefikEnabled is a boolean (false), not a "
     "list or map: it has no key 'x'"),
])
def test_explain_of_a_key_inside_a_scalar_is_one_error(cli, key, expected):
    """An index (or key) into a scalar is not an unset key: no table of "in effect" parents,
    one error naming the key and what is there, exit 2."""
    result = cli("explain", "uni-lab", key)
    line = _one_error_line(result)
    assert expected in line, line
    assert result.stdout == "", result.stdout


@pytest.mark.parametrize("args,expected", [
    (["render", ""], "no member given"),
    (["render", " , "], "no member given"),
    (["deploy", "staging", "--timeout", "0"], "--timeout must be a positive number"),
    (["deploy", "staging", "--timeout", "-5"], "--timeout must be a positive number"),
    (["deploy", "staging", "--lock-timeout", "-1"], "--lock-timeout must be 0 or more"),
    (["validate", "--all", "--jobs", "0"], "--jobs must be 1 or more"),
    (["rollback", "staging", "--timeout", "0"], "--timeout must be a positive number"),
])
def test_bad_arguments_are_one_line_exit_2(cli, args, expected):
    assert expected in _one_error_line(cli(*args))


def test_output_that_is_a_file_or_unwritable_writes_nothing(cli, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me\n")
    assert "not a directory" in _one_error_line(cli("render", "gke", "--output", target))
    assert target.read_text() == "keep me\n"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.geteuid() != 0:   # root can write anywhere: only the file case applies then
            line = _one_error_line(cli("render", "gke", "--output", locked / "out"))
            assert "cannot write in" in line
    finally:
        locked.chmod(0o700)


def test_a_deploy_of_values_that_do_not_validate_is_bad_input(cli, repo):
    """Nothing reaches a cluster (staging's credentials are never even fetched): exit 2."""
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: many\n")
    result = cli("deploy", "staging")
    assert result.returncode == 2, result.stderr
    assert "config/staging.yaml" in result.stderr and "gcloud" not in result.stderr


def test_a_bad_value_set_in_a_secrets_file_is_reported_there(cli, repo, env):
    from tests.support import write_secrets

    write_secrets(repo, "secrets/staging.yaml",
                  "binderhub:\n  registry:\n    password: a-registry-password\n"
                  "static:\n  replicas: many\n", env)
    result = cli("validate", "staging")
    assert result.returncode == 1
    assert "static.replicas" in result.stderr
    assert "(set at secrets/staging.yaml:5)" in result.stderr, result.stderr
    assert "config/common.yaml" not in result.stderr


def test_a_policy_value_set_in_a_secrets_file_is_reported_there(cli, repo, env):
    from tests.support import write_secrets

    write_secrets(repo, "secrets/staging.yaml",
                  "binderhub:\n  jupyterhub:\n    singleuser:\n      memory:\n"
                  "        guarantee: 5G\n", env)
    result = cli("validate", "staging")
    assert result.returncode == 1
    line = next(x for x in result.stderr.splitlines() if "guarantee" in x)
    assert "secrets/staging.yaml:5" in line, line


def test_secrets_encrypt_never_replaces_a_file_by_accident(cli, repo, env):
    from deployer.adapters import sops

    before = (repo / "secrets" / "gke.yaml").read_bytes()
    refused = cli("secrets", "encrypt", "--stdin", "secrets/gke.yaml", input="a: 1\n")
    assert refused.returncode == 2
    assert "secrets/gke.yaml exists" in refused.stderr and "--force" in refused.stderr
    assert (repo / "secrets" / "gke.yaml").read_bytes() == before
    forced = cli("secrets", "encrypt", "--stdin", "--force", "secrets/gke.yaml",
                 input="a: 1\n")
    assert forced.returncode == 0, forced.stderr
    assert sops.decrypt(repo, "secrets/gke.yaml", env) == "a: 1\n"
    new = cli("secrets", "encrypt", "--stdin", "secrets/new-member.yaml", input="b: 2\n")
    assert new.returncode == 0, new.stderr


def test_secrets_encrypt_common_without_a_file_names_the_command_that_creates_it(cli, repo, env):
    from deployer.adapters import sops

    assert not (repo / "secrets/common.yaml").exists()
    missing = cli("secrets", "encrypt", "common")
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "secrets/common.yaml: file not found (hint: create it with: ./deploy.py secrets " \
        "encrypt --stdin common < plaintext.yaml)" in missing.stderr, missing.stderr
    created = cli("secrets", "encrypt", "--stdin", "common", input="shared: 1\n")
    assert created.returncode == 0, created.stderr
    assert sops.decrypt(repo, "secrets/common.yaml", env) == "shared: 1\n"


STDIN_REFUSED = {
    # what sops would quote back (cannot unmarshal !!str `...`) is refused first, unquoted
    "a single value": (b"hunter2-plain\n", "stdin:1: not a YAML mapping (it holds a single value)"),
    "a list": (b"- hunter2-plain\n", "stdin:1: not a YAML mapping (it holds a list)"),
    "nothing": (b"", "stdin:1: not a YAML mapping (it holds nothing)"),
    # every later read would reject the file; the recipients were printed empty
    "two documents": (b"a: hunter2-plain\n---\nb: 2\n", "stdin:2: more than one YAML document"),
    "an empty second document": (b"a: hunter2-plain\n---\n", "stdin:2: more than one YAML "
                                                             "document"),
    "not UTF-8": (b"a: hunter2-caf\xe9\n", "stdin:1: not valid UTF-8 text"),
    "a duplicate key": (b"a: hunter2-plain\na: hunter2-other\n",
                        "stdin:2: malformed YAML: the key 'a' is written twice in one map"),
    "a value the parser quotes": (b"a: !!int 1e3\n", "stdin: malformed YAML: invalid literal "
                                                     "for int() with base 10: '***'"),
    "sops metadata": (b"sops:\n  mac: x\n", "stdin:1: sops: this key holds sops's own metadata"),
}


@pytest.mark.parametrize("case", list(STDIN_REFUSED))
def test_encrypt_stdin_refuses_what_no_later_read_accepts(cli_command, repo, case):
    """One line, exit 2, nothing written (an existing file is kept), no value quoted."""
    import subprocess

    raw, expected = STDIN_REFUSED[case]
    prefix, base = cli_command
    before = (repo / "secrets/gke.yaml").read_bytes()
    for args in (["secrets/new8.yaml"], ["--force", "secrets/gke.yaml"]):
        result = subprocess.run([*prefix, "secrets", "encrypt", "--stdin", *args], input=raw,
                                env=base, capture_output=True, cwd=repo, timeout=120)
        err = result.stderr.decode()
        line = _one_error_line(subprocess.CompletedProcess(result.args, result.returncode,
                                                           result.stdout.decode(), err))
        assert expected in line, line
        assert "hunter2" not in err and "1e3" not in err and "Traceback" not in err
    assert not (repo / "secrets/new8.yaml").exists()
    assert (repo / "secrets/gke.yaml").read_bytes() == before


def test_what_sops_itself_refuses_is_shown_with_the_inputs_strings_masked(cli, repo):
    """A value sops's parser reads differently (a timestamp YAML 1.2 takes as text): sops
    quotes it in its error; the deployer shows the error with every string of the input
    masked."""
    result = cli("secrets", "encrypt", "--stdin", "secrets/new8.yaml",
                 input="a: !!timestamp 2001-12-14 21:59:43.10 -5\n")
    line = _one_error_line(result)
    assert "secrets/new8.yaml: cannot encrypt: sops:" in line and "`***`" in line, line
    assert "21:59" not in result.stderr
    assert not (repo / "secrets/new8.yaml").exists()


@pytest.mark.parametrize("rule,plaintext,key,why", [
    (None, "grafana:\n  adminPassword: fine\nbinderhub:\n  token_unencrypted: in-clear\n",
     "binderhub.token_unencrypted", "sops keeps keys ending in `_unencrypted` in clear"),
    ("unencrypted_regex: ^public", "grafana:\n  adminPassword: fine\npublic_token: in-clear\n",
     "public_token", "sops keeps keys matching unencrypted_regex `^public` in clear"),
])
def test_encrypt_stdin_refuses_a_value_sops_would_keep_in_clear(cli, repo, env, rule,
                                                               plaintext, key, why):
    """Every later read refuses such a file (sops.first_clear_value): it is refused before it
    is written, and the file there before stays as it was."""
    if rule:
        sops_yaml = repo / ".sops.yaml"
        text = sops_yaml.read_text()
        marker = "  - path_regex: ^secrets/(kubeconfigs/)?[a-z0-9-]+\\.ya?ml$\n"
        assert marker in text
        sops_yaml.write_text(text.replace(marker, marker + f"    {rule}\n"))
    before = (repo / "secrets/gke.yaml").read_bytes()
    for args in (["secrets/new8.yaml"], ["--force", "secrets/gke.yaml"]):
        line = _one_error_line(cli("secrets", "encrypt", "--stdin", *args, input=plaintext))
        assert line.startswith(f"error: stdin:{plaintext.count(chr(10))}: {key}: sops would "
                               f"write this value in clear"), line
        assert why in line and "in-clear" not in line
    assert not (repo / "secrets/new8.yaml").exists()
    assert (repo / "secrets/gke.yaml").read_bytes() == before


def test_encrypt_stdin_names_the_recipients(cli, repo):
    result = cli("secrets", "encrypt", "--stdin", "secrets/uni-lab-two.yaml", input="a: b\n")
    assert result.returncode == 0, result.stderr
    assert "encrypted secrets/uni-lab-two.yaml to: age1" in result.stderr
