"""`deploy.py validate` and `render` with the real helm against stand-in dependency charts
served from 127.0.0.1 (same names, versions and values schemas as the real ones)."""
import base64
import json

import pytest

from deployer.model import federation

from tests.support import helm_agnostic, needs_upstream, write_secrets

CANARY = "canary-d41d8c-rendered"


@pytest.fixture
def run(cli):
    return cli


def _table(stdout):
    rows = {}
    for line in stdout.splitlines()[2:]:
        parts = line.split()
        if len(parts) == 5:
            rows[parts[0]] = {"objects": int(parts[1]), "errors": int(parts[2]), "result": parts[4]}
    return rows


def test_every_example_member_validates(run):
    result = run("validate", "--all")
    assert result.returncode == 0, result.stderr
    rows = _table(result.stdout)
    assert set(rows) == {"staging", "gke", "aws", "hetzner-fsn", "uni-lab"}
    assert all(r["result"] == "ok" and r["objects"] > 10 for r in rows.values()), rows
    assert "ClusterIssuer/letsencrypt-prod" in result.stderr  # listed as not schema-checked


def test_render_writes_values_and_manifests(run, tmp_path):
    out = tmp_path / "out"
    result = run("render", "gke", "--output", out)
    assert result.returncode == 0, result.stderr
    text = (out / "gke" / "manifests.yaml").read_text()
    assert "kind: Deployment" in text and "name: federation-redirect" in text
    assert "hub.gke.example-binder.org" in text


def _objects(path):
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_redirector_config_equals_the_federation_data(run, repo, tmp_path):
    out = tmp_path / "out"
    assert run("render", "gke", "--output", out).returncode == 0
    config_map = next(o for o in _objects(out / "gke" / "manifests.yaml")
                      if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "federation-redirect")
    config = json.loads(config_map["data"]["config.json"])
    fed = federation.load(repo)
    expected = {m.name: m for m in fed.members.values() if m.in_federation}
    assert set(config["hosts"]) == set(expected)
    for name, host in config["hosts"].items():
        m = expected[name]
        assert host["url"] == m.url
        assert host["weight"] == (m.weight if m.active else 0)
        assert host["health"] == f"{m.url}/health" and host["versions"] == f"{m.url}/versions"
    assert [n for n, h in config["hosts"].items() if h.get("prime")] == ["gke"]
    ingress = next(o for o in _objects(out / "gke" / "manifests.yaml")
                   if o["kind"] == "Ingress" and o["metadata"]["name"] == "federation-redirect")
    assert ingress["spec"]["rules"][0]["host"] == fed.member("gke").domains.federation


def test_policy_limits_reach_the_rendered_hub(run, tmp_path):
    out = tmp_path / "out"
    assert run("render", "staging", "--output", out).returncode == 0
    import json as _json

    hub_config = next(o for o in _objects(out / "staging" / "manifests.yaml")
                      if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "hub")
    cull = _json.loads(hub_config["data"]["cull.json"])
    limits = _json.loads(hub_config["data"]["singleuser-resources.json"])
    assert (cull["timeout"], cull["maxAge"]) == (600, 21600)
    assert limits["memory"] == {"guarantee": "1G", "limit": "2G"}
    assert limits["cpu"]["limit"] == 1


def test_secrets_stay_redacted_in_rendered_manifests(run, repo, env, tmp_path):
    write_secrets(repo, "secrets/staging.yaml",
                  f"binderhub:\n  registry:\n    password: {CANARY}\n"
                  f"  jupyterhub:\n    proxy:\n      secretToken: {CANARY}-proxy\n"
                  f"grafana:\n  adminPassword: {CANARY}-grafana\n", env)
    out = tmp_path / "out"
    result = run("render", "staging", "--output", out)
    assert result.returncode == 0, result.stderr
    shown = run("render", "staging", "--manifests")
    texts = [result.stdout, result.stderr, shown.stdout, shown.stderr]
    texts += [p.read_text() for p in (out / "staging").iterdir()]
    for text in texts:
        for secret in (CANARY, f"{CANARY}-proxy", f"{CANARY}-grafana"):
            assert secret not in text
            assert base64.b64encode(secret.encode()).decode() not in text
    manifests = (out / "staging" / "manifests.yaml").read_text()
    assert "kind: Secret" in manifests and "'***'" in manifests
    revealed = run("render", "staging", "--manifests", "--show-secrets")
    assert base64.b64encode(f"{CANARY}-proxy".encode()).decode() in revealed.stdout


