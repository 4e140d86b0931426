"""The site checks on hand-made objects: what the API server rejects, ingress routes and
classes, image tags, and subchart keys no template reads."""
from types import SimpleNamespace

import pytest

from deployer.model import site_checks
from deployer.model.manifests import K8sObject
from deployer.stages.chart import _commented_keys
from deployer.stages.render import member_values


def _deployment(name="web", image="example.org/web:1.0", selector=None, labels=None, **pod):
    labels = {"app": name} if labels is None else labels
    return K8sObject({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name} if selector is None else selector},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": name, "image": image}], **pod}}}},
        f"mybinder/templates/{name}.yaml")


def _ingress(host, cls="traefik", name="web"):
    return K8sObject({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                      "metadata": {"name": name},
                      "spec": {"ingressClassName": cls, "rules": [
                          {"host": host, "http": {"paths": []}}]}}, "mybinder/templates/ing.yaml")


def _rejects(objects):
    return [str(v) for v in site_checks._api_rejects(objects, None)]


def test_a_pdb_with_both_bounds_is_rejected():
    pdb = K8sObject({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                     "metadata": {"name": "x"}, "spec": {"minAvailable": 1, "maxUnavailable": 1}},
                    "mybinder/templates/pdb.yaml")
    blame = SimpleNamespace(pdb_key=lambda obj: None)
    found = [str(v) for v in site_checks._api_rejects([pdb], blame)]
    assert found == ["mybinder/templates/pdb.yaml: PodDisruptionBudget/x spec: both "
                     "minAvailable and maxUnavailable are set; the API server accepts only one"]
    pdb.body["spec"]["maxUnavailable"] = None
    assert [str(v) for v in site_checks._api_rejects([pdb], blame)] == []


@pytest.mark.parametrize("selector,labels,ok", [
    ({"app": "web"}, {"app": "web", "tier": "x"}, True),
    ({"app": "web"}, {"app": "other"}, False),
    ({"app": "web", "tier": "x"}, {"app": "web"}, False),
])
def test_a_selector_must_match_the_pod_template(selector, labels, ok):
    found = _rejects([_deployment(selector=selector, labels=labels)])
    assert (found == []) is ok, found
    if not ok:
        assert "does not match the pod template's labels" in found[0]


def test_match_expressions_are_evaluated():
    obj = _deployment()
    obj.body["spec"]["selector"] = {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web", "api"]},
        {"key": "debug", "operator": "DoesNotExist"}]}
    assert _rejects([obj]) == []
    obj.body["spec"]["selector"]["matchExpressions"][0]["values"] = ["api"]
    assert len(_rejects([obj])) == 1


def test_pods_mounting_unknown_volumes_and_duplicate_containers():
    obj = _deployment()
    spec = obj.body["spec"]["template"]["spec"]
    spec["containers"].append({"name": "web", "image": "x:1",
                               "volumeMounts": [{"name": "data", "mountPath": "/d"}]})
    found = _rejects([obj])
    assert any("container name 'web' is used twice" in f for f in found)
    assert any("mounts volume 'data', which the pod does not define" in f for f in found)
    spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    spec["containers"][1]["name"] = "sidecar"
    assert _rejects([obj]) == []


