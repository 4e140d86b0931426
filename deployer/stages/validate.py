"""Offline validation of members: values -> helm template -> helm lint -> Kubernetes schemas
-> policy. Members run in parallel; one failing member does not stop the others."""
from __future__ import annotations

import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from deployer.stages import chart as chart_mod
from deployer.adapters import helm as helm_mod
from deployer.model import manifests
from deployer.model import policy
from deployer.model import site_checks
from deployer.model import values as values_mod
from deployer.errors import DeployerError
from deployer.model.federation import Member
from deployer.model.workspace import Workspace
from deployer.stages.render import member_values
from deployer.model.yamlio import dump, format_path


@dataclass
class Rendered:
    """One member rendered with the real helm: values and objects."""

    member: Member
    values: values_mod.MemberValues
    objects: list[manifests.K8sObject]


@dataclass
class Report:
    """The outcome of validating one member."""

    member: str
    objects: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    custom: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)   # seconds per stage
    values_rejected: bool = False    # by the charts' values schemas (helm template said so)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall time to `stage`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_members(ws: Workspace, members: list[Member], *, mirror: str | None = None,
                     jobs: int | None = None, run: Report | None = None) -> list[Report]:
    """Validate every member; the chart's dependencies are prepared once for all of them,
    and the chart is linted once per Kubernetes version (lint's per-member checks - values
    schema, rendering, names - are made for each member by `helm template` and the
    Kubernetes checks). `run` collects the run-wide timings.

    The members' secrets are decrypted while the chart is prepared, and at most one offline
    helm render per core (and one) runs at a time: the first members' objects are then
    checked while the others render, rather than all of them after all the renders."""
    import threading

    run = run if run is not None else Report("(run)")
    # most of a member's time is spent waiting on helm and sops: overlap members generously
    jobs = jobs or min(len(members), 4 * cores())
    with_prerequisites = [m for m in members if ws.federation.prerequisites_of(m)]
    versions = sorted({m.kubernetes_version for m in members})
    helm = helm_mod.Helm(ws.env, console=ws.console,
                         renders=threading.BoundedSemaphore(cores() + 1))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as decrypting, \
            ThreadPoolExecutor(max_workers=max(1, jobs) + 1 + len(with_prerequisites)
                               + len(versions)) as pool:
        values = {m.name: decrypting.submit(_timed_values, ws, m) for m in members}
        started: list[Future] = list(values.values())
        try:
            with run.timed("prepare chart"):
                prepared = chart_mod.prepare(ws, helm, mirror)
            with run.timed("federation policy"):
                federation_problems = policy.check_federation(ws.federation)
            # what every member reads of the chart and of its Kubernetes version, computed
            # once while the members decrypt their secrets (the others wait for it)
            started.append(pool.submit(_warm, prepared, set(versions), ws.cache_dir))
            futures = [pool.submit(check_member, ws, helm, prepared, m,
                                   federation_problems.get(m.name, []), values[m.name],
                                   lint=False)
                       for m in members]
            linting = [pool.submit(_lint_cover, helm, prepared,
                                   [(m, values[m.name]) for m in members
                                    if m.kubernetes_version == version])
                       for version in versions]
            extra = {m.name: pool.submit(_timed_prerequisites, ws, helm, m, mirror)
                     for m in with_prerequisites}
            started += futures + linting + list(extra.values())
            checked = [f.result() for f in futures]
            lints = [linted for lint in linting for linted in lint.result()]
        except BaseException:
            for future in started:      # what has not started yet does not start
                future.cancel()
            raise
    by_name = {report.member: (report, rendered) for report, rendered in checked}
    for linted in lints:
        report, rendered = by_name[linted.member]
        report.timings["helm lint"] = report.timings.get("helm lint", 0.0) + linted.seconds
        if linted.error:
            report.errors.append(linted.error)       # names helm lint itself
        _add_lint_findings(report, rendered, linted.findings)
    reports = [report for report, _ in checked]
    for report, member in zip(reports, members):
        # (validate's alone: a deploy given --kubeconfig, or diff, needs no such file)
        report.warnings.extend(_cluster_file_problems(ws, member))
        if report.member in extra:
            errors, report.timings["prerequisites"] = extra[report.member].result()
            report.errors.extend(errors)
    return reports


def cores() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 2


