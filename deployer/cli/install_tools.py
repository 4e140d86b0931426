"""`python -m deployer.cli.install_tools [install|check] [NAME...]`: the pinned tools, before
the CLI's own dependencies are installed (only the standard library is needed)."""
from __future__ import annotations

import os
import sys

from deployer.adapters import tools
from deployer.errors import ToolError


def main(argv: list[str] | None = None) -> int:
    """Install or check the pinned helm, kubectl and sops; exit 2 on a tool error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else "install"
    env = dict(os.environ)
    try:
        if command == "install":
            tools.install(argv or None, env)
        elif command == "check":
            for name, path in tools.check_all(env).items():
                print(f"{name}: {path}")
        else:
            print("usage: python -m deployer.cli.install_tools [install|check] [NAME...]",
                  file=sys.stderr)
            return 2
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
