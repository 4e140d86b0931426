"""The bump bot against the GitHub REST double through the real PyGithub: one PR per
outdated dependency, updated in place, never duplicated or reopened, a person's branch
never overwritten, and a no-change run that costs at most two requests.

Releases come from an adapter-level fake registry here (the registry adapter itself is
tested against a real chart repository and a real OCI registry in tests/e2e/test_bump.py);
validation of the edited tree runs in the e2e tests too."""
from __future__ import annotations

import json

import pytest

from deployer.adapters.github import GitHub
from deployer.adapters.registry import ChartVersion, RegistryError
from deployer.model import bump as model
from deployer.model import dependencies as deps_mod
from deployer.model import versions
from deployer.model.workspace import Workspace
from deployer.stages import bump as bump_stage
from deployer.stages.bump import Action
from tests.fakes.github import GitHubDouble

REPO = "example/federation"
DEV_OLD = "1.0.0-0.dev.git.3983.h383374de"
DEV_NEW = "1.0.0-0.dev.git.3990.h9a1b2c3d"
SEEDED = ("mybinder/Chart.yaml", "config/common.yaml", "config/dependencies.yaml",
          "config/federation.yaml")


class FakeRegistry:
    """Releases by source, as the registry adapter returns them."""

    def __init__(self):
        self.charts = {
            ("https://jupyterhub.github.io/helm-chart", "binderhub"): [
                ChartVersion(DEV_NEW, "1.0.0"), ChartVersion(DEV_OLD, "1.0.0"),
                ChartVersion("0.2.0", "0.2.0")],
            ("https://traefik.github.io/charts", "traefik"): [
                ChartVersion("41.2.0", "v3.6.4"), ChartVersion("41.1.1", "v3.6.2")],
            ("https://prometheus-community.github.io/helm-charts", "prometheus"): [
                ChartVersion("29.20.0", "v3.7.3")],
            ("https://grafana.github.io/helm-charts", "grafana"): [
                ChartVersion("10.6.0", "12.3.1"), ChartVersion("10.5.15", "12.3.0")],
            ("https://charts.jetstack.io", "cert-manager"): [
                ChartVersion("v1.19.6", "v1.19.6"), ChartVersion("v1.19.5", "v1.19.5")],
            ("https://cryptnono.github.io/cryptnono", "cryptnono"): [
                ChartVersion("0.3.1", "0.0.1"), ChartVersion("0.3.0", "0.0.1")],
        }
        self.tags_by_image = {"quay.io/jupyterhub/repo2docker": ["2025.08.0", "latest"]}
        self.down: set[str] = set()

    def chart_versions(self, repository, chart):
        if repository in self.down:
            raise RegistryError(f"{repository}/index.yaml: HTTP 503")
        return self.charts[(repository, chart)]

    def tags(self, reference):
        return self.tags_by_image[reference]


@pytest.fixture
def gh():
    with GitHubDouble() as double:
        double.add_repo(REPO)
        double.add_repo("jupyterhub/binderhub")
        double.add_upstream_history("jupyterhub/binderhub", [
            ("383374de", "Merge pull request #1901: older work", 1901, "older work", []),
            (None, "Merge pull request #1905 from a/b", 1905, "Build with pinned buildkit",
             ["maintenance"]),
            (None, "Merge pull request #1907 from c/d", 1907, "Show the build log on failure",
             ["enhancement"]),
            ("9a1b2c3d", "Merge pull request #1910 from e/f", 1910, "Fix the <launch> timeout",
             ["bug"]),
        ])
        yield double


@pytest.fixture
def bot(gh, repo, env):
    """run(**settings) -> outcomes, against the double, with the repo copy as checkout."""
    parent = gh.seed(REPO, {rel: (repo / rel).read_text() for rel in SEEDED})
    registry = FakeRegistry()

    def run(parent=parent, **settings) -> list[bump_stage.Outcome]:
        ws = Workspace(root=repo, env=env)
        settings.setdefault("validate", False)
        with GitHub(gh.token, api_url=gh.url, backoff=0.05, request_interval=0,
                    write_interval=0) as client:
            return bump_stage.run(ws, bump_stage.BumpSettings(repository=REPO, **settings),
                                  registry=registry, github=client, parent=parent)

    run.registry = registry
    run.parent = parent
    return run


