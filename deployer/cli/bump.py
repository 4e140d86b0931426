"""bump: the bump bot (config/dependencies.yaml -> one PR per outdated dependency)."""
from __future__ import annotations

import json
import re
from typing import List, Optional

import typer

from deployer.cli.common import MIRROR, handles_errors, usage, workspace


@handles_errors
def bump(dry_run: bool = typer.Option(False, "--dry-run",
                                      help="Say what would change; write nothing anywhere."),
         only: Optional[List[str]] = typer.Option(None, "--only",
                                                  help="Only this dependency or group "
                                                       "(repeatable)."),
         json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
         repository: Optional[str] = typer.Option(
             None, "--repo", envvar="GITHUB_REPOSITORY",
             help="owner/name to open PRs in (default: $GITHUB_REPOSITORY)."),
         base: str = typer.Option("main", "--base", help="The branch PRs go into."),
         local: bool = typer.Option(False, "--local",
                                    help="Edit the files in this checkout instead of opening "
                                         "PRs."),
         no_validate: bool = typer.Option(False, "--no-validate",
                                          help="Skip `validate --all` on the edited tree."),
         plain_http: Optional[List[str]] = typer.Option(
             None, "--plain-http-registry", metavar="HOST:PORT",
             help="Speak plain HTTP to this registry (a local or internal one; repeatable)."),
         mirror: Optional[str] = MIRROR):
    """Find newer upstream releases and open (or update) one reviewed PR per dependency.

    The token comes from $GITHUB_TOKEN (in CI a GitHub App token, so that the PRs it opens
    run the PR checks). Without a token, bump only reports what is outdated."""
    from deployer.adapters import git
    from deployer.adapters.github import DEFAULT_API, GitHub
    from deployer.adapters.registry import Registry
    from deployer.stages import bump as bump_stage

    ws = workspace()
    out = ws.console
    if repository is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise usage(f"--repo must be owner/name, not {repository[:60]!r}")
    token = ws.env.get("GITHUB_TOKEN")
    settings = bump_stage.BumpSettings(repository=repository, base=base, dry_run=dry_run,
                                       local=local, validate=not no_validate, mirror=mirror,
                                       only=list(only or []))
    parent, dirty = git.state(ws.root, ws.env)
    if not local and not dry_run and repository and token and dirty:
        raise usage("the checkout has uncommitted changes; a bump PR is made from HEAD",
                    hint="commit or stash them, or use --dry-run / --local")
    if not local and not dry_run and repository and not token:
        out.warn("no $GITHUB_TOKEN: reporting only, no PRs")
    github = None
    with Registry(plain_http=tuple(plain_http or ())) as registry:
        if token:
            github = GitHub(token, api_url=ws.env.get("GITHUB_API_URL") or DEFAULT_API,
                            console=out, request_interval=0)
        try:
            outcomes = bump_stage.run(ws, settings, registry=registry, github=github,
                                      parent=parent or None)
        finally:
            if github is not None:
                github.close()
    if json_out:
        out.say(json.dumps({"dry_run": dry_run, "outcomes": [o.to_json() for o in outcomes]},
                           indent=2))
    else:
        out.table(["dependency", "change", "action", "pull request"],
                  [[o.unit, ", ".join(f"{b.dependency.name} {b.before} -> {b.after}"
                                      for b in o.bumps) or "-",
                    o.action.value + (" (draft)" if o.draft else ""), o.pull or "-"]
                   for o in outcomes])
        for o in outcomes:
            if o.detail and o.action not in (bump_stage.Action.UP_TO_DATE,
                                             bump_stage.Action.FAILED):
                out.info(f"{o.unit}: {o.detail}")
    if any(o.action is bump_stage.Action.FAILED for o in outcomes):
        raise typer.Exit(1)