def test_label_values_and_unnamed_service_ports():
    svc = K8sObject({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "s", "labels": {"ok": "a.b-c_d", "bad": "-x", "long": "x" * 64}},
                     "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}})
    found = _rejects([svc])
    assert len([f for f in found if "label value" in f]) == 2
    assert any("needs a name on each" in f for f in found)


def test_host_patterns():
    assert site_checks._host_matches("*.example.org", "a.example.org")
    assert not site_checks._host_matches("*.example.org", "a.b.example.org")
    assert site_checks._host_matches("*", "anything.org")
    assert not site_checks._host_matches("example.org", "www.example.org")


def test_image_tags(workspace):
    member = workspace.federation.member("aws")
    mv = member_values(workspace, member)
    objects = [_deployment("a", "example.org/a:set-by-chartpress"),
               _deployment("b", "example.org/b:"), _deployment("c", "example.org/c"),
               _deployment("d", "example.org/d@sha256:" + "0" * 64),
               _deployment("e", "registry:5000/e:1.2.3")]
    found = [str(v) for v in site_checks._image_tags(mv, objects, site_checks._Blame(mv, ()))]
    assert len(found) == 3, found
    assert "placeholder tag 'set-by-chartpress'" in found[0]
    assert "has an empty tag" in found[1] and "has no tag" in found[2]


def test_routes_classes_and_entry_point(workspace):
    fed = workspace.federation
    member = fed.member("aws")
    mv = member_values(workspace, member)
    blame = site_checks._Blame(mv, ())
    d = member.domains
    routed = [_ingress(d.binder, name="b"), _ingress(d.hub, name="h"),
              _ingress(d.static, name="s", cls="nginx")]
    found = [str(v) for v in site_checks._ingress(fed, member, mv, routed, blame)]
    assert any("uses ingress class 'nginx', but no IngressClass 'nginx' is rendered" in f
               for f in found), found
    assert any("uses ingress class 'traefik'" in f for f in found)
    assert any("nothing receives the member's traffic" in f for f in found)
    assert not any("no Ingress rule routes" in f for f in found)
    lb = K8sObject({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
                    "spec": {"type": "LoadBalancer"}})
    cls = K8sObject({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                     "metadata": {"name": "traefik"}, "spec": {}})
    found = [str(v) for v in site_checks._ingress(fed, member, mv, routed[:2] + [lb, cls], blame)]
    assert len(found) == 1 and f"no Ingress rule routes {d.static}" in found[0]
    assert found[0].startswith("config/federation.yaml:")


def test_commented_keys_are_read_with_their_parents():
    text = ("adminUser: admin\n# adminPassword: x\nservice:\n  type: ClusterIP\n"
            "  # loadBalancerIP: 1.2.3.4\n#  nested:\n  spec: {}\n")
    keys = _commented_keys(text)
    assert ("adminPassword",) in keys and ("service", "loadBalancerIP") in keys


def test_first_unknown_key():
    defaults = {"service": {"type": "LoadBalancer", "annotations": {}}, "image": {"tag": None}}
    assert site_checks._first_unknown(("service", "typo"), defaults, None) == ("service", "typo")
    assert site_checks._first_unknown(("service", "annotations", "a"), defaults, None) is None
    assert site_checks._first_unknown(("image", "tag"), defaults, None) is None
    assert site_checks._first_unknown(("servic", "x"), defaults, None) == ("servic",)
    schema = {"additionalProperties": False, "properties": {
        "service": {"additionalProperties": True}, "image": {}}}
    assert site_checks._first_unknown(("service", "typo"), defaults, schema) is None
    assert site_checks._first_unknown(("servic",), defaults, schema,
                                      frozenset({("servic",)})) is None


def test_schema_declared_keys_no_template_mentions_are_unread():
    # binderhub's schema declares networkPolicy (for compatibility); no template reads it
    defaults = {"service": {"type": "ClusterIP"}, "pdb": {"enabled": True}}
    schema = {"properties": {"networkPolicy": {"type": "object", "additionalProperties": True},
                             "nodeSelector": {"type": "object"},
                             "service": {"type": "object", "properties": {"type": {}}}}}
    words = frozenset({"Values", "service", "type", "nodeSelector", "pdb", "enabled"})
    first = site_checks._first_unknown
    assert first(("networkPolicy", "enabled"), defaults, schema, frozenset(), words) == \
        ("networkPolicy",)
    assert first(("nodeSelector", "disk"), defaults, schema, frozenset(), words) is None
    # without the templates' words (a template renders .Values whole) a declared key is read
    assert first(("networkPolicy", "enabled"), defaults, schema) is None
    # a schema that lists a map's keys without additionalProperties is not free-form
    # (traefik's service: service.type passes the schema, only service.spec.type is read)
    assert first(("service", "loadBalancerIP"), defaults, schema, frozenset(), words) == \
        ("service", "loadBalancerIP")


def test_only_a_nodes_web_ports_are_an_entry_point():
    exporter = _deployment("node-exporter", hostNetwork=True)
    exporter.body["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 9100}]
    assert not site_checks._entry_point([exporter])
    web = _deployment("ingress", hostNetwork=True)
    web.body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 443}]
    assert site_checks._entry_point([web])
    host_port = _deployment("ingress")
    host_port.body["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 8000, "hostPort": 80}]
    assert site_checks._entry_point([host_port])


def test_maps_a_template_renders_whole_are_free_form():
    from deployer.stages.chart import rendered_whole

    templates = (
        '{{- define "svc" -}}\n  {{- with .service.spec }}\n    {{- toYaml . | nindent 2 }}\n'
        '  {{- end }}\n{{- end }}\n'
        '        {{- with .Values.securityContext }}\n        securityContext:\n'
        '          {{- toYaml . | nindent 10 }}\n        {{- end }}\n'
        '{{- range $k, $v := index .Values "grafana.ini" }}[{{ $k }}]{{- end }}\n'
        '  affinity: {{ toYaml .Values.affinity | nindent 4 }}\n'
        '  extra: {{ .Values.deployment.extra | toJson }}\n'
        '{{- range $name, $port := $.Values.ports }}{{ $port.port }}{{- end }}\n'
        '{{- with .Values.service.labels }}{{ include "x" . }}{{- end }}\n'
        '  type: {{ .Values.service.type }}\n'
        '    {{- pick .Values "config" "cors" | toYaml | nindent 4 }}\n')
    whole = rendered_whole(templates)
    assert whole == {"spec", "securityContext", "grafana.ini", "affinity", "extra", "ports",
                     "config", "cors"}
    # traefik: service.spec is rendered whole (its keys are read), service is not
    defaults = {"service": {"spec": {"type": "LoadBalancer"}},
                "securityContext": {"readOnlyRootFilesystem": True}}
    schema = {"properties": {
        "service": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "type": {}}}}},
        "securityContext": {"type": "object", "properties": {"readOnlyRootFilesystem": {}}}}}
    words = frozenset({"service", "spec", "securityContext", "type"})
    first = site_checks._first_unknown
    assert first(("service", "spec", "loadBalancerIP"), defaults, schema, frozenset(), words,
                 whole) is None
    assert first(("securityContext", "runAsUser"), defaults, schema, frozenset(), words,
                 whole) is None
    assert first(("service", "type"), defaults, schema, frozenset(), words, whole) == \
        ("service", "type")
    # without knowing what is rendered whole, the listed keys close the map
    assert first(("securityContext", "runAsUser"), defaults, schema, frozenset(), words) == \
        ("securityContext", "runAsUser")


