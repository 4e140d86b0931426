"""The adapter-level fakes behave as the real adapters do against the real helm and the
Kubernetes API double: the same operations give the same revision statuses, the same
rollout states and the same lease errors."""
from __future__ import annotations

import time

import pytest
import yaml

from deployer.adapters.helm import Helm, HelmError
from deployer.adapters.kube import Conflict, Kube, Lease, NotFound
from deployer.console import Console
from deployer.stages.rollout import state_of
from tests.fakes.adapters import STUCK, FakeCluster
from tests.fakes.test_kube_api_helm import small_chart  # noqa: F401  (fixture)


def _values(replicas: int) -> str:
    return f"replicas: {replicas}\ngreeting: hello\n"


def _real_sequence(helm: Helm, chart: str, kube_api) -> list[list[str]]:
    seen = []
    helm.upgrade("small", chart, "demo", _values(1), 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    helm.upgrade("small", chart, "demo", _values(2), 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    kube_api.faults.fail(r"/namespaces/demo/deployments/small", 500, times=None,
                         methods=("PATCH", "PUT"))
    with pytest.raises(HelmError):
        helm.upgrade("small", chart, "demo", _values(3), 30)
    kube_api.faults.clear()
    seen.append([r.status.value for r in helm.history("small", "demo")])
    helm.rollback("small", "demo", 2, 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    return seen


def _fake_sequence(cluster: FakeCluster) -> list[list[str]]:
    seen = []
    helm = cluster.helm
    helm.upgrade("small", "chart", "demo", _values(1), 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    helm.upgrade("small", "chart", "demo", _values(2), 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    cluster.fail_after_apply = HelmError(["upgrade"], "Error: UPGRADE FAILED: 500", 1)
    with pytest.raises(HelmError):
        helm.upgrade("small", "chart", "demo", _values(3), 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    helm.rollback("small", "demo", 2, 30)
    seen.append([r.status.value for r in helm.history("small", "demo")])
    return seen


def test_fake_helm_keeps_revisions_as_helm_does(kube_env, kube_api, small_chart):  # noqa: F811
    real = Helm(kube_env, console=Console(), echo=False)
    assert real.history("small", "demo") == [] == FakeCluster("").helm.history("small", "demo")
    expected = _real_sequence(real, str(small_chart), kube_api)
    assert expected == [["deployed"], ["superseded", "deployed"],
                        ["superseded", "deployed", "failed"],
                        ["superseded", "superseded", "failed", "deployed"]]
    fake = FakeCluster("")
    assert _fake_sequence(fake) == expected
    assert "Rollback to 2" in real.history("small", "demo")[-1].description
    assert "Rollback to 2" in fake.helm.history("small", "demo")[-1].description
    assert real.values("small", "demo", 4) == fake.helm.values("small", "demo", 4) == \
        yaml.safe_load(_values(2))


def test_fake_workloads_report_the_states_the_api_double_reports(kube_env, kube_api,
                                                                 small_chart):  # noqa: F811
    real = Helm(kube_env, console=Console(), echo=False)
    real.upgrade("small", str(small_chart), "demo", _values(2), 30)
    kube = Kube.from_kubeconfig(kube_env["KUBECONFIG"])
    try:
        deadline = time.monotonic() + 10
        while not state_of(kube.read_workload("Deployment", "demo", "small"))[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kube_api.faults.never_ready("deployments", "demo", "small")
        real.upgrade("small", str(small_chart), "demo", _values(3), 30)
        deadline = time.monotonic() + 10
        while True:
            real_done, real_text = state_of(kube.read_workload("Deployment", "demo", "small"))
            if real_text.startswith("0/") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        kube.close()
    manifest = real.manifest("small", "demo")
    fake = FakeCluster(manifest, namespace="demo")
    fake.installed(health=STUCK, manifest=manifest)
    fake_done, fake_text = state_of(fake.kube.read_workload("Deployment", "demo", "small"))
    assert (real_done, real_text) == (fake_done, fake_text) == (False, "0/3 available, 3 updated")


def _lease_errors(kube) -> list[str]:
    """The same lease operations; the name of what each one raised (or 'ok')."""
    out = []
    lease = Lease("lock-ns", "deployer-lock", holder="a", duration=60)

    def attempt(fn):
        try:
            result = fn()
        except (NotFound, Conflict) as exc:
            kind = exc.details.get("kind", "")
            out.append(type(exc).__name__ + (f"({kind})" if kind else ""))
            return None
        out.append("ok")
        return result

    attempt(lambda: kube.create_lease(lease))                 # no namespace yet
    kube.create_namespace("lock-ns")
    created = attempt(lambda: kube.create_lease(lease))
    attempt(lambda: kube.create_lease(lease))                 # exists
    newer = attempt(lambda: kube.replace_lease(created.but(holder="b")))
    attempt(lambda: kube.replace_lease(created.but(holder="c")))   # stale version
    attempt(lambda: kube.delete_lease("lock-ns", "deployer-lock",
                                      resource_version=created.resource_version))
    attempt(lambda: kube.delete_lease("lock-ns", "deployer-lock",
                                      resource_version=newer.resource_version))
    attempt(lambda: kube.delete_lease("lock-ns", "deployer-lock"))
    out.append(str(kube.read_lease("lock-ns", "deployer-lock")))
    return out


def test_fake_leases_fail_as_the_api_double_does(kubeconfig):
    kube = Kube.from_kubeconfig(kubeconfig)
    try:
        real = _lease_errors(kube)
    finally:
        kube.close()
    assert real == ["NotFound(namespaces)", "ok", "Conflict(leases)", "ok", "Conflict(leases)",
                    "Conflict(leases)", "ok", "NotFound(leases)", "None"]
    assert _lease_errors(FakeCluster("").kube) == real