def _by_unit(outcomes):
    return {o.unit: o for o in outcomes}


def _comments(gh, number):
    return [c for c in gh.repos[REPO].comments.values() if c["issue"] == number]


def _open(gh):
    return {p["head"]["ref"]: p for p in gh.pulls(REPO, state="open")}


def test_the_first_run_opens_one_pr_per_outdated_dependency(gh, bot, repo):
    outcomes = _by_unit(bot())
    assert {u: o.action for u, o in outcomes.items()} == {
        "binderhub": Action.OPEN, "traefik": Action.OPEN, "monitoring": Action.OPEN,
        "repo2docker": Action.UP_TO_DATE, "cert-manager": Action.UP_TO_DATE,
        "cryptnono": Action.UP_TO_DATE}
    pulls = _open(gh)
    assert set(pulls) == {"bump/binderhub", "bump/traefik", "bump/monitoring"}
    chart = gh.file_at(REPO, "bump/binderhub", "mybinder/Chart.yaml")
    before = (repo / "mybinder/Chart.yaml").read_text()
    assert chart == before.replace(DEV_OLD, DEV_NEW)   # only the version, byte for byte
    assert gh.file_at(REPO, "bump/traefik", "config/common.yaml") == \
        (repo / "config/common.yaml").read_text()
    pr = pulls["bump/binderhub"]
    assert pr["title"] == f"Bump binderhub from {DEV_OLD} to {DEV_NEW}"
    assert pr["base"]["ref"] == "main" and not pr["draft"]
    body = pr["body"]
    assert f"`{DEV_OLD}` → `{DEV_NEW}`" in body
    # the upstream PRs between the two commits encoded in the dev versions, oldest first
    assert body.index("#1905") < body.index("#1907") < body.index("#1910")
    assert "[#1901]" not in body and "`bug`" in body and "&lt;launch&gt;" in body
    assert "compare/383374de...9a1b2c3d" in body
    labels = {label["name"] for label in pulls["bump/traefik"]["labels"]}
    assert labels == {"dependencies", "helm-chart"}
    assert pulls["bump/monitoring"]["title"] == "Bump monitoring: grafana 10.5.15 -> 10.6.0"
    # the repository itself is untouched: PRs are made from commits, not the checkout
    assert (repo / "mybinder/Chart.yaml").read_text() == before


def test_a_run_with_nothing_new_costs_at_most_two_requests(gh, bot):
    bot()
    heads = {ref: p["head"]["sha"] for ref, p in _open(gh).items()}
    gh.requests.clear()
    outcomes = _by_unit(bot())
    assert {o.action for o in outcomes.values()} <= {Action.CURRENT, Action.UP_TO_DATE}
    assert len(gh.counted()) <= 2, gh.counted()
    assert {ref: p["head"]["sha"] for ref, p in _open(gh).items()} == heads


def test_a_newer_release_updates_the_same_pr(gh, bot):
    bot()
    first = _open(gh)["bump/binderhub"]
    newer = "1.0.0-0.dev.git.3995.hfeedbeef"
    bot.registry.charts[("https://jupyterhub.github.io/helm-chart", "binderhub")].insert(
        0, ChartVersion(newer, "1.0.0"))
    outcomes = _by_unit(bot())
    assert outcomes["binderhub"].action is Action.UPDATE
    pulls = [p for p in gh.pulls(REPO) if p["head"]["ref"] == "bump/binderhub"]
    assert len(pulls) == 1                                   # never a second PR
    updated = pulls[0]
    assert updated["number"] == first["number"] and updated["title"].endswith(newer)
    assert updated["head"]["sha"] != first["head"]["sha"]
    assert newer in gh.file_at(REPO, "bump/binderhub", "mybinder/Chart.yaml")


