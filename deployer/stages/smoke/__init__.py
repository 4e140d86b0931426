"""Smoke tests: prove a member serves users. HTTP checks of its public endpoints, then launch
the repos config/federation.yaml lists through the BinderHub API, run code in each launched
server's kernel, shut the server down, and time every phase.

Used after every deploy (the pipeline's gate: a failure rolls the deploy back) and on demand
(`deploy.py smoke MEMBER`). The protocols are spoken by deployer.adapters.binderhub:

    checks.py    the HTTP checks (front page, health, versions, hub, static, redirector)
    launches.py  a launch through the build event stream, with retries and phase timings
    kernel.py    code run in a launched server's kernel; stopping the server
    build.py     --build: a throwaway commit that forces a fresh build
"""
from __future__ import annotations

import datetime
import threading
from typing import Callable, Mapping

from deployer.adapters.binderhub import BinderClient
from deployer.errors import DeployError, Interrupted
from deployer.model.federation import Federation, Member
from deployer.stages.smoke.build import throwaway_commit
from deployer.stages.smoke.checks import Endpoints, checks
from deployer.stages.smoke.launches import launch_repo
from deployer.stages.smoke.report import PHASES, Check, Launch, Report

__all__ = ["PHASES", "Check", "Endpoints", "Launch", "Report", "gate", "launch_repo", "run",
           "throwaway_commit"]


def run(federation: Federation, member: Member, *, repos: list[str] | None = None,
        timeout: float | None = None, log: Callable[[str], None] = print,
        attempts: int = 3, build_spec: str | None = None, cross_member: bool = True,
        proxies: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None, ca_bundle: str | None = None) -> Report:
    """Checks, then launches (each configured repo, plus `build_spec` if given). `cancel`
    set (an interrupt) stops the run between checks, while a check waits for an answer, and
    between build events."""
    report = Report(member.name, datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))
    ends = Endpoints.of(member)
    timeout = timeout or member.smoke_timeout
    with BinderClient(proxies=proxies, ca_bundle=ca_bundle) as client:
        report.checks = checks(client, federation, member, ends, attempts, cross_member,
                               cancel=cancel)
        for check in report.checks:
            log(f"  {'ok    ' if check.ok else 'FAILED'} {check.name} ({check.seconds:.2f}s)"
                + (f": {check.detail}" if check.detail else ""))
        specs = list(member.smoke_repos if repos is None else repos)
        if build_spec:
            specs.append(build_spec)
        if specs and not member.runs_binderhub:
            log(f"  skipped launches: {member.name} runs no BinderHub")
            specs = []  # nothing to launch on (the CLI refuses --repo/--build for it)
        if report.checks and not report.checks[0].ok:
            specs = []  # the front page is down: launching cannot work
        for spec in specs:
            _check(cancel)
            launch = launch_repo(client, ends, spec, member, timeout=timeout, log=log,
                                 attempts=attempts, cancel=cancel)
            report.launches.append(launch)
            if not launch.ok and launch.detail.startswith("build failed"):
                break  # a repo that fails to build fails the run at once
    return report


def gate(federation: Federation, member: Member, *, timeout: float, log,
         cancel: threading.Event | None = None,
         proxies: Mapping[str, str] | None = None, ca_bundle: str | None = None) -> Report:
    """The pipeline's post-deploy gate: a failed run is a DeployError (and a rollback).
    It checks this member only: while a federation is upgraded member by member, versions
    differ between members for a while, and that must not roll a healthy member back
    (`deploy.py smoke` runs the cross-member check)."""
    report = run(federation, member, timeout=timeout, log=log, cross_member=False, cancel=cancel,
                 proxies=proxies, ca_bundle=ca_bundle)
    if not report.ok:
        raise DeployError("smoke tests failed: " + "; ".join(report.failures()))
    return report


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Interrupted("interrupted during the smoke tests")