def _line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_chart_schema_violation_names_member_path_and_file(run, repo):
    (repo / "config/aws.yaml").write_text("static:\n  replicas: two\n")
    result = run("validate", "aws", "gke")
    assert result.returncode == 1
    assert "aws: values rejected by the chart schema: static.replicas:" in result.stderr
    assert "(set at config/aws.yaml:2)" in result.stderr
    rows = _table(result.stdout)
    assert rows["aws"]["result"] == "FAILED" and rows["gke"]["result"] == "ok"


def test_each_unknown_key_is_named_at_its_own_line(run, repo):
    (repo / "config/aws.yaml").write_text("bogusOne: 1\nbogusTwo: 2\nbogusMap:\n  x: 1\n")
    result = run("validate", "aws")
    assert result.returncode == 1
    for key, line in (("bogusOne", 1), ("bogusTwo", 2), ("bogusMap", 3)):
        assert (f"aws: values rejected by the chart schema: {key}: unknown key '{key}' "
                f"(set at config/aws.yaml:{line})") in result.stderr, result.stderr


@needs_upstream
def test_dependency_schema_violation_points_at_the_file(run, repo):
    path = repo / "config/hetzner-fsn.yaml"
    path.write_text(path.read_text() + "  imageBuilderTyp: dind\n")
    result = run("validate", "hetzner-fsn")
    assert result.returncode == 1
    assert "hetzner-fsn: values rejected by the chart schema: binderhub" in result.stderr
    assert "imageBuilderTyp" in result.stderr
    assert f"config/hetzner-fsn.yaml:{_line_of(path, 'imageBuilderTyp')}" in result.stderr


@needs_upstream
def test_subchart_schema_violation_in_jupyterhub_values(run, repo):
    (repo / "config/aws.yaml").write_text(
        "binderhub:\n  jupyterhub:\n    singleuser:\n      cpu:\n        limit: '1'\n")
    result = run("validate", "aws")
    assert result.returncode == 1
    assert "binderhub.jupyterhub.singleuser.cpu.limit" in result.stderr
    assert "config/aws.yaml:5" in result.stderr


def test_invalid_rendered_object_names_kind_name_and_path(run, repo):
    (repo / "config/gke.yaml").write_text(
        (repo / "config/gke.yaml").read_text()
        + "federationRedirect:\n  resources:\n    requestz:\n      cpu: 1m\n")
    result = run("validate", "gke")
    assert result.returncode == 1
    assert ("gke: Deployment/federation-redirect (mybinder/templates/federation-redirect/"
            "deployment.yaml): spec.template.spec.containers[0].resources: unknown field "
            "'requestz'") in result.stderr


def test_field_unknown_to_the_members_kubernetes_version(run, repo):
    # PodSpec.hostnameOverride exists from Kubernetes 1.34: fine on staging, not on gke (1.33)
    path = repo / "config/common.yaml"
    path.write_text(path.read_text().replace(
        "binderhub:\n", "binderhub:\n  extraPodSpec:\n    hostnameOverride: binder\n", 1))
    result = run("validate", "staging", "gke")
    assert result.returncode == 1
    rows = _table(result.stdout)
    assert rows["staging"]["result"] == "ok" and rows["gke"]["result"] == "FAILED"
    assert "unknown field 'hostnameOverride' (Kubernetes 1.33)" in result.stderr


def test_policy_violation_fails_validation(run, repo):
    (repo / "config/aws.yaml").write_text(
        "binderhub:\n  jupyterhub:\n    singleuser:\n      memory:\n        guarantee: 4G\n")
    result = run("validate", "aws")
    assert result.returncode == 1
    assert "aws: config/aws.yaml:5: binderhub.jupyterhub.singleuser.memory.guarantee: " \
           "guarantee 4G is more than the limit 2G" in result.stderr


