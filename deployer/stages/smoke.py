"""Smoke tests: prove a member serves users. HTTP checks of its public endpoints, then launch
the repos config/federation.yaml lists through the BinderHub API, run code in each launched
server's kernel, shut the server down, and time every phase.

Used after every deploy (the pipeline's gate: a failure rolls the deploy back) and on demand
(`deploy.py smoke MEMBER`).
"""
from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable
from urllib.parse import quote, urlsplit

from deployer.errors import DeployError
from deployer.model.federation import Federation, Member

PHASES = ("waiting", "fetching", "building", "pushing", "built", "launching", "ready")
USER_AGENT = "binderhub-federation-deployer-smoke"


@dataclass
class Check:
    """One HTTP check."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Launch:
    """One repo launched through the BinderHub API."""

    repo: str
    ok: bool = False
    phases: dict[str, float] = field(default_factory=dict)  # first seen, seconds from start
    steps: dict[str, float] = field(default_factory=dict)   # api / kernel / execute / stop
    total: float = 0.0
    attempts: int = 0
    heartbeats: int = 0
    image: str = ""
    detail: str = ""


@dataclass
class Report:
    """The smoke run of one member."""

    member: str
    started: str
    checks: list[Check] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and all(launch.ok for launch in self.launches)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok] + \
            [f"launch {launch.repo}: {launch.detail}" for launch in self.launches if not launch.ok]

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def rows(self) -> list[list[str]]:
        """Table rows: checks, then one row per launch with its phase timings."""
        rows = [[c.name, "ok" if c.ok else "FAILED", f"{c.seconds:.2f}", c.detail]
                for c in self.checks]
        for launch in self.launches:
            timing = " ".join(f"{p}={launch.phases[p]:.1f}" for p in PHASES
                              if p in launch.phases)
            steps = " ".join(f"{k}={v:.1f}" for k, v in launch.steps.items())
            rows.append([f"launch {launch.repo}", "ok" if launch.ok else "FAILED",
                         f"{launch.total:.2f}",
                         " | ".join(x for x in (timing, steps, launch.detail) if x)])
        return rows

    def markdown(self) -> str:
        """A GitHub step summary."""
        icon = "✅" if self.ok else "❌"
        lines = [f"### {icon} Smoke tests: {self.member}", "",
                 "| check | outcome | seconds | detail |", "|---|---|---|---|"]
        for check in self.checks:
            lines.append(f"| {check.name} | {'ok' if check.ok else '**failed**'} | "
                         f"{check.seconds:.2f} | {_md(check.detail)} |")
        if self.launches:
            lines += ["", "| repo | outcome | " + " | ".join(PHASES) + " | total |",
                      "|---|---|" + "---|" * (len(PHASES) + 1)]
            for launch in self.launches:
                cells = [f"{launch.phases[p]:.1f}" if p in launch.phases else "" for p in PHASES]
                lines.append(f"| `{launch.repo}` | {'ok' if launch.ok else '**failed**'} | "
                             + " | ".join(cells) + f" | {launch.total:.1f} |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Endpoints:
    """Where the smoke run reaches the member."""

    binder: str
    hub: str
    static: str
    federation: str | None

    @classmethod
    def of(cls, member: Member) -> "Endpoints":
        urls = member.smoke_urls
        d = member.domains

        def pick(key: str, domain: str | None) -> str | None:
            if key in urls:
                return urls[key].rstrip("/")
            return f"https://{domain}" if domain else None

        return cls(pick("binder", d.binder), pick("hub", d.hub), pick("static", d.static),
                   pick("federation", d.federation))


def run(federation: Federation, member: Member, *, repos: list[str] | None = None,
        timeout: float | None = None, log: Callable[[str], None] = print,
        attempts: int = 3, build_spec: str | None = None, cross_member: bool = True) -> Report:
    """Checks, then launches (each configured repo, plus `build_spec` if given)."""
    import requests

    report = Report(member.name, datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))
    ends = Endpoints.of(member)
    timeout = timeout or member.smoke_timeout
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    try:
        report.checks = _checks(session, federation, member, ends, attempts, cross_member)
        for check in report.checks:
            log(f"  {'ok    ' if check.ok else 'FAILED'} {check.name} ({check.seconds:.2f}s)"
                + (f": {check.detail}" if check.detail else ""))
        specs = list(member.smoke_repos if repos is None else repos)
        if build_spec:
            specs.append(build_spec)
        if report.checks and not report.checks[0].ok:
            specs = []  # the front page is down: launching cannot work
        for spec in specs:
            launch = launch_repo(session, ends, spec, member, timeout=timeout, log=log,
                                 attempts=attempts)
            report.launches.append(launch)
            if not launch.ok and launch.detail.startswith("build failed"):
                break  # a repo that fails to build fails the run at once
    finally:
        session.close()
    return report


def gate(federation: Federation, member: Member, *, timeout: float, log) -> Report:
    """The pipeline's post-deploy gate: a failed run is a DeployError (and a rollback).
    It checks this member only: while a federation is upgraded member by member, versions
    differ between members for a while, and that must not roll a healthy member back
    (`deploy.py smoke` runs the cross-member check)."""
    report = run(federation, member, timeout=timeout, log=log, cross_member=False)
    if not report.ok:
        raise DeployError("smoke tests failed: " + "; ".join(report.failures()))
    return report


# -- HTTP checks -----------------------------------------------------------------------------
def _checks(session, federation: Federation, member: Member, ends: Endpoints,
            attempts: int, cross_member: bool = True) -> list[Check]:
    checks = [
        _http(session, "binder front page", f"{ends.binder}/", attempts),
        _health(session, ends, attempts),
        _versions(session, ends, attempts),
        _http(session, "hub health", f"{ends.hub}/hub/health", attempts),
        _http(session, "static badge", f"{ends.static}/badge_logo.svg", attempts,
              expect_type="svg"),
    ]
    if ends.federation:
        checks.append(_redirector(session, federation, member, ends, attempts))
    if cross_member and member.in_federation and member.active:
        checks.append(_same_versions(session, federation, member, checks[2], attempts))
    return checks


def _get(session, url: str, attempts: int, timeout: float = 15):
    """GET with retries and backoff for transient failures (connection errors, 5xx)."""
    import requests

    last: Exception | None = None
    for attempt in range(attempts):
        try:
            response = session.get(url, timeout=timeout)
            if response.status_code < 500 or attempt == attempts - 1:
                return response
        except requests.RequestException as exc:
            last = exc
            if attempt == attempts - 1:
                raise
        time.sleep(min(0.2 * 2 ** attempt, 3))
    raise last or RuntimeError(url)


def _http(session, name: str, url: str, attempts: int, expect_type: str = "") -> Check:
    start = time.perf_counter()
    try:
        response = _get(session, url, attempts)
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        return Check(name, False, time.perf_counter() - start, f"{url}: {_short(exc)}")
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        return Check(name, False, seconds, f"{url}: HTTP {response.status_code}")
    if expect_type and expect_type not in response.headers.get("Content-Type", ""):
        return Check(name, False, seconds, f"{url}: content type "
                                           f"{response.headers.get('Content-Type')!r}")
    return Check(name, True, seconds, f"HTTP {response.status_code}")


def _health(session, ends: Endpoints, attempts: int) -> Check:
    start = time.perf_counter()
    url = f"{ends.binder}/health"
    try:
        response = _get(session, url, attempts)
        data = response.json()
    except Exception as exc:  # noqa: BLE001
        return Check("binder health", False, time.perf_counter() - start, f"{url}: {_short(exc)}")
    failing = [c.get("service", "?") for c in data.get("checks", []) if not c.get("ok", False)]
    ok = response.status_code == 200 and data.get("ok") is True and not failing
    detail = "all checks pass" if ok else f"HTTP {response.status_code}; failing: " + (
        ", ".join(failing) or "(none named)")
    return Check("binder health", ok, time.perf_counter() - start, detail)


def _versions(session, ends: Endpoints, attempts: int) -> Check:
    start = time.perf_counter()
    url = f"{ends.binder}/versions"
    try:
        data = _get(session, url, attempts).json()
        version = data["binderhub"]
    except Exception as exc:  # noqa: BLE001
        return Check("binder versions", False, time.perf_counter() - start,
                     f"{url}: {_short(exc)}")
    return Check("binder versions", True, time.perf_counter() - start, str(version))


def _redirector(session, federation: Federation, member: Member, ends: Endpoints,
                attempts: int) -> Check:
    """The redirector's members and weights must be what config/federation.yaml says."""
    from deployer.model.values import generated_layer

    start = time.perf_counter()
    url = f"{ends.federation}/active_hosts"
    expected = generated_layer(federation, member).data["federationRedirect"]["hosts"]
    try:
        data = _get(session, url, attempts).json()
    except Exception as exc:  # noqa: BLE001
        return Check("federation redirector", False, time.perf_counter() - start,
                     f"{url}: {_short(exc)}")
    served = _redirector_hosts(data)
    problems = []
    for name, host in expected.items():
        got = served.get(name)
        if got is None:
            if host["weight"] > 0:
                problems.append(f"{name} is not in rotation (failing its health or version "
                                "checks, or not configured)")
        elif got.get("weight") is not None and got["weight"] != host["weight"]:
            problems.append(f"{name} weight {got['weight']}, federation data says "
                            f"{host['weight']}")
    problems += [f"{name} is not a member" for name in served if name not in expected]
    return Check("federation redirector", not problems, time.perf_counter() - start,
                 "; ".join(problems) or f"{len(served)} hosts as configured")


