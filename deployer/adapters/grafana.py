"""Adapter for Grafana's HTTP API: an annotation per deploy (POST /api/annotations)."""
from __future__ import annotations

import time

from deployer.errors import DeployError


class GrafanaError(DeployError):
    """Grafana answered with an error, or not at all."""


def annotate(url: str, token: str, *, text: str, tags: list[str], when_ms: int | None = None,
             dashboard_uid: str | None = None, attempts: int = 3, backoff: float = 1.0,
             timeout: float = 10) -> int:
    """Post one annotation; its id. 5xx and connection errors are retried with backoff."""
    import requests

    body = {"text": text, "tags": tags, "time": when_ms or int(time.time() * 1000)}
    if dashboard_uid:
        body["dashboardUID"] = dashboard_uid
    endpoint = url.rstrip("/") + "/api/annotations"
    last = "no answer"
    with requests.Session() as session:
        session.trust_env = False
        for attempt in range(attempts):
            try:
                response = session.post(endpoint, json=body, timeout=timeout,
                                        headers={"Authorization": f"Bearer {token}"})
                if response.status_code < 300:
                    return int((response.json() or {}).get("id", 0))
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            except (requests.RequestException, ValueError) as exc:
                last = f"{type(exc).__name__}: {str(exc)[:160]}"
            if attempt < attempts - 1:
                time.sleep(backoff * 2 ** attempt)
    raise GrafanaError(f"Grafana annotation at {endpoint} failed: {last}")
