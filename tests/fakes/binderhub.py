"""BinderHub API test double, and a double of mybinder.org's federation redirector.

BinderHub itself (and the Kubernetes builds behind it) cannot run here. ``BinderHubDouble``
serves BinderHub's HTTP API on 127.0.0.1 the way jupyterhub/binderhub does, and launches
servers on a *real* JupyterHub (tests/fakes/jupyterhub_fixture.py) through its REST API with
the ``binder`` service token, the way BinderHub's launcher does: the servers and kernels that
a launch yields are real processes.

Modelled on (jupyterhub/binderhub, main as of 2024-2025): binderhub/builder.py
``BuildHandler`` (event names, order, messages, ``emit``, ``keep_alive``, ``send_error``,
``launch`` with its retry loop), binderhub/launcher.py ``Launcher`` (``unique_name_from_repo``,
user creation, ``users/{name}/servers/`` POST with user_options, following
``users/{name}/server/progress``, ``launch_timeout``, the ready data), binderhub/health.py
``HealthHandler`` and the ``/versions`` handler; the redirector on
jupyterhub/mybinder.org-deploy images/federation-redirect/app.py.

Where the double simplifies (on purpose, for tests):

* No repository is fetched: a ref that is not a 40-hex commit resolves to a deterministic
  fake commit (sha1 of repo and ref). Providers: ``gh``, ``gl``, ``git``.
* No image is built: "built" images are remembered in memory (``built_images``). The build's
  events are the ones repo2docker and BinderHub send (waiting, fetching, building log lines,
  pushing with ``progress``/``layers``, built), spread over ``build_seconds``.
* Keep-alives are the real ``:keepalive`` comment lines, every ``heartbeat`` seconds (the real
  ``KEEPALIVE_INTERVAL`` is 25 s) for the whole life of the stream.
* After ``ready`` (and after a build failure) the real handler keeps the stream open (60 s
  after ready, until the client leaves after a failed build); the double keeps it open for
  ``linger`` seconds (default 60), sending keep-alives, or until the client disconnects.
* ``token_mode="hub"`` (default): the launch token is a JupyterHub API token the double
  creates for the launched user (``POST users/{name}/tokens``, scopes ``TOKEN_SCOPES``), and
  the server is ``jupyterhub-singleuser``; the token opens ``{url}api/...`` and can stop the
  server through the hub API. The real BinderHub (auth disabled, as on mybinder.org) instead
  generates a random token, passes it in user_options and its spawner starts the notebook
  server with ``--ServerApp.token=<token>``; the hub does not know it. ``token_mode="binder"``
  does exactly that (plain ``jupyter-server``): then only ``{url}api/...`` accepts the token,
  and the server is stopped with ``POST {url}api/shutdown``, not through the hub API.
* ``launch_timeout`` defaults to 30 s (the real one: 600 s): a real jupyterhub-singleuser
  needs 4-6 s to start here, more on a loaded machine. Pass a short one (e.g. 2 s) to test
  the ``launch_timeout`` behaviour quickly.
* ``launch_retries`` defaults to 1 (the real ``Launcher.retries`` is 4, with
  ``retry_delay`` 4 s doubling); a retried launch creates a new user, as the real one does.
* After a launch timeout the double stops the pending server (``DELETE users/{name}/server``)
  before sending the failure; the real BinderHub leaves it to the hub's own spawn timeout.
* user_options carry one extra key, ``binderhub_double``, read by the test hub's
  pre_spawn_hook (bad kernel, a server that never listens, plain jupyter-server).
* No rate limit, build token, ban list, launch quota or authentication.

API:
    BinderHubDouble(jupyterhub, version=..., heartbeat=0.5, build_seconds=0.3,
                    launch_timeout=30.0, launch_retries=1, retry_delay=1.0, linger=60.0,
                    token_mode="hub", image_prefix=..., builder_info=None, pod_quota=None,
                    use_registry=True)
        context manager (starts/stops a threading HTTP server); ``.url`` (no trailing slash)
        .behave(pattern, behaviour)   specs matching re.search(pattern, "<provider>/<spec>")
                                      get a behaviour from BEHAVIOURS
        .set_health(service, ok)      force a health check ("JupyterHub API", "Docker
                                      registry", "Pod quota") to ok/failing; None = real check
        .built_images                 set of image names "in the registry"
        .launches                     one dict per launch attempt: spec, user, url, token,
                                      image, outcome ("ready", "failed", "timeout"; builds
                                      that never launch: "build failed", "cut")
        .errors                       tracebacks of unexpected errors (sent as BinderHub
                                      does: a failed event with status_code 500)
    FederationRedirectDouble(hosts, load_balancer="rendezvous", pod_headroom=10,
                             check_timeout=2.0, static_url="https://static.mybinder.org",
                             checks=True)
        context manager, ``.url``; hosts = {name: {url, weight, health, versions, prime?}};
        ``.reasons`` {name: why the last check dropped it ('' when healthy)}

Endpoints of BinderHubDouble: ``GET /`` (HTML), ``GET|HEAD /health``, ``GET /versions``,
``GET /build/<provider>/<spec>`` (text/event-stream; needs ``Accept: text/event-stream`` as
the real handler's ``prepare`` does, else HTTP 400 with a failed event).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import math
import queue
import random
import re
import socket
import string
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

from tests.fakes.http import LocalServer
from tests.fakes.jupyterhub_fixture import DOUBLE_OPTION

DEFAULT_VERSION = "1.0.0-0.dev.git.3983.h383374de"
DEFAULT_BUILDER_INFO = {"build_image": "quay.io/jupyterhub/repo2docker:2024.07.0"}
DEFAULT_IMAGE_PREFIX = "binderhub-double.invalid/r2d-g5b5b759-"
PROVIDERS = ("gh", "gl", "git")
BEHAVIOURS = ("fail_build", "cut_stream", "launch_timeout", "wrong_token", "bad_kernel")
TOKEN_SCOPES = ["access:servers!user", "servers!user"]
# binderhub/launcher.py: random lowercase alphanumeric suffix of 8 characters
SUFFIX_CHARS = string.ascii_lowercase + string.digits
SUFFIX_LENGTH = 8
BUILD_ERROR = ("The command '/bin/sh -c ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir "
               "-r \"requirements.txt\"' returned a non-zero code: 1")

__all__ = ["BinderHubDouble", "FederationRedirectDouble", "BEHAVIOURS", "DEFAULT_VERSION",
           "unique_name_from_repo", "TOKEN_SCOPES"]


class BinderHubDouble:
    """BinderHub's HTTP API on 127.0.0.1, launching on a real JupyterHub."""

    def __init__(self, jupyterhub, *, version: str = DEFAULT_VERSION, heartbeat: float = 0.5,
                 build_seconds: float = 0.3, launch_timeout: float = 30.0,
                 launch_retries: int = 1, retry_delay: float = 1.0, linger: float = 60.0,
                 token_mode: str = "hub", image_prefix: str = DEFAULT_IMAGE_PREFIX,
                 builder_info: dict | None = None, pod_quota: int | None = None,
                 use_registry: bool = True):
        if token_mode not in ("hub", "binder"):
            raise ValueError(f"token_mode must be 'hub' or 'binder', not {token_mode!r}")
        self.hub_url = jupyterhub.url.rstrip("/") + "/"   # BinderHub's hub_url (public)
        self.hub_api_url = jupyterhub.api_url.rstrip("/") + "/"
        self.hub_api_token = jupyterhub.service_token
        self.version = version
        self.heartbeat = heartbeat
        self.build_seconds = build_seconds
        self.launch_timeout = launch_timeout
        self.launch_retries = max(1, launch_retries)
        self.retry_delay = retry_delay
        self.linger = linger
        self.token_mode = token_mode
        self.image_prefix = image_prefix
        self.builder_info = dict(builder_info or DEFAULT_BUILDER_INFO)
        self.pod_quota = pod_quota
        self.use_registry = use_registry
        self.built_images: set[str] = set()
        self.launches: list[dict] = []
        self.errors: list[str] = []  # tracebacks of unexpected errors in build streams
        self._behaviours: list[tuple[re.Pattern, str]] = []
        self._health: dict[str, bool | None] = {}
        self._builds_in_progress = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> "BinderHubDouble":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Serve on a free port of 127.0.0.1 in a background thread."""
        self._server = _serve(self, _BinderHubHandler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="binderhub-double")
        self._thread.start()

    def close(self) -> None:
        """Stop serving; open event streams end at their next step."""
        self._closing.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- test controls -------------------------------------------------------------------
    def behave(self, pattern: str, behaviour: str) -> None:
        """Specs matching `pattern` ("<provider>/<spec>", re.search) get `behaviour`."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; one of {', '.join(BEHAVIOURS)}")
        with self._lock:
            self._behaviours.append((re.compile(pattern), behaviour))

    def set_health(self, service: str, ok: bool | None) -> None:
        """Force the health check `service` to pass/fail; None restores the real check."""
        with self._lock:
            self._health[service] = ok

    def behaviour_for(self, key: str) -> str:
        """The behaviour chosen for "<provider>/<spec>" ('' when none)."""
        with self._lock:
            for pattern, behaviour in reversed(self._behaviours):
                if pattern.search(key):
                    return behaviour
        return ""

    # -- /health, /versions --------------------------------------------------------------
    def health(self) -> tuple[bool, list[dict]]:
        """(overall, checks) as binderhub/health.py HealthHandler.check_all."""
        checks = []
        if self.use_registry:
            checks.append({"service": "Docker registry",
                           "ok": self._forced("Docker registry", lambda: True)})
        checks.append({"service": "JupyterHub API",
                       "ok": self._forced("JupyterHub API", self._hub_healthy)})
        user_pods = self._count_user_servers()
        with self._lock:
            build_pods = self._builds_in_progress
        total = user_pods + build_pods
        quota_ok = total <= self.pod_quota if self.pod_quota is not None else True
        checks.append({"service": "Pod quota", "total_pods": total, "build_pods": build_pods,
                       "user_pods": user_pods, "quota": self.pod_quota,
                       "ok": self._forced("Pod quota", lambda: quota_ok)})
        # the pod quota is a soft check: it does not make the service unhealthy
        overall = all(c["ok"] for c in checks if c["service"] != "Pod quota")
        return overall, checks

    def versions(self) -> dict:
        """The /versions document."""
        return {"builder_info": dict(self.builder_info), "binderhub": self.version}

    def _forced(self, service: str, real) -> bool:
        with self._lock:
            forced = self._health.get(service)
        return bool(real()) if forced is None else forced

    def _hub_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.hub_url + "hub/health", timeout=3) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def _count_user_servers(self) -> int:
        try:
            users = json.loads(self._hub_api("GET", "users?state=active", timeout=5)[1])
            return sum(len(u.get("servers") or {}) for u in users)
        except (OSError, ValueError, _HubError):
            return 0

    # -- hub API ---------------------------------------------------------------------------
    def _hub_api(self, method: str, path: str, body: dict | bytes | None = None,
                 timeout: float = 30) -> tuple[int, bytes]:
        """One JupyterHub API request with the service token: (status, body); _HubError on
        HTTP errors (status attached)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.hub_api_url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.hub_api_token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            raise _HubError(e.code, e.read()) from None


class _HubError(Exception):
    def __init__(self, code: int, body: bytes = b""):
        super().__init__(f"HTTP {code}: {body[:200]!r}")
        self.code = code


class _LaunchError(Exception):
    """A launch failure with BinderHub's message (web.HTTPError(500, message))."""


