"""The GitHub REST API double, checked with the real PyGithub."""
from __future__ import annotations

import hashlib
import time

import pytest
from github import (Auth, BadCredentialsException, Github, GithubException, GithubRetry,
                    InputGitAuthor, InputGitTreeElement, UnknownObjectException)

from tests.fakes.github import ApiError, GitHubDouble


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


# -- git data, refs, branches, contents ---------------------------------------------------
def git_sha(kind: str, content: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(content)}\0".encode() + content).hexdigest()


def test_a_commit_made_through_git_data_reads_back(gh):
    base = gh.seed("example/federation", {"README.md": "hello\n",
                                          "mybinder/values.yaml": "a: 1\n"})
    repo = client(gh).get_repo("example/federation")
    blob = repo.create_git_blob("version: 1.2.3\n", "utf-8")
    assert blob.sha == git_sha("blob", b"version: 1.2.3\n")  # what `git hash-object` says
    parent = repo.get_git_commit(base)
    tree = repo.create_git_tree(
        [InputGitTreeElement("mybinder/Chart.yaml", "100644", "blob", sha=blob.sha),
         InputGitTreeElement("README.md", "100644", "blob", sha=None)],  # deletes
        base_tree=parent.tree)
    commit = repo.create_git_commit("Bump binderhub", tree, [parent],
                                    author=InputGitAuthor("Bot", "bot@example.org"))
    ref = repo.create_git_ref("refs/heads/bump/binderhub", commit.sha)
    assert (ref.ref, ref.object.sha) == ("refs/heads/bump/binderhub", commit.sha)

    content = repo.get_contents("mybinder/Chart.yaml", ref="bump/binderhub")
    assert content.decoded_content == b"version: 1.2.3\n" and content.sha == blob.sha
    again = repo.get_git_commit(commit.sha)
    assert again.message == "Bump binderhub" and [p.sha for p in again.parents] == [base]
    assert again.author.email == "bot@example.org" and again.tree.sha == tree.sha
    paths = [e.path for e in repo.get_git_tree(tree.sha, recursive=True).tree]
    assert paths == ["mybinder", "mybinder/Chart.yaml", "mybinder/values.yaml"]
    assert repo.get_git_ref("heads/bump/binderhub").object.sha == commit.sha
    assert repo.get_branch("bump/binderhub").commit.sha == commit.sha
    assert repo.get_commit("bump/binderhub").files[0].filename == "README.md"
    assert [r.ref for r in repo.get_git_matching_refs("heads/bump/")] == [
        "refs/heads/bump/binderhub"]
    assert gh.file_at("example/federation", "bump/binderhub", "README.md") is None
    assert gh.file_at("example/federation", "main", "README.md") == "hello\n"
    assert gh.branch_sha("example/federation", "bump/binderhub") == commit.sha
    with pytest.raises(UnknownObjectException):
        repo.get_contents("nothing.txt", ref="main")


def test_ref_updates_must_fast_forward_unless_forced(gh):
    first = gh.seed("example/federation", {"a.txt": "1\n"})
    repo = client(gh).get_repo("example/federation")
    ref = repo.create_git_ref("refs/heads/bump/x", first)
    with pytest.raises(GithubException) as info:
        repo.create_git_ref("refs/heads/bump/x", first)
    assert (info.value.status, info.value.data["message"]) == (422, "Reference already exists")
    ahead = gh.push("example/federation", "bump/x", {"a.txt": "2\n"})
    sibling = gh.push("example/federation", "other", {"a.txt": "3\n"})
    ref = repo.get_git_ref("heads/bump/x")
    with pytest.raises(GithubException) as info:
        ref.edit(sibling)
    assert (info.value.status, info.value.data["message"]) == (
        422, "Update is not a fast forward")
    ref.edit(sibling, force=True)
    assert ref.object.sha == sibling == gh.branch_sha("example/federation", "bump/x")
    assert ahead != sibling
    ref.delete()
    with pytest.raises(UnknownObjectException):
        repo.get_git_ref("heads/bump/x")


def test_a_lazy_git_ref_edits_through_the_undocumented_singular_url(gh):
    """PyGithub 2.10: get_git_ref GETs /git/ref/{ref}; a ref from a lazy repository is never
    fetched, so edit() PATCHes /git/ref/{ref} (GitHub documents only /git/refs/{ref})."""
    sha = gh.seed("example/federation", {"a.txt": "1\n"})
    lazy = client(gh, lazy=True).get_repo("example/federation")
    with pytest.raises(UnknownObjectException):
        lazy.get_git_ref("heads/main").edit(sha)
    assert gh.requests[-1] == ("PATCH", "/repos/example/federation/git/ref/heads/main 404")
    lazy.get_git_ref("heads/main").complete().edit(sha)
    assert gh.requests[-1] == ("PATCH", "/repos/example/federation/git/refs/heads/main 200")


