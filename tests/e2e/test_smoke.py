"""Smoke tests against a BinderHub API test double backed by a real JupyterHub whose
single-user servers are real jupyter-server processes with a real ipykernel."""
import json

import pytest
import yaml

from deployer.model import federation as federation_mod
from deployer.stages import smoke

from tests.fakes.binderhub import BinderHubDouble, FederationRedirectDouble
from tests.fakes.http import QuietHandler, serve
from tests.fakes.jupyterhub_fixture import jupyterhub  # noqa: F401  (fixture)

SPEC = "gh/binder-examples/requirements/8d4c968b10030f2b56f5d22fb41880152e9542f4"


class _Static(QuietHandler):
    def do_GET(self):  # noqa: N802
        ok = self.path.endswith("/badge_logo.svg")
        body = b"<svg xmlns='http://www.w3.org/2000/svg'/>" if ok else b"not found"
        self.reply(200 if ok else 404, "image/svg+xml" if ok else "text/plain", body)


@pytest.fixture
def static_site():
    with serve(_Static) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def binder(request, jupyterhub):  # noqa: F811
    """The BinderHub double; a test marked binder_double(...) gets those options."""
    marker = request.node.get_closest_marker("binder_double")
    with BinderHubDouble(jupyterhub, **(marker.kwargs if marker else {})) as double:
        yield double


def _left_running(jupyterhub, double, wait=0.0):  # noqa: F811
    """Servers still running for the users `double` launched (other tests share the hub);
    waits up to `wait` seconds for the hub to notice servers that stopped themselves."""
    import time

    users = {launch["user"] for launch in double.launches if launch.get("user")}
    deadline = time.monotonic() + wait
    while True:
        running = [s for s in jupyterhub.servers() if s["user"] in users]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.5)


def _reachable(hosts, binder_url):
    """Redirector hosts whose URLs lead to `binder_url` (the double only contacts 127.0.0.1,
    and the real redirector only lists members that pass its health checks)."""
    return {name: {**host, "url": binder_url, "health": f"{binder_url}/health",
                   "versions": f"{binder_url}/versions"} for name, host in hosts.items()}


@pytest.fixture
def staging_redirector(repo, binder):
    """Staging's redirector, configured as the federation data says it should be."""
    from deployer.model.values import generated_layer

    fed = federation_mod.load(repo)
    hosts = generated_layer(fed, fed.member("staging")).data["federationRedirect"]["hosts"]
    with FederationRedirectDouble(_reachable(hosts, binder.url)) as redirector:
        yield redirector.url


def _point(repo, name, **changes):
    """Edit members in the repo copy's federation.yaml; return the reloaded Federation."""
    path = repo / "config/federation.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        member = data["members"][key] if key != "member" else data["members"][name]
        member.setdefault("smoke", {}).update(value)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return federation_mod.load(repo)


def _urls(binder, jupyterhub, static, federation=None):  # noqa: F811
    urls = {"binder": binder.url, "hub": jupyterhub.url, "static": static}
    return {**urls, "federation": federation} if federation else urls


def test_launch_with_phase_timings_and_nothing_left_running(staging_redirector, repo, binder, jupyterhub,  # noqa: F811
                                                             static_site):
    fed = _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                         "repos": [SPEC]})
    report = smoke.run(fed, fed.member("staging"), log=lambda *_: None)
    assert report.ok, report.failures()
    assert [c.name for c in report.checks] == ["binder front page", "binder health",
                                               "binder versions", "hub health", "static badge",
                                               "federation redirector"]
    launch = report.launches[0]
    seen = [p for p in smoke.PHASES if p in launch.phases]
    assert seen[0] in ("waiting", "fetching") and seen[-1] == "ready"
    assert [launch.phases[p] for p in seen] == sorted(launch.phases[p] for p in seen)
    assert {"api", "kernel", "execute", "stop"} <= set(launch.steps)
    assert launch.image
    assert launch.heartbeats > 0, "heartbeats arrive while the server starts"
    assert _left_running(jupyterhub, binder) == []
    # the same repo again: the image is found, no build this time
    again = smoke.run(fed, fed.member("staging"), log=lambda *_: None).launches[0]
    assert again.ok and "building" not in again.phases