class _LaunchTimeout(Exception):
    """The spawn did not become ready within launch_timeout."""


class _ClientGone(Exception):
    """The client closed the event stream."""


class _Closing(Exception):
    """The double is shutting down."""


# -- providers -------------------------------------------------------------------------------
@dataclass
class _Repo:
    provider: str
    spec: str
    repo_url: str
    ref: str
    ref_url: str
    resolved_spec: str
    build_slug: str


def _resolve(provider: str, spec: str) -> _Repo:
    """What binderhub/repoproviders.py derives from a spec (refs resolved offline)."""
    if provider == "gh":
        parts = spec.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f'Spec is not of the form "user/repo/ref", provided: "{spec}".')
        user, repo, unresolved = parts
        repo = repo[:-4] if repo.endswith(".git") else repo
        repo_url = f"https://github.com/{user}/{repo}"
        ref = _fake_ref(repo_url, unresolved)
        return _Repo(provider, spec, repo_url, ref, f"{repo_url}/tree/{ref}",
                     f"{user}/{repo}/{ref}", f"{user}-{repo}")
    if provider == "gl":
        quoted, _, unresolved = spec.rpartition("/")
        if not quoted or not unresolved:
            raise ValueError(f'Spec is not of the form "namespace/ref", provided: "{spec}".')
        namespace = unquote(quoted)
        repo_url = f"https://gitlab.com/{namespace}.git"
        ref = _fake_ref(repo_url, unresolved)
        return _Repo(provider, spec, repo_url, ref, f"https://gitlab.com/{namespace}/tree/{ref}",
                     f"{quoted}/{ref}", "-".join(namespace.split("/")))
    if provider == "git":
        quoted, _, unresolved = spec.rpartition("/")
        if not quoted or not unresolved:
            raise ValueError(f'Spec is not of the form "url/ref", provided: "{spec}".')
        repo_url = unquote(quoted)
        ref = _fake_ref(repo_url, unresolved)
        return _Repo(provider, spec, repo_url, ref, repo_url, f"{quoted}/{ref}", repo_url)
    raise KeyError(provider)


