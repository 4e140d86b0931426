"""Deploy reports: a new report stamped with the repository's commit, written as JSON."""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Mapping

from deployer.adapters import git
from deployer.console import Console
from deployer.model.report import DeployReport

__all__ = ["DeployReport", "new_report", "publish", "write"]


def new_report(root: Path, member, env: Mapping[str, str]) -> DeployReport:
    """A report for `member` stamped with the repository's git commit."""
    sha, dirty = git.state(root, env)
    return DeployReport(member=member.name, release=member.release, namespace=member.namespace,
                        git_sha=sha, git_dirty=dirty,
                        started=datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec="seconds"))


def write(path: Path, reports: list[DeployReport], console: Console) -> None:
    """Write the reports as JSON (atomically), redacted: error texts can quote values that
    helm or the API echoed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps({"deploys": [r.to_json() for r in reports]}, indent=2) + "\n"
    try:
        tmp.write_text(console.redact(text))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- deploy records beyond the report: GitHub Deployments, Grafana annotations --------------
DEPLOYMENT_STATE = {"deployed": "success", "unchanged": "success", "dry run": None,
                    "rolled back": "inactive", "skipped: staging did not deploy": None,
                    "not started": None, "refused: older checkout": None}


def publish(ws, reports: list[DeployReport], backoff: float = 1.0,
            write_interval: float = 1.0) -> list[str]:
    """Record each report where config/federation.yaml's `records:` says: a GitHub
    Deployment (with the run's log URL) and a Grafana annotation. Never raises: a records
    API that is down is a warning, the deploy's outcome stands. Returns what was recorded."""
    settings = ws.federation.records
    env = ws.env
    done: list[str] = []
    run_url = _run_url(env)
    if settings.get("github_deployments"):
        done += _github(ws, reports, run_url, backoff, write_interval)
    grafana = settings.get("grafana")
    if grafana:
        done += _grafana(ws, reports, grafana, run_url, backoff)
    return done


def _github(ws, reports: list[DeployReport], run_url: str | None,
            backoff: float, write_interval: float) -> list[str]:
    from deployer.adapters.github import DEFAULT_API, GitHub, GitHubError

    env = ws.env
    token, repository = env.get("GITHUB_TOKEN"), env.get("GITHUB_REPOSITORY")
    if not token or not repository:
        ws.console.warn("records: GitHub deployments need GITHUB_TOKEN and GITHUB_REPOSITORY; "
                        "not recorded")
        return []
    done = []
    with GitHub(token, api_url=env.get("GITHUB_API_URL") or DEFAULT_API,
                console=ws.console, backoff=backoff,
                write_interval=write_interval) as client:
        for report in reports:
            state = DEPLOYMENT_STATE.get(report.outcome.value, "failure")
            if state is None or not report.git_sha:
                continue
            description = f"{report.outcome.value}: revision {report.revision_before or '-'}" \
                          f" -> {report.revision_after or '-'}"
            if report.error:
                description += f" ({report.error})"
            member = ws.federation.members.get(report.member)
            try:
                # a staging member's environment is not production (GitHub shows it so)
                client.record_deployment(repository, sha=report.git_sha,
                                         environment=report.member, state=state,
                                         description=ws.console.redact(description),
                                         log_url=run_url,
                                         production=member is None or member.role != "staging")
                done.append(f"github deployment {report.member}: {state}")
            except GitHubError as exc:
                ws.console.warn(f"records: GitHub deployment for {report.member} not recorded "
                                f"({exc.message})")
    return done


def _grafana(ws, reports: list[DeployReport], settings: dict, run_url: str | None,
             backoff: float) -> list[str]:
    from deployer.adapters.grafana import GrafanaError, annotate

    token_env = settings.get("token_env", "GRAFANA_API_TOKEN")
    token = ws.env.get(token_env)
    if not token:
        ws.console.warn(f"records: Grafana annotations need ${token_env}; not recorded")
        return []
    ws.console.add_secrets([token])
    done = []
    for report in reports:
        if report.outcome.value in ("dry run", "not started", "refused: older checkout"):
            continue      # nothing was tried on the cluster
        text = (f"{report.member}: {report.outcome.value} "
                f"(revision {report.revision_before or '-'} -> {report.revision_after or '-'},"
                f" {report.git_sha[:10] or 'no git sha'})")
        if run_url:
            text += f" <a href=\"{run_url}\">run</a>"
        tags = list(settings.get("tags") or ["deploy"]) + [
            f"member:{report.member}", f"outcome:{report.outcome.value}",
            f"sha:{report.git_sha[:10]}"]
        try:
            annotate(settings["url"], token, text=ws.console.redact(text), tags=tags,
                     dashboard_uid=settings.get("dashboard_uid"), backoff=backoff)
            done.append(f"grafana annotation {report.member}")
        except GrafanaError as exc:
            ws.console.warn(f"records: {exc.message}; the deploy itself is not affected")
    return done


def _run_url(env) -> str | None:
    if not env.get("GITHUB_RUN_ID") or not env.get("GITHUB_REPOSITORY"):
        return None
    server = env.get("GITHUB_SERVER_URL") or "https://github.com"
    return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
