#!/bin/sh
''''[ -x "$(dirname "$0")/.venv/bin/python" ] && exec "$(dirname "$0")/.venv/bin/python" "$0" "$@"; exec python3 "$0" "$@" # '''
"""Operate the BinderHub federation: ./deploy.py --help (runs in .venv when it exists)."""
import os, sys  # noqa: E401
venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv")
if os.path.isdir(venv) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
    os.execv(os.path.join(venv, "bin", "python"), [os.path.join(venv, "bin", "python"), *sys.argv])
from deployer.cli import run  # noqa: E402
run()
