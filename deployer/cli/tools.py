"""tools install / check: the pinned helm, kubectl and sops."""
from __future__ import annotations

from typing import List

import typer

from deployer.cli.common import handles_errors, state

app = typer.Typer(help="Install and check the pinned helm, kubectl and sops.",
                  no_args_is_help=True)


@app.command("install")
@handles_errors
def install(names: List[str] = typer.Argument(None, metavar="[TOOL]...")):
    """Install pinned helm, kubectl and sops into .tools/bin (sha256-verified)."""
    from deployer.adapters import tools

    run = state()
    tools.install(names or None, run.env, log=run.console.info)


@app.command("check")
@handles_errors
def check():
    """Show which binary of each tool will be used."""
    from deployer.adapters import tools

    run = state()
    for name, path in tools.check_all(run.env).items():
        run.console.say(f"{name}: {path}")
