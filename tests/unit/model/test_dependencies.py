"""config/dependencies.yaml and the structural, in-place version edit."""
from __future__ import annotations

import difflib
import shutil

import pytest

from deployer.errors import ConfigError
from deployer.model import dependencies as deps
from tests.support import ROOT


@pytest.fixture
def tree(tmp_path):
    for part in ("config", "mybinder"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def test_the_example_dependencies_load_and_point_at_real_versions(tree):
    found = deps.load(tree)
    assert set(found.items) >= {"binderhub", "traefik", "prometheus", "grafana", "repo2docker"}
    assert found.items["prometheus"].unit == found.items["grafana"].unit == "monitoring"
    assert deps.current(tree, found.items["binderhub"]).version == \
        "1.0.0-0.dev.git.3983.h383374de"
    image = deps.current(tree, found.items["repo2docker"])
    assert image.raw.startswith("quay.io/jupyterhub/repo2docker:") and ":" not in image.version
    assert [d.name for d in found.select(["monitoring"])] == ["prometheus", "grafana"]
    with pytest.raises(ConfigError, match="no such dependency or group.*known: binderhub"):
        found.select(["nope"])


@pytest.mark.parametrize("change,message", [
    ("kind: helm-chart", "expected one of: helm-chart, oci-chart, image, github-release"),
    ("source: jupyterhub.github.io/helm-chart", "expected a chart repository URL"),
    ("chart_dependency: binderhub\n    key: a.b", "exactly one of `chart_dependency`"),
    ("prereleases: yes-please", "expected boolean"),
    ("sauce: x", "unknown key"),
])
def test_bad_dependencies_are_one_line_with_file_and_line(tree, change, message):
    path = tree / "config" / "dependencies.yaml"
    text = path.read_text()
    marker = "  binderhub:\n"
    if change.startswith("kind"):
        text = text.replace("kind: helm-chart", "kind: helm-charts", 1)
    elif change.startswith("source"):
        text = text.replace("source: https://jupyterhub.github.io/helm-chart",
                            "source: jupyterhub.github.io/helm-chart", 1)
    elif change.startswith("chart_dependency"):
        text = text.replace("chart_dependency: binderhub", change, 1)
    elif change.startswith("prereleases"):
        text = text.replace("prereleases: true", "prereleases: yes-please", 1)
    else:
        text = text.replace(marker, marker + "    " + change + "\n", 1)
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        deps.load(tree)
    assert message in str(err.value)
    assert str(err.value).startswith("config/dependencies.yaml:")


def test_a_version_that_is_not_where_the_entry_says(tree):
    path = tree / "config" / "dependencies.yaml"
    path.write_text(path.read_text().replace("chart_dependency: traefik",
                                             "chart_dependency: traefic"))
    dep = deps.load(tree).items["traefik"]
    with pytest.raises(ConfigError) as err:
        deps.current(tree, dep)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t == "  traefik:")
    assert str(err.value).startswith(
        f"config/dependencies.yaml:{line}: dependencies.traefik.chart_dependency: "
        "mybinder/Chart.yaml has no dependency named 'traefic' (hint: the names in "
        "mybinder/Chart.yaml: binderhub, traefik")


def test_a_key_that_is_not_in_its_file_is_named_where_the_entry_is(tree):
    path = tree / "config" / "dependencies.yaml"
    path.write_text(path.read_text().replace("key: binderhub.config.KubernetesBuildExecutor."
                                             "build_image", "key: binderhub.config.nosuch"))
    name = next(n for n, d in deps.load(tree).items.items() if d.key == "binderhub.config.nosuch")
    with pytest.raises(ConfigError) as err:
        deps.current(tree, deps.load(tree).items[name])
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t == f"  {name}:")
    assert str(err.value).startswith(
        f"config/dependencies.yaml:{line}: dependencies.{name}.key: config/common.yaml has no "
        "key binderhub.config.nosuch")


