"""deployer.clusters: private kubeconfigs per provider, certificate expiry checks, clean-up.

Kubeconfig members go through the real sops; gcloud and aws are fake executables on a
private PATH that record the arguments and environment they were given.
"""
from __future__ import annotations

import base64
import datetime
import os
import stat
import tempfile
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deployer.adapters import clusters
from deployer.adapters import sops as secrets
from deployer.errors import DeployError, ToolError
from deployer.model.workspace import Workspace

from tests.support import write_secrets

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SERVER = "https://k8s.binder.uni-lab.example.edu:6443"
UNI_LAB = "secrets/kubeconfigs/uni-lab.yaml"
_KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(days: float) -> tuple[str, str, datetime.datetime]:
    """A self-signed client certificate valid until NOW + days: (cert PEM, key PEM, expiry)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deployer"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
    expiry = (NOW + datetime.timedelta(days=days)).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(_KEY.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=365)).not_valid_after(expiry)
            .sign(_KEY, hashes.SHA256()))
    key = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key.decode(), expiry


def kubeconfig_text(days: float = 90, *, context: str = "binder",
                    cert_file: str | None = None) -> str:
    """A k3s-style kubeconfig whose user carries a client certificate valid for `days`."""
    cert, key, _ = certificate(days)
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    cert_line = (f"client-certificate: {cert_file}" if cert_file
                 else f"client-certificate-data: {b64(cert)}")
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters:
          - name: uni-lab
            cluster:
              server: {SERVER}
        users:
          - name: deployer
            user:
              {cert_line}
              client-key-data: {b64(key)}
        contexts:
          - name: {context}
            context:
              cluster: uni-lab
              user: deployer
              namespace: binder
        current-context: {context}
        """)


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The directory tempfile.mkdtemp() creates in, so tests can see what is left behind."""
    path = tmp_path / "scratch"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def uni_lab(workspace):
    return workspace.federation.member("uni-lab")


def fake_tool(bindir: Path, name: str, script: str) -> Path:
    """An executable shell script `name` in `bindir`."""
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return path


def record_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# --- provider kubeconfig (real sops) --------------------------------------------------------

def test_decrypted_kubeconfig_is_private_and_removed(repo, env, workspace, uni_lab, scratch,
                                                     capsys):
    write_secrets(repo, UNI_LAB, kubeconfig_text(90), env)
    environ_before = dict(os.environ)
    env_before = dict(workspace.env)

    with clusters.access(workspace, uni_lab, now=NOW) as acc:
        assert acc.member == "uni-lab"
        text = acc.kubeconfig.read_text()
        assert text == secrets.decrypt(repo, UNI_LAB, env)  # the plaintext, as sops prints it
        assert f"server: {SERVER}" in text and "client-key-data: " in text
        assert stat.S_IMODE(acc.kubeconfig.stat().st_mode) == 0o600
        assert stat.S_IMODE(acc.kubeconfig.parent.stat().st_mode) == 0o700
        assert acc.kubeconfig.parent.parent == scratch
        assert acc.env["KUBECONFIG"] == str(acc.kubeconfig)
        assert {k: v for k, v in acc.env.items() if k != "KUBECONFIG"} == env_before
        assert acc.context == "binder"
        assert acc.source == UNI_LAB
        assert acc.cert_expiry == certificate(90)[2]
        assert dict(os.environ) == environ_before
        path = acc.kubeconfig

    assert not path.exists()
    assert list(scratch.iterdir()) == []
    assert dict(workspace.env) == env_before
    assert dict(os.environ) == environ_before
    assert "warning" not in capsys.readouterr().err  # 90 days left: no warning


def test_removed_when_the_block_raises(repo, env, workspace, uni_lab, scratch):
    write_secrets(repo, UNI_LAB, kubeconfig_text(90), env)
    with pytest.raises(RuntimeError, match="boom"):
        with clusters.access(workspace, uni_lab, now=NOW) as acc:
            path = acc.kubeconfig
            assert path.is_file()
            raise RuntimeError("boom")
    assert not path.exists()
    assert list(scratch.iterdir()) == []


def test_expired_certificate_fails_before_access(repo, env, workspace, uni_lab, scratch):
    write_secrets(repo, UNI_LAB, kubeconfig_text(-3), env)
    entered = False
    with pytest.raises(DeployError) as info:
        with clusters.access(workspace, uni_lab, now=NOW):
            entered = True
    err = info.value
    assert not entered
    assert err.exit_code == 1
    assert err.message == "client certificate for member uni-lab expired on 2026-02-26"
    assert err.file == UNI_LAB
    assert f"./deploy.py secrets edit {UNI_LAB}" in err.hint
    assert list(scratch.iterdir()) == []


def test_certificate_expiring_soon_warns(repo, env, workspace, uni_lab, capsys):
    write_secrets(repo, UNI_LAB, kubeconfig_text(10), env)
    with clusters.access(workspace, uni_lab, now=NOW) as acc:
        assert acc.kubeconfig.is_file()
        assert acc.cert_expiry == datetime.datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    err = capsys.readouterr().err
    assert "warning: client certificate for member uni-lab expires on 2026-03-11 (10 days)" in err


def test_missing_context_names_source_and_context(repo, env, workspace, uni_lab, scratch):
    write_secrets(repo, UNI_LAB, kubeconfig_text(90, context="default"), env)
    with pytest.raises(DeployError, match="no context 'binder' \\(contexts: default\\)") as info:
        with clusters.access(workspace, uni_lab, now=NOW):
            pass
    assert info.value.file == UNI_LAB
    assert list(scratch.iterdir()) == []


def test_api_client_points_at_the_kubeconfig_server(repo, env, workspace, uni_lab):
    write_secrets(repo, UNI_LAB, kubeconfig_text(90), env)
    with clusters.access(workspace, uni_lab, now=NOW) as acc:
        kube = acc.kube()
        conf = kube.api_client.configuration
        assert conf.host == SERVER
        # certificate and key files the client needs live in the private dir, removed with it
        assert Path(conf.cert_file).parent == acc.kubeconfig.parent
        assert Path(conf.key_file).parent == acc.kubeconfig.parent
        assert stat.S_IMODE(Path(conf.key_file).stat().st_mode) == 0o600
    assert not Path(conf.key_file).exists()
    with pytest.raises(DeployError, match="closed"):
        acc.kube()


# --- the operator's own --kubeconfig ---------------------------------------------------------

def test_operator_kubeconfig_is_used_as_is(workspace, uni_lab, tmp_path, scratch):
    own = tmp_path / "mine.yaml"
    text = kubeconfig_text(45, context="default")
    own.write_text(text)
    with clusters.access(workspace, uni_lab, kubeconfig=own, now=NOW) as acc:
        assert acc.kubeconfig == own
        assert acc.env["KUBECONFIG"] == str(own)
        assert acc.source == str(own)
        assert acc.context is None  # its own current-context, not the member's "binder"
        assert acc.cert_expiry == certificate(45)[2]
    assert own.read_text() == text
    assert list(scratch.iterdir()) == []


def test_operator_kubeconfig_relative_certificate_path(workspace, uni_lab, tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "client.crt").write_text(certificate(-1)[0])
    own = tmp_path / "mine.yaml"
    own.write_text(kubeconfig_text(cert_file="certs/client.crt"))
    with pytest.raises(DeployError, match="expired on 2026-02-28") as info:
        with clusters.access(workspace, uni_lab, kubeconfig=own, now=NOW):
            pass
    assert info.value.file == str(own)


def test_operator_kubeconfig_not_yaml(workspace, uni_lab, tmp_path):
    own = tmp_path / "broken.yaml"
    own.write_text("apiVersion: v1\nusers: [\n")
    with pytest.raises(DeployError, match="not a valid kubeconfig") as info:
        with clusters.access(workspace, uni_lab, kubeconfig=own, now=NOW):
            pass
    assert info.value.file == str(own)


# --- gke and eks through their CLIs ----------------------------------------------------------

GKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: gke_example-binder-prod_us-central1-a_prod
  cluster:
    server: https://203.0.113.10
contexts:
- name: gke_example-binder-prod_us-central1-a_prod
  context:
    cluster: gke_example-binder-prod_us-central1-a_prod
    user: gke_example-binder-prod_us-central1-a_prod
current-context: gke_example-binder-prod_us-central1-a_prod
users:
- name: gke_example-binder-prod_us-central1-a_prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
"""