def test_a_pr_a_person_closed_is_not_reopened(gh, bot):
    bot()
    gh.close_pull(REPO, _open(gh)["bump/traefik"]["number"])
    outcomes = _by_unit(bot())
    assert outcomes["traefik"].action is Action.CLOSED_BEFORE
    assert "bump/traefik" not in _open(gh)
    # a newer version is a new proposal
    bot.registry.charts[("https://traefik.github.io/charts", "traefik")].insert(
        0, ChartVersion("41.3.0", "v3.6.5"))
    assert _by_unit(bot())["traefik"].action is Action.OPEN
    assert _open(gh)["bump/traefik"]["title"].endswith("to 41.3.0")


def test_a_branch_a_person_pushed_to_is_commented_not_overwritten(gh, bot):
    bot()
    pr = _open(gh)["bump/binderhub"]
    human = gh.push(REPO, "bump/binderhub", {"config/common.yaml": "# fixed by hand\n"},
                    "Fix values for the new binderhub")
    bot.registry.charts[("https://jupyterhub.github.io/helm-chart", "binderhub")].insert(
        0, ChartVersion("1.0.0-0.dev.git.3995.hfeedbeef", "1.0.0"))
    assert _by_unit(bot())["binderhub"].action is Action.HUMAN_BRANCH
    assert gh.branch_sha(REPO, "bump/binderhub") == human
    comments = _comments(gh, pr["number"])
    assert len(comments) == 1 and "3995" in comments[0]["body"]
    bot()                                                    # says it once
    assert len(_comments(gh, pr["number"])) == 1
    assert gh.branch_sha(REPO, "bump/binderhub") == human


def test_a_secondary_rate_limit_is_waited_out(gh, bot):
    gh.fail(r"/pulls$", 403, times=1, methods=("POST",), retry_after=1)
    outcomes = _by_unit(bot(only=["traefik"]))
    assert outcomes["traefik"].action is Action.OPEN
    assert [r for r in gh.requests if r[0] == "POST" and r[1].startswith(
        f"/repos/{REPO}/pulls ")] == [("POST", f"/repos/{REPO}/pulls 403"),
                                     ("POST", f"/repos/{REPO}/pulls 201")]
    assert len(_open(gh)) == 1


def test_a_pr_whose_version_landed_otherwise_is_closed(gh, bot, repo):
    bot(only=["traefik"])
    chart = repo / "mybinder/Chart.yaml"
    chart.write_text(chart.read_text().replace("version: 41.1.1", "version: 41.2.0"))
    outcomes = _by_unit(bot(only=["traefik"]))
    assert outcomes["traefik"].action is Action.CLOSE_STALE
    assert "bump/traefik" not in _open(gh)


def test_dry_run_writes_nothing_but_says_everything(gh, bot):
    gh.requests.clear()
    outcomes = _by_unit(bot(dry_run=True))
    assert outcomes["binderhub"].action is Action.OPEN
    assert [p.number for p in outcomes["binderhub"].bumps[0].changelog.pulls] == \
        [1905, 1907, 1910]
    assert not [r for r in gh.requests if r[0] != "GET"]
    assert _open(gh) == {}


def test_a_group_is_one_pr_and_a_failing_source_fails_only_its_unit(gh, bot):
    key = ("https://prometheus-community.github.io/helm-charts", "prometheus")
    bot.registry.charts[key].insert(0, ChartVersion("29.21.0", "v3.7.4"))
    bot.registry.down.add("https://traefik.github.io/charts")
    outcomes = _by_unit(bot())
    assert outcomes["traefik"].action is Action.FAILED and "503" in outcomes["traefik"].detail
    assert outcomes["monitoring"].action is Action.OPEN
    pr = _open(gh)["bump/monitoring"]
    assert pr["title"] == ("Bump monitoring: prometheus 29.20.0 -> 29.21.0, grafana "
                           "10.5.15 -> 10.6.0")
    chart = gh.file_at(REPO, "bump/monitoring", "mybinder/Chart.yaml")
    assert "29.21.0" in chart and "10.6.0" in chart and "bump/traefik" not in _open(gh)


