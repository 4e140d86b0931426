"""secrets edit and rotate-recipients with the real CLI, the real sops and editors that are
shell scripts: what an interrupted edit leaves on disk, what an edit may write, which files a
re-key reaches."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from deployer.adapters import sops
from tests.support import OPERATOR_KEY, OTHER_KEY, public_key


def _editor(tmp_path, body: str):
    """An EDITOR script: it records the file it is given (and its own pid), then runs `body`."""
    script = tmp_path / "editor.sh"
    log = tmp_path / "editor.log"
    script.write_text(f'#!/bin/sh\necho "$$ $1" > "{log}.part" && mv "{log}.part" "{log}"\n'
                      f"{body}\n")
    script.chmod(0o755)
    return script, log


def _files_under(directory):
    return sorted(str(p) for p in directory.rglob("*") if not p.is_dir())


def _edit(cli_command, repo, tmp_path, editor, member="gke", **popen):
    prefix, env = cli_command
    scratch = tmp_path / "tmpdir"
    scratch.mkdir(exist_ok=True)
    proc = subprocess.Popen([*prefix, "secrets", "edit", member], cwd=repo,
                            env={**env, "TMPDIR": str(scratch), "EDITOR": str(editor)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    return proc, scratch


def _wait_for(path, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the editor did not start"
        time.sleep(0.05)


@pytest.mark.parametrize("sig,to_group", [
    (signal.SIGHUP, True),      # the SSH session closed: the whole foreground group
    (signal.SIGTERM, True),
    (signal.SIGINT, True),      # Ctrl-C outside the editor's raw mode
    (signal.SIGTERM, False),    # the deployer alone (a CI cancellation, kill PID)
    (signal.SIGHUP, False),
])
def test_an_interrupted_edit_leaves_no_plaintext_and_the_file_unchanged(
        cli_command, repo, tmp_path, sig, to_group):
    editor, log = _editor(tmp_path, "exec sleep 60")
    before = (repo / "secrets/gke.yaml").read_bytes()
    proc, scratch = _edit(cli_command, repo, tmp_path, editor, start_new_session=True)
    editor_pid = None
    try:
        _wait_for(log, proc)
        editor_pid, opened = log.read_text().split(maxsplit=1)
        opened = opened.strip()
        # sops wrote the decrypted copy under the TMPDIR the deployer gave it
        assert opened.startswith(str(scratch) + "/"), opened
        assert "example-gke-grafana-password" in open(opened).read()
        if to_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if editor_pid:          # the editor outlives sops when only the deployer was
            try:                # signalled (and keeps the output pipes open)
                os.kill(int(editor_pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == {signal.SIGHUP: 129, signal.SIGTERM: 143,
                               signal.SIGINT: 130}[sig], err
    assert "secrets/gke.yaml: interrupted" in err and "the file is unchanged" in err, err
    assert "Traceback" not in err
    assert _files_under(scratch) == []
    assert (repo / "secrets/gke.yaml").read_bytes() == before


def test_an_edit_is_saved_encrypted_and_nothing_stays_behind(cli_command, repo, tmp_path, env):
    editor, _ = _editor(tmp_path, 'echo "extra: a-new-secret" >> "$1"')
    proc, scratch = _edit(cli_command, repo, tmp_path, editor)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "secrets/gke.yaml: saved, encrypted" in err
    assert "a-new-secret" not in (repo / "secrets/gke.yaml").read_text()
    assert "extra: a-new-secret" in sops.decrypt(repo, "secrets/gke.yaml", env)
    assert _files_under(scratch) == []
    assert not list((repo / "secrets").glob(".*"))


def test_an_edit_that_would_keep_a_value_in_clear_is_refused(cli_command, repo, tmp_path):
    editor, _ = _editor(tmp_path, 'echo "token_unencrypted: visible-value" >> "$1"')
    before = (repo / "secrets/gke.yaml").read_bytes()
    proc, scratch = _edit(cli_command, repo, tmp_path, editor)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: secrets/gke.yaml:"), err
    assert "token_unencrypted: sops would write this value in clear" in err
    assert "visible-value" not in err
    assert (repo / "secrets/gke.yaml").read_bytes() == before
    assert _files_under(scratch) == []


def test_an_editor_that_fails_is_named_and_the_file_unchanged(cli_command, repo, tmp_path):
    editor, _ = _editor(tmp_path, "exit 3")
    before = (repo / "secrets/gke.yaml").read_bytes()
    proc, scratch = _edit(cli_command, repo, tmp_path, editor)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "error: secrets/gke.yaml: the editor failed" in err
    assert "SOPS_AGE_KEY_FILE" not in err        # not a key problem
    assert (repo / "secrets/gke.yaml").read_bytes() == before
    assert _files_under(scratch) == []


def test_rotate_recipients_reaches_every_encrypted_file_whatever_its_name(cli, repo, env):
    """A Terraform state (sops JSON holding a binary blob, named .tfstate: it holds a k3s
    admin kubeconfig) and a sops JSON credentials file are re-keyed with the YAML files; an
    encrypted file no creation rule covers is named; plaintext is not touched."""
    import json

    from deployer.adapters import tools

    state = json.dumps({"version": 4, "serial": 7, "outputs": {
        "kubeconfig": {"value": "apiVersion: v1\nusers: [{name: admin}]\n"}}})
    tfstate = repo / "secrets/terraform/hetzner-fsn.tfstate"
    sops.encrypt_blob(repo, "secrets/terraform/hetzner-fsn.tfstate", state, tfstate, env)
    credentials = subprocess.run(
        [tools.find("sops", env), "--disable-version-check", "encrypt", "--input-type", "json",
         "--output-type", "json", "--filename-override", "secrets/credentials/gke.json",
         "/dev/stdin"], input='{"private_key": "a-service-account-key"}', cwd=repo, env=env,
        capture_output=True, text=True, check=True).stdout
    (repo / "secrets/credentials").mkdir()
    (repo / "secrets/credentials/gke.json").write_text(credentials)
    stray = repo / "secrets/misc/notes.bin"
    sops.encrypt_blob(repo, "secrets/terraform/notes.tfplan", "notes", stray, env)
    (repo / "secrets/README.txt").write_text("plaintext notes, not sops\n")
    stray_before = stray.read_bytes()

    other = public_key(OTHER_KEY)
    sops_yaml = repo / ".sops.yaml"
    text = sops_yaml.read_text()
    for rule in ("^secrets/credentials/[a-z0-9-]+\\.(json|ya?ml)$",
                 "^secrets/terraform/[a-z0-9-]+\\.(ya?ml|tfstate|tfplan)$"):
        old = f"  - path_regex: {rule}\n    age: [*core]\n"
        assert old in text
        text = text.replace(old, f"  - path_regex: {rule}\n    age: [*core, {other}]\n")
    sops_yaml.write_text(text)

    result = cli("secrets", "rotate-recipients")
    assert result.returncode == 0, result.stderr
    assert "secrets/terraform/hetzner-fsn.tfstate: 1 -> 2 recipients" in result.stderr
    assert "secrets/credentials/gke.json: 1 -> 2 recipients" in result.stderr
    assert "secrets/terraform/hetzner-fsn.yaml: 1 -> 2 recipients" in result.stderr
    assert "secrets/aws.yaml: unchanged" in result.stderr
    assert "secrets/misc/notes.bin: no creation rule in .sops.yaml covers it" in result.stderr
    assert "README" not in result.stderr
    assert stray.read_bytes() == stray_before
    other_env = {**env, "SOPS_AGE_KEY_FILE": str(OTHER_KEY)}
    assert sops.recipients(tfstate) == [public_key(OPERATOR_KEY), other]
    assert sops.decrypt_blob(repo, tfstate, other_env) == state

    rotated = cli("secrets", "rotate-recipients", "--rotate-data-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "secrets/terraform/hetzner-fsn.tfstate: unchanged, new data key" in rotated.stderr
    assert sops.decrypt_blob(repo, tfstate, other_env) == state
    assert sops.decrypt_blob(repo, tfstate, env) == state
    assert json.loads(tfstate.read_text())["data"].startswith("ENC[")
    assert tfstate.stat().st_mode & 0o777 == 0o600       # as encrypt_blob wrote it
