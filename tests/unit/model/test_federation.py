import re

import pytest

from deployer.model import federation
from deployer.errors import ConfigError


def test_example_federation_has_every_provider_and_role(repo):
    fed = federation.load(repo)
    providers = {m.cluster.provider for m in fed.members.values()}
    assert providers == {"gke", "kubeconfig", "eks"}
    assert [m.name for m in fed.members.values() if m.role == "staging"] == ["staging"]
    bare = [m for m in fed.members.values() if m.cluster.provider == "kubeconfig"]
    assert len(bare) >= 2
    for m in bare:
        assert (repo / m.cluster.kubeconfig).is_file(), m.cluster.kubeconfig
    gke = fed.member("gke")
    assert (gke.active, gke.weight, gke.domains.federation) == (True, 60, "example-binder.org")
    assert not fed.member("staging").in_federation
    assert fed.member("uni-lab").active is False


def test_select_by_name_role_and_all(repo):
    fed = federation.load(repo)
    assert [m.name for m in fed.select(["staging"])] == ["staging"]
    assert {m.name for m in fed.select(["production"])} == {"gke", "aws", "hetzner-fsn", "uni-lab"}
    assert [m.name for m in fed.select(["gke,aws"])] == ["gke", "aws"]
    assert len(fed.select(all_members=True)) == 5
    with pytest.raises(ConfigError, match="no member given"):
        fed.select([])


def test_unknown_member_lists_the_known_ones(repo):
    with pytest.raises(ConfigError) as info:
        federation.load(repo).member("gkee")
    assert "unknown member 'gkee'" in str(info.value)
    assert "staging, gke, aws" in str(info.value)


def _break(repo, old, new, count=1):
    path = repo / "config/federation.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))
    return text[:text.index(old)].count("\n") + 1  # line of the change


@pytest.mark.parametrize("old,new,key,message", [
    ("weight: 60", "weight: sixty", "members.gke.federation.weight",
     "expected integer, got a string 'sixty'"),
    ("role: production", "role: prod", "members.gke.role",
     "expected one of: staging, production; got 'prod'"),
    ("      zone: us-central1-a", "      zonee: us-central1-a", "members.staging.cluster.zonee",
     "unknown key (expected one of: credentials, name, project, provider, zone)"),
    ("provider: eks", "provider: azure", "members.aws.cluster.provider",
     "expected one of: gke, kubeconfig, eks"),
    ('kubernetes_version: "1.34"', "kubernetes_version: 1.34",
     "members.staging.kubernetes_version", "expected string"),
    ("  aws:\n", "  AWS:\n", "members.AWS", "invalid name 'AWS'"),
    ("    smoke:\n", "    smoky:\n", "members.staging.smoky", "unknown key"),
])
def test_schema_errors_name_file_line_and_key(repo, old, new, key, message):
    line = _break(repo, old, new)
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    err = info.value
    assert err.file == "config/federation.yaml"
    assert err.key == key
    assert message in err.message
    assert err.line == line


def test_missing_required_key_points_at_its_parent(repo):
    _break(repo, "      hub: hub.aws.example-binder.org\n", "")
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    assert info.value.key == "members.aws.domains"
    assert "missing required key 'hub'" in info.value.message
    text = (repo / "config/federation.yaml").read_text().splitlines()
    assert text[info.value.line - 1].strip() == "domains:"


def test_several_problems_report_the_first_and_list_the_rest(repo):
    _break(repo, "role: production", "role: prod", count=2)
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    second = [i for i, line in enumerate((repo / "config/federation.yaml").read_text()
                                         .splitlines(), 1) if "role: prod" in line][1]
    assert re.search(r"\(and 1 more: config/federation\.yaml:%d: members\.aws\.role: expected "
                     r"one of: staging, production; got 'prod'\)$" % second, info.value.message)


def test_a_version_yaml_reads_as_a_number_says_to_quote_it(repo):
    _break(repo, 'kubernetes_version: "1.34"', "kubernetes_version: 1.30")
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    assert "expected string, got a number 1.3" in str(info.value)
    assert info.value.hint == "quote it: YAML reads 1.30 as the number 1.3"


def test_a_release_name_helm_would_refuse_is_refused_when_loading(repo):
    _break(repo, "      name: aws\n      namespace: aws\n",
           f"      name: {'a' * 54}\n      namespace: aws\n")
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    assert info.value.key == "members.aws.release.name"
    assert "expected a helm release name: a lowercase DNS label of at most 53 characters" \
        in info.value.message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found") as info:
        federation.load(tmp_path)
    assert info.value.file == "config/federation.yaml"


def test_prerequisites_are_typed_and_name_only_members(repo):
    fed = federation.load(repo)
    cert_manager = fed.prerequisites["cert-manager"]
    assert (cert_manager.chart, cert_manager.release, cert_manager.namespace) == (
        "cert-manager", "cert-manager", "cert-manager")
    assert [p.name for p in fed.prerequisites_of(fed.member("uni-lab"))] == ["cert-manager"]
    assert fed.prerequisites_of(fed.member("staging")) == []
    path = repo / "config/federation.yaml"
    path.write_text(path.read_text().replace("members: [hetzner-fsn, uni-lab]",
                                             "members: [hetzner-fsn, uni-labs]"))
    with pytest.raises(ConfigError) as err:
        federation.load(repo)
    assert str(err.value).startswith("config/federation.yaml:")
    assert "prerequisites.cert-manager.members[1]: unknown member 'uni-labs'" in str(err.value)
    # reported with the other problems of the data, not instead of them
    text = path.read_text()
    path.write_text(text.replace("  aws:\n", "  common:\n", 1))
    with pytest.raises(ConfigError) as err:
        federation.load(repo)
    assert "member name 'common' is reserved" in str(err.value)
    assert "unknown member 'uni-labs'" in str(err.value)
    path.write_text(text)
    path.write_text(path.read_text().replace("    version: v1.19.6\n", "    versoin: v1\n"))
    with pytest.raises(ConfigError) as err:
        federation.load(repo)
    assert "prerequisites.cert-manager.versoin: unknown key" in str(err.value)


def test_an_empty_file_is_called_empty(repo):
    (repo / "config/federation.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    assert str(info.value) == ("config/federation.yaml:1: (top level): the file is empty "
                               "(expected object of settings)")