def test_gke_without_gcloud(workspace, tmp_path, scratch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    ws = Workspace(root=workspace.root, env={**workspace.env, "PATH": str(empty)})
    with pytest.raises(ToolError) as info:
        with clusters.access(ws, ws.federation.member("gke"), now=NOW):
            pass
    err = info.value
    assert err.message == ("gcloud not found: member gke is on GKE "
                           "(example-binder-prod/us-central1-a/prod)")
    assert "gke-gcloud-auth-plugin" in err.hint and "--kubeconfig PATH" in err.hint
    assert list(scratch.iterdir()) == []


def test_gke_with_fake_gcloud(workspace, tmp_path, scratch, capsys):
    record = tmp_path / "gcloud-record"
    bindir = tmp_path / "bin"
    fake_tool(bindir, "gcloud", f"""\
        {{ for a in "$@"; do printf 'arg=%s\\n' "$a"; done
          printf 'KUBECONFIG=%s\\n' "$KUBECONFIG"
          printf 'USE_GKE_GCLOUD_AUTH_PLUGIN=%s\\n' "$USE_GKE_GCLOUD_AUTH_PLUGIN"
          printf 'mode=%s\\n' "$(stat -c %a "$KUBECONFIG")"
        }} > '{record}'
        [ "$*" = "container clusters get-credentials prod --zone us-central1-a \
--project example-binder-prod" ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}
        cat > "$KUBECONFIG" <<'EOF'
        {textwrap.indent(GKE_KUBECONFIG, "        ").strip()}
        EOF
        """)
    ws = Workspace(root=workspace.root,
                   env={**workspace.env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with clusters.access(ws, ws.federation.member("gke"), now=NOW) as acc:
        assert acc.source == "gke:example-binder-prod/us-central1-a/prod"
        assert acc.context is None
        assert acc.cert_expiry is None
        assert "gke-gcloud-auth-plugin" in acc.kubeconfig.read_text()
        assert stat.S_IMODE(acc.kubeconfig.stat().st_mode) == 0o600
        assert acc.env["KUBECONFIG"] == str(acc.kubeconfig)
        assert "USE_GKE_GCLOUD_AUTH_PLUGIN" not in acc.env
        expected = ["arg=container", "arg=clusters", "arg=get-credentials", "arg=prod",
                    "arg=--zone", "arg=us-central1-a", "arg=--project", "arg=example-binder-prod",
                    f"KUBECONFIG={acc.kubeconfig}", "USE_GKE_GCLOUD_AUTH_PLUGIN=True", "mode=600"]
        assert record_lines(record) == expected
    assert list(scratch.iterdir()) == []
    assert ("$ gcloud container clusters get-credentials prod --zone us-central1-a "
            "--project example-binder-prod") in capsys.readouterr().err


def test_gke_gcloud_failure_names_member_and_last_stderr_line(workspace, tmp_path, scratch):
    bindir = tmp_path / "bin"
    fake_tool(bindir, "gcloud", """\
        echo "WARNING: something harmless" >&2
        echo "ERROR: (gcloud.container.clusters.get-credentials) You do not currently have an active account selected." >&2
        exit 1
        """)
    ws = Workspace(root=workspace.root, env={**workspace.env, "PATH": str(bindir)})
    with pytest.raises(DeployError) as info:
        with clusters.access(ws, ws.federation.member("staging"), now=NOW):
            pass
    message = info.value.message
    assert "member staging" in message
    assert message.endswith("You do not currently have an active account selected.")
    assert "WARNING" not in message
    assert list(scratch.iterdir()) == []


def test_eks_with_fake_aws(workspace, tmp_path, scratch):
    record = tmp_path / "aws-record"
    bindir = tmp_path / "bin"
    fake_tool(bindir, "aws", f"""\
        {{ for a in "$@"; do printf 'arg=%s\\n' "$a"; done
          printf 'KUBECONFIG=%s\\n' "$KUBECONFIG"
        }} > '{record}'
        [ "$1 $2 $3 $4 $5 $6 $7 $8" = "eks update-kubeconfig --name binder --region us-east-2 \
--kubeconfig $KUBECONFIG" ] && [ $# -eq 8 ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}
        sed 's/gke_example-binder-prod_us-central1-a_prod/arn:aws:eks:us-east-2:1:cluster\\/binder/' \
> "$8" <<'EOF'
        {textwrap.indent(GKE_KUBECONFIG, "        ").strip()}
        EOF
        """)
    ws = Workspace(root=workspace.root,
                   env={**workspace.env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with clusters.access(ws, ws.federation.member("aws"), now=NOW) as acc:
        assert acc.source == "eks:us-east-2/binder"
        assert acc.context is None
        assert "arn:aws:eks:us-east-2:1:cluster/binder" in acc.kubeconfig.read_text()
        assert record_lines(record) == [
            "arg=eks", "arg=update-kubeconfig", "arg=--name", "arg=binder",
            "arg=--region", "arg=us-east-2", "arg=--kubeconfig", f"arg={acc.kubeconfig}",
            f"KUBECONFIG={acc.kubeconfig}"]
    assert list(scratch.iterdir()) == []


def test_eks_without_aws(workspace, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    ws = Workspace(root=workspace.root, env={**workspace.env, "PATH": str(empty)})
    with pytest.raises(ToolError, match=r"aws not found: member aws is on EKS \(us-east-2/binder\)"):
        with clusters.access(ws, ws.federation.member("aws"), now=NOW):
            pass
