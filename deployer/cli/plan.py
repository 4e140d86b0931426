"""plan: what a merge must deploy, from the files it changed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from deployer.cli.common import handles_errors, usage, workspace


@handles_errors
def plan(base: Optional[str] = typer.Option(None, "--base",
                                            help="Commit the change starts from (a PR's "
                                                 "base, the push's `before`). All zeros, or "
                                                 "a commit this checkout lacks (a force "
                                                 "push), plans every member."),
         head: str = typer.Option("HEAD", "--head", help="Commit the change ends at."),
         changed_files: Optional[Path] = typer.Option(
             None, "--changed-files", exists=True, dir_okay=False,
             help="Read the changed paths from this file (one per line) instead of git."),
         labels: str = typer.Option("", "--labels",
                                    help="PR labels, comma-separated (deploy:skip, "
                                         "deploy:all)."),
         labels_from_github: bool = typer.Option(
             False, "--labels-from-github",
             help="Also apply the labels of the merged pull request(s) of --head, read from "
                  "GitHub ($GITHUB_TOKEN, $GITHUB_REPOSITORY): a push honours deploy:skip "
                  "and deploy:all as its PR's plan did."),
         since_deployed: bool = typer.Option(
             False, "--since-deployed",
             help="Instead of --base: plan each member from its last successful GitHub "
                  "Deployment (deploy --record), so a failed, cancelled or skipped deploy "
                  "is retried by the next run ($GITHUB_TOKEN, $GITHUB_REPOSITORY)."),
         members: Optional[List[str]] = typer.Option(
             None, "--member", help="Deploy this member (or role) whatever changed "
                                    "(a manual dispatch; repeatable). Without --base, "
                                    "only these."),
         json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON "
                                                             "(with GitHub Actions matrices)."),
         summary: Optional[Path] = typer.Option(None, "--summary",
                                                help="Write the plan as a markdown table "
                                                     "here."),
         github_output: Optional[Path] = typer.Option(
             None, "--github-output", envvar="GITHUB_OUTPUT",
             help="Append the matrices as step outputs here (default: $GITHUB_OUTPUT).")):
    """Decide what merging a change must do: members to validate and deploy (staging, then
    production), Terraform stacks to plan, each with its reasons."""
    from deployer.stages import plan as plan_stage

    ws = workspace()
    base = (base or "").strip() or None
    if since_deployed and (base is not None or changed_files is not None):
        raise usage("--since-deployed finds each member's base itself: drop --base and "
                    "--changed-files")
    if base is None and changed_files is None and not members and not since_deployed:
        raise usage("give --base REF (or --since-deployed, --changed-files FILE, or "
                    "--member NAME)")
    result = plan_stage.make_plan(ws, base=base, head=head, changed_files=changed_files,
                                  labels=[x for x in labels.split(",") if x.strip()],
                                  labels_from_github=labels_from_github,
                                  since_deployed=since_deployed)
    for member in result.federation.select(members) if members else []:
        result.plan.member(member.name, "requested by hand (--member)")
    data = result.to_json()
    text = result.markdown()
    if json_out:
        ws.console.say(json.dumps(data, indent=2))
    else:
        ws.console.say(text.rstrip())
    if summary is not None:
        _write(summary, text, "--summary")
    if github_output is not None:
        lines = [f"{job}={json.dumps(matrix, separators=(',', ':'))}"
                 for job, matrix in data["matrices"].items()]
        lines += [f"has_{job}={'true' if present else 'false'}"
                  for job, present in data["has"].items()]
        _write(github_output, "\n".join(lines) + "\n", "--github-output", append=True)


def _write(path: Path, text: str, option: str, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise usage(f"{option} {path}: {exc.strerror}") from None