def test_tags_an_operator_empties_or_leaves_a_placeholder_fail_before_rendering(workspace):
    path = workspace.root / "config/aws.yaml"
    path.write_text(path.read_text() + "static:\n  image:\n    tag: set-by-chartpress\n"
                    "traefik:\n  image:\n    tag: ''\n"
                    "cryptnono:\n  image:\n    tag: ''\n")
    member = workspace.federation.member("aws")
    mv = member_values(workspace, member)
    defaults = {"traefik": {"image": {"tag": None}}, "cryptnono": {"image": {"tag": "0.3.1"}}}
    found = sorted(str(v) for v in site_checks.check_values(mv, defaults))
    lines = path.read_text().splitlines()
    placeholder = lines.index("    tag: set-by-chartpress") + 1
    empty = len(lines)
    assert found == [
        f"config/aws.yaml:{placeholder}: static.image.tag: image tag 'set-by-chartpress' is a "
        "placeholder, not a published tag",
        f"config/aws.yaml:{empty}: cryptnono.image.tag: image tag is empty (the chart's default "
        "is '0.3.1'); the image reference would end in ':'"], found
    # a rendered finding at a place the values checks named is not repeated
    objects = [_deployment("static", "example.org/static:set-by-chartpress")]
    objects[0].source = "mybinder/templates/static.yaml"
    known = site_checks.check_values(mv, defaults)
    again = site_checks.check_rendered(workspace.federation, member, mv, objects, (),
                                       None, known)
    assert not [v for v in again if v.key == "static.image.tag"], again
