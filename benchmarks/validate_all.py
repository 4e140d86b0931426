#!/usr/bin/env python3
"""`deploy.py validate --all` against bare sequential `helm template` of the same members.

The bare run issues the helm template commands validate issues, one after another: each
member's release of the federation's chart (with the same --api-versions), and the
prerequisite releases (cert-manager) of the members that have them. Both use the same
prepared chart (dependencies from the stand-in repository on 127.0.0.1, with the real charts'
values schemas where the upstream reference data is on the machine: it says which), the same
pulled prerequisite charts and the same merged values; the bare run does nothing but render
(through the same helm adapter, so with the same Go settings). Validation adds values
merging, sops decryption, helm lint, Kubernetes schema checks and policy, and runs in
parallel.

The federation's chart alone, bare (the baseline the goal was first measured on, before
members had prerequisite releases), is printed too, with validate's ratio to it: the
stricter figure. Bare renders one release after another while validate renders them side by
side, so every release added to both lowers the first ratio.

Prints the wall times and the ratios (goal: <= 1.5). Each is run once before it is timed,
then their timed rounds are taken in turn (bare, validate, chart alone, bare...), so that a
change in the machine's load weighs on them alike. Measured with the deployer's caches warm
(what an unchanged file parses to, what the prepared chart's tarballs hold, the tools'
versions: kept in $DEPLOYER_CACHE_DIR by content hash) and cold (those emptied before each
round, after the warm rounds; the prepared chart itself is kept, as the bare run uses it too,
and so is the downloaded cert-manager chart). The deployer's modules are byte-compiled
first, as scripts/bootstrap leaves them. Asserts nothing.

Usage: benchmarks/validate_all.py [ROUNDS]   (default 5)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deployer.adapters import helm  # noqa: E402
from deployer.model.workspace import Workspace  # noqa: E402
from deployer.model.prerequisites import member_values as prerequisite_values  # noqa: E402
from deployer.stages import chart, prerequisites  # noqa: E402
from deployer.stages.render import member_values  # noqa: E402
from deployer.stages.validate import api_versions, cores  # noqa: E402
from deployer.model.yamlio import dump  # noqa: E402
from tests.fakes import cert_manager_chart, chart_repo  # noqa: E402

KEY = ROOT / "tests" / "keys" / "test-only-operator.agekey"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    _byte_compile()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        env = {**chart_repo.helm_env(tmp / "home", dict(os.environ)),
               "SOPS_AGE_KEY_FILE": str(KEY), "DEPLOYER_CACHE_DIR": str(tmp / "cache")}
        repo = chart_repo.build_repo(tmp / "build", str(ROOT / ".tools/bin/helm"), env)
        cert_manager_chart.add_to_repo(repo, str(ROOT / ".tools/bin/helm"), env)
        with chart_repo.serve(repo) as url:
            env["DEPLOYER_CHART_MIRROR"] = url
            ws = Workspace(root=ROOT, env=env)
            runner = helm.Helm(env, console=ws.console, echo=False)
            prepared = chart.prepare(ws, runner, url)
            members = list(ws.federation.members.values())
            # every release a member deploys: the federation's chart, then the prerequisite
            # releases (cert-manager) of the members that have them
            charts, prerequisite_releases = [], []
            for m in members:
                text = dump(member_values(ws, m).for_helm(prepared.defaults()))
                charts.append(dict(release=m.release, chart=str(prepared.path),
                                   namespace=m.namespace, values_yaml=text,
                                   kube_version=m.kubernetes_version,
                                   api_versions=api_versions(prepared, m, ws.cache_dir)))
                for prereq in ws.federation.prerequisites_of(m):
                    pulled = prerequisites.fetch(ws, runner, prereq, url)
                    values = prerequisite_values(ws.root, prereq, m, ws.parse_cache)
                    prerequisite_releases.append(dict(
                        release=prereq.release, chart=str(pulled), namespace=prereq.namespace,
                        values_yaml=values.values_yaml, kube_version=m.kubernetes_version))

            def bare() -> None:
                for release in charts + prerequisite_releases:
                    runner.template(**release)

            def bare_chart() -> None:
                for release in charts:
                    runner.template(**release)

            def full() -> None:
                subprocess.run([sys.executable, str(ROOT / "deploy.py"), "validate", "--all"],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

            def cold() -> None:
                _empty_parse_caches(tmp / "cache")
                full()

            bare()                  # once unmeasured each: the OS's caches, the deployer's
            full()
            (bare_s, bare_cpu), (full_s, full_cpu), (chart_s, chart_cpu) = _interleaved(
                (bare, full, bare_chart), rounds)
            cold_s, cold_cpu = _median(cold, rounds)
            breakdown = subprocess.run(
                [sys.executable, str(ROOT / "deploy.py"), "validate", "--all", "--timings"],
                env=env, check=True, capture_output=True, text=True).stdout
    print(f"members                                 : {len(members)} on {cores()} cores "
          "(the CPUs this process may run on)")
    print("stand-in binderhub/jupyterhub charts     : " + (
        f"with the real charts' values schemas ({chart_repo.UPSTREAM})" if chart_repo.UPSTREAM
        else "WITHOUT the real charts' values schemas (no ../shared/upstream, no "
             "$DEPLOYER_UPSTREAM_DIR): every render is lighter than with the real charts, "
             "bare the most"))
    print(f"bare sequential helm template           : {bare_s:.2f} s wall, {bare_cpu:.2f} s CPU"
          f" (median of {rounds}; every release the members deploy: {len(charts)} of the "
          f"federation's chart, {len(prerequisite_releases)} prerequisite)")
    print(f"deploy.py validate --all                : {full_s:.2f} s wall, {full_cpu:.2f} s CPU"
          f" (median of {rounds})")
    print(f"ratio validate / bare (goal <= 1.5)     : {full_s / bare_s:.2f} (bare: the same "
          f"{len(charts) + len(prerequisite_releases)} helm template commands validate runs, "
          "one after another)")
    print(f"federation's chart alone, bare          : {chart_s:.2f} s wall, {chart_cpu:.2f} s "
          f"CPU ({len(charts)} renders: the baseline the goal was first measured on)")
    print(f"ratio validate / chart alone (stricter) : {full_s / chart_s:.2f} (validate's "
          f"{len(prerequisite_releases)} prerequisite renders and their checks are not in "
          "that bare run)")
    print(f"deploy.py validate --all, caches cold   : {cold_s:.2f} s wall, {cold_cpu:.2f} s CPU"
          f" (median of {rounds}); ratio {cold_s / bare_s:.2f}, to the chart alone "
          f"{cold_s / chart_s:.2f}")
    print("  (validate renders each member with helm, lints the chart once per Kubernetes "
          "version, renders the members' prerequisites (cert-manager), decrypts each "
          "member's secrets with sops, checks Kubernetes schemas and policy; the CPU figures "
          "show how much of the machine each used)")
    print("\nper-stage breakdown of one run (deploy.py validate --all --timings):")
    print(breakdown[breakdown.index("stage "):] if "stage " in breakdown else breakdown)


def _byte_compile() -> None:
    """The deployer's modules compiled as scripts/bootstrap leaves them (an edited module is
    compiled again here), so that no round compiles source where PYTHONDONTWRITEBYTECODE
    keeps Python from writing .pyc files."""
    import compileall

    if not compileall.compile_dir(str(ROOT / "deployer"), quiet=2):
        print("warning: could not byte-compile deployer/ (not writable?): each round "
              "compiles it", file=sys.stderr)


def _interleaved(funcs, rounds: int) -> list[tuple[float, float]]:
    """_median of each of `funcs`, their rounds taken in turn (first, second, ..., first...):
    a change in the machine's load during the measurement weighs on all of them alike."""
    times: list[list[tuple[float, float]]] = [[] for _ in funcs]
    for _ in range(rounds):
        for slot, func in enumerate(funcs):
            times[slot].append(_median(func, 1))
    return [(statistics.median(w for w, _ in each), statistics.median(c for _, c in each))
            for each in times]


def _median(func, rounds: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (this process and its children)."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = _cpu()
        start = time.perf_counter()
        func()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - before)
    return statistics.median(walls), statistics.median(cpus)


def _empty_parse_caches(cache: Path) -> None:
    """Remove what the deployer keeps by content hash, except the prepared chart itself."""
    import shutil

    for kept in ("hcl", "yaml", "tools", "kubernetes"):
        shutil.rmtree(cache / kept, ignore_errors=True)
    for facts in cache.glob("*/.deployer-facts*"):
        facts.unlink()


def _cpu() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
