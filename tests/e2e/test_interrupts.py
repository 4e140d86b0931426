"""Interrupted deploys, with the real CLI as a process: SIGTERM (CI cancellation) during the
rollout wait, and SIGKILL (the end of a cancellation) leaving a revision that never became
ready or was never smoke-tested, which the next deploy must not call `unchanged`."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time


from tests.e2e.test_deploy import fleet, health_server  # noqa: F401  (fixtures)
from tests.support import helm_agnostic


def _start(cli_command, repo, tmp_path, *args):
    prefix, env = cli_command
    scratch = tmp_path / "tmpdir"
    scratch.mkdir(exist_ok=True)
    proc = subprocess.Popen([*prefix, *map(str, args)], env={**env, "TMPDIR": str(scratch)},
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    return proc, lines, scratch, reader


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _lease(cluster):
    return cluster.object("leases", "staging", "deployer-lock", "coordination.k8s.io")


def _break_the_next_rollout(repo, fleet):  # noqa: F811
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    fleet.faults.never_ready("deployments", "staging", "static",
                             when=lambda obj: obj["spec"]["replicas"] == 3)


def _in_the_rollout_wait(fleet, lines):  # noqa: F811
    static = fleet.object("deployments", "staging", "static", "apps")
    return static is not None and static["spec"]["replicas"] == 3 and \
        any("Deployment/static: " in line for line in lines[-20:])


def test_sigterm_during_the_rollout_wait_rolls_back_releases_and_reports(
        cli, cli_command, fleet, repo, tmp_path):  # noqa: F811
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    _break_the_next_rollout(repo, fleet)
    report = tmp_path / "report.json"
    proc, lines, scratch, reader = _start(cli_command, repo, tmp_path, "deploy", "staging",
                                          "--timeout", "120", "--report", report)
    _wait_for(lambda: _in_the_rollout_wait(fleet, lines), 60, "the rollout wait")
    assert _lease(fleet) is not None
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _wait_for(lambda: _lease(fleet) is None, 5, "the lock to be released")
    assert proc.wait(timeout=60) == 143
    reader.join(5)
    stderr = "".join(lines)
    assert time.monotonic() - sent < 30
    assert "SIGTERM: stopping" in stderr
    staging = json.loads(report.read_text())["deploys"][0]
    assert staging["outcome"] == "interrupted", stderr
    assert staging["rollback"]["to"] == 1
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2
    assert list(scratch.iterdir()) == [], "no kubeconfig or other temporary file is left"
    # the next deploy (the cause fixed) brings the member to a healthy revision
    fleet.faults.clear()
    again = cli("deploy", "staging", "--timeout", "60")
    assert again.returncode == 0, again.stderr
    static = fleet.object("deployments", "staging", "static", "apps")
    assert static["spec"]["replicas"] == 3 and static["status"]["readyReplicas"] == 3


def _answer_slowly(handler, seconds: float):
    """The public endpoints answer each request `seconds` late: the event set at the first
    request, and a function that puts the quick answers back."""
    reached = threading.Event()
    answer = handler.do_GET

    def slow_answer(self):
        reached.set()
        time.sleep(seconds)
        answer(self)

    handler.do_GET = slow_answer
    return reached, lambda: setattr(handler, "do_GET", answer)


def test_sigterm_during_the_smoke_tests_stops_them_and_rolls_back(
        cli, cli_command, fleet, repo, tmp_path, health_server):  # noqa: F811
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    reached, _ = _answer_slowly(health_server[1], 4)   # every check takes long to answer
    report = tmp_path / "report.json"
    proc, lines, scratch, reader = _start(cli_command, repo, tmp_path, "deploy", "staging",
                                          "--timeout", "120", "--report", report)
    _wait_for(reached.is_set, 90, "the smoke tests")
    time.sleep(1)                              # in the middle of the first check
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert proc.wait(timeout=60) == 143
    reader.join(5)
    stderr = "".join(lines)
    assert time.monotonic() - sent < 15, stderr
    assert "binder front page" not in stderr, "no check ran to its end"
    staging = json.loads(report.read_text())["deploys"][0]
    assert staging["outcome"] == "interrupted", stderr
    assert staging["failed_stage"] == "smoke" and staging["rollback"]["to"] == 1
    assert "interrupted during the smoke tests" in staging["error"]
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2
    assert _lease(fleet) is None and list(scratch.iterdir()) == []

@helm_agnostic
def test_a_revision_left_unready_by_a_killed_deploy_is_not_unchanged(
        cli, cli_command, fleet, repo, tmp_path):  # noqa: F811
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    _break_the_next_rollout(repo, fleet)
    proc, lines, _, _ = _start(cli_command, repo, tmp_path, "deploy", "staging",
                               "--timeout", "120")
    _wait_for(lambda: _in_the_rollout_wait(fleet, lines), 60, "the rollout wait")
    proc.kill()                                # SIGKILL: nothing is cleaned up
    proc.wait(timeout=30)
    # revision 2 serves (helm finished), but it never became ready; nothing changed since
    _the_next_deploy_rolls_back_to_1(cli, fleet, tmp_path, "3", "never finished rolling out")


def _the_next_deploy_rolls_back_to_1(cli, fleet, tmp_path, timeout: str, says: str) -> dict:
    """The next deploy (nothing changed; the killed one's lock broken) does not call the
    serving revision 2 unchanged: it says why, and rolls back to revision 1 (exit 1). Its
    report of staging."""
    report = tmp_path / "next.json"
    result = cli("deploy", "staging", "--timeout", timeout, "--break-lock", "--report", report)
    assert result.returncode == 1, result.stderr
    assert "upgrade skipped" not in result.stderr
    assert says in result.stderr
    staging = json.loads(report.read_text())["deploys"][0]
    assert staging["outcome"] == "rolled back" and staging["rollback"]["to"] == 1
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2
    return staging


@helm_agnostic
def test_the_private_kubeconfig_of_a_killed_deploy_is_removed_by_the_next_run(
        cli, cli_command, fleet, repo, tmp_path):  # noqa: F811
    fleet.faults.never_ready("deployments", "staging", "static")
    proc, lines, scratch, _ = _start(cli_command, repo, tmp_path, "deploy", "staging",
                                     "--timeout", "120")
    _wait_for(lambda: any("Deployment/static: " in line for line in lines), 90,
              "the rollout wait")
    [private] = scratch.glob("deployer-staging-*")
    kubeconfig = private / "kubeconfig"
    assert kubeconfig.is_file()
    tmpdir = {"TMPDIR": str(scratch)}
    cli("status", "staging", extra_env=tmpdir)   # the deploy still runs: its files stay
    assert kubeconfig.is_file() and proc.poll() is None
    proc.kill()                                   # SIGKILL: nothing is cleaned up
    proc.wait(timeout=30)
    assert kubeconfig.is_file()
    status = cli("status", "staging", extra_env=tmpdir)
    assert "staging" in status.stdout, status.stderr
    assert not private.exists(), "the next run removes what the killed one left"
    assert list(scratch.glob("deployer-*")) == []



@helm_agnostic
def test_a_revision_whose_smoke_tests_a_killed_deploy_never_finished_is_smoke_tested(
        cli, cli_command, fleet, repo, tmp_path, health_server):  # noqa: F811
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    health_server[1].status = 404              # the new revision does not serve
    reached, answer_quickly = _answer_slowly(health_server[1], 1)
    proc, lines, _, _ = _start(cli_command, repo, tmp_path, "deploy", "staging",
                               "--timeout", "120")
    _wait_for(reached.is_set, 90, "the smoke tests")
    proc.kill()                                # SIGKILL: rolled out, never smoke-tested
    proc.wait(timeout=30)
    answer_quickly()
    assert fleet.object("configmaps", "staging", "deployer-verified")["data"]["revision"] == "1"
    staging = _the_next_deploy_rolls_back_to_1(cli, fleet, tmp_path, "30",
                                                "revision 2 never passed its smoke tests")
    assert staging["failed_stage"] == "smoke"


def test_sigterm_during_the_rollback_command_exits_143(
        cli, cli_command, fleet, repo, tmp_path):  # noqa: F811
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    # the revision rolled back to does not come up: the command waits for it
    fleet.faults.never_ready("deployments", "staging", "static",
                             when=lambda obj: obj["spec"]["replicas"] == 2)
    proc, lines, _, reader = _start(cli_command, repo, tmp_path, "rollback", "staging",
                                    "--timeout", "120")
    _wait_for(lambda: fleet.object("deployments", "staging", "static", "apps")["spec"][
        "replicas"] == 2 and any("Deployment/static: " in line for line in lines[-20:]), 60,
        "the rollback's wait")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    reader.join(5)
    assert "interrupted while waiting for the rollout" in "".join(lines)
    assert _lease(fleet) is None