def test_a_major_bump_warns(gh, bot):
    bot.registry.charts[("https://traefik.github.io/charts", "traefik")].insert(
        0, ChartVersion("42.0.0", "v4.0.0"))
    bot(only=["traefik"])
    body = _open(gh)["bump/traefik"]["body"]
    assert "a new major version" in body and "`41.1.1` → `42.0.0`" in body
    assert "v3.6.2 → v4.0.0" in body


def test_the_marker_round_trips():
    unit = model.Unit("x", [])
    text = "hello\n" + model.marker(unit, "abc") + "\n"
    assert model.read_marker(text) == {"unit": "x", "versions": {}, "commit": "abc"}
    again = model.with_marker(text, {"unit": "x", "noticed": {"x": "2"}})
    assert model.read_marker(again)["noticed"] == {"x": "2"} and again.startswith("hello\n")
    assert model.read_marker("no marker") is None
    assert model.read_marker("<!-- deployer-bump {not json} -->") is None


def test_an_oci_chart_version_with_build_metadata(gh, bot, repo):
    deps = repo / "config" / "dependencies.yaml"
    deps.write_text(deps.read_text().replace(
        "    source: https://grafana.github.io/helm-charts\n",
        "    source: oci://ghcr.io/grafana/helm-charts/grafana\n").replace(
        "  grafana:\n    kind: helm-chart", "  grafana:\n    kind: oci-chart"))
    # OCI tags cannot hold "+": helm pushes 10.6.0+build.2 as the tag 10.6.0_build.2
    bot.registry.tags_by_image["oci://ghcr.io/grafana/helm-charts/grafana"] = [
        "10.5.15", "10.6.0_build.2", "sha256-abc.sig"]
    outcomes = _by_unit(bot(only=["grafana"], dry_run=True))
    (b,) = outcomes["monitoring"].bumps
    assert (b.before, b.after) == ("10.5.15", "10.6.0+build.2")


def test_a_github_release_dependency_with_its_release_notes(gh, bot, repo):
    deps = repo / "config" / "dependencies.yaml"
    # releases from GitHub; the values hold the bare version
    deps.write_text(deps.read_text().replace(
        "    kind: image\n    source: quay.io/jupyterhub/repo2docker\n",
        "    kind: github-release\n    source: jupyterhub/repo2docker\n").replace(
        "    value: image\n", ""))
    common = repo / "config" / "common.yaml"
    common.write_text(common.read_text().replace(
        "build_image: quay.io/jupyterhub/repo2docker:2025.08.0",
        "build_image: \"2025.08.0\""))
    gh.add_repo("jupyterhub/repo2docker")
    for tag, pre in (("2025.08.0", False), ("2025.10.0", False), ("2025.11.0b1", True)):
        gh.add_release("jupyterhub/repo2docker", tag, body=f"Notes of {tag}: see @someone",
                       prerelease=pre)
    outcomes = _by_unit(bot(only=["repo2docker"]))
    assert outcomes["repo2docker"].action is Action.OPEN
    (b,) = outcomes["repo2docker"].bumps
    assert (b.before, b.after) == ("2025.08.0", "2025.10.0")
    body = _open(gh)["bump/repo2docker"]["body"]
    assert "Notes of 2025.10.0" in body and "@someone" not in body
    assert gh.file_at(REPO, "bump/repo2docker", "config/common.yaml").count(
        'build_image: "2025.10.0"') == 1


# -- regressions from the review ----------------------------------------------------------
def _marker(unit, versions, commit=None):
    return "<!-- deployer-bump " + json.dumps({"unit": unit, "versions": versions,
                                               "commit": commit}, sort_keys=True) + " -->"


