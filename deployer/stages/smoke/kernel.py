"""Use a launched server: check it accepts the launch token, start a kernel, run the
member's smoke code and check its output; then shut the server down."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from deployer.adapters.binderhub import BinderClient, HttpError
from deployer.errors import DeployError
from deployer.model.federation import Member
from deployer.stages.smoke.report import Launch


def run_code(client: BinderClient, ready: dict, member: Member, launch: Launch) -> None:
    """Token accepted, kernel started, smoke code printed what it should; DeployError if not."""
    url, token = ready.get("url", ""), ready.get("token", "")
    if not url or not token:
        raise DeployError(f"ready event without url/token: {sorted(ready)}")
    url = url if url.endswith("/") else url + "/"
    t = time.perf_counter()
    # /api itself answers anyone; /api/status needs the token to be accepted
    response = client.request("GET", f"{url}api/status", token=token, timeout=30)
    launch.steps["api"] = round(time.perf_counter() - t, 3)
    if response.status != 200:
        raise DeployError(f"server rejected the launch token: GET {url}api/status: HTTP "
                          f"{response.status}")
    t = time.perf_counter()
    response = client.request("POST", f"{url}api/kernels", token=token, json_body={},
                              timeout=60)
    if response.status not in (200, 201):
        raise DeployError(f"kernel did not start: HTTP {response.status} "
                          f"{response.text.strip()[:200]}")
    body = response.json()
    kernel = body.get("id") if isinstance(body, dict) else None
    if not kernel:
        raise DeployError("kernel did not start: the answer has no kernel id")
    launch.steps["kernel"] = round(time.perf_counter() - t, 3)
    try:
        t = time.perf_counter()
        out = client.execute(url, token, kernel, member.smoke_code, timeout=60)
        launch.steps["execute"] = round(time.perf_counter() - t, 3)
        if member.smoke_expect not in out:
            raise DeployError(f"kernel printed {out.strip()!r}, expected "
                              f"{member.smoke_expect!r}")
    finally:
        try:
            client.request("DELETE", f"{url}api/kernels/{kernel}", token=token, timeout=30)
        except HttpError:
            pass  # stopping the server removes it anyway


def stop_server(client: BinderClient, ready: dict, launch: Launch) -> None:
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
    try:
        response = client.request("DELETE", f"{hub_api}/users/{user}/server", token=token,
                                  timeout=60)
        if response.status in (401, 403):
            # A real BinderHub's launch token belongs to the notebook server, not the hub:
            # ask the server itself to shut down (the hub notices that it stopped).
            base = url if url.endswith("/") else url + "/"
            response = client.request("POST", f"{base}api/shutdown", token=token, timeout=60)
        if response.status not in (200, 202, 204):
            launch.add_problem(f"could not stop the server: HTTP {response.status}")
    except HttpError as exc:
        launch.add_problem(f"could not stop the server: {exc.message}")
    launch.steps["stop"] = round(time.perf_counter() - t, 3)
