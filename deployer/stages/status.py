"""`deploy.py status`: what runs on each member, in one table."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from deployer.adapters import clusters
from deployer.adapters.helm import Helm, HelmError
from deployer.adapters.kube import Kube, KubeError
from deployer.errors import DeployerError
from deployer.model.federation import Member
from deployer.model.values import serves_static
from deployer.model.workspace import Workspace
from deployer.stages import release
from deployer.stages.rollout import state_of

LOCK_NAME = "deployer-lock"


@dataclass
class MemberStatus:
    """One row of the status table; `error` set when the member could not be read at all."""

    member: str
    revision: str = "-"
    state: str = "-"
    chart: str = "-"
    app_version: str = "-"
    deployed: str = "-"
    workloads: str = "-"
    lock: str = "-"
    certificates: str = "-"
    prerequisites: str = "-"              # e.g. "cert-manager 3 deployed (cert-manager-v1.19.6)"
    error: str = ""                       # the member could not be read at all
    unread: list[str] = field(default_factory=list)   # columns the credentials may not read

    def row(self) -> list[str]:
        return [self.member, self.revision, self.state, self.chart, self.app_version,
                self.deployed, self.workloads, self.lock, self.certificates, self.prerequisites]


HEADERS = ["member", "revision", "status", "chart", "app", "deployed", "workloads ready",
           "lock", "certificates", "prerequisites"]


# seconds each helm read of `status` may take by default
READ_TIMEOUT = 60


def member_status(ws: Workspace, member: Member, kubeconfig: Path | None = None,
                  timeout: float = READ_TIMEOUT) -> MemberStatus:
    """Release, workloads, lock holder and TLS certificate expiry of one member; each helm
    read within `timeout` seconds (a cluster that never answers must not hold the table)."""
    out = MemberStatus(member.name)
    try:
        with clusters.access(ws, member, kubeconfig=kubeconfig) as access:
            helm = Helm(access.env, console=ws.console, context=access.context, echo=False)
            try:
                revisions = release.history(helm, member, timeout)
            except HelmError as exc:
                if not exc.forbidden:
                    raise
                # e.g. a read-only role without Secrets (helm keeps releases in them): the
                # release columns say so, the others are still read
                out.unread.append(f"release: {exc.message}")
                out.state, revisions = "forbidden (HTTP 403)", None
            if revisions:
                last = revisions[-1]
                out.revision, out.state = str(last.number), str(last.status)
                out.chart, out.app_version = last.chart, last.app_version or "-"
                out.deployed = last.updated[:19].replace("T", " ")
            elif revisions is not None:
                out.state = "not installed"
            out.prerequisites = prerequisites(ws, helm, member, timeout, unread=out.unread)
            with access.kube() as kube:
                fill_columns(out, kube, member, static=serves_static(ws, member))
    except DeployerError as exc:
        out.error = str(exc)
        out.state = "unreachable"
    except Exception as exc:  # noqa: BLE001 - one unreachable cluster must not hide the rest
        out.error = f"{type(exc).__name__}: {exc}"
        out.state = "unreachable"
    return out


def prerequisites(ws: Workspace, helm: Helm, member: Member,
                  timeout: float = READ_TIMEOUT, unread: list[str] | None = None) -> str:
    """Each prerequisite release of the member: its newest revision, status and chart; one
    that cannot be read is marked so, and why is added to `unread`."""
    from dataclasses import replace

    shown = []
    for prereq in ws.federation.prerequisites_of(member):
        try:
            revisions = release.history(helm, replace(member, release=prereq.release,
                                                      namespace=prereq.namespace),
                                        timeout)
        except DeployerError as exc:    # e.g. no right to read its namespace: this one only
            shown.append(f"{prereq.name} unreadable ({exc.message})")
            if unread is not None:
                unread.append(f"prerequisite {prereq.name}: {exc.message}")
            continue
        last = revisions[-1] if revisions else None
        shown.append(f"{prereq.name} {last.number} {last.status} ({last.chart})" if last
                     else f"{prereq.name} not installed")
    return "; ".join(shown) or "-"


def fill_columns(out: MemberStatus, kube: Kube, member: Member,
                 static: bool | None = None) -> None:
    """The columns read from the API; a column the credentials may not read says so
    ("forbidden") instead of failing the whole member."""
    out.workloads = _column(out, "workloads", lambda: workloads(kube, member))
    out.lock = _column(out, "lock", lambda: lock(kube, member))
    out.certificates = _column(out, "certificates",
                               lambda: certificates(kube, member, static=static))


def _column(out: MemberStatus, name: str, read: Callable[[], str]) -> str:
    try:
        return read()
    except KubeError as exc:
        if exc.forbidden:
            out.unread.append(f"{name}: {exc.message}")
            return f"forbidden (HTTP {exc.status})"
        raise


def workloads(kube: Kube, member: Member) -> str:
    """ready/total of the release's workloads."""
    items = [w for w in kube.list_workloads(member.namespace)
             if w.release in (None, member.release)]
    ready = 0
    for item in items:
        if item.kind == "DaemonSet":
            ready += item.available >= item.replicas
        else:
            ready += item.ready >= item.replicas
    return f"{ready}/{len(items)}" if items else "-"


def lock(kube: Kube, member: Member) -> str:
    """Who holds the deploy lock, or free."""
    lease = kube.read_lease(member.namespace, LOCK_NAME)
    if lease is None:
        return "free"
    since = lease.acquire_time.strftime("%Y-%m-%d %H:%M") if lease.acquire_time else "?"
    return f"{lease.holder} since {since}"


def certificates(kube: Kube, member: Member, static: bool | None = None) -> str:
    """Earliest expiry among the namespace's TLS secrets (cert-manager's certificates),
    and the secrets config/federation.yaml names for what the member serves that are
    missing (a member running only the redirector needs no binder or hub certificate)."""
    from cryptography import x509

    expiries = []
    present = set()
    for secret in kube.list_tls_secrets(member.namespace):
        present.add(secret.name)
        if not secret.certificate:
            continue
        try:
            cert = x509.load_pem_x509_certificate(secret.certificate)
        except ValueError:
            continue
        expiries.append((cert.not_valid_after_utc, secret.name))
    missing = [name for name in expected_tls_secrets(member, static=static)
               if name not in present]
    gap = f"missing {', '.join(missing)}" if missing else ""
    if not expiries:
        return gap or "-"
    when, name = min(expiries)
    days = (when - datetime.datetime.now(datetime.timezone.utc)).days
    text = f"{name} expires {when:%Y-%m-%d} ({days}d)" if days >= 0 else \
        f"{name} EXPIRED {when:%Y-%m-%d}"
    return f"{text}; {gap}" if gap else text


def expected_tls_secrets(member: Member, static: bool | None = None) -> list[str]:
    """The certificate Secrets of the domains the member serves, by their configured names
    (distinct: config/federation.yaml may not give two domains one Secret). `static`: whether
    its values leave the static site on (None: whenever domains.static is set)."""
    return [name for kind, name in member.tls_secrets().items()
            if kind != "static" or static is not False]


__all__ = ["HEADERS", "MemberStatus", "member_status", "state_of"]
