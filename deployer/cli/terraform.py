"""terraform plan / apply / output / kubeconfig / validate: the members' cluster stacks."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from deployer.cli.common import SHOW_SECRETS, handles_errors, usage, workspace

app = typer.Typer(help="Plan and apply the Terraform stacks that make members' clusters.",
                  no_args_is_help=True)

def _finishing(ws):
    """SIGINT, SIGTERM and SIGHUP let the running Terraform command finish (its state is
    saved), then the command stops with 130/143/129."""
    import signal

    from deployer.cli.interrupts import Interrupts

    return Interrupts(ws.console, stop_programs=False,
                      signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)).handled()


def _stop_if_interrupted(intr) -> None:
    if intr.received is not None:
        raise typer.Exit(intr.exit_code)


PLAN_DIR_OPTION = typer.Option(Path("build/terraform"), "--plan-dir",
                               help="Where saved plans (sops-encrypted) and their summaries "
                                    "are kept.")


@app.command("plan")
@handles_errors
def plan(members: List[str] = typer.Argument(None, metavar="MEMBER..."),
         all_stacks: bool = typer.Option(False, "--all", help="Every member with a stack."),
         plan_dir: Path = PLAN_DIR_OPTION,
         json_out: bool = typer.Option(False, "--json", help="Print the summaries as JSON."),
         fail_on_changes: bool = typer.Option(
             False, "--fail-on-changes",
             help="Exit 1 when any stack would change (a drift check).")):
    """Plan each stack and save the plan for apply; print what it would change."""
    from deployer.stages import terraform as tf

    ws = workspace()
    chosen = _members(ws, members, all_stacks)
    summaries, failed = [], []
    with _finishing(ws) as intr:
        for member in chosen:
            try:
                summaries.append(tf.plan(ws, member, _under(ws, plan_dir)))
            except tf.TerraformError as exc:
                ws.console.error(f"{member.name}: {exc}")
                failed.append(member.name)
            if intr.received is not None:
                break
    _stop_if_interrupted(intr)
    if json_out:
        ws.console.say(json.dumps([s.to_json() for s in summaries], indent=2))
    else:
        rows = []
        for s in summaries:
            counts = s.counts()
            blocked = s.protected()
            rows.append([s.member, counts["create"], counts["update"], counts["replace"],
                         counts["delete"], ", ".join(c.address for c in blocked) or "-",
                         s.digest])
        ws.console.table(["member", "create", "update", "replace", "delete",
                          "needs --allow-destroy", "digest"], rows)
        for s in summaries:
            for change in s.changes:
                if change.kind != "no-op":
                    ws.console.info(f"{s.member}: {change.kind} {change.address}")
    if failed:
        raise typer.Exit(1)
    drifted = [s.member for s in summaries if any(s.counts().values())]
    if fail_on_changes and drifted:
        ws.console.error(f"stacks that differ from their configuration: {', '.join(drifted)}")
        raise typer.Exit(1)


@app.command("apply")
@handles_errors
def apply(member: str = typer.Argument(...),
          plan_dir: Path = PLAN_DIR_OPTION,
          expect_digest: Optional[str] = typer.Option(
              None, "--expect-digest", help="The digest the reviewer approved; the saved plan "
                                            "must have it."),
          allow_destroy: Optional[List[str]] = typer.Option(
              None, "--allow-destroy", metavar="NAME",
              help="Let the plan destroy or replace this cluster, node pool or server "
                   "(address or name; repeatable).")):
    """Apply the saved plan of MEMBER, if it is the reviewed one."""
    from deployer.stages import terraform as tf

    import re

    ws = workspace()
    if expect_digest is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", expect_digest):
        raise usage(f"--expect-digest must be a whole digest (sha256: and 64 hex digits), "
                    f"not {expect_digest[:24]!r}")
    target = ws.federation.member(member)
    with _finishing(ws) as intr:
        outputs = tf.apply(ws, target, _under(ws, plan_dir),
                           allow_destroy=tuple(allow_destroy or ()), expect_digest=expect_digest)
    _print_outputs(ws, outputs, False)
    _stop_if_interrupted(intr)


@app.command("output")
@handles_errors
def output(member: str = typer.Argument(...), show_secrets: bool = SHOW_SECRETS):
    """The stack's outputs (sensitive ones masked)."""
    from deployer.stages import terraform as tf

    ws = workspace(show_secrets)
    with _finishing(ws) as intr:
        outputs = tf.output(ws, ws.federation.member(member))
    _print_outputs(ws, outputs, show_secrets)
    _stop_if_interrupted(intr)


@app.command("kubeconfig")
@handles_errors
def kubeconfig(member: str = typer.Argument(...)):
    """Fetch a k3s member's kubeconfig again (renewing a client certificate that expires
    soon) and encrypt it into its secrets file."""
    from deployer.stages import terraform as tf

    ws = workspace()
    with _finishing(ws) as intr:
        rel = tf.refresh_kubeconfig(ws, ws.federation.member(member))
    ws.console.say(f"{member}: kubeconfig refreshed into {rel}")
    _stop_if_interrupted(intr)


@app.command("validate")
@handles_errors
def validate(members: List[str] = typer.Argument(None, metavar="MEMBER..."),
             all_stacks: bool = typer.Option(False, "--all", help="Every stack.")):
    """Check the stacks: against config/federation.yaml, fmt, validate, checkov."""
    from deployer.stages import terraform_checks

    ws = workspace()
    chosen = [m.name for m in _members(ws, members, all_stacks)]
    problems, notes = terraform_checks.check(ws, chosen)
    for note in notes:
        ws.console.info(note)
    for problem in problems:
        ws.console.error(problem)
    ws.console.say(f"{len(chosen)} stack(s) checked, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)


def _members(ws, names, all_stacks: bool):
    """The members to work on: those named, each of which must have a stack (checked before
    any is worked on), or with --all every member that has one (a member whose cluster is
    not made here, on EKS or reached by kubeconfig, has none)."""
    from deployer.model import terraform as model
    from deployer.stages.terraform import stack_dir

    stacks = model.load_stacks(ws.root)
    if all_stacks:
        if names:
            raise usage("give member names or --all, not both")
        return [ws.federation.member(name) for name in stacks]
    if not names:
        raise usage("name a member (or --all)")
    chosen = ws.federation.select(names)
    for member in chosen:
        stack_dir(ws, member)
    return chosen


def _under(ws, path: Path) -> Path:
    return path if path.is_absolute() else ws.root / path


def _print_outputs(ws, outputs: dict, show_secrets: bool) -> None:
    rows = []
    for name, value in sorted(outputs.items()):
        shown = value.get("value")
        if value.get("sensitive") and not show_secrets:
            shown = "*** (sensitive)"
        elif not isinstance(shown, str):
            shown = json.dumps(shown)
        first = str(shown).splitlines()[0] if str(shown) else ""
        rows.append([name, first + (" ..." if "\n" in str(shown) else "")])
    ws.console.table(["output", "value"], rows)
