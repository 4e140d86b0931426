"""Adapter for the Kubernetes API, through the official kubernetes Python client.

One `Kube` per cluster, built once from a kubeconfig (`Kube.from_kubeconfig`), is what the
lock, the rollout wait and `status` use. It returns plain dataclasses (WorkloadState, Lease,
TLSSecret) and raises KubeError (NotFound, Conflict) instead of the client's own types, so the
stages never import kubernetes and their tests can use a fake Kube.
"""
from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from deployer.console import Console
from deployer.errors import DeployError

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
RELEASE_ANNOTATION = "meta.helm.sh/release-name"
DEFAULT_REQUEST_TIMEOUT = 10.0


class KubeError(DeployError):
    """An API call failed: HTTP status (None for a connection failure) and the server's words."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "",
                 details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details = details or {}

    @property
    def transient(self) -> bool:
        """Worth retrying: 429, 5xx, or no answer at all."""
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def forbidden(self) -> bool:
        """RBAC denied the call (401/403)."""
        return self.status in (401, 403)


class NotFound(KubeError):
    """404: the object (or its namespace: `details['kind'] == 'namespaces'`) does not exist."""


class Conflict(KubeError):
    """409: someone else wrote the object since it was read (or it already exists)."""


@dataclass(frozen=True)
class WorkloadState:
    """What the rollout wait and `status` need of a Deployment, StatefulSet or DaemonSet."""

    kind: str
    namespace: str
    name: str
    generation: int = 0
    observed_generation: int = 0
    replicas: int = 1               # wanted (spec.replicas; DaemonSets: desired scheduled)
    total: int = 0                  # status.replicas (Deployments: old and new pods)
    updated: int = 0
    ready: int = 0
    available: int = 0
    update_revision: str = ""       # StatefulSets
    current_revision: str = ""
    deadline_exceeded: str | None = None   # Deployments: ProgressDeadlineExceeded message
    release: str | None = None      # the helm release that owns it (annotation)


@dataclass(frozen=True)
class Lease:
    """A coordination.k8s.io/v1 Lease."""

    namespace: str
    name: str
    holder: str | None = None
    duration: int | None = None
    acquire_time: datetime.datetime | None = None
    renew_time: datetime.datetime | None = None
    transitions: int = 0
    resource_version: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def but(self, **changes: Any) -> "Lease":
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class TLSSecret:
    """A kubernetes.io/tls Secret's name and certificate (PEM bytes, None if absent)."""

    name: str
    certificate: bytes | None


