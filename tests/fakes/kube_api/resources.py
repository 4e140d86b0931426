"""The resource types the test double serves, as discovery describes them."""
from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: group/version, kind, plural name, scope."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: objects are stored per group and plural (version-independent)."""
        return (self.group, self.plural)


def _t(gv: str, kind: str, plural: str, namespaced: bool = True, short=(), sub=(), cat=()):
    group, _, version = gv.rpartition("/")
    return ResourceType(group, version, kind, plural, namespaced, tuple(short), tuple(sub),
                        tuple(cat))


BUILTIN: list[ResourceType] = [
    _t("v1", "Namespace", "namespaces", False, ["ns"], ["status"]),
    _t("v1", "Node", "nodes", False, ["no"], ["status"]),
    _t("v1", "Pod", "pods", short=["po"], sub=["status", "log"], cat=["all"]),
    _t("v1", "Service", "services", short=["svc"], sub=["status"], cat=["all"]),
    _t("v1", "ConfigMap", "configmaps", short=["cm"]),
    _t("v1", "Secret", "secrets"),
    _t("v1", "ServiceAccount", "serviceaccounts", short=["sa"]),
    _t("v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=["pvc"], sub=["status"]),
    _t("v1", "PersistentVolume", "persistentvolumes", False, ["pv"], ["status"]),
    _t("v1", "Endpoints", "endpoints", short=["ep"]),
    _t("v1", "Event", "events", short=["ev"]),
    _t("v1", "ResourceQuota", "resourcequotas", short=["quota"], sub=["status"]),
    _t("v1", "LimitRange", "limitranges", short=["limits"]),
    _t("apps/v1", "Deployment", "deployments", short=["deploy"], sub=["status", "scale"],
       cat=["all"]),
    _t("apps/v1", "DaemonSet", "daemonsets", short=["ds"], sub=["status"], cat=["all"]),
    _t("apps/v1", "StatefulSet", "statefulsets", short=["sts"], sub=["status", "scale"],
       cat=["all"]),
    _t("apps/v1", "ReplicaSet", "replicasets", short=["rs"], sub=["status", "scale"],
       cat=["all"]),
    _t("apps/v1", "ControllerRevision", "controllerrevisions"),
    _t("batch/v1", "Job", "jobs", sub=["status"], cat=["all"]),
    _t("batch/v1", "CronJob", "cronjobs", short=["cj"], sub=["status"], cat=["all"]),
    _t("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=["hpa"],
       sub=["status"], cat=["all"]),
    _t("networking.k8s.io/v1", "Ingress", "ingresses", short=["ing"], sub=["status"]),
    _t("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    _t("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", short=["netpol"]),
    _t("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    _t("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", short=["pdb"], sub=["status"]),
    _t("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _t("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _t("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _t("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _t("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False, ["pc"]),
    _t("storage.k8s.io/v1", "StorageClass", "storageclasses", False, ["sc"]),
    _t("coordination.k8s.io/v1", "Lease", "leases"),
    _t("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       ["crd", "crds"], ["status"]),
    # stored, never called: the double admits every write without asking webhooks
    _t("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
       "validatingwebhookconfigurations", False),
    _t("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
       "mutatingwebhookconfigurations", False),
]


@dataclass
class Registry:
    """Built-in types plus custom resources registered from CRDs."""

    types: list[ResourceType] = field(default_factory=lambda: list(BUILTIN))

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return next((t for t in self.types if (t.group, t.version, t.plural) ==
                     (group, version, plural)), None)

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return next((t for t in self.types if (t.group, t.version, t.kind) ==
                     (group, version, kind)), None)

    def groups(self) -> dict[str, list[str]]:
        """group -> versions, in registration order ('' is the legacy core group)."""
        out: dict[str, list[str]] = {}
        for t in self.types:
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]

    def register_crd(self, crd: dict) -> None:
        """Serve the custom resource a CustomResourceDefinition describes."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            rt = ResourceType(spec["group"], version["name"], names["kind"], names["plural"],
                              spec.get("scope", "Namespaced") == "Namespaced",
                              tuple(names.get("shortNames") or ()),
                              ("status",) if (version.get("subresources") or {}).get("status")
                              is not None else (),
                              tuple(names.get("categories") or ()))
            if not self.by_path(rt.group, rt.version, rt.plural):
                self.types.append(rt)

    def unregister_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural")
        self.types = [t for t in self.types if not (t.group == spec.get("group")
                                                    and t.plural == plural)]
