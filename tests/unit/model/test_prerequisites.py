"""A prerequisite release's values: config/<name>/common.yaml, then config/<name>/<member>.yaml."""
from __future__ import annotations

import pytest

from deployer.errors import ConfigError
from deployer.model import federation
from deployer.model.prerequisites import member_values


def test_layers_merge_as_helm_merges_and_missing_ones_are_skipped(repo):
    fed = federation.load(repo)
    prereq, member = fed.prerequisites["cert-manager"], fed.member("uni-lab")
    base = member_values(repo, prereq, member)
    assert base.files == ("config/cert-manager/common.yaml",)
    assert base.values["crds"] == {"enabled": True, "keep": True}
    (repo / "config/cert-manager/uni-lab.yaml").write_text(
        "crds:\n  keep: false\nreplicaCount: 2\n")
    layered = member_values(repo, prereq, member)
    assert layered.files == ("config/cert-manager/common.yaml",
                             "config/cert-manager/uni-lab.yaml")
    assert layered.values["crds"] == {"enabled": True, "keep": False}
    assert layered.values["replicaCount"] == 2
    assert "replicaCount: 2" in layered.values_yaml
    # another member's layer is not this member's
    assert member_values(repo, prereq, fed.member("hetzner-fsn")).values == base.values


def test_a_layer_that_is_not_a_map_names_its_file(repo):
    fed = federation.load(repo)
    (repo / "config/cert-manager/uni-lab.yaml").write_text("- crds\n")
    with pytest.raises(ConfigError) as err:
        member_values(repo, fed.prerequisites["cert-manager"], fed.member("uni-lab"))
    assert str(err.value).startswith("config/cert-manager/uni-lab.yaml:1:")
    assert "expected a map of Helm values" in str(err.value)
