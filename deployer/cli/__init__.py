"""Command line: parse arguments, call one stage, print. Heavy imports stay inside commands."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from deployer import output
from deployer.errors import DeployerError

app = typer.Typer(
    help="Operate a BinderHub federation from this repository: render, validate, deploy.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})
secrets_app = typer.Typer(help="View, edit, encrypt and re-key the sops-encrypted secrets.",
                          no_args_is_help=True)
tools_app = typer.Typer(help="Install and check the pinned helm, kubectl and sops.",
                        no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
app.add_typer(tools_app, name="tools")

ROOT_OPTION = typer.Option(None, "--root", envvar="DEPLOYER_ROOT", show_default=False,
                           help="Repository to operate on (default: the one holding deploy.py).")
MIRROR = typer.Option(None, "--chart-mirror", envvar="DEPLOYER_CHART_MIRROR",
                      help="Fetch chart dependencies from this repository instead of the "
                           "ones in Chart.yaml (same names and versions).")
SHOW_SECRETS = typer.Option(False, "--show-secrets",
                            help="Print secret values in clear instead of ***.")


class State:
    """Options shared by every command."""

    root: Path = Path(__file__).resolve().parents[2]

    @classmethod
    def workspace(cls, show_secrets: bool = False):
        from deployer.model.workspace import Workspace

        output.reveal(show_secrets)
        return Workspace(root=cls.root, env=dict(os.environ), show_secrets=show_secrets)


def handles_errors(func):
    """Turn DeployerError into one red line and its exit code (2 bad input, 1 failed op)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DeployerError as exc:
            output.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            output.error("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def main(root: Optional[Path] = ROOT_OPTION) -> None:
    """Operate a BinderHub federation from this repository."""
    if root is not None:
        State.root = root.resolve()


@app.command()
@handles_errors
def members(role: Optional[str] = typer.Option(None, help="Only members with this role."),
            json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the federation's members."""
    ws = State.workspace()
    chosen = [m for m in ws.federation.members.values() if role in (None, m.role)]
    if json_out:
        import dataclasses
        import json

        output.say(json.dumps([dataclasses.asdict(m) | {"url": m.url} for m in chosen], indent=2))
        return
    output.table(
        ["member", "role", "provider", "cluster", "k8s", "release/namespace", "binder", "weight"],
        [[m.name, m.role, m.cluster.provider, _cluster_name(m), m.kubernetes_version,
          f"{m.release}/{m.namespace}", m.domains.binder,
          (str(m.weight) if m.active else f"{m.weight} (inactive)") if m.in_federation else "-"]
         for m in chosen])


@app.command()
@handles_errors
def render(member_names: List[str] = typer.Argument(None, metavar="MEMBER...",
                                                    help="Members (names or a role)."),
           all_members: bool = typer.Option(False, "--all", help="Every member."),
           out: Optional[Path] = typer.Option(None, "--output", "-o",
                                              help="Write DIR/<member>/values.yaml and "
                                                   "manifests.yaml."),
           show_manifests: bool = typer.Option(False, "--manifests",
                                               help="Print the rendered manifests instead "
                                                    "of the values."),
           mirror: Optional[str] = MIRROR,
           show_secrets: bool = SHOW_SECRETS):
    """Merge a member's values and render the chart (secrets shown as ***)."""
    from deployer.stages import render as render_mod

    ws = State.workspace(show_secrets)
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    if out is None and len(chosen) > 1:
        raise _usage("rendering several members needs --output DIR")
    with_manifests = out is not None or show_manifests
    results = [render_mod.render(ws, member, with_manifests=with_manifests, mirror=mirror)
               for member in chosen]
    if out is None:
        text = results[0].manifests_text if show_manifests else results[0].values_text
        output.say(text.rstrip())
        return
    for result in results:
        for path in render_mod.write(result, out, show_secrets=show_secrets):
            output.info(f"wrote {path}")


@app.command()
@handles_errors
def validate(member_names: List[str] = typer.Argument(None, metavar="MEMBER...",
                                                      help="Members (names or a role)."),
             all_members: bool = typer.Option(False, "--all", help="Every member."),
             mirror: Optional[str] = MIRROR,
             jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                                help="Members validated at once.")):
    """Render members with helm and check chart schema, lint, Kubernetes schemas, policy."""
    from deployer.stages import validate as validate_mod

    ws = State.workspace()
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    reports = validate_mod.validate_members(ws, chosen, mirror=mirror, jobs=jobs)
    for report in reports:
        for line in report.errors:
            output.error(f"{report.member}: {line}")
        for line in report.warnings:
            output.warn(f"{report.member}: {line}")
    output.table(["member", "objects", "errors", "seconds", "result"],
                 [[r.member, r.objects, len(r.errors), f"{r.seconds:.1f}",
                   "ok" if r.ok else "FAILED"] for r in reports])
    custom = sorted({c for r in reports for c in r.custom})
    if custom:
        output.info(f"not schema-checked (custom resources): {', '.join(custom)}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


KUBECONFIG_OPTION = typer.Option(None, "--kubeconfig", exists=True, dir_okay=False,
                                 help="Use this kubeconfig instead of the member's credentials.")
TIMEOUT_OPTION = typer.Option(600, "--timeout", help="Seconds for helm and the rollout wait.")
LOCK_TIMEOUT = typer.Option(600, "--lock-timeout", help="Seconds to wait for the deploy lock.")
BREAK_LOCK = typer.Option(False, "--break-lock",
                          help="Remove another deploy's lock first (it is logged).")


@app.command()
@handles_errors
def deploy(member_names: List[str] = typer.Argument(None, metavar="MEMBER...",
                                                    help="Members: names, comma lists or a role."),
           all_members: bool = typer.Option(False, "--all", help="Every member."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Stop after the diff."),
           no_rollback: bool = typer.Option(False, "--no-rollback",
                                            help="Keep a failed release as it is, to debug it."),
           lock_timeout: int = LOCK_TIMEOUT, break_lock: bool = BREAK_LOCK,
           timeout: int = TIMEOUT_OPTION,
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
           skip_smoke: bool = typer.Option(False, "--skip-smoke",
                                           help="Skip the post-deploy health checks."),
           report: Optional[Path] = typer.Option(None, "--report",
                                                 help="Write a JSON deploy report here."),
           jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                              help="Members deployed at once."),
           mirror: Optional[str] = MIRROR):
    """Deploy members (staging first); roll back automatically on failure."""
    from deployer.stages import pipeline
    from deployer.stages import records

    ws = State.workspace()
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    if kubeconfig and len(chosen) > 1:
        raise _usage("--kubeconfig reaches one cluster: deploy one member with it at a time")
    opts = pipeline.Options(dry_run=dry_run, rollback=not no_rollback, lock_timeout=lock_timeout,
                            break_lock=break_lock, timeout=timeout, kubeconfig=kubeconfig,
                            mirror=mirror, smoke=not skip_smoke)
    reports = pipeline.deploy_members(ws, chosen, opts, jobs)
    if report:
        try:
            records.write(report, reports)
            output.info(f"wrote {report}")
        except OSError as exc:
            output.error(f"cannot write the report {report}: {exc.strerror}")
    output.table(["member", "outcome", "revision", "seconds", "failed stage"],
                 [[r.member, r.outcome, f"{r.revision_before or '-'} -> {r.revision_after or '-'}",
                   f"{sum(r.stages.values()):.1f}", r.failed_stage or "-"] for r in reports])
    if any(r.outcome not in ("deployed", "unchanged", "dry run") for r in reports):
        raise typer.Exit(1)


@app.command()
@handles_errors
def diff(member: str = typer.Argument(..., help="Member name."),
         kubeconfig: Optional[Path] = KUBECONFIG_OPTION, mirror: Optional[str] = MIRROR):
    """Show what a deploy would change: objects added, changed, removed (secrets masked)."""
    from deployer.stages import pipeline

    ws = State.workspace()
    result = pipeline.diff_member(ws, ws.federation.member(member),
                                  pipeline.Options(kubeconfig=kubeconfig, mirror=mirror))
    output.say(result.text())


@app.command()
@handles_errors
def rollback(member: str = typer.Argument(..., help="Member name."),
             to_revision: Optional[int] = typer.Option(None, "--to-revision",
                                                       help="Default: the revision before the "
                                                            "deployed one."),
             lock_timeout: int = LOCK_TIMEOUT, break_lock: bool = BREAK_LOCK,
             timeout: int = TIMEOUT_OPTION, kubeconfig: Optional[Path] = KUBECONFIG_OPTION):
    """Roll a member's release back and wait until it has rolled out."""
    from deployer.stages import pipeline

    ws = State.workspace()
    opts = pipeline.Options(lock_timeout=lock_timeout, break_lock=break_lock, timeout=timeout,
                            kubeconfig=kubeconfig)
    output.say(f"{member}: " + pipeline.rollback_member(ws, ws.federation.member(member), opts,
                                                        to_revision))


@app.command()
@handles_errors
def status(member_names: List[str] = typer.Argument(None, metavar="MEMBER..."),
           all_members: bool = typer.Option(False, "--all", help="Every member."),
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION):
    """Release, workloads, lock holder and certificate expiry of members, in one table."""
    from concurrent.futures import ThreadPoolExecutor

    from deployer.stages import status as status_mod

    ws = State.workspace()
    chosen = ws.federation.select(member_names or (), all_members=all_members or not member_names)
    if not chosen:
        raise _usage("no member matches")
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        rows = list(pool.map(lambda m: status_mod.member_status(ws, m, kubeconfig), chosen))
    output.table(status_mod.HEADERS, [r.row() for r in rows])
    for row in rows:
        if row.error:
            output.warn(f"{row.member}: {row.error}")
    if any(r.error for r in rows):
        raise typer.Exit(1)


@app.command()
@handles_errors
def smoke(member_names: List[str] = typer.Argument(None, metavar="MEMBER..."),
          all_members: bool = typer.Option(False, "--all", help="Every member."),
          build: bool = typer.Option(False, "--build",
                                     help="Also push a throwaway commit to the member's smoke "
                                          "build repository and launch it (a fresh build)."),
          repo: Optional[List[str]] = typer.Option(None, "--repo",
                                                   help="Launch this spec instead of the "
                                                        "configured repos (repeatable)."),
          report: Optional[Path] = typer.Option(None, "--report", help="Write JSON here."),
          summary: Optional[Path] = typer.Option(None, "--summary",
                                                 help="Append a markdown summary here "
                                                      "(default: $GITHUB_STEP_SUMMARY).")):
    """Smoke-test members: HTTP checks, then launch their repos and run code in them."""
    import contextlib
    import json

    from deployer.stages import smoke as smoke_mod

    ws = State.workspace()
    fed = ws.federation
    chosen = fed.select(member_names or (), all_members=all_members)
    results = []
    for member in chosen:
        output.info(f"{member.name}: smoke tests")
        with contextlib.ExitStack() as stack:
            spec = stack.enter_context(smoke_mod.throwaway_commit(ws, member, output.info)) \
                if build else None
            results.append(smoke_mod.run(fed, member, repos=repo or None, build_spec=spec,
                                         log=lambda text, m=member: output.info(
                                             f"{m.name}:{text}")))
    for result in results:
        output.say(f"\n{result.member}")
        output.table(["check", "outcome", "seconds", "detail"], result.rows())
    if report:
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(output.redact(json.dumps(
                {"smoke": [r.to_json() for r in results]}, indent=2) + "\n"))
            output.info(f"wrote {report}")
        except OSError as exc:
            output.error(f"cannot write the report {report}: {exc.strerror}")
    target = summary or (Path(ws.env["GITHUB_STEP_SUMMARY"]) if ws.env.get("GITHUB_STEP_SUMMARY")
                         else None)
    if target:
        try:
            with open(target, "a") as handle:
                handle.write(output.redact("".join(r.markdown() for r in results)))
        except OSError as exc:
            output.error(f"cannot write the summary {target}: {exc.strerror}")
    if not all(r.ok for r in results):
        for result in results:
            for failure in result.failures():
                output.error(f"{result.member}: {failure}")
        raise typer.Exit(1)


@app.command()
@handles_errors
def explain(member: str = typer.Argument(..., help="Member name."),
            key: str = typer.Argument(..., help="Dotted key, e.g. binderhub.config.BinderHub."
                                                "hub_url (escape dots in keys as \\.)"),
            show_secrets: bool = SHOW_SECRETS):
    """Show a value's final setting and every layer (file:line) that set or overrode it."""
    from deployer.model import values as values_mod
    from deployer.model.yamlio import format_path, parse_path

    ws = State.workspace(show_secrets)
    mv = values_mod.build(ws, ws.federation.member(member))
    path = parse_path(key)
    final_source = mv.final if show_secrets else mv.redacted()
    final, settings = mv.explain(path)
    final = values_mod.lookup(final_source, path)
    output.say(f"{format_path(path)} = {values_mod.describe(final, False)}")
    if not settings:
        output.say("  set by no layer (not a key of the chart defaults or any values file)")
        raise typer.Exit(1)
    rows = []
    for i, s in enumerate(settings):
        secret = s.layer.secret and not show_secrets
        replaced = any(s.path[:len(later.path)] == later.path for later in settings[i + 1:])
        mark = "overridden" if replaced else "final" if s.path == path else "in effect"
        sub = "" if s.path == path else f" ({format_path(s.path)})"
        rows.append([s.layer.name, s.where, values_mod.describe(s.value, secret) + sub, mark])
    output.table(["layer", "set at", "value", ""], rows)


@secrets_app.command("view")
@handles_errors
def secrets_view(target: str = typer.Argument(..., help="Member name or path under secrets/."),
                 show_secrets: bool = SHOW_SECRETS):
    """Decrypt in memory and print (values masked unless --show-secrets)."""
    from deployer.adapters import sops as secrets_mod
    from deployer.model.yamlio import dump, load_text

    ws = State.workspace(show_secrets)
    rel = _secret_path(ws, target)
    text = secrets_mod.decrypt(ws.root, rel, ws.env)
    if show_secrets:
        output.say(text.rstrip())
        return
    data = load_text(text, rel).data
    output.say(dump(_mask_all(data)).rstrip())


@secrets_app.command("edit")
@handles_errors
def secrets_edit(target: str = typer.Argument(..., help="Member name or path under secrets/.")):
    """Edit in $EDITOR through sops; it is re-encrypted on save."""
    from deployer.adapters import sops as secrets_mod

    ws = State.workspace()
    secrets_mod.edit(ws.root, _secret_path(ws, target), ws.env)


@secrets_app.command("encrypt")
@handles_errors
def secrets_encrypt(target: str = typer.Argument(..., help="Path of a plaintext file under "
                                                            "secrets/, or a member name."),
                    from_stdin: bool = typer.Option(False, "--stdin",
                                                    help="Read the plaintext from stdin and "
                                                         "write the encrypted file.")):
    """Encrypt a new secrets file to the recipients .sops.yaml gives its path."""
    from deployer.adapters import sops as secrets_mod

    ws = State.workspace()
    rel = _secret_path(ws, target, must_exist=not from_stdin)
    if from_stdin:
        secrets_mod.encrypt_text(ws.root, rel, sys.stdin.read(), ws.env)
    else:
        secrets_mod.encrypt_in_place(ws.root, rel, ws.env)
    output.info(f"encrypted {rel} to: {', '.join(secrets_mod.recipients(ws.root / rel))}")


@secrets_app.command("rotate-recipients")
@handles_errors
def secrets_rotate(targets: List[str] = typer.Argument(None, metavar="[FILE|MEMBER]...",
                                                      help="Default: every file under secrets/."),
                   data_key: bool = typer.Option(False, "--rotate-data-key",
                                                 help="Also generate a new data key (after a "
                                                      "recipient left the team).")):
    """Re-encrypt secrets to the recipients now listed in .sops.yaml."""
    from deployer.adapters import sops as secrets_mod

    ws = State.workspace()
    files = [_secret_path(ws, t) for t in targets] if targets else secrets_mod.secret_files(
        ws.root)
    for rel in files:
        before = secrets_mod.recipients(ws.root / rel)
        secrets_mod.update_recipients(ws.root, rel, ws.env)
        if data_key:
            secrets_mod.rotate_data_key(ws.root, rel, ws.env)
        after = secrets_mod.recipients(ws.root / rel)
        change = "unchanged" if before == after else f"{len(before)} -> {len(after)} recipients"
        output.info(f"{rel}: {change}{', new data key' if data_key else ''}")


@tools_app.command("install")
@handles_errors
def tools_install(names: List[str] = typer.Argument(None, metavar="[TOOL]...")):
    """Install pinned helm, kubectl and sops into .tools/bin (sha256-verified)."""
    from deployer.adapters import tools

    tools.install(names or None, log=output.info)


@tools_app.command("check")
@handles_errors
def tools_check():
    """Show which binary of each tool will be used."""
    from deployer.adapters import tools

    for name, path in tools.check_all().items():
        output.say(f"{name}: {path}")


def run() -> None:
    """Entry point for deploy.py."""
    app()


def _cluster_name(member) -> str:
    c = member.cluster
    if c.provider == "gke":
        return f"{c.project}/{c.zone}/{c.name}"
    if c.provider == "eks":
        return f"{c.region}/{c.name}"
    return c.kubeconfig + (f" ({c.context})" if c.context else "")


def _secret_path(ws, target: str, must_exist: bool = True) -> str:
    """A member name or a path -> a path under secrets/, relative to the repository root."""
    from deployer.errors import SecretsError

    if "/" not in target and not target.endswith((".yaml", ".yml")):
        ws.federation.member(target)
        return f"secrets/{target}.yaml"
    rel = ws.rel(Path(target) if Path(target).is_absolute() else ws.root / target)
    if not rel.startswith("secrets/"):
        raise SecretsError("secrets files live under secrets/", file=target)
    if must_exist and not (ws.root / rel).is_file():
        raise SecretsError("file not found", file=rel)
    return rel


def _mask_all(data):
    from deployer.model.redact import MASK

    if isinstance(data, dict):
        return {k: (v if k == "sops" else _mask_all(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_all(v) for v in data]
    return data if data is None or isinstance(data, bool) else MASK


def _usage(message: str):
    from deployer.errors import ConfigError

    return ConfigError(message)