def _fake_ref(repo_url: str, ref: str) -> str:
    """A commit id: the ref itself when it is one, else a deterministic fake commit."""
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref
    return hashlib.sha1(f"{repo_url}@{ref}".encode()).hexdigest()


def _escape(s: str) -> str:
    """escapism.escape(s, safe=ascii letters + digits, escape_char='-')."""
    safe = set(string.ascii_letters + string.digits)
    return "".join(c if c in safe else "".join(f"-{b:02X}" for b in c.encode()) for c in s)


def _safe_build_slug(build_slug: str, limit: int, hash_length: int = 6) -> str:
    """binderhub/builder.py _safe_build_slug."""
    digest = hashlib.sha256(build_slug.encode("utf-8")).hexdigest()
    return f"{_escape(build_slug)[:limit - hash_length - 1]}-{digest[:hash_length]}".lower()


def unique_name_from_repo(repo_url: str) -> str:
    """binderhub/launcher.py Launcher.unique_name_from_repo: e.g.
    binder-examples-requirements-x1y2z3w4 for https://github.com/binder-examples/requirements"""
    if "://" not in repo_url and re.match(r".*@.*\:", repo_url):
        path = repo_url.split(":", 1)[1]
    else:
        path = urlsplit(repo_url).path
    prefix = path.strip("/").replace("/", "-").lower()
    if prefix.endswith(".git"):
        prefix = prefix[:-4]
    if len(prefix) > 32:
        prefix = f"{prefix[:15]}-{prefix[-15:]}"
    return f"{prefix}-{''.join(random.choices(SUFFIX_CHARS, k=SUFFIX_LENGTH))}"


