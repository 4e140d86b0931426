"""Adapter for GitHub's REST API, through PyGithub: the deploy records (Deployments and
their statuses) and the one PR comment the plan keeps up to date. The bump bot uses it too.

Requests go one at a time; PyGithub's retry honours 403/429 secondary rate limits
(Retry-After) and backs off on 5xx, for writes too (PATCH, PUT and DELETE as well as POST).
Failures are GitHubError, never PyGithub's types."""
from __future__ import annotations

from dataclasses import dataclass, field

from deployer.console import Console
from deployer.errors import DeployError
from deployer.model.bump import UpstreamPull

DEFAULT_API = "https://api.github.com"
# PyGithub retries only GET and POST (and urllib3's idempotent methods) unless told: a ref
# move or a PR edit (PATCH) must wait out a secondary rate limit too
RETRIED_METHODS = frozenset({"HEAD", "GET", "OPTIONS", "TRACE", "POST", "PATCH", "PUT",
                             "DELETE"})


class GitHubError(DeployError):
    """GitHub answered with an error, or not at all."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Comment:
    id: int
    url: str
    created: bool


@dataclass(frozen=True)
class Pull:
    """A pull request as the bump bot sees it."""

    number: int
    title: str
    body: str
    state: str                 # open / closed
    merged: bool
    draft: bool
    head_ref: str
    head_sha: str
    html_url: str
    labels: tuple[str, ...] = ()
    head_repo: str | None = None   # owner/name the head branch lives in (None: fork deleted)
    author: str = ""               # login of who opened it (`<app>[bot]` for a GitHub App)
    author_type: str = ""          # "Bot" for an app, "User" for a person
    obj: object = field(default=None, repr=False, compare=False)   # the PyGithub object


@dataclass(frozen=True)
class Comparison:
    """The commits between two upstream commits."""

    commits: tuple[tuple[str, str], ...]       # (sha, first line of the message), oldest first
    total: int
    html_url: str


class GitHub:
    """An authenticated client for one API endpoint (github.com or an Enterprise server)."""

    def __init__(self, token: str, *, api_url: str = DEFAULT_API, console: Console | None = None,
                 retries: int = 4, backoff: float = 1.0, timeout: float = 20,
                 request_interval: float = 0.25, write_interval: float = 1.0):
        """`request_interval`/`write_interval`: seconds between requests and between writes
        (GitHub asks for a second between writes to stay clear of secondary rate limits)."""
        from github import Auth, Github, GithubRetry

        if console is not None:
            console.add_secrets([token])
        self.console = console
        # lazy: objects are fetched when an attribute is read, not when they are named
        self.client = Github(base_url=api_url.rstrip("/"), auth=Auth.Token(token),
                             retry=GithubRetry(total=retries, backoff_factor=backoff,
                                               allowed_methods=RETRIED_METHODS),
                             timeout=timeout, per_page=100, lazy=True,
                             seconds_between_requests=request_interval,
                             seconds_between_writes=write_interval)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "GitHub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def repo(self, full_name: str):
        """A repository (PyGithub object; callers stay inside this module's methods). No
        request is made until one of its attributes is read."""
        return self.call(lambda: self.client.get_repo(full_name), f"repository {full_name}")

    # -- pull requests and branches (the bump bot) ----------------------------------------
    def pulls(self, full_name: str, *, state: str = "open", head: str | None = None,
              limit: int = 300) -> list[Pull]:
        """Pull requests of the repository (`head`: a branch of the repository itself)."""
        repo = self.repo(full_name)
        kwargs = {"state": state, "sort": "created", "direction": "desc"}
        if head:
            kwargs["head"] = f"{full_name.split('/')[0]}:{head}"

        def listing():
            found = []
            for pr in repo.get_pulls(**kwargs):
                found.append(_pull(pr))
                if len(found) >= limit:
                    break
            return found

        return self.call(listing, f"pull requests of {full_name}")

    def commit_files(self, full_name: str, *, parent: str, files: dict[str, str],
                     message: str) -> str:
        """A commit on top of `parent` that writes `files` (path -> text); its sha. Made
        through the git data API: no clone, and GitHub signs an App's commits."""
        from github import InputGitTreeElement

        repo = self.repo(full_name)

        def commit():
            base = repo.get_git_commit(parent)
            elements = [InputGitTreeElement(path, "100644", "blob", content=text)
                        for path, text in sorted(files.items())]
            tree = repo.create_git_tree(elements, base_tree=base.tree)
            return repo.create_git_commit(message, tree, [base]).sha

        return self.call(commit, f"commit on {parent[:10]}")

    def branch_commit(self, full_name: str, branch: str) -> tuple[str, str] | None:
        """(sha, message) of a branch's head commit; None when the branch does not exist."""
        from github import GithubException

        repo = self.repo(full_name)

        def head():
            try:
                sha = repo.get_git_ref(f"heads/{branch}").object.sha
            except GithubException as exc:
                if exc.status == 404:
                    return None
                raise
            return sha, repo.get_git_commit(sha).message

        return self.call(head, f"branch {branch}")

    def commit_message(self, full_name: str, sha: str) -> str:
        """The message of commit `sha` (one request)."""
        repo = self.repo(full_name)
        return self.call(lambda: repo.get_git_commit(sha).message or "",
                         f"commit {sha[:10]}")

    def set_branch(self, full_name: str, branch: str, sha: str, *, create: bool) -> None:
        """Point `branch` at `sha`: create it, or move it (a force push)."""
        repo = self.repo(full_name)
        if create:
            self.call(lambda: repo.create_git_ref(f"refs/heads/{branch}", sha),
                      f"creating branch {branch}")
        else:
            def move():
                ref = repo.get_git_ref(f"heads/{branch}")
                ref.object  # noqa: B018  read it: a ref never read edits a URL GitHub lacks
                ref.edit(sha, force=True)

            self.call(move, f"updating branch {branch}")

    def create_pull(self, full_name: str, *, head: str, base: str, title: str, body: str,
                    draft: bool = False, labels: tuple[str, ...] = ()) -> Pull:
        """A new pull request from `head` (a branch of the repository) into `base`."""
        repo = self.repo(full_name)

        def create():
            pr = repo.create_pull(base=base, head=head, title=title, body=body, draft=draft,
                                  maintainer_can_modify=True)
            if labels:
                pr.add_to_labels(*labels)
            return _pull(pr)

        return self.call(create, f"pull request from {head}")

    def update_pull(self, pull: Pull, *, title: str, body: str) -> None:
        """New title and body for an open pull request."""
        self.call(lambda: pull.obj.edit(title=title, body=body), f"updating #{pull.number}")

    def add_labels(self, pull: Pull, labels: tuple[str, ...]) -> None:
        """Add labels to an open pull request (one request)."""
        self.call(lambda: pull.obj.add_to_labels(*labels), f"labelling #{pull.number}")

    def close_pull(self, pull: Pull, comment: str) -> None:
        """Comment on a pull request, then close it."""
        def close():
            pull.obj.create_issue_comment(comment)
            pull.obj.edit(state="closed")

        self.call(close, f"closing #{pull.number}")

    def comment_pull(self, pull: Pull, body: str) -> None:
        self.call(lambda: pull.obj.create_issue_comment(body), f"comment on #{pull.number}")

    # -- upstream history (a bump's changelog) --------------------------------------------
    def compare(self, full_name: str, base: str, head: str, limit: int = 50) -> Comparison:
        """The commits from `base` to `head` in an upstream repository (at most `limit`)."""
        repo = self.repo(full_name)

        def compare():
            found = repo.compare(base, head, comparison_commits_per_page=min(limit, 250))
            commits = []
            for c in found.commits:
                lines = (c.commit.message or "").splitlines()
                commits.append((c.sha, lines[0] if lines else ""))
                if len(commits) >= limit:
                    break
            return Comparison(tuple(commits), found.total_commits, found.html_url)

        return self.call(compare, f"compare {base}...{head} in {full_name}")

    def commit_pulls(self, full_name: str, sha: str) -> list[UpstreamPull]:
        """The merged pull requests a commit belongs to."""
        repo = self.repo(full_name)

        def pulls():
            out = []
            for pr in repo.get_commit(sha).get_pulls():
                if pr.merged_at is None:
                    continue
                out.append(UpstreamPull(pr.number, pr.title, pr.html_url,
                                        tuple(label.name for label in pr.labels),
                                        pr.user.login if pr.user else ""))
            return out

        return self.call(pulls, f"pull requests of {full_name}@{sha[:10]}")

    def release(self, full_name: str, tag: str) -> tuple[str, str] | None:
        """(body, html_url) of the release tagged `tag`; None when there is none."""
        from github import GithubException

        repo = self.repo(full_name)

        def release():
            try:
                found = repo.get_release(tag)
                return found.body or "", found.html_url
            except GithubException as exc:
                if exc.status == 404:
                    return None
                raise

        return self.call(release, f"release {tag} of {full_name}")

    def release_tags(self, full_name: str, limit: int = 100) -> list[tuple[str, bool]]:
        """(tag, prerelease) of the newest published releases."""
        repo = self.repo(full_name)

        def tags():
            out = []
            for r in repo.get_releases():
                if not r.draft:
                    out.append((r.tag_name, bool(r.prerelease)))
                if len(out) >= limit:
                    break
            return out

        return self.call(tags, f"releases of {full_name}")

    # -- deploy records -------------------------------------------------------------------
    def record_deployment(self, full_name: str, *, sha: str, environment: str, state: str,
                          description: str, log_url: str | None = None,
                          production: bool = True) -> int:
        """A Deployment of `sha` to `environment` with one status; its id."""
        repo = self.repo(full_name)

        def create():
            deployment = repo.create_deployment(
                sha, task="deploy", auto_merge=False, required_contexts=[],
                environment=environment, description=description[:140],
                production_environment=production, transient_environment=False)
            kwargs = {"description": description[:140]}
            if log_url:
                kwargs["target_url"] = log_url
            deployment.create_status(state, **kwargs)
            return deployment.id

        return self.call(create, f"deployment of {sha[:10]} to {environment}")

    # -- the plan comment -----------------------------------------------------------------
    def upsert_comment(self, full_name: str, number: int, marker: str, body: str) -> Comment:
        """The one comment on issue/PR `number` that a bot (this token's app) wrote and that
        starts with `marker`: updated when it exists, created when not (never a second
        one). Comments by people are never edited, whatever they start with."""
        repo = self.repo(full_name)
        text = f"{marker}\n{body}"

        def upsert():
            issue = repo.get_issue(number)
            for comment in issue.get_comments():
                # only a bot's comment is ours: a person's comment that starts with the
                # marker must not be able to take the plan's place
                if _by_bot(comment) and (comment.body or "").startswith(marker):
                    if comment.body != text:
                        comment.edit(text)
                    return Comment(comment.id, comment.html_url, False)
            created = issue.create_comment(text)
            return Comment(created.id, created.html_url, True)

        return self.call(upsert, f"comment on #{number}")

    def call(self, fn, what: str):
        """Run PyGithub calls; their failures become one GitHubError naming `what`."""
        from github import GithubException
        from requests import RequestException

        try:
            return fn()
        except GithubException as exc:
            message = (exc.data or {}).get("message") if isinstance(exc.data, dict) else None
            raise GitHubError(f"GitHub: {what}: HTTP {exc.status} {message or ''}".strip(),
                              status=exc.status) from None
        except (RequestException, OSError) as exc:
            raise GitHubError(f"GitHub: {what}: {type(exc).__name__}: {str(exc)[:200]}") from None

    # -- what `plan` and `comment` read (--labels-from-github, --since-deployed, PRs) -----
    def merged_pulls_of(self, full_name: str, sha: str) -> list[tuple[int, tuple[str, ...]]]:
        """(number, labels) of the merged pull requests commit `sha` belongs to (one
        request: GET /repos/{r}/commits/{sha}/pulls)."""
        repo = self.repo(full_name)

        def pulls():
            return [(pr.number, tuple(label.name for label in pr.labels))
                    for pr in repo.get_commit(sha).get_pulls() if pr.merged_at is not None]

        return self.call(pulls, f"pull requests of {sha[:10]}")

    def last_successful_deployment(self, full_name: str, environment: str,
                                   scan: int = 10) -> str | None:
        """The sha of the newest Deployment to `environment` that succeeded (a `success`
        status, even if later marked inactive by a newer one), among the `scan` newest;
        None when there is none. One list request, then one statuses request per
        deployment looked at (usually one)."""
        repo = self.repo(full_name)

        def newest():
            for seen, deployment in enumerate(repo.get_deployments(environment=environment)):
                if seen >= scan:
                    return None
                if any(status.state == "success" for status in deployment.get_statuses()):
                    return deployment.sha
            return None

        return self.call(newest, f"deployments to {environment}")

    def open_pulls_with_head(self, full_name: str, head_sha: str,
                             head_repo: str) -> list[OpenPull]:
        """The open pull requests whose head is commit `head_sha` of repository `head_repo`
        (a fork or this one), most recently updated first; usually one request."""
        repo = self.repo(full_name)

        def find():
            found = []
            for pr in repo.get_pulls(state="open", sort="updated", direction="desc"):
                head = pr.head
                source = head.repo.full_name if head.repo is not None else None
                if head.sha == head_sha and source is not None and \
                        source.lower() == head_repo.lower():
                    found.append(OpenPull(pr.number, pr.base.ref, pr.base.sha, head.sha,
                                          tuple(label.name for label in pr.labels)))
            return found

        return self.call(find, f"open pull requests of {full_name}")


def _pull(pr) -> Pull:
    """A Pull from the JSON GitHub sent (a list item or the pull): no further request."""
    head, user = pr.head, pr.user
    return Pull(number=pr.number, title=pr.title or "", body=pr.body or "", state=pr.state,
                merged=pr.merged_at is not None,
                draft=bool(pr.draft), head_ref=head.ref, head_sha=head.sha,
                html_url=pr.html_url, labels=tuple(label.name for label in pr.labels),
                head_repo=head.repo.full_name if head.repo is not None else None,
                author=user.login if user is not None else "",
                author_type=user.type if user is not None else "", obj=pr)


def _by_bot(comment) -> bool:
    user = comment.user
    return user is not None and user.type == "Bot"


@dataclass(frozen=True)
class OpenPull:
    """An open pull request as the plan commenter needs it."""

    number: int
    base_ref: str
    base_sha: str
    head_sha: str
    labels: tuple[str, ...] = ()