def _redirector_hosts(data) -> dict[str, dict]:
    """name -> {weight} from /active_hosts (a map of hosts, or a list of names/records)."""
    hosts = data.get("active_hosts", data) if isinstance(data, dict) else data
    if isinstance(hosts, dict):
        return {name: (value if isinstance(value, dict) else {"weight": value})
                for name, value in hosts.items()}
    out = {}
    for item in hosts or []:
        if isinstance(item, dict):
            out[item.get("name") or item.get("host")] = item
        else:
            out[str(item)] = {}
    return out


def _same_versions(session, federation: Federation, member: Member, own: Check,
                   attempts: int) -> Check:
    """Every active member must run the same BinderHub (the redirector drops the others)."""
    start = time.perf_counter()
    versions = {member.name: own.detail if own.ok else None}
    for other in federation.members.values():
        if other.name == member.name or not (other.in_federation and other.active):
            continue
        try:
            versions[other.name] = _get(session, f"{Endpoints.of(other).binder}/versions",
                                        attempts).json()["binderhub"]
        except Exception as exc:  # noqa: BLE001
            versions[other.name] = f"unreachable ({_short(exc)})"
    distinct = {v for v in versions.values() if v}
    if len(distinct) <= 1:
        return Check("same BinderHub everywhere", True, time.perf_counter() - start,
                     next(iter(distinct), "?"))
    listing = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    return Check("same BinderHub everywhere", False, time.perf_counter() - start,
                 f"version mismatch: {listing}")