def _cluster_file_problems(ws: Workspace, member: Member) -> list[str]:
    """The files a deploy reaches the member's cluster with (a sops-encrypted kubeconfig, a
    cloud credentials file) that are not there: a mistyped path would otherwise show only
    when the deploy asks for credentials. (Warnings: a deploy given --kubeconfig needs none.)"""
    from deployer.model.federation import FEDERATION_FILE

    problems = []
    for key in ("kubeconfig", "credentials"):
        rel = getattr(member.cluster, key)
        if rel and not (ws.root / rel).is_file():
            path = ("members", member.name, "cluster", key)
            problems.append(f"{FEDERATION_FILE}:{ws.federation.line_of(*path)}: "
                            f"{format_path(path)}: {rel} does not exist (a deploy without "
                            f"--kubeconfig reaches the cluster with it)")
    return problems


def _timed_prerequisites(ws: Workspace, helm: helm_mod.Helm, member: Member,
                         mirror: str | None) -> tuple[list[str], float]:
    start = time.perf_counter()
    return check_prerequisites(ws, helm, member, mirror), time.perf_counter() - start


def _timed_values(ws: Workspace, member: Member) -> tuple[values_mod.MemberValues, float]:
    """The member's values and the seconds they took (decryption included)."""
    start = time.perf_counter()
    return member_values(ws, member), time.perf_counter() - start


@dataclass
class Linted:
    """One `helm lint` run with a member's values."""

    member: str
    findings: list[str]
    seconds: float
    error: str | None = None      # lint itself failed (timed out, could not run)


def _lint_cover(helm: helm_mod.Helm, prepared: chart_mod.PreparedChart,
                candidates: list) -> list[Linted]:
    """`helm lint` for the members of one Kubernetes version (lint's deprecation checks
    depend on it): with the values of the member that enables the most dependencies, then
    of each member that enables one no linted member did, until every enabled dependency
    was linted. Members whose values could not be built are left out (each reports why)."""
    usable = []
    for member, future in candidates:
        try:
            mv, _ = future.result()
        except DeployerError:
            continue
        enabled = frozenset(d.name for d in prepared.dependencies
                            if _enabled(mv.final, d.condition))
        usable.append((member, mv, enabled))
    usable.sort(key=lambda item: -len(item[2]))          # stable: federation order on ties
    covered: set[str] = set()
    linted = []
    for member, mv, enabled in usable:
        if linted and enabled <= covered:
            continue
        start = time.perf_counter()
        try:
            values_yaml = dump(mv.for_helm(prepared.defaults()))
        except DeployerError:
            continue          # the member's own check reports it
        covered |= enabled
        try:
            result = helm.lint(str(prepared.path), member.namespace, values_yaml,
                               member.kubernetes_version)
        except DeployerError as exc:
            linted.append(Linted(member.name, [], time.perf_counter() - start, str(exc)))
            continue
        linted.append(Linted(member.name, helm_mod.lint_findings(result.stdout),
                             time.perf_counter() - start))
    return linted


def probe_tools(ws: Workspace) -> None:
    """Ask helm and sops for their versions on side threads, while the federation loads:
    the members find the answers waiting. A failure is left for the member that asks to
    report (a failed probe is not remembered)."""
    import threading

    from deployer.adapters import tools

    def ask(find) -> None:
        try:
            find(ws.env)
        except Exception:    # noqa: BLE001 - reported by the member that asks again
            pass

    for find in (tools.helm, lambda env: tools.find("sops", env)):
        threading.Thread(target=ask, args=(find,), daemon=True).start()


def _warm(prepared: chart_mod.PreparedChart, kube_versions: set[str], cache: Path) -> None:
    try:
        prepared.defaults(), prepared.subcharts(), prepared.crd_kinds()
        prepared.capability_queries()
        for version in sorted(kube_versions):
            manifests.served_api_versions(version, cache)
    except Exception:        # noqa: BLE001 - each member meets (and reports) it again itself
        pass


def check_prerequisites(ws: Workspace, helm: helm_mod.Helm, member: Member,
                        mirror: str | None = None) -> list[str]:
    """The member's prerequisite releases (e.g. cert-manager) render with their values and
    their objects pass the Kubernetes schemas of the member's version: errors, one a line."""
    from deployer.stages import prerequisites

    try:
        rendered = prerequisites.render(ws, helm, member, ws.federation.prerequisites_of(member),
                                        mirror)
    except DeployerError as exc:
        return [str(exc)]
    return prerequisites.schema_problems(rendered, member, ws.cache_dir)


def render_member(ws: Workspace, helm: helm_mod.Helm, prepared: chart_mod.PreparedChart,
                  member: Member, mv: values_mod.MemberValues | None = None) -> Rendered:
    """Render a member with `helm template`; schema violations point at the file and line."""
    mv = mv or member_values(ws, member)
    result = helm.template(member.release, str(prepared.path), member.namespace,
                           dump(mv.for_helm(prepared.defaults())), member.kubernetes_version,
                           check=False, api_versions=api_versions(prepared, member,
                                                                  ws.cache_dir))
    if result.returncode != 0:
        raise _render_error(ws, prepared, mv, result.stderr)
    return Rendered(member, mv, manifests.parse(result.stdout))


