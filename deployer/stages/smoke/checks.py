"""The HTTP checks of a member's public endpoints."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from deployer.adapters.binderhub import BinderClient, HttpError
from deployer.errors import Interrupted
from deployer.model.federation import Federation, Member
from deployer.stages.smoke.report import Check


@dataclass(frozen=True)
class Endpoints:
    """Where the smoke run reaches the member."""

    binder: str | None
    hub: str | None
    static: str | None
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


def checks(client: BinderClient, federation: Federation, member: Member, ends: Endpoints,
           attempts: int, cross_member: bool = True,
           cancel: threading.Event | None = None) -> list[Check]:
    """Front page, health, versions, hub, static badge; the redirector where the member
    runs one; and (cross_member) the same BinderHub version on every active member. A
    member that runs only the redirector gets the redirector's checks (and its static
    badge, if it serves the static site). `cancel` set (an interrupt) stops them between
    checks and while one waits for an answer (Interrupted)."""
    if not member.runs_binderhub:
        steps = [lambda: redirector_health(client, ends, attempts, cancel),
                 lambda: redirector(client, federation, member, ends, attempts, cancel),
                 lambda: redirector_launch(client, federation, member, ends, attempts, cancel)]
        if ends.static:
            steps.append(lambda: http(client, "static badge", f"{ends.static}/badge_logo.svg",
                                      attempts, expect_type="svg", cancel=cancel))
        return _run(steps, cancel)
    steps = [
        lambda: http(client, "binder front page", f"{ends.binder}/", attempts, cancel=cancel),
        lambda: health(client, ends, attempts, cancel),
        lambda: versions(client, ends, attempts, cancel),
        lambda: http(client, "hub health", f"{ends.hub}/hub/health", attempts, cancel=cancel),
        lambda: http(client, "static badge", f"{ends.static}/badge_logo.svg", attempts,
                     expect_type="svg", cancel=cancel),
    ]
    if ends.federation:
        steps.append(lambda: redirector(client, federation, member, ends, attempts, cancel))
    found = _run(steps, cancel)
    if cross_member and member.in_federation and member.active:
        found += _run([lambda: same_versions(client, federation, member, found[2], attempts,
                                             cancel)], cancel)
    return found


def _run(steps: list[Callable[[], Check]], cancel: threading.Event | None) -> list[Check]:
    found = []
    for step in steps:
        if cancel is not None and cancel.is_set():
            raise Interrupted("interrupted during the smoke tests")
        found.append(step())
    return found


def http(client: BinderClient, name: str, url: str, attempts: int,
         expect_type: str = "", cancel: threading.Event | None = None) -> Check:
    """GET answers 200 (with the expected content type)."""
    start = time.perf_counter()
    try:
        response = client.get(url, attempts=attempts, cancel=cancel)
    except HttpError as exc:
        return Check(name, False, time.perf_counter() - start, exc.message)
    seconds = time.perf_counter() - start
    if response.status != 200:
        return Check(name, False, seconds, f"{url}: HTTP {response.status}")
    if expect_type and expect_type not in response.content_type:
        return Check(name, False, seconds, f"{url}: content type "
                                           f"{response.headers.get('Content-Type')!r}")
    return Check(name, True, seconds, f"HTTP {response.status}")


def health(client: BinderClient, ends: Endpoints, attempts: int,
           cancel: threading.Event | None = None) -> Check:
    """/health says ok, and every check it lists passes."""
    start = time.perf_counter()
    url = f"{ends.binder}/health"
    try:
        response = client.get(url, attempts=attempts, cancel=cancel)
        data = response.json()
    except HttpError as exc:
        return Check("binder health", False, time.perf_counter() - start, exc.message)
    listed = data.get("checks", []) if isinstance(data, dict) else None
    if not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed):
        # another service's answer (a misrouted ingress, a proxy's own health page)
        return Check("binder health", False, time.perf_counter() - start,
                     f"{url}: HTTP {response.status}, not a BinderHub health report "
                     '(expected {"ok": ..., "checks": [...]})')
    failing = [str(c.get("service", "?")) for c in listed if not c.get("ok", False)]
    ok = response.status == 200 and data.get("ok") is True and not failing
    detail = "all checks pass" if ok else f"HTTP {response.status}; failing: " + (
        ", ".join(failing) or "(none named)")
    return Check("binder health", ok, time.perf_counter() - start, detail)


def versions(client: BinderClient, ends: Endpoints, attempts: int,
             cancel: threading.Event | None = None) -> Check:
    """/versions names the BinderHub version (the detail)."""
    start = time.perf_counter()
    url = f"{ends.binder}/versions"
    try:
        version = _binderhub_version(client, url, attempts, cancel)
    except HttpError as exc:
        return Check("binder versions", False, time.perf_counter() - start, exc.message)
    return Check("binder versions", True, time.perf_counter() - start, str(version))


def redirector(client: BinderClient, federation: Federation, member: Member, ends: Endpoints,
               attempts: int, cancel: threading.Event | None = None) -> Check:
    """The redirector's members and weights must be what config/federation.yaml says."""
    from deployer.model.values import generated_layer

    start = time.perf_counter()
    url = f"{ends.federation}/active_hosts"
    expected = generated_layer(federation, member).data["federationRedirect"]["hosts"]
    try:
        data = client.get(url, attempts=attempts, cancel=cancel).json()
    except HttpError as exc:
        return Check("federation redirector", False, time.perf_counter() - start, exc.message)
    served = _redirector_hosts(data)
    if served is None:
        return Check("federation redirector", False, time.perf_counter() - start,
                     f"{url}: not a list or map of active hosts")
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