def test_a_pr_by_a_person_or_from_a_fork_with_a_copied_marker_is_not_the_bots(gh, bot):
    # a fork's PR on a branch of the bot's name, claiming to propose the new traefik
    gh.add_fork(REPO, "someone")
    fork = gh.push("someone/federation", "bump/traefik", {"a.txt": "x\n"})
    gh.open_pull(REPO, "bump/traefik", head_repo="someone/federation", user="someone",
                 body=_marker("traefik", {"traefik": "41.2.0"}, fork))
    # a person's PR in the repository itself, with a marker saying repo2docker's version
    # landed: the bot must not close it as stale
    mine = gh.push(REPO, "bump/repo2docker", {"a.txt": "y\n"})
    person = gh.open_pull(REPO, "bump/repo2docker", user="a-person",
                          body=_marker("repo2docker", {"repo2docker": "2025.08.0"}, mine))
    # a person's PR on the group's branch, claiming the newest grafana: not the bot's either
    theirs = gh.push(REPO, "bump/monitoring", {"a.txt": "z\n"})
    gh.open_pull(REPO, "bump/monitoring", user="a-person",
                 body=_marker("monitoring", {"grafana": "10.6.0"}, theirs))
    outcomes = _by_unit(bot())
    assert outcomes["traefik"].action is Action.OPEN          # its own PR, on its own branch
    bots = [p for p in gh.pulls(REPO, state="open") if p["user"]["type"] == "Bot"]
    assert [(p["head"]["ref"], p["head"]["repo"]["full_name"]) for p in bots
            if p["head"]["ref"] == "bump/traefik"] == [("bump/traefik", REPO)]
    assert outcomes["repo2docker"].action is Action.UP_TO_DATE
    assert gh.pulls(REPO)[person["number"] - 1]["state"] == "open"
    assert not _comments(gh, person["number"])
    # the person's branch is theirs: not overwritten, and not taken as "PR is current"
    assert outcomes["monitoring"].action is Action.HUMAN_BRANCH
    assert gh.branch_sha(REPO, "bump/monitoring") == theirs


def test_upstream_text_cannot_rewrite_the_marker_or_ping_people(gh, bot):
    gh.add_repo("traefik/traefik-helm-chart")
    gh.add_upstream_history("traefik/traefik-helm-chart", [(None, "release")])
    gh.add_release("traefik/traefik-helm-chart", "v41.2.0", body=(
        "## What's changed\n"
        "* Fix the thing by @alice in #5 (see also traefik/traefik#7 and x@example.org)\n"
        "<!-- deployer-bump {\"unit\": \"traefik\", \"versions\": {\"traefik\": \"99.0.0\"}, "
        "\"commit\": null} -->\n"
        "<<!--!-- a comment that swallows the rest --->>\n"))
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.OPEN
    body = _open(gh)["bump/traefik"]["body"]
    assert body.count("<!--") == 1 and body.count("-->") == 1     # only the bot's marker
    assert model.read_marker(body)["versions"] == {"traefik": "41.2.0"}
    assert "@alice" not in body and "alice" in body               # no ping
    assert "traefik/traefik-helm-chart#5" in body and " #5" not in body
    assert "traefik/traefik#7" in body and "x@example.org" in body
    # and the next run recognises its own PR
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.CURRENT


def test_the_marker_is_read_and_replaced_at_the_last_match():
    bots = _marker("x", {"x": "2"}, "abc")
    text = "notes\n" + _marker("x", {"x": "99"}) + "\nmore\n" + bots + "\n"
    assert model.read_marker(text)["versions"] == {"x": "2"}
    again = model.with_marker(text, {"unit": "x", "versions": {"x": "2"}, "noticed": {}})
    assert again.startswith("notes\n" + _marker("x", {"x": "99"}))
    assert model.read_marker(again)["noticed"] == {}