def _random_token() -> str:
    """The launch token the real launcher generates (urlsafe base64 of a uuid4)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=\n")


# -- HTTP plumbing ---------------------------------------------------------------------------
class _Server(LocalServer):

    def handle_error(self, request, client_address):  # noqa: D401 - quiet broken pipes
        """Ignore clients that went away."""


def _serve(owner, handler_cls) -> _Server:
    server = _Server(("127.0.0.1", 0), handler_cls)
    server.owner = owner  # type: ignore[attr-defined]
    return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TornadoServer/6.5"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    @property
    def owner(self):
        return self.server.owner  # type: ignore[attr-defined]

    def reply(self, status: int, body: bytes | str | dict, content_type: str = "",
              headers: dict | None = None, head: bool = False) -> None:
        if isinstance(body, dict):
            body, content_type = json.dumps(body), content_type or "application/json"
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Stream:
    """An event stream over chunked transfer encoding, with keep-alives from a thread."""

    def __init__(self, handler: _Handler, heartbeat: float, closing: threading.Event):
        self.handler = handler
        self.closing = closing
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.gone = False
        self.heartbeats = 0
        self.thread = threading.Thread(target=self._keep_alive, args=(heartbeat,), daemon=True)

    def open(self, status: int = 200) -> None:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Access-Control-Allow-Headers", "cache-control")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()

    def start_keep_alive(self) -> None:
        self.thread.start()

    def write(self, text: str) -> None:
        data = text.encode()
        with self.lock:
            if self.gone:
                raise _ClientGone()
            try:
                self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.handler.wfile.flush()
            except OSError:
                self.gone = True
                raise _ClientGone() from None

    def emit(self, event: dict) -> None:
        """BuildHandler.emit: one `data: <json>` event."""
        self.write(f"data: {json.dumps(event)}\n\n")

    def sleep(self, seconds: float) -> None:
        """Wait; stop early when the double closes or the client has gone."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            if self.gone:
                raise _ClientGone()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            if self.closing.wait(min(remaining, 0.1)):
                raise _Closing()

    def _keep_alive(self, interval: float) -> None:
        while not self.done.wait(interval):
            if self.closing.is_set():
                return
            try:
                # lines that start with : are comments, ignored by event consumers
                self.write(":keepalive\n\n")
                self.heartbeats += 1
            except _ClientGone:
                return

    def finish(self) -> None:
        """End the response properly (terminating chunk)."""
        self.done.set()
        with self.lock:
            if not self.gone:
                try:
                    self.handler.wfile.write(b"0\r\n\r\n")
                    self.handler.wfile.flush()
                except OSError:
                    pass
        self.handler.close_connection = True

    def cut(self) -> None:
        """Drop the connection mid-stream (no terminating chunk)."""
        self.done.set()
        with self.lock:
            self.gone = True
            try:
                self.handler.wfile.flush()
                self.handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.handler.close_connection = True