def test_the_edit_changes_only_the_version_byte_for_byte(tree):
    found = deps.load(tree)
    chart = (tree / "mybinder" / "Chart.yaml").read_text()
    cur = deps.current(tree, found.items["traefik"])
    edited = deps.replace_scalar(chart, cur.path, "41.2.0", "mybinder/Chart.yaml")
    changed = [line for line in difflib.ndiff(chart.splitlines(), edited.splitlines())
               if line.startswith(("-", "+"))]
    assert changed == ["-     version: 41.1.1", "+     version: 41.2.0"]
    common = (tree / "config" / "common.yaml").read_text()
    cur = deps.current(tree, found.items["repo2docker"])
    edited = deps.replace_scalar(common, cur.path, deps.with_version(cur, "2025.10.0"), "c")
    assert edited == common.replace("repo2docker:2025.08.0", "repo2docker:2025.10.0")


@pytest.mark.parametrize("line,new,expected", [
    ("v: '1.2.3'  # pinned", "1.3.0", "v: '1.3.0'  # pinned"),
    ('v: "1.2.3"', "1.3.0", 'v: "1.3.0"'),
    ("v: 1.2.3 # comment", "1.3.0", "v: 1.3.0 # comment"),
    ("v: 1.2.3", "2025.10", 'v: "2025.10"'),      # plain 2025.10 would read as a float
    ("v: 1.2", "1.3", 'v: "1.3"'),
])
def test_quoting_is_kept_and_types_stay_strings(line, new, expected):
    text = f"# top\nother: [a, b]\n{line}\nafter: 1\n"
    assert deps.replace_scalar(text, ("v",), new, "f.yaml") == \
        f"# top\nother: [a, b]\n{expected}\nafter: 1\n"


def test_a_block_scalar_is_refused():
    with pytest.raises(ConfigError, match="not a one-line scalar"):
        deps.replace_scalar("v: |\n  1.2.3\n", ("v",), "1.3.0", "f.yaml")


def test_a_digest_pinned_image_is_an_error_not_a_silent_skip(tree):
    common = tree / "config" / "common.yaml"
    common.write_text(common.read_text().replace(
        "repo2docker:2025.08.0", "repo2docker:2025.08.0@sha256:" + "ab" * 32))
    dep = deps.load(tree).items["repo2docker"]
    with pytest.raises(ConfigError) as err:
        deps.current(tree, dep)
    text = str(err.value)
    assert text.startswith("config/common.yaml:")
    assert "binderhub.config.KubernetesBuildExecutor.build_image" in text
    assert "digest" in text and "cannot be bumped by tag" in text


def test_selecting_one_dependency_of_a_group_selects_the_group(tree):
    found = deps.load(tree)
    assert [d.name for d in found.select(["grafana"])] == ["prometheus", "grafana"]
    assert [d.name for d in found.select(["traefik", "prometheus"])] == [
        "traefik", "prometheus", "grafana"]
    assert [d.name for d in found.select(["binderhub"])] == ["binderhub"]


def test_the_cert_manager_prerequisite_is_tracked_where_federation_pins_it(tree):
    from deployer.model import versions

    found = deps.load(tree)
    cur = deps.current(tree, found.items["cert-manager"])
    assert (cur.version, cur.path) == ("v1.19.6", ("prerequisites", "cert-manager", "version"))
    # jetstack's versions carry a leading v: the newest is chosen by semver all the same
    assert versions.newest(["v1.19.5", "v1.19.6", "v1.20.3", "v1.21.1", "v1.22.0-alpha.0"],
                           cur.version).text == "v1.21.1"
    text = (tree / "config" / "federation.yaml").read_text()
    edited = deps.replace_scalar(text, cur.path, "v1.21.1", "config/federation.yaml")
    changed = [line for line in difflib.ndiff(text.splitlines(), edited.splitlines())
               if line.startswith(("-", "+"))]
    assert changed == ["-     version: v1.19.6", "+     version: v1.21.1"]