def redirector_health(client: BinderClient, ends: Endpoints, attempts: int,
                      cancel: threading.Event | None = None) -> Check:
    """The redirector answers /health (it proxies everything but /build/ to the prime):
    HTTP 200 with a health report that says ok."""
    start = time.perf_counter()
    url = f"{ends.federation}/health"
    try:
        response = client.get(url, attempts=attempts, cancel=cancel)
        data = response.json() if response.status == 200 else None
    except HttpError as exc:
        return Check("redirector health", False, time.perf_counter() - start, exc.message)
    ok = isinstance(data, dict) and data.get("ok") is True
    return Check("redirector health", ok, time.perf_counter() - start,
                 "the prime answers through it" if ok else f"{url}: HTTP {response.status}"
                 + ("" if data is None else f", ok={data.get('ok') if isinstance(data, dict) else '?'}"))


def redirector_launch(client: BinderClient, federation: Federation, member: Member,
                      ends: Endpoints, attempts: int,
                      cancel: threading.Event | None = None) -> Check:
    """A launch through the redirector (/build/<spec>) is redirected to a member the
    federation data puts in rotation (nothing is built: the redirect is not followed)."""
    from deployer.model.values import generated_layer

    start = time.perf_counter()
    hosts = generated_layer(federation, member).data["federationRedirect"]["hosts"]
    targets = {}
    for name, host in hosts.items():
        if host["weight"] > 0 or host.get("prime"):
            targets[host["url"].rstrip("/")] = name
            other = federation.members.get(name)
            if other is not None and Endpoints.of(other).binder:   # its smoke.urls.binder
                targets[Endpoints.of(other).binder] = name
    prime = federation.members.get(federation.prime) if federation.prime else None
    spec = next(iter(prime.smoke_repos if prime and prime.smoke_repos else ()),
                "gh/binder-examples/requirements/HEAD")
    url = f"{ends.federation}/build/{spec}"
    try:
        response = client.get(url, attempts=attempts, follow_redirects=False, cancel=cancel)
    except HttpError as exc:
        return Check("redirector launch", False, time.perf_counter() - start, exc.message)
    seconds = time.perf_counter() - start
    location = response.headers.get("Location", "")
    if response.status not in (301, 302, 303, 307, 308) or not location:
        return Check("redirector launch", False, seconds,
                     f"{url}: HTTP {response.status}, expected a redirect to a member")
    chosen = next((name for base, name in targets.items()
                   if location.startswith(base + "/build/")), None)
    if chosen is None:
        return Check("redirector launch", False, seconds,
                     f"{url} redirects to {location}, not to a member in rotation")
    return Check("redirector launch", True, seconds, f"sent to {chosen}")


def same_versions(client: BinderClient, federation: Federation, member: Member, own: Check,
                  attempts: int, cancel: threading.Event | None = None) -> Check:
    """Every active member must run the same BinderHub (the redirector drops the others)."""
    start = time.perf_counter()
    found = {member.name: own.detail if own.ok else None}
    for other in federation.members.values():
        if other.name == member.name or not (other.in_federation and other.active):
            continue
        url = f"{Endpoints.of(other).binder}/versions"
        try:
            found[other.name] = _binderhub_version(client, url, attempts, cancel)
        except HttpError as exc:
            found[other.name] = f"unreachable ({exc.message})"
    distinct = {v for v in found.values() if v}
    if len(distinct) <= 1:
        return Check("same BinderHub everywhere", True, time.perf_counter() - start,
                     next(iter(distinct), "?"))
    listing = ", ".join(f"{name} {version}" for name, version in sorted(found.items()))
    return Check("same BinderHub everywhere", False, time.perf_counter() - start,
                 f"version mismatch: {listing}")


def _binderhub_version(client: BinderClient, url: str, attempts: int,
                       cancel: threading.Event | None = None) -> str:
    data = client.get(url, attempts=attempts, cancel=cancel).json()
    if not isinstance(data, dict) or "binderhub" not in data:
        raise HttpError(f"{url}: no 'binderhub' version in the answer")
    return str(data["binderhub"])


def _redirector_hosts(data) -> dict[str, dict] | None:
    """name -> {weight} from /active_hosts (a map of hosts, or a list of names/records);
    None when the answer is neither."""
    hosts = data.get("active_hosts", data) if isinstance(data, dict) else data
    if not isinstance(hosts, (dict, list)):
        return None
    if isinstance(hosts, dict):
        return {name: (value if isinstance(value, dict) else {"weight": value})
                for name, value in hosts.items()}
    out = {}
    for item in hosts or []:
        name = (item.get("name") or item.get("host")) if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            return None       # a record without a name (or one that is not a string)
        out[name] = item if isinstance(item, dict) else {}
    return out
