import os
import stat

import pytest

from deployer.adapters import sops as secrets
from deployer.errors import SecretsError

from tests.support import OPERATOR_KEY, OTHER_KEY, PARTNER_KEY, public_key, write_secrets


def test_round_trip_through_real_sops(repo, env):
    write_secrets(repo, "secrets/gke.yaml", "grafana:\n  adminPassword: round-trip-value\n", env)
    encrypted = (repo / "secrets/gke.yaml").read_text()
    assert "round-trip-value" not in encrypted
    assert secrets.is_encrypted(repo / "secrets/gke.yaml")
    assert secrets.recipients(repo / "secrets/gke.yaml") == [public_key(OPERATOR_KEY)]
    assert "adminPassword: round-trip-value" in secrets.decrypt(repo, "secrets/gke.yaml", env)


def test_member_specific_recipients(repo, env):
    partner = {**env, "SOPS_AGE_KEY_FILE": str(PARTNER_KEY)}
    assert secrets.recipients(repo / "secrets/uni-lab.yaml") == [
        public_key(OPERATOR_KEY), public_key(PARTNER_KEY)]
    assert "registry" in secrets.decrypt(repo, "secrets/uni-lab.yaml", partner)
    assert "current-context" in secrets.decrypt(repo, "secrets/kubeconfigs/uni-lab.yaml", partner)
    with pytest.raises(SecretsError, match="none of your age identities"):
        secrets.decrypt(repo, "secrets/gke.yaml", partner)


def test_wrong_key_names_file_and_recipients(repo, env):
    with pytest.raises(SecretsError) as info:
        secrets.decrypt(repo, "secrets/staging.yaml", {**env, "SOPS_AGE_KEY_FILE": str(OTHER_KEY)})
    err = info.value
    assert err.file == "secrets/staging.yaml"
    assert public_key(OPERATOR_KEY) in err.hint
    assert str(OTHER_KEY) in err.message


def test_no_key_at_all(repo, env):
    bare = {k: v for k, v in env.items() if k != "SOPS_AGE_KEY_FILE"}
    with pytest.raises(SecretsError) as info:
        secrets.decrypt(repo, "secrets/staging.yaml", bare)
    assert "no SOPS_AGE_KEY_FILE set" in info.value.message


def test_plaintext_file_is_refused(repo, env):
    (repo / "secrets/aws.yaml").write_text("grafana:\n  adminPassword: oops\n")
    with pytest.raises(SecretsError, match="not encrypted with sops"):
        secrets.decrypt(repo, "secrets/aws.yaml", env)


def test_tampered_file_fails_its_mac(repo, env):
    path = repo / "secrets/aws.yaml"
    text = path.read_text()
    path.write_text(text.replace("grafana:", "grafanax:", 1))
    with pytest.raises(SecretsError, match="integrity check failed"):
        secrets.decrypt(repo, "secrets/aws.yaml", env)


def test_decrypted_file_is_private_and_removed(repo, env):
    with secrets.decrypted_file(repo, "secrets/kubeconfigs/hetzner-fsn.yaml", env) as path:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        dir_mode = stat.S_IMODE(os.stat(path.parent).st_mode)
        assert (mode, dir_mode) == (0o600, 0o700)
        assert "client-certificate-data" in path.read_text()
    assert not path.exists() and not path.parent.exists()


def test_decrypted_file_is_removed_when_the_caller_fails(repo, env):
    with pytest.raises(RuntimeError):
        with secrets.decrypted_file(repo, "secrets/kubeconfigs/hetzner-fsn.yaml", env) as path:
            raise RuntimeError("deploy failed")
    assert not path.parent.exists()


def test_encrypt_in_place_and_refuse_twice(repo, env):
    target = repo / "secrets/new-member.yaml"
    target.write_text("binderhub:\n  registry:\n    password: fresh\n")
    secrets.encrypt_in_place(repo, "secrets/new-member.yaml", env)
    assert "fresh" not in target.read_text()
    with pytest.raises(SecretsError, match="already encrypted"):
        secrets.encrypt_in_place(repo, "secrets/new-member.yaml", env)