def test_missing_dependency_version(run, repo):
    chart = repo / "mybinder/Chart.yaml"
    chart.write_text(chart.read_text().replace("version: 10.5.15", "version: 10.5.99"))
    result = run("validate", "staging")
    assert result.returncode == 1
    assert "mybinder/Chart.yaml" in result.stderr and "grafana" in result.stderr
    assert "10.5.99" in result.stderr


def test_one_failing_member_does_not_stop_the_others(run, repo):
    (repo / "config/uni-lab.yaml").write_text("static:\n  replicas: 0\n")
    result = run("validate", "--all")
    assert result.returncode == 1
    rows = _table(result.stdout)
    assert rows["uni-lab"]["result"] == "FAILED"
    assert [r["result"] for n, r in rows.items() if n != "uni-lab"] == ["ok"] * 4


def test_a_dependency_needing_a_newer_kubernetes_fails_that_member(run, repo):
    # helm checks only the top chart's kubeVersion; the bundled jupyterhub wants >=1.32
    fed = repo / "config" / "federation.yaml"
    text = fed.read_text()
    assert 'kubernetes_version: "1.33"' in text
    fed.write_text(text.replace('kubernetes_version: "1.33"', 'kubernetes_version: "1.31"', 1))
    result = run("validate", "gke", "staging")
    assert result.returncode == 1
    assert "gke: chart jupyterhub" in result.stderr and "needs Kubernetes >=1.32.0-0" in \
        result.stderr and "the member runs 1.31" in result.stderr
    rows = _table(result.stdout)
    assert rows["gke"]["result"] == "FAILED" and rows["staging"]["result"] == "ok"


def test_a_disabled_dependency_is_not_held_to_its_kube_version(run, repo):
    # uni-lab runs 1.33; with binderhub (and its jupyterhub, >=1.32) switched off and the
    # member on 1.31, only charts that are rendered count
    fed = repo / "config" / "federation.yaml"
    fed.write_text(fed.read_text().replace('kubernetes_version: "1.33"',
                                           'kubernetes_version: "1.31"', 1))
    values = repo / "config" / "gke.yaml"
    values.write_text(values.read_text() + "\nbinderhubEnabled: false\n")
    result = run("validate", "gke")
    assert "chart jupyterhub" not in result.stderr, result.stderr


def test_a_stack_that_contradicts_the_federation_fails_validate(run, repo):
    tfvars = repo / "terraform" / "members" / "hetzner-fsn" / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text().replace('"v1.34.1+k3s1"', '"v1.33.5+k3s1"'))
    result = run("validate", "hetzner-fsn", "gke")
    assert result.returncode == 1
    assert "terraform: terraform/members/hetzner-fsn/terraform.tfvars: k3s_version " \
           "v1.33.5+k3s1 is not Kubernetes 1.34" in result.stderr
    assert run("validate", "gke").returncode == 0          # only the members named


def test_timings_break_validation_down_by_stage(run):
    result = run("validate", "--all", "--timings")
    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[0].strip(): line for line in result.stdout.splitlines()}
    for stage in ("prepare chart", "values", "helm template", "helm lint",
                  "kubernetes schemas", "policy", "terraform stacks", "wall (whole command)"):
        assert stage in lines, result.stdout
    # the chart is linted once per Kubernetes version (1.33, 1.34), not once per member;
    # each member is rendered once
    assert 2 <= result.stderr.count("$ helm lint") < 5
    assert result.stderr.count("$ helm template") - \
        result.stderr.count("$ helm template cert-manager") == 5
    # and the two members that get the cert-manager prerequisite render it too
    assert result.stderr.count("$ helm template cert-manager") == 2


# -- site checks: settings that render valid objects but break the site -----------------------
def _errors(result, member):
    return [line for line in result.stderr.splitlines() if line.startswith(f"error: {member}: ")]


def test_placeholder_and_empty_image_tags_fail_naming_the_file(run, repo):
    path = repo / "config/aws.yaml"
    path.write_text(path.read_text() + "static:\n  image:\n    tag: set-by-chartpress\n")
    result = run("validate", "aws", "gke")
    assert result.returncode == 1
    line = _line_of(path, "tag: set-by-chartpress")
    errors = _errors(result, "aws")
    assert [e for e in errors if f"config/aws.yaml:{line}: static.image.tag:" in e
            and "'set-by-chartpress'" in e], result.stderr
    assert _table(result.stdout)["gke"]["result"] == "ok"


