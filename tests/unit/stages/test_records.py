"""Deploy records beyond the report, through the real PyGithub against the GitHub API double
and Grafana's annotation API against a small HTTP double: recorded when up, a warning (never
a failed deploy) when down; and the plan's PR comment, updated, never duplicated."""
from __future__ import annotations

import io
import json

import pytest
import yaml

from deployer.adapters.github import GitHub, GitHubError
from deployer.console import Console
from deployer.model.report import DeployReport, Outcome
from deployer.model.workspace import Workspace
from deployer.stages import records
from tests.fakes.github import GitHubDouble
from tests.fakes.http import QuietHandler, serve

SHA = "4" * 40


class _Grafana(QuietHandler):
    """POST /api/annotations as Grafana answers it; `down` answers 503."""

    seen: list = []
    down = 0

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.down:
            cls.down -= 1
            return self.reply(503, "application/json", b'{"message": "down"}')
        cls.seen.append((self.path, self.headers.get("Authorization"), body))
        self.reply(200, "application/json", b'{"id": 7, "message": "Annotation added"}')


@pytest.fixture
def gh():
    with GitHubDouble() as double:
        double.add_repo("example/federation")
        yield double


@pytest.fixture
def grafana():
    handler = type("Grafana", (_Grafana,), {"seen": [], "down": 0})
    with serve(handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler


def _workspace(repo, gh, grafana_url, **env) -> tuple[Workspace, io.StringIO]:
    path = repo / "config/federation.yaml"
    data = yaml.safe_load(path.read_text())
    data["records"] = {"github_deployments": True,
                       "grafana": {"url": grafana_url, "tags": ["binder"]}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    err = io.StringIO()
    base = {"GITHUB_TOKEN": gh.token, "GITHUB_REPOSITORY": "example/federation",
            "GITHUB_API_URL": gh.url, "GITHUB_RUN_ID": "99", "GRAFANA_API_TOKEN": "glsa_tok"}
    return Workspace(root=repo, env={**base, **env}, console=Console(stderr=err)), err


def _report(member: str, outcome: Outcome, **extra) -> DeployReport:
    return DeployReport(member=member, release=member, namespace=member, git_sha=SHA,
                        revision_before=3, revision_after=4, outcome=outcome, **extra)


def test_deploys_are_recorded_in_github_and_grafana(repo, gh, grafana):
    url, handler = grafana
    ws, err = _workspace(repo, gh, url)
    done = records.publish(ws, backoff=0.01, write_interval=0, reports=[_report("staging", Outcome.DEPLOYED),
                                _report("gke", Outcome.ROLLED_BACK, error="smoke failed"),
                                _report("aws", Outcome.FAILED),
                                _report("uni-lab", Outcome.DRY_RUN),
                                # an older checkout, refused: nothing was deployed
                                _report("hetzner-fsn", Outcome.REFUSED)])
    repo_state = gh.repos["example/federation"]
    states = {d["environment"]: [s["state"] for s in repo_state.statuses[i]]
              for i, d in repo_state.deployments.items()}
    assert states == {"staging": ["success"], "gke": ["inactive"], "aws": ["failure"]}
    status = repo_state.statuses[next(iter(repo_state.deployments))][0]
    assert status["target_url"] == "https://github.com/example/federation/actions/runs/99"
    assert {d["sha"] for d in repo_state.deployments.values()} == {SHA}
    tags = [body["tags"] for _, _, body in handler.seen]
    assert ["binder", "member:staging", "outcome:deployed", f"sha:{SHA[:10]}"] in tags
    assert not [t for t in tags if "member:hetzner-fsn" in t or "member:uni-lab" in t]
    assert all(auth == "Bearer glsa_tok" for _, auth, _ in handler.seen)
    assert len(done) == 6 and err.getvalue() == ""


def test_only_production_members_are_production_environments(repo, gh, grafana):
    """Each member's deploy is recorded once, by `deploy --record` (the workflow's jobs set
    `deployment: false`), and a staging member's environment is not production."""
    url, _ = grafana
    ws, err = _workspace(repo, gh, url)
    records.publish(ws, backoff=0.01, write_interval=0,
                    reports=[_report("staging", Outcome.DEPLOYED),
                             _report("gke", Outcome.DEPLOYED)])
    found = {d["environment"]: d["production_environment"]
             for d in gh.repos["example/federation"].deployments.values()}
    assert found == {"staging": False, "gke": True}


def test_records_apis_down_are_warnings_not_failures(repo, gh, grafana):
    url, handler = grafana
    ws, err = _workspace(repo, gh, url)
    gh.fail(r"/deployments", 503, times=None)
    handler.down = 10
    done = records.publish(ws, backoff=0.01, write_interval=0, reports=[_report("staging", Outcome.DEPLOYED)])
    assert done == []
    assert "GitHub deployment for staging not recorded (GitHub:" in err.getvalue()
    assert "Grafana annotation" in err.getvalue() and "HTTP 503" in err.getvalue()
    assert "glsa_tok" not in err.getvalue() and gh.token not in err.getvalue()


def test_grafana_recovering_within_the_retries_is_recorded(repo, gh, grafana):
    url, handler = grafana
    ws, err = _workspace(repo, gh, url)
    handler.down = 1
    records.publish(ws, backoff=0.01, write_interval=0, reports=[_report("staging", Outcome.DEPLOYED)])
    assert len(handler.seen) == 1


def test_records_without_credentials_say_so(repo, gh, grafana):
    url, _ = grafana
    ws, err = _workspace(repo, gh, url, GITHUB_TOKEN="", GRAFANA_API_TOKEN="")
    assert records.publish(ws, backoff=0.01, write_interval=0, reports=[_report("staging", Outcome.DEPLOYED)]) == []
    assert "need GITHUB_TOKEN" in err.getvalue() and "$GRAFANA_API_TOKEN" in err.getvalue()


def test_the_plan_comment_is_updated_not_duplicated(gh):
    number = gh.add_issue("example/federation", "a PR")["number"]
    with GitHub(gh.token, api_url=gh.url, backoff=0.01, write_interval=0) as client:
        for i in range(120):   # more than a page of other comments
            gh.repos["example/federation"].comments[10_000 + i] = {
                "id": 10_000 + i, "issue": number, "body": f"review {i}"}
        first = client.upsert_comment("example/federation", number, "<!-- plan -->", "v1")
        second = client.upsert_comment("example/federation", number, "<!-- plan -->", "v2")
    ours = [c for c in gh.repos["example/federation"].comments.values()
            if c["body"].startswith("<!-- plan -->")]
    assert first.created and not second.created and first.id == second.id
    assert [c["body"] for c in ours] == ["<!-- plan -->\nv2"]


def test_a_persons_comment_is_never_taken_for_the_plan(gh):
    """Only the bot's own comment is the plan comment: a person's comment that starts with
    the marker (written first, to pre-empt it) is neither edited nor counted."""
    number = gh.add_issue("example/federation", "a PR")["number"]
    fake = gh.add_comment("example/federation", number, "<!-- plan -->\nall clear",
                          user="someone")
    with GitHub(gh.token, api_url=gh.url, backoff=0.01, write_interval=0) as client:
        first = client.upsert_comment("example/federation", number, "<!-- plan -->", "v1")
        second = client.upsert_comment("example/federation", number, "<!-- plan -->", "v2")
    comments = gh.repos["example/federation"].comments
    assert first.created and first.id != fake["id"] and second.id == first.id
    assert comments[fake["id"]]["body"] == "<!-- plan -->\nall clear"
    assert comments[first.id]["body"] == "<!-- plan -->\nv2"
    assert comments[first.id]["user"] == "github-actions[bot]"


def test_github_errors_are_one_line(gh):
    with GitHub(gh.token, api_url=gh.url, retries=1, backoff=0.01) as client:
        with pytest.raises(GitHubError) as info:
            client.upsert_comment("example/federation", 999, "<!-- plan -->", "x")
    assert str(info.value) == "GitHub: comment on #999: HTTP 404 Not Found"


def test_the_comment_command(gh, tmp_path, cli):
    number = gh.add_issue("example/federation", "a PR")["number"]
    body = tmp_path / "summary.md"
    body.write_text("### Deploy plan\n")
    env = {"GITHUB_TOKEN": gh.token, "GITHUB_API_URL": gh.url,
           "GITHUB_REPOSITORY": "example/federation"}
    for _ in range(2):
        result = cli("comment", "--pr", str(number), "--body-file", body, extra_env=env)
        assert result.returncode == 0, result.stderr
    assert len(gh.repos["example/federation"].comments) == 1
    bad = cli("comment", "--pr", "1; rm -rf /", "--body-file", body, extra_env=env)
    assert bad.returncode == 2 and "must be a pull request number" in bad.stderr
