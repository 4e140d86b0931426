"""The diff of rendered objects against a live release, for values charts generate."""
import base64

import yaml

from deployer.model.manifests import K8sObject
from deployer.model.redact import Redactor
from deployer.stages import diff as diff_mod


def _secret(token: str, cookie: str, extra: dict | None = None) -> dict:
    data = {"hub.config.ConfigurableHTTPProxy.auth_token": base64.b64encode(token.encode()),
            "hub.config.JupyterHub.cookie_secret": base64.b64encode(cookie.encode()),
            "values.yaml": base64.b64encode(b"a: 1"), **(extra or {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hub"},
            "data": {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}}


def _proxy(checksum: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "proxy"},
            "spec": {"replicas": replicas, "template": {"metadata": {"annotations": {
                "checksum/auth-token": checksum}}}}}


def _manifest(*bodies) -> str:
    return "".join(f"---\n# Source: x/templates/{i}.yaml\n{yaml.safe_dump(b)}"
                   for i, b in enumerate(bodies))


def test_generated_values_rendered_offline_are_not_changes():
    live = _manifest(_secret("T" * 64, "c" * 64), _proxy("ab12"))
    offline = [K8sObject(_secret("X" * 64, "d" * 64)), K8sObject(_proxy("ff00"))]
    # rendered against the cluster, the Secret is the live one: only checksums (of a second
    # random render at install) can differ, and those are never compared
    plain = diff_mod.compute(live, offline, "staging", Redactor())
    assert {c.ref for c in plain.changes} == {"Secret/hub"}
    carried = diff_mod.compute(live, offline, "staging", Redactor(), generated=True)
    assert carried.empty
    assert carried.text().startswith("no changes")
    assert "3 generated value(s)" in carried.text()


def test_a_real_change_still_shows_with_generated_values_carried():
    live = _manifest(_secret("T" * 64, "c" * 64), _proxy("ab12"))
    offline = [K8sObject(_secret("X" * 64, "d" * 64, {"values.yaml": "YjogMg=="})),
               K8sObject(_proxy("ff00", replicas=2))]
    result = diff_mod.compute(live, offline, "staging", Redactor(), generated=True)
    assert [(c.action, c.ref) for c in result.changes] == [
        ("changed", "Deployment/proxy"), ("changed", "Secret/hub")]
    assert "+  replicas: 2" in result.text()
    assert "ff00" not in result.text()   # the generated checksum is not shown as changed


def test_helm_hooks_are_not_compared():
    # `helm get manifest` never lists hooks; a rendered hook must not show as added forever
    hook = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "grafana-test", "annotations": {"helm.sh/hook": "test"}}}
    live = _manifest(_proxy("ab12"))
    changes = diff_mod.compute(live, [K8sObject(_proxy("ab12")), K8sObject(hook)], "staging",
                               Redactor())
    assert changes.empty, changes.text()
    assert "1 hook object(s) not compared" in changes.text()
    # a first install lists no hook as added either, but a real object is
    first = diff_mod.compute("", [K8sObject(_proxy("ab12")), K8sObject(hook)], "staging",
                             Redactor())
    assert [c.ref for c in first.changes] == ["Deployment/proxy"]


def test_a_secret_the_operator_set_is_compared_even_offline():
    # grafana's admin-password is generated when unset, but here the operator rotated it:
    # carrying the live value over would hide the change and skip the upgrade
    def grafana(password: str) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "grafana"},
                "data": {"admin-password": base64.b64encode(password.encode()).decode()}}

    live = _manifest(grafana("old-password-1234"))
    rotated = [K8sObject(grafana("new-password-5678"))]
    changes = diff_mod.compute(live, rotated, "staging", Redactor(["new-password-5678"]),
                               generated=True)
    assert [c.ref for c in changes.changes] == ["Secret/grafana"]
    assert "new-password-5678" not in changes.text()
    # a generated one (no operator value) is still carried over
    generated = diff_mod.compute(live, [K8sObject(grafana("random-generated-9"))], "staging",
                                 Redactor(), generated=True)
    assert generated.empty