def test_cli_writes_table_json_and_markdown(staging_redirector, cli, repo, binder, jupyterhub, static_site,  # noqa: F811
                                            tmp_path):
    _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                    "repos": [SPEC]})
    report, summary = tmp_path / "smoke.json", tmp_path / "summary.md"
    result = cli("smoke", "staging", "--report", report, "--summary", summary)
    assert result.returncode == 0, result.stderr
    assert "launch gh/binder-examples/requirements" in result.stdout
    data = json.loads(report.read_text())["smoke"][0]
    assert data["ok"] is True and data["launches"][0]["phases"]["ready"] > 0
    assert "### ✅ Smoke tests: staging" in summary.read_text()


def test_build_failure_fails_the_run_at_once(staging_redirector, repo, binder, jupyterhub, static_site):  # noqa: F811
    binder.behave(r"broken", "fail_build")
    fed = _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                         "repos": ["gh/org/broken/abc", SPEC]})
    report = smoke.run(fed, fed.member("staging"), log=lambda *_: None)
    assert not report.ok
    assert len(report.launches) == 1, "the second repo is not tried after a failed build"
    assert report.launches[0].detail.startswith("build failed")
    assert report.launches[0].attempts == 1


def test_stream_cut_before_ready_is_retried_then_fails(staging_redirector, repo, binder, jupyterhub,  # noqa: F811
                                                       static_site):
    binder.behave(r"flaky", "cut_stream")
    fed = _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                         "repos": ["gh/org/flaky/abc"]})
    launch = smoke.run(fed, fed.member("staging"), log=lambda *_: None).launches[0]
    assert not launch.ok and launch.attempts == 3
    assert "ended after phase 'building' without ready or failed" in launch.detail


@pytest.mark.binder_double(launch_timeout=3)   # the default 30 s only makes the test wait
def test_launch_timeout(staging_redirector, repo, binder, jupyterhub, static_site):  # noqa: F811
    binder.behave(r"slow", "launch_timeout")
    fed = _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                         "repos": ["gh/org/slow/abc"]})
    launch = smoke.run(fed, fed.member("staging"), log=lambda *_: None).launches[0]
    assert not launch.ok and launch.detail.startswith("launch failed")
    assert _left_running(jupyterhub, binder, wait=10) == []


def test_kernel_error(staging_redirector, repo, binder, jupyterhub, static_site):  # noqa: F811
    fed = _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                         "repos": [SPEC], "code": "1 / 0", "expect": "never"})
    launch = smoke.run(fed, fed.member("staging"), log=lambda *_: None).launches[0]
    assert not launch.ok
    assert launch.detail == "kernel error: ZeroDivisionError: division by zero"
    assert _left_running(jupyterhub, binder) == []


def test_wrong_token(staging_redirector, repo, binder, jupyterhub, static_site):  # noqa: F811
    binder.behave(r"requirements", "wrong_token")
    fed = _point(repo, "staging", member={"urls": _urls(binder, jupyterhub, static_site,
                                                        staging_redirector),
                                         "repos": [SPEC]})
    launch = smoke.run(fed, fed.member("staging"), log=lambda *_: None).launches[0]
    assert not launch.ok
    assert "server rejected the launch token" in launch.detail and "HTTP 403" in launch.detail


def _hosts(fed):
    """The redirector configuration the federation data implies (gke hosts the redirector)."""
    hosts = {m.name: {"url": m.url, "weight": m.weight if m.active else 0,
                      "health": f"{m.url}/health", "versions": f"{m.url}/versions"}
             for m in fed.members.values() if m.in_federation}
    hosts["gke"]["prime"] = True
    return hosts


def test_redirector_weights_must_match_the_federation_data(repo, binder, jupyterhub,  # noqa: F811
                                                           static_site):
    hosts = _reachable(_hosts(federation_mod.load(repo)), binder.url)
    hosts["aws"]["weight"] = 50
    urls = _urls(binder, jupyterhub, static_site)
    with FederationRedirectDouble(hosts) as redirector:
        fed = _point(repo, "gke", member={"urls": {**urls, "federation": redirector.url},
                                         "repos": []},
                     aws={"urls": {"binder": binder.url}},
                     **{"hetzner-fsn": {"urls": {"binder": binder.url}}})
        report = smoke.run(fed, fed.member("gke"), log=lambda *_: None)
    check = next(c for c in report.checks if c.name == "federation redirector")
    assert not check.ok
    assert check.detail == "aws weight 50, federation data says 20"
    assert next(c for c in report.checks if c.name == "same BinderHub everywhere").ok


