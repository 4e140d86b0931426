"""The GitHub REST API double, checked with the real PyGithub."""
from __future__ import annotations

import time

import pytest
from github import Auth, BadCredentialsException, Github, GithubException, GithubRetry

from tests.fakes.github import GitHubDouble


@pytest.fixture
def gh():
    with GitHubDouble() as double:
        double.add_repo("example/federation")
        yield double


def client(gh, token=None, **kwargs) -> Github:
    kwargs.setdefault("retry", GithubRetry(total=2, backoff_factor=0.01))
    kwargs.setdefault("seconds_between_requests", 0)
    kwargs.setdefault("seconds_between_writes", 0)
    return Github(base_url=gh.url, auth=Auth.Token(token or gh.token), **kwargs)


def test_pygithub_follows_the_urls_back_to_the_double(gh):
    repo = client(gh).get_repo("example/federation")
    assert repo.full_name == "example/federation" and repo.default_branch == "main"
    issue = gh.add_issue("example/federation", "plan me")
    comment = repo.get_issue(issue["number"]).create_comment("hello")
    comment.edit("hello again")
    assert [c.body for c in repo.get_issue(issue["number"]).get_comments()] == ["hello again"]


def test_link_pagination_is_followed(gh):
    repo = client(gh, per_page=10).get_repo("example/federation")
    issue = repo.get_issue(gh.add_issue("example/federation")["number"])
    for i in range(25):
        issue.create_comment(f"c{i}")
    gh.requests.clear()
    assert [c.body for c in issue.get_comments()] == [f"c{i}" for i in range(25)]
    pages = [p for m, p in gh.requests if "/comments" in p]
    assert len(pages) == 3


def test_deployments_and_statuses(gh):
    repo = client(gh).get_repo("example/federation")
    first = repo.create_deployment("a" * 40, environment="gke", required_contexts=[])
    first.create_status("success", description="deployed")
    second = repo.create_deployment("b" * 40, environment="gke", required_contexts=[])
    second.create_status("success")
    assert [s.state for s in first.get_statuses()] == ["inactive", "success"]
    with pytest.raises(GithubException) as info:
        second.create_status("exploded")
    assert info.value.status == 422


def test_errors_as_github_gives_them(gh):
    with pytest.raises(BadCredentialsException):
        client(gh, token="wrong").get_repo("example/federation")
    with pytest.raises(GithubException) as info:
        client(gh).get_repo("example/nothing")
    assert info.value.status == 404


def test_a_secondary_rate_limit_is_waited_out(gh):
    gh.fail(r"^/repos/example/federation$", 403, times=1, retry_after=1)
    start = time.monotonic()
    assert client(gh).get_repo("example/federation").name == "federation"
    assert time.monotonic() - start >= 1
    assert [r for r in gh.requests if r[0] == "GET"][-2:] == [
        ("GET", "/repos/example/federation 403"), ("GET", "/repos/example/federation 200")]


def test_etags_make_repeated_reads_free(gh):
    import requests

    url = f"{gh.url}/repos/example/federation"
    headers = {"Authorization": f"token {gh.token}"}
    first = requests.get(url, headers=headers, timeout=5)
    again = requests.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]},
                         timeout=5)
    assert (first.status_code, again.status_code) == (200, 304)
    assert gh.counted() == [("GET", "/repos/example/federation 200")]