def test_an_empty_image_tag_fails_naming_the_file(run, repo):
    # z2jh writes `image: {{ name }}:{{ tag }}` unquoted: an empty tag breaks the rendered
    # YAML, so helm fails; the values check still names the member, file and key
    path = repo / "config/gke.yaml"
    path.write_text(path.read_text().replace(
        "  jupyterhub:\n", "  jupyterhub:\n    proxy:\n      chp:\n        image:\n"
        "          tag: ''\n", 1))
    result = run("validate", "gke")
    assert result.returncode == 1
    line = _line_of(path, "tag: ''")
    assert (f"error: gke: config/gke.yaml:{line}: binderhub.jupyterhub.proxy.chp.image.tag: "
            "image tag is empty (the chart's default is ") in result.stderr, result.stderr
    assert len([e for e in _errors(result, "gke") if "image.tag" in e]) == 1
    # helm's YAML error is not a second error line: it is said to follow from the tag
    assert _errors(result, "gke") == [e for e in _errors(result, "gke") if "image.tag" in e]
    assert "warning: gke: helm template could not render, most likely because of the image " \
        "tag above" in result.stderr


def test_a_domain_no_ingress_routes_fails_naming_the_setting_that_removed_it(run, repo):
    path = repo / "config/hetzner-fsn.yaml"
    path.write_text(path.read_text() + "static:\n  enabled: false\n")
    result = run("validate", "hetzner-fsn")
    assert result.returncode == 1
    domain = _line_of(repo / "config/federation.yaml", "static: static.fsn.example-binder.org")
    line = len(path.read_text().splitlines())
    assert (f"error: hetzner-fsn: config/hetzner-fsn.yaml:{line}: static.enabled: no Ingress "
            "rule routes static.fsn.example-binder.org (the member's static domain, "
            f"config/federation.yaml:{domain}): this turns off the Ingress that would route "
            "it") in result.stderr, result.stderr


def test_no_load_balancer_fails(run, repo):
    # hetzner-fsn without traefik and without declaring the cluster's own ingress controller
    path = repo / "config/hetzner-fsn.yaml"
    path.write_text("traefikEnabled: false\n" + path.read_text())
    result = run("validate", "hetzner-fsn", "uni-lab")
    assert result.returncode == 1
    errors = _errors(result, "hetzner-fsn")
    assert any("members.hetzner-fsn: nothing receives the member's traffic: no Service of "
               "type LoadBalancer" in e for e in errors), result.stderr
    assert any("uses ingress class 'traefik', but no IngressClass 'traefik' is rendered"
               in e and "config/common.yaml:" in e for e in errors), errors
    # uni-lab runs no traefik either, but declares k3s's in config/federation.yaml
    assert _table(result.stdout)["uni-lab"]["result"] == "ok"


def test_a_load_balancer_turned_off_by_a_file_is_named(run, repo):
    path = repo / "config/aws.yaml"
    path.write_text(path.read_text() + "traefik:\n  service:\n    spec:\n      type: ClusterIP\n")
    result = run("validate", "aws")
    assert result.returncode == 1
    line = _line_of(path, "type: ClusterIP")
    assert "no Service of type LoadBalancer" in result.stderr
    assert f"traefik.service.spec.type is set to 'ClusterIP' at config/aws.yaml:{line}" in \
        result.stderr


def test_an_ingress_class_that_does_not_exist_fails(run, repo):
    path = repo / "config/gke.yaml"
    path.write_text(path.read_text().replace(
        "binderhub:\n", "binderhub:\n  ingress:\n    ingressClassName: nginx\n", 1)
        + "clusterIssuer:\n  ingressClassName: nginx\n")
    result = run("validate", "gke")
    assert result.returncode == 1
    errors = _errors(result, "gke")
    binder = _line_of(path, "ingressClassName: nginx")
    issuer = len(path.read_text().splitlines())
    assert any(f"config/gke.yaml:{binder}: binderhub.ingress.ingressClassName: "
               "Ingress/binderhub uses ingress class 'nginx', but no IngressClass 'nginx' is "
               "rendered (rendered: traefik)" in e for e in errors), errors
    # one line per setting: the objects that read clusterIssuer.ingressClassName share it
    assert any(f"config/gke.yaml:{issuer}: clusterIssuer.ingressClassName: " in e
               and "uses ingress class 'nginx'" in e and "ClusterIssuer/letsencrypt-prod" in e
               for e in errors), errors
    assert len(errors) == 2, errors


