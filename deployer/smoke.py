"""The post-deploy gate. Until launch tests exist, it checks the member's public health URLs
(config/federation.yaml `smoke.health_urls`; default: the binder's /health and the hub's
/hub/api/health)."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .errors import DeployError
from .federation import Member


@dataclass
class Check:
    url: str
    ok: bool
    detail: str
    seconds: float


def health_urls(member: Member) -> list[str]:
    """The URLs the gate checks for a member."""
    return list(member.smoke_health_urls) or [f"https://{member.domains.binder}/health",
                                              f"https://{member.domains.hub}/hub/api/health"]


def gate(member: Member, *, timeout: float = 60, log=print, attempts: int = 5) -> list[Check]:
    """Every health URL must answer 2xx; transient failures are retried with backoff."""
    checks = [_check(url, timeout, attempts) for url in health_urls(member)]
    for check in checks:
        log(f"  {'ok  ' if check.ok else 'FAIL'} {check.url} ({check.detail}, "
            f"{check.seconds:.1f}s)")
    failed = [c for c in checks if not c.ok]
    if failed:
        raise DeployError("smoke checks failed: " + "; ".join(f"{c.url}: {c.detail}"
                                                             for c in failed))
    return checks


def _check(url: str, timeout: float, attempts: int) -> Check:
    start = time.perf_counter()
    detail = ""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=min(10.0, timeout)) as response:
                return Check(url, True, f"HTTP {response.status}", time.perf_counter() - start)
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if exc.code < 500:
                break  # a 4xx will not fix itself
        except (urllib.error.URLError, OSError) as exc:
            detail = str(getattr(exc, "reason", exc))
        if time.perf_counter() - start + 2 ** attempt > timeout:
            break
        time.sleep(min(2 ** attempt * 0.5, 5))
    return Check(url, False, detail, time.perf_counter() - start)
