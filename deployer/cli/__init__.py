"""Command line: parse arguments, call one stage, print. The only reader of os.environ.

    app.py       the typer registry: every command group, the --root callback
    common.py    the per-invocation state, shared options, handles_errors
    members.py   members, render, validate, explain
    deploys.py   deploy, diff, rollback, status
    smoke.py     smoke
    secrets.py   secrets view / edit / encrypt / rotate-recipients
    tools.py     tools install / check
    install_tools.py   the same without typer (scripts/bootstrap, before .venv is complete)

Heavy imports stay inside commands, so `--help` is fast.
"""


def run() -> None:
    """Entry point for deploy.py."""
    from deployer.cli.app import app

    app()