_FRONT_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Binder</title></head>
<body>
<h1>Binder</h1>
<p>Turn a Git repo into a collection of interactive notebooks</p>
<form id="build-form"><input id="repository" name="repository">
<button id="submit" type="submit">launch</button></form>
<p>BinderHub {version} (test double)</p>
</body>
</html>
"""


class _BinderHubHandler(_Handler):
    def do_HEAD(self):  # noqa: N802
        if urlsplit(self.path).path == "/health":
            overall, _ = self.owner.health()
            self.reply(200 if overall else 503, b"", "application/json", head=True)
        else:
            self.reply(404, b"", head=True)

    def do_GET(self):  # noqa: N802
        path = urlsplit(self.path).path
        extra = {"Access-Control-Allow-Headers": "cache-control"}
        if path == "/":
            self.reply(200, _FRONT_PAGE.format(version=self.owner.version), headers=extra)
        elif path == "/health":
            overall, checks = self.owner.health()
            self.reply(200 if overall else 503, {"ok": overall, "checks": checks},
                       headers=extra)
        elif path == "/versions":
            self.reply(200, self.owner.versions(), headers=extra)
        elif path.startswith("/build/"):
            _Build(self).run()
        else:
            self.reply(404, "<html><body><h1>404: Not Found</h1></body></html>",
                       headers=extra)


class _Build:
    """One GET /build/<provider>/<spec>: BuildHandler.get + launch."""

    def __init__(self, handler: _BinderHubHandler):
        self.h = handler
        self.hub: BinderHubDouble = handler.owner
        self.stream = _Stream(handler, self.hub.heartbeat, self.hub._closing)

    def run(self) -> None:
        raw = urlsplit(self.h.path).path  # the raw spec, without tornado's unquoting
        accept = {s.strip().lower() for s in self.h.headers.get("Accept", "").split(",")}
        if "text/event-stream" not in accept:
            # BuildHandler.prepare -> HTTPError(400) -> send_error, which writes a failed event
            self.stream.open(400)
            self._send_error(400, "Missing Accept header: text/event-stream")
            return
        self.stream.open()
        try:
            self._build(raw)
        except (_ClientGone, _Closing):
            self.stream.done.set()
            self.h.close_connection = True
        except Exception:  # noqa: BLE001 - as tornado: an unhandled error becomes send_error(500)
            self.hub.errors.append(traceback.format_exc())
            with contextlib.suppress(_ClientGone):
                self._send_error(500, "Internal Server Error")

    # -- the handler ----------------------------------------------------------------------
    def _build(self, raw: str) -> None:
        s = self.stream
        provider_prefix, _, spec = raw[len("/build/"):].partition("/")
        if provider_prefix not in PROVIDERS:
            self._fail(f"No provider found for prefix {provider_prefix}")
            s.finish()
            return
        s.start_keep_alive()
        spec = spec.rstrip("/")
        try:
            repo = _resolve(provider_prefix, spec)
        except ValueError as e:
            self._fail(str(e))
            s.finish()
            return
        behaviour = self.hub.behaviour_for(f"{provider_prefix}/{spec}")
        self.repo = repo
        self.behaviour = behaviour
        host = self.h.headers.get("Host", f"127.0.0.1:{self.h.server.server_address[1]}")
        self.binder_launch_host = f"http://{host}/"
        self.binder_request = f"v2/{provider_prefix}/{spec}"
        self.binder_persistent_request = f"v2/{provider_prefix}/{repo.resolved_spec}"
        safe_slug = _safe_build_slug(repo.build_slug, limit=255 - len(self.hub.image_prefix))
        self.image_name = (f"{self.hub.image_prefix}{safe_slug}:{repo.ref}"
                           .replace("_", "-").lower())
        with self.hub._lock:
            image_found = self.image_name in self.hub.built_images
        if image_found and behaviour not in ("fail_build", "cut_stream"):
            s.emit({"phase": "built", "imageName": self.image_name,
                    "message": "Found built image, launching...\n"})
            self._launch()
            return
        with self.hub._lock:
            self.hub._builds_in_progress += 1
        try:
            built = self._fake_build()
        finally:
            with self.hub._lock:
                self.hub._builds_in_progress -= 1
        if built:
            self._launch()

    def _fake_build(self) -> bool:
        """The events of a Kubernetes build pod running repo2docker; True when built."""
        s, t, repo, image = self.stream, self.hub.build_seconds, self.repo, self.image_name
        s.emit({"phase": "waiting", "message": "Waiting for build to start...\n"})
        s.sleep(t * 0.2)
        workdir = f"/tmp/repo2docker{uuid.uuid4().hex[:8]}"
        for message in ("Picked Git content provider.\n", f"Cloning into '{workdir}'...\n",
                        f"HEAD is now at {repo.ref[:7]}\n"):
            s.emit({"phase": "fetching", "message": message})
            s.sleep(t * 0.05)
        steps = ["Using PythonBuildPack builder\n",
                 "Step 1/54 : FROM docker.io/library/buildpack-deps:jammy\n",
                 " ---> Using cache\n",
                 "Step 2/54 : ENV DEBIAN_FRONTEND=noninteractive\n",
                 " ---> Using cache\n",
                 "Step 48/54 : RUN ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir "
                 "-r \"requirements.txt\"\n",
                 " ---> Running in 5d1c2ab4e8f0\n"]
        for i, message in enumerate(steps):
            s.emit({"phase": "building", "message": message})
            s.sleep(t * 0.3 / len(steps))
            if self.behaviour == "fail_build" and i == len(steps) - 1:
                s.emit({"phase": "failed", "message": BUILD_ERROR})   # repo2docker's log
                s.emit({"phase": "failed"})                           # the pod's status
                self.hub.launches.append({"spec": self.repo.spec, "outcome": "build failed"})
                self._linger()
                return False
            if self.behaviour == "cut_stream" and i == len(steps) - 1:
                self.hub.launches.append({"spec": self.repo.spec, "outcome": "cut"})
                s.cut()
                return False
        for message in ("Successfully built 3f2a1c9d8e7b\n", f"Successfully tagged {image}\n"):
            s.emit({"phase": "building", "message": message})
        layers = {f"{uuid.uuid4().hex[:12]}": {"status": status, "progressDetail": {},
                                               "id": ""} for status in ("Pushed", "Pushing")}
        for layer_id, layer in layers.items():
            layer["id"] = layer_id
        s.sleep(t * 0.15)
        s.emit({"phase": "pushing", "message": "Pushing image\n",
                "progress": {k: v["status"] for k, v in layers.items()}, "layers": layers})
        s.sleep(t * 0.15)
        s.emit({"phase": "pushing", "message": f"Successfully pushed {image}"})
        with self.hub._lock:
            self.hub.built_images.add(image)
        s.sleep(t * 0.1)
        s.emit({"phase": "built", "message": "Built image, launching...\n", "imageName": image})
        return True

    def _launch(self) -> None:
        """BuildHandler.launch: retries around Launcher.launch, then the ready event."""
        s, hub = self.stream, self.hub
        s.emit({"phase": "launching", "message": "Launching server...\n"})
        retry_delay = hub.retry_delay
        for i in range(hub.launch_retries):
            username = unique_name_from_repo(self.repo.repo_url)
            record = {"spec": self.repo.spec, "user": username, "image": self.image_name,
                      "outcome": "launching"}
            hub.launches.append(record)
            try:
                server_info = self._launcher_launch(username, record)
            except _LaunchError as e:
                if record["outcome"] != "timeout":
                    record["outcome"] = "failed"
                if i + 1 == hub.launch_retries:
                    self._send_error(500, str(e))
                    return
                s.emit({"phase": "launching",
                        "message": f"Launch attempt {i + 1} failed, retrying...\n"})
                s.sleep(retry_delay)
                retry_delay *= 2
                continue
            record.update(outcome="ready", url=server_info["url"], token=server_info["token"])
            break
        event = {"phase": "ready", "message": f"server running at {server_info['url']}\n"}
        event.update(server_info)
        s.emit(event)
        self._linger()

    def _launcher_launch(self, username: str, record: dict) -> dict:
        """Launcher.launch: create the user, start its server, follow the spawn's progress."""
        hub, image = self.hub, self.image_name
        escaped = quote(username, safe="@~")
        try:
            hub._hub_api("POST", f"users/{escaped}", b"")
        except (_HubError, OSError):
            raise _LaunchError(f"Failed to create temporary user for {image}") from None
        token = _random_token()
        if hub.token_mode == "hub" and self.behaviour != "wrong_token":
            try:
                _, body = hub._hub_api("POST", f"users/{escaped}/tokens", {
                    "scopes": TOKEN_SCOPES, "note": f"BinderHub double launch of {image}"})
                token = json.loads(body)["token"]
            except (_HubError, OSError, ValueError, KeyError):
                raise _LaunchError(f"Failed to launch image {image}") from None
        server_token = _random_token() if self.behaviour == "wrong_token" and \
            hub.token_mode == "binder" else token
        data = {"image": image, "repo_url": self.repo.repo_url, "token": token,
                "binder_ref_url": self.repo.ref_url,
                "binder_launch_host": self.binder_launch_host,
                "binder_request": self.binder_request,
                "binder_persistent_request": self.binder_persistent_request,
                "binder_client_ip": self.h.client_address[0]}
        choices = {}
        if hub.token_mode == "binder":
            choices["server"] = "jupyter-server"
        if self.behaviour == "bad_kernel":
            choices["behaviour"] = "bad_kernel"
        elif self.behaviour == "launch_timeout":
            choices["behaviour"] = "hang"
        options = {**data, "token": server_token}
        if choices:
            options[DOUBLE_OPTION] = choices
        try:
            hub._hub_api("POST", f"users/{escaped}/servers/", options)
        except (_HubError, OSError):
            raise _LaunchError(f"Failed to launch image {image}") from None
        try:
            self._follow_progress(escaped)
        except _LaunchTimeout:
            record["outcome"] = "timeout"
            try:
                hub._hub_api("DELETE", f"users/{escaped}/server", timeout=60)
            except (_HubError, OSError):
                pass
            raise _LaunchError(
                f"Image {image} for user {username} took too long to launch") from None
        data["url"] = f"{hub.hub_url}user/{escaped}/"
        return data

    def _follow_progress(self, escaped: str) -> dict:
        """Forward the hub's spawn progress events as `launching` messages until ready
        (_LaunchTimeout after launch_timeout)."""
        hub = self.hub
        deadline = time.monotonic() + hub.launch_timeout
        parts = urlsplit(hub.hub_api_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                          timeout=hub.launch_timeout + 30)
        lines: queue.Queue = queue.Queue()
        sock = None
        try:
            conn.request("GET", f"{parts.path}users/{escaped}/server/progress",
                         headers={"Authorization": f"token {hub.hub_api_token}",
                                  "Accept": "text/event-stream"})
            sock = conn.sock  # kept: getresponse() may drop conn.sock
            response = conn.getresponse()
            if response.status != 200:
                raise _LaunchError(f"Failed to launch image {self.image_name}")

            def read() -> None:
                try:
                    for raw in iter(response.readline, b""):
                        lines.put(raw)
                except Exception as e:  # noqa: BLE001 - handed to the waiting thread
                    lines.put(e)
                lines.put(None)

            threading.Thread(target=read, daemon=True, name="hub-progress").start()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _LaunchTimeout()
                if hub._closing.is_set():
                    raise _Closing()
                try:
                    item = lines.get(timeout=min(remaining, 0.2))
                except queue.Empty:
                    continue
                if item is None:
                    break
                if isinstance(item, Exception):
                    raise _LaunchError(f"Failed to launch image {self.image_name}")
                line = item.decode("utf8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line.split(":", 1)[1])
                self.stream.emit({"phase": "launching",
                                  "message": event.get("message", "") + "\n"})
                if event.get("ready"):
                    return event
                if event.get("failed"):
                    raise _LaunchError(event.get("message", "unknown error"))
        except OSError as e:
            raise _LaunchError(f"Failed to launch image {self.image_name}") from e
        finally:
            if sock is not None:  # unblocks the reader thread
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            conn.close()
        raise _LaunchError(f"Image {self.image_name} for user {unquote(escaped)} failed to launch")

    # -- endings ---------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        """BuildHandler.fail."""
        self.stream.emit({"phase": "failed", "message": message + "\n"})

    def _send_error(self, status_code: int, message: str) -> None:
        """BuildHandler.send_error: a failed event with the status code, then finish."""
        self.stream.write("data: " + json.dumps(
            {"phase": "failed", "status_code": status_code, "message": message + "\n"}) + "\n\n")
        self.stream.finish()

    def _linger(self) -> None:
        """Keep the stream open (with keep-alives) as the real handler does, then end it."""
        try:
            self.stream.sleep(self.hub.linger)
        finally:
            self.stream.finish()


# -- the federation redirector -------------------------------------------------------------
class FederationRedirectDouble:
    """mybinder.org's federation-redirect app: /active_hosts, /build/* redirects, and
    everything else (/health, /versions, ...) proxied to the prime host.

    The real app health-checks every host in the background (every 10 s; 300 s after a
    failure); the double checks all hosts when /active_hosts or /build/* is requested, so a
    test sees a change at once. Checks: /versions first (the prime's versions are the
    reference, a member with other versions is dropped), then /health (any failing check
    drops a member; the pod quota also when total_pods + pod_headroom >= quota).
    ``checks=False`` serves every configured host as active (the real app's state before its
    first round of checks). Only URLs on 127.0.0.1/localhost are ever contacted: any other
    host counts as unreachable (proxied paths then answer 500, as the real ProxyHandler does
    for connection errors)."""

    def __init__(self, hosts: dict, *, load_balancer: str = "rendezvous",
                 pod_headroom: int = 10, check_timeout: float = 2.0,
                 static_url: str = "https://static.mybinder.org", checks: bool = True):
        self.hosts = {name: {**cfg, "url": cfg["url"].rstrip("/")}
                      for name, cfg in hosts.items() if cfg is not None}
        if not any(cfg.get("prime") for cfg in self.hosts.values()):
            raise ValueError("No prime host configured!")
        self.load_balancer = load_balancer
        self.pod_headroom = pod_headroom
        self.check_timeout = check_timeout
        self.static_url = static_url.rstrip("/")
        self.checks = checks
        self.prime_versions = None
        self.reasons: dict[str, str] = {}
        self._server: _Server | None = None
        self.url = ""

    def __enter__(self) -> "FederationRedirectDouble":
        self._server = _serve(self, _RedirectHandler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="federation-redirect-double").start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def prime_url(self) -> str:
        return next(cfg["url"] for cfg in self.hosts.values() if cfg.get("prime"))

    def active_hosts(self) -> dict:
        """{name: host config} of the members that pass the health check (prime first)."""
        names = sorted(self.hosts, key=lambda n: not self.hosts[n].get("prime"))
        if not self.checks:
            return {name: self.hosts[name] for name in names}
        active = {}
        for name in names:
            reason = self._check(name)
            self.reasons[name] = reason
            if not reason:
                active[name] = self.hosts[name]
        return active

    def _check(self, name: str) -> str:
        """'' when healthy, else the reason (as app.py health_check)."""
        cfg = self.hosts[name]
        try:
            versions = json.loads(_fetch(cfg["versions"], self.check_timeout))
            if cfg.get("prime"):
                self.prime_versions = versions
            reference = self.prime_versions if self.prime_versions is not None else versions
            if versions != reference:
                return f"{name} has different versions ({versions}) than prime ({reference})"
            health = json.loads(_fetch(cfg["health"], self.check_timeout))
            for check in health["checks"]:
                if not check["ok"]:
                    return f"{name} unhealthy: {check}"
                if check["service"] == "Pod quota" and check.get("quota") is not None and \
                        self.pod_headroom and \
                        check["total_pods"] + self.pod_headroom >= check["quota"]:
                    return (f"{name} is approaching pod quota: "
                            f"{check['total_pods']}/{check['quota']}")
        except Exception as e:  # noqa: BLE001 - any failure makes the host unhealthy
            return f"{name} is unhealthy: {e}"
        return ""

    def pick(self, path: str, cookie_url: str | None) -> str:
        """The member URL a /build/ request is redirected to (RedirectHandler)."""
        hosts = self.active_hosts() or {n: c for n, c in self.hosts.items() if c.get("prime")}
        names = [n for n, c in hosts.items() if c["weight"] > 0]
        by_url = {hosts[n]["url"]: n for n in names}
        if cookie_url in by_url:
            return cookie_url
        if self.load_balancer == "rendezvous":
            name = _rendezvous_rank([(n, hosts[n]["weight"]) for n in names],
                                    _cache_key(path))[0]
        else:
            name = random.choices(names, [hosts[n]["weight"] for n in names])[0]
        return hosts[name]["url"]


def _fetch(url: str, timeout: float) -> bytes:
    _loopback_only(url)
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _loopback_only(url: str) -> None:
    """Tests may reach 127.0.0.1 only: any other host is unreachable for the doubles."""
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"{url}: not on 127.0.0.1 (the test double contacts nothing else)")


