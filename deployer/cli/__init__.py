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


# jsonschema imports each of these, when installed, for a format checker the deployer never
# asks for (test dependencies bring them in); a command does not pay for them. Only the
# deploy.py process is told they are absent: a library that uses them elsewhere is unaffected.
UNUSED_FORMAT_CHECKERS = ("fqdn", "rfc3987", "rfc3986_validator", "rfc3339_validator",
                          "webcolors", "jsonpointer", "uri_template", "isoduration")


# deploy.py's process (run()): the cyclic garbage collector is the CLI's to turn off and on.
# Importing builds long-lived objects only, and its dozens of collections freed nothing, so it
# is off until the app callback (common.begin) turns it on again; a short command turns it
# off for good (common.ends_quickly). A process that imports the deployer as a library (the
# tests) keeps its own setting.
gc_held = False


def run() -> None:
    """Entry point for deploy.py."""
    import gc
    import sys

    global gc_held
    gc_held = True
    gc.disable()
    for name in UNUSED_FORMAT_CHECKERS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from deployer.cli.app import app
    from deployer.cli.common import leave_if_quick

    try:
        app()
    except SystemExit as exc:
        leave_if_quick(exc.code)
        raise
