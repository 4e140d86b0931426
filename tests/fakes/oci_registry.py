"""A real OCI registry for tests: Debian's ``docker-registry`` (distribution v2.8) on 127.0.0.1.

The registry runs as a subprocess (``docker-registry serve CONFIG.yml``) with a config file
written into a private temporary directory: filesystem storage under that directory, no
auth, deletes enabled, log level error, access log off, ``http.addr`` on a free port of
127.0.0.1 (re-picked when the port turns out to be taken). The package's own
/etc/docker/registry/config.yml (which listens on :5000 and wants htpasswd auth) is never
read, and ``REGISTRY_*`` variables (which would override the config) are not passed on.
The process is terminated (then killed) and the directory removed when the context exits.

Content goes in with the real clients:

* charts with the real ``helm push TGZ oci://HOST/NAMESPACE --plain-http`` (private
  HELM_*_HOME dirs, see chart_repo.helm_env). OCI tags cannot contain ``+``, so helm stores
  chart version ``1.2.3+build.4`` under the tag ``1.2.3_build.4`` (and maps it back when a
  client asks for ``--version 1.2.3+build.4``); ``/v2/NAMESPACE/NAME/tags/list`` shows the
  ``_`` form. helm (v4.1) accepts neither ``oci://.../NAME:1.2.3_build.4`` ("improper
  constraint") nor ``...:1.2.3+build.4`` ("invalid tag") as a reference: always name such
  a chart as ``oci://HOST/NAMESPACE/NAME --version 1.2.3+build.4``. Pre-release versions
  (``1.0.0-0.dev.git.3990.h9a1b2c3d``) are valid tags as they are.
* images with the real ``skopeo copy``: a tiny OCI image layout (oci-layout, index.json, a
  config blob, one gzipped tar layer, a manifest; all sha256-addressed) is generated here
  with Python, pushed once to the first tag, and the other tags are registry-to-registry
  copies of it (only the manifest moves; blobs are already there). skopeo is given its own
  trust policy (``--policy``, accept anything), registries.conf, registries.d, tmpdir and
  HOME, so nothing under /etc/containers or ~ matters.

Distribution 2.8 quirks worth knowing when testing a client against it: ``tags/list``
ignores ``n``/``last`` (every tag, no ``Link`` header; only ``/v2/_catalog`` paginates with
``Link: </v2/_catalog?last=X&n=N>; rel="next"``), and it lists tags in storage-directory
order, not sorted. Every 4xx (e.g. skopeo's HEAD probes for blobs it is about to upload) is
logged at level error, so ``OciRegistry.log()`` is not empty after a successful push.

API:
    registry_available()           None, or why the registry tests must skip
    OciRegistry(...)               context manager; .url, .host, .port
      .push_chart(tgz, namespace="charts") -> "oci://HOST/NAMESPACE/NAME:TAG"
      .push_image_tags(repository, tags)   -> the manifest digest every tag points at
      .tags(repository)                    -> every tag, following the Link pagination
    write_oci_layout(dest, ...)    write a minimal single-image OCI layout, return its digest
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.fakes.chart_repo import ROOT, helm_env

HELM = str(ROOT / ".tools" / "bin" / "helm")
REGISTRY_BIN = "docker-registry"
SKOPEO_BIN = "skopeo"
INSTALL_HINT = ("apt-get install docker-registry skopeo (or run scripts/bootstrap --dev as root)")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def registry_available() -> str | None:
    """None when docker-registry and skopeo are on PATH, else a reason to skip."""
    missing = [b for b in (REGISTRY_BIN, SKOPEO_BIN) if shutil.which(b) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH; {INSTALL_HINT}"
    return None


# --------------------------------------------------------------------------------------------
# A minimal OCI image layout, written with Python
# --------------------------------------------------------------------------------------------

def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest, len(data)


def write_oci_layout(dest: Path, ref_name: str = "latest",
                     content: bytes = b"hello from tests/fakes/oci_registry.py\n") -> str:
    """Write a one-image OCI image layout into dest/ and return the manifest digest.

    The image has one gzipped tar layer holding /hello.txt (`content`), an image config
    whose rootfs.diff_ids name that layer's uncompressed digest, and a manifest referenced
    from index.json under the ``org.opencontainers.image.ref.name`` annotation `ref_name`
    (so ``oci:DEST:REF_NAME`` names it for skopeo). Byte-for-byte deterministic.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = tar_buf.getvalue()
    layer = gzip.compress(tar_bytes, mtime=0)
    layer_digest, layer_size = _blob(dest, layer)

    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/fakes"}],
    }
    config_digest, config_size = _blob(dest, json.dumps(config, sort_keys=True).encode())

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _blob(dest, json.dumps(manifest, sort_keys=True).encode())

    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                       "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": ref_name}}],
    }
    (dest / "index.json").write_text(json.dumps(index, sort_keys=True))
    return manifest_digest


