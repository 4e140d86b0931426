"""A GitHub REST API double on 127.0.0.1 for the real PyGithub.

    with GitHubDouble() as gh:
        gh.add_repo("example/federation", default_branch="main")
        gh.seed("example/federation", {"config/prod.yaml": "a: 1\n"})
        client = Github(base_url=gh.url, auth=Auth.Token(gh.token))

Served, under /repos/{owner}/{repo}: the repository; issues' comments and labels; deployments
and their statuses; git data (blobs, trees, commits, refs, matching-refs); branches, commits
(with their pulls), contents (read, create or update, delete); pull requests (create, list,
get, edit, merge, commits, files); compare; releases and tags. Also /users/{login} and
/rate_limit. Test controls (`seed`, `push`, `add_upstream_history`, `add_fork`, `open_pull`,
...) set state up without requests; `requests` logs every answer and `counted()` those that
cost rate limit.

Faithful where the deployer and the bump bot depend on it:
- every object carries `url`/`html_url` fields pointing at the double (html at
  https://github.example), as GitHub's do, so PyGithub follows them back here (it checks host
  and port against base_url);
- list endpoints paginate with `per_page`/`page` and a `Link` header (rel="next", "last");
- errors are GitHub's JSON (`message`, `documentation_url`, `errors`): 401 without the token;
  404 for unknown objects; 422 "Validation Failed" with GitHub's `errors` for a pull request
  that already exists ("A pull request already exists for OWNER:BRANCH."), has no commits
  ("No commits between main and BRANCH") or names a missing branch; 422 "Reference already
  exists", "Update is not a fast forward", "Reference does not exist", "Object does not
  exist"; 422 "No commit found for SHA: x" from /commits/{ref}; 405 for merging a closed, draft
  or conflicting pull; 409 for a merge whose `sha` is stale and for a contents write with a
  stale sha (422 when the sha is missing);
- git objects get git's own shas (sha1 of "blob <size>\\0<content>", trees and commits in git's
  object format), so a blob's sha is what `git hash-object` says; a ref is a full sha, a branch,
  a tag or a unique short sha (>= 7 hex); branch names may contain slashes (PyGithub sends them
  unescaped in /git/ref/{ref} and /branches/{branch}, %2F-escaped in /commits/{ref});
- /git/ref/{ref} (singular, which PyGithub 2.10's get_git_ref calls) answers one ref; the ref's
  own `url` is /git/refs/{ref} (plural), which GitRef.edit and .delete then PATCH and DELETE;
  GET /git/refs/{ref} answers the ref, or as GitHub's legacy form a list of refs under a prefix;
- pull requests are issues (one number sequence; /issues/{n} of a pull carries `pull_request`;
  comments and labels go through /issues/{n}/...); an open pull's head and base shas follow
  their branches and freeze when it closes; list items are GitHub's "simple" pulls, without
  merged/mergeable/comments/commits/changed_files, so PyGithub fetches /pulls/{n} when one of
  those is read, as it does against GitHub; a merged pull cannot be reopened;
- responses carry ETags and honour If-None-Match with 304 (which GitHub does not count
  against the rate limit); `fail()` injects a 403 secondary rate limit with Retry-After, or
  5xx answers, on chosen paths.
Simplified:
- one token with every permission, acting as a GitHub App: pulls it opens are by
  `deploy-bot[bot]` (type Bot), its comments by `github-actions[bot]` (type Bot;
  `add_comment` writes one as a person), its other writes by `deploy-bot`; `open_pull`
  opens one as a person (type User), from the repository or from a fork; no webhooks,
  reviews, checks or branch protection;
- a fork (`add_fork`) shares its parent's object store (GitHub keeps a fork network's objects
  together) and starts with a copy of its branches; a pull from a fork names it in `head.repo`
  and `head.label` (`OWNER:BRANCH`), and the API opens one for `head: OWNER:BRANCH`;
- each repository (with its forks) has its own object store; commits made through test
  controls are dated now;
  an upstream commit given a sha prefix by `add_upstream_history` gets a sha that starts with
  that prefix and goes on with its real git sha;
- merging: "merge" always writes a merge commit (parents base and head) and "squash" one
  commit on base, as GitHub does; "rebase" fast-forwards when it can and squashes otherwise.
  Trees merge path by path, three-way against the merge base; a path changed differently on
  both sides is a conflict (no line-level merge). `mergeable` is computed at once (GitHub
  answers null until a background job has run); `merge_commit_sha` is null until merged
  (GitHub shows a test merge's sha);
- `files` of commits, compares and pulls list paths with status and line counts, no `patch`;
- a commit's `author`/`committer` user is known only for `<login>@users.noreply.github.com`
  emails, null otherwise;
- /compare pages its commits 250 at a time (per_page up to 1000), files only on page 1; an
  unknown base or head is 404 "Not Found"; only `base...head` of this repository;
- /commits/{sha}/pulls lists the pulls whose head or merge commit is that sha and those a test
  control associated with it, not every pull whose branch contains it;
- releases are newest first by creation; "latest" is the newest non-draft non-prerelease;
  `add_release` creates the tag (lightweight, at the default branch's head unless `target`)
  when it is missing; /tags lists tags newest first by creation.
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import itertools
import json
import re
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.fakes.http import LocalServer

DOCS = "https://docs.github.com/rest"
HTML = "https://github.example"
BOT = "deploy-bot"
APP_USER = f"{BOT}[bot]"          # who opens pulls through the API with the token
BOT_SIGNATURE = (BOT, f"{BOT}@users.noreply.github.com")
ACTIONS_BOT = "github-actions[bot]"   # who comments made with the token are by (type Bot)
MODES = ("100644", "100755", "040000", "160000", "120000")


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
    issues: dict[int, dict] = field(default_factory=dict)      # pulls are issues with "pull"
    comments: dict[int, dict] = field(default_factory=dict)
    deployments: dict[int, dict] = field(default_factory=dict)
    statuses: dict[int, list[dict]] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)
    objects: dict[str, dict] = field(default_factory=dict)     # sha -> blob, tree or commit
    refs: dict[str, str] = field(default_factory=dict)         # "refs/heads/main" -> sha
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    releases: dict[int, dict] = field(default_factory=dict)
    fork_of: str | None = None                                  # the parent's full name

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

    # -- test controls: repositories and issues -------------------------------------------
    def add_repo(self, full_name: str, default_branch: str = "main") -> Repo:
        """An empty repository (no commits, no branches)."""
        owner, name = full_name.split("/")
        with self.lock:
            repo = Repo(owner, name, default_branch, id=next(self._ids))
            self.repos[full_name] = repo
            return repo

    def add_fork(self, full_name: str, owner: str) -> Repo:
        """`owner`'s fork of a repository: the same object store, a copy of its branches."""
        with self.lock:
            parent = self.repos[full_name]
            fork = Repo(owner, parent.name, parent.default_branch, id=next(self._ids),
                        objects=parent.objects, fork_of=parent.full_name,
                        refs={n: s for n, s in parent.refs.items()
                              if n.startswith("refs/heads/")})
            self.repos[fork.full_name] = fork
            return fork

    def add_issue(self, full_name: str, title: str = "an issue", **extra) -> dict:
        """An open issue; `extra` fields go into its JSON."""
        with self.lock:
            repo = self.repos[full_name]
            number = self._next_number(repo)
            issue = {"number": number, "title": title, "body": "", "state": "open",
                     "labels": [], "comments": 0, **extra}
            repo.issues[number] = issue
            return issue

    def add_comment(self, full_name: str, number: int, body: str,
                    user: str = "a-person") -> dict:
        """A comment on issue/pull `number` by `user` (a person unless the login ends in
        `[bot]`), as if written on the web."""
        with self.lock:
            r = self.repos[full_name]
            issue = self._issue_or_404(r, number)
            comment = {"id": next(self._ids), "issue": int(number), "body": body,
                       "user": user, "created_at": _now(), "updated_at": _now()}
            r.comments[comment["id"]] = comment
            issue["comments"] = issue.get("comments", 0) + 1
            return comment

    # -- test controls: git ---------------------------------------------------------------
    def seed(self, full_name: str, files: dict[str, str], branch: str = "main",
             message: str = "initial") -> str:
        """Commit exactly `files` (path -> text) as `branch`'s tree, on its head if any."""
        with self.lock:
            return self._commit_files(self.repos[full_name], branch, files, message,
                                      BOT_SIGNATURE, snapshot=True)

    def push(self, full_name: str, branch: str, files: dict[str, str | None],
             message: str = "a change",
             author: tuple[str, str] = ("A Person", "person@example.org")) -> str:
        """A commit on `branch` changing `files` (None deletes), as a `git push` would; a new
        branch starts from the default branch's head."""
        with self.lock:
            return self._commit_files(self.repos[full_name], branch, files, message, author,
                                      snapshot=False)

    def import_git(self, full_name: str, repo_dir, ref: str = "HEAD",
                   branch: str | None = None) -> str:
        """Copy a real local repository's commit `ref` and everything it reaches into the
        store with git's own shas (read with the real git), as a `git push` would, and
        point `branch` (default: the default branch) at it; returns the commit's sha."""
        import subprocess

        def git(*args: str, data: bytes | None = None) -> bytes:
            return subprocess.run(["git", "-C", str(repo_dir), *args], input=data,
                                  capture_output=True, check=True, timeout=60).stdout

        head = git("rev-parse", f"{ref}^{{commit}}").decode().strip()
        shas = [line.split()[0] for line in git("rev-list", "--objects", head).decode()
                .splitlines() if line.strip()]
        batch = git("cat-file", "--batch", data="\n".join(shas).encode() + b"\n")
        with self.lock:
            r = self.repos[full_name]
            at = 0
            while at < len(batch):
                header_end = batch.index(b"\n", at)
                sha, kind, size = batch[at:header_end].decode().split()
                payload = batch[header_end + 1:header_end + 1 + int(size)]
                at = header_end + 1 + int(size) + 1
                r.objects.setdefault(sha, {"type": kind, **_parse_git_object(kind, payload)})
            r.refs[f"refs/heads/{branch or r.default_branch}"] = head
        return head

    def file_at(self, full_name: str, ref: str, path: str) -> str | None:
        """The text of `path` at a branch, tag or sha; None when either is missing."""
        with self.lock:
            r = self.repos[full_name]
            sha = self._resolve(r, ref)
            entry = self._files_of(r, sha).get(path.strip("/")) if sha else None
            blob = entry is not None and entry[1] == "blob"
            return r.objects[entry[2]]["content"].decode() if blob else None

    def branch_sha(self, full_name: str, branch: str) -> str | None:
        """The sha `branch` points at, or None."""
        with self.lock:
            return self.repos[full_name].refs.get(f"refs/heads/{branch}")

    # -- test controls: pull requests -----------------------------------------------------
    def pulls(self, full_name: str, state: str | None = None) -> list[dict]:
        """Every pull's full JSON by number, optionally only "open" or "closed" ones."""
        with self.lock:
            r = self.repos[full_name]
            return [self._pull_json(r, i) for _, i in sorted(r.issues.items())
                    if "pull" in i and state in (None, i["state"])]

    def open_pull(self, full_name: str, head: str, *, base: str | None = None,
                  title: str = "a change", body: str = "", user: str = "a-person",
                  head_repo: str | None = None, draft: bool = False) -> dict:
        """A pull opened by `user` (a person unless the login ends in `[bot]`) from `head`, a
        branch of the repository or of the fork `head_repo`; its full JSON."""
        with self.lock:
            r = self.repos[full_name]
            source = self.repos[head_repo] if head_repo else r
            issue = self._new_pull(r, source, head, base or r.default_branch, title, body,
                                   draft, user, maintainer_can_modify=False)
            return self._pull_json(r, issue)

    def merge_pull(self, full_name: str, number: int, method: str = "merge") -> str:
        """Merge a pull as its merge button would; the new head sha of its base."""
        with self.lock:
            r = self.repos[full_name]
            return self._merge(r, self._pull_or_404(r, number), method)

    def close_pull(self, full_name: str, number: int) -> None:
        """Close a pull without merging it."""
        with self.lock:
            r = self.repos[full_name]
            self._set_state(r, self._pull_or_404(r, number), "closed")

    def associate_pull(self, full_name: str, sha: str, number: int) -> None:
        """Make /commits/{sha}/pulls list pull `number`."""
        with self.lock:
            self.repos[full_name].commit_pulls.setdefault(sha, []).append(number)

    # -- test controls: upstream history and releases -------------------------------------
    def add_upstream_history(self, full_name: str, commits: list[tuple],
                             branch: str = "main") -> list[str]:
        """A chain of commits on `branch`, one per tuple (sha_prefix | None, message
        [, pull_number | None, pull_title, labels]); a prefix starts the commit's sha, a pull
        number records a merged pull (title, labels) associated with the commit. Their shas."""
        shas = []
        with self.lock:
            r = self.repos[full_name]
            for prefix, message, number, title, labels in (
                    tuple(c) + (None, None, ())[len(c) - 2:] for c in commits):
                if prefix and not re.fullmatch(r"[0-9a-f]{1,40}", prefix):
                    raise ValueError(f"not a sha prefix: {prefix!r}")
                parent = r.refs.get(f"refs/heads/{branch}")
                tree = r.objects[parent]["tree"] if parent else self._tree_from(r, {})
                sha = self._commit(r, message, tree, [parent] if parent else [],
                                   ("A Contributor", "contributor@example.org"),
                                   prefix=prefix or "")
                r.refs[f"refs/heads/{branch}"] = sha
                if number is not None:
                    self._add_merged_pull(r, number, title or message.splitlines()[0],
                                          labels or (), branch, parent or sha, sha)
                shas.append(sha)
        return shas

    def add_release(self, full_name: str, tag: str, name: str | None = None, body: str = "",
                    prerelease: bool = False, draft: bool = False,
                    target: str | None = None) -> dict:
        """A release (newest so far); creates its tag at `target` or the default branch's
        head when missing."""
        with self.lock:
            r = self.repos[full_name]
            commitish = target or r.default_branch
            sha = self._resolve(r, commitish)
            if not draft and sha and f"refs/tags/{tag}" not in r.refs:
                r.refs[f"refs/tags/{tag}"] = sha
            release = {"id": next(self._ids), "tag_name": tag, "name": name or tag,
                       "body": body, "draft": draft, "prerelease": prerelease,
                       "target_commitish": commitish, "created_at": _now(),
                       "published_at": None if draft else _now()}
            r.releases[release["id"]] = release
            return dict(release)

    # -- test controls: faults and accounting ---------------------------------------------
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
        issue = repo + r"/issues/(?P<number>\d+)"
        r("GET", repo)(self._get_repo)
        r("GET", r"/users/(?P<login>[^/]+)")(self._get_user)
        r("GET", r"/rate_limit")(self._rate_limit)
        # issues, comments, labels
        r("GET", issue)(self._get_issue)
        r("GET", issue + r"/comments")(self._list_comments)
        r("POST", issue + r"/comments")(self._create_comment)
        r("GET", repo + r"/issues/comments/(?P<id>\d+)")(self._get_comment)
        r("PATCH", repo + r"/issues/comments/(?P<id>\d+)")(self._edit_comment)
        r("GET", issue + r"/labels")(self._list_labels)
        r("POST", issue + r"/labels")(self._add_labels)
        r("PUT", issue + r"/labels")(self._set_labels)
        r("DELETE", issue + r"/labels")(self._clear_labels)
        r("DELETE", issue + r"/labels/(?P<name>.+)")(self._remove_label)
        r("GET", repo + r"/labels/(?P<name>.+)")(self._get_label)
        # deployments
        r("GET", repo + r"/deployments")(self._list_deployments)
        r("POST", repo + r"/deployments")(self._create_deployment)
        r("GET", repo + r"/deployments/(?P<id>\d+)")(self._get_deployment)
        r("GET", repo + r"/deployments/(?P<id>\d+)/statuses")(self._list_statuses)
        r("POST", repo + r"/deployments/(?P<id>\d+)/statuses")(self._create_status)
        # git data
        r("POST", repo + r"/git/blobs")(self._create_blob)
        r("GET", repo + r"/git/blobs/(?P<sha>[^/]+)")(self._get_blob)
        r("POST", repo + r"/git/trees")(self._create_tree)
        r("GET", repo + r"/git/trees/(?P<sha>[^/]+)")(self._get_tree)
        r("POST", repo + r"/git/commits")(self._create_git_commit)
        r("GET", repo + r"/git/commits/(?P<sha>[^/]+)")(self._get_git_commit)
        r("GET", repo + r"/git/ref/(?P<ref>.+)")(self._get_ref)
        r("GET", repo + r"/git/refs")(self._matching_refs)
        r("GET", repo + r"/git/refs/(?P<ref>.+)")(self._get_refs)
        r("GET", repo + r"/git/matching-refs(?:/(?P<ref>.*))?")(self._matching_refs)
        r("POST", repo + r"/git/refs")(self._create_ref)
        r("PATCH", repo + r"/git/refs/(?P<ref>.+)")(self._update_ref)
        r("DELETE", repo + r"/git/refs/(?P<ref>.+)")(self._delete_ref)
        # branches, commits, contents
        r("GET", repo + r"/branches/(?P<branch>.+)")(self._get_branch)
        r("GET", repo + r"/commits/(?P<ref>[^/]+)")(self._get_commit)
        r("GET", repo + r"/commits/(?P<ref>[^/]+)/pulls")(self._commit_pulls)
        r("GET", repo + r"/contents(?:/(?P<path>.*))?")(self._get_contents)
        r("PUT", repo + r"/contents/(?P<path>.+)")(self._put_contents)
        r("DELETE", repo + r"/contents/(?P<path>.+)")(self._delete_contents)
        # pull requests
        pull = repo + r"/pulls/(?P<number>\d+)"
        r("POST", repo + r"/pulls")(self._create_pull)
        r("GET", repo + r"/pulls")(self._list_pulls)
        r("GET", pull)(self._get_pull)
        r("PATCH", pull)(self._edit_pull)
        r("GET", pull + r"/commits")(self._pull_commits)
        r("GET", pull + r"/files")(self._pull_files)
        r("GET", pull + r"/merge")(self._is_merged)
        r("PUT", pull + r"/merge")(self._merge_pull)
        # upstream history: compare, releases, tags
        r("GET", repo + r"/compare/(?P<basehead>.+)")(self._compare)
        r("GET", repo + r"/releases")(self._list_releases)
        r("GET", repo + r"/releases/latest")(self._latest_release)
        r("GET", repo + r"/releases/tags/(?P<tag>.+)")(self._release_by_tag)
        r("GET", repo + r"/releases/(?P<id>\d+)")(self._get_release)
        r("GET", repo + r"/tags")(self._list_tags)

    def handle(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
        for verb, pattern, fn in self.routes:
            if verb != method:
                continue
            match = pattern.match(path)
            if match:
                groups = {k: unquote(v) if v is not None else None
                          for k, v in match.groupdict().items()}
                with self.lock:
                    return fn(query=query, body=body, **groups)
        raise ApiError(404, "Not Found")

    # -- handlers: repository, users, rate limit ------------------------------------------
    def _get_repo(self, owner, repo, **_):
        return 200, self.repo_json(self.repo(owner, repo)), {}

    def _get_user(self, login, **_):
        return 200, self._user(login), {}

    def _rate_limit(self, **_):
        core = {"limit": 5000, "remaining": 4990, "reset": int(time.time()) + 3600, "used": 10}
        return 200, {"resources": {"core": core}, "rate": core}, {}

    # -- handlers: issues, comments, labels -----------------------------------------------
    def _get_issue(self, owner, repo, number, **_):
        r = self.repo(owner, repo)
        return 200, self._issue_json(r, self._issue_or_404(r, number)), {}

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
                   "user": ACTIONS_BOT, "created_at": _now(), "updated_at": _now()}
        r.comments[comment["id"]] = comment
        issue["comments"] = issue.get("comments", 0) + 1
        return 201, self._comment_json(r, comment), {}

    def _get_comment(self, owner, repo, id, **_):
        r = self.repo(owner, repo)
        return 200, self._comment_json(r, _found(r.comments.get(int(id)))), {}

    def _edit_comment(self, owner, repo, id, body, **_):
        r = self.repo(owner, repo)
        comment = _found(r.comments.get(int(id)))
        comment["body"] = _required(body, "body")
        comment["updated_at"] = _now()
        return 200, self._comment_json(r, comment), {}

    def _list_labels(self, owner, repo, number, query, **_):
        r = self.repo(owner, repo)
        issue = self._issue_or_404(r, number)
        return paginate([self._label_json(r, x) for x in issue["labels"]], query,
                        self.api(f"/repos/{r.full_name}/issues/{number}/labels"))

    def _add_labels(self, owner, repo, number, body, **_):
        r = self.repo(owner, repo)
        issue = self._issue_or_404(r, number)
        self._attach_labels(r, issue, _label_names(body))
        return 200, [self._label_json(r, x) for x in issue["labels"]], {}

    def _set_labels(self, owner, repo, number, body, **_):
        r = self.repo(owner, repo)
        issue = self._issue_or_404(r, number)
        issue["labels"] = []
        self._attach_labels(r, issue, _label_names(body))
        return 200, [self._label_json(r, x) for x in issue["labels"]], {}

    def _clear_labels(self, owner, repo, number, **_):
        self._issue_or_404(self.repo(owner, repo), number)["labels"] = []
        return 204, None, {}

    def _remove_label(self, owner, repo, number, name, **_):
        r = self.repo(owner, repo)
        issue = self._issue_or_404(r, number)
        if name not in [x["name"] for x in issue["labels"]]:
            raise ApiError(404, "Label does not exist")
        issue["labels"] = [x for x in issue["labels"] if x["name"] != name]
        return 200, [self._label_json(r, x) for x in issue["labels"]], {}

    def _get_label(self, owner, repo, name, **_):
        r = self.repo(owner, repo)
        return 200, self._label_json(r, _found(r.labels.get(name))), {}

    # -- handlers: deployments ------------------------------------------------------------
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
        return 200, self._deployment_json(r, _found(r.deployments.get(int(id)))), {}

    def _list_statuses(self, owner, repo, id, query, **_):
        r = self.repo(owner, repo)
        _found(r.deployments.get(int(id)))
        items = list(reversed(r.statuses[int(id)]))
        return paginate(items, query, self.api(f"/repos/{r.full_name}/deployments/{id}/"
                                               "statuses"))

    def _create_status(self, owner, repo, id, body, **_):
        r = self.repo(owner, repo)
        deployment = _found(r.deployments.get(int(id)))
        state = _required(body, "state")
        allowed = ("error", "failure", "inactive", "in_progress", "queued", "pending",
                   "success")
        if state not in allowed:
            raise _invalid("DeploymentStatus", "state")
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

    # -- handlers: git data ---------------------------------------------------------------
    def _create_blob(self, owner, repo, body, **_):
        r = self.repo(owner, repo)
        content, encoding = body.get("content"), body.get("encoding", "utf-8")
        if not isinstance(content, str):
            raise _invalid("Blob", "content", "missing_field")
        if encoding not in ("utf-8", "base64"):
            raise _invalid("Blob", "encoding")
        raw = base64.b64decode(content) if encoding == "base64" else content.encode()
        sha = self._blob(r, raw)
        return 201, {"sha": sha, "url": self.api(f"/repos/{r.full_name}/git/blobs/{sha}")}, {}

    def _get_blob(self, owner, repo, sha, **_):
        r = self.repo(owner, repo)
        content = self._object(r, sha, "blob")["content"]
        return 200, {"sha": sha, "node_id": f"B_{sha[:16]}", "size": len(content),
                     "url": self.api(f"/repos/{r.full_name}/git/blobs/{sha}"),
                     "content": _b64(content), "encoding": "base64"}, {}

    def _create_tree(self, owner, repo, body, **_):
        r = self.repo(owner, repo)
        base = body.get("base_tree")
        if base and r.objects.get(base, {}).get("type") != "tree":
            raise ApiError(422, "Invalid tree info", [{"resource": "Tree",
                                                       "field": "base_tree",
                                                       "code": "invalid"}])
        flat = self._flatten(r, base) if base else {}
        for entry in _required(body, "tree"):
            self._apply_tree_entry(r, flat, entry)
        return 201, self._tree_json(r, self._tree_from(r, flat)), {}

    def _get_tree(self, owner, repo, sha, query, **_):
        r = self.repo(owner, repo)
        self._object(r, sha, "tree")
        recursive = query.get("recursive") not in (None, "", "0", "false")
        return 200, self._tree_json(r, sha, recursive), {}

    def _create_git_commit(self, owner, repo, body, **_):
        r = self.repo(owner, repo)
        tree, parents = _required(body, "tree"), body.get("parents", [])
        if r.objects.get(tree, {}).get("type") != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        if any(r.objects.get(p, {}).get("type") != "commit" for p in parents):
            raise ApiError(422, "Parent SHA does not exist or is not a commit object")
        author = body.get("author") or BOT_SIGNATURE
        sha = self._commit(r, _required(body, "message"), tree, parents, author,
                           body.get("committer") or author)
        return 201, self._git_commit_json(r, sha), {}

    def _get_git_commit(self, owner, repo, sha, **_):
        r = self.repo(owner, repo)
        self._object(r, sha, "commit")
        return 200, self._git_commit_json(r, sha), {}

    def _get_ref(self, owner, repo, ref, **_):
        r = self.repo(owner, repo)
        if f"refs/{ref}" not in r.refs:
            raise ApiError(404, "Not Found")
        return 200, self._ref_json(r, f"refs/{ref}"), {}

    def _get_refs(self, owner, repo, ref, query, **_):
        r = self.repo(owner, repo)
        if f"refs/{ref}" in r.refs:
            return 200, self._ref_json(r, f"refs/{ref}"), {}
        items = [self._ref_json(r, n) for n in sorted(r.refs) if n.startswith(f"refs/{ref}")]
        if not items:
            raise ApiError(404, "Not Found")
        return paginate(items, query, self.api(f"/repos/{r.full_name}/git/refs/{ref}"))

    def _matching_refs(self, owner, repo, query, ref=None, **_):
        r = self.repo(owner, repo)
        prefix = f"refs/{ref}" if ref else "refs/"
        items = [self._ref_json(r, n) for n in sorted(r.refs) if n.startswith(prefix)]
        path = f"/git/matching-refs/{quote(ref or '')}" if ref is not None else "/git/refs"
        return paginate(items, query, self.api(f"/repos/{r.full_name}{path}"))

    def _create_ref(self, owner, repo, body, **_):
        r = self.repo(owner, repo)
        name, sha = _required(body, "ref"), _required(body, "sha")
        if not name.startswith("refs/") or name.count("/") < 2:
            raise ApiError(422, f"{name} is not a valid ref name.")
        if name in r.refs:
            raise ApiError(422, "Reference already exists")
        if sha not in r.objects:
            raise ApiError(422, "Object does not exist")
        r.refs[name] = sha
        return 201, self._ref_json(r, name), {}

    def _update_ref(self, owner, repo, ref, body, **_):
        r = self.repo(owner, repo)
        name, sha = f"refs/{ref}", _required(body, "sha")
        if name not in r.refs:
            raise ApiError(422, "Reference does not exist")
        if r.objects.get(sha, {}).get("type") != "commit":
            raise ApiError(422, "Object does not exist")
        if not body.get("force") and r.refs[name] not in self._ancestors(r, sha):
            raise ApiError(422, "Update is not a fast forward")
        r.refs[name] = sha
        return 200, self._ref_json(r, name), {}

    def _delete_ref(self, owner, repo, ref, **_):
        r = self.repo(owner, repo)
        if r.refs.pop(f"refs/{ref}", None) is None:
            raise ApiError(422, "Reference does not exist")
        return 204, None, {}

    # -- handlers: branches, commits, contents --------------------------------------------
    def _get_branch(self, owner, repo, branch, **_):
        r = self.repo(owner, repo)
        sha = r.refs.get(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        base = self.api(f"/repos/{r.full_name}/branches/{quote(branch)}")
        return 200, {"name": branch, "commit": self._commit_json(r, sha), "protected": False,
                     "protection": {"enabled": False, "required_status_checks": {
                         "enforcement_level": "off", "contexts": [], "checks": []}},
                     "protection_url": base + "/protection",
                     "_links": {"self": base,
                                "html": f"{HTML}/{r.full_name}/tree/{branch}"}}, {}

    def _get_commit(self, owner, repo, ref, **_):
        r = self.repo(owner, repo)
        sha = self._resolve(r, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return 200, self._commit_json(r, sha, detail=True), {}

    def _commit_pulls(self, owner, repo, ref, query, **_):
        r = self.repo(owner, repo)
        sha = self._resolve(r, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        numbers = set(r.commit_pulls.get(sha, []))
        numbers |= {n for n, i in r.issues.items() if "pull" in i and sha in (
            i["pull"]["merge_commit_sha"], self._pull_shas(r, i)[0])}
        items = [self._pull_json(r, r.issues[n], full=False) for n in sorted(numbers)
                 if n in r.issues]
        return paginate(items, query, self.api(f"/repos/{r.full_name}/commits/{sha}/pulls"))

    def _get_contents(self, owner, repo, query, path=None, **_):
        r = self.repo(owner, repo)
        ref = query.get("ref") or r.default_branch
        sha = self._resolve(r, ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        path = (path or "").strip("/")
        entry = self._lookup(r, r.objects[sha]["tree"], path)
        if entry is None:
            raise ApiError(404, "Not Found")
        if entry["type"] == "tree":
            return 200, [self._content_json(r, ref, f"{path}/{e['name']}".lstrip("/"), e)
                         for e in r.objects[entry["sha"]]["entries"]], {}
        content = r.objects[entry["sha"]]["content"]
        return 200, {**self._content_json(r, ref, path, entry), "content": _b64(content),
                     "encoding": "base64"}, {}

    def _put_contents(self, owner, repo, path, body, **_):
        r = self.repo(owner, repo)
        content = body.get("content")
        if not isinstance(content, str):
            raise ApiError(422, 'Invalid request.\n\n"content" wasn\'t supplied.')
        old = self._contents_target(r, path, body, must_exist=False)
        branch = body.get("branch") or r.default_branch
        author = body.get("author") or body.get("committer") or BOT_SIGNATURE
        sha = self._commit_files(r, branch, {path: base64.b64decode(content)},
                                 _required(body, "message"), author, snapshot=False)
        entry = self._lookup(r, r.objects[sha]["tree"], path)
        return (200 if old else 201), {"content": self._content_json(r, branch, path, entry),
                                       "commit": self._git_commit_json(r, sha)}, {}

    def _delete_contents(self, owner, repo, path, body, **_):
        r = self.repo(owner, repo)
        self._contents_target(r, path, body, must_exist=True)
        branch = body.get("branch") or r.default_branch
        author = body.get("author") or body.get("committer") or BOT_SIGNATURE
        sha = self._commit_files(r, branch, {path: None}, _required(body, "message"), author,
                                 snapshot=False)
        return 200, {"content": None, "commit": self._git_commit_json(r, sha)}, {}

    # -- handlers: pull requests ----------------------------------------------------------
    def _create_pull(self, owner, repo, body, **_):
        r = self.repo(owner, repo)
        title, base = _required(body, "title"), _required(body, "base")
        head_owner, _, head = _required(body, "head").rpartition(":")
        source = r if head_owner in ("", r.owner) else self.repos.get(
            f"{head_owner}/{r.name}")
        if source is None or (source is not r and source.fork_of != r.full_name):
            raise _invalid("PullRequest", "head")
        issue = self._new_pull(r, source, head, base, title, body.get("body"),
                               bool(body.get("draft", False)), APP_USER,
                               bool(body.get("maintainer_can_modify")))
        return 201, self._pull_json(r, issue), {}

    def _new_pull(self, r: Repo, source: Repo, head: str, base: str, title: str, text,
                  draft: bool, user: str, maintainer_can_modify: bool) -> dict:
        """An open pull from `source`'s branch `head` into `r`'s `base`, as GitHub checks it."""
        if f"refs/heads/{head}" not in source.refs:
            raise _invalid("PullRequest", "head")
        if f"refs/heads/{base}" not in r.refs:
            raise _invalid("PullRequest", "base")
        if self._open_pull(r, head, base, source.full_name):
            raise _custom(f"A pull request already exists for {source.owner}:{head}.")
        head_sha, base_sha = source.refs[f"refs/heads/{head}"], r.refs[f"refs/heads/{base}"]
        if head_sha in self._ancestors(r, base_sha):
            raise _custom(f"No commits between {base} and {head}")
        number, now = self._next_number(r), _now()
        issue = {"number": number, "title": title, "body": text, "state": "open",
                 "labels": [], "comments": 0, "user": user, "created_at": now,
                 "updated_at": now, "closed_at": None,
                 "pull": {"id": next(self._ids), "head": head, "base": base,
                          "head_repo": source.full_name,
                          "head_sha": head_sha, "base_sha": base_sha,
                          "draft": draft, "merged": False,
                          "merged_at": None, "merged_by": None, "merge_commit_sha": None,
                          "maintainer_can_modify": maintainer_can_modify}}
        r.issues[number] = issue
        return issue

    def _list_pulls(self, owner, repo, query, **_):
        r = self.repo(owner, repo)
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _invalid("PullRequest", "state")
        found = [i for i in r.issues.values() if "pull" in i and state in ("all", i["state"])]
        if query.get("head"):
            user, _, ref = query["head"].partition(":")
            found = [i for i in found if user == self._head_repo(r, i).owner
                     and ref in ("", i["pull"]["head"])]
        if query.get("base"):
            found = [i for i in found if i["pull"]["base"] == query["base"]]
        sort = query.get("sort", "created")
        key = "updated_at" if sort == "updated" else "created_at"
        descending = query.get("direction", "desc" if sort == "created" else "asc") == "desc"
        found.sort(key=lambda i: (i.get(key) or "", i["number"]), reverse=descending)
        return paginate([self._pull_json(r, i, full=False) for i in found], query,
                        self.api(f"/repos/{r.full_name}/pulls"))

    def _get_pull(self, owner, repo, number, **_):
        r = self.repo(owner, repo)
        return 200, self._pull_json(r, self._pull_or_404(r, number)), {}

    def _edit_pull(self, owner, repo, number, body, **_):
        r = self.repo(owner, repo)
        issue = self._pull_or_404(r, number)
        if "title" in body:
            _required(body, "title")
        if body.get("base") is not None and f"refs/heads/{body['base']}" not in r.refs:
            raise _invalid("PullRequest", "base")
        if body.get("state") is not None:
            self._set_state(r, issue, body["state"])
        issue.update({k: body[k] for k in ("title", "body") if k in body})
        issue["pull"].update({k: body[k] for k in ("base", "maintainer_can_modify")
                              if body.get(k) is not None})
        issue["updated_at"] = _now()
        return 200, self._pull_json(r, issue), {}

    def _pull_commits(self, owner, repo, number, query, **_):
        r = self.repo(owner, repo)
        head, base = self._pull_shas(r, self._pull_or_404(r, number))
        items = [self._commit_json(r, c) for c in self._history(r, head,
                                                                 self._ancestors(r, base))]
        return paginate(items, query, self.api(f"/repos/{r.full_name}/pulls/{number}/commits"),
                        maximum=250)

    def _pull_files(self, owner, repo, number, query, **_):
        r = self.repo(owner, repo)
        head, base = self._pull_shas(r, self._pull_or_404(r, number))
        items = self._diff(r, self._merge_base(r, base, head), head)
        return paginate(items, query, self.api(f"/repos/{r.full_name}/pulls/{number}/files"))

    def _is_merged(self, owner, repo, number, **_):
        r = self.repo(owner, repo)
        if not self._pull_or_404(r, number)["pull"]["merged"]:
            raise ApiError(404, "Not Found")
        return 204, None, {}

    def _merge_pull(self, owner, repo, number, body, **_):
        r = self.repo(owner, repo)
        sha = self._merge(r, self._pull_or_404(r, number), body.get("merge_method", "merge"),
                          body.get("commit_title"), body.get("commit_message"), body.get("sha"))
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}

    # -- handlers: compare, releases, tags ------------------------------------------------
    def _compare(self, owner, repo, basehead, query, **_):
        r = self.repo(owner, repo)
        base_ref, sep, head_ref = basehead.partition("...")
        base, head = self._resolve(r, base_ref), self._resolve(r, head_ref)
        if not sep or base is None or head is None:
            raise ApiError(404, "Not Found")
        merge_base = self._merge_base(r, base, head)
        if merge_base is None:
            raise ApiError(404, f"No common ancestor between {base_ref} and {head_ref}.")
        ahead = self._history(r, head, self._ancestors(r, base))
        behind = len(self._ancestors(r, base).keys() - self._ancestors(r, head).keys())
        status = ("identical" if not ahead and not behind else "behind" if not ahead
                  else "ahead" if not behind else "diverged")
        path = f"/repos/{r.full_name}/compare/{quote(base_ref)}...{quote(head_ref)}"
        _, page, headers = paginate([self._commit_json(r, c) for c in ahead], query,
                                    self.api(path), default=250, maximum=1000)
        first = int(query.get("page", 1)) <= 1
        html = f"{HTML}/{r.full_name}/compare/{base_ref}...{head_ref}"
        return 200, {"url": self.api(path), "html_url": html,
                     "permalink_url": f"{HTML}/{r.full_name}/compare/{r.owner}:{base[:7]}..."
                                      f"{r.owner}:{head[:7]}",
                     "diff_url": html + ".diff", "patch_url": html + ".patch",
                     "base_commit": self._commit_json(r, base),
                     "merge_base_commit": self._commit_json(r, merge_base),
                     "status": status, "ahead_by": len(ahead), "behind_by": behind,
                     "total_commits": len(ahead), "commits": page,
                     "files": self._diff(r, merge_base, head) if first else []}, headers

    def _list_releases(self, owner, repo, query, **_):
        r = self.repo(owner, repo)
        items = [self._release_json(r, x) for _, x in sorted(r.releases.items(), reverse=True)]
        return paginate(items, query, self.api(f"/repos/{r.full_name}/releases"))

    def _latest_release(self, owner, repo, **_):
        r = self.repo(owner, repo)
        found = [x for _, x in sorted(r.releases.items(), reverse=True)
                 if not x["draft"] and not x["prerelease"]]
        return 200, self._release_json(r, _found(found[0] if found else None)), {}

    def _release_by_tag(self, owner, repo, tag, **_):
        r = self.repo(owner, repo)
        found = [x for _, x in sorted(r.releases.items(), reverse=True)
                 if x["tag_name"] == tag and not x["draft"]]
        return 200, self._release_json(r, _found(found[0] if found else None)), {}

    def _get_release(self, owner, repo, id, **_):
        r = self.repo(owner, repo)
        return 200, self._release_json(r, _found(r.releases.get(int(id)))), {}

    def _list_tags(self, owner, repo, query, **_):
        r = self.repo(owner, repo)
        items = []
        for name, sha in reversed(r.refs.items()):
            if name.startswith("refs/tags/"):
                tag = name[len("refs/tags/"):]
                items.append({"name": tag, "node_id": f"REF_{tag}",
                              "commit": {"sha": sha, "url": self.api(
                                  f"/repos/{r.full_name}/commits/{sha}")},
                              "zipball_url": self.api(f"/repos/{r.full_name}/zipball/{tag}"),
                              "tarball_url": self.api(f"/repos/{r.full_name}/tarball/{tag}")})
        return paginate(items, query, self.api(f"/repos/{r.full_name}/tags"))

    # -- JSON of objects ------------------------------------------------------------------
    def api(self, path: str) -> str:
        return f"{self.url}{path}"

    def repo(self, owner: str, repo: str) -> Repo:
        return _found(self.repos.get(f"{owner}/{repo}"))

    def repo_json(self, r: Repo) -> dict:
        base = self.api(f"/repos/{r.full_name}")
        return {"id": r.id, "node_id": f"R_{r.id}", "name": r.name, "full_name": r.full_name,
                "private": False, "fork": r.fork_of is not None,
                "owner": {**self._user(r.owner), "type": "Organization"},
                "url": base, "html_url": f"{HTML}/{r.full_name}",
                "default_branch": r.default_branch,
                "issues_url": base + "/issues{/number}", "pulls_url": base + "/pulls{/number}",
                "compare_url": base + "/compare/{base}...{head}",
                "git_refs_url": base + "/git/refs{/sha}",
                "releases_url": base + "/releases{/id}", "tags_url": base + "/tags"}

    def _user(self, login: str) -> dict:
        return {"login": login, "id": int(hashlib.sha1(login.encode()).hexdigest()[:6], 16),
                "node_id": f"U_{login}",
                "type": "Bot" if login == BOT or login.endswith("[bot]") else "User",
                "url": self.api(f"/users/{quote(login)}"), "html_url": f"{HTML}/{login}",
                "site_admin": False}

    def _issue_json(self, r: Repo, issue: dict) -> dict:
        base = self.api(f"/repos/{r.full_name}/issues/{issue['number']}")
        out = {**issue, "id": issue.get("id") or issue["number"] + 50000, "url": base,
               "html_url": f"{HTML}/{r.full_name}/issues/{issue['number']}",
               "comments_url": base + "/comments", "labels_url": base + "/labels{/name}",
               "repository_url": self.api(f"/repos/{r.full_name}"),
               "labels": [self._label_json(r, x) for x in issue["labels"]],
               "user": {**self._user(issue.get("user", "someone")), "id": 2}}
        for private in ("head", "base", "pull"):
            out.pop(private, None)
        if "pull" in issue:
            pull = self.api(f"/repos/{r.full_name}/pulls/{issue['number']}")
            html = f"{HTML}/{r.full_name}/pull/{issue['number']}"
            out.update(id=issue["pull"]["id"] + 1, draft=issue["pull"]["draft"],
                       html_url=html, pull_request={
                           "url": pull, "html_url": html, "diff_url": html + ".diff",
                           "patch_url": html + ".patch",
                           "merged_at": issue["pull"]["merged_at"]})
        return out

    def _comment_json(self, r: Repo, comment: dict) -> dict:
        return {**comment, "url": self.api(f"/repos/{r.full_name}/issues/comments/"
                                           f"{comment['id']}"),
                "html_url": f"{HTML}/{r.full_name}/issues/"
                            f"{comment['issue']}#issuecomment-{comment['id']}",
                "issue_url": self.api(f"/repos/{r.full_name}/issues/{comment['issue']}"),
                "user": {**self._user(comment.get("user", BOT)), "id": 3}}

    def _label_json(self, r: Repo, label: dict) -> dict:
        return {"id": label["id"], "node_id": f"LA_{label['id']}",
                "url": self.api(f"/repos/{r.full_name}/labels/{quote(label['name'])}"),
                "name": label["name"], "color": label.get("color", "ededed"),
                "default": False, "description": label.get("description")}

    def _deployment_json(self, r: Repo, d: dict) -> dict:
        base = self.api(f"/repos/{r.full_name}/deployments/{d['id']}")
        return {**d, "url": base, "statuses_url": base + "/statuses",
                "repository_url": self.api(f"/repos/{r.full_name}"),
                "creator": {**self._user(BOT), "id": 3}}

    def _ref_json(self, r: Repo, name: str) -> dict:
        sha = r.refs[name]
        return {"ref": name, "node_id": f"REF_{name}",
                "url": self.api(f"/repos/{r.full_name}/git/{quote(name)}"),
                "object": {"sha": sha, "type": r.objects[sha]["type"],
                           "url": self.api(f"/repos/{r.full_name}/git/commits/{sha}")}}

    def _tree_json(self, r: Repo, sha: str, recursive: bool = False) -> dict:
        def entries(tree: str, prefix: str) -> Iterator[dict]:
            for e in r.objects[tree]["entries"]:
                kind = "trees" if e["type"] == "tree" else "blobs"
                entry = {"path": prefix + e["name"], "mode": e["mode"], "type": e["type"],
                         "sha": e["sha"],
                         "url": self.api(f"/repos/{r.full_name}/git/{kind}/{e['sha']}")}
                if e["type"] == "blob":
                    entry["size"] = len(r.objects[e["sha"]]["content"])
                yield entry
                if recursive and e["type"] == "tree":
                    yield from entries(e["sha"], entry["path"] + "/")

        return {"sha": sha, "url": self.api(f"/repos/{r.full_name}/git/trees/{sha}"),
                "tree": list(entries(sha, "")), "truncated": False}

    def _git_commit_json(self, r: Repo, sha: str) -> dict:
        c = r.objects[sha]
        git = f"/repos/{r.full_name}/git"
        return {"sha": sha, "node_id": f"C_{sha[:20]}",
                "url": self.api(f"{git}/commits/{sha}"),
                "html_url": f"{HTML}/{r.full_name}/commit/{sha}",
                "author": dict(c["author"]), "committer": dict(c["committer"]),
                "message": c["message"],
                "tree": {"sha": c["tree"], "url": self.api(f"{git}/trees/{c['tree']}")},
                "parents": [{"sha": p, "url": self.api(f"{git}/commits/{p}"),
                             "html_url": f"{HTML}/{r.full_name}/commit/{p}"}
                            for p in c["parents"]],
                "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                 "payload": None, "verified_at": None}}

    def _commit_json(self, r: Repo, sha: str, detail: bool = False) -> dict:
        c, base = r.objects[sha], f"/repos/{r.full_name}"
        git = self._git_commit_json(r, sha)
        out = {"sha": sha, "node_id": git["node_id"], "url": self.api(f"{base}/commits/{sha}"),
               "html_url": git["html_url"],
               "comments_url": self.api(f"{base}/commits/{sha}/comments"),
               "commit": {k: git[k] for k in ("url", "author", "committer", "message", "tree",
                                              "verification")} | {"comment_count": 0},
               "author": self._user_of(c["author"]["email"]),
               "committer": self._user_of(c["committer"]["email"]),
               "parents": [{"sha": p, "url": self.api(f"{base}/commits/{p}"),
                            "html_url": f"{HTML}/{r.full_name}/commit/{p}"}
                           for p in c["parents"]]}
        if detail:
            files = self._diff(r, c["parents"][0] if c["parents"] else None, sha)
            adds, dels = sum(f["additions"] for f in files), sum(f["deletions"] for f in files)
            out.update(files=files, stats={"total": adds + dels, "additions": adds,
                                           "deletions": dels})
        return out

    def _user_of(self, email: str) -> dict | None:
        if email.endswith("@users.noreply.github.com"):
            return self._user(email.split("@")[0].split("+")[-1])
        return None

    def _content_json(self, r: Repo, ref: str, path: str, entry: dict) -> dict:
        is_dir = entry["type"] == "tree"
        url = self.api(f"/repos/{r.full_name}/contents/{quote(path)}?ref={quote(ref)}")
        git = self.api(f"/repos/{r.full_name}/git/{'trees' if is_dir else 'blobs'}/"
                       f"{entry['sha']}")
        html = f"{HTML}/{r.full_name}/{'tree' if is_dir else 'blob'}/{ref}/{path}"
        return {"type": "dir" if is_dir else "file", "name": path.rsplit("/", 1)[-1],
                "path": path, "sha": entry["sha"],
                "size": 0 if is_dir else len(r.objects[entry["sha"]]["content"]),
                "url": url, "git_url": git, "html_url": html,
                "download_url": None if is_dir else
                f"https://raw.github.example/{r.full_name}/{ref}/{path}",
                "_links": {"self": url, "git": git, "html": html}}

    def _pull_json(self, r: Repo, issue: dict, full: bool = True) -> dict:
        p, n = issue["pull"], issue["number"]
        head_sha, base_sha = self._pull_shas(r, issue)
        url = self.api(f"/repos/{r.full_name}/pulls/{n}")
        issue_url = self.api(f"/repos/{r.full_name}/issues/{n}")
        html = f"{HTML}/{r.full_name}/pull/{n}"
        out = {"url": url, "id": p["id"], "node_id": f"PR_{p['id']}", "html_url": html,
               "diff_url": html + ".diff", "patch_url": html + ".patch",
               "issue_url": issue_url, "commits_url": url + "/commits",
               "review_comments_url": url + "/comments",
               "review_comment_url": self.api(f"/repos/{r.full_name}/pulls/comments"
                                              "{/number}"),
               "comments_url": issue_url + "/comments",
               "statuses_url": self.api(f"/repos/{r.full_name}/statuses/{head_sha}"),
               "number": n, "state": issue["state"], "locked": False,
               "title": issue["title"], "body": issue.get("body"),
               "user": self._user(issue.get("user", BOT)),
               "labels": [self._label_json(r, x) for x in issue["labels"]],
               "milestone": None, "assignee": None, "assignees": [],
               "requested_reviewers": [], "requested_teams": [], "draft": p["draft"],
               "created_at": issue.get("created_at"), "updated_at": issue.get("updated_at"),
               "closed_at": issue.get("closed_at"), "merged_at": p["merged_at"],
               "merge_commit_sha": p["merge_commit_sha"],
               "head": self._pull_part(self._head_repo(r, issue), p["head"], head_sha),
               "base": self._pull_part(r, p["base"], base_sha),
               "author_association": "NONE", "auto_merge": None, "active_lock_reason": None,
               "_links": {"self": {"href": url}, "html": {"href": html},
                          "issue": {"href": issue_url},
                          "comments": {"href": issue_url + "/comments"},
                          "commits": {"href": url + "/commits"}}}
        if full:
            is_open = issue["state"] == "open"
            mergeable = is_open and self._merge_tree(
                r, self._merge_base(r, base_sha, head_sha), base_sha, head_sha) is not None
            files = self._diff(r, self._merge_base(r, base_sha, head_sha), head_sha)
            out.update(merged=p["merged"], mergeable=mergeable if is_open else None,
                       mergeable_state=("draft" if p["draft"] else "clean" if mergeable
                                        else "dirty") if is_open else "unknown",
                       rebaseable=mergeable if is_open else None,
                       merged_by=self._user(p["merged_by"]) if p["merged_by"] else None,
                       comments=issue.get("comments", 0), review_comments=0,
                       maintainer_can_modify=p["maintainer_can_modify"],
                       commits=len(self._history(r, head_sha, self._ancestors(r, base_sha))),
                       additions=sum(f["additions"] for f in files),
                       deletions=sum(f["deletions"] for f in files), changed_files=len(files))
        return out

    def _pull_part(self, r: Repo, ref: str, sha: str) -> dict:
        return {"label": f"{r.owner}:{ref}", "ref": ref, "sha": sha,
                "user": self._user(r.owner), "repo": self.repo_json(r)}

    def _release_json(self, r: Repo, x: dict) -> dict:
        url = self.api(f"/repos/{r.full_name}/releases/{x['id']}")
        tag = x["tag_name"] if not x["draft"] else f"untagged-{x['id']}"
        return {**x, "url": url, "node_id": f"RE_{x['id']}",
                "html_url": f"{HTML}/{r.full_name}/releases/tag/{tag}",
                "assets_url": url + "/assets", "assets": [],
                "upload_url": f"{self.url}/uploads/repos/{r.full_name}/releases/{x['id']}/"
                              "assets{?name,label}",
                "tarball_url": self.api(f"/repos/{r.full_name}/tarball/{x['tag_name']}"),
                "zipball_url": self.api(f"/repos/{r.full_name}/zipball/{x['tag_name']}"),
                "author": self._user(BOT)}

    # -- pull request state ---------------------------------------------------------------
    def _next_number(self, repo: Repo) -> int:
        return max(repo.issues, default=0) + 1

    def _issue_or_404(self, r: Repo, number) -> dict:
        return _found(r.issues.get(int(number)))

    def _pull_or_404(self, r: Repo, number) -> dict:
        issue = self._issue_or_404(r, number)
        if "pull" not in issue:
            raise ApiError(404, "Not Found")
        return issue

    def _attach_labels(self, r: Repo, issue: dict, names: list[str]) -> None:
        for name in names:
            label = r.labels.setdefault(name, {"name": name, "color": "ededed",
                                               "id": next(self._ids)})
            if name not in [x["name"] for x in issue["labels"]]:
                issue["labels"].append(label)

    def _open_pull(self, r: Repo, head: str, base: str, head_repo: str) -> dict | None:
        return next((i for i in r.issues.values() if "pull" in i and i["state"] == "open"
                     and (i["pull"]["head"], i["pull"]["base"]) == (head, base)
                     and self._head_repo(r, i).full_name == head_repo), None)

    def _head_repo(self, r: Repo, issue: dict) -> Repo:
        """The repository a pull's head branch lives in (`r` itself, or a fork of it)."""
        return self.repos.get(issue["pull"].get("head_repo") or r.full_name, r)

    def _pull_shas(self, r: Repo, issue: dict) -> tuple[str, str]:
        """(head sha, base sha): following the branches while open, frozen once closed."""
        p = issue["pull"]
        if issue["state"] == "open":
            p["head_sha"] = self._head_repo(r, issue).refs.get(f"refs/heads/{p['head']}",
                                                               p["head_sha"])
            p["base_sha"] = r.refs.get(f"refs/heads/{p['base']}", p["base_sha"])
        return p["head_sha"], p["base_sha"]

    def _set_state(self, r: Repo, issue: dict, state: str) -> None:
        p = issue["pull"]
        if state not in ("open", "closed"):
            raise _invalid("PullRequest", "state")
        if state == issue["state"]:
            return
        if state == "open":
            if p["merged"]:
                raise _custom("state cannot be changed. The pull request cannot be reopened "
                              "because it has been merged.", field="state")
            source = self._head_repo(r, issue)
            if f"refs/heads/{p['head']}" not in source.refs:
                raise _custom(f"state cannot be changed. The {p['head']} branch has been "
                              "deleted.", field="state")
            if self._open_pull(r, p["head"], p["base"], source.full_name):
                raise _custom(f"A pull request already exists for {source.owner}:"
                              f"{p['head']}.")
        else:
            self._pull_shas(r, issue)
        issue.update(state=state, closed_at=_now() if state == "closed" else None,
                     updated_at=_now())

    def _merge(self, r: Repo, issue: dict, method: str = "merge", title: str | None = None,
               message: str | None = None, expected: str | None = None) -> str:
        p, n = issue["pull"], issue["number"]
        if method not in ("merge", "squash", "rebase"):
            raise _invalid("PullRequest", "merge_method")
        if issue["state"] != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if p["draft"]:
            raise ApiError(405, "Pull Request is still a draft")
        head, base = self._pull_shas(r, issue)
        if expected and expected != head:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        merge_base = self._merge_base(r, base, head)
        tree = self._merge_tree(r, merge_base, base, head)
        if tree is None:
            raise ApiError(405, "Pull Request is not mergeable")
        if method == "rebase" and merge_base == base:
            new = head
        elif method == "merge":
            text = (title or f"Merge pull request #{n} from {r.owner}/{p['head']}") + "\n\n" + \
                (message if message is not None else issue["title"])
            new = self._commit(r, text, tree, [base, head], BOT_SIGNATURE)
        else:
            text = (title or f"{issue['title']} (#{n})") + (f"\n\n{message}" if message else "")
            new = self._commit(r, text, tree, [base], BOT_SIGNATURE)
        r.refs[f"refs/heads/{p['base']}"] = new
        now = _now()
        p.update(merged=True, merged_at=now, merged_by=BOT, merge_commit_sha=new)
        issue.update(state="closed", closed_at=now, updated_at=now)
        return new

    def _add_merged_pull(self, r: Repo, number: int, title: str, labels, base: str,
                         base_sha: str, sha: str) -> None:
        if number in r.issues:
            raise ValueError(f"#{number} exists already in {r.full_name}")
        now = _now()
        r.issues[number] = {
            "number": number, "title": title, "body": "", "state": "closed", "labels": [],
            "comments": 0, "user": "contributor", "created_at": now, "updated_at": now,
            "closed_at": now,
            "pull": {"id": next(self._ids), "head": f"pr-{number}", "base": base,
                     "head_sha": sha, "base_sha": base_sha, "draft": False, "merged": True,
                     "merged_at": now, "merged_by": "maintainer", "merge_commit_sha": sha,
                     "maintainer_can_modify": False}}
        self._attach_labels(r, r.issues[number], list(labels))
        r.commit_pulls.setdefault(sha, []).append(number)

    # -- git object store -----------------------------------------------------------------
    def _put(self, r: Repo, kind: str, obj: dict, payload: bytes, prefix: str = "") -> str:
        """Store an object under git's sha of it (starting with `prefix` when given)."""
        sha = hashlib.sha1(f"{kind} {len(payload)}\0".encode() + payload).hexdigest()
        if prefix:
            sha = prefix + sha[len(prefix):]
            if sha in r.objects:
                raise ValueError(f"an object {sha} exists already")
        r.objects.setdefault(sha, {"type": kind, **obj})
        return sha

    def _object(self, r: Repo, sha: str, kind: str) -> dict:
        obj = r.objects.get(sha)
        if obj is None or obj["type"] != kind:
            raise ApiError(404, "Not Found")
        return obj

    def _blob(self, r: Repo, content: bytes) -> str:
        return self._put(r, "blob", {"content": content}, content)

    def _tree(self, r: Repo, entries: list[dict]) -> str:
        entries = sorted(entries, key=lambda e: e["name"] + ("/" if e["type"] == "tree" else ""))
        payload = b"".join(f"{e['mode'].lstrip('0')} {e['name']}\0".encode() +
                           bytes.fromhex(e["sha"]) for e in entries)
        return self._put(r, "tree", {"entries": entries}, payload)

    def _tree_from(self, r: Repo, flat: dict[str, tuple[str, str, str]]) -> str:
        """A tree, with its subtrees, from {path: (mode, type, sha)}."""
        here, below = [], {}
        for path, (mode, kind, sha) in flat.items():
            name, _, rest = path.partition("/")
            if rest:
                below.setdefault(name, {})[rest] = (mode, kind, sha)
            else:
                here.append({"name": name, "mode": mode, "type": kind, "sha": sha})
        here += [{"name": name, "mode": "040000", "type": "tree",
                  "sha": self._tree_from(r, sub)} for name, sub in below.items()]
        return self._tree(r, here)

    def _flatten(self, r: Repo, tree: str, prefix: str = "") -> dict:
        """{path: (mode, type, sha)} of every non-tree entry below `tree`."""
        out = {}
        for e in r.objects[tree]["entries"]:
            if e["type"] == "tree":
                out.update(self._flatten(r, e["sha"], f"{prefix}{e['name']}/"))
            else:
                out[prefix + e["name"]] = (e["mode"], e["type"], e["sha"])
        return out

    def _files_of(self, r: Repo, commit: str | None) -> dict:
        return self._flatten(r, r.objects[commit]["tree"]) if commit else {}

    def _lookup(self, r: Repo, tree: str, path: str) -> dict | None:
        """The tree entry at `path` ("" is the tree itself)."""
        entry = {"type": "tree", "sha": tree, "mode": "040000", "name": ""}
        for name in filter(None, path.split("/")):
            if entry["type"] != "tree":
                return None
            entry = next((e for e in r.objects[entry["sha"]]["entries"] if e["name"] == name),
                         None)
            if entry is None:
                return None
        return entry

    def _apply_tree_entry(self, r: Repo, flat: dict, entry: dict) -> None:
        path, mode, kind = entry.get("path", "").strip("/"), entry.get("mode"), entry.get("type")
        if not path or mode not in MODES or kind not in ("blob", "tree", "commit"):
            raise ApiError(422, "Invalid tree info", [{"resource": "Tree", "field": "tree",
                                                       "code": "invalid"}])
        for old in [p for p in flat if p == path or p.startswith(path + "/")]:
            del flat[old]
        if "content" in entry:
            flat[path] = (mode, "blob", self._blob(r, entry["content"].encode()))
        elif entry.get("sha") is None:
            return
        elif r.objects.get(entry["sha"], {}).get("type") != kind and kind != "commit":
            raise ApiError(422, f"tree.sha {entry['sha']} is not a valid {kind}")
        elif kind == "tree":
            flat.update({f"{path}/{p}": v for p, v in self._flatten(r, entry["sha"]).items()})
        else:
            flat[path] = (mode, kind, entry["sha"])

    def _commit(self, r: Repo, message: str, tree: str, parents: list[str], author,
                committer=None, prefix: str = "") -> str:
        author = _signature(author)
        committer = _signature(committer) if committer else author
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents),
                 f"author {_sig_line(author)}", f"committer {_sig_line(committer)}", "",
                 message]
        return self._put(r, "commit", {"message": message, "tree": tree,
                                       "parents": list(parents), "author": author,
                                       "committer": committer},
                         "\n".join(lines).encode(), prefix)

    def _commit_files(self, r: Repo, branch: str, files: dict, message: str, author,
                      snapshot: bool) -> str:
        """Commit `files` (path -> text, bytes or None to delete) on `branch`."""
        name = f"refs/heads/{branch}"
        parent = r.refs.get(name)
        if parent is None and not snapshot:
            parent = r.refs.get(f"refs/heads/{r.default_branch}")
        flat = {} if snapshot else self._files_of(r, parent)
        for path, text in files.items():
            if text is None:
                flat.pop(path.strip("/"), None)
            else:
                raw = text.encode() if isinstance(text, str) else text
                flat[path.strip("/")] = ("100644", "blob", self._blob(r, raw))
        sha = self._commit(r, message, self._tree_from(r, flat), [parent] if parent else [],
                           author)
        r.refs[name] = sha
        return sha

    def _contents_target(self, r: Repo, path: str, body: dict, must_exist: bool):
        """The current entry at `path` on the write's branch, checking the given sha."""
        branch = body.get("branch") or r.default_branch
        head = r.refs.get(f"refs/heads/{branch}")
        if head is None and (branch != r.default_branch or must_exist):
            raise ApiError(404, f"Branch {branch} not found")
        entry = self._files_of(r, head).get(path.strip("/"))
        if entry is None and must_exist:
            raise ApiError(404, "Not Found")
        if entry is not None and not body.get("sha"):
            raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if entry is not None and body["sha"] != entry[2]:
            raise ApiError(409, f"{path} does not match {body['sha']}")
        return entry

    def _resolve(self, r: Repo, ref: str) -> str | None:
        """The commit a sha, branch, tag, ref name or unique short sha (>= 7) names."""
        if r.objects.get(ref, {}).get("type") == "commit":
            return ref
        for name in (f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/{ref}", ref):
            if name in r.refs:
                return r.refs[name]
        if re.fullmatch(r"[0-9a-f]{7,40}", ref):
            found = [s for s, o in r.objects.items() if o["type"] == "commit"
                     and s.startswith(ref)]
            return found[0] if len(found) == 1 else None
        return None

    def _ancestors(self, r: Repo, sha: str | None) -> dict[str, None]:
        """`sha` and every commit it descends from, nearest first."""
        seen: dict[str, None] = {}
        todo = deque([sha] if sha else [])
        while todo:
            current = todo.popleft()
            if current not in seen:
                seen[current] = None
                todo.extend(r.objects[current]["parents"])
        return seen

    def _history(self, r: Repo, head: str, exclude) -> list[str]:
        """Commits reachable from `head` but not in `exclude`, parents before children."""
        order, seen, todo = [], set(exclude), [(head, False)]
        while todo:
            sha, done = todo.pop()
            if done:
                order.append(sha)
            elif sha not in seen:
                seen.add(sha)
                todo.append((sha, True))
                todo.extend((p, False) for p in reversed(r.objects[sha]["parents"]))
        return order

    def _merge_base(self, r: Repo, a: str, b: str) -> str | None:
        ancestors = self._ancestors(r, a)
        return next((s for s in self._ancestors(r, b) if s in ancestors), None)

    def _merge_tree(self, r: Repo, base: str | None, ours: str, theirs: str) -> str | None:
        """A three-way merge of the commits' trees, path by path; None on a conflict."""
        b, o, t = (self._files_of(r, c) for c in (base, ours, theirs))
        merged = {}
        for path in b.keys() | o.keys() | t.keys():
            old, mine, their = b.get(path), o.get(path), t.get(path)
            if mine != their and mine != old and their != old:
                return None
            pick = their if mine == old else mine
            if pick is not None:
                merged[path] = pick
        return self._tree_from(r, merged)

    def _diff(self, r: Repo, old: str | None, new: str) -> list[dict]:
        """GitHub's `files` between two commits (no `patch`)."""
        before, after = self._files_of(r, old), self._files_of(r, new)
        out = []
        for path in sorted(before.keys() | after.keys()):
            a, b = before.get(path), after.get(path)
            if a == b:
                continue
            lines = list(difflib.unified_diff(self._lines(r, a), self._lines(r, b),
                                              lineterm="", n=0))[2:]
            adds = sum(1 for x in lines if x.startswith("+"))
            dels = sum(1 for x in lines if x.startswith("-"))
            out.append({"sha": (b or a)[2], "filename": path,
                        "status": "added" if a is None else "removed" if b is None
                        else "modified", "additions": adds, "deletions": dels,
                        "changes": adds + dels,
                        "blob_url": f"{HTML}/{r.full_name}/blob/{new}/{path}",
                        "raw_url": f"{HTML}/{r.full_name}/raw/{new}/{path}",
                        "contents_url": self.api(f"/repos/{r.full_name}/contents/"
                                                 f"{quote(path)}?ref={new}")})
        return out

    def _lines(self, r: Repo, entry: tuple | None) -> list[str]:
        if entry is None or entry[1] != "blob":
            return []
        return r.objects[entry[2]]["content"].decode(errors="replace").splitlines()


def paginate(items: list, query: dict, base_url: str, default: int = 30,
             maximum: int = 100) -> tuple[int, list, dict]:
    """One page of `items` and the Link header GitHub sends."""
    per_page = max(1, min(maximum, int(query.get("per_page", default))))
    page = max(1, int(query.get("page", 1)))
    pages = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page:page * per_page]
    links = []
    extra = "".join(f"&{urlencode({k: v})}" for k, v in sorted(query.items())
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
        except Exception as exc:  # a bug in the double: say so rather than drop the line
            return self._send(500, {"message": f"GitHub double: {exc!r}"}, {}, method, path)
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


def _found(value):
    """`value`, or a 404 when it is None."""
    if value is None:
        raise ApiError(404, "Not Found")
    return value


def _invalid(resource: str, field_name: str, code: str = "invalid") -> ApiError:
    return ApiError(422, "Validation Failed", [{"resource": resource, "field": field_name,
                                                "code": code}])


def _custom(message: str, field: str | None = None) -> ApiError:
    error = {"resource": "PullRequest", "code": "custom", "message": message}
    return ApiError(422, "Validation Failed", [{**error, "field": field} if field else error])


def _label_names(body) -> list[str]:
    """Label names from a list, {"labels": [...]}, or their {"name": ...} objects."""
    names = body.get("labels", []) if isinstance(body, dict) else body or []
    return [x["name"] if isinstance(x, dict) else x for x in names]


def _parse_git_object(kind: str, payload: bytes) -> dict:
    """The store's fields of a raw git object (as `git cat-file` gives it)."""
    if kind == "blob":
        return {"content": payload}
    if kind == "tree":
        entries, at = [], 0
        while at < len(payload):
            space, nul = payload.index(b" ", at), payload.index(b"\0", at)
            mode = payload[at:space].decode().rjust(6, "0")
            sha = payload[nul + 1:nul + 21].hex()
            entries.append({"name": payload[space + 1:nul].decode(), "mode": mode,
                            "type": {"040000": "tree", "160000": "commit"}.get(mode, "blob"),
                            "sha": sha})
            at = nul + 21
        return {"entries": entries}
    head, _, message = payload.decode().partition("\n\n")
    fields: dict = {"parents": [], "message": message}
    for line in head.splitlines():
        key, _, value = line.partition(" ")
        if key == "tree":
            fields["tree"] = value
        elif key == "parent":
            fields["parents"].append(value)
        elif key in ("author", "committer"):
            name, _, rest = value.partition(" <")
            email, _, stamp = rest.partition("> ")
            seconds = int(stamp.split()[0])
            fields[key] = {"name": name, "email": email, "date": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))}
    return fields


def _signature(who) -> dict:
    """{name, email, date} from a (name, email) pair or a GitHub author object."""
    if isinstance(who, (tuple, list)):
        who = {"name": who[0], "email": who[1]}
    return {"name": who["name"], "email": who["email"], "date": who.get("date") or _now()}


def _sig_line(who: dict) -> str:
    seconds = int(datetime.fromisoformat(who["date"].replace("Z", "+00:00")).timestamp())
    return f"{who['name']} <{who['email']}> {seconds} +0000"


def _b64(content: bytes) -> str:
    """Base64 in 60-character lines, as GitHub sends file and blob content."""
    text = base64.b64encode(content).decode()
    return "".join(text[i:i + 60] + "\n" for i in range(0, len(text), 60))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextmanager
def github_double() -> Iterator[GitHubDouble]:
    with GitHubDouble() as double:
        yield double
