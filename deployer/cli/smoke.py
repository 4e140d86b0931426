"""smoke: the health checks and launches a deploy ends with, on demand."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from deployer.cli.common import PROXY_FROM_ENV, env_proxies, handles_errors, usage, workspace


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
                                                      "(default: $GITHUB_STEP_SUMMARY)."),
          proxy_from_env: bool = PROXY_FROM_ENV):
    """Smoke-test members: HTTP checks, then launch their repos and run code in them."""
    import contextlib

    from deployer.stages import smoke as smoke_mod

    ws = workspace()
    out = ws.console
    fed = ws.federation
    chosen = fed.select(member_names or (), all_members=all_members)
    named = {part.strip() for name in member_names or () for part in name.split(",")}
    for member in chosen:
        if (repo or build) and not member.runs_binderhub and member.name in named:
            raise usage(f"member {member.name!r} runs no BinderHub (runs: "
                        f"{', '.join(member.runs)}): nothing to launch there",
                        hint="drop --repo/--build, or name a member that runs BinderHub")
    results = []
    for member in chosen:
        out.info(f"{member.name}: smoke tests")
        launches = member.runs_binderhub    # --all or a role: a redirector-only member is checked
        with contextlib.ExitStack() as stack:
            spec = stack.enter_context(smoke_mod.throwaway_commit(ws, member, out.info)) \
                if build and launches else None
            results.append(smoke_mod.run(
                fed, member, repos=(repo or None) if launches else [], build_spec=spec,
                proxies=env_proxies(ws.env) if proxy_from_env else None,
                ca_bundle=ws.env.get("REQUESTS_CA_BUNDLE") or ws.env.get("SSL_CERT_FILE"),
                log=lambda text, m=member: out.info(f"{m.name}:{text}")))
    for result in results:
        out.say(f"\n{result.member}")
        out.table(["check", "outcome", "seconds", "detail"], result.rows())
    write_outputs(ws, results, report, summary)
    if not all(r.ok for r in results):
        for result in results:
            for failure in result.failures():
                out.error(f"{result.member}: {failure}")
        raise typer.Exit(1)


def write_outputs(ws, results, report: Optional[Path], summary: Optional[Path]) -> None:
    """The JSON report and the markdown summary (default: $GITHUB_STEP_SUMMARY), redacted."""
    import json

    out = ws.console
    if report:
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(out.redact(json.dumps(
                {"smoke": [r.to_json() for r in results]}, indent=2) + "\n"))
            out.info(f"wrote {report}")
        except OSError as exc:
            out.error(f"cannot write the report {report}: {exc.strerror}")
    target = summary or (Path(ws.env["GITHUB_STEP_SUMMARY"]) if ws.env.get("GITHUB_STEP_SUMMARY")
                         else None)
    if target:
        try:
            with open(target, "a") as handle:
                handle.write(out.redact("".join(r.markdown() for r in results)))
        except OSError as exc:
            out.error(f"cannot write the summary {target}: {exc.strerror}")