# --------------------------------------------------------------------------------------------
# The registry process
# --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds the listening socket on 127.0.0.1:`port`.

    Guards against a port clash where another server (say a second registry of a parallel
    test) won the port: its /v2/ would answer while ours is failing to bind. Linux /proc
    only; elsewhere this trusts the port (returns True).
    """
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    want = f"0100007F:{port:04X}"
    inodes = {cols[9] for cols in (line.split() for line in table)
              if len(cols) > 9 and cols[1] == want and cols[3] == "0A"}  # 0A: LISTEN
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


class OciRegistry:
    """A distribution v2.8 registry on 127.0.0.1:PORT for the duration of a ``with`` block.

    >>> with OciRegistry() as reg:
    ...     reg.push_image_tags("binder/image", ["1.0", "1.1"])
    ...     reg.push_chart(tgz)          # "oci://127.0.0.1:PORT/charts/NAME:TAG"

    `workdir`: where the temp dir goes (default: the system temp dir); `helm`: the helm
    binary for push_chart (default: this checkout's .tools/bin/helm).
    """

    def __init__(self, workdir: Path | str | None = None, helm: str | None = None,
                 timeout: float = 30.0, attempts: int = 5) -> None:
        self._workdir = workdir
        self.helm = helm or HELM
        self.timeout = timeout
        self.attempts = attempts
        self.port: int | None = None
        self.dir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._helm_env: dict | None = None
        self._skopeo_env: dict | None = None

    # ---- address

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as used in image and OCI chart references."""
        if self.port is None:
            raise RuntimeError("registry not started")
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): the base of the /v2/ API."""
        return f"http://{self.host}"

    # ---- lifecycle

    def __enter__(self) -> "OciRegistry":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "OciRegistry":
        reason = registry_available()
        if reason:
            raise RuntimeError(reason)
        if self._proc is not None:
            raise RuntimeError("registry already started")
        self.dir = Path(tempfile.mkdtemp(prefix="oci-registry-", dir=self._workdir))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        assert self.dir is not None
        storage = self.dir / "storage"
        storage.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        env["HOME"] = str(self.dir)
        last_error = "not started"
        for _attempt in range(self.attempts):
            port = _free_port()
            config = self.dir / "config.yml"
            config.write_text(_CONFIG.format(root=json.dumps(str(storage)), port=port))
            if self._log is not None:
                self._log.close()
            self._log = open(self.dir / "registry.log", "w+b")
            self._proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)], cwd=self.dir, env=env,
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
            self.port = port
            deadline = time.monotonic() + self.timeout
            while self._proc.poll() is None:
                if not _listens(self._proc.pid, port):
                    last_error = f"not listening on {self.host} yet"
                else:
                    try:
                        with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as resp:
                            if resp.status == 200:
                                return
                    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                        last_error = str(e)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"docker-registry on {self.url} did not answer /v2/ "
                                       f"within {self.timeout}s: {last_error}\n{self.log()}")
                time.sleep(0.02)
            # Exited: most likely the port was taken between picking and binding. Retry.
            last_error = f"exited with {self._proc.returncode}: {self.log()}"
            self._proc = None
            self.port = None
        raise RuntimeError(f"could not start docker-registry: {last_error}")

    def log(self) -> str:
        """What the registry printed so far (at level error: failures, and every 4xx)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        """Terminate (then kill) the registry and remove its directory. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self._helm_env = self._skopeo_env = None  # they pointed into the removed directory

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _require_running(self) -> Path:
        if self._proc is None or self._proc.poll() is not None or self.dir is None:
            raise RuntimeError(f"registry not running\n{self.log()}")
        return self.dir

    # ---- charts

    def helm_env(self) -> dict:
        """The env (private HELM_*_HOME dirs) push_chart uses; reuse it to pull/show."""
        base = self._require_running()
        if self._helm_env is None:
            self._helm_env = helm_env(base / "helm-home")
        return self._helm_env

    def push_chart(self, tgz_path: Path | str, namespace: str = "charts") -> str:
        """``helm push TGZ oci://HOST/NAMESPACE --plain-http``; return the pushed reference.

        That is ``oci://HOST/NAMESPACE/NAME:TAG``, as helm reports it ("Pushed: ..."). TAG is
        the chart version with ``+`` replaced by ``_`` (OCI tags allow no ``+``). To read the
        chart back, name the original version:
        ``helm show chart oci://HOST/NAMESPACE/NAME --version VERSION --plain-http`` (helm
        rejects a tag holding ``_`` or ``+`` in the reference itself).
        """
        env = self.helm_env()
        proc = subprocess.run(
            [self.helm, "push", str(tgz_path), f"oci://{self.host}/{namespace}", "--plain-http"],
            env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"helm push {tgz_path} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        m = re.search(r"^Pushed:\s*(\S+)", proc.stdout + proc.stderr, re.MULTILINE)
        if not m:
            raise RuntimeError(f"no 'Pushed:' line in helm push output:\n"
                               f"{proc.stdout}{proc.stderr}")
        ref = m.group(1)
        return ref if ref.startswith("oci://") else f"oci://{ref}"

    # ---- images

    def _skopeo_setup(self) -> dict:
        base = self._require_running()
        if self._skopeo_env is None:
            home = base / "skopeo-home"
            (home / "registries.d").mkdir(parents=True, exist_ok=True)
            (home / "tmp").mkdir(exist_ok=True)
            (home / "policy.json").write_text(
                json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
            (home / "registries.conf").write_text("")
            self._skopeo_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(home),
                "XDG_RUNTIME_DIR": str(home),
                "XDG_CONFIG_HOME": str(home / "config"),
                "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
                "LANG": "C.UTF-8",
            }
        return self._skopeo_env

    def _skopeo_copy(self, src: str, dest: str) -> None:
        env = self._skopeo_setup()
        home = Path(env["HOME"])
        cmd = [SKOPEO_BIN, "--policy", str(home / "policy.json"),
               "--registries.d", str(home / "registries.d"), "--tmpdir", str(home / "tmp"),
               "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
               src, dest]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo copy {src} {dest} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")

    def push_image_tags(self, repository: str, tags: list[str] | tuple[str, ...]) -> str:
        """Push one tiny image to HOST/REPOSITORY under every tag; return its manifest digest.

        The first tag is pushed from a generated OCI layout with ``skopeo copy oci:...``;
        every other tag is a ``skopeo copy docker://HOST/REPOSITORY:FIRST docker://...:TAG``
        (blobs already there: only the manifest is read and put again), about 25 ms a tag.
        The copies run one after the other on purpose: concurrent puts of one manifest make
        distribution 2.8 (filesystem storage) answer reads of that manifest with
        ``500 invalid checksum digest format`` while it rewrites the shared revision link.
        """
        tags = list(tags)
        if not tags:
            raise ValueError("no tags to push")
        base = self._require_running()
        layout = Path(tempfile.mkdtemp(prefix="layout-", dir=base))
        try:
            digest = write_oci_layout(layout, content=f"{repository}\n".encode())
            first = f"docker://{self.host}/{repository}:{tags[0]}"
            self._skopeo_copy(f"oci:{layout}:latest", first)
        finally:
            shutil.rmtree(layout, ignore_errors=True)
        for tag in tags[1:]:
            self._skopeo_copy(first, f"docker://{self.host}/{repository}:{tag}")
        return digest

    # ---- reading

    def tags(self, repository: str, page_size: int | None = None) -> list[str]:
        """Every tag of REPOSITORY from ``/v2/REPOSITORY/tags/list``, following ``Link`` pages.

        Note: distribution 2.8 ignores ``n``/``last`` on tags/list (it always answers with
        every tag and no ``Link`` header; only ``/v2/_catalog`` paginates) and lists tags in
        directory order, not sorted. The Link loop is for registries that do paginate.
        """
        self._require_running()
        path = f"/v2/{repository}/tags/list"
        if page_size:
            path += "?" + urllib.parse.urlencode({"n": page_size})
        out: list[str] = []
        while path:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
                out.extend(json.load(resp).get("tags") or [])
                link = resp.headers.get("Link")
            m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link or "")
            path = m.group(1) if m else ""
            if path.startswith("http"):
                parsed = urllib.parse.urlsplit(path)
                path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        return out
