"""What members run, the redirector's prime, ban lists and generated keys a values file may
not override: each bad setting is one error naming file, line and key."""
from __future__ import annotations

import pytest

from deployer.errors import ConfigError
from deployer.model import federation
from deployer.model.values import generated_layer
from deployer.stages.render import member_values as build

FED = "config/federation.yaml"


def _edit(repo, old: str, new: str, count: int = 1) -> None:
    path = repo / FED
    text = path.read_text()
    assert text.count(old) >= count, old
    path.write_text(text.replace(old, new, count))


def _line(repo, text: str, path: str = FED) -> int:
    return next(i for i, line in enumerate((repo / path).read_text().splitlines(), 1)
                if text in line)


def _error(repo) -> str:
    with pytest.raises(ConfigError) as info:
        federation.load(repo)
    return str(info.value)


def test_the_example_names_its_prime_and_what_members_run(repo):
    fed = federation.load(repo)
    assert fed.prime == "gke"
    assert fed.member("gke").runs == ("binderhub", "redirector")
    assert fed.member("aws").runs == ("binderhub",)
    assert fed.member("staging").runs == ("binderhub", "redirector")   # from domains.federation


def test_prime_missing(repo):
    _edit(repo, "  prime: gke\n", "")
    assert _error(repo).startswith(f"{FED}:{_line(repo, 'name: example-binder') - 1}: federation: no prime "
                                   "member for the federation redirector (run by gke)")


def test_two_primes(repo):
    _edit(repo, "  prime: gke\n", "  prime: [gke, aws]\n")
    assert _error(repo) == (f"{FED}:{_line(repo, 'prime: [gke, aws]')}: federation.prime: "
                            "exactly one prime member, got 2 (gke, aws)")


def test_unknown_prime(repo):
    _edit(repo, "  prime: gke\n", "  prime: gce\n")
    assert "federation.prime: prime member 'gce' is not a member" in _error(repo)


def test_inactive_prime(repo):
    _edit(repo, "  prime: gke\n", "  prime: uni-lab\n")
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, 'prime: uni-lab')}: federation.prime: ")
    assert "prime member 'uni-lab' is not active" in message


def test_staging_prime(repo):
    _edit(repo, "  prime: gke\n", "  prime: staging\n")
    assert "prime member 'staging' is a staging member" in _error(repo)


def test_a_staging_member_in_the_federation_is_refused_when_it_loads(repo):
    # the redirector of every production member would send public users to staging
    _edit(repo, "      federation: federation.staging.example-binder.org\n",
          "      federation: federation.staging.example-binder.org\n"
          "    federation:\n      weight: 10\n")
    line = _line(repo, "weight: 10") - 1
    assert _error(repo).startswith(
        f"{FED}:{line}: members.staging.federation: staging member 'staging' takes no "
        "federation traffic: the redirector would send public users to it")


def test_two_members_deploying_one_release_on_one_cluster_are_refused(repo):
    # hetzner-fsn pointed at uni-lab's kubeconfig and context, release and namespace
    _edit(repo, "      kubeconfig: secrets/kubeconfigs/hetzner-fsn.yaml\n",
          "      kubeconfig: secrets/kubeconfigs/uni-lab.yaml\n      context: binder\n")
    _edit(repo, "      name: hetzner-fsn\n      namespace: hetzner-fsn\n",
          "      name: uni-lab\n      namespace: binder\n")
    lines = (repo / FED).read_text().splitlines()
    line = [i for i, text in enumerate(lines, 1) if text == "  uni-lab:"][0]
    line = next(i for i, text in enumerate(lines, 1) if i > line and text == "    release:")
    assert _error(repo).startswith(
        f"{FED}:{line}: members.uni-lab.release: member 'uni-lab' deploys release 'uni-lab' "
        "into namespace 'binder' of the same cluster as member 'hetzner-fsn': one namespace "
        "holds one member")