def _rendezvous_rank(buckets, key) -> list:
    """app.py rendezvous_rank: weighted rendezvous hashing, highest score first."""
    ranking = []
    for bucket, weight in buckets:
        digest = hashlib.blake2b(b"%s-%s" % (str(key).encode(), str(bucket).encode()),
                                 digest_size=8).digest()
        h = int.from_bytes(digest, "big")
        score = weight * (1.0 / -math.log(h / 0xFFFFFFFFFFFFFFFF)) if 0 < h < \
            0xFFFFFFFFFFFFFFFF else 0.0
        ranking.append((score, bucket))
    return [b for (_, b) in sorted(ranking, reverse=True)]


def _cache_key(uri: str) -> str:
    """app.py cache_key: all refs of a GitHub repo go to the same member."""
    key = uri.lower()
    if key.startswith("/build/gh"):
        key = key.rsplit("/", maxsplit=1)[0]
    return key


class _RedirectHandler(_Handler):
    def do_GET(self):  # noqa: N802
        owner: FederationRedirectDouble = self.owner
        parts = urlsplit(self.path)
        if parts.path == "/active_hosts":
            self.reply(200, {"active_hosts": owner.active_hosts()})
        elif parts.path.startswith("/build/"):
            cookies = dict(c.strip().split("=", 1) for c in
                           self.headers.get("Cookie", "").split(";") if "=" in c)
            target = owner.pick(parts.path, unquote(cookies.get("host", "").strip('"')) or None)
            self.reply(307, b"", headers={
                "Location": target + self.path, "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Headers": "cache-control",
                "Set-Cookie": f'host="{target}"; Path={parts.path}'})
        elif parts.path in ("/badge_logo.svg", "/badge.svg", "/assets/images/badge.svg"):
            name = "badge_logo.svg" if parts.path == "/badge_logo.svg" else "badge.svg"
            self.reply(301, b"", headers={"Location": f"{owner.static_url}/{name}"})
        else:
            self._proxy(owner.prime_url + self.path)

    def _proxy(self, target: str) -> None:
        """ProxyHandler: GET the prime host, pass status, headers and body through."""
        host = self.headers.get("Host", "")
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        if host:
            headers.setdefault("X-Forwarded-Host", host)
            headers["Origin"] = f"https://{host}"
        headers["X-Binder-Launch-Host"] = "https://mybinder.org/"
        req = urllib.request.Request(target, headers=headers, method="GET")
        try:
            _loopback_only(target)
            with urllib.request.urlopen(req, timeout=30) as r:
                status, reason, got, body = r.status, r.reason, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, reason, got, body = e.code, e.reason, e.headers, e.read()
        except OSError as e:
            self.reply(500, str(e), "text/plain")
            return
        skip = {"content-length", "transfer-encoding", "content-encoding", "connection"}
        self.send_response(status, reason)
        for key, value in got.items():
            if key.lower() not in skip:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
