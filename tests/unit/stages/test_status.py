"""`status` columns: one the credentials may not read is marked, the others still shown."""
from deployer.adapters.kube import KubeError
from deployer.stages.status import MemberStatus, fill_columns
from tests.fakes.adapters import FakeCluster
from tests.unit.stages.test_pipeline import MANIFEST


def test_a_forbidden_column_is_marked_and_the_rest_is_read(workspace):
    cluster = FakeCluster(MANIFEST)
    cluster.installed()
    cluster.fail("read_lease", KubeError("HTTP 403: leases is forbidden", status=403))
    row = MemberStatus("staging")
    fill_columns(row, cluster.kube, workspace.federation.member("staging"))
    assert row.lock == "forbidden (HTTP 403)"
    assert row.workloads == "1/1"
    assert row.certificates == "missing binder-tls, hub-tls, static-tls, federation-redirect-tls"
    assert row.unread == ["lock: HTTP 403: leases is forbidden"] and not row.error


def _certificate(days: int) -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example-binder.org")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days, hours=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_certificates_are_checked_for_what_the_member_runs(workspace, repo):
    """A member running only the redirector needs its redirector (and static) certificate,
    under the names config/federation.yaml gives, and no binder or hub certificate."""
    from deployer.adapters.kube import TLSSecret
    from deployer.model import federation

    path = repo / "config/federation.yaml"
    path.write_text(path.read_text().replace("members:\n", """members:
  apex:
    role: production
    runs: [redirector]
    cluster: {provider: gke, project: example-apex, zone: us-central1-a, name: apex}
    kubernetes_version: "1.34"
    release: {name: apex, namespace: apex}
    domains: {federation: apex.example-binder.org, static: s.example-binder.org}
    tls: {federation: kubelego-tls-redirector}
""", 1))
    apex = federation.load(repo).member("apex")
    cluster = FakeCluster(MANIFEST, namespace="apex")
    cluster.installed()
    cluster.tls_secrets["apex"] = [TLSSecret("kubelego-tls-redirector", _certificate(30))]
    row = MemberStatus("apex")
    fill_columns(row, cluster.kube, apex)
    assert row.certificates.startswith("kubelego-tls-redirector expires ")
    assert row.certificates.endswith("(30d); missing static-tls")
    cluster.tls_secrets["apex"].append(TLSSecret("static-tls", _certificate(60)))
    fill_columns(row, cluster.kube, apex)
    assert "missing" not in row.certificates


def test_a_prerequisite_that_cannot_be_read_is_marked_in_its_column_only(workspace):
    from deployer.adapters.helm import HelmError
    from deployer.stages.status import prerequisites

    cluster = FakeCluster(MANIFEST)
    cluster.installed()
    cluster.fail("history", HelmError(["history", "cert-manager"],
                                      "Error: secrets is forbidden: User cannot list resource", 1))
    shown = prerequisites(workspace, cluster.helm, workspace.federation.member("uni-lab"))
    assert shown.startswith("cert-manager unreadable (")
    assert "secrets is forbidden" in shown
    # read again, it shows the release
    assert prerequisites(workspace, cluster.helm, workspace.federation.member("uni-lab")) == \
        "cert-manager 1 deployed (mybinder-0.1.0)"


def test_a_static_site_switched_off_in_the_values_needs_no_certificate(workspace, repo):
    from deployer.model.values import serves_static
    from deployer.stages.status import expected_tls_secrets

    aws = workspace.federation.member("aws")
    assert serves_static(workspace, aws)
    (repo / "config/aws.yaml").write_text((repo / "config/aws.yaml").read_text()
                                          + "static:\n  enabled: false\n")
    assert not serves_static(workspace, aws)
    cluster = FakeCluster(MANIFEST, namespace="aws")
    cluster.installed()
    row = MemberStatus("aws")
    fill_columns(row, cluster.kube, aws, static=serves_static(workspace, aws))
    assert row.certificates == "missing binder-tls, hub-tls"
    assert expected_tls_secrets(aws) == ["binder-tls", "hub-tls", "static-tls"]