def test_two_members_in_one_namespace_of_one_cluster_are_refused_whatever_their_releases(repo):
    # the chart's objects have fixed names; the lock and the verified record are per namespace
    _edit(repo, "      kubeconfig: secrets/kubeconfigs/hetzner-fsn.yaml\n",
          "      kubeconfig: secrets/kubeconfigs/uni-lab.yaml\n      context: binder\n")
    _edit(repo, "      name: hetzner-fsn\n      namespace: hetzner-fsn\n",
          "      name: hetzner-fsn\n      namespace: binder\n")
    assert "members.uni-lab.release: member 'uni-lab' deploys its release 'uni-lab' (and " \
        "hetzner-fsn's 'hetzner-fsn') into namespace 'binder' of the same cluster as member " \
        "'hetzner-fsn'" in _error(repo)
    _edit(repo, "      name: hetzner-fsn\n      namespace: binder\n",
          "      name: hetzner-fsn\n      namespace: fsn\n")
    federation.load(repo)                       # another namespace of that cluster: fine


def test_one_release_name_on_two_clusters_is_fine(repo):
    _edit(repo, "      name: hetzner-fsn\n      namespace: hetzner-fsn\n",
          "      name: uni-lab\n      namespace: binder\n")          # another kubeconfig
    federation.load(repo)


def test_prime_that_runs_no_binderhub(repo):
    _edit(repo, "  prime: gke\n", "  prime: apex\n")
    _edit(repo, "members:\n", "members:\n" + APEX)
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, 'prime: apex')}: federation.prime: ")
    assert "prime member 'apex' runs no BinderHub" in message


APEX = """  apex:
    role: production
    runs: [redirector]
    cluster: {provider: gke, project: example-apex, zone: us-central1-a, name: apex}
    kubernetes_version: "1.34"
    release: {name: apex, namespace: apex}
    domains:
      federation: apex.example-binder.org
"""


def test_redirector_only_member_generates_no_binderhub(repo, workspace):
    _edit(repo, "members:\n", "members:\n" + APEX)
    (repo / "config/apex.yaml").write_text("{}\n")
    fed = federation.load(repo)
    apex = fed.member("apex")
    assert apex.url == "https://apex.example-binder.org" and not apex.runs_binderhub
    data = generated_layer(fed, apex).data
    assert data["binderhubEnabled"] is False and "binderhub" not in data
    assert data["static"]["enabled"] is False
    hosts = data["federationRedirect"]["hosts"]
    assert data["federationRedirect"]["enabled"] is True and "apex" not in hosts
    assert [n for n, h in hosts.items() if h.get("prime")] == ["gke"]


def test_redirector_only_member_with_binder_domain_or_weight(repo):
    _edit(repo, "members:\n", "members:\n" + APEX + "      binder: b.example-binder.org\n")
    assert "members.apex.domains.binder: member 'apex' runs no BinderHub (runs: redirector): " \
           "remove domains.binder" in _error(repo)
    _edit(repo, "      binder: b.example-binder.org\n", "    federation: {weight: 5}\n")
    assert "members.apex.federation: member 'apex' runs no BinderHub" in _error(repo)


def test_redirector_only_member_without_its_domain(repo):
    _edit(repo, "members:\n", "members:\n" + APEX.replace(
        "      federation: apex.example-binder.org\n", "      static: s.example-binder.org\n"))
    assert "members.apex.domains: missing required key 'federation'" in _error(repo)


def test_a_binderhub_member_still_needs_its_domains(repo):
    _edit(repo, "      binder: aws.example-binder.org\n", "")
    assert "members.aws.domains: missing required key 'binder'" in _error(repo)


@pytest.mark.parametrize("cidr,expected", [
    ("10.0.0.300/8", "'10.0.0.300/8' is not a network"),
    ("10.0.0.1/8", "has host bits set"),
    ("2001:db8::/32", "is an IPv6 network"),
])
def test_bad_cidr(repo, cidr, expected):
    _edit(repo, "  banned_cidrs: []\n", f"  banned_cidrs:\n    - {cidr}\n")
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, '    - ' + cidr)}: abuse.banned_cidrs[0]: ")
    assert expected in message


def test_bad_cidr_in_a_members_additions(repo):
    _edit(repo, "198.51.100.0/24", "198.51.100.0/33")
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, '198.51.100.0/33')}: "
                              "members.hetzner-fsn.abuse.banned_cidrs[0]: '198.51.100.0/33'")


def test_bad_spec_regex(repo):
    _edit(repo, "      - ^example-abuser/.*\n", "      - ^(?i)example-abuser/.*\n")
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, '(?i)example')}: "
                              "abuse.banned_specs.GitHubRepoProvider[0]: ")
    assert "not a regular expression: global flags not at the start" in message


