"""Adapter for a BinderHub and the servers it launches: plain HTTP (requests), the build
event stream (server-sent events on GET /build/<spec>), the Jupyter server REST API and the
kernel websocket (Jupyter messaging protocol 5.3, websocket-client).

The smoke stage decides what to check; this module only speaks the protocols. Transport
failures are HttpError (never a requests or websocket exception), so the stage can tell a
server that answered badly from one that did not answer.
"""
from __future__ import annotations

import datetime
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import quote

from deployer.adapters import abandon
from deployer.errors import DeployError, Interrupted

USER_AGENT = "binderhub-federation-deployer-smoke"
CANCEL_POLL = 0.5   # seconds: how often a request that can be interrupted looks at `cancel`


class HttpError(DeployError):
    """No usable answer: connection refused, timeout, a stream cut short, a bad websocket."""

    def __init__(self, message: str, *, kind: str = "connect"):
        super().__init__(message)
        # connect: no answer; status: an answer that is not 200; closed: the server ended a
        # stream early; broken: the connection broke mid-stream; bad-event: not JSON
        self.kind = kind


@dataclass(frozen=True)
class Response:
    """An HTTP answer, read completely."""

    url: str
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        """The body as JSON; HttpError when it is not."""
        try:
            return json.loads(self.text)
        except ValueError as exc:
            raise HttpError(f"{self.url}: not JSON ({exc})") from None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass(frozen=True)
class Event:
    """One item of a build stream: a heartbeat comment, or a JSON event."""

    heartbeat: bool
    data: dict