# -- launches --------------------------------------------------------------------------------
def launch_repo(session, ends: Endpoints, spec: str, member: Member, *, timeout: float,
                log: Callable[[str], None], attempts: int = 3) -> Launch:
    """Build and launch `spec`, run code in its kernel, stop the server. Transient failures
    (connection errors, a stream that ends early) are retried; a failed build is not."""
    launch = Launch(spec)
    start = time.perf_counter()
    deadline = start + timeout
    for attempt in range(1, attempts + 1):
        launch.attempts = attempt
        launch.phases, launch.steps = {}, {}
        try:
            outcome, ready = _stream(session, ends, spec, launch, time.perf_counter(), deadline)
        except Exception as exc:  # noqa: BLE001 - transient: retried below
            outcome, ready = f"launch request failed: {_short(exc)}", {}
        if outcome == "ready":
            try:
                _use_server(session, ready, member, launch)
                launch.ok = True
            except DeployError as exc:
                launch.detail = exc.message
            except Exception as exc:  # noqa: BLE001 - a broken server is a failed launch
                launch.detail = f"talking to the server failed: {type(exc).__name__}: " \
                                f"{_short(exc)}"
            finally:
                _stop_server(session, ready, launch)
            break
        launch.detail = outcome
        if outcome.startswith(("build failed", "launch failed")) or \
                time.perf_counter() >= deadline:
            break
        log(f"  launch {spec}: {outcome}; retrying ({attempt}/{attempts})")
        time.sleep(min(2 ** attempt * 0.5, 10))
    launch.total = time.perf_counter() - start
    phases = " ".join(f"{p} {launch.phases[p]:.1f}s" for p in PHASES if p in launch.phases)
    log(f"  {'ok    ' if launch.ok else 'FAILED'} launch {spec} ({launch.total:.1f}s: {phases})"
        + ("" if launch.ok else f": {launch.detail}"))
    return launch


