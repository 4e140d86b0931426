"""secrets view / edit / encrypt / rotate-recipients: the sops-encrypted files."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import typer

from deployer.cli.common import SHOW_SECRETS, handles_errors, usage, workspace
from deployer.errors import Interrupted

app = typer.Typer(help="View, edit, encrypt and re-key the sops-encrypted secrets.",
                  no_args_is_help=True)


@app.command("view")
@handles_errors
def view(target: str = typer.Argument(..., help="Member name, common, or path under secrets/."),
         show_secrets: bool = SHOW_SECRETS):
    """Decrypt in memory and print (values masked unless --show-secrets)."""
    from deployer.adapters import sops
    from deployer.model.yamlio import dump, load_text

    ws = workspace(show_secrets)
    rel = secret_path(ws, target)
    text = sops.decrypt(ws.root, rel, ws.env)
    if show_secrets:
        ws.console.say(text.rstrip())
        return
    data = load_text(text, rel).data
    ws.console.say(dump(mask_all(data)).rstrip())


@app.command("edit")
@handles_errors
def edit(target: str = typer.Argument(..., help="Member name, common, or path under secrets/.")):
    """Edit in $EDITOR through sops; it is re-encrypted on save."""
    import signal

    from deployer.adapters import sops
    from deployer.cli.interrupts import Interrupts, interrupted

    ws = workspace()
    rel = secret_path(ws, target)
    # SIGINT, SIGTERM and SIGHUP (a closed SSH session) stop sops and the editor; the
    # decrypted copy is removed, the file left as it was; exit 130/143/129
    intr = Interrupts(ws.console, raises=True,
                      signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    with intr.handled():
        try:
            changed = sops.edit(ws.root, rel, ws.env)
        except Interrupted:
            raise interrupted(intr.received, "interrupted: the editor was stopped and the "
                              "decrypted copy removed; the file is unchanged",
                              file=rel) from None
    ws.console.info(f"{rel}: {'saved, encrypted' if changed else 'unchanged'}")


@app.command("encrypt")
@handles_errors
def encrypt(target: str = typer.Argument(..., help="Path of a plaintext file under "
                                                   "secrets/, or a member name."),
            from_stdin: bool = typer.Option(False, "--stdin",
                                            help="Read the plaintext from stdin and "
                                                 "write the encrypted file."),
            force: bool = typer.Option(False, "--force",
                                       help="With --stdin: replace an existing file.")):
    """Encrypt a new secrets file to the recipients .sops.yaml gives its path."""
    from deployer.adapters import sops

    ws = workspace()
    rel = secret_path(ws, target, must_exist=not from_stdin)
    if from_stdin and (ws.root / rel).exists() and not force:
        raise usage(f"{rel} exists: --stdin would replace every secret in it",
                    hint=f"./deploy.py secrets edit {rel} changes it; --force replaces it")
    if from_stdin:
        plaintext = sops.decode_plaintext(sys.stdin.buffer.read(), "stdin")
        sops.encrypt_text(ws.root, rel, plaintext, ws.env, label="stdin")
    else:
        sops.encrypt_in_place(ws.root, rel, ws.env)
    names = sops.recipients(ws.root / rel)
    ws.console.info(f"encrypted {rel} to: "
                    f"{', '.join(names) if names else 'no age recipient (see its sops metadata)'}")


@app.command("rotate-recipients")
@handles_errors
def rotate(targets: List[str] = typer.Argument(None, metavar="[FILE|MEMBER]...",
                                               help="Default: every sops-encrypted file "
                                                    "under secrets/ that a creation rule "
                                                    "covers."),
           data_key: bool = typer.Option(False, "--rotate-data-key",
                                         help="Also generate a new data key (after a "
                                              "recipient left the team).")):
    """Re-encrypt secrets to the recipients now listed in .sops.yaml."""
    from deployer.adapters import sops

    ws = workspace()
    if targets:
        files = [secret_path(ws, t) for t in targets]
    else:       # every encrypted file, whatever its name (a Terraform state is sops JSON)
        found = sops.encrypted_files(ws.root)
        files = sops.secret_files(ws.root, found)
        for rel in sorted(set(found) - set(files)):
            ws.console.warn(f"{rel}: no creation rule in {sops.SOPS_CONFIG} covers it; "
                            "left as it is (add a rule, then name it here)")
    for rel in files:
        before = sops.recipients(ws.root / rel)
        sops.update_recipients(ws.root, rel, ws.env)
        if data_key:
            sops.rotate_data_key(ws.root, rel, ws.env)
        after = sops.recipients(ws.root / rel)
        change = "unchanged" if before == after else f"{len(before)} -> {len(after)} recipients"
        ws.console.info(f"{rel}: {change}{', new data key' if data_key else ''}")


def secret_path(ws, target: str, must_exist: bool = True) -> str:
    """A member name or a path -> a path under secrets/, relative to the repository root."""
    from deployer.errors import SecretsError

    if "/" not in target and not target.endswith((".yaml", ".yml")):
        if target == "common":                   # a reserved member name
            rel = "secrets/common.yaml"          # the secrets every member shares
            if must_exist and not (ws.root / rel).is_file():
                raise SecretsError("file not found", file=rel,
                                   hint="create it with: ./deploy.py secrets encrypt --stdin "
                                        "common < plaintext.yaml")
            return rel
        ws.federation.member(target)
        return f"secrets/{target}.yaml"
    rel = ws.rel(Path(target) if Path(target).is_absolute() else ws.root / target)
    if not rel.startswith("secrets/"):
        raise SecretsError("secrets files live under secrets/", file=target)
    if must_exist and not (ws.root / rel).is_file():
        raise SecretsError("file not found", file=rel)
    return rel


def mask_all(data):
    """Every value masked, the structure (and sops metadata) kept."""
    from deployer.model.redact import MASK

    if isinstance(data, dict):
        return {k: (v if k == "sops" else mask_all(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_all(v) for v in data]
    return data if data is None or isinstance(data, bool) else MASK
