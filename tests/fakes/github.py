"""A GitHub REST API double on 127.0.0.1 for the real PyGithub.

    with GitHubDouble() as gh:
        gh.add_repo("example/federation", default_branch="main")
        client = Github(base_url=gh.url, auth=Auth.Token(gh.token))

Faithful where the deployer depends on it:
- every object carries `url`/`html_url` fields pointing at the double, as GitHub's do, so
  PyGithub follows them back here (it checks host and port against base_url);
- list endpoints paginate with `per_page`/`page` and a `Link` header (rel="next", "last");
- errors are GitHub's JSON (`message`, `documentation_url`, `errors`): 401 without the token,
  404 for unknown objects, 422 for a pull request that already exists or a non-fast-forward
  ref update, 409 for a contents write with a stale sha;
- responses carry ETags and honour If-None-Match with 304 (which GitHub does not count
  against the rate limit); `fail()` injects a 403 secondary rate limit with Retry-After, or
  5xx answers, on chosen paths.
Simplified: one token with every permission; no webhooks; git data is a small in-memory
object store (blobs, trees, commits) addressed by sha1 of its JSON.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import LocalServer

DOCS = "https://docs.github.com/rest"


class ApiError(Exception):
    """An error answer: status, message, optional `errors` list and headers."""

    def __init__(self, status: int, message: str, errors: list | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.errors = errors or []
        self.headers = headers or {}


@dataclass
class Fault:
    pattern: re.Pattern
    status: int
    times: int | None
    methods: tuple[str, ...]
    headers: dict
    message: str


@dataclass
class Repo:
    """One repository's state."""

    owner: str
    name: str
    default_branch: str = "main"
    id: int = 0
    issues: dict[int, dict] = field(default_factory=dict)      # pulls are issues too
    comments: dict[int, dict] = field(default_factory=dict)
    deployments: dict[int, dict] = field(default_factory=dict)
    statuses: dict[int, list[dict]] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class GitHubDouble:
    """The server and its state (thread-safe through one lock)."""

    def __init__(self, token: str = "ghs_test_token"):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self._ids = itertools.count(1000)
        self._server: LocalServer | None = None
        self._thread: threading.Thread | None = None
        self.routes: list[tuple[str, re.Pattern, Callable]] = []
        self._register_routes()

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> "GitHubDouble":
        handler = type("Handler", (_Handler,), {"double": self})
        self._server = LocalServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test controls --------------------------------------------------------------------
    def add_repo(self, full_name: str, default_branch: str = "main") -> Repo:
        owner, name = full_name.split("/")
        with self.lock:
            repo = Repo(owner, name, default_branch, id=next(self._ids))
            self.repos[full_name] = repo
            return repo

    def add_issue(self, full_name: str, title: str = "an issue", **extra) -> dict:
        with self.lock:
            repo = self.repos[full_name]
            number = self._next_number(repo)
            issue = {"number": number, "title": title, "body": "", "state": "open",
                     "labels": [], "comments": 0, **extra}
            repo.issues[number] = issue
            return issue

    def fail(self, pattern: str, status: int = 503, *, times: int | None = 1,
             methods: tuple[str, ...] = (), retry_after: int | None = None,
             message: str | None = None) -> None:
        """Answer matching requests with `status` (a 403 with `retry_after` is GitHub's
        secondary rate limit)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if message is None:
            message = ("You have exceeded a secondary rate limit. Please wait a few minutes "
                       "before you try again." if status == 403 else "Server Error")
        with self.lock:
            self.faults.append(Fault(re.compile(pattern), status, times, methods, headers,
                                     message))

    def counted(self) -> list[tuple[str, str]]:
        """Requests that count against the rate limit (not 304 answers)."""
        with self.lock:
            return [r for r in self.requests if not r[1].endswith(" 304")]

    # -- routing --------------------------------------------------------------------------
    def route(self, method: str, pattern: str):
        def register(fn):
            self.routes.append((method, re.compile(f"^{pattern}$"), fn))
            return fn
        return register

    def _register_routes(self) -> None:
        r = self.route
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        r("GET", repo)(self._get_repo)
        r("GET", repo + r"/issues/(?P<number>\d+)")(self._get_issue)
        r("GET", repo + r"/issues/(?P<number>\d+)/comments")(self._list_comments)
        r("POST", repo + r"/issues/(?P<number>\d+)/comments")(self._create_comment)
        r("GET", repo + r"/issues/comments/(?P<id>\d+)")(self._get_comment)
        r("PATCH", repo + r"/issues/comments/(?P<id>\d+)")(self._edit_comment)
        r("POST", repo + r"/issues/(?P<number>\d+)/labels")(self._add_labels)
        r("GET", repo + r"/deployments")(self._list_deployments)
        r("POST", repo + r"/deployments")(self._create_deployment)
        r("GET", repo + r"/deployments/(?P<id>\d+)")(self._get_deployment)
        r("GET", repo + r"/deployments/(?P<id>\d+)/statuses")(self._list_statuses)
        r("POST", repo + r"/deployments/(?P<id>\d+)/statuses")(self._create_status)
        r("GET", r"/rate_limit")(self._rate_limit)

    def handle(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
        for verb, pattern, fn in self.routes:
            if verb != method:
                continue
            match = pattern.match(path)
            if match:
                with self.lock:
                    return fn(query=query, body=body, **match.groupdict())
        raise ApiError(404, "Not Found")

    # -- helpers for handlers -------------------------------------------------------------
    def api(self, path: str) -> str:
        return f"{self.url}{path}"

    def repo(self, owner: str, repo: str) -> Repo:
        found = self.repos.get(f"{owner}/{repo}")
        if found is None:
            raise ApiError(404, "Not Found")
        return found

    def repo_json(self, r: Repo) -> dict:
        base = self.api(f"/repos/{r.full_name}")
        return {"id": r.id, "name": r.name, "full_name": r.full_name, "private": False,
                "owner": {"login": r.owner, "id": 1, "type": "Organization",
                          "url": self.api(f"/users/{r.owner}")},
                "url": base, "html_url": f"https://github.example/{r.full_name}",
                "default_branch": r.default_branch,
                "issues_url": base + "/issues{/number}", "pulls_url": base + "/pulls{/number}"}

    def _next_number(self, repo: Repo) -> int:
        return max(repo.issues, default=0) + 1

    def _issue_json(self, r: Repo, issue: dict) -> dict:
        base = self.api(f"/repos/{r.full_name}/issues/{issue['number']}")
        out = {**issue, "id": issue.get("id") or issue["number"] + 50000, "url": base,
               "html_url": f"https://github.example/{r.full_name}/issues/{issue['number']}",
               "comments_url": base + "/comments", "repository_url": self.api(
                   f"/repos/{r.full_name}"),
               "user": {"login": issue.get("user", "someone"), "id": 2}}
        out.pop("head", None)
        out.pop("base", None)
        return out

    def _comment_json(self, r: Repo, comment: dict) -> dict:
        return {**comment, "url": self.api(f"/repos/{r.full_name}/issues/comments/"
                                           f"{comment['id']}"),
                "html_url": f"https://github.example/{r.full_name}/issues/"
                            f"{comment['issue']}#issuecomment-{comment['id']}",
                "issue_url": self.api(f"/repos/{r.full_name}/issues/{comment['issue']}"),
                "user": {"login": comment.get("user", "deploy-bot"), "id": 3}}

    # -- handlers -------------------------------------------------------------------------
    def _get_repo(self, owner, repo, **_):
        return 200, self.repo_json(self.repo(owner, repo)), {}

    def _get_issue(self, owner, repo, number, **_):
        r = self.repo(owner, repo)
        issue = r.issues.get(int(number))
        if issue is None:
            raise ApiError(404, "Not Found")
        return 200, self._issue_json(r, issue), {}

    def _list_comments(self, owner, repo, number, query, **_):
        r = self.repo(owner, repo)
        self._issue_or_404(r, number)
        items = [self._comment_json(r, c) for c in sorted(r.comments.values(),
                                                          key=lambda c: c["id"])
                 if c["issue"] == int(number)]
        return paginate(items, query, self.api(f"/repos/{r.full_name}/issues/{number}/comments"))

    def _create_comment(self, owner, repo, number, body, **_):
        r = self.repo(owner, repo)
        issue = self._issue_or_404(r, number)
        text = _required(body, "body")
        comment = {"id": next(self._ids), "issue": int(number), "body": text,
                   "created_at": _now(), "updated_at": _now()}
        r.comments[comment["id"]] = comment
        issue["comments"] = issue.get("comments", 0) + 1
        return 201, self._comment_json(r, comment), {}

    def _get_comment(self, owner, repo, id, **_):
        r = self.repo(owner, repo)
        comment = r.comments.get(int(id))
        if comment is None:
            raise ApiError(404, "Not Found")
        return 200, self._comment_json(r, comment), {}

    def _edit_comment(self, owner, repo, id, body, **_):
        r = self.repo(owner, repo)
        comment = r.comments.get(int(id))
        if comment is None:
            raise ApiError(404, "Not Found")
        comment["body"] = _required(body, "body")
        comment["updated_at"] = _now()
        return 200, self._comment_json(r, comment), {}

    def _add_labels(self, owner, repo, number, body, **_):
        r = self.repo(owner, repo)
        issue = self._issue_or_404(r, number)
        names = body.get("labels", body) if isinstance(body, dict) else body
        for name in names or []:
            label = r.labels.setdefault(name, {"name": name, "color": "ededed",
                                               "id": next(self._ids)})
            if name not in [x["name"] for x in issue["labels"]]:
                issue["labels"].append(label)
        return 200, issue["labels"], {}

    def _list_deployments(self, owner, repo, query, **_):
        r = self.repo(owner, repo)
        items = [self._deployment_json(r, d) for d in sorted(r.deployments.values(),
                                                             key=lambda d: -d["id"])
                 if all(str(d.get(k)) == v for k, v in query.items()
                        if k in ("environment", "ref", "sha", "task"))]
        return paginate(items, query, self.api(f"/repos/{r.full_name}/deployments"))

    def _create_deployment(self, owner, repo, body, **_):
        r = self.repo(owner, repo)
        ref = _required(body, "ref")
        deployment = {"id": next(self._ids), "ref": ref, "sha": body.get("sha") or ref,
                      "task": body.get("task", "deploy"), "payload": body.get("payload", {}),
                      "environment": body.get("environment", "production"),
                      "description": body.get("description"), "created_at": _now(),
                      "transient_environment": body.get("transient_environment", False),
                      "production_environment": body.get("production_environment", False)}
        r.deployments[deployment["id"]] = deployment
        r.statuses[deployment["id"]] = []
        return 201, self._deployment_json(r, deployment), {}

    def _get_deployment(self, owner, repo, id, **_):
        r = self.repo(owner, repo)
        deployment = r.deployments.get(int(id))
        if deployment is None:
            raise ApiError(404, "Not Found")
        return 200, self._deployment_json(r, deployment), {}

    def _list_statuses(self, owner, repo, id, query, **_):
        r = self.repo(owner, repo)
        if int(id) not in r.deployments:
            raise ApiError(404, "Not Found")
        items = list(reversed(r.statuses[int(id)]))
        return paginate(items, query, self.api(f"/repos/{r.full_name}/deployments/{id}/"
                                               "statuses"))

    def _create_status(self, owner, repo, id, body, **_):
        r = self.repo(owner, repo)
        deployment = r.deployments.get(int(id))
        if deployment is None:
            raise ApiError(404, "Not Found")
        state = _required(body, "state")
        allowed = ("error", "failure", "inactive", "in_progress", "queued", "pending",
                   "success")
        if state not in allowed:
            raise ApiError(422, "Validation Failed", [{"resource": "DeploymentStatus",
                                                       "field": "state",
                                                       "code": "invalid"}])
        status = {"id": next(self._ids), "state": state,
                  "description": body.get("description", ""),
                  "log_url": body.get("log_url", ""), "target_url": body.get("target_url", ""),
                  "environment": body.get("environment") or deployment["environment"],
                  "environment_url": body.get("environment_url", ""), "created_at": _now(),
                  "url": self.api(f"/repos/{r.full_name}/deployments/{id}/statuses/"
                                  f"{len(r.statuses[int(id)]) + 1}"),
                  "deployment_url": self.api(f"/repos/{r.full_name}/deployments/{id}")}
        if state == "success" and body.get("auto_inactive", True):
            for other in r.deployments.values():  # GitHub marks older ones inactive
                if other["environment"] == deployment["environment"] and \
                        other["id"] != deployment["id"]:
                    older = r.statuses.get(other["id"]) or []
                    if older and older[-1]["state"] == "success":
                        older.append({**older[-1], "state": "inactive",
                                      "id": next(self._ids)})
        r.statuses[int(id)].append(status)
        return 201, status, {}

    def _rate_limit(self, **_):
        core = {"limit": 5000, "remaining": 4990, "reset": int(time.time()) + 3600, "used": 10}
        return 200, {"resources": {"core": core}, "rate": core}, {}

    def _deployment_json(self, r: Repo, d: dict) -> dict:
        base = self.api(f"/repos/{r.full_name}/deployments/{d['id']}")
        return {**d, "url": base, "statuses_url": base + "/statuses",
                "repository_url": self.api(f"/repos/{r.full_name}"),
                "creator": {"login": "deploy-bot", "id": 3}}

    def _issue_or_404(self, r: Repo, number) -> dict:
        issue = r.issues.get(int(number))
        if issue is None:
            raise ApiError(404, "Not Found")
        return issue


def paginate(items: list, query: dict, base_url: str) -> tuple[int, list, dict]:
    """One page of `items` and the Link header GitHub sends."""
    per_page = max(1, min(100, int(query.get("per_page", 30))))
    page = max(1, int(query.get("page", 1)))
    pages = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page:page * per_page]
    links = []
    extra = "".join(f"&{k}={v}" for k, v in sorted(query.items())
                    if k not in ("page", "per_page"))

    def link(n: int, rel: str) -> str:
        return f'<{base_url}?per_page={per_page}&page={n}{extra}>; rel="{rel}"'

    if page < pages:
        links += [link(page + 1, "next"), link(pages, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return 200, chunk, ({"Link": ", ".join(links)} if links else {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    double: GitHubDouble

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self):  # noqa: N802
        self._dispatch("PATCH")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        double = self.double
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        path = path[len("/api/v3"):] if path.startswith("/api/v3/") else path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._send(400, {"message": "Problems parsing JSON"}, {}, method, path)
        try:
            if self.headers.get("Authorization") not in (f"token {double.token}",
                                                         f"Bearer {double.token}"):
                raise ApiError(401, "Bad credentials")
            fault = self._fault(method, path)
            if fault is not None:
                raise ApiError(fault.status, fault.message, headers=fault.headers)
            status, data, headers = double.handle(method, path, query, body)
        except ApiError as exc:
            payload = {"message": exc.message, "documentation_url": DOCS}
            if exc.errors:
                payload["errors"] = exc.errors
            return self._send(exc.status, payload, exc.headers, method, path)
        self._send(status, data, headers, method, path)

    def _fault(self, method: str, path: str) -> Fault | None:
        double = self.double
        with double.lock:
            for fault in double.faults:
                if fault.methods and method not in fault.methods:
                    continue
                if fault.times == 0 or not fault.pattern.search(path):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def _send(self, status: int, data: Any, headers: dict, method: str, path: str) -> None:
        body = json.dumps(data).encode() if data is not None else b""
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if method == "GET" and status == 200 and self.headers.get("If-None-Match") == etag:
            status, body = 304, b""
        with self.double.lock:
            self.double.requests.append((method, f"{path} {status}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if method == "GET" and status in (200, 304):
            self.send_header("ETag", etag)
        self.send_header("X-RateLimit-Limit", "5000")
        self.send_header("X-RateLimit-Remaining", "4990")
        self.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
        self.send_header("X-GitHub-Api-Version", "2022-11-28")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def _required(body: dict, key: str):
    if not isinstance(body, dict) or body.get(key) in (None, ""):
        raise ApiError(422, "Invalid request.", [{"field": key, "code": "missing_field"}])
    return body[key]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextmanager
def github_double() -> Iterator[GitHubDouble]:
    with GitHubDouble() as double:
        yield double
