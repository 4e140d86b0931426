"""members, render, validate, explain: the federation's data, merged and checked offline."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from deployer.errors import DeployerError
from deployer.cli.common import (MIRROR, SHOW_SECRETS, ends_quickly, handles_errors, usage,
                                 workspace)


@handles_errors
def members(role: Optional[str] = typer.Option(None, help="Only members with this role."),
            json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the federation's members."""
    ws = workspace()
    chosen = [m for m in ws.federation.members.values() if role in (None, m.role)]
    if json_out:
        import dataclasses
        import json

        ws.console.say(json.dumps([dataclasses.asdict(m) | {"url": m.url} for m in chosen],
                                  indent=2))
        return
    ws.console.table(
        ["member", "role", "runs", "provider", "cluster", "k8s", "release/namespace", "url",
         "weight"],
        [[m.name, m.role, ",".join(m.runs), m.cluster.provider, cluster_name(m),
          m.kubernetes_version, f"{m.release}/{m.namespace}", m.url,
          (str(m.weight) if m.active else f"{m.weight} (inactive)") if m.in_federation else "-"]
         for m in chosen])


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

    ws = workspace(show_secrets)
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    if out is None and len(chosen) > 1:
        raise usage("rendering several members needs --output DIR")
    if out is not None:
        check_output_dir(out)
    with_manifests = out is not None or show_manifests
    if out is None:
        result = render_mod.render(ws, chosen[0], with_manifests=with_manifests, mirror=mirror)
        text = result.manifests_text if show_manifests else result.values_text
        ws.console.say(text.rstrip())
        return
    # every member is rendered (one member's error does not hide the others'), then written
    # only if all rendered: a directory never mixes this run's renders with an older one's
    failed: list[DeployerError] = []
    results = []
    for member in chosen:
        try:
            results.append(render_mod.render(ws, member, with_manifests=with_manifests,
                                             mirror=mirror))
        except DeployerError as exc:
            if len(chosen) == 1:
                raise
            ws.console.error(f"{member.name}: {exc}")
            failed.append(exc)
    if failed:
        ws.console.error(f"{len(failed)} of {len(chosen)} members failed to render; nothing "
                         f"was written to {out}")
        raise typer.Exit(max(exc.exit_code for exc in failed))
    for result in results:
        for path in render_mod.write(result, out, show_secrets=show_secrets):
            ws.console.info(f"wrote {path}")


@handles_errors
def validate(member_names: List[str] = typer.Argument(None, metavar="MEMBER...",
                                                      help="Members (names or a role)."),
             all_members: bool = typer.Option(False, "--all", help="Every member."),
             mirror: Optional[str] = MIRROR,
             jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                                help="Members validated at once."),
             timings: bool = typer.Option(False, "--timings",
                                          help="Also print the seconds each stage took.")):
    """Render members with helm and check chart schema, lint, Kubernetes schemas, policy."""
    import time

    ends_quickly()
    started = time.perf_counter()
    from concurrent.futures import ThreadPoolExecutor

    from deployer.stages import validate as validate_mod

    ws = workspace()
    out = ws.console
    if jobs is not None and jobs < 1:
        raise usage(f"--jobs must be 1 or more, not {jobs}")
    validate_mod.probe_tools(ws)
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    run = validate_mod.Report("(run)")
    # the stacks' check (python-hcl2) overlaps the members, who mostly wait on helm and sops
    with ThreadPoolExecutor(max_workers=1) as side:
        stacks_future = side.submit(_timed_stack_problems, ws, chosen, run)
        bumped_future = side.submit(_timed_dependency_problems, ws, run)
        reports = validate_mod.validate_members(ws, chosen, mirror=mirror, jobs=jobs, run=run)
        stacks, bumped = stacks_future.result(), bumped_future.result()
    for report in reports:
        for line in report.errors:
            out.error(f"{report.member}: {line}")
        for line in report.warnings:
            out.warn(f"{report.member}: {line}")
    out.table(["member", "objects", "errors", "seconds", "result"],
              [[r.member, r.objects, len(r.errors), f"{r.seconds:.1f}",
                "ok" if r.ok else "FAILED"] for r in reports])
    custom = sorted({c for r in reports for c in r.custom})
    if custom:
        out.info(f"not schema-checked (custom resources): {', '.join(custom)}")
    for problem in stacks:
        out.error(f"terraform: {problem}")
    for problem in bumped:
        out.error(f"dependencies: {problem}")
    if timings:
        _print_timings(out, run, reports, time.perf_counter() - started)
    if not all(r.ok for r in reports) or stacks or bumped:
        raise typer.Exit(1)


def _timed_dependency_problems(ws, run) -> list[str]:
    with run.timed("dependencies file"):
        return _dependency_problems(ws)


