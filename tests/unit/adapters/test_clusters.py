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


# --- gke with a service-account key from sops; aks through az (+ kubelogin) ------------------

SA_KEY_ID = "5f0c1e2d3b4a69788796a5b4c3d2e1f000112233"
SA_PRIVATE = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-test-only-not-a-key\n"
              "c2VydmljZS1hY2NvdW50LXByaXZhdGUta2V5LXRlc3Q=\n-----END PRIVATE KEY-----\n")
SA_EMAIL = "deployer@example-binder-prod.iam.gserviceaccount.com"
SP_SECRET = "Qx8~sp-client-secret-test-only-9f2e"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"


def _set_cluster(repo: Path, member: str, cluster: str) -> None:
    """Replace `member`'s cluster block in the repo copy's federation.yaml."""
    import re

    path = repo / "config" / "federation.yaml"
    text = path.read_text()
    block = re.compile(rf"(\n  {re.escape(member)}:\n(?:    .*\n)*?    cluster:\n)((?:      .*\n)+)")
    assert block.search(text), member
    path.write_text(block.sub(lambda m: m.group(1) + textwrap.indent(cluster, "      "), text,
                              count=1))


def _sa_key(**changes) -> str:
    import json

    key = {"type": "service_account", "project_id": "example-binder-prod",
           "private_key_id": SA_KEY_ID, "private_key": SA_PRIVATE, "client_email": SA_EMAIL,
           "client_id": "104242424242424242424", "token_uri": "https://oauth2.googleapis.com/token"}
    return json.dumps({**key, **changes}, indent=2)


@pytest.fixture
def gke_key_repo(repo, env):
    _set_cluster(repo, "gke", "provider: gke\nproject: example-binder-prod\nzone: us-central1-a\n"
                              "name: prod\ncredentials: secrets/credentials/gke.yaml\n")
    write_secrets(repo, "secrets/credentials/gke.yaml", _sa_key(), env)
    return repo


# gcloud failing with a line that quotes the key (printf: dash's echo would expand its \n)
FAIL_ACTIVATION = 'printf "ERROR: invalid key %s\\n" "$(grep -o "private_key_id.*" "$key")" >&2; exit 1'


def _fake_gcloud(bindir: Path, record: Path, *, fail_activation: bool = False) -> None:
    """gcloud that checks the key file it is handed (mode, JSON, the key) without printing it,
    and records where everything was."""
    fake_tool(bindir, "gcloud", f"""\
        {{ printf 'call=%s\\n' "$*"
          printf 'CLOUDSDK_CONFIG=%s mode=%s\\n' "$CLOUDSDK_CONFIG" "$(stat -c %a "$CLOUDSDK_CONFIG")"
        }} >> '{record}'
        if [ "$1 $2" = "auth activate-service-account" ]; then
          key="$5"
          printf 'key=%s mode=%s\\n' "$key" "$(stat -c %a "$key")" >> '{record}'
          python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); \
assert k["private_key"].startswith("-----BEGIN PRIVATE KEY-----\\n")' "$key" \
            && echo key-ok >> '{record}'
          {FAIL_ACTIVATION if fail_activation else ''}
          touch "$CLOUDSDK_CONFIG/credentials.db"
          echo "Activated service account credentials for: [$4]" >&2
          exit 0
        fi
        [ -e "$CLOUDSDK_CONFIG/credentials.db" ] || {{ echo "not logged in" >&2; exit 1; }}
        cat > "$KUBECONFIG" <<'EOF'
        {textwrap.indent(GKE_KUBECONFIG, "        ").strip()}
        EOF
        """)