def _stream(session, ends: Endpoints, spec: str, launch: Launch, start: float,
            deadline: float) -> tuple[str, dict]:
    """Follow GET /build/<spec> (an event stream). Returns ("ready", event) or a reason."""
    import requests

    url = f"{ends.binder}/build/{quote(spec, safe='/:@')}"
    try:
        response = session.get(url, stream=True, headers={"Accept": "text/event-stream"},
                               timeout=(10, max(5.0, min(120.0, deadline - time.perf_counter()))))
    except requests.RequestException as exc:
        return f"cannot reach {url}: {_short(exc)}", {}
    if response.status_code != 200:
        response.close()
        return f"{url}: HTTP {response.status_code}", {}
    data: list[str] = []
    try:
        for raw in response.iter_lines(decode_unicode=True):
            if time.perf_counter() > deadline:
                return f"no ready event within {deadline - start:.0f}s", {}
            line = raw if isinstance(raw, str) else raw.decode()
            if line.startswith(":"):
                launch.heartbeats += 1
                continue
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
                continue
            if line or not data:
                continue
            event = json.loads("\n".join(data))
            data = []
            phase = event.get("phase", "")
            launch.phases.setdefault(phase, round(time.perf_counter() - start, 3))
            if event.get("imageName"):
                launch.image = event["imageName"]
            if phase == "failed":
                message = (event.get("message") or "").strip()
                stage = "launch failed" if "launching" in launch.phases else "build failed"
                return f"{stage}: {message}", {}
            if phase == "ready":
                return "ready", event
    except requests.exceptions.ChunkedEncodingError:
        return f"event stream ended after {_last(launch)} without ready or failed " \
               "(connection closed)", {}
    except requests.RequestException as exc:
        return f"event stream broke after {_last(launch)}: {_short(exc)}", {}
    except json.JSONDecodeError as exc:
        return f"bad event in stream: {exc}", {}
    finally:
        response.close()
    return f"event stream ended after {_last(launch)} without ready or failed", {}


def _use_server(session, ready: dict, member: Member, launch: Launch) -> None:
    """Check the server's API with the launch token, start a kernel, run code, check output."""
    url, token = ready.get("url", ""), ready.get("token", "")
    if not url or not token:
        raise DeployError(f"ready event without url/token: {sorted(ready)}")
    url = url if url.endswith("/") else url + "/"
    headers = {"Authorization": f"token {token}"}
    t = time.perf_counter()
    # /api itself answers anyone; /api/status needs the token to be accepted
    response = session.get(f"{url}api/status", headers=headers, timeout=30)
    launch.steps["api"] = round(time.perf_counter() - t, 3)
    if response.status_code != 200:
        raise DeployError(f"server rejected the launch token: GET {url}api/status: HTTP "
                          f"{response.status_code}")
    t = time.perf_counter()
    response = session.post(f"{url}api/kernels", headers=headers, json={}, timeout=60)
    if response.status_code not in (200, 201):
        raise DeployError(f"kernel did not start: HTTP {response.status_code} "
                          f"{_short(response.text)}")
    kernel = response.json()["id"]
    launch.steps["kernel"] = round(time.perf_counter() - t, 3)
    try:
        t = time.perf_counter()
        out = execute(url, token, kernel, member.smoke_code, timeout=60)
        launch.steps["execute"] = round(time.perf_counter() - t, 3)
        if member.smoke_expect not in out:
            raise DeployError(f"kernel printed {out.strip()!r}, expected "
                              f"{member.smoke_expect!r}")
    finally:
        try:
            session.delete(f"{url}api/kernels/{kernel}", headers=headers, timeout=30)
        except Exception:  # noqa: BLE001 - stopping the server below removes it anyway
            pass