def _dependency_problems(ws) -> list[str]:
    """What the bump bot would find wrong with config/dependencies.yaml before it asks any
    upstream (an entry naming a Chart.yaml dependency or a values key that is not there):
    found now, not at the next scheduled bump."""
    from deployer.errors import ConfigError
    from deployer.model import dependencies

    if not (ws.root / dependencies.DEPENDENCIES_FILE).is_file():
        return []
    try:
        deps = dependencies.load(ws.root)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for dep in deps.items.values():
        try:
            dependencies.current(ws.root, dep)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def _print_timings(out, run, reports, wall: float) -> None:
    """Seconds per stage: run-wide ones, then each member's (members overlap in time)."""
    stages = list(run.timings) + [s for s in ("values", "policy", "helm template",
                                              "helm lint", "kubernetes schemas",
                                              "site checks", "prerequisites")]
    rows = [[stage, f"{run.timings[stage]:.2f}", "-"] for stage in run.timings]
    for stage in stages[len(run.timings):]:
        per = [r.timings.get(stage, 0.0) for r in reports]
        rows.append([stage, f"{sum(per):.2f}", f"{max(per):.2f}"])
    rows.append(["wall (whole command)", f"{wall:.2f}", "-"])
    out.say("")
    out.table(["stage", "seconds (sum)", "slowest member"], rows)


def _timed_stack_problems(ws, chosen, run) -> list[str]:
    with run.timed("terraform stacks"):
        return _stack_problems(ws, chosen)


def _stack_problems(ws, chosen) -> list[str]:
    """Where the chosen members' Terraform stacks disagree with config/federation.yaml
    (read with python-hcl2; `terraform validate` runs the rest)."""
    from deployer.model import terraform as tf_model
    from deployer.stages.chart import cache_dir

    if not (ws.root / tf_model.MEMBERS_DIR).is_dir():
        return []
    parsed = cache_dir(ws) / "hcl"       # what unchanged files parse to (no secrets in there)
    return tf_model.check_stacks(ws.federation, tf_model.load_stacks(ws.root, parsed), ws.root,
                                 only={m.name for m in chosen}, parse_cache=parsed)


@handles_errors
def explain(member: str = typer.Argument(..., help="Member name."),
            key: str = typer.Argument(..., help="Dotted key, e.g. binderhub.config.BinderHub."
                                                "hub_url (escape dots in keys as \\.)"),
            show_secrets: bool = SHOW_SECRETS):
    """Show a value's final setting and every layer (file:line) that set or overrode it."""
    from deployer.model import values as values_mod
    from deployer.model.yamlio import format_path, parse_path
    from deployer.stages.render import member_values

    ws = workspace(show_secrets)
    mv = member_values(ws, ws.federation.member(member))
    path = parse_path(key)
    inside = values_mod.scalar_on(mv.final, path)
    if inside is not None:
        at, value = inside
        # described from the masked values, so shortening it cannot cut a secret in two
        shown = values_mod.describe(values_mod.lookup(mv.final if show_secrets
                                                      else mv.redacted(), at), False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        part = path[len(at)]
        item = f"item {part}" if isinstance(part, int) or part.isdigit() else f"key {part!r}"
        raise usage(f"{format_path(path)}: {format_path(at)} is {values_mod.kind_of(value)} "
                    f"({shown}), not a list or map: it has no {item}",
                    hint=f"explain {format_path(at)} shows where it is set")
    final_source = mv.final if show_secrets else mv.redacted()
    _, settings = mv.explain(path)
    final = values_mod.lookup(final_source, path)
    ws.console.say(f"{format_path(path)} = {values_mod.describe(final, False)}")
    if not settings:
        ws.console.say("  set by no layer (not a key of the chart defaults or any values file)")
        raise typer.Exit(1)
    rows = []
    for i, s in enumerate(settings):
        secret = s.layer.secret and not show_secrets
        replaced = any(s.path[:len(later.path)] == later.path for later in settings[i + 1:])
        mark = "overridden" if replaced else "final" if s.path == path else "in effect"
        sub = "" if s.path == path else f" ({format_path(s.path)})"
        rows.append([s.layer.name, s.where, values_mod.describe(s.value, secret) + sub, mark])
    ws.console.table(["layer", "set at", "value", ""], rows)


def check_output_dir(out: Path) -> None:
    """--output must be a directory we can write (or one we can create): checked before
    anything is rendered, so bad input writes nothing."""
    import os

    if out.exists() and not out.is_dir():
        raise usage(f"--output {out}: not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise usage(f"--output {out}: cannot write in {probe}")


def cluster_name(member) -> str:
    """Where a member's cluster is, in one short string."""
    c = member.cluster
    if c.provider == "gke":
        return f"{c.project}/{c.zone}/{c.name}"
    if c.provider == "eks":
        return f"{c.region}/{c.name}"
    if c.provider == "aks":
        return f"{c.subscription}/{c.resource_group}/{c.name}"
    return c.kubeconfig + (f" ({c.context})" if c.context else "")


__all__ = ["members", "render", "validate", "explain"]
