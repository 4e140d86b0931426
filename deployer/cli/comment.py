"""comment: keep one comment on a PR up to date (the plan table), never a second one."""
from __future__ import annotations

import re
from pathlib import Path

import typer

from deployer.cli.common import handles_errors, state, usage


@handles_errors
def comment(pr: str = typer.Option(..., "--pr", help="Pull request number."),
            body_file: Path = typer.Option(..., "--body-file", exists=True, dir_okay=False,
                                           help="Markdown to post (e.g. plan --summary)."),
            repository: str = typer.Option(None, "--repo", envvar="GITHUB_REPOSITORY",
                                           help="owner/name (default: $GITHUB_REPOSITORY)."),
            marker: str = typer.Option("<!-- binderhub-deployer:plan -->", "--marker",
                                       help="The hidden line that identifies the comment.")):
    """Create or update this tool's comment on a pull request (token: $GITHUB_TOKEN)."""
    from deployer.adapters.github import DEFAULT_API, GitHub

    run = state()
    if not re.fullmatch(r"[1-9][0-9]{0,9}", pr.strip()):
        raise usage(f"--pr must be a pull request number, not {pr[:40]!r}")
    if not repository or not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise usage("--repo owner/name (or $GITHUB_REPOSITORY) is needed")
    token = run.env.get("GITHUB_TOKEN")
    if not token:
        raise usage("$GITHUB_TOKEN is needed to comment")
    body = body_file.read_text(encoding="utf-8", errors="replace")[:60000]
    with GitHub(token, api_url=run.env.get("GITHUB_API_URL") or DEFAULT_API,
                console=run.console) as client:
        found = client.upsert_comment(repository, int(pr), marker, body)
    run.console.info(f"{'created' if found.created else 'updated'} {found.url}")
