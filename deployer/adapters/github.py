"""Adapter for GitHub's REST API, through PyGithub: the deploy records (Deployments and
their statuses) and the one PR comment the plan keeps up to date. The bump bot uses it too.

Requests go one at a time; PyGithub's retry honours 403/429 secondary rate limits
(Retry-After) and backs off on 5xx. Failures are GitHubError, never PyGithub's types."""
from __future__ import annotations

from dataclasses import dataclass

from deployer.console import Console
from deployer.errors import DeployError

DEFAULT_API = "https://api.github.com"


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
        self.client = Github(base_url=api_url.rstrip("/"), auth=Auth.Token(token),
                             retry=GithubRetry(total=retries, backoff_factor=backoff),
                             timeout=timeout, per_page=100,
                             seconds_between_requests=request_interval,
                             seconds_between_writes=write_interval)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "GitHub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def repo(self, full_name: str):
        """A repository (PyGithub object; callers stay inside this module's methods)."""
        return self.call(lambda: self.client.get_repo(full_name), f"repository {full_name}")

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
        """The one comment on issue/PR `number` that starts with `marker`: updated when it
        exists, created when not (never a second one)."""
        repo = self.repo(full_name)
        text = f"{marker}\n{body}"

        def upsert():
            issue = repo.get_issue(number)
            for comment in issue.get_comments():
                if (comment.body or "").startswith(marker):
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
