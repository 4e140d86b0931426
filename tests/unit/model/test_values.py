import pytest

from deployer.model import values
from deployer.errors import ConfigError, SecretsError
from deployer.console import Console
from deployer.model.values import DELETED, lookup, merge, prune_nulls
from deployer.stages.render import member_values as build

from tests.support import write_secrets


def test_maps_merge_lists_and_scalars_replace():
    base = {"a": {"x": 1, "y": [1, 2, 3]}, "s": "old", "keep": True}
    over = {"a": {"y": [9], "z": {"n": 1}}, "s": "new"}
    assert merge(base, over) == {"a": {"x": 1, "y": [9], "z": {"n": 1}}, "s": "new", "keep": True}
    assert base["a"]["y"] == [1, 2, 3], "merge must not modify its inputs"


def test_null_deletes_and_a_later_layer_can_set_it_again():
    merged = merge(merge({"a": {"x": 1, "y": 2}}, {"a": {"x": None}}), {})
    assert merged == {"a": {"x": None, "y": 2}}, "nulls are kept so helm drops chart defaults too"
    assert prune_nulls(merged) == {"a": {"y": 2}}
    assert prune_nulls(merge(merged, {"a": {"x": 5}})) == {"a": {"x": 5, "y": 2}}
    assert prune_nulls(merge({"a": {"deep": {"k": 1}}}, {"a": None})) == {}


def test_scalar_replaces_map_and_map_replaces_scalar():
    assert merge({"a": {"x": 1}}, {"a": "flat"}) == {"a": "flat"}
    assert merge({"a": "flat"}, {"a": {"x": 1}}) == {"a": {"x": 1}}


def test_layer_order_common_member_secrets_generated(workspace, repo, env):
    (repo / "config/common.yaml").write_text(
        "grafana:\n  adminUser: from-common\n  plugins: [a, b]\n")
    (repo / "config/gke.yaml").write_text("grafana:\n  plugins: [c]\n  adminUser: from-member\n")
    write_secrets(repo, "secrets/gke.yaml", "grafana:\n  adminUser: from-secrets\n", env)
    mv = build(workspace, workspace.federation.member("gke"))
    assert mv.final["grafana"]["adminUser"] == "from-secrets"
    assert mv.final["grafana"]["plugins"] == ["c"]
    # generated values come last: the hub URL follows config/federation.yaml
    assert mv.final["binderhub"]["config"]["BinderHub"]["hub_url"] == \
        "https://hub.gke.example-binder.org"
    assert [layer.name for layer in mv.layers][-4:] == ["common", "member", "secrets", "generated"]


def test_chart_defaults_are_the_bottom_layer_and_null_deletes_them(workspace, repo):
    chart = repo / "mybinder"
    chart.mkdir(exist_ok=True)
    (chart / "values.yaml").write_text("static:\n  replicas: 2\n  extra: {a: 1}\n")
    (repo / "config/gke.yaml").write_text("static:\n  extra: null\n")
    mv = build(workspace, workspace.federation.member("gke"))
    assert mv.layers[0].name == "chart defaults"
    assert mv.final["static"] == {"replicas": 2, "host": "static.example-binder.org",
                                  "tls": {"secretName": "static-tls"}}
    assert mv.user["static"]["extra"] is None, "the null must reach helm to drop the default"
    final, settings = mv.explain(("static", "extra"))
    assert final is DELETED
    assert [(s.layer.name, s.where) for s in settings] == [
        ("chart defaults", "mybinder/values.yaml:3"), ("member", "config/gke.yaml:2")]


def test_generated_redirector_hosts_equal_the_federation_data(workspace):
    fed = workspace.federation
    mv = build(workspace, fed.member("gke"))
    hosts = mv.final["federationRedirect"]["hosts"]
    expected = {m.name: m for m in fed.members.values() if m.in_federation}
    assert set(hosts) == set(expected)
    for name, host in hosts.items():
        member = expected[name]
        assert host["url"] == f"https://{member.domains.binder}"
        assert host["weight"] == (member.weight if member.active else 0)
        assert host["health"] == f"https://{member.domains.binder}/health"
    assert mv.final["federationRedirect"]["enabled"] is True
    assert build(workspace, fed.member("aws")).final["federationRedirect"]["enabled"] is False