def test_a_provider_name_binderhub_would_not_read_is_refused_and_its_own_are_taken(repo):
    _edit(repo, "    GitHubRepoProvider:\n", "    GithubRepoProvider:\n")
    assert _error(repo).startswith(
        f"{FED}:{_line(repo, 'GithubRepoProvider:')}: abuse.banned_specs.GithubRepoProvider: "
        "GithubRepoProvider is not a BinderHub repo provider: did you mean GitHubRepoProvider?")
    _edit(repo, "    GithubRepoProvider:\n",
          "    ZenodoProvider: ['^10.5281/zenodo.1$']\n    CKANProvider: [x]\n"
          "    MyOwnRepoProvider: [z1]\n    GitHubRepoProvider:\n")
    assert set(federation.load(repo).abuse["banned_specs"]) == {
        "ZenodoProvider", "CKANProvider", "MyOwnRepoProvider", "GitHubRepoProvider"}


def test_several_problems_with_one_hint_say_it_once(repo):
    _edit(repo, "  banned_cidrs: []\n", "  banned_cidrs:\n    - 10.0.0.300/8\n    - x\n")
    message = _error(repo)
    assert "(and 1 more: " in message
    assert message.count("(hint: expected an IPv4 network like 192.0.2.0/24)") == 1, message


def test_a_member_file_setting_a_generated_key_is_an_error_naming_both(repo, workspace):
    (repo / "config/aws.yaml").write_text(
        (repo / "config/aws.yaml").read_text()
        + "  ingress:\n    hosts: [typed.example-binder.org]\n")
    with pytest.raises(ConfigError) as info:
        build(workspace, workspace.federation.member("aws"))
    member_line = _line(repo, "hosts: [typed", "config/aws.yaml")
    fed_line = _line(repo, "binder: aws.example-binder.org")
    assert str(info.value).startswith(
        f"config/aws.yaml:{member_line}: binderhub.ingress.hosts: also generated from "
        f"federation data at {FED}:{fed_line}; a values file may not override it")


def test_common_file_setting_a_tls_secret_name_is_an_error(repo, workspace):
    (repo / "config/common.yaml").write_text(
        (repo / "config/common.yaml").read_text() + "static:\n  tls:\n    secretName: x\n")
    with pytest.raises(ConfigError) as info:
        build(workspace, workspace.federation.member("aws"))
    assert "config/common.yaml:" in str(info.value) and "static.tls.secretName" in str(info.value)


def test_a_key_inside_the_generated_redirector_hosts_is_an_error(repo, workspace):
    (repo / "config/gke.yaml").write_text(
        "federationRedirect:\n  hosts:\n    extra:\n      url: https://x.example.org\n")
    with pytest.raises(ConfigError) as info:
        build(workspace, workspace.federation.member("gke"))
    assert str(info.value).startswith("config/gke.yaml:4: federationRedirect.hosts.extra.url: "
                                      "also generated from federation data at")
    assert "(federationRedirect.hosts)" in str(info.value)


def test_tls_names_and_aliases_are_federation_data(repo, workspace):
    _edit(repo, "      binder: aws.example-binder.org\n",
          "      binder: aws.example-binder.org\n      binder_aliases: [mybinder.aws.example.org]\n")
    _edit(repo, "    federation:\n      weight: 20\n",
          "    tls:\n      binder: kubelego-tls-binder\n    federation:\n      weight: 20\n")
    mv = build(workspace, workspace.federation.member("aws"))
    ingress = mv.final["binderhub"]["ingress"]
    assert ingress["hosts"] == ["aws.example-binder.org", "mybinder.aws.example.org"]
    assert ingress["tls"] == [{"secretName": "kubelego-tls-binder", "hosts": ingress["hosts"]}]
    assert mv.final["binderhub"]["jupyterhub"]["ingress"]["tls"][0]["secretName"] == "hub-tls"
    _, settings = mv.explain(("binderhub", "ingress", "tls"))
    assert settings[-1].where == f"{FED}:{_line(repo, 'binder: kubelego-tls-binder')}"