def test_contents_writes_check_the_sha(gh):
    repo = client(gh).get_repo("example/federation")
    created = repo.create_file("config/a.yaml", "add a", "a: 1\n")
    with pytest.raises(GithubException) as info:
        repo.update_file("config/a.yaml", "stale", "a: 2\n", sha="0" * 40)
    assert info.value.status == 409
    with pytest.raises(GithubException) as info:
        repo.create_file("config/a.yaml", "again", "a: 3\n")
    assert info.value.status == 422
    repo.update_file("config/a.yaml", "change a", "a: 2\n", sha=created["content"].sha)
    assert gh.file_at("example/federation", "main", "config/a.yaml") == "a: 2\n"
    assert [c.name for c in repo.get_contents("config")] == ["a.yaml"]


# -- pull requests ------------------------------------------------------------------------
def test_a_pull_request_from_creation_to_merge(gh):
    base = gh.seed("example/federation", {"mybinder/Chart.yaml": "version: 1\n"})
    gh.push("example/federation", "bump/binderhub", {"mybinder/Chart.yaml": "version: 2\n"})
    repo = client(gh).get_repo("example/federation")
    pr = repo.create_pull(base="main", head="bump/binderhub", title="Bump", body="old",
                          draft=False)
    assert (pr.state, pr.draft, pr.merged, pr.mergeable) == ("open", False, False, True)
    assert (pr.head.ref, pr.head.label, pr.base.sha) == ("bump/binderhub",
                                                         "example:bump/binderhub", base)
    with pytest.raises(GithubException) as info:
        repo.create_pull(base="main", head="example:bump/binderhub", title="Bump again")
    assert info.value.status == 422 and info.value.data["message"] == "Validation Failed"
    assert "already exists" in info.value.data["errors"][0]["message"]
    gh.push("example/federation", "empty", {})
    gh.push("example/federation", "empty", {}, message="nothing")
    with pytest.raises(GithubException) as info:
        repo.create_pull(base="empty", head="main", title="none")
    assert info.value.data["errors"][0]["message"] == "No commits between empty and main"

    pr.edit(title="Bump binderhub", body="new")
    assert (pr.title, pr.body) == ("Bump binderhub", "new")
    pr.add_to_labels("dependencies", "bot")
    pr.remove_from_labels("bot")
    assert [x.name for x in pr.get_labels()] == ["dependencies"]
    pr.set_labels("automerge")
    issue = repo.get_issue(pr.number)
    assert [x.name for x in issue.labels] == ["automerge"] and issue.pull_request is not None
    issue.create_comment("a changelog")
    assert repo.get_pull(pr.number).comments == 1

    pr.edit(state="closed")
    assert repo.get_pull(pr.number).state == "closed" and gh.pulls("example/federation",
                                                                   "open") == []
    pr.edit(state="open")
    status = pr.merge(merge_method="merge")
    assert status.merged
    merged = repo.get_pull(pr.number)
    assert merged.merged and merged.state == "closed" and merged.merged_at is not None
    head = repo.get_commit("main")
    assert head.sha == status.sha == merged.merge_commit_sha
    assert [p.sha for p in head.parents] == [base, merged.head.sha]
    assert gh.file_at("example/federation", "main", "mybinder/Chart.yaml") == "version: 2\n"
    with pytest.raises(GithubException) as info:
        merged.edit(state="open")
    assert info.value.status == 422


def test_pulls_are_listed_by_head_and_state_a_page_at_a_time(gh):
    gh.seed("example/federation", {"a.txt": "0\n"})
    repo = client(gh, per_page=2).get_repo("example/federation")
    numbers = []
    for i in range(5):
        gh.push("example/federation", f"bump/{i}", {"a.txt": f"{i}\n"})
        numbers.append(repo.create_pull(base="main", head=f"bump/{i}", title=f"#{i}").number)
    gh.close_pull("example/federation", numbers[1])
    gh.requests.clear()
    assert [p.number for p in repo.get_pulls()] == [numbers[i] for i in (4, 3, 2, 0)]
    assert len([r for r in gh.requests if "/pulls" in r[1]]) == 2
    assert [p.number for p in repo.get_pulls(state="all", sort="created",
                                             direction="asc")] == numbers
    assert [p.number for p in repo.get_pulls(state="closed")] == [numbers[1]]
    assert [p.title for p in repo.get_pulls(head="example:bump/3")] == ["#3"]
    assert list(repo.get_pulls(head="example:bump/1")) == []
    assert [p.title for p in repo.get_pulls(state="all", head="example:bump/1")] == ["#1"]



