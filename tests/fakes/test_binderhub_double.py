"""The BinderHub API test double against a real JupyterHub, real servers and real kernels."""
from __future__ import annotations

import datetime
import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fakes.binderhub import (DEFAULT_VERSION, BinderHubDouble, FederationRedirectDouble,
                                   unique_name_from_repo)
from tests.fakes.jupyterhub_fixture import (  # noqa: F401  (re-exported session fixture)
    jupyterhub, leftovers, running_jupyterhub)

SPEC = "gh/binder-examples/requirements/3e3a7d5c1b4f0a2e9d8c7b6a5f4e3d2c1b0a9f8e"
ORDER = ["waiting", "fetching", "building", "pushing", "built", "launching", "ready"]
SSE = {"Accept": "text/event-stream"}
STOPPING: list[threading.Thread] = []  # background server stops, joined with `double`


@pytest.fixture(scope="module")
def double(jupyterhub):
    with BinderHubDouble(jupyterhub, launch_timeout=60) as d:
        yield d
    for thread in STOPPING:
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def behaviour_launches(double, jupyterhub) -> dict:
    """Launches whose servers misbehave, made concurrently (a server takes ~5 s to start):
    {"wrong_token": events, "bad_kernel": events, "binder": events (token_mode="binder"),
     "launch_timeout": (events, launch record) (launch_timeout=2)}."""
    double.behave(r"org/wrong-token/", "wrong_token")
    double.behave(r"org/bad-kernel/", "bad_kernel")
    with BinderHubDouble(jupyterhub, launch_timeout=60, token_mode="binder") as binder, \
            BinderHubDouble(jupyterhub, launch_timeout=2) as impatient, \
            ThreadPoolExecutor(4) as pool:
        impatient.behave(r"org/slow-start/", "launch_timeout")
        futures = {"wrong_token": pool.submit(follow, double.url, "gh/org/wrong-token/HEAD"),
                   "bad_kernel": pool.submit(follow, double.url, "gh/org/bad-kernel/HEAD"),
                   "binder": pool.submit(follow, binder.url, "gh/org/binder-token/HEAD"),
                   "launch_timeout": pool.submit(follow, impatient.url,
                                                 "gh/org/slow-start/HEAD")}
        launches = {name: future.result()[0] for name, future in futures.items()}
        launches["launch_timeout"] = (launches["launch_timeout"], impatient.launches[-1])
    yield launches
    for events in launches.values():
        if isinstance(events, list) and events and events[-1]["phase"] == "ready":
            stop_soon(jupyterhub, user_of(events[-1]))


def follow(url: str, spec: str, timeout: float = 90,
           on_event=None) -> tuple[list[dict], int]:
    """Read GET /build/<spec> until ready/failed/end: (events, keep-alive comments)."""
    events, heartbeats, data = [], 0, []
    with requests.get(f"{url}/build/{spec}", headers=SSE, stream=True,
                      timeout=(5, timeout)) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith(":"):
                heartbeats += 1
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                events.append(json.loads("\n".join(data)))
                data = []
                if on_event:
                    on_event(events[-1])
                if events[-1]["phase"] in ("ready", "failed"):
                    break
    return events, heartbeats


def user_of(ready: dict) -> str:
    return re.search(r"/user/([^/]+)/$", ready["url"]).group(1)


def stop_soon(jupyterhub, user: str) -> None:
    """Stop the user's server in the background (joined when the module's double closes)."""
    thread = threading.Thread(target=jupyterhub.api, args=("DELETE", f"users/{user}/server"),
                              kwargs={"timeout": 60}, daemon=True)
    thread.start()
    STOPPING.append(thread)


