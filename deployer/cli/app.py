"""The typer registry: every command and command group of deploy.py."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deployer.cli import (bump, comment, common, deploys, members, plan, secrets, smoke,
                          terraform, tools)

app = typer.Typer(
    help="Operate a BinderHub federation from this repository: render, validate, deploy.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})


@app.callback()
def main(root: Optional[Path] = common.ROOT_OPTION) -> None:
    """Operate a BinderHub federation from this repository."""
    common.begin(root)


for command in (members.members, members.render, members.validate, deploys.deploy,
                deploys.diff, deploys.rollback, deploys.status, smoke.smoke, plan.plan,
                comment.comment, bump.bump, members.explain):
    app.command()(command)
app.add_typer(secrets.app, name="secrets")
app.add_typer(tools.app, name="tools")
app.add_typer(terraform.app, name="terraform")