def test_a_traefik_class_named_after_the_release_blames_the_keys_the_templates_read(run, repo):
    path = repo / "config/aws.yaml"
    path.write_text(path.read_text() + "traefik:\n  ingressClass:\n    name: null\n")
    result = run("validate", "aws")
    assert result.returncode == 1
    errors = _errors(result, "aws")
    line = _line_of(repo / "mybinder/values.yaml", "ingressClassName: traefik")
    hint = (f"traefik's is named 'aws-traefik' because traefik.ingressClass.name is empty (set "
            f"at config/aws.yaml:{len(path.read_text().splitlines())})")
    # the top-level templates read clusterIssuer.ingressClassName, not binderhub's key
    issuer = [e for e in errors if e.startswith(
        f"error: aws: mybinder/values.yaml:{line}: clusterIssuer.ingressClassName: ")]
    assert len(issuer) == 1 and hint in issuer[0], errors
    for ref in ("Ingress/static", "ClusterIssuer/letsencrypt-prod"):
        assert ref in issuer[0], issuer
    assert any("binderhub.ingress.ingressClassName: Ingress/binderhub uses" in e and hint in e
               for e in errors), errors
    assert not any("binderhub.ingress.ingressClassName" in e and "federation-redirect" in e
                   for e in errors), errors


def test_a_pdb_with_both_bounds_fails_naming_both_files(run, repo):
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text().replace(
        "binderhub:\n", "binderhub:\n  pdb:\n    minAvailable: 1\n", 1))
    result = run("validate", "staging")
    assert result.returncode == 1
    assert ("error: staging: config/staging.yaml:4: binderhub.pdb.minAvailable: "
            "PodDisruptionBudget/binderhub gets both minAvailable and maxUnavailable "
            "(maxUnavailable set at config/common.yaml:10)") in result.stderr


def test_an_invalid_label_value_fails(run, repo):
    path = repo / "config/aws.yaml"
    path.write_text(path.read_text() + "traefik:\n  deployment:\n    podLabels:\n"
                    "      tier: front end\n")
    result = run("validate", "aws")
    assert result.returncode == 1, result.stderr
    assert ("Deployment/aws-traefik spec.template.metadata.labels.tier: label value 'front end' "
            "is not valid") in result.stderr


@needs_upstream
def test_keys_no_subchart_template_reads_warn(run, repo):
    path = repo / "config/aws.yaml"
    # traefik 41 reads service.spec.type; service.type passes its schema but nothing reads it.
    # Maps a template renders whole (service.spec, securityContext, grafana.ini) take any key.
    path.write_text(path.read_text().replace(
        "binderhub:\n", "binderhub:\n  networkPolicy:\n    enabled: true\n", 1)
        + "traefik:\n  service:\n    type: NodePort\n"
        "    spec:\n      loadBalancerIP: 203.0.113.7\n      externalTrafficPolicy: Local\n"
        "  securityContext:\n    runAsUser: 65532\n"
        "  deployment:\n    podAnnotations:\n      free: form\n"
        "grafana:\n  adminPassword: documented-in-a-comment\n"
        "  grafana.ini:\n    server:\n      root_url: https://grafana.example.org\n")
    result = run("validate", "aws")
    assert result.returncode == 0, result.stderr          # warnings only
    line = _line_of(path, "type: NodePort")
    assert (f"warning: aws: config/aws.yaml:{line}: traefik.service.type: the traefik chart has "
            "no such value") in result.stderr
    line = _line_of(path, "networkPolicy:")
    assert (f"warning: aws: config/aws.yaml:{line}: binderhub.networkPolicy: the binderhub "
            "chart has no such value (declared in its values schema, but no template of the "
            "chart mentions it)") in result.stderr
    warnings = [w for w in result.stderr.splitlines() if w.startswith("warning: aws:")]
    assert len(warnings) == 2, warnings
    assert "podAnnotations" not in result.stderr and "adminPassword" not in result.stderr