def api_versions(prepared: chart_mod.PreparedChart, member: Member,
                 cache: Path | None = None) -> tuple[str, ...]:
    """What the member's cluster serves, for the charts' capability checks: the built-in
    APIs of its Kubernetes version, the CRDs the chart ships, and what the member declares
    (`preinstalled.api_versions` in config/federation.yaml). Only those the templates ask
    about are passed (helm answers the others the same either way), so the echoed command
    stays readable."""
    found = set(manifests.served_api_versions(member.kubernetes_version, cache))
    for group_version, kind in prepared.crd_kinds():
        found.update((group_version, f"{group_version}/{kind}"))
    found.update(member.preinstalled_api_versions)
    asked = prepared.capability_queries()
    return tuple(sorted(found if asked is None else found & asked))


def check_member(ws: Workspace, helm: helm_mod.Helm, prepared: chart_mod.PreparedChart,
                 member: Member, federation_problems: list,
                 mv: values_mod.MemberValues | Future | None = None,
                 lint: bool = True) -> tuple[Report, Rendered | None]:
    """Validate one member; also return what was rendered (None if rendering failed).
    `mv`: its values, or a future of (values, seconds they took) from another thread.
    `lint`: also run `helm lint` with this member's values (the chart-wide checks)."""
    start = time.perf_counter()
    report = Report(member.name)
    rendered = None
    report.errors.extend(str(v) for v in federation_problems)
    value_findings: list = []
    try:
        if isinstance(mv, Future):
            waited = time.perf_counter()
            try:
                mv, seconds = mv.result()
            finally:       # the time they took, or (when they failed) this one waited
                report.timings["values"] = time.perf_counter() - waited
            report.timings["values"] = seconds
        with report.timed("values"):
            mv = mv or member_values(ws, member)
        with report.timed("policy"):
            report.errors.extend(str(v) for v in policy.check_member(mv))
            _kube_version_problems(prepared, member, mv, report)
        with report.timed("site checks"):
            # before helm: an empty tag may keep the chart from rendering at all
            value_findings = site_checks.check_values(mv, prepared.defaults())
            report.errors.extend(str(v) for v in value_findings)
        # lint and template are independent helm processes: run them side by side
        with ThreadPoolExecutor(max_workers=1) as side:
            linting = side.submit(_timed_lint, report, helm, prepared, member,
                                  dump(mv.for_helm(prepared.defaults()))) if lint else None
            try:
                with report.timed("helm template"):
                    rendered = render_member(ws, helm, prepared, member, mv)
            finally:
                findings = linting.result() if linting is not None else []
        report.objects = len(rendered.objects)
        _add_lint_findings(report, rendered, findings)
        with report.timed("kubernetes schemas"):
            checked = manifests.validate(rendered.objects, member.kubernetes_version,
                                         mv.redactor, ws.cache_dir)
        report.errors.extend(f"{p} (Kubernetes {member.kubernetes_version})"
                             for p in checked.problems)
        report.custom = checked.custom
        report.warnings.extend(str(w) for w in checked.warnings)
        with report.timed("site checks"):
            report.errors.extend(str(v) for v in site_checks.check_rendered(
                ws.federation, member, mv, rendered.objects, prepared.subcharts(),
                prepared.defaults(), value_findings))
            report.warnings.extend(str(v) for v in site_checks.unread_keys(
                mv, prepared.defaults(), prepared.subcharts(),
                [tuple(c.strip().split(".")) for d in prepared.dependencies
                 for c in (d.condition or "").split(",") if c.strip()]))
    except RenderError as exc:
        report.values_rejected = True
        report.errors.extend(f"values rejected by the chart schema: {d}" for d in exc.details)
    except DeployerError as exc:
        if value_findings and rendered is None:
            # an image tag the values check named (empty, unquoted in the real charts) breaks
            # the chart's YAML: that error already says what to fix
            report.warnings.append(f"helm template could not render, most likely because of "
                                   f"the image tag above: {exc}")
        else:
            report.errors.append(str(exc))
    report.seconds = time.perf_counter() - start
    return report, rendered


# lint findings about what the values made of the templates (not Chart.yaml, dependencies,
# nor a template helm cannot parse whatever the values)
_FROM_VALUES = re.compile(r"\[(ERROR|WARNING)\] (templates/|values\.yaml)")