def test_gke_service_account_key_from_sops(gke_key_repo, env, tmp_path, scratch, capsys):
    record, bindir = tmp_path / "gcloud-record", tmp_path / "bin"
    _fake_gcloud(bindir, record)
    ws = Workspace(root=gke_key_repo, env={**env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with clusters.access(ws, ws.federation.member("gke"), now=NOW) as acc:
        config = Path(acc.env["CLOUDSDK_CONFIG"])
        assert config.parent == acc.kubeconfig.parent and (config / "credentials.db").is_file()
        assert stat.S_IMODE(config.stat().st_mode) == 0o700
        lines = record_lines(record)
        assert lines[0] == f"call=auth activate-service-account {SA_EMAIL} --key-file " \
                           f"{acc.kubeconfig.parent / 'gcloud-key.json'}"
        assert lines[1] == f"CLOUDSDK_CONFIG={config} mode=700"
        key_path = Path(lines[2].split()[0].removeprefix("key="))
        assert lines[2].endswith("mode=600") and lines[3] == "key-ok"
        assert not key_path.exists(), "the key is removed as soon as gcloud has activated it"
        assert lines[4] == ("call=container clusters get-credentials prod --zone us-central1-a "
                            "--project example-binder-prod")
        assert lines[5] == f"CLOUDSDK_CONFIG={config} mode=700"
        assert "gke-gcloud-auth-plugin" in acc.kubeconfig.read_text()
        assert "CLOUDSDK_CONFIG" not in env
    assert not config.exists() and list(scratch.iterdir()) == []
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert SA_KEY_ID not in text and "test-only-not-a-key" not in text
    assert f"$ gcloud auth activate-service-account {SA_EMAIL} --key-file" in out.err


def test_gke_key_removed_and_masked_when_activation_fails(gke_key_repo, env, tmp_path, scratch,
                                                          capsys):
    record, bindir = tmp_path / "gcloud-record", tmp_path / "bin"
    _fake_gcloud(bindir, record, fail_activation=True)
    ws = Workspace(root=gke_key_repo, env={**env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with pytest.raises(DeployError) as info:
        with clusters.access(ws, ws.federation.member("gke"), now=NOW):
            pass
    lines = record_lines(record)
    assert lines[3] == "key-ok" and len(lines) == 4, "get-credentials never ran"
    assert not Path(lines[2].split()[0].removeprefix("key=")).exists()
    assert list(scratch.iterdir()) == []
    message = info.value.message
    assert message.startswith("gcloud failed getting credentials for member gke (exit 1)")
    assert "***" in message and SA_KEY_ID not in message
    assert "secrets/credentials/gke.yaml" in info.value.hint
    out = capsys.readouterr()
    assert SA_KEY_ID not in out.out + out.err


def test_gke_key_that_is_no_service_account_key_is_bad_input(repo, env, gke_key_repo, tmp_path,
                                                             scratch):
    from deployer.errors import ConfigError

    write_secrets(repo, "secrets/credentials/gke.yaml", _sa_key(type="authorized_user"), env)
    record, bindir = tmp_path / "gcloud-record", tmp_path / "bin"
    _fake_gcloud(bindir, record)
    ws = Workspace(root=repo, env={**env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with pytest.raises(ConfigError) as info:
        with clusters.access(ws, ws.federation.member("gke"), now=NOW):
            pass
    assert info.value.exit_code == 2
    assert info.value.file == "secrets/credentials/gke.yaml" and info.value.key == "type"
    assert "expected 'service_account'" in info.value.message
    assert not record.exists() and list(scratch.iterdir()) == []


AKS_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: binder-aks
  cluster:
    server: https://binder-aks-dns-1a2b3c.hcp.westeurope.azmk8s.io:443
contexts:
- name: binder-aks
  context:
    cluster: binder-aks
    user: clusterUser_binder-rg_binder-aks
current-context: binder-aks
users:
- name: clusterUser_binder-rg_binder-aks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
"""


@pytest.fixture
def aks_repo(repo, env):
    _set_cluster(repo, "aws", f"provider: aks\nsubscription: {SUBSCRIPTION}\n"
                              "resource_group: binder-rg\nname: binder-aks\n"
                              "credentials: secrets/credentials/aks.yaml\n")
    write_secrets(repo, "secrets/credentials/aks.yaml",
                  "tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47\n"
                  "client_id: 9a1c2b3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d\n"
                  f"client_secret: {SP_SECRET}\n", env)
    return repo


def _fake_az(bindir: Path, record: Path, kubeconfig: str = AKS_KUBECONFIG) -> None:
    fake_tool(bindir, "az", f"""\
        {{ printf 'call=%s\\n' "$*"; printf 'AZURE_CONFIG_DIR=%s\\n' "$AZURE_CONFIG_DIR"; }} >> '{record}'
        if [ "$1" = login ]; then
          file="${{7#--password=@}}"
          printf 'secret=%s mode=%s same=%s\\n' "$file" "$(stat -c %a "$file")" \
            "$([ "$(cat "$file")" = '{SP_SECRET}' ] && echo yes || echo no)" >> '{record}'
          touch "$AZURE_CONFIG_DIR/msal_token_cache.json"
          exit 0
        fi
        [ "$1 $2" = "aks get-credentials" ] || {{ echo "unexpected: $*" >&2; exit 2; }}
        cat > "${{10}}" <<'EOF'
        {textwrap.indent(kubeconfig, "        ").strip()}
        EOF
        """)
    fake_tool(bindir, "kubelogin", f"""\
        printf 'kubelogin=%s\\n' "$*" >> '{record}'
        sed -i 's/devicecode/azurecli/' "$5"
        """)


def test_aks_service_principal_from_sops_then_kubelogin(aks_repo, env, tmp_path, scratch,
                                                        capsys):
    record, bindir = tmp_path / "az-record", tmp_path / "bin"
    _fake_az(bindir, record)
    ws = Workspace(root=aks_repo, env={**env, "PATH": f"{bindir}:/usr/bin:/bin"})
    member = ws.federation.member("aws")
    assert (member.cluster.provider, member.cluster.resource_group) == ("aks", "binder-rg")
    with clusters.access(ws, member, now=NOW) as acc:
        config = Path(acc.env["AZURE_CONFIG_DIR"])
        assert config.parent == acc.kubeconfig.parent
        assert stat.S_IMODE(config.stat().st_mode) == 0o700
        assert acc.source == f"aks:{SUBSCRIPTION}/binder-rg/binder-aks"
        lines = record_lines(record)
        secret_file = acc.kubeconfig.parent / "sp-secret"
        assert lines[0] == ("call=login --service-principal --username "
                            "9a1c2b3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d --tenant "
                            f"72f988bf-86f1-41af-91ab-2d7cd011db47 --password=@{secret_file} "
                            "--allow-no-subscriptions --output none")
        assert lines[1] == f"AZURE_CONFIG_DIR={config}"
        assert lines[2] == f"secret={secret_file} mode=600 same=yes"
        assert not secret_file.exists()
        assert lines[3] == (f"call=aks get-credentials --subscription {SUBSCRIPTION} "
                            f"--resource-group binder-rg --name binder-aks --file "
                            f"{acc.kubeconfig} --overwrite-existing --output none")
        assert lines[5] == f"kubelogin=convert-kubeconfig --login azurecli --kubeconfig " \
                           f"{acc.kubeconfig}"
        assert "--login, azurecli" in acc.kubeconfig.read_text()
        assert stat.S_IMODE(acc.kubeconfig.stat().st_mode) == 0o600
    assert list(scratch.iterdir()) == []
    out = capsys.readouterr()
    assert SP_SECRET not in out.out + out.err
    assert "$ az login --service-principal" in out.err


def test_aks_without_credentials_uses_the_operators_az_login(aks_repo, tmp_path, env, scratch):
    _set_cluster(aks_repo, "aws", f"provider: aks\nsubscription: {SUBSCRIPTION}\n"
                                  "resource_group: binder-rg\nname: binder-aks\n")
    record, bindir = tmp_path / "az-record", tmp_path / "bin"
    local = AKS_KUBECONFIG.replace("      command: kubelogin\n", "      command: /bin/true\n")
    _fake_az(bindir, record, kubeconfig=local)
    ws = Workspace(root=aks_repo, env={**env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with clusters.access(ws, ws.federation.member("aws"), now=NOW) as acc:
        assert "AZURE_CONFIG_DIR" not in acc.env
        calls = [line for line in record_lines(record) if line.startswith(("call=", "kube"))]
        assert len(calls) == 1 and calls[0].startswith("call=aks get-credentials")
    assert list(scratch.iterdir()) == []


def test_aks_azure_ad_cluster_without_kubelogin(aks_repo, env, tmp_path, scratch):
    record, bindir = tmp_path / "az-record", tmp_path / "bin"
    _fake_az(bindir, record)
    (bindir / "kubelogin").unlink()
    ws = Workspace(root=aks_repo, env={**env, "PATH": f"{bindir}:/usr/bin:/bin"})
    with pytest.raises(ToolError, match="kubelogin not found: member aws's AKS cluster uses "
                                        "Azure AD"):
        with clusters.access(ws, ws.federation.member("aws"), now=NOW):
            pass
    assert list(scratch.iterdir()) == []


def test_aks_cluster_fields_are_schema_checked(aks_repo):
    from deployer.errors import ConfigError

    _set_cluster(aks_repo, "aws", "provider: aks\nsubscription: not-a-uuid\n"
                                  "resource_group: binder-rg\nname: binder-aks\n")
    with pytest.raises(ConfigError) as info:
        Workspace(root=aks_repo, env={}).federation
    assert "subscription" in str(info.value) and "federation.yaml" in str(info.value)


# --- what a killed process leaves behind ----------------------------------------------------

def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    def private(name: str) -> Path:
        path = tmp_path / name
        path.mkdir(mode=0o700)
        (path / clusters.KUBECONFIG_NAME).write_text("token: secret\n")
        return path

    # a process that made its directory and died without removing it (as by SIGKILL)
    dead = private("deployer-uni-lab-dead1234")
    child = subprocess.run([sys.executable, "-c",
                            "import sys; from pathlib import Path; "
                            "from deployer.adapters import clusters; "
                            "clusters._claim(Path(sys.argv[1])); print(__import__('os').getpid())",
                            str(dead)], capture_output=True, text=True, check=True,
                           cwd=Path(clusters.__file__).parents[2])
    assert (dead / clusters.OWNER_NAME).read_text() == child.stdout   # its pid, not alive
    live = private("deployer-uni-lab-live5678")     # this process's, still in use
    owner = clusters._claim(live)
    creating = private("deployer-gke-new09abc")     # just made: no owner file yet
    other = private("pytest-of-someone")            # not the deployer's
    (other / clusters.OWNER_NAME).write_text("1\n")
    try:
        assert clusters.remove_leftovers(tmp_path) == [dead]
        assert not dead.exists()
        assert (live / clusters.KUBECONFIG_NAME).is_file()
        assert (creating / clusters.KUBECONFIG_NAME).is_file() and other.is_dir()
    finally:
        os.close(owner)
    assert clusters.remove_leftovers(tmp_path) == [live]   # its process let go


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_leftovers_of_other_users_are_left_alone(tmp_path):
    theirs = tmp_path / "deployer-uni-lab-theirs12"
    theirs.mkdir()
    (theirs / clusters.OWNER_NAME).write_text("999999\n")
    os.chown(theirs, 4321, 4321)
    assert clusters.remove_leftovers(tmp_path) == []
    assert theirs.is_dir()
