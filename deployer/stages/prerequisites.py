"""Prerequisite releases: cluster-level charts a member needs before the federation's chart
(cert-manager, whose CRDs the chart's ClusterIssuer needs), each pinned in
config/federation.yaml `prerequisites:` and installed as its own helm release.

This module pulls and renders them and checks their objects (what validate and deploy both
do); stages/prerequisites_apply.py brings them up to date on a cluster.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.helm import Helm, HelmError, schema_violations
from deployer.errors import ConfigError, DeployError
from deployer.model import diskcache, manifests
from deployer.model.federation import FEDERATION_FILE, Member, Prerequisite
from deployer.model.manifests import K8sObject
from deployer.model.prerequisites import PrerequisiteValues, member_values
from deployer.model.workspace import Workspace
from deployer.model.yamlio import format_path, load_file


@dataclass(frozen=True)
class RenderedPrerequisite:
    """A prerequisite's pulled chart, its merged values and the objects helm renders."""

    prerequisite: Prerequisite
    chart: Path
    values: PrerequisiteValues
    objects: tuple[K8sObject, ...]

    def crd_kinds(self) -> set[tuple[str, str]]:
        """(group/version, kind) of the custom resources its CRDs define."""
        return manifests.crd_kinds(self.objects)


def render(ws: Workspace, helm: Helm, member: Member, prerequisites: list[Prerequisite],
           mirror: str | None = None) -> list[RenderedPrerequisite]:
    """Pull each pinned chart (cached) and render it with the member's values."""
    out = []
    for prereq in prerequisites:
        mv = member_values(ws.root, prereq, member, ws.parse_cache)
        chart = fetch(ws, helm, prereq, mirror)
        result = helm.template(prereq.release, str(chart), prereq.namespace, mv.values_yaml,
                               member.kubernetes_version, check=False)
        if not result.ok:
            raise _render_error(ws, prereq, member, mv, result.stderr)
        out.append(RenderedPrerequisite(prereq, chart, mv, tuple(manifests.parse(result.stdout))))
    return out


def schema_problems(rendered: list[RenderedPrerequisite], member: Member,
                    cache: Path | None = None) -> list[str]:
    """The rendered prerequisites' objects checked against the Kubernetes schemas of the
    member's version (what `validate` and `deploy` both check): errors, one a line, each
    naming the release and the values files it came from."""
    errors = []
    for item in rendered:
        checked = manifests.validate(list(item.objects), member.kubernetes_version,
                                     cache=cache)
        files = ", ".join(item.values.files) or "its chart's defaults"
        errors += [f"{item.prerequisite.name} release: {p} (Kubernetes "
                   f"{member.kubernetes_version}; values from {files})"
                   for p in checked.problems]
    return errors


def fetch(ws: Workspace, helm: Helm, prereq: Prerequisite, mirror: str | None = None) -> Path:
    """The pinned chart as a .tgz, pulled once per repository, chart and version (from the
    mirror instead of its repository when one is given, as for the chart's dependencies)."""
    from deployer.stages.chart import cache_dir

    url = (mirror or prereq.repository).rstrip("/")
    where = cache_dir(ws) / "prerequisites" / hashlib.sha256(url.encode()).hexdigest()[:12]
    target = where / f"{prereq.chart}-{prereq.version}.tgz"
    if target.is_file():
        diskcache.touch(target)          # used now: diskcache.prune keeps it
        return target
    where.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pull-", dir=where))
    try:
        try:
            helm.pull(prereq.chart, url, prereq.version, str(work))
        except HelmError as exc:
            doc = load_file(ws.root / FEDERATION_FILE, FEDERATION_FILE)
            path = ("prerequisites", prereq.name, "version")
            raise DeployError(f"cannot fetch the {prereq.name} chart {prereq.chart} "
                              f"{prereq.version} from {url}: {exc.result.stderr.strip()[-300:]}",
                              file=FEDERATION_FILE, line=doc.line_of(path),
                              key=format_path(path),
                              hint="check the version exists in that repository (and network "
                                   "access, or --chart-mirror)") from None
        pulled = sorted(work.glob("*.tgz"))
        if len(pulled) != 1:
            raise DeployError(f"helm pull of {prereq.chart} {prereq.version} left "
                              f"{len(pulled)} chart files")
        os.replace(pulled[0], target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _render_error(ws: Workspace, prereq: Prerequisite, member: Member, mv: PrerequisiteValues,
                  stderr: str) -> ConfigError:
    """A prerequisite that does not render: name the values file and key when helm's schema
    check says which, else helm's last line."""
    for violation in schema_violations(stderr):
        for rel in reversed(mv.files):
            doc = load_file(ws.root / rel, rel)
            if violation.path and violation.path in doc.lines:
                return ConfigError(f"{prereq.chart} {prereq.version}: {violation.message}",
                                   file=rel, line=doc.lines[violation.path],
                                   key=format_path(violation.path))
        return ConfigError(f"{prereq.chart} {prereq.version}: {violation.message}",
                           file=mv.files[-1] if mv.files else FEDERATION_FILE,
                           key=format_path(violation.path) or None)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return ConfigError(f"the {prereq.name} chart {prereq.chart} {prereq.version} does not "
                       f"render for {member.name}: {lines[-1] if lines else 'helm failed'}",
                       file=mv.files[-1] if mv.files else FEDERATION_FILE)