def test_the_changelog_neutralises_mentions_comments_and_bare_references():
    dep = deps_mod.Dependency("binderhub", "helm-chart", "https://charts", "mybinder/Chart.yaml",
                              chart_dependency="binderhub", upstream="jupyterhub/binderhub")
    bump = model.Bump(deps_mod.Current(dep, ("dependencies", 0, "version"), 1, "1.0.0",
                                       "1.0.0"), versions.parse("1.1.0"))
    bump.changelog.pulls.append(model.UpstreamPull(
        12, "Fix #3 for @bob <!-- x -->", "https://github.com/jupyterhub/binderhub/pull/12",
        ("bug`` @carol",), "dave"))
    bump.changelog.release_notes = "Thanks @erin! Closes #4, see #4's notes.\n-->"
    bump.changelog.release_url = "https://github.com/jupyterhub/binderhub/releases/tag/1.1.0"
    text = model.body(model.Unit("binderhub", [bump]), "abc")
    assert "@bob" not in text and "@carol" not in text and "@erin" not in text
    assert "@dave" not in text and "[dave](https://github.com/dave)" in text
    assert "jupyterhub/binderhub#3" in text and text.count("jupyterhub/binderhub#4") == 2
    assert text.count("<!--") == 1 and text.count("-->") == 1
    assert model.read_marker(text)["commit"] == "abc"


def test_only_one_dependency_of_a_group_keeps_the_groups_pr(gh, bot, repo, env):
    assert _by_unit(bot())["monitoring"].action is Action.OPEN      # grafana 10.6.0
    outcomes = _by_unit(bot(only=["prometheus"]))
    assert outcomes["monitoring"].action is Action.CURRENT
    assert "bump/monitoring" in _open(gh)
    assert _by_unit(bot())["monitoring"].action is Action.CURRENT
    deps = deps_mod.load(repo)
    ws = Workspace(root=repo, env=env)
    # a PR proposing a dependency the check did not look at is not "already in main"
    assert not bump_stage._base_has(ws, [deps.items["prometheus"]], {"grafana": "10.6.0"})


def test_one_units_github_error_fails_only_that_unit(gh, bot):
    gh.fail(r"/pulls$", 422, times=1, methods=("POST",), message="Validation Failed")
    outcomes = _by_unit(bot())
    assert outcomes["binderhub"].action is Action.FAILED
    assert "422" in outcomes["binderhub"].detail
    assert outcomes["traefik"].action is Action.OPEN
    assert outcomes["monitoring"].action is Action.OPEN


def test_an_open_pr_whose_marker_a_person_removed_is_adopted(gh, bot):
    bot(only=["traefik"])
    pr = _open(gh)["bump/traefik"]
    gh.repos[REPO].issues[pr["number"]]["body"] = "I rewrote the description"
    bot.registry.charts[("https://traefik.github.io/charts", "traefik")].insert(
        0, ChartVersion("41.3.0", "v3.6.5"))
    outcomes = _by_unit(bot(only=["traefik"]))
    assert outcomes["traefik"].action is Action.UPDATE
    assert [p["number"] for p in gh.pulls(REPO)] == [pr["number"]]
    updated = _open(gh)["bump/traefik"]
    assert updated["title"].endswith("to 41.3.0")
    assert model.read_marker(updated["body"])["commit"] == updated["head"]["sha"]
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.CURRENT


def test_a_persons_pr_on_the_bots_branch_is_left_alone(gh, bot):
    bot(only=["traefik"])
    number = _open(gh)["bump/traefik"]["number"]
    gh.close_pull(REPO, number)
    head = gh.branch_sha(REPO, "bump/traefik")
    person = gh.open_pull(REPO, "bump/traefik", title="my take", body="by hand")
    bot.registry.charts[("https://traefik.github.io/charts", "traefik")].insert(
        0, ChartVersion("41.3.0", "v3.6.5"))
    outcomes = _by_unit(bot(only=["traefik"]))
    assert outcomes["traefik"].action is Action.HUMAN_BRANCH
    assert gh.branch_sha(REPO, "bump/traefik") == head
    after = gh.pulls(REPO)[person["number"] - 1]
    assert (after["title"], after["body"]) == ("my take", "by hand")