def test_capability_checks_see_the_members_api_versions(run, repo):
    # the chart asks helm whether the cluster serves an API, as real charts do
    (repo / "mybinder/templates/capabilities.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: capabilities\ndata:\n"
        '  pdb: {{ .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" | quote }}\n'
        '  certs: {{ .Capabilities.APIVersions.Has "cert-manager.io/v1" | quote }}\n')
    fed = repo / "config/federation.yaml"
    fed.write_text(fed.read_text().replace(
        "    preinstalled:\n      ingress_classes: [traefik]\n",
        "    preinstalled:\n      ingress_classes: [traefik]\n"
        "      api_versions: [cert-manager.io/v1]\n"))
    result = run("validate", "uni-lab", "aws")
    assert result.returncode == 0, result.stderr
    assert "--api-versions policy/v1/PodDisruptionBudget" in result.stderr
    out = {}
    for member in ("uni-lab", "aws"):
        dest = repo / "out"
        assert run("render", member, "--output", dest).returncode == 0
        cm = next(o for o in _objects(dest / member / "manifests.yaml")
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "capabilities")
        out[member] = cm["data"]
    assert out["uni-lab"] == {"pdb": "true", "certs": "true"}
    assert out["aws"] == {"pdb": "true", "certs": "false"}


def test_a_schema_error_names_the_file_even_when_the_chart_dir_is_named_otherwise(run, repo):
    """helm names the top chart by its Chart.yaml name; a chart directory with another name
    once made a top-level key's error read `mybinder.federation.x (set at chart defaults)`."""
    (repo / "mybinder").rename(repo / "binder-chart")
    fed = repo / "config/federation.yaml"
    fed.write_text(fed.read_text().replace("chart: mybinder", "chart: binder-chart"))
    common = repo / "config/common.yaml"
    common.write_text(common.read_text() + "federation:\n  nmae: typo\n")
    line = len(common.read_text().splitlines())
    result = run("validate", "gke")
    assert result.returncode == 1
    assert f"gke: values rejected by the chart schema: federation.nmae: unknown key 'nmae' " \
           f"(set at config/common.yaml:{line})" in result.stderr


def test_what_only_lint_finds_fails_one_member_per_kubernetes_version(run, repo):
    """helm lint runs once per Kubernetes version, with one member's values; what only lint
    checks (here: a template file extension helm renders but does not allow) still fails."""
    (repo / "mybinder/templates/extra.json").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\n"
        "data:\n  a: b\n")
    result = run("validate", "--all")
    assert result.returncode == 1
    lint_errors = [line for line in result.stderr.splitlines()
                   if "helm lint: [ERROR] templates/extra.json" in line]
    # the example runs Kubernetes 1.33 and 1.34: one member of each reports it
    assert len(lint_errors) == 2, result.stderr
    assert all("file extension" in line for line in lint_errors)


def test_lint_covers_every_dependency_some_member_of_a_version_enables(run, repo):
    """One lint per Kubernetes version, plus one for each member that enables a dependency
    no linted member of that version did."""
    for member, off in (("staging", "grafana"), ("aws", "prometheus"),
                        ("hetzner-fsn", "grafana")):
        with open(repo / "config" / f"{member}.yaml", "a") as handle:
            handle.write(f"{off}:\n  enabled: false\n")
    result = run("validate", "--all")
    assert result.returncode == 0, result.stderr
    linted = [line.split("--namespace ")[1].split()[0] for line in result.stderr.splitlines()
              if line.startswith("$ helm lint")]
    # 1.34: staging (no grafana) and aws (which has it); hetzner-fsn adds nothing. 1.33: one.
    assert sorted(n for n in linted if n in ("staging", "aws", "hetzner-fsn")) == \
        ["aws", "staging"], result.stderr
    assert len(linted) == 3, result.stderr


