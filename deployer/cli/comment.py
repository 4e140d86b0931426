"""comment: keep one comment on a PR up to date (the plan table), never a second one."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from deployer.cli.common import handles_errors, state, usage


@handles_errors
def comment(pr: Optional[str] = typer.Option(None, "--pr", help="Pull request number."),
            body_file: Optional[Path] = typer.Option(
                None, "--body-file", exists=True, dir_okay=False,
                help="Markdown to post (e.g. plan --summary)."),
            head_sha: Optional[str] = typer.Option(
                None, "--head-sha",
                help="Instead of --pr/--body-file: find the open PR whose head is this "
                     "commit of --head-repo (a workflow_run's head_sha), fetch its head and "
                     "base with git and post the plan computed here."),
            head_repo: Optional[str] = typer.Option(
                None, "--head-repo", help="owner/name the PR's head comes from (a fork or "
                                          "this repository)."),
            remote: str = typer.Option("origin", "--remote",
                                       help="git remote to fetch the PR's commits from."),
            repository: str = typer.Option(None, "--repo", envvar="GITHUB_REPOSITORY",
                                           help="owner/name (default: $GITHUB_REPOSITORY)."),
            marker: str = typer.Option("<!-- binderhub-deployer:plan -->", "--marker",
                                       help="The hidden line that identifies the comment.")):
    """Create or update this tool's comment on a pull request (token: $GITHUB_TOKEN).

    In CI, `--head-sha SHA --head-repo OWNER/NAME` (from the workflow_run event) finds the
    pull request itself and recomputes its plan with this checkout's code: nothing a pull
    request's run wrote (an artifact, a number) is trusted or posted."""
    from deployer.adapters.github import DEFAULT_API, GitHub

    run = state()
    if not repository or not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise usage("--repo owner/name (or $GITHUB_REPOSITORY) is needed")
    token = run.env.get("GITHUB_TOKEN")
    if not token:
        raise usage("$GITHUB_TOKEN is needed to comment")
    if head_sha is not None or head_repo is not None:
        if pr is not None or body_file is not None:
            raise usage("give --head-sha and --head-repo, or --pr and --body-file, not both")
        if not head_sha or not head_repo:
            raise usage("--head-sha and --head-repo go together")
        from deployer.stages import plan as plan_stage

        ws = run.workspace()
        done = plan_stage.comment_pull_plans(ws, head_sha=head_sha.strip(),
                                             head_repo=head_repo.strip(), marker=marker,
                                             repository=repository, remote=remote)
        for number, found in done:
            run.console.info(f"#{number}: {'created' if found.created else 'updated'} "
                             f"{found.url}")
        return
    if pr is None or body_file is None:
        raise usage("give --pr and --body-file (or --head-sha and --head-repo)")
    if not re.fullmatch(r"[1-9][0-9]{0,9}", pr.strip()):
        raise usage(f"--pr must be a pull request number, not {pr[:40]!r}")
    body = body_file.read_text(encoding="utf-8", errors="replace")[:60000]
    with GitHub(token, api_url=run.env.get("GITHUB_API_URL") or DEFAULT_API,
                console=run.console) as client:
        found = client.upsert_comment(repository, int(pr), marker, body)
    run.console.info(f"{'created' if found.created else 'updated'} {found.url}")