def test_version_mismatch_between_members(repo, jupyterhub, static_site):  # noqa: F811
    with BinderHubDouble(jupyterhub, version="1.0.0-0.dev.git.3983.h383374de") as gke, \
            BinderHubDouble(jupyterhub, version="1.0.0-0.dev.git.3990.h0123456") as aws, \
            FederationRedirectDouble(_reachable(_hosts(federation_mod.load(repo)), gke.url),
                                     checks=False) as redirector:
        urls = {"binder": gke.url, "hub": jupyterhub.url, "static": static_site,
                "federation": redirector.url}
        fed = _point(repo, "gke", member={"urls": urls, "repos": []},
                     aws={"urls": {"binder": aws.url}},
                     **{"hetzner-fsn": {"urls": {"binder": gke.url}}})
        report = smoke.run(fed, fed.member("gke"), log=lambda *_: None)
    assert next(c for c in report.checks if c.name == "federation redirector").ok
    check = next(c for c in report.checks if c.name == "same BinderHub everywhere")
    assert not check.ok
    assert "version mismatch" in check.detail
    assert "aws 1.0.0-0.dev.git.3990.h0123456" in check.detail
    assert "gke 1.0.0-0.dev.git.3983.h383374de" in check.detail


def test_server_token_from_a_real_binderhub_stops_the_server_itself(repo, jupyterhub,  # noqa: F811
                                                                     static_site):
    """A real BinderHub's ready token is the notebook server's own (the hub does not know it):
    the hub refuses the DELETE, so the smoke run asks the server to shut down instead."""
    with BinderHubDouble(jupyterhub, token_mode="binder") as real_like:
        from deployer.model.values import generated_layer

        fed = federation_mod.load(repo)
        hosts = generated_layer(fed, fed.member("staging")).data["federationRedirect"]["hosts"]
        with FederationRedirectDouble(_reachable(hosts, real_like.url)) as redirector:
            fed = _point(repo, "staging", member={
                "urls": _urls(real_like, jupyterhub, static_site, redirector.url),
                "repos": [SPEC]})
            report = smoke.run(fed, fed.member("staging"), log=lambda *_: None)
        assert report.ok, report.failures()
        # the hub notices a server that shut itself down on its next poll
        assert _left_running(jupyterhub, real_like, wait=30) == []


APEX = """  apex:
    role: production
    runs: [redirector]
    cluster: {provider: gke, project: example-apex, zone: us-central1-a, name: apex}
    kubernetes_version: "1.34"
    release: {name: apex, namespace: apex}
    domains:
      federation: apex.example-binder.org
"""


def _with_apex(repo):
    path = repo / "config/federation.yaml"
    path.write_text(path.read_text().replace("members:\n", "members:\n" + APEX, 1))
    return federation_mod.load(repo)


def test_a_redirector_only_member_gets_redirector_checks(repo, binder, jupyterhub):  # noqa: F811
    from deployer.model.values import generated_layer

    fed = _with_apex(repo)
    hosts = generated_layer(fed, fed.member("apex")).data["federationRedirect"]["hosts"]
    with FederationRedirectDouble(_reachable(hosts, binder.url)) as redirector:
        others = {name: {"urls": {"binder": binder.url}}
                  for name in ("gke", "aws", "hetzner-fsn", "uni-lab")}
        fed = _point(repo, "apex", member={"urls": {"federation": redirector.url}}, **others)
        report = smoke.run(fed, fed.member("apex"), log=lambda *_: None)
    assert [c.name for c in report.checks] == ["redirector health", "federation redirector",
                                               "redirector launch"], report.checks
    assert all(c.ok for c in report.checks), report.checks
    assert report.launches == []                      # nothing to launch on the apex itself
    assert report.checks[2].detail.startswith("sent to ")
    assert not binder.launches, "the launch redirect must not be followed (nothing is built)"


def test_a_redirector_sending_launches_elsewhere_fails(repo, binder, jupyterhub):  # noqa: F811
    from deployer.model.values import generated_layer

    fed = _with_apex(repo)
    hosts = _reachable(generated_layer(fed, fed.member("apex")).data["federationRedirect"]
                       ["hosts"], binder.url)
    with FederationRedirectDouble(hosts) as redirector:
        # the other members' smoke URLs lead elsewhere: the redirect target is no member
        others = {name: {"urls": {"binder": "http://127.0.0.1:9"}}
                  for name in ("gke", "aws", "hetzner-fsn", "uni-lab")}
        fed = _point(repo, "apex", member={"urls": {"federation": redirector.url}}, **others)
        report = smoke.run(fed, fed.member("apex"), log=lambda *_: None)
    check = next(c for c in report.checks if c.name == "redirector launch")
    assert not check.ok and "not to a member in rotation" in check.detail


