#!/usr/bin/env python3
"""The bump bot's two costs: reading a big chart repository index, and GitHub requests.

1. Seconds to get one chart's versions out of a generated index of the real JupyterHub
   chart repository's size (1.7 MB, 1,775 entries; tests/fakes/chart_repo.synthetic_index):
   the deployer's parser (only the chart's block, libyaml) against PyYAML's pure and C
   loaders on the whole file (goal: <= 0.6 s). Median of N runs.
2. GitHub API requests of a bump run in which nothing changed (goal: <= 2), counted by the
   GitHub REST double (tests/fakes/github.py) that the real PyGithub talks to.

Prints the numbers and ratios; asserts nothing. Usage: benchmarks/bump.py [RUNS]
"""
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def index_parse(runs: int) -> None:
    import yaml

    from deployer.adapters.registry import parse_index
    from tests.fakes.chart_repo import synthetic_index

    text = synthetic_index()
    entries = text.count("\n  - ")
    ours = median_seconds(lambda: parse_index(text, "binderhub"), runs)
    c_full = median_seconds(lambda: yaml.load(text, Loader=yaml.CSafeLoader), runs)
    pure = median_seconds(lambda: yaml.load(text, Loader=yaml.SafeLoader), max(1, runs // 3))
    print(f"index: {len(text) / 1e6:.2f} MB, {entries} entries")
    print(f"  deployer parse_index(binderhub) : {ours:.3f} s (goal <= 0.600 s)")
    print(f"  PyYAML C loader, whole index    : {c_full:.3f} s ({c_full / ours:.1f}x ours)")
    print(f"  PyYAML pure loader, whole index : {pure:.3f} s ({pure / ours:.1f}x ours)")


def no_change_requests() -> None:
    from deployer.adapters.github import GitHub
    from deployer.adapters.registry import ChartVersion
    from deployer.console import Console
    from deployer.model import dependencies
    from deployer.model.workspace import Workspace
    from deployer.stages import bump
    from tests.fakes.github import GitHubDouble

    class Releases:
        """Every dependency's current version is the newest."""

        def __init__(self, root):
            self.now = {d.source: dependencies.current(root, d).version
                        for d in dependencies.load(root).items.values()}

        def chart_versions(self, repository, chart):
            return [ChartVersion(self.now[repository])]

        def tags(self, reference):
            return [self.now[reference]]

    tmp = Path(tempfile.mkdtemp(prefix="bench-bump-"))
    try:
        for part in ("config", "mybinder"):
            shutil.copytree(ROOT / part, tmp / part)
        with GitHubDouble() as gh:
            gh.add_repo("example/federation")
            parent = gh.seed("example/federation", {
                rel: (tmp / rel).read_text() for rel in ("mybinder/Chart.yaml",
                                                         "config/common.yaml")})
            ws = Workspace(root=tmp, env={}, console=Console())
            settings = bump.BumpSettings(repository="example/federation", validate=False)
            with GitHub(gh.token, api_url=gh.url, request_interval=0) as client:
                outcomes = bump.run(ws, settings, registry=Releases(tmp), github=client,
                                    parent=parent)
            counted = gh.counted()
        print(f"no-change run: {len(outcomes)} dependencies checked, "
              f"{len(counted)} GitHub requests (goal <= 2): "
              + ", ".join(f"{m} {p}" for m, p in counted))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    index_parse(runs)
    no_change_requests()


if __name__ == "__main__":
    main()