def _add_lint_findings(report: Report, rendered: Rendered | None,
                       findings: list[str]) -> None:
    """Lint's findings as the member's errors and warnings. A deprecation of an object
    `helm template` did not render (or, when the member could not be rendered, any
    deprecation) is left out: lint has no --api-versions, so it may render another."""
    served = {(o.api_version, o.kind) for o in rendered.objects} if rendered else set()
    for finding in findings:
        if report.values_rejected and _FROM_VALUES.match(finding) \
                and "parse error" not in finding:
            continue    # lint skips the schemas: what it says of values they reject is moot
        deprecated = _DEPRECATED.search(finding)
        if deprecated and deprecated.group(1, 2) not in served:
            continue
        (report.errors if finding.startswith("[ERROR]") else report.warnings).append(
            f"helm lint: {finding}")


def _timed_lint(report: Report, helm: helm_mod.Helm, prepared: chart_mod.PreparedChart,
                member: Member, values_yaml: str) -> list[str]:
    with report.timed("helm lint"):
        result = helm.lint(str(prepared.path), member.namespace, values_yaml,
                           member.kubernetes_version)
    return helm_mod.lint_findings(result.stdout)


def _kube_version_problems(prepared: chart_mod.PreparedChart, member: Member,
                           mv: values_mod.MemberValues, report: Report) -> None:
    """Charts (enabled dependencies and their subcharts too) whose kubeVersion no release
    of the member's Kubernetes minor version meets are errors; one this cannot read is a
    warning."""
    from deployer.model.versions import satisfies

    conditions = {d.name: d.condition for d in prepared.dependencies}
    for top, chart, constraint in prepared.kube_versions():
        if top is not None and not _enabled(mv.final, conditions.get(top)):
            continue                       # helm renders nothing of a disabled dependency
        version = member.kubernetes_version
        # "1.34" is a minor version: any 1.34.x release may run it
        verdicts = [satisfies(v, constraint) for v in (version, f"{version}.999")] \
            if version.count(".") == 1 else [satisfies(version, constraint)]
        if None in verdicts:
            report.warnings.append(f"chart {chart}: kubeVersion {constraint!r} not checked "
                                   "(not a constraint this can read)")
        elif not any(verdicts):
            report.errors.append(f"chart {chart} needs Kubernetes {constraint}; the member "
                                 f"runs {version} (kubernetes_version in "
                                 "config/federation.yaml)")


def _enabled(values: dict, condition: str | None) -> bool:
    """Whether a dependency's `condition` (a dotted values path; the first that is set
    wins, as in Helm) leaves it enabled."""
    if not condition:
        return True
    for path in condition.split(","):
        node = values
        for key in path.strip().split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, bool):
            return node
    return True


_DEPRECATED = re.compile(r": ([\w.\-]+/\w+|v1) (\w+) is deprecated")


class RenderError(DeployerError):
    """helm could not render a member: schema violations or a template failure."""

    exit_code = 1

    def __init__(self, message: str, details: list[str], **kwargs):
        super().__init__(message, **kwargs)
        self.details = details


def _render_error(ws: Workspace, prepared: chart_mod.PreparedChart,
                  mv: values_mod.MemberValues, stderr: str) -> DeployerError:
    violations = helm_mod.schema_violations(stderr)
    if not violations:
        return helm_mod.HelmError(["template"], stderr, 1)
    prefixes = _chart_prefixes(prepared, mv)
    details = []
    for v in violations:
        path = prefixes.get(v.chart, (v.chart,)) + v.path
        _, settings = mv.explain(path)
        if not settings:
            where = "chart defaults"
        elif len(settings[-1].path) >= len(path):
            where = settings[-1].layer.where(path)   # the key itself, not a key in its map
        else:
            where = settings[-1].where                 # a layer that set a map above it
        details.append(f"{format_path(path)}: {v.message} (set at {where})")
    first = details[0] + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
    return RenderError(f"values rejected by the chart schema: {first}", details)


def _chart_prefixes(prepared: chart_mod.PreparedChart, mv: values_mod.MemberValues) -> dict:
    """Values path of each chart that helm may name in a schema report. helm names the top
    chart by its Chart.yaml name, which need not be its directory's name."""
    from deployer.model.yamlio import load_file

    meta = load_file(prepared.path / "Chart.yaml").data
    top = meta.get("name") if isinstance(meta, dict) else None
    prefixes = {prepared.path.name: (), **({top: ()} if isinstance(top, str) else {})}
    for dep in prepared.dependencies:
        prefixes[dep.name] = (dep.name,)
        section = mv.final.get(dep.name)
        if isinstance(section, dict):  # subcharts of subcharts (binderhub -> jupyterhub)
            for key, value in section.items():
                if isinstance(value, dict) and (prepared.path / "charts").is_dir():
                    prefixes.setdefault(key, (dep.name, key))
    return prefixes
