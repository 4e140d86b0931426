"""A real JupyterHub for tests: hub + configurable-http-proxy + real single-user servers.

This is not a test double: it is JupyterHub itself (PyPI ``jupyterhub``), with its real
proxy (npm ``configurable-http-proxy``, installed by ``scripts/bootstrap --dev`` into
``.tools/node``), started on 127.0.0.1 in a private directory. Single-user servers are real
``jupyterhub-singleuser`` (jupyter-server) processes started by the hub's
``SimpleLocalProcessSpawner``; kernels are real ipykernel processes. The BinderHub API test
double (tests/fakes/binderhub.py) launches servers by calling this hub's REST API with the
``binder`` service's token, exactly as BinderHub's launcher does.

Enable in a test module (or tests/conftest.py) with::

    from tests.fakes.jupyterhub_fixture import jupyterhub  # noqa: F401  (session fixture)

API:
    jupyterhub                      session fixture (per xdist worker): a running ``JupyterHub``
    running_jupyterhub(root)        context manager: start a hub in ``root``, yield ``JupyterHub``;
                                    on exit stop it and assert that no process is left
    JupyterHub.url                  public (proxy) URL, e.g. http://127.0.0.1:PORT (no slash)
    JupyterHub.api_url              f"{url}/hub/api"
    JupyterHub.service_token        API token of the ``binder`` service (role ``binder``: BINDER_SCOPES)
    JupyterHub.api(method, path)    a ``requests`` call to the hub API with the service token
    JupyterHub.servers()            running/pending servers: [{user, name, ready, pending, url}]
    JupyterHub.processes()          live processes that belong to this hub (see ``leftovers``)
    JupyterHub.log()                the hub's (and proxy's) log so far
    DOUBLE_OPTION                   key in a spawn request's user_options read by this hub's
                                    pre_spawn_hook: {"behaviour": "bad_kernel"|"hang",
                                    "server": "jupyterhub-singleuser"|"jupyter-server"}

What the hub's configuration adds for the BinderHub double (pre_spawn_hook, only when a spawn
request's user_options carry ``DOUBLE_OPTION``; BinderHub sends user_options too, see
binderhub/launcher.py):

* ``behaviour: "bad_kernel"`` puts a kernelspec dir first on the server's JUPYTER_PATH whose
  ``python3`` kernel's argv names a missing executable: ``POST /api/kernels`` then fails
  (HTTP 500), as in an image whose Python environment is broken.
* ``behaviour: "hang"`` replaces the server command with a process that never listens, so the
  spawn stays pending until it is stopped (or the hub's ``http_timeout`` ends it).
* ``server: "jupyter-server"`` starts plain ``jupyter-server`` with
  ``--ServerApp.token=<user_options["token"]>`` instead of ``jupyterhub-singleuser``: what
  BinderHub's own ``BinderSpawnerMixin.get_args`` does when ``auth_enabled`` is false
  (mybinder.org), so the launch token is the server's token and unknown to the hub.

Teardown: SIGTERM to the hub (it stops its servers and the proxy), wait, SIGKILL to its whole
process group (it runs in its own session), then every process whose command line contains
the private directory or one of the hub's ports, or whose environment carries this hub's
marker variable (set for single-user servers, inherited by kernels), is reported and killed.
A non-empty report fails the teardown.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHP = ROOT / ".tools" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.prefix) / "bin"
MARKER = "BINDERHUB_DOUBLE_HUB_ROOT"
DOUBLE_OPTION = "binderhub_double"
SERVICE = "binder"
# What BinderHub's chart grants its service (servers, admin:users), plus what the double's
# extra steps use: creating tokens for launched users, listing users and their servers.
BINDER_SCOPES = ["servers", "admin:users", "tokens", "list:users", "read:users",
                 "read:servers"]

__all__ = ["jupyterhub", "running_jupyterhub", "JupyterHub", "DOUBLE_OPTION", "leftovers"]


@pytest.fixture(scope="session")
def jupyterhub(tmp_path_factory) -> Iterator["JupyterHub"]:
    """A real JupyterHub on 127.0.0.1 for the whole session (one per xdist worker)."""
    with running_jupyterhub(tmp_path_factory.mktemp("jupyterhub")) as hub:
        yield hub


@dataclass
class JupyterHub:
    """A running hub: its public URL, API URL, the binder service's token and helpers."""

    url: str
    api_url: str
    service_token: str
    root: Path
    ports: tuple[int, ...]
    pid: int
    _log: Path = field(repr=False, default=Path("/dev/null"))

    def api(self, method: str, path: str, **kwargs):
        """Call the hub API (`path` relative to api_url) with the service token."""
        import requests

        headers = {"Authorization": f"token {self.service_token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.api_url}/{path.lstrip('/')}", headers=headers,
                                timeout=kwargs.pop("timeout", 30), **kwargs)

    def servers(self) -> list[dict]:
        """Servers the hub has running or pending, as [{user, name, ready, pending, url}]."""
        response = self.api("GET", "users?state=active")
        response.raise_for_status()
        return [{"user": user["name"], "name": name, "ready": server.get("ready"),
                 "pending": server.get("pending"), "url": server.get("url")}
                for user in response.json() for name, server in user.get("servers", {}).items()]

    def processes(self) -> list[tuple[int, str]]:
        """Live processes that belong to this hub: (pid, command line)."""
        return leftovers(self.root, self.ports, exclude={os.getpid()})

    def log(self) -> str:
        """The hub's and the proxy's output so far."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""


@contextlib.contextmanager
def running_jupyterhub(root: Path, *, startup_timeout: float = 60.0) -> Iterator[JupyterHub]:
    """Start JupyterHub in `root` (config, sqlite db, cookie secret, homes, logs); yield it.

    On exit the hub is stopped and no process of it may remain (AssertionError otherwise,
    after killing what was left)."""
    if not os.access(CHP, os.X_OK):
        raise RuntimeError(f"{CHP} is missing: run scripts/bootstrap --dev "
                           "(installs configurable-http-proxy from npm)")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    proxy_port, hub_port, api_port = _free_ports(3)
    token = secrets.token_hex(32)
    _write_config(root, proxy_port=proxy_port, hub_port=hub_port, api_port=api_port,
                  token=token)
    log_path = root / "jupyterhub.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}
    env.update({"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32), MARKER: str(root)})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(root / "jupyterhub_config.py")],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{proxy_port}"
    hub = JupyterHub(url=url, api_url=f"{url}/hub/api", service_token=token, root=root,
                     ports=(proxy_port, hub_port, api_port), pid=proc.pid, _log=log_path)
    try:
        _wait_for_api(hub, proc, startup_timeout)
        yield hub
    finally:
        _stop(hub, proc)


def leftovers(root: Path, ports, exclude=()) -> list[tuple[int, str]]:
    """Processes whose command line names `root` or one of `ports`, or whose environment
    carries `root` as the hub marker: (pid, command line)."""
    port_re = re.compile(r"(?:127\.0\.0\.1:|localhost:|--port[= ])(?:%s)(?!\d)"
                         % "|".join(str(p) for p in ports))
    marker = f"{MARKER}={root}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # a zombie has exited; its parent only has to reap it
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except PermissionError:
                environ = []
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        if str(root) in cmdline or port_re.search(cmdline) or marker in environ:
            found.append((int(entry), cmdline))
    return found


# -- helpers ---------------------------------------------------------------------------------
def _free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _write_config(root: Path, *, proxy_port: int, hub_port: int, api_port: int,
                  token: str) -> None:
    """jupyterhub_config.py, the cookie secret (mode 0600) and the broken kernelspec dir."""
    secret = root / "jupyterhub_cookie_secret"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    bad = root / "bad-kernel" / "kernels" / "python3"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "kernel.json").write_text(json.dumps({
        "argv": [str(root / "bad-kernel" / "missing-python"), "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python",
        "metadata": {"debugger": True}}))
    (root / "home").mkdir(exist_ok=True)
    settings = {
        "root": str(root), "proxy_port": proxy_port, "hub_port": hub_port,
        "api_port": api_port, "chp": str(CHP), "venv_bin": str(VENV_BIN),
        "python": str(VENV_BIN / "python"), "token": token, "service": SERVICE,
        "scopes": BINDER_SCOPES, "marker": MARKER, "option": DOUBLE_OPTION,
        "bad_kernel_path": str(root / "bad-kernel"),
        "path": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    (root / "jupyterhub_config.py").write_text(
        "# Written by tests/fakes/jupyterhub_fixture.py\n"
        f"S = {settings!r}\n" + _CONFIG_BODY)


_CONFIG_BODY = '''
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = f"http://127.0.0.1:{S['proxy_port']}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = S["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{S['api_port']}"
c.ConfigurableHTTPProxy.command = [S["chp"]]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = f"sqlite:///{S['root']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{S['root']}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{S['root']}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.spawner_class = "simple"
# POST .../server answers 202 at once instead of waiting up to 10 s for the spawn: BinderHub's
# launcher follows the progress stream after either answer, so only the waiting changes.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.services = [{"name": S["service"], "api_token": S["token"]}]
c.JupyterHub.load_roles = [
    {"name": S["service"], "scopes": S["scopes"], "services": [S["service"]]},
]
c.SimpleLocalProcessSpawner.home_dir_template = S["root"] + "/home/{username}"
c.Spawner.cmd = [S["venv_bin"] + "/jupyterhub-singleuser"]
# tests (and CI) run as root, which jupyter-server refuses without this
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.environment = {"PATH": S["path"], S["marker"]: S["root"]}
c.Spawner.start_timeout = 30
c.Spawner.http_timeout = 30
c.Spawner.poll_interval = 2
c.Spawner.interrupt_timeout = 5
c.Spawner.term_timeout = 3


def _binderhub_double_hook(spawner):
    """Apply the BinderHub double's per-launch choices carried in user_options."""
    opts = (spawner.user_options or {}).get(S["option"]) or {}
    env = dict(spawner.environment)
    if opts.get("behaviour") == "bad_kernel":
        env["JUPYTER_PATH"] = S["bad_kernel_path"]
    spawner.environment = env
    if opts.get("server") == "jupyter-server":
        # BinderSpawnerMixin.get_args with auth_enabled=False: the launch token is the
        # server's own token (--ServerApp.token), the hub does not know it.
        from jupyterhub.utils import random_port

        spawner.port = random_port()
        spawner.cmd = [S["venv_bin"] + "/jupyter-server"]
        spawner.args = [
            "--ip=127.0.0.1", f"--port={spawner.port}",
            f"--ServerApp.base_url={spawner.server.base_url}",
            f"--ServerApp.token={spawner.user_options['token']}",
            "--ServerApp.trust_xheaders=True", "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
        ]
    if opts.get("behaviour") == "hang":
        # a server that never listens: the spawn stays pending
        spawner.cmd = [S["python"], "-c", "import time; time.sleep(3600)"]
        spawner.args = []


c.Spawner.pre_spawn_hook = _binderhub_double_hook
'''


def _wait_for_api(hub: JupyterHub, proc: subprocess.Popen, timeout: float) -> None:
    """Until GET {api_url}/ answers through the proxy and the service token is accepted."""
    import requests

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyterhub exited with {proc.returncode}:\n"
                               + hub.log()[-4000:])
        try:
            if requests.get(f"{hub.api_url}/", timeout=2).status_code == 200 and \
                    hub.api("GET", "user", timeout=5).status_code == 200:
                return
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"jupyterhub API did not answer within {timeout:.0f}s ({last}):\n"
                       + hub.log()[-4000:])


def _stop(hub: JupyterHub, proc: subprocess.Popen) -> None:
    """SIGTERM, wait, SIGKILL the process group, then find and kill any leftover."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    # a kernel whose server was just stopped notices within ~1 s (ipykernel polls its parent)
    deadline = time.monotonic() + 5
    left = leftovers(hub.root, hub.ports, exclude={os.getpid()})
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers(hub.root, hub.ports, exclude={os.getpid()})
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    assert not left, "processes left after stopping JupyterHub:\n" + "\n".join(
        f"  {pid}: {cmd}" for pid, cmd in left)