def test_ban_lists_merge_structurally(workspace):
    fed = workspace.federation
    defaults = {"networkPolicy": {"egress": {"bannedCIDRs": ["169.254.169.254/32"]}}}
    fsn = generated_layer(fed, fed.member("hetzner-fsn"), defaults).data
    aws = generated_layer(fed, fed.member("aws"), defaults).data
    assert fsn["networkPolicy"]["egress"]["bannedCIDRs"] == ["169.254.169.254/32",
                                                             "198.51.100.0/24"]
    assert aws["networkPolicy"]["egress"]["bannedCIDRs"] == ["169.254.169.254/32"]
    assert aws["binderhub"]["config"]["GitHubRepoProvider"]["banned_specs"] == \
        ["^example-abuser/.*"]


def test_a_staging_member_must_run_binderhub(repo):
    _edit(repo, "  staging:\n    role: staging\n", "  staging:\n    role: staging\n    runs: [redirector]\n")
    _edit(repo, "      binder: staging.example-binder.org\n", "")
    _edit(repo, "      hub: hub.staging.example-binder.org\n", "")
    assert "members.staging.runs: staging member 'staging' must run BinderHub" in _error(repo)


def test_two_domains_sharing_a_tls_secret(repo):
    _edit(repo, "    federation:\n      weight: 20\n",
          "    tls:\n      hub: shared-tls\n      binder: shared-tls\n    federation:\n      weight: 20\n")
    assert _error(repo).startswith(
        f"{FED}:{_line(repo, 'hub: shared-tls')}: members.aws.tls.hub: 'shared-tls' is the "
        "TLS secret of both binder and hub: cert-manager issues one certificate per secret")


def test_a_custom_tls_name_colliding_with_a_default_one(repo):
    _edit(repo, "    federation:\n      weight: 20\n",
          "    tls:\n      static: binder-tls\n    federation:\n      weight: 20\n")
    assert _error(repo).startswith(
        f"{FED}:{_line(repo, 'static: binder-tls')}: members.aws.tls.static: 'binder-tls' is "
        "the TLS secret of both binder and static")


def test_tls_name_for_a_certificate_the_member_does_not_serve(repo):
    _edit(repo, "members:\n", "members:\n" + APEX + "    tls:\n      binder: apex-binder-tls\n")
    (repo / "config/apex.yaml").write_text("{}\n")
    assert _error(repo).startswith(
        f"{FED}:{_line(repo, 'binder: apex-binder-tls')}: members.apex.tls.binder: member 'apex' "
        "serves no binder certificate (it runs no BinderHub): remove tls.binder")
    _edit(repo, "      binder: apex-binder-tls\n", "      federation: apex-tls\n")
    fed = federation.load(repo)
    assert fed.member("apex").tls_secrets() == {"federation": "apex-tls"}


@pytest.mark.parametrize("name", ["common", "dependencies", "federation", "cert-manager"])
def test_reserved_member_names(repo, name):
    _edit(repo, "members:\n", "members:\n" + APEX.replace("  apex:\n", f"  {name}:\n"))
    message = _error(repo)
    lines = (repo / FED).read_text().splitlines()
    line = len(lines) - lines[::-1].index(f"  {name}:")    # the member's (the last such line)
    assert message.startswith(f"{FED}:{line}: ")
    assert f"members.{name}: member name {name!r} " in message


def test_every_data_problem_is_reported_at_once(repo):
    _edit(repo, "  banned_cidrs: []\n", "  banned_cidrs:\n    - 10.0.0.1/8\n")
    _edit(repo, "  prime: gke\n", "  prime: gce\n")
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, 'prime: gce')}: federation.prime: prime member "
                              "'gce' is not a member")
    assert message.count("\n") == 0
    assert (f" (and 1 more: {FED}:{_line(repo, '- 10.0.0.1/8')}: abuse.banned_cidrs[0]: "
            "'10.0.0.1/8' is not a network") in message


@pytest.mark.parametrize("runs,expected", [
    ("[]", "members.aws.runs: must not be empty"),
    ("[binderhub, binderhub]", "members.aws.runs: "),
    ("[redirector, redirector]", "members.aws.runs: "),
])
def test_a_bad_runs_list_is_the_error_shown(repo, runs, expected):
    # after domains: (the line order alone must not decide which error shows)
    _edit(repo, "    federation:\n      weight: 20\n", f"    runs: {runs}\n    federation:\n      weight: 20\n")
    message = _error(repo)
    assert message.startswith(f"{FED}:{_line(repo, 'runs: ' + runs)}: {expected}"), message
