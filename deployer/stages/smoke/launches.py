"""A launch through the BinderHub API: follow the build event stream to `ready`, then use
the server (kernel.py). Transient failures (connection errors, a stream that ends early) are
retried; a failed build is not."""
from __future__ import annotations

import threading
import time
from typing import Callable

from deployer.adapters.binderhub import BinderClient, HttpError
from deployer.errors import DeployError, Interrupted
from deployer.model.federation import Member
from deployer.stages.smoke.checks import Endpoints
from deployer.stages.smoke.kernel import run_code, stop_server
from deployer.stages.smoke.report import PHASES, Launch


def launch_repo(client: BinderClient, ends: Endpoints, spec: str, member: Member, *,
                timeout: float, log: Callable[[str], None], attempts: int = 3,
                cancel: threading.Event | None = None) -> Launch:
    """Build and launch `spec`, run code in its kernel, stop the server. `cancel` set stops
    it between build events (Interrupted)."""
    launch = Launch(spec)
    start = time.perf_counter()
    deadline = start + timeout
    for attempt in range(1, attempts + 1):
        launch.attempts = attempt
        launch.phases, launch.steps = {}, {}
        outcome, ready = follow_stream(client, ends, spec, launch, time.perf_counter(), deadline,
                                       cancel)
        if outcome == "ready":
            try:
                run_code(client, ready, member, launch)
                launch.ok = True
            except DeployError as exc:
                launch.detail = exc.message
            except Exception as exc:  # noqa: BLE001 - a broken server is a failed launch
                launch.detail = f"talking to the server failed: {type(exc).__name__}: " \
                                f"{str(exc)[:200]}"
            finally:
                stop_server(client, ready, launch)
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


def follow_stream(client: BinderClient, ends: Endpoints, spec: str, launch: Launch,
                  start: float, deadline: float,
                  cancel: threading.Event | None = None) -> tuple[str, dict]:
    """Follow the build stream. Returns ("ready", event) or a reason it did not get there."""
    read_timeout = min(120.0, deadline - time.perf_counter())
    try:
        for item in client.build_events(ends.binder, spec, read_timeout=read_timeout):
            if cancel is not None and cancel.is_set():
                raise Interrupted(f"interrupted while launching {spec}")
            if time.perf_counter() > deadline:
                return f"no ready event within {deadline - start:.0f}s", {}
            if item.heartbeat:
                launch.heartbeats += 1
                continue
            event = item.data
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
    except HttpError as exc:
        if exc.kind == "closed":
            return f"event stream ended after {_last(launch)} without ready or failed " \
                   "(connection closed)", {}
        if exc.kind == "broken":
            return f"event stream broke after {_last(launch)}: {exc.message}", {}
        return exc.message, {}
    return f"event stream ended after {_last(launch)} without ready or failed", {}


def _last(launch: Launch) -> str:
    seen = list(launch.phases)
    return f"phase {seen[-1]!r}" if seen else "no event"