def test_a_redirector_only_member_launches_nothing_even_when_asked(repo, binder, jupyterhub):  # noqa: F811
    from deployer.model.values import generated_layer

    fed = _with_apex(repo)
    hosts = generated_layer(fed, fed.member("apex")).data["federationRedirect"]["hosts"]
    with FederationRedirectDouble(_reachable(hosts, binder.url)) as redirector:
        others = {name: {"urls": {"binder": binder.url}}
                  for name in ("gke", "aws", "hetzner-fsn", "uni-lab")}
        fed = _point(repo, "apex", member={"urls": {"federation": redirector.url}}, **others)
        logged = []
        report = smoke.run(fed, fed.member("apex"), repos=[SPEC], build_spec="gh/org/repo/x",
                           log=logged.append)
    assert report.launches == [] and report.ok, report.failures()
    assert "  skipped launches: apex runs no BinderHub" in logged
    assert not binder.launches


@pytest.mark.parametrize("flag", [["--repo", SPEC], ["--build"]])
def test_the_cli_refuses_launches_on_a_named_redirector_only_member(cli, repo, flag):
    _with_apex(repo)
    (repo / "config/apex.yaml").write_text("{}\n")
    result = cli("smoke", "apex", *flag)
    assert result.returncode == 2, result.stderr
    assert "member 'apex' runs no BinderHub (runs: redirector): nothing to launch there" \
        in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_cli_names_why_an_unreachable_member_did_not_answer(cli, repo, tmp_path):
    """A member URL nothing listens on: each check says "connection refused" (urllib3's
    long message, cut to length, used to lose the reason), in the table, the errors and
    the report; exit 1."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    _point(repo, "staging", member={"repos": [], "urls": {
        "binder": base, "hub": f"{base}/hub-host", "static": f"{base}/static-host",
        "federation": f"{base}/federation-host"}})
    report = tmp_path / "smoke.json"
    result = cli("smoke", "staging", "--report", report)
    assert result.returncode == 1, result.stderr
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("binder front page"))
    assert "FAILED" in row and row.rstrip().endswith(f"{base}/: connection refused"), row
    assert f"error: staging: hub health: {base}/hub-host/hub/health: connection refused" in \
        result.stderr, result.stderr
    assert "Max retries" not in result.stdout + result.stderr
    checks = json.loads(report.read_text())["smoke"][0]["checks"]
    assert checks and all(c["detail"].endswith("connection refused") for c in checks), checks


class _NotABinderHub(QuietHandler):
    """Another service's answers at a member's URLs (a misrouted ingress): JSON, but not
    BinderHub's health report nor the redirector's hosts."""

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        kind, body = "application/json", b'{"binderhub": "1.0.0-test"}'
        if path.endswith("/health"):
            body = json.dumps({"status": "UP", "checks": {"db": "up"}}).encode()
        elif path.endswith("/active_hosts"):
            body = type(self).hosts
        elif path.endswith("/badge_logo.svg"):
            kind, body = "image/svg+xml", b"<svg/>"
        self.reply(200, kind, body)


@pytest.mark.parametrize("hosts", [b"42", b'[{"name": {"a": 1}}]', b'[{"weight": 1}]'],
                         ids=["number", "unhashable name", "no name"])
def test_the_cli_reports_answers_that_are_not_binderhubs_as_failed_checks(cli, repo, hosts):
    with serve(type("NotABinderHub", (_NotABinderHub,), {"hosts": hosts})) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        _point(repo, "staging", member={"repos": [], "urls": {
            "binder": f"{base}/b", "hub": f"{base}/h", "static": f"{base}/s",
            "federation": f"{base}/f"}})
        result = cli("smoke", "staging")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    rows = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert "FAILED" in rows["binder health"] and "not a BinderHub health report" in \
        rows["binder health"], result.stdout
    assert "FAILED" in rows["federation redirector"] and \
        "not a list or map of active hosts" in rows["federation redirector"], result.stdout
    assert " ok " in rows["binder versions"] and " ok " in rows["static badge"], result.stdout