def test_path_without_a_creation_rule(repo, env):
    with pytest.raises(SecretsError, match="no creation rule"):
        secrets.encrypt_text(repo, "elsewhere/x.yaml", "a: b\n", env)


def test_a_path_regex_python_cannot_read_is_one_error_not_skipped(cli, repo):
    """Go's `\\z` (sops reads it): skipping that rule would judge a file by another rule than
    the one sops may pick. rotate-recipients names the rule and changes nothing."""
    sops_yaml = repo / ".sops.yaml"
    before = {p: p.read_bytes() for p in (repo / "secrets").rglob("*.yaml")}
    sops_yaml.write_text(sops_yaml.read_text().replace(
        "^secrets/common\\.ya?ml$", "^secrets/common\\.ya?ml\\z", 1))
    assert "\\z" in sops_yaml.read_text()
    result = cli("secrets", "rotate-recipients")
    assert result.returncode == 2, result.stderr
    assert ".sops.yaml: creation_rules[0].path_regex: ^secrets/common\\.ya?ml\\z: the " \
        "deployer cannot read this regular expression (bad escape \\z" in result.stderr, \
        result.stderr
    assert {p: p.read_bytes() for p in (repo / "secrets").rglob("*.yaml")} == before


def test_rotate_recipients_adds_a_new_team_member(cli, repo, env):
    other = public_key(OTHER_KEY)
    other_env = {"SOPS_AGE_KEY_FILE": str(OTHER_KEY)}
    assert cli("secrets", "view", "aws", extra_env=other_env).returncode == 2
    sops_yaml = repo / ".sops.yaml"
    sops_yaml.write_text(sops_yaml.read_text().replace("age: [*core]", f"age: [*core, {other}]"))
    result = cli("secrets", "rotate-recipients", "--rotate-data-key")
    assert result.returncode == 0, result.stderr
    assert "secrets/aws.yaml: 1 -> 2 recipients, new data key" in result.stderr
    assert "secrets/uni-lab.yaml: unchanged" in result.stderr
    assert other in secrets.recipients(repo / "secrets/kubeconfigs/hetzner-fsn.yaml")
    shown = cli("secrets", "view", "aws", "--show-secrets", extra_env=other_env)
    assert shown.returncode == 0 and "example-aws-grafana-password" in shown.stdout