def test_merges_refuse_conflicts_and_stale_heads_and_squash(gh):
    fed = "example/federation"
    gh.seed(fed, {"a.txt": "1\n", "b.txt": "1\n"})
    gh.push(fed, "x", {"a.txt": "2\n"})
    main = gh.push(fed, "main", {"a.txt": "3\n"})
    repo = client(gh).get_repo(fed)
    conflicting = repo.create_pull(base="main", head="x", title="conflict")
    assert conflicting.mergeable is False
    with pytest.raises(GithubException) as info:
        conflicting.merge()
    assert info.value.status == 405
    gh.push(fed, "y", {"b.txt": "2\n"}, author=("bump-bot", "bump-bot@users.noreply.github.com"))
    pr = repo.create_pull(base="main", head="y", title="ok")
    with pytest.raises(GithubException) as info:
        pr.merge(sha="0" * 40)
    assert info.value.status == 409
    assert [c.author.login for c in pr.get_commits()] == ["bump-bot"]
    assert [(f.filename, f.status, f.additions) for f in pr.get_files()] == [
        ("b.txt", "modified", 1)]
    sha = gh.merge_pull(fed, pr.number, method="squash")
    assert [p.sha for p in repo.get_commit(sha).parents] == [main]
    assert gh.file_at(fed, "main", "a.txt") == "3\n" and gh.file_at(fed, "main", "b.txt") == "2\n"
    assert pr.is_merged() and not conflicting.is_merged()
    gh.close_pull(fed, conflicting.number)
    assert [(p["number"], p["state"], p["merged"]) for p in gh.pulls(fed)] == [
        (conflicting.number, "closed", False), (pr.number, "closed", True)]


# -- upstream history ---------------------------------------------------------------------
def test_compare_between_short_shas_lists_commits_and_their_pulls(gh):
    gh.add_repo("jupyterhub/binderhub")
    shas = gh.add_upstream_history("jupyterhub/binderhub", [
        ("383374de", "old release"),
        (None, "Merge pull request #1700 from a/fix", 1700, "Fix the build", ["bug"]),
        (None, "unrelated commit"),
        ("a1b2c3d4", "Merge pull request #1701 from b/feat", 1701, "A feature",
         ["enhancement", "new"]),
    ])
    assert shas[0].startswith("383374de") and shas[3].startswith("a1b2c3d4")
    repo = client(gh).get_repo("jupyterhub/binderhub")
    comparison = repo.compare("383374de", "a1b2c3d4")
    assert (comparison.status, comparison.ahead_by, comparison.behind_by) == ("ahead", 3, 0)
    commits = list(comparison.commits)
    assert [c.sha for c in commits] == shas[1:]
    assert [c.commit.message.splitlines()[0] for c in commits][1] == "unrelated commit"
    pulls = [[(p.number, p.title, [x.name for x in p.labels]) for p in c.get_pulls()]
             for c in commits]
    assert pulls == [[(1700, "Fix the build", ["bug"])], [],
                     [(1701, "A feature", ["enhancement", "new"])]]
    assert repo.compare("a1b2c3d4", "383374de").status == "behind"
    with pytest.raises(UnknownObjectException):
        repo.compare("383374de", "deadbeef").status
    with pytest.raises(GithubException) as info:
        repo.get_commit("deadbeef").sha
    assert info.value.data["message"] == "No commit found for SHA: deadbeef"


def test_compare_pages_its_commits_and_survives_a_server_error(gh):
    gh.add_repo("jupyterhub/binderhub")
    shas = gh.add_upstream_history("jupyterhub/binderhub", [(None, f"c{i}") for i in range(7)])
    gh.fail(r"/compare/", 502, times=1)
    repo = client(gh, per_page=3).get_repo("jupyterhub/binderhub")
    comparison = repo.compare(shas[0][:7], shas[-1][:12])
    assert [c.commit.message for c in comparison.commits] == [f"c{i}" for i in range(1, 7)]
    assert [p.rsplit(" ", 1)[1] for _, p in gh.requests if "/compare/" in p] == [
        "502", "200", "200"]


def test_releases_latest_and_by_tag(gh):
    gh.add_repo("jupyterhub/binderhub")
    repo = client(gh).get_repo("jupyterhub/binderhub")
    with pytest.raises(UnknownObjectException):
        repo.get_latest_release().tag_name
    gh.add_upstream_history("jupyterhub/binderhub", [(None, "one")])
    gh.add_release("jupyterhub/binderhub", "1.0.0", body="first")
    gh.add_release("jupyterhub/binderhub", "1.1.0b1", prerelease=True)
    gh.add_release("jupyterhub/binderhub", "2.0.0", draft=True)
    assert repo.get_latest_release().tag_name == "1.0.0"
    assert repo.get_release("1.0.0").body == "first"
    assert [r.tag_name for r in repo.get_releases()] == ["2.0.0", "1.1.0b1", "1.0.0"]
    assert [t.name for t in repo.get_tags()] == ["1.1.0b1", "1.0.0"]


