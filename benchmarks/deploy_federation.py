#!/usr/bin/env python3
"""Deploy four production members against the Kubernetes API test double, in parallel and
one after another, in one run. Prints both wall times and the ratio (goal <= 0.5).
Asserts nothing.

Each member gets its own fresh API server (as each member is its own cluster), reached
through a sops-encrypted kubeconfig; dependency charts come from the stand-in repository.
Usage: benchmarks/deploy_federation.py
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deployer.adapters import sops as secrets  # noqa: E402
from tests.fakes import chart_repo  # noqa: E402
from tests.fakes.kube_api import KubeAPI  # noqa: E402

KEY = ROOT / "tests" / "keys" / "test-only-operator.agekey"
MEMBERS = ["gke", "aws", "hetzner-fsn", "uni-lab"]
CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "clusterissuers.cert-manager.io"},
       "spec": {"group": "cert-manager.io", "scope": "Cluster",
                "names": {"kind": "ClusterIssuer", "plural": "clusterissuers"},
                "versions": [{"name": "v1", "served": True, "storage": True}]}}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        tmp = Path(tmp)
        env = {**chart_repo.helm_env(tmp / "home", dict(os.environ)),
               "SOPS_AGE_KEY_FILE": str(KEY), "DEPLOYER_CACHE_DIR": str(tmp / "cache")}
        repo = chart_repo.build_repo(tmp / "charts", str(ROOT / ".tools/bin/helm"), env)
        with chart_repo.serve(repo) as url:
            env["DEPLOYER_CHART_MIRROR"] = url
            sequential = sum(_round(tmp / f"seq-{m}", env, [m]) for m in MEMBERS)
            parallel = _round(tmp / "par", env, MEMBERS)
    print(f"members                          : {len(MEMBERS)} ({', '.join(MEMBERS)}) on "
          f"{os.cpu_count()} cores")
    print(f"one after another                : {sequential:.1f} s")
    print(f"in parallel (deploy a,b,c,d)     : {parallel:.1f} s")
    print(f"ratio parallel / sequential (goal <= 0.5): {parallel / sequential:.2f}")


def _round(work: Path, env: dict, members: list[str]) -> float:
    """Copy the repository, point `members` at fresh API servers, time one deploy command."""
    work.mkdir(parents=True)
    for part in ("config", "secrets", "mybinder", ".sops.yaml"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / part)
    servers = [KubeAPI("1.34.2", rollout_delay=1.0).start() for _ in members]
    try:
        path = work / "config/federation.yaml"
        data = yaml.safe_load(path.read_text())
        data.pop("prerequisites", None)   # cert-manager's CRD is there already (below)
        for name, server in zip(members, servers):
            server.api.store.create(server.api.registry.by_kind(
                "apiextensions.k8s.io/v1", "CustomResourceDefinition"), "", CRD)
            server.api.registry.register_crd(CRD)
            context = data["members"][name]["cluster"].get("context", "test")
            data["members"][name]["cluster"] = {
                "provider": "kubeconfig", "kubeconfig": f"secrets/kubeconfigs/{name}.yaml",
                "context": context}
            plain = server.kubeconfig(work / f"{name}.kubeconfig", context=context)
            secrets.encrypt_text(work, f"secrets/kubeconfigs/{name}.yaml", plain.read_text(), env)
            plain.unlink()
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "deploy.py"), "--root", str(work), "deploy",
                        ",".join(members), "--skip-smoke", "--timeout", "120"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