def execute(server_url: str, token: str, kernel_id: str, code: str, timeout: float) -> str:
    """Run `code` through the kernel websocket (Jupyter messaging protocol 5.3); return what
    it printed or returned. A kernel error is a DeployError naming the exception."""
    import websocket

    ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    session_id = uuid.uuid4().hex
    msg_id = uuid.uuid4().hex
    conn = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                       timeout=timeout)
    try:
        conn.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "smoke", "session": session_id,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        # Done when both the shell reply and iopub's "idle" for our request have arrived:
        # the two channels share the websocket but not an order.
        output, reply, idle = [], None, False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (reply is not None and idle):
            message = json.loads(conn.recv())
            if (message.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = message.get("msg_type"), message.get("content") or {}
            if kind == "stream":
                output.append(content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                output.append((content.get("data") or {}).get("text/plain", "") + "\n")
            elif kind == "error":
                raise DeployError(f"kernel error: {content.get('ename')}: "
                                  f"{content.get('evalue')}")
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "execute_reply":
                reply = content
        if reply is None or not idle:
            raise DeployError(f"no complete reply from the kernel within {timeout:.0f}s")
        if reply.get("status") != "ok":
            raise DeployError(f"kernel error: {reply.get('ename', 'error')}: "
                              f"{reply.get('evalue', reply.get('status'))}")
        return "".join(output)
    except websocket.WebSocketException as exc:
        raise DeployError(f"kernel websocket failed: {_short(exc)}") from None
    finally:
        conn.close()


def _stop_server(session, ready: dict, launch: Launch) -> None:
    """Shut the user's server down through the hub API, so nothing is left running."""
    url, token = ready.get("url", ""), ready.get("token", "")
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if "user" not in segments or not token:
        return
    user = segments[segments.index("user") + 1]
    prefix = "/".join(segments[:segments.index("user")])
    hub_api = f"{parts.scheme}://{parts.netloc}/{prefix + '/' if prefix else ''}hub/api"
    t = time.perf_counter()
    headers = {"Authorization": f"token {token}"}
    try:
        response = session.delete(f"{hub_api}/users/{user}/server", headers=headers, timeout=60)
        if response.status_code in (401, 403):
            # A real BinderHub's launch token belongs to the notebook server, not the hub:
            # ask the server itself to shut down (the hub notices that it stopped).
            base = url if url.endswith("/") else url + "/"
            response = session.post(f"{base}api/shutdown", headers=headers, timeout=60)
        if response.status_code not in (200, 202, 204):
            launch.detail = (launch.detail + "; " if launch.detail else "") + \
                f"could not stop the server: HTTP {response.status_code}"
            launch.ok = False
    except Exception as exc:  # noqa: BLE001
        launch.detail = (launch.detail + "; " if launch.detail else "") + \
            f"could not stop the server: {_short(exc)}"
        launch.ok = False
    launch.steps["stop"] = round(time.perf_counter() - t, 3)


def _last(launch: Launch) -> str:
    seen = [p for p in launch.phases]
    return f"phase {seen[-1]!r}" if seen else "no event"


def _short(exc) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _md(text: str) -> str:
    return text.replace("|", "\\|")


# -- --build: a fresh commit forces a fresh build --------------------------------------------
def throwaway_commit(ws, member: Member, log: Callable[[str], None] = print):
    """Context manager: push a throwaway commit to the member's smoke build repository on a
    new branch, yield the BinderHub spec that launches it, then delete the branch."""
    import contextlib
    import os
    import shutil
    import subprocess
    import tempfile

    from deployer import output
    from deployer.adapters import sops as secrets_mod

    @contextlib.contextmanager
    def manager():
        cfg = member.smoke_build
        if not cfg:
            raise DeployError(f"member {member.name} has no smoke.build repository",
                              file="config/federation.yaml", key=f"members.{member.name}.smoke",
                              hint="add smoke.build: {remote, spec, deploy_key}")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
        branch = f"smoke-{member.name}-{stamp}-{uuid.uuid4().hex[:6]}"
        tmp = tempfile.mkdtemp(prefix="deployer-smoke-build-")
        env = {**ws.env, "GIT_TERMINAL_PROMPT": "0"}
        pushed = False
        try:
            if cfg.get("deploy_key"):
                key = os.path.join(tmp, "deploy-key")
                fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets_mod.decrypt(ws.root, cfg["deploy_key"], ws.env))
                env["GIT_SSH_COMMAND"] = (f"ssh -i {key} -o IdentitiesOnly=yes "
                                          "-o StrictHostKeyChecking=accept-new")
            work = os.path.join(tmp, "repo")

            def git(*args: str, cwd: str | None = None) -> None:
                output.command(["git", *args])
                result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                                        text=True, timeout=300)
                if result.returncode != 0:
                    raise DeployError(f"git {args[0]} failed: "
                                      f"{_short(result.stderr or result.stdout)}")

            git("clone", "--depth", "1", "--quiet", cfg["remote"], work)
            marker = os.path.join(work, ".binder-smoke")
            with open(marker, "w") as handle:
                handle.write(f"{branch}\n")
            git("add", ".binder-smoke", cwd=work)
            git("-c", "user.name=binder smoke test", "-c", "user.email=smoke@invalid",
                "commit", "--quiet", "-m", f"smoke test {branch}", cwd=work)
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
            pushed = True
            log(f"  pushed throwaway branch {branch} to {cfg['remote']}")
            yield f"{cfg['spec'].rstrip('/')}/{branch}"
        finally:
            if pushed:
                try:
                    git("push", "--quiet", "origin", "--delete", branch, cwd=work)
                    log(f"  deleted branch {branch}")
                except DeployError as exc:
                    output.warn(f"could not delete smoke branch {branch}: {exc.message}")
            shutil.rmtree(tmp, ignore_errors=True)

    return manager()