class BinderClient:
    """One HTTP session. It does not read proxies or .netrc from the process environment
    (requests' trust_env) unless given `proxies`: a smoke test must reach the member, not
    whatever a developer's shell points at."""

    def __init__(self, *, proxies: Mapping[str, str] | None = None,
                 ca_bundle: str | None = None, user_agent: str = USER_AGENT):
        import requests

        self._session = requests.Session()
        self._session.trust_env = False
        self._session.headers["User-Agent"] = user_agent
        if proxies:
            self._session.proxies.update(dict(proxies))
        if ca_bundle:  # a federation on a private CA (REQUESTS_CA_BUNDLE / SSL_CERT_FILE)
            self._session.verify = ca_bundle

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "BinderClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plain HTTP -------------------------------------------------------------------------
    def get(self, url: str, *, attempts: int = 1, timeout: float = 15,
            token: str | None = None, follow_redirects: bool = True,
            cancel: threading.Event | None = None) -> Response:
        """GET with retries and backoff for transient failures (connection errors, 5xx).
        follow_redirects=False returns a redirect itself (its Location header). `cancel` set
        (an interrupt) ends the wait for an answer or a retry within CANCEL_POLL seconds:
        Interrupted."""
        last: HttpError | None = None
        for attempt in range(max(1, attempts)):
            try:
                response = self.request("GET", url, timeout=timeout, token=token,
                                        follow_redirects=follow_redirects, cancel=cancel)
                if response.status < 500 or attempt == attempts - 1:
                    return response
            except HttpError as exc:
                last = exc
                if attempt == attempts - 1:
                    raise
            pause = min(0.2 * 2 ** attempt, 3)
            if cancel is None:
                time.sleep(pause)
            elif cancel.wait(pause):
                raise Interrupted(f"interrupted during the smoke tests (retrying {url})")
        raise last or HttpError(f"{url}: no answer")

    def request(self, method: str, url: str, *, timeout: float = 30, token: str | None = None,
                json_body: Any = None, follow_redirects: bool = True,
                cancel: threading.Event | None = None) -> Response:
        """One request, read completely; HttpError when there is no answer. With `cancel`,
        the request runs in a thread this one waits for in CANCEL_POLL slices: an interrupt
        stops the wait (Interrupted) and the request is abandoned (its own timeout ends it)."""
        if cancel is None:
            return self._request(method, url, timeout=timeout, token=token,
                                 json_body=json_body, follow_redirects=follow_redirects)
        if cancel.is_set():
            raise Interrupted(f"interrupted during the smoke tests (before {url})")
        pending = abandon.started(lambda: self._request(
            method, url, timeout=timeout, token=token, json_body=json_body,
            follow_redirects=follow_redirects), "smoke-request")
        while not abandon.wait(pending, CANCEL_POLL):
            if cancel.is_set():
                raise Interrupted(f"interrupted during the smoke tests (waiting for {url})")
        return pending.result()

    def _request(self, method: str, url: str, *, timeout: float, token: str | None,
                 json_body: Any, follow_redirects: bool) -> Response:
        import requests

        headers = {"Authorization": f"token {token}"} if token else {}
        try:
            r = self._session.request(method, url, headers=headers, json=json_body,
                                      timeout=timeout, allow_redirects=follow_redirects)
            return Response(url, r.status_code, r.headers, r.text)  # case-insensitive
        except requests.RequestException as exc:
            raise HttpError(f"{url}: {_short(exc)}") from None

    # -- the build stream -------------------------------------------------------------------
    def build_events(self, binder_url: str, spec: str, *, read_timeout: float
                     ) -> Iterator[Event]:
        """Follow GET <binder>/build/<spec> (text/event-stream); yields heartbeats and events
        until the server ends the stream. HttpError on a non-200 answer or a broken stream."""
        import requests

        url = f"{binder_url}/build/{quote(spec, safe='/:@')}"
        try:
            response = self._session.get(url, stream=True,
                                         headers={"Accept": "text/event-stream"},
                                         timeout=(10, max(5.0, read_timeout)))
        except requests.RequestException as exc:
            raise HttpError(f"cannot reach {url}: {_short(exc)}") from None
        try:
            if response.status_code != 200:
                raise HttpError(f"{url}: HTTP {response.status_code}", kind="status")
            data: list[str] = []
            for raw in response.iter_lines(decode_unicode=True):
                line = raw if isinstance(raw, str) else raw.decode()
                if line.startswith(":"):
                    yield Event(True, {})
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    try:
                        event = json.loads("\n".join(data))
                    except ValueError as exc:
                        raise HttpError(f"bad event in stream: {exc}",
                                        kind="bad-event") from None
                    data = []
                    yield Event(False, event if isinstance(event, dict) else {})
        except requests.exceptions.ChunkedEncodingError:
            raise HttpError("connection closed", kind="closed") from None
        except requests.RequestException as exc:
            raise HttpError(_short(exc), kind="broken") from None
        finally:
            response.close()

    # -- a launched server ------------------------------------------------------------------
    def execute(self, server_url: str, token: str, kernel_id: str, code: str,
                timeout: float) -> str:
        """Run `code` through the kernel websocket; return what it printed or returned.
        A kernel error is a DeployError naming the exception."""
        import websocket

        base = server_url if server_url.endswith("/") else server_url + "/"
        ws_url = base.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
        msg_id = uuid.uuid4().hex
        try:
            conn = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                               timeout=timeout)
        except (websocket.WebSocketException, OSError) as exc:
            raise HttpError(f"kernel websocket failed: {_short(exc)}") from None
        try:
            conn.send(json.dumps(_execute_request(msg_id, code)))
            return _collect_reply(conn, msg_id, timeout)
        except websocket.WebSocketException as exc:
            raise HttpError(f"kernel websocket failed: {_short(exc)}") from None
        finally:
            conn.close()


def _execute_request(msg_id: str, code: str) -> dict:
    return {
        "header": {"msg_id": msg_id, "username": "smoke", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3",
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }


def _collect_reply(conn, msg_id: str, timeout: float) -> str:
    """Output of our request; done when both the shell reply and iopub's "idle" for it have
    arrived (the two channels share the websocket but not an order)."""
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
            raise DeployError(f"kernel error: {content.get('ename')}: {content.get('evalue')}")
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


def _short(exc) -> str:
    """What went wrong, in one line. For a request that got no answer, why (connection
    refused, a name not known, timed out): urllib3's message puts that last, after the pool
    and the URL, where cutting it to length lost it."""
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        from deployer.adapters.kube import transport_reason

        return transport_reason(exc)[:200]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
