import pytest

from deployer.model import federation
from deployer.model import policy
from deployer.stages.render import member_values

from tests.support import write_secrets  # noqa: F401  (fixture module import keeps paths uniform)


@pytest.mark.parametrize("text,expected", [
    ("1G", 2**30), ("450M", 450 * 2**20), ("2Gi", 2 * 2**30), (2147483648, 2147483648.0),
    ("0.5G", 0.5 * 2**30),
])
def test_byte_sizes_as_kubespawner_reads_them(text, expected):
    assert policy.parse_bytes(text) == expected


def test_unparseable_byte_size():
    with pytest.raises(ValueError, match="not a byte size"):
        policy.parse_bytes("lots")


def test_example_federation_keeps_every_invariant(workspace):
    assert policy.check_federation(workspace.federation) == {}
    for member in workspace.federation.members.values():
        assert policy.check_member(member_values(workspace, member)) == []


def test_guarantee_above_limit_names_both_files(workspace, repo):
    (repo / "config/aws.yaml").write_text(
        "binderhub:\n  jupyterhub:\n    singleuser:\n      memory:\n        guarantee: 3G\n")
    found = policy.check_member(member_values(workspace, workspace.federation.member("aws")))
    assert len(found) == 1
    text = str(found[0])
    assert text.startswith("config/aws.yaml:5: binderhub.jupyterhub.singleuser.memory.guarantee")
    assert "guarantee 3G is more than the limit 2G" in text
    assert "limit set at config/common.yaml:" in text


def test_cpu_guarantee_above_limit(workspace, repo):
    (repo / "config/aws.yaml").write_text(
        "binderhub:\n  jupyterhub:\n    singleuser:\n      cpu:\n        guarantee: 2\n")
    found = policy.check_member(member_values(workspace, workspace.federation.member("aws")))
    assert [v.key for v in found] == ["binderhub.jupyterhub.singleuser.cpu.guarantee"]


def test_a_value_that_is_not_a_number_is_blamed_where_it_is_set(workspace, repo):
    (repo / "config/aws.yaml").write_text(
        "binderhub:\n  jupyterhub:\n    singleuser:\n      cpu:\n        limit: two\n")
    found = policy.check_member(member_values(workspace, workspace.federation.member("aws")))
    assert [(v.where, v.key) for v in found] == [
        ("config/aws.yaml:5", "binderhub.jupyterhub.singleuser.cpu.limit")]
    assert "'two' is not a number of CPUs" in str(found[0])


def _edit_federation(repo, old, new):
    path = repo / "config/federation.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_active_member_with_zero_weight(repo):
    _edit_federation(repo, "weight: 20", "weight: 0")
    found = policy.check_federation(federation.load(repo))
    assert list(found) == ["aws"]
    assert "needs a weight > 0" in str(found["aws"][0])
    assert str(found["aws"][0]).startswith("config/federation.yaml:")


def test_inactive_member_may_have_zero_weight(repo):
    assert "uni-lab" not in policy.check_federation(federation.load(repo))


def test_duplicate_domains_across_members(repo):
    _edit_federation(repo, "binder: aws.example-binder.org", "binder: gke.example-binder.org")
    found = policy.check_federation(federation.load(repo))
    message = str(found["aws"][0])
    assert "members.aws.domains.binder" in message
    assert "gke.example-binder.org is also gke's binder domain" in message
    # both members' deploys would serve it: each fails, naming the other
    assert "members.gke.domains.binder" in str(found["gke"][0])
    assert "gke.example-binder.org is also aws's binder domain" in str(found["gke"][0])


def test_no_member_takes_traffic(repo):
    path = repo / "config/federation.yaml"
    text = path.read_text()
    for weight in ("60", "20", "15"):
        text = text.replace(f"weight: {weight}", "weight: 0\n      active: false")
    # no production redirector either (it would need an active prime first)
    text = text.replace("  prime: gke\n", "").replace("runs: [binderhub, redirector]",
                                                     "runs: [binderhub]")
    text = text.replace("      federation: example-binder.org\n", "")
    path.write_text(text)
    found = policy.check_federation(federation.load(repo))
    assert any("serves nobody" in str(v) for vs in found.values() for v in vs)


def test_duplicate_alias_is_reported_at_its_own_line(repo):
    _edit_federation(repo, "      binder: aws.example-binder.org\n",
                     "      binder: aws.example-binder.org\n"
                     "      binder_aliases:\n        - gke.example-binder.org\n")
    found = policy.check_federation(federation.load(repo))
    line = next(i for i, text in enumerate((repo / "config/federation.yaml").read_text()
                                           .splitlines(), 1) if "- gke.example-binder.org" in text)
    assert str(found["aws"][0]).startswith(
        f"config/federation.yaml:{line}: members.aws.domains.binder_aliases[0]: "
        "gke.example-binder.org is also gke's binder domain")