def test_lint_leaves_the_values_schemas_to_template_and_adds_nothing_of_values_they_reject(
        run, repo):
    # helm template of the same values checks the schemas (and names the file and line); a
    # value they reject that also breaks the templates is not reported again by lint
    path = repo / "config/common.yaml"
    path.write_text(path.read_text() + "priorityClasses: oops\n")
    result = run("validate", "--all")
    assert result.returncode == 1
    lints = [x for x in result.stderr.splitlines() if x.startswith("$ helm lint ")]
    assert len(lints) == 2 and all("--skip-schema-validation" in x for x in lints), lints
    errors = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 5 and all("values rejected by the chart schema: priorityClasses"
                                    in x for x in errors), errors
    assert "helm lint:" not in result.stderr


def test_nothing_a_run_keeps_on_disk_holds_a_secret(run, repo, tmp_path):
    """The content-keyed caches (what files parse to, tool versions) take files in clear
    only: after a full validate, no decrypted secret of any file is in any of them."""
    import yaml

    from deployer.adapters import sops
    from tests.support import OPERATOR_KEY

    cache = tmp_path / "own-cache"
    for _ in range(2):          # filled, then read back
        result = run("validate", "--all", extra_env={"DEPLOYER_CACHE_DIR": str(cache)})
        assert result.returncode == 0, result.stderr
    env = {"SOPS_AGE_KEY_FILE": str(OPERATOR_KEY)}
    secrets = [s for rel in sops.secret_files(repo)
               for s in _strings(yaml.safe_load(sops.decrypt(repo, rel, env)))]
    secrets = [s for s in secrets if len(s) >= 16]      # tokens, keys, certificates
    assert len(secrets) > 10
    kept = "".join(p.read_text() for p in cache.rglob("*.json"))
    assert "tools" in {p.parent.name for p in cache.rglob("*.json")}
    assert kept and not [s for s in secrets if s in kept]


def _strings(node):
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [str(node)] if node not in (None, "") else []


@helm_agnostic
def test_a_key_a_template_writes_twice_warns_naming_the_template(run, repo):
    # helm keeps the last of two equal keys without a word; validate says which template
    example = run("validate", "--all")
    assert example.returncode == 0 and "written twice" not in example.stderr, example.stderr
    path = repo / "mybinder/templates/static/deployment.yaml"
    text = path.read_text()
    assert text.count("replicas: {{ $st.replicas }}") == 1
    path.write_text(text.replace("replicas: {{ $st.replicas }}",
                                 "replicas: {{ $st.replicas }}\n  replicas: 3"))
    result = run("validate", "aws")
    assert result.returncode == 0, result.stderr          # a warning: the API server takes it
    assert ("warning: aws: Deployment/static (mybinder/templates/static/deployment.yaml): "
            "spec.replicas: this key is written twice in one map: helm keeps the last value "
            "and drops the other without a word") in result.stderr


@helm_agnostic
def test_the_cache_drops_what_no_run_used_for_a_month(run, tmp_path):
    import os
    import shutil
    import time

    cache = tmp_path / "cache"
    own = {"DEPLOYER_CACHE_DIR": str(cache)}
    assert run("validate", "uni-lab", extra_env=own).returncode == 0     # with cert-manager
    (prepared,) = [p.parent.parent for p in cache.glob("*/mybinder/.deployer-complete")]
    (pulled,) = cache.glob("prerequisites/*/cert-manager-*.tgz")
    assert (cache / ".deployer-pruned").is_file()
    # what older runs left: a chart as it was before an edit, a parse of an older file
    shutil.copytree(prepared, cache / ("0" * 20))
    (cache / "yaml" / ("0" * 64 + ".json")).write_text("{}")
    (cache / "notes.txt").write_text("another program's")
    old = time.time() - 40 * 86400
    # what prune looks at (not what is inside a prepared chart: its facts stay good)
    for path in [*cache.iterdir(), *cache.glob("*/*.json"), *cache.glob("prerequisites/*/*")]:
        os.utime(path, (old, old))
    marker, archive = (prepared / "mybinder" / ".deployer-complete").stat(), pulled.stat()
    result = run("validate", "uni-lab", extra_env=own)
    assert result.returncode == 0, result.stderr
    assert not (cache / ("0" * 20)).exists() and not (cache / "yaml" / ("0" * 64 + ".json")).exists()
    assert (cache / "notes.txt").exists()
    assert (cache / ".deployer-pruned").stat().st_mtime > old + 1
    # what this run uses is kept as it was (not removed and made again), and marked as used
    assert (prepared / "mybinder" / ".deployer-complete").stat().st_ino == marker.st_ino
    assert "helm dependency update" not in result.stderr
    assert pulled.stat().st_ino == archive.st_ino and "helm pull" not in result.stderr
    assert prepared.stat().st_mtime > old + 1 and pulled.stat().st_mtime > old + 1