@pytest.mark.parametrize("flags,key", [
    (["--unencrypted-regex", ".*"], "grafana.adminPassword"),
    ([], "binderhub.token_unencrypted"),
])
def test_values_left_in_clear_are_refused(repo, env, flags, key):
    """A sops file whose values are (partly) unencrypted is not a secrets file."""
    import subprocess

    from deployer.adapters import tools

    plain = repo / "plain.yaml"
    plain.write_text("grafana:\n  adminPassword: visible\nbinderhub:\n"
                     "  token_unencrypted: visible-too\n")
    out = subprocess.run([tools.find("sops", env), "--disable-version-check", "encrypt",
                          *flags, "--filename-override", "secrets/aws.yaml", str(plain)],
                         cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    (repo / "secrets/aws.yaml").write_text(out)
    plain.unlink()
    with pytest.raises(SecretsError) as info:
        secrets.decrypt(repo, "secrets/aws.yaml", env)
    assert info.value.file == "secrets/aws.yaml" and info.value.line
    assert str(info.value).split(": ", 2)[1] == key
    assert "not encrypted" in str(info.value)
    # the file is refused before sops runs: without sops the clear value is still what is
    # reported
    without = {**env, "DEPLOYER_TOOLS_DIR": str(repo / "no-tools"), "PATH": ""}
    with pytest.raises(SecretsError) as info:
        secrets.decrypt(repo, "secrets/aws.yaml", without)
    assert str(info.value).split(": ", 2)[1] == key


@pytest.mark.parametrize("text,found", [
    ("a: ENC[AES256_GCM,data:x]\nb: ''\nc: null\nd: [ENC[x], ~]\nsops:\n  mac: ENC[m]\n", None),
    ("a: ENC[x]\nb:\n  - ENC[y]\n  - {c: 0}\nsops:\n  mac: ENC[m]\n", ("b[1].c", 4)),
    ("a: yes\nsops:\n  mac: ENC[m]\n", ("a", 1)),
    # keys YAML 1.1 folds together (libyaml would keep only the encrypted one)
    ("yes: hunter2\ntrue: ENC[x]\nsops:\n  mac: ENC[m]\n", ("yes", 1)),
    ("on: hunter2\n'true': ENC[x]\nsops:\n  mac: ENC[m]\n", ("on", 1)),
    ("a:\n  010: hunter2\n  8: ENC[x]\nsops:\n  mac: ENC[m]\n", ("a.10", 2)),
    ("x: &e\n  k: ENC[x]\ny:\n  <<: *e\n  j: clear\nsops:\n  mac: ENC[m]\n", ("y.j", 5)),
    # a tagged value goes to the careful parser, which leaves a file it refuses to sops
    ("a: !!binary aGk=\nsops:\n  mac: ENC[m]\n", None),
    # an alias tree too large to walk cheaply goes to the careful parser, which refuses it
    ("x0: &a [ENC[x], ENC[y]]\n" + "".join(
        f"x{i}: &a{i} [*{'a' if i == 1 else f'a{i - 1}'}, *{'a' if i == 1 else f'a{i - 1}'}]\n"
        for i in range(1, 25)) + "z: clear\nsops:\n  mac: ENC[m]\n", None),
])
def test_values_in_clear_are_found_by_either_parser(tmp_path, text, found):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert secrets.first_clear_value(path) == found


def test_a_decryption_runs_without_gos_collector_unless_the_operator_sets_it(repo, env, tmp_path):
    """(a short CPU-bound Go run: see process.SHORT_GO_RUN)"""
    from deployer.adapters import tools

    real = tools.find("sops", env)
    wrapped = tmp_path / "tools"
    wrapped.mkdir()
    log = tmp_path / "calls.log"
    (wrapped / "sops").write_text(f'#!/bin/sh\necho "GOGC=${{GOGC:-unset}} '
                                  f'GOMEMLIMIT=${{GOMEMLIMIT:-unset}} $*" >> {log}\n'
                                  f'exec "{real}" "$@"\n')
    (wrapped / "sops").chmod(0o755)
    own = {**env, "DEPLOYER_TOOLS_DIR": str(wrapped)}
    plain = secrets.decrypt(repo, "secrets/aws.yaml", own)
    assert plain == secrets.decrypt(repo, "secrets/aws.yaml", env)
    assert "GOGC=off GOMEMLIMIT=512MiB" in next(
        line for line in log.read_text().splitlines() if " decrypt " in line)
    log.write_text("")
    secrets.decrypt(repo, "secrets/aws.yaml", {**own, "GOMEMLIMIT": "1GiB"})
    assert "GOGC=unset GOMEMLIMIT=1GiB" in next(
        line for line in log.read_text().splitlines() if " decrypt " in line)


@pytest.mark.parametrize("content,expected", [
    (None, "cannot decrypt: SOPS_AGE_KEY_FILE={path} cannot be read (no such file or "
           "directory)"),
    ("garbage\n", "cannot decrypt: SOPS_AGE_KEY_FILE={path} is not an age key file (sops: "
                  "unknown identity type)"),
])
def test_a_key_file_sops_cannot_use_is_named_with_the_reason(repo, env, tmp_path, content,
                                                            expected):
    """Not "none of your identities is a recipient": the key file itself is the problem."""
    keyfile = tmp_path / "keys.txt"
    if content is not None:
        keyfile.write_text(content)
    with pytest.raises(SecretsError) as info:
        secrets.decrypt(repo, "secrets/staging.yaml", {**env, "SOPS_AGE_KEY_FILE": str(keyfile)})
    assert info.value.message == expected.format(path=keyfile)
    assert info.value.file == "secrets/staging.yaml"
    assert "age-keygen" in info.value.hint


def test_an_age_key_that_is_not_one_is_named(repo, env):
    bare = {k: v for k, v in env.items() if k != "SOPS_AGE_KEY_FILE"}
    with pytest.raises(SecretsError) as info:
        secrets.decrypt(repo, "secrets/staging.yaml", {**bare, "SOPS_AGE_KEY": "garbage"})
    assert info.value.message == ("cannot decrypt: SOPS_AGE_KEY holds no age key (sops: "
                                  "unknown identity type)")