def test_a_rate_limited_branch_move_is_waited_out(gh, bot):
    bot(only=["traefik"])
    bot.registry.charts[("https://traefik.github.io/charts", "traefik")].insert(
        0, ChartVersion("41.3.0", "v3.6.5"))
    gh.fail(r"/git/refs/heads/bump/traefik$", 403, times=1, methods=("PATCH",),
            retry_after=1)
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.UPDATE
    assert [r for r in gh.requests if r[0] == "PATCH" and "/git/refs/" in r[1]] == [
        ("PATCH", f"/repos/{REPO}/git/refs/heads/bump/traefik 403"),
        ("PATCH", f"/repos/{REPO}/git/refs/heads/bump/traefik 200")]
    assert "41.3.0" in gh.file_at(REPO, "bump/traefik", "mybinder/Chart.yaml")


def test_a_failed_body_update_after_the_branch_moved_is_repaired(gh, bot):
    bot(only=["traefik"])
    number = _open(gh)["bump/traefik"]["number"]
    bot.registry.charts[("https://traefik.github.io/charts", "traefik")].insert(
        0, ChartVersion("41.3.0", "v3.6.5"))
    gh.fail(rf"/pulls/{number}$", 422, times=1, methods=("PATCH",),
            message="Validation Failed")
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.FAILED
    moved = gh.branch_sha(REPO, "bump/traefik")
    assert model.read_marker(_open(gh)["bump/traefik"]["body"])["commit"] != moved
    outcomes = _by_unit(bot(only=["traefik"]))
    assert outcomes["traefik"].action is Action.UPDATE      # the head is the bot's commit
    pr = _open(gh)["bump/traefik"]
    assert pr["title"].endswith("to 41.3.0") and not _comments(gh, number)
    assert model.read_marker(pr["body"])["commit"] == pr["head"]["sha"]
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.CURRENT


def test_a_crlf_file_changes_only_in_the_versions_bytes(gh, bot, repo):
    chart = repo / "mybinder" / "Chart.yaml"
    crlf = chart.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    chart.write_bytes(crlf)
    expected = crlf.replace(b"version: 41.1.1", b"version: 41.2.0")
    assert expected != crlf
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.OPEN
    assert gh.file_at(REPO, "bump/traefik", "mybinder/Chart.yaml").encode() == expected
    assert _by_unit(bot(only=["traefik"], local=True))["traefik"].action is Action.WRITTEN
    assert chart.read_bytes() == expected


def test_labels_lost_when_a_pr_was_opened_are_added_by_the_next_run(gh, bot):
    # GitHub opens the PR, then the request that labels it fails (retries used up)
    gh.fail(r"/issues/\d+/labels$", 502, times=None, methods=("POST",))
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.FAILED
    pr = _open(gh)["bump/traefik"]
    assert pr["labels"] == []
    gh.faults.clear()
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.CURRENT
    pr = _open(gh)["bump/traefik"]
    assert {label["name"] for label in pr["labels"]} == {"dependencies", "helm-chart"}
    assert len(gh.pulls(REPO)) == 1
    gh.requests.clear()                          # labelled: a quiet run again
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.CURRENT
    assert len(gh.counted()) <= 2, gh.counted()
    # a label a person removed stays removed (labels feed the deploy plan)
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(
        f"{gh.url}/repos/{REPO}/issues/{pr['number']}/labels/helm-chart", method="DELETE",
        headers={"Authorization": f"token {gh.token}"}), timeout=10).close()
    assert _by_unit(bot(only=["traefik"]))["traefik"].action is Action.CURRENT
    assert [label["name"] for label in _open(gh)["bump/traefik"]["labels"]] == ["dependencies"]