def test_explain_traces_every_layer_to_file_and_line(workspace, repo):
    common = (repo / "config/common.yaml").read_text().splitlines()
    limit_line = next(i for i, line in enumerate(common, 1) if "limit: 2G" in line)
    (repo / "config/gke.yaml").write_text(
        "# bigger servers on gke\nbinderhub:\n  jupyterhub:\n    singleuser:\n"
        "      memory:\n        limit: 3G\n")
    mv = build(workspace, workspace.federation.member("gke"))
    final, settings = mv.explain(("binderhub", "jupyterhub", "singleuser", "memory", "limit"))
    assert final == "3G"
    assert [(s.layer.name, s.where, s.value) for s in settings] == [
        ("common", f"config/common.yaml:{limit_line}", "2G"),
        ("member", "config/gke.yaml:6", "3G")]
    _, generated = mv.explain(("federationRedirect", "hosts", "aws", "weight"))
    fed_lines = (repo / "config/federation.yaml").read_text().splitlines()
    where = generated[0].where
    assert where.startswith("config/federation.yaml:")
    assert fed_lines[int(where.rsplit(":", 1)[1]) - 1].strip() == "weight: 20"


def test_missing_member_values_file(workspace, repo):
    (repo / "config/aws.yaml").unlink()
    with pytest.raises(ConfigError) as info:
        build(workspace, workspace.federation.member("aws"))
    assert info.value.file == "config/aws.yaml"
    assert "not found" in info.value.message


def test_missing_secrets_file(workspace, repo):
    (repo / "secrets/aws.yaml").unlink()
    with pytest.raises(SecretsError) as info:
        build(workspace, workspace.federation.member("aws"))
    assert info.value.file == "secrets/aws.yaml"
    assert "secrets encrypt" in info.value.hint


def test_values_file_that_is_not_a_map(workspace, repo):
    (repo / "config/aws.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a map of Helm values"):
        build(workspace, workspace.federation.member("aws"))


def test_lookup_and_describe():
    data = {"a": {"b": [10, {"c": None}]}}
    assert lookup(data, ("a", "b", 0)) == 10
    assert lookup(data, ("a", "x")) is DELETED
    assert values.describe(DELETED, False) == "(not set)"
    assert values.describe("s3cret", True) == "***"
    assert values.describe(True, False) == "true"


def test_values_for_helm_keep_nulls_only_over_chart_defaults(workspace, repo):
    (repo / "config/common.yaml").write_text("grafana:\n  plugins: [a]\n  keep: 1\n")
    (repo / "config/gke.yaml").write_text("grafana:\n  plugins: null\n  persistence: null\n")
    mv = build(workspace, workspace.federation.member("gke"))
    defaults = {"grafana": {"persistence": {"enabled": True}}}
    sent = mv.for_helm(defaults)["grafana"]
    # over a key only common.yaml set: deleted here, never sent to helm as null
    assert "plugins" not in sent and sent["keep"] == 1
    # over a chart default: sent as null so that helm drops the default
    assert "persistence" in sent and sent["persistence"] is None
    assert "plugins" not in mv.final["grafana"] and "persistence" not in mv.final["grafana"]


def test_chart_defaults_include_dependencies(workspace, chart_mirror, tmp_path):
    from deployer.stages import chart
    from deployer.adapters import helm

    env = {**workspace.env, "DEPLOYER_CACHE_DIR": str(tmp_path / "cache")}
    runner = helm.Helm(env, console=Console(), echo=False)
    prepared = chart.prepare(workspace, runner, chart_mirror)
    defaults = prepared.defaults()
    assert defaults["static"]["replicas"] == 2                       # mybinder/values.yaml
    assert defaults["binderhub"]["service"]["type"] == "ClusterIP"   # ours over binderhub's
    assert "cull" in defaults["binderhub"]["jupyterhub"]             # binderhub's own defaults
    assert defaults["binderhub"]["jupyterhub"]["hub"]["baseUrl"] == "/"  # jupyterhub subchart
    again = chart.prepare(workspace, runner, chart_mirror)
    assert again.path == prepared.path, "prepared charts are reused by content hash"
