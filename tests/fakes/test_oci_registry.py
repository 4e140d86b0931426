"""The OCI registry double: a real distribution registry, fed by the real helm and skopeo."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.fakes import oci_registry
from tests.fakes.oci_registry import HELM, OciRegistry, registry_available, write_oci_layout


@pytest.fixture
def registry(tmp_path):
    reason = registry_available()
    if reason:
        pytest.skip(reason)
    with OciRegistry(workdir=tmp_path) as reg:
        yield reg


def _tiny_chart(tmp_path: Path, env: dict, name: str, version: str) -> Path:
    """`helm package` a one-file chart NAME-VERSION into tmp_path/pkg/ and return the .tgz."""
    src = tmp_path / "src" / f"{name}-{version}" / name
    src.mkdir(parents=True)
    (src / "Chart.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v2", "name": name, "version": version, "description": "tiny test chart"}))
    out = tmp_path / "pkg"
    subprocess.run([HELM, "package", str(src), "--destination", str(out)], env=env, check=True,
                   capture_output=True, text=True, timeout=60)
    tgz = out / f"{name}-{version}.tgz"
    assert tgz.is_file()
    return tgz


def _helm(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HELM, *args], env=env, capture_output=True, text=True, timeout=60)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


# ------------------------------------------------------------------------------ the layout

def test_oci_layout_is_content_addressed(tmp_path):
    digest = write_oci_layout(tmp_path / "layout", content=b"abc\n")
    layout = tmp_path / "layout"
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    blobs = layout / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    manifest_bytes = (blobs / digest.split(":")[1]).read_bytes()
    assert entry["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    (layer,) = manifest["layers"]
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    tar_bytes = gzip.decompress((blobs / layer["digest"].split(":")[1]).read_bytes())
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]
    with tarfile.open(blobs / layer["digest"].split(":")[1]) as tar:
        assert tar.extractfile("hello.txt").read() == b"abc\n"
    # deterministic: same content, same digest
    assert write_oci_layout(tmp_path / "again", content=b"abc\n") == digest


# ------------------------------------------------------------------------------ the registry

def test_registry_available_here():
    # scripts/bootstrap --dev installs both; report (not fail) when this machine lacks them
    reason = registry_available()
    if reason:
        pytest.skip(reason)
    assert reason is None


def test_image_tags_are_listed(registry):
    assert registry.url == f"http://{registry.host}"
    assert registry.host.startswith("127.0.0.1:") and registry.host != "127.0.0.1:5000"
    assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200

    digest = registry.push_image_tags("binder/r2d-image", ["2024.01.0", "2024.02.0", "latest"])
    resp = requests.get(f"{registry.url}/v2/binder/r2d-image/tags/list", timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert body["name"] == "binder/r2d-image"
    assert sorted(body["tags"]) == ["2024.01.0", "2024.02.0", "latest"]

    # Every tag names the same manifest, fetchable by digest; its blobs are there.
    for tag in body["tags"]:
        m = requests.get(f"{registry.url}/v2/binder/r2d-image/manifests/{tag}", timeout=5,
                         headers={"Accept": oci_registry.OCI_MANIFEST})
        assert m.status_code == 200
        assert m.headers["Docker-Content-Digest"] == digest
        assert "sha256:" + hashlib.sha256(m.content).hexdigest() == digest
    manifest = m.json()
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = requests.get(f"{registry.url}/v2/binder/r2d-image/blobs/{desc['digest']}",
                            timeout=5)
        assert blob.status_code == 200 and len(blob.content) == desc["size"]

    # distribution 2.8 does not paginate tags/list: `n` is ignored and no Link is sent ...
    paged = requests.get(f"{registry.url}/v2/binder/r2d-image/tags/list", params={"n": 2},
                         timeout=5)
    assert paged.status_code == 200
    assert sorted(paged.json()["tags"]) == ["2024.01.0", "2024.02.0", "latest"]
    assert "Link" not in paged.headers
    # ... only the catalog does, with an RFC 5988 Link to the next page.
    registry.push_image_tags("binder/other", ["v1"])
    registry.push_image_tags("binder/third", ["v1"])
    cat = requests.get(f"{registry.url}/v2/_catalog", params={"n": 2}, timeout=5)
    assert cat.json() == {"repositories": ["binder/other", "binder/r2d-image"]}
    assert cat.headers["Link"] == '</v2/_catalog?last=binder%2Fr2d-image&n=2>; rel="next"'
    # The helper follows Link pages where a registry sends them.
    assert sorted(registry.tags("binder/r2d-image", page_size=2)) == \
        ["2024.01.0", "2024.02.0", "latest"]
    missing = requests.get(f"{registry.url}/v2/binder/nope/tags/list", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_thirty_tags_push_quickly(registry):
    tags = [f"2025.{m:02d}.{i}" for m in range(1, 4) for i in range(10)]
    t0 = time.monotonic()
    registry.push_image_tags("binder/many", tags)
    elapsed = time.monotonic() - t0
    assert sorted(registry.tags("binder/many")) == sorted(tags)
    assert elapsed < 15, f"30 tags took {elapsed:.1f}s"  # ~1 s here; generous for slow CI


def test_chart_push_and_show(registry, tmp_path):
    env = registry.helm_env()
    versions = ["1.0.0-0.dev.git.3990.h9a1b2c3d", "1.2.3+build.4"]
    refs = [registry.push_chart(_tiny_chart(tmp_path, env, "tiny", v)) for v in versions]
    # OCI tags may not hold '+': helm pushes 1.2.3+build.4 as the tag 1.2.3_build.4.
    assert refs == [f"oci://{registry.host}/charts/tiny:1.0.0-0.dev.git.3990.h9a1b2c3d",
                    f"oci://{registry.host}/charts/tiny:1.2.3_build.4"]
    body = requests.get(f"{registry.url}/v2/charts/tiny/tags/list", timeout=5).json()
    assert sorted(body["tags"]) == ["1.0.0-0.dev.git.3990.h9a1b2c3d", "1.2.3_build.4"]

    for version in versions:
        shown = _helm(env, "show", "chart", f"oci://{registry.host}/charts/tiny",
                      "--version", version, "--plain-http")
        assert shown.returncode == 0, shown.stderr
        assert yaml.safe_load(shown.stdout)["version"] == version
    # Without --version helm takes the highest semver among the tags (mapped back to '+').
    latest = _helm(env, "show", "chart", f"oci://{registry.host}/charts/tiny", "--plain-http")
    assert yaml.safe_load(latest.stdout)["version"] == "1.2.3+build.4"
    # A tag with build metadata cannot be named in the reference itself, in either spelling.
    for tag in ("1.2.3_build.4", "1.2.3+build.4"):
        bad = _helm(env, "show", "chart", f"oci://{registry.host}/charts/tiny:{tag}",
                    "--plain-http")
        assert bad.returncode != 0

    # The manifest is helm's: chart config + content layer media types.
    m = requests.get(f"{registry.url}/v2/charts/tiny/manifests/1.2.3_build.4", timeout=5,
                     headers={"Accept": oci_registry.OCI_MANIFEST}).json()
    assert m["config"]["mediaType"] == "application/vnd.cncf.helm.config.v1+json"
    assert [layer["mediaType"] for layer in m["layers"]] == [
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"]
    assert m["annotations"]["org.opencontainers.image.version"] == "1.2.3+build.4"

    # Another namespace is another repository.
    ref = registry.push_chart(_tiny_chart(tmp_path / "b", env, "other", "0.1.0"),
                              namespace="mirror/charts")
    assert ref == f"oci://{registry.host}/mirror/charts/other:0.1.0"
    assert registry.tags("mirror/charts/other") == ["0.1.0"]


@pytest.mark.parametrize("fail_inside", [False, True], ids=["clean-exit", "exception"])
def test_registry_stopped_after_context(tmp_path, fail_inside):
    reason = registry_available()
    if reason:
        pytest.skip(reason)
    with pytest.raises(RuntimeError, match="boom") if fail_inside else contextlib.nullcontext():
        with OciRegistry(workdir=tmp_path) as reg:
            pid, url, workdir = reg.pid, reg.url, reg.dir
            assert pid and _alive(pid) and workdir.is_dir()
            if fail_inside:
                raise RuntimeError("boom")
    assert not _alive(pid)
    assert not workdir.exists()
    assert reg.pid is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/", timeout=2)
    reg.stop()  # idempotent


def test_port_clash_is_retried(tmp_path, monkeypatch):
    """A port taken between picking and binding (here by another registry, whose /v2/ would
    answer) makes the new registry exit; it is restarted on another port, never mistaken
    for the one already there."""
    reason = registry_available()
    if reason:
        pytest.skip(reason)
    with OciRegistry(workdir=tmp_path) as first:
        taken = first.port
        real_free_port = oci_registry._free_port
        picks = iter([taken])
        monkeypatch.setattr(oci_registry, "_free_port",
                            lambda: next(picks, None) or real_free_port())
        with OciRegistry(workdir=tmp_path) as second:
            assert second.port != taken
            assert oci_registry._listens(second.pid, second.port)
            assert not oci_registry._listens(second.pid, taken)
            second.push_image_tags("only/second", ["x"])
            assert requests.get(f"{first.url}/v2/_catalog", timeout=5).json() == \
                {"repositories": []}
            assert requests.get(f"{second.url}/v2/_catalog", timeout=5).json() == \
                {"repositories": ["only/second"]}
