"""What every command shares: the per-invocation state, options, and error handling."""
from __future__ import annotations

import contextvars
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import typer

import deployer.cli as cli_package
from deployer.console import Console
from deployer.errors import ConfigError, DeployerError

DEFAULT_ROOT = Path(__file__).resolve().parents[2]

ROOT_OPTION = typer.Option(None, "--root", envvar="DEPLOYER_ROOT", show_default=False,
                           help="Repository to operate on (default: the one holding deploy.py).")
MIRROR = typer.Option(None, "--chart-mirror", envvar="DEPLOYER_CHART_MIRROR",
                      help="Fetch chart dependencies from this repository instead of the "
                           "ones in Chart.yaml (same names and versions).")
SHOW_SECRETS = typer.Option(False, "--show-secrets",
                            help="Print secret values in clear instead of ***.")
KUBECONFIG_OPTION = typer.Option(None, "--kubeconfig", exists=True, dir_okay=False,
                                 help="Use this kubeconfig instead of the member's credentials.")
TIMEOUT_OPTION = typer.Option(600, "--timeout", help="Seconds for helm and the rollout wait.")
LOCK_TIMEOUT = typer.Option(600, "--lock-timeout", help="Seconds to wait for the deploy lock.")
BREAK_LOCK = typer.Option(False, "--break-lock",
                          help="Remove another deploy's lock first (it is logged).")
PROXY_FROM_ENV = typer.Option(False, "--proxy-from-env",
                              help="Smoke tests reach members through the proxy that "
                                   "HTTPS_PROXY / HTTP_PROXY / NO_PROXY name (default: "
                                   "directly, whatever the shell sets).")


def env_proxies(env: dict) -> dict[str, str]:
    """The proxies the environment names, for --proxy-from-env."""
    out = {}
    for scheme in ("http", "https"):
        value = env.get(f"{scheme.upper()}_PROXY") or env.get(f"{scheme}_proxy")
        if value:
            out[scheme] = value
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy")
    if no_proxy:
        out["no_proxy"] = no_proxy
    return out


@dataclass
class CliState:
    """One invocation: the repository, the process environment (read here, once) and the
    console that prints and redacts everything."""

    root: Path = DEFAULT_ROOT
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    console: Console = field(default_factory=Console)
    # a command that changes nothing and leaves nothing open may end without the
    # interpreter's teardown (see leave_if_quick)
    quick_exit: bool = False

    def workspace(self, show_secrets: bool = False):
        """The Workspace commands operate on."""
        from deployer.model.workspace import Workspace

        return Workspace(root=self.root, env=self.env, show_secrets=show_secrets,
                         console=self.console)


_current: contextvars.ContextVar[CliState] = contextvars.ContextVar("deployer_cli_state")


def begin(root: Path | None) -> CliState:
    """A new invocation (the app callback): its state, for the command that follows. In a
    deploy.py process the cyclic garbage collector, off while the modules were imported (see
    run() in deployer/cli/__init__.py), runs again from here, for commands that run long
    (deploy, smoke)."""
    new = CliState(root=root.resolve() if root is not None else DEFAULT_ROOT)
    _current.set(new)
    if cli_package.gc_held:
        import gc

        gc.freeze()          # what the imports made lives as long as the process
        gc.enable()
    return new


def state() -> CliState:
    """The state of the running invocation (made by the app callback)."""
    try:
        return _current.get()
    except LookupError:
        return begin(None)


def workspace(show_secrets: bool = False):
    """The running invocation's Workspace."""
    return state().workspace(show_secrets)


def console() -> Console:
    return state().console


def ends_quickly() -> None:
    """Say the running command changes nothing and leaves nothing open (validate): when it
    is done, the process ends without tearing the interpreter down (see leave_if_quick).
    In deploy.py's process it also runs without the cyclic garbage collector: its objects
    (parsed YAML and schemas, manifests) form few cycles, and reference counting frees them
    as they go; the collector's passes over them cost about 10 ms and freed almost nothing."""
    state().quick_exit = True
    if cli_package.gc_held:
        import gc

        gc.disable()


def leave_if_quick(code) -> None:
    """End the process now with `code` if the command said it may (ends_quickly): output is
    flushed and atexit handlers run, but the objects a run built (parsed schemas, values,
    manifests: hundreds of thousands) are not freed one by one, which takes a tenth of a
    second. Returns (doing nothing) otherwise."""
    try:
        quick = _current.get().quick_exit
    except LookupError:
        return
    if not quick:
        return
    import atexit
    import sys

    lost = False
    if code is None:
        code = 0
    elif not isinstance(code, int):
        try:
            print(code, file=sys.stderr)
        except (OSError, ValueError, AttributeError):
            lost = True
        code = 1
    getattr(atexit, "_run_exitfuncs", lambda: None)()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError, AttributeError) as exc:
            lost = True
            try:
                if stream is sys.stdout:
                    sys.stderr.write(f"error: the output could not be written: {exc}\n")
                    sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
    # output lost (a full disk, a closed pipe) is not a success: 120, as Python's own exit
    # says; a failure keeps its own code (Python's would be 120 too), which says more
    os._exit(code or 120 if lost else code)


def handles_errors(func):
    """Turn DeployerError into one red line and its exit code (2 bad input, 1 failed op)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        out = console()
        try:
            return func(*args, **kwargs)
        except DeployerError as exc:
            out.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            out.error("interrupted")
            raise typer.Exit(130) from None
        finally:
            # once a day, what no run used for a month goes from the caches this one used
            # (now, when everything it used has been touched)
            from deployer.model import diskcache

            diskcache.prune_used()

    return wrapper


def usage(message: str, hint: str | None = None) -> ConfigError:
    """Bad command-line use: one line, exit 2."""
    return ConfigError(message, hint=hint)
