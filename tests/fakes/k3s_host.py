"""A bare-metal k3s server as the hetzner-k3s module reaches it over SSH, for tests.

A real OpenSSH server (Debian's ``sshd``) listens on 127.0.0.1 on a free port with its own
host key, key-only login, and the test's public key. Every session runs a small fake shell
(``ForceCommand``) instead of a login shell: the command the client sent runs in bash with
``/etc/rancher/k3s`` mapped into a private directory and stand-ins for ``k3s`` and
``systemctl`` first on ``PATH``:

* ``/etc/rancher/k3s/k3s.yaml`` is k3s's kubeconfig: it names ``127.0.0.1:6443`` as k3s
  writes it (the module rewrites that to the server's address and API port), and
  authenticates with a bearer token for the Kubernetes API test double *and* a client
  certificate, whose expiry the deployer checks. The double speaks plain HTTP, so the
  server URL's scheme is ``http://`` where real k3s has ``https://``.
* ``k3s certificate rotate`` issues a fresh client certificate valid for a year, as k3s
  does; ``systemctl`` does nothing.

    with K3sHost(tmp_path, kube_url, token, expires=yesterday) as host:
        host.port, host.private_key, host.public_key, host.commands()
"""
from __future__ import annotations

import datetime
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def sshd_available() -> str | None:
    """None, or why a K3sHost cannot run here."""
    if not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")):
        return "OpenSSH server and client are not installed (apt-get install openssh-server)"
    return None


class K3sHost:
    """The SSH side of a k3s server (see the module docstring)."""

    def __init__(self, workdir: Path, kube_url: str, token: str, *,
                 expires: datetime.datetime | None = None):
        self.dir = Path(workdir) / "k3s-host"
        self.kube_url = kube_url
        self.token = token
        self.expires = expires or (_now() + datetime.timedelta(days=365))
        self.port = 0
        self.private_key = ""
        self.public_key = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "K3sHost":
        self._setup()
        for _attempt in range(5):
            self.port = _free_port()
            self._write_config()
            self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=open(self.dir / "sshd.log", "ab"))
            if self._wait():
                return self
            self._stop()
        raise RuntimeError("sshd did not start: " + (self.dir / "sshd.log").read_text()[-2000:])

    def __exit__(self, *exc) -> None:
        self._stop()

    # -- test controls ------------------------------------------------------------------
    def write_kubeconfig(self, expires: datetime.datetime) -> None:
        """k3s.yaml with a client certificate that expires at `expires`."""
        _write_kubeconfig(self.dir / "root", self.kube_url, self.token, expires)

    def kubeconfig(self) -> str:
        return (self.dir / "root" / "etc" / "rancher" / "k3s" / "k3s.yaml").read_text()

    def commands(self) -> list[str]:
        """Every command a client ran, oldest first."""
        log = self.dir / "commands.log"
        return log.read_text().split("\0")[:-1] if log.exists() else []

    # -- helpers ----------------------------------------------------------------------------
    def _setup(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "root" / "etc" / "rancher" / "k3s").mkdir(parents=True, exist_ok=True)
        (self.dir / "bin").mkdir(exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f",
                            str(self.dir / name)], check=True, capture_output=True)
        self.private_key = (self.dir / "client_key").read_text()
        self.public_key = (self.dir / "client_key.pub").read_text().strip()
        (self.dir / "authorized_keys").write_text(self.public_key + "\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.write_kubeconfig(self.expires)
        shell = self.dir / "fake_shell.py"
        shell.write_text(_FAKE_SHELL)
        (self.dir / "bin" / "systemctl").write_text("#!/bin/sh\nexit 0\n")
        (self.dir / "bin" / "k3s").write_text(textwrap.dedent(f"""\
            #!/bin/sh
            if [ "$1 $2" = "certificate rotate" ]; then
              exec {sys.executable} {shell} --rotate {self.dir}
            fi
            echo "k3s stand-in: $*" >&2
            exit 1
            """))
        for tool in ("systemctl", "k3s"):
            (self.dir / "bin" / tool).chmod(0o755)
        (self.dir / "settings").write_text(f"{self.kube_url}\n{self.token}\n")

    def _write_config(self) -> None:
        shell = f"{sys.executable} {self.dir / 'fake_shell.py'} --run {self.dir}"
        (self.dir / "sshd_config").write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {self.dir / 'host_key'}
            PidFile none
            StrictModes no
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            AuthorizedKeysFile {self.dir / 'authorized_keys'}
            ForceCommand {shell}
            LogLevel ERROR
            """))

    def _wait(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None


def _write_kubeconfig(root: Path, kube_url: str, token: str,
                      expires: datetime.datetime) -> None:
    import base64

    import yaml
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:admin"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
    start = min(expires, _now()) - datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(expires)
            .sign(key, hashes.SHA256()))
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    port = kube_url.rsplit(":", 1)[-1].rstrip("/")
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "default",
        # k3s writes 127.0.0.1:6443; the double listens on `port` and speaks HTTP
        "clusters": [{"name": "default", "cluster": {"server": "http://127.0.0.1:6443"}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "users": [{"name": "default", "user": {
            "token": token,
            "client-certificate-data": b64(cert.public_bytes(serialization.Encoding.PEM)),
            "client-key-data": b64(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))}}],
    }
    path = root / "etc" / "rancher" / "k3s" / "k3s.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "api-port").write_text(port)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The session program: `--run DIR` runs the client's command, `--rotate DIR` is
# `k3s certificate rotate`. It runs under the venv's python, so it can issue certificates.
_FAKE_SHELL = '''\
import datetime, os, subprocess, sys
mode, base = sys.argv[1], sys.argv[2]
sys.path.insert(0, %r)
if mode == "--rotate":
    from tests.fakes.k3s_host import _write_kubeconfig
    url, token = open(os.path.join(base, "settings")).read().split()
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    _write_kubeconfig(__import__("pathlib").Path(base) / "root", url, token, expires)
    print("certificates rotated")
    sys.exit(0)
command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
with open(os.path.join(base, "commands.log"), "a") as log:
    log.write(command + "\\0")
command = command.replace("/etc/rancher/k3s", os.path.join(base, "root/etc/rancher/k3s"))
env = {"PATH": os.path.join(base, "bin") + ":/usr/bin:/bin", "HOME": base, "LANG": "C.UTF-8"}
sys.exit(subprocess.run(["bash", "-c", command], env=env).returncode)
''' % str(Path(__file__).resolve().parents[2])
