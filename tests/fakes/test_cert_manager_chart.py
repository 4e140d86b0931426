"""The stand-in cert-manager chart renders what the real one renders for our values: CRDs as
templates behind crds.enabled, release-prefixed workloads, objects valid for Kubernetes."""
from __future__ import annotations

import subprocess

import pytest

from deployer.model import manifests
from tests.fakes import cert_manager_chart
from tests.fakes.fixtures import HELM


def _template(tmp_path, *sets, release="cert-manager", check=True):
    chart = cert_manager_chart.write_chart("v1.19.6", tmp_path / "src")
    args = [HELM, "template", release, str(chart), "--namespace", "cert-manager"]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_crds_only_with_crds_enabled_and_names_as_the_real_chart(tmp_path):
    plain = manifests.parse(_template(tmp_path).stdout)
    assert not [o for o in plain if o.kind == "CustomResourceDefinition"]
    objects = manifests.parse(_template(tmp_path, "crds.enabled=true").stdout)
    crds = {o.name: o for o in objects if o.kind == "CustomResourceDefinition"}
    assert set(crds) == {"challenges.acme.cert-manager.io", "orders.acme.cert-manager.io",
                         "certificaterequests.cert-manager.io", "certificates.cert-manager.io",
                         "clusterissuers.cert-manager.io", "issuers.cert-manager.io"}
    assert crds["clusterissuers.cert-manager.io"].body["spec"]["scope"] == "Cluster"
    assert crds["issuers.cert-manager.io"].body["metadata"]["annotations"] == {
        "helm.sh/resource-policy": "keep"}
    deployments = {o.name for o in objects if o.kind == "Deployment"}
    assert deployments == {"cert-manager", "cert-manager-webhook", "cert-manager-cainjector"}
    other = manifests.parse(_template(tmp_path, release="certs").stdout)
    assert {o.name for o in other if o.kind == "Deployment"} == {
        "certs-cert-manager", "certs-cert-manager-webhook", "certs-cert-manager-cainjector"}
    assert not manifests.validate(objects, "1.34").problems


def test_the_values_schema_and_the_crd_options_refuse_what_the_real_chart_refuses(tmp_path):
    typo = _template(tmp_path, "installCrds=true", check=False)
    assert typo.returncode != 0 and "installCrds" in typo.stderr
    both = _template(tmp_path, "installCRDs=true", "crds.enabled=true", check=False)
    assert both.returncode != 0 and "cannot be enabled at the same time" in both.stderr
    legacy = manifests.parse(_template(tmp_path, "installCRDs=true").stdout)
    assert any(o.kind == "CustomResourceDefinition" for o in legacy)


@pytest.mark.parametrize("version", cert_manager_chart.VERSIONS)
def test_chart_metadata_carries_the_v_prefix(tmp_path, version):
    import yaml

    chart = cert_manager_chart.write_chart(version, tmp_path / version)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert (meta["name"], meta["version"], meta["appVersion"]) == ("cert-manager", version,
                                                                    version)