def test_conditional_reads_of_new_endpoints_are_free(gh):
    import requests

    gh.seed("example/federation", {"a.txt": "1\n"})
    headers = {"Authorization": f"token {gh.token}"}
    for path in ("/git/ref/heads/main", "/pulls?state=open&head=example:bump/x"):
        url = f"{gh.url}/repos/example/federation{path}"
        first = requests.get(url, headers=headers, timeout=5)
        again = requests.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]},
                             timeout=5)
        assert (first.status_code, again.status_code) == (200, 304)
    assert [p for _, p in gh.counted()] == ["/repos/example/federation/git/ref/heads/main 200",
                                            "/repos/example/federation/pulls 200"]


def test_a_real_local_commit_is_imported_with_its_sha(gh, tmp_path):
    import subprocess

    from github import Auth, Github

    work = tmp_path / "work"
    (work / "mybinder").mkdir(parents=True)
    (work / "mybinder" / "Chart.yaml").write_text("name: x\nversion: 1.0.0\n")
    (work / "README.md").write_text("hello\n")
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.org", "PATH": "/usr/bin:/bin",
           "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.org", "HOME": str(work)}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, env=env)
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True, env=env,
                         capture_output=True, text=True).stdout.strip()
    gh.add_repo("o/imported")
    assert gh.import_git("o/imported", work) == sha
    assert gh.branch_sha("o/imported", "main") == sha
    assert gh.file_at("o/imported", sha, "mybinder/Chart.yaml") == "name: x\nversion: 1.0.0\n"
    repo = Github(base_url=gh.url, auth=Auth.Token(gh.token)).get_repo("o/imported")
    commit = repo.get_git_commit(sha)
    assert commit.message == "one\n" and commit.author.email == "a@example.org"
    # a commit made through the API on top of it is a real git commit of that tree too
    assert {e.path for e in repo.get_git_tree(commit.tree.sha, recursive=True).tree} == \
        {"README.md", "mybinder", "mybinder/Chart.yaml"}


def test_pulls_by_the_app_by_a_person_and_from_a_fork(gh):
    fed = "example/federation"
    gh.seed(fed, {"a.txt": "0\n"})
    gh.push(fed, "bump/x", {"a.txt": "1\n"})
    gh.add_fork(fed, "someone")
    gh.push("someone/federation", "bump/x", {"a.txt": "2\n"}, message="from the fork")
    repo = client(gh).get_repo(fed)
    by_app = repo.create_pull(base="main", head="bump/x", title="by the app")
    assert (by_app.user.login, by_app.user.type) == ("deploy-bot[bot]", "Bot")
    assert by_app.head.repo.full_name == fed and by_app.head.label == "example:bump/x"
    # a fork's branch of the same name is another head: GitHub allows a pull for each
    from_fork = gh.open_pull(fed, "bump/x", head_repo="someone/federation", user="someone",
                             body="copied")
    assert (from_fork["user"]["login"], from_fork["user"]["type"]) == ("someone", "User")
    pr = repo.get_pull(from_fork["number"])
    assert pr.head.repo.full_name == "someone/federation" and pr.head.repo.fork
    assert pr.head.label == "someone:bump/x"
    assert pr.head.sha == gh.branch_sha("someone/federation", "bump/x")
    assert [p.title for p in repo.get_pulls(head="example:bump/x")] == ["by the app"]
    assert [p.number for p in repo.get_pulls(head="someone:bump/x")] == [from_fork["number"]]
    listed = {p.number: (p.user.type, p.head.repo.full_name) for p in repo.get_pulls()}
    assert listed == {by_app.number: ("Bot", fed),
                      from_fork["number"]: ("User", "someone/federation")}
    # the API opens one from a fork too, by the app
    gh.push("someone/federation", "feature", {"a.txt": "3\n"})
    api_fork = repo.create_pull(base="main", head="someone:feature", title="fork via api")
    assert api_fork.head.repo.full_name == "someone/federation"
    # a person's pull from a branch of the repository itself
    gh.push(fed, "by-hand", {"a.txt": "4\n"})
    mine = gh.open_pull(fed, "by-hand", title="by hand")
    assert repo.get_pull(mine["number"]).user.type == "User"
    with pytest.raises(ApiError, match="Validation Failed"):
        gh.open_pull(fed, "by-hand")
    with pytest.raises(GithubException) as info:
        repo.create_pull(base="main", head="by-hand", title="again")
    assert "already exists for example:by-hand" in info.value.data["errors"][0]["message"]