@helm_agnostic
def test_a_kubeconfig_that_is_not_there_warns(run, repo):
    path = repo / "config/federation.yaml"
    text = path.read_text()
    path.write_text(text.replace("kubeconfig: secrets/kubeconfigs/uni-lab.yaml",
                                 "kubeconfig: secrets/kubeconfigs/unilab.yaml"))
    line = _line_of(path, "unilab.yaml")
    result = run("validate", "uni-lab")
    assert result.returncode == 0, result.stderr     # a deploy given --kubeconfig needs none
    assert (f"warning: uni-lab: config/federation.yaml:{line}: "
            "members.uni-lab.cluster.kubeconfig: secrets/kubeconfigs/unilab.yaml does not exist "
            "(a deploy without --kubeconfig reaches the cluster with it)") in result.stderr


@helm_agnostic
@pytest.mark.parametrize("old, new, line_of, expected", [
    ("condition: traefikEnabled", "condtion: traefikEnabled", "condtion:",
     "dependencies[1].condtion: unknown key 'condtion' (expected one of: name, version, "
     "repository, condition, tags, enabled, import-values, alias)"),
    ("version: 41.1.1", "version: ^41.0.0", "^41.0.0",
     "dependencies[1].version: version '^41.0.0' is not one exact version"),
    ("\ndependencies:", "\nicons: x\ndependencies:", "icons:", "icons: unknown key 'icons'"),
])
def test_a_chart_yaml_key_helm_would_ignore_or_a_range_is_refused(run, repo, old, new, line_of,
                                                                   expected):
    # a misspelled condition would turn traefik on where members turn it off
    chart = repo / "mybinder/Chart.yaml"
    text = chart.read_text()
    assert old in text
    chart.write_text(text.replace(old, new, 1))
    line = next(i for i, t in enumerate(chart.read_text().splitlines(), 1) if line_of in t)
    for command in (("validate",), ("render", "--manifests")):
        result = run(*command, "uni-lab")
        assert result.returncode == 2, (command, result.stderr)
        assert f"error: mybinder/Chart.yaml:{line}: {expected}" in result.stderr, result.stderr


@helm_agnostic
def test_what_the_bump_bot_would_find_wrong_fails_validate(run, repo):
    path = repo / "config/dependencies.yaml"
    path.write_text(path.read_text().replace("chart_dependency: traefik",
                                             "chart_dependency: traefk"))
    result = run("validate", "staging")
    assert result.returncode == 1
    line = _line_of(path, "  traefik:")
    assert (f"error: dependencies: config/dependencies.yaml:{line}: "
            "dependencies.traefik.chart_dependency: mybinder/Chart.yaml has no dependency "
            "named 'traefk'") in result.stderr
    assert _table(result.stdout)["staging"]["result"] == "ok"


@helm_agnostic
def test_a_broken_values_schema_of_the_chart_is_named(run, repo):
    path = repo / "mybinder/values.schema.json"
    lines = path.read_text().splitlines()
    lines[2] = lines[2] + " broken"
    path.write_text("\n".join(lines) + "\n")
    result = run("validate", "staging")
    assert result.returncode == 2
    assert result.stderr.startswith("error: mybinder/values.schema.json:3: not valid JSON: "), \
        result.stderr


def test_a_template_rendering_invalid_yaml_is_named_without_helms_debug_advice(run, repo):
    path = repo / "mybinder/templates/pdb.yaml"
    path.write_text(path.read_text() + '\n---\nfoo: {{ "a: [" }}\n')
    result = run("validate", "staging")
    assert result.returncode == 1
    assert ("error: staging: helm template failed (exit 1): Error: YAML parse error on "
            "mybinder/templates/pdb.yaml") in result.stderr
    assert "--debug" not in result.stderr
