"""`deploy.py status`: what runs on each member, in one table."""
from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters import clusters
from deployer.stages import release
from deployer.errors import DeployerError
from deployer.model.federation import Member
from deployer.adapters.helm import Helm
from deployer.model.workspace import Workspace


@dataclass
class MemberStatus:
    member: str
    revision: str = "-"
    state: str = "-"
    chart: str = "-"
    app_version: str = "-"
    deployed: str = "-"
    workloads: str = "-"
    lock: str = "-"
    certificates: str = "-"
    error: str = ""

    def row(self) -> list[str]:
        return [self.member, self.revision, self.state, self.chart, self.app_version,
                self.deployed, self.workloads, self.lock, self.certificates]


HEADERS = ["member", "revision", "status", "chart", "app", "deployed", "workloads ready",
           "lock", "certificates"]


def member_status(ws: Workspace, member: Member, kubeconfig: Path | None = None) -> MemberStatus:
    """Release, workloads, lock holder and TLS certificate expiry of one member."""
    out = MemberStatus(member.name)
    try:
        with clusters.access(ws, member, kubeconfig=kubeconfig) as access:
            helm = Helm(access.env, context=access.context, echo=False)
            revisions = release.history(helm, member)
            if revisions:
                last = revisions[-1]
                out.revision, out.state = str(last.number), last.status
                out.chart, out.app_version = last.chart, last.app_version or "-"
                out.deployed = last.updated[:19].replace("T", " ")
            else:
                out.state = "not installed"
            api = access.api_client()
            try:
                out.workloads = _workloads(api, member)
                out.lock = _lock(api, member)
                out.certificates = _certificates(api, member)
            finally:
                api.close()
    except DeployerError as exc:
        out.error = str(exc)
        out.state = "unreachable"
    except Exception as exc:  # noqa: BLE001 - one unreachable cluster must not hide the rest
        out.error = f"{type(exc).__name__}: {exc}"
        out.state = "unreachable"
    return out


def _workloads(api, member: Member) -> str:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    ready = total = 0
    for lister in (apps.list_namespaced_deployment, apps.list_namespaced_stateful_set):
        for item in lister(member.namespace).items:
            if (item.metadata.annotations or {}).get("meta.helm.sh/release-name") not in (
                    None, member.release):
                continue
            total += 1
            want = item.spec.replicas if item.spec.replicas is not None else 1
            ready += (item.status.ready_replicas or 0) >= want
    for item in apps.list_namespaced_daemon_set(member.namespace).items:
        if (item.metadata.annotations or {}).get("meta.helm.sh/release-name") not in (
                None, member.release):
            continue
        total += 1
        ready += (item.status.number_available or 0) >= (item.status.desired_number_scheduled
                                                         or 0)
    return f"{ready}/{total}" if total else "-"


def _lock(api, member: Member) -> str:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease("deployer-lock",
                                                                    member.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return "free"
        raise
    since = lease.spec.acquire_time.strftime("%Y-%m-%d %H:%M") if lease.spec.acquire_time \
        else "?"
    return f"{lease.spec.holder_identity} since {since}"


def _certificates(api, member: Member) -> str:
    """Earliest expiry among the namespace's TLS secrets (cert-manager's certificates)."""
    from cryptography import x509
    from kubernetes import client

    secrets = client.CoreV1Api(api).list_namespaced_secret(
        member.namespace, field_selector="type=kubernetes.io/tls").items
    expiries = []
    for secret in secrets:
        pem = (secret.data or {}).get("tls.crt")
        if not pem:
            continue
        try:
            cert = x509.load_pem_x509_certificate(base64.b64decode(pem))
        except ValueError:
            continue
        expiries.append((cert.not_valid_after_utc, secret.metadata.name))
    if not expiries:
        return "-"
    when, name = min(expiries)
    days = (when - datetime.datetime.now(datetime.timezone.utc)).days
    return f"{name} expires {when:%Y-%m-%d} ({days}d)" if days >= 0 else \
        f"{name} EXPIRED {when:%Y-%m-%d}"