class Kube:
    """The calls the deployer makes to one cluster's API."""

    def __init__(self, api_client, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT):
        from kubernetes import client

        self.api_client = api_client
        self.request_timeout = request_timeout
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._coordination = client.CoordinationV1Api(api_client)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, *, context: str | None = None,
                        scratch: Path | None = None, source: str = "",
                        env: Mapping[str, str] | None = None,
                        console: Console | None = None) -> "Kube":
        """A client for the kubeconfig's (selected) context. Certificate data the client must
        write to files goes into `scratch` (a private directory), never next to the config.

        A user with an exec credential plugin (gke-gcloud-auth-plugin, aws eks get-token) is
        run here, through the process adapter with `env` (never the process environment, as
        the kubernetes client's own exec support would), and the client gets the token."""
        from kubernetes import client, config

        label = source or str(kubeconfig)
        data = _read_kubeconfig(kubeconfig, label)
        user = _selected_user(data, context)
        if user is not None and isinstance(user.get("exec"), dict):
            credential = exec_credential(user["exec"], env or {}, Path(kubeconfig).parent,
                                         console, label)
            user.clear()
            user.update(credential)
        configuration = client.Configuration()
        try:
            config.load_kube_config_from_dict(data, context=context,
                                              client_configuration=configuration,
                                              persist_config=False,
                                              temp_file_path=str(scratch) if scratch else None)
        except config.ConfigException as exc:
            raise DeployError(f"cannot use the kubeconfig: {exc}", file=label) from None
        return cls(client.ApiClient(configuration=configuration))

    def close(self) -> None:
        """Close the connection pool."""
        self.api_client.close()

    def __enter__(self) -> "Kube":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- workloads --------------------------------------------------------------------------
    def read_workload(self, kind: str, namespace: str, name: str, *,
                      timeout: float | None = None) -> WorkloadState:
        """One workload's rollout state."""
        reader = {"Deployment": self._apps.read_namespaced_deployment,
                  "StatefulSet": self._apps.read_namespaced_stateful_set,
                  "DaemonSet": self._apps.read_namespaced_daemon_set}[kind]
        obj = self._call(reader, name, namespace, _request_timeout=self._timeout(timeout))
        return _workload(kind, obj)

    def list_workloads(self, namespace: str) -> list[WorkloadState]:
        """Every Deployment, StatefulSet and DaemonSet in `namespace`."""
        listers = (("Deployment", self._apps.list_namespaced_deployment),
                   ("StatefulSet", self._apps.list_namespaced_stateful_set),
                   ("DaemonSet", self._apps.list_namespaced_daemon_set))
        return [_workload(kind, item) for kind, lister in listers
                for item in self._call(lister, namespace,
                                       _request_timeout=self.request_timeout).items]

    # -- discovery --------------------------------------------------------------------------
    def served_kinds(self, group_version: str) -> set[str] | None:
        """The kinds the API serves under `group_version` (`v1`, `apps/v1`,
        `cert-manager.io/v1`); None when it does not serve that group version at all."""
        import json

        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        request = self.api_client.param_serialize(
            "GET", path, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self._call(self.api_client.call_api, *request,
                              _request_timeout=self.request_timeout)
        self._call(response.read)
        status = response.status
        if status == 404:
            return None
        if status != 200:      # this client returns (does not raise) other statuses here
            raise KubeError(f"discovery of {group_version}: HTTP {status}"
                            + (" (the credentials may not list the API)"
                               if status in (401, 403) else ""), status=status)
        try:
            data = json.loads(response.data or b"{}")
        except ValueError:
            raise KubeError(f"discovery of {group_version}: the answer is not JSON") from None
        return {r.get("kind") for r in (data or {}).get("resources") or []
                if isinstance(r, dict) and "/" not in r.get("name", "")}

    # -- custom resource definitions --------------------------------------------------------
    def crd(self, name: str) -> tuple[str, dict[str, str]] | None:
        """A CustomResourceDefinition's uid and annotations; None when there is no such CRD."""
        from kubernetes import client

        api = client.ApiextensionsV1Api(self.api_client)
        try:
            obj = self._call(api.read_custom_resource_definition, name,
                             _request_timeout=self.request_timeout)
        except NotFound:
            return None
        return obj.metadata.uid or "", dict(obj.metadata.annotations or {})

    def has_custom_objects(self, group: str, version: str, plural: str) -> bool:
        """Whether any object of that custom resource exists, in any namespace."""
        from kubernetes import client

        api = client.CustomObjectsApi(self.api_client)
        found = self._call(api.list_cluster_custom_object, group, version, plural, limit=1,
                           _request_timeout=self.request_timeout)
        return bool((found or {}).get("items"))

    def delete_crd(self, name: str) -> None:
        """Delete a CustomResourceDefinition (gone already is fine)."""
        from kubernetes import client

        api = client.ApiextensionsV1Api(self.api_client)
        try:
            self._call(api.delete_custom_resource_definition, name,
                       _request_timeout=self.request_timeout)
        except NotFound:
            pass

    # -- leases -----------------------------------------------------------------------------
    def read_lease(self, namespace: str, name: str, *,
                   timeout: float | None = None) -> Lease | None:
        """The Lease, or None when there is none."""
        try:
            obj = self._call(self._coordination.read_namespaced_lease, name, namespace,
                             _request_timeout=self._timeout(timeout))
        except NotFound:
            return None
        return _lease(obj)

    def create_lease(self, lease: Lease, *, timeout: float | None = None) -> Lease:
        """Create `lease`; Conflict if it exists, NotFound (kind namespaces) without namespace."""
        body = _lease_body(lease, with_version=False)
        return _lease(self._call(self._coordination.create_namespaced_lease, lease.namespace,
                                 body, _request_timeout=self._timeout(timeout)))

    def replace_lease(self, lease: Lease, *, timeout: float | None = None) -> Lease:
        """Replace the Lease as of `lease.resource_version`; Conflict if it changed since."""
        body = _lease_body(lease, with_version=True)
        return _lease(self._call(self._coordination.replace_namespaced_lease, lease.name,
                                 lease.namespace, body, _request_timeout=self._timeout(timeout)))

    def delete_lease(self, namespace: str, name: str, *, resource_version: str | None = None,
                     timeout: float | None = None) -> None:
        """Delete the Lease (only as of `resource_version` when given: else Conflict)."""
        from kubernetes import client

        kwargs: dict = {"_request_timeout": self._timeout(timeout)}
        if resource_version is not None:
            kwargs["body"] = client.V1DeleteOptions(
                preconditions=client.V1Preconditions(resource_version=resource_version))
        self._call(self._coordination.delete_namespaced_lease, name, namespace, **kwargs)

    def create_namespace(self, namespace: str, *, timeout: float | None = None) -> None:
        """Create a namespace; one that exists already is fine."""
        try:
            self._call(self._core.create_namespace,
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                       _request_timeout=self._timeout(timeout))
        except Conflict:
            pass

    # -- config maps (the deployer's own record) ---------------------------------------------
    def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data, or None when there is none."""
        try:
            obj = self._call(self._core.read_namespaced_config_map, name, namespace,
                             _request_timeout=self.request_timeout)
        except NotFound:
            return None
        return dict(obj.data or {})

    def write_config_map(self, namespace: str, name: str, data: dict[str, str],
                         labels: dict[str, str] | None = None) -> None:
        """Create or replace a ConfigMap with `data`."""
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "data": data}
        try:
            self._call(self._core.create_namespaced_config_map, namespace, body,
                       _request_timeout=self.request_timeout)
        except Conflict:
            self._call(self._core.replace_namespaced_config_map, name, namespace, body,
                       _request_timeout=self.request_timeout)

    # -- secrets ----------------------------------------------------------------------------
    def list_tls_secrets(self, namespace: str) -> list[TLSSecret]:
        """kubernetes.io/tls Secrets of `namespace` (cert-manager's certificates)."""
        import base64

        items = self._call(self._core.list_namespaced_secret, namespace,
                           field_selector="type=kubernetes.io/tls",
                           _request_timeout=self.request_timeout).items
        out = []
        for secret in items:
            pem = (secret.data or {}).get("tls.crt")
            try:
                cert = base64.b64decode(pem) if pem else None
            except ValueError:
                cert = None
            out.append(TLSSecret(secret.metadata.name, cert))
        return out

    # -- helpers ----------------------------------------------------------------------------
    def _timeout(self, timeout: float | None) -> float:
        return self.request_timeout if timeout is None else max(1.0, float(timeout))

    def _unreachable(self, exc: BaseException) -> KubeError:
        """No answer at all: where the API server was sought and why it did not answer."""
        return KubeError(f"cannot reach the API server at {self.api_client.configuration.host}: "
                         f"{transport_reason(exc)}")

    def _call(self, fn: Callable, *args, **kwargs):
        """Call the client; turn its exceptions into KubeError (NotFound, Conflict)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if not exc.status:  # the client's own wrapping of a TLS failure: no answer either
                raise self._unreachable(exc.__context__ or exc) from None
            raise _api_error(exc) from None
        except (HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None
        except Exception as exc:  # noqa: BLE001 - a credential refresh, a bad answer: no status
            raise KubeError(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def exec_credential(spec: dict, env: Mapping[str, str], base: Path,
                    console: Console | None, source: str) -> dict:
    """Run a kubeconfig `exec` credential plugin; the user fields its ExecCredential gives
    (a token, or client certificate and key data), registered as secrets."""
    import base64

    from deployer.adapters import process
    from deployer.errors import ToolError

    command = str(spec.get("command") or "")
    if not command:
        raise DeployError("kubeconfig exec plugin without a command", file=source)
    if "/" in command and not Path(command).is_absolute():
        command = str(base / command)
    api_version = spec.get("apiVersion") or "client.authentication.k8s.io/v1"
    child = {**env, **{str(e.get("name")): str(e.get("value", ""))
                       for e in spec.get("env") or [] if isinstance(e, dict)},
             "KUBERNETES_EXEC_INFO": json.dumps({"apiVersion": api_version,
                                                 "kind": "ExecCredential",
                                                 "spec": {"interactive": False}})}
    name = Path(command).name
    try:
        result = process.run([command, *map(str, spec.get("args") or [])], env=child,
                             timeout=120, console=console, echo=False, check=False, tool=name)
    except ToolError as exc:
        raise DeployError(f"credential plugin {name}: {exc.message}", file=source,
                          hint=spec.get("installHint") or exc.hint) from None
    if not result.ok:
        raise DeployError(f"credential plugin {name} failed (exit {result.returncode}): "
                          f"{process.last_lines(result.stderr)}", file=source,
                          hint=spec.get("installHint"))
    try:
        status = (json.loads(result.stdout) or {}).get("status") or {}
    except ValueError:
        raise DeployError(f"credential plugin {name} printed no ExecCredential JSON",
                          file=source) from None
    if status.get("token"):
        found = {"token": str(status["token"])}
    elif status.get("clientCertificateData") and status.get("clientKeyData"):
        found = {key: base64.b64encode(str(status[field]).encode()).decode()
                 for key, field in (("client-certificate-data", "clientCertificateData"),
                                    ("client-key-data", "clientKeyData"))}
    else:
        raise DeployError(f"credential plugin {name} gave neither a token nor a client "
                          "certificate", file=source)
    if console is not None:
        console.add_secrets(found.values())
    return found


def transport_reason(exc: BaseException) -> str:
    """Why a request got no answer, in a few words ("connection refused", "read timed out"):
    the reason urllib3's MaxRetryError carries, followed down to the innermost OSError's
    strerror, else the innermost error's own message without urllib3's pool prefix."""
    from urllib3.exceptions import (ConnectTimeoutError, MaxRetryError, ProtocolError,
                                    ReadTimeoutError)

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10 and all(current is not c for c in chain):
        chain.append(current)
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
        elif isinstance(current, ProtocolError) and isinstance(current.args[-1], BaseException):
            current = current.args[-1]   # ("Connection aborted.", ConnectionResetError(...))
        else:
            current = current.__cause__ or current.__context__
    for error in reversed(chain):
        if isinstance(error, OSError) and isinstance(error.strerror, str) and error.strerror:
            return _lower_first(error.strerror)
        if isinstance(error, ConnectTimeoutError):
            return "connection timed out"
        if isinstance(error, ReadTimeoutError):
            return "read timed out"
    lines = str(chain[-1]).strip().splitlines()
    text = re.sub(r"^HTTPS?Connection(Pool)?\(.*?\):\s*", "", lines[0] if lines else "")
    return _lower_first(text or type(chain[-1]).__name__)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _read_kubeconfig(path: Path, label: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DeployError(f"cannot use the kubeconfig: {exc}", file=label) from None
    if not isinstance(data, dict):
        raise DeployError("cannot use the kubeconfig: not a map", file=label)
    return data


def _selected_user(data: dict, context: str | None) -> dict | None:
    """The `user` map the selected context authenticates with (None if there is none)."""
    name = context or data.get("current-context")
    ctx = next((c.get("context") or {} for c in data.get("contexts") or []
                if isinstance(c, dict) and c.get("name") == name), None)
    if not ctx or not ctx.get("user"):
        return None
    return next((u.setdefault("user", {}) for u in data.get("users") or []
                 if isinstance(u, dict) and u.get("name") == ctx["user"]), None)


def _api_error(exc) -> KubeError:
    body: dict = {}
    try:
        body = json.loads(exc.body or "{}") or {}
    except (TypeError, ValueError):
        body = {}
    status = exc.status or None
    message = body.get("message") if isinstance(body, dict) else None
    text = f"HTTP {status}: {message or exc.reason or ''}".rstrip(": ")
    details = (body.get("details") or {}) if isinstance(body, dict) else {}
    cls = {404: NotFound, 409: Conflict}.get(status or 0, KubeError)
    return cls(text, status=status, reason=exc.reason or "", details=details)


def _workload(kind: str, obj) -> WorkloadState:
    meta, spec, status = obj.metadata, obj.spec, obj.status
    annotations = meta.annotations or {}
    common = dict(kind=kind, namespace=meta.namespace or "", name=meta.name,
                  generation=meta.generation or 0,
                  observed_generation=(status.observed_generation or 0) if status else 0,
                  release=annotations.get(RELEASE_ANNOTATION))
    if status is None:
        return WorkloadState(**common)
    if kind == "DaemonSet":
        return WorkloadState(**common, replicas=status.desired_number_scheduled or 0,
                             updated=status.updated_number_scheduled or 0,
                             available=status.number_available or 0,
                             ready=status.number_ready or 0,
                             total=status.current_number_scheduled or 0)
    want = spec.replicas if spec.replicas is not None else 1
    deadline = None
    if kind == "Deployment":
        for cond in status.conditions or []:
            if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
                deadline = cond.message or ""
        return WorkloadState(**common, replicas=want, total=status.replicas or 0,
                             updated=status.updated_replicas or 0,
                             ready=status.ready_replicas or 0,
                             available=status.available_replicas or 0,
                             deadline_exceeded=deadline)
    return WorkloadState(**common, replicas=want, total=status.replicas or 0,
                         updated=status.updated_replicas or 0, ready=status.ready_replicas or 0,
                         available=status.available_replicas or 0,
                         update_revision=status.update_revision or "",
                         current_revision=status.current_revision or "")


def _lease(obj) -> Lease:
    meta, spec = obj.metadata, obj.spec
    return Lease(namespace=meta.namespace, name=meta.name,
                 holder=spec.holder_identity if spec else None,
                 duration=spec.lease_duration_seconds if spec else None,
                 acquire_time=_aware(spec.acquire_time) if spec else None,
                 renew_time=_aware(spec.renew_time) if spec else None,
                 transitions=(spec.lease_transitions or 0) if spec else 0,
                 resource_version=meta.resource_version,
                 labels=dict(meta.labels or {}), annotations=dict(meta.annotations or {}))


def _lease_body(lease: Lease, *, with_version: bool) -> dict:
    metadata: dict = {"name": lease.name, "namespace": lease.namespace}
    if with_version and lease.resource_version:
        metadata["resourceVersion"] = lease.resource_version
    if lease.labels:
        metadata["labels"] = dict(lease.labels)
    if lease.annotations:
        metadata["annotations"] = dict(lease.annotations)
    spec: dict = {"holderIdentity": lease.holder, "leaseTransitions": lease.transitions}
    if lease.duration is not None:
        spec["leaseDurationSeconds"] = lease.duration
    # the client sends aware datetimes as RFC 3339 MicroTime
    if lease.acquire_time is not None:
        spec["acquireTime"] = lease.acquire_time
    if lease.renew_time is not None:
        spec["renewTime"] = lease.renew_time
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": spec}


def _aware(when) -> datetime.datetime | None:
    """A timezone-aware UTC datetime (the client parses MicroTime; a string is parsed here)."""
    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        return when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)