def wait_gone(jupyterhub, user: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while any(s["user"] == user for s in jupyterhub.servers()):
        assert time.monotonic() < deadline, f"server of {user} still there"
        time.sleep(0.2)


def execute(url: str, token: str, kernel: str, code: str) -> str:
    """Run code through the kernel's websocket (Jupyter messaging), return its stdout."""
    import websocket

    ws = websocket.create_connection(url.replace("http", "ws", 1)
                                     + f"api/kernels/{kernel}/channels",
                                     header=[f"Authorization: token {token}"], timeout=30)
    msg_id = uuid.uuid4().hex
    try:
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        # the reply (shell) and the output (iopub) travel on different channels: done when
        # both the execute_reply and iopub's status "idle" for this request have arrived
        out, replied, idle = [], False, False
        while not (replied and idle):
            msg = json.loads(ws.recv())
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "status":
                idle = msg["content"]["execution_state"] == "idle"
            elif msg["msg_type"] == "execute_reply":
                assert msg["content"]["status"] == "ok", msg["content"]
                replied = True
        return "".join(out)
    finally:
        ws.close()


# -- the launch a smoke test makes -----------------------------------------------------------
def test_build_launch_use_and_stop(double, jupyterhub):
    events, heartbeats = follow(double.url, SPEC)
    phases = [e["phase"] for e in events]
    assert [p for i, p in enumerate(phases) if p not in phases[:i]] == ORDER
    assert heartbeats >= 1
    assert events[0] == {"phase": "waiting", "message": "Waiting for build to start...\n"}
    assert sum(e["phase"] == "building" and bool(e["message"]) for e in events) >= 3
    pushing = next(e for e in events if e["phase"] == "pushing")
    assert pushing["message"] == "Pushing image\n" and pushing["progress"]
    built = next(e for e in events if e["phase"] == "built")
    assert built["message"] == "Built image, launching...\n"
    assert built["imageName"].endswith(":3e3a7d5c1b4f0a2e9d8c7b6a5f4e3d2c1b0a9f8e")
    assert "binder-2dexamples-2drequirements-" in built["imageName"]
    launching = [e["message"] for e in events if e["phase"] == "launching"]
    assert launching[0] == "Launching server...\n" and "Server requested\n" in launching

    ready = events[-1]
    user = user_of(ready)
    assert re.fullmatch(r"binder-examples-requirements-[a-z0-9]{8}", user)
    assert ready["url"] == f"{jupyterhub.url}/user/{user}/"
    assert ready["message"] == f"server running at {ready['url']}\n"
    assert ready["image"] == built["imageName"]
    assert ready["repo_url"] == "https://github.com/binder-examples/requirements"
    assert ready["binder_ref_url"] == ("https://github.com/binder-examples/requirements/tree/"
                                       "3e3a7d5c1b4f0a2e9d8c7b6a5f4e3d2c1b0a9f8e")
    assert ready["binder_launch_host"] == double.url + "/"
    assert ready["binder_request"] == "v2/" + SPEC
    assert ready["binder_persistent_request"] == "v2/" + SPEC
    assert ready["token"]

    url, token = ready["url"], ready["token"]
    auth = {"Authorization": f"token {token}"}
    assert requests.get(f"{url}api", headers=auth, timeout=10).status_code == 200
    # jupyter-server's /api (its version) is public; authenticated endpoints check the token
    assert requests.get(f"{url}api", timeout=10).status_code == 200
    assert requests.get(f"{url}api/status", headers=auth, timeout=10).status_code == 200
    assert requests.get(f"{url}api/status", timeout=10).status_code == 403
    assert requests.get(f"{url}api/status", headers={"Authorization": "token wrong"},
                        timeout=10).status_code == 403

    response = requests.post(f"{url}api/kernels", headers=auth, json={}, timeout=60)
    assert response.status_code in (200, 201), response.text
    kernel = response.json()["id"]
    assert execute(url, token, kernel, "print(6 * 7)") == "42\n"

    response = requests.delete(f"{jupyterhub.api_url}/users/{user}/server", headers=auth,
                               timeout=60)
    assert response.status_code in (202, 204)
    wait_gone(jupyterhub, user)  # the hub (shared by the session) lists no server of it


def test_second_launch_reuses_the_built_image(double, jupyterhub):
    spec = "gh/binder-examples/requirements/reuse-branch"
    built = threading.Event()
    with ThreadPoolExecutor(1) as pool:  # the first launch goes on while the second starts
        future = pool.submit(follow, double.url, spec,
                             on_event=lambda e: e["phase"] == "built" and built.set())
        assert built.wait(30)
        second, _ = follow(double.url, spec)
        first, _ = future.result()
    assert first[-1]["phase"] == "ready"
    stop_soon(jupyterhub, user_of(first[-1]))
    assert [e["phase"] for e in second[:2]] == ["built", "launching"]
    assert second[0] == {"phase": "built", "imageName": first[-1]["image"],
                         "message": "Found built image, launching...\n"}
    assert not {"waiting", "fetching", "building", "pushing"} & {e["phase"] for e in second}
    assert second[-1]["phase"] == "ready"
    assert user_of(second[-1]) != user_of(first[-1])
    stop_soon(jupyterhub, user_of(second[-1]))


# -- behaviours ------------------------------------------------------------------------------
def test_fail_build(double):
    double.behave(r"org/broken-build/", "fail_build")
    events, _ = follow(double.url, "gh/org/broken-build/HEAD")
    phases = [e["phase"] for e in events]
    assert phases[:3] == ["waiting", "fetching", "fetching"] and "building" in phases
    assert phases[-1] == "failed" and "launching" not in phases
    assert "returned a non-zero code: 1" in events[-1]["message"]
    assert not any(r.get("user") for r in double.launches if "broken-build" in r["spec"])


def test_cut_stream(double):
    double.behave(r"org/cut-stream/", "cut_stream")
    events = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with requests.get(f"{double.url}/build/gh/org/cut-stream/HEAD", headers=SSE,
                          stream=True, timeout=(5, 30)) as response:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
    phases = [e["phase"] for e in events]
    assert phases[-1] == "building"
    assert not {"failed", "ready", "built"} & set(phases)


def test_launch_timeout(behaviour_launches, jupyterhub):
    events, record = behaviour_launches["launch_timeout"]
    failed = events[-1]
    user = record["user"]
    assert [e["phase"] for e in events][-2:] == ["launching", "failed"]
    assert failed == {"phase": "failed", "status_code": 500,
                      "message": f"Image {record['image']} for user {user} took too long "
                                 "to launch\n"}
    assert record["outcome"] == "timeout"
    wait_gone(jupyterhub, user)  # the double stopped the pending server


def test_wrong_token(behaviour_launches, jupyterhub):
    ready = behaviour_launches["wrong_token"][-1]
    assert ready["phase"] == "ready" and ready["token"]
    auth = {"Authorization": f"token {ready['token']}"}
    assert requests.get(f"{ready['url']}api/status", headers=auth, timeout=10).status_code == 403
    assert requests.post(f"{ready['url']}api/kernels", headers=auth, json={},
                         timeout=10).status_code == 403
    assert requests.delete(f"{jupyterhub.api_url}/users/{user_of(ready)}/server", headers=auth,
                           timeout=10).status_code == 403


def test_bad_kernel(behaviour_launches):
    ready = behaviour_launches["bad_kernel"][-1]
    assert ready["phase"] == "ready"
    auth = {"Authorization": f"token {ready['token']}"}
    assert requests.get(f"{ready['url']}api/status", headers=auth, timeout=10).status_code == 200
    specs = requests.get(f"{ready['url']}api/kernelspecs", headers=auth, timeout=10).json()
    assert "python3" in specs["kernelspecs"]
    response = requests.post(f"{ready['url']}api/kernels", headers=auth, json={}, timeout=60)
    assert response.status_code >= 500


def test_binder_token_mode_is_the_servers_own_token(behaviour_launches, jupyterhub):
    """As mybinder.org: the token is the notebook server's; the hub does not know it."""
    ready = behaviour_launches["binder"][-1]
    assert ready["phase"] == "ready"
    url, auth = ready["url"], {"Authorization": f"token {ready['token']}"}
    assert requests.get(f"{url}api/status", headers=auth, timeout=10).status_code == 200
    assert requests.get(f"{url}api/status", timeout=10).status_code == 403
    assert requests.delete(f"{jupyterhub.api_url}/users/{user_of(ready)}/server", headers=auth,
                           timeout=10).status_code == 403
    assert requests.post(f"{url}api/shutdown", headers=auth, timeout=10).status_code == 200
    wait_gone(jupyterhub, user_of(ready))


# -- the other endpoints ---------------------------------------------------------------------
def test_front_page_health_versions(double):
    page = requests.get(f"{double.url}/", timeout=10)
    assert page.status_code == 200 and "Binder" in page.text
    assert requests.get(f"{double.url}/versions", timeout=10).json() == {
        "builder_info": {"build_image": "quay.io/jupyterhub/repo2docker:2024.07.0"},
        "binderhub": DEFAULT_VERSION}
    health = requests.get(f"{double.url}/health", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["ok"] is True
    assert [c["service"] for c in body["checks"]] == ["Docker registry", "JupyterHub API",
                                                      "Pod quota"]
    quota = body["checks"][-1]
    assert set(quota) == {"service", "ok", "total_pods", "build_pods", "user_pods", "quota"}
    double.set_health("Pod quota", False)  # a soft check
    assert requests.get(f"{double.url}/health", timeout=10).status_code == 200
    double.set_health("JupyterHub API", False)
    try:
        health = requests.get(f"{double.url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["ok"] is False
        assert requests.head(f"{double.url}/health", timeout=10).status_code == 503
    finally:
        double.set_health("JupyterHub API", None)
        double.set_health("Pod quota", None)


def test_build_errors_before_the_build(double):
    no_accept = requests.get(f"{double.url}/build/{SPEC}", timeout=10)
    assert no_accept.status_code == 400
    assert json.loads(no_accept.text.split("data:", 1)[1]) == {
        "phase": "failed", "status_code": 400,
        "message": "Missing Accept header: text/event-stream\n"}
    events, _ = follow(double.url, "nope/some/thing/HEAD")
    assert events == [{"phase": "failed", "message": "No provider found for prefix nope\n"}]


def test_unique_name_from_repo():
    name = unique_name_from_repo("https://github.com/Binder-Examples/requirements.git")
    assert re.fullmatch(r"binder-examples-requirements-[a-z0-9]{8}", name)
    long = unique_name_from_repo("https://github.com/" + "a" * 20 + "/" + "b" * 20)
    assert re.fullmatch(r"a{15}-b{15}-[a-z0-9]{8}", long)


def test_federation_redirector(jupyterhub):
    with BinderHubDouble(jupyterhub) as prime, BinderHubDouble(jupyterhub) as other, \
            BinderHubDouble(jupyterhub, version="0.2.0-n1.hdeadbee") as old, \
            BinderHubDouble(jupyterhub, pod_quota=5) as full:
        hosts = {name: {"url": d.url, "weight": w, "health": f"{d.url}/health",
                        "versions": f"{d.url}/versions", **extra}
                 for name, d, w, extra in [("prime", prime, 60, {"prime": True}),
                                           ("other", other, 40, {}), ("old", old, 10, {}),
                                           ("full", full, 10, {})]}
        with FederationRedirectDouble(hosts) as fed:
            active = requests.get(f"{fed.url}/active_hosts", timeout=30).json()
            assert active == {"active_hosts": {n: hosts[n] for n in ("prime", "other")}}
            assert "different versions" in fed.reasons["old"]
            assert "approaching pod quota" in fed.reasons["full"]

            health = requests.get(f"{fed.url}/health", timeout=30)  # proxied to the prime
            assert health.status_code == 200
            assert [c["service"] for c in health.json()["checks"]][1] == "JupyterHub API"
            assert requests.get(f"{fed.url}/versions", timeout=30).json()["binderhub"] == \
                DEFAULT_VERSION

            redirect = requests.get(f"{fed.url}/build/gh/org/repo/HEAD", allow_redirects=False,
                                    timeout=30)
            assert redirect.status_code == 307
            assert redirect.headers["Location"] in {f"{prime.url}/build/gh/org/repo/HEAD",
                                                    f"{other.url}/build/gh/org/repo/HEAD"}

            other.set_health("JupyterHub API", False)
            active = requests.get(f"{fed.url}/active_hosts", timeout=30).json()["active_hosts"]
            assert list(active) == ["prime"]

    unreachable = {"gke": {"url": "https://gke.example.invalid", "weight": 60, "prime": True,
                           "health": "https://gke.example.invalid/health",
                           "versions": "https://gke.example.invalid/versions"}}
    with FederationRedirectDouble(unreachable) as fed:  # nothing off 127.0.0.1 is contacted
        assert requests.get(f"{fed.url}/active_hosts", timeout=30).json() == {"active_hosts": {}}
        assert "not on 127.0.0.1" in fed.reasons["gke"]
        assert requests.get(f"{fed.url}/health", timeout=30).status_code == 500
    with FederationRedirectDouble(unreachable, checks=False) as fed:
        assert requests.get(f"{fed.url}/active_hosts", timeout=30).json() == {
            "active_hosts": unreachable}


def test_no_process_left_after_the_hub_stops(tmp_path):
    """A hub with a running server and kernel leaves nothing behind when it stops."""
    with running_jupyterhub(tmp_path / "hub") as hub:
        assert hub.api("POST", "users/leftover-check").status_code == 201
        assert hub.api("POST", "users/leftover-check/server").status_code in (201, 202)
        token = hub.api("POST", "users/leftover-check/tokens",
                        json={"scopes": ["access:servers!user"]}).json()["token"]
        deadline = time.monotonic() + 60
        while not any(s["ready"] for s in hub.servers()):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        response = requests.post(f"{hub.url}/user/leftover-check/api/kernels", json={},
                                 headers={"Authorization": f"token {token}"}, timeout=60)
        assert response.status_code == 201
        running = hub.processes()
        assert any("ipykernel_launcher" in cmd for _, cmd in running)
        assert any("jupyterhub-singleuser" in cmd for _, cmd in running)
        assert any("configurable-http-proxy" in cmd for _, cmd in running)
    assert leftovers(hub.root, hub.ports) == []
