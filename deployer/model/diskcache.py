"""What a deterministic step made of inputs that hold no secret, kept on disk by content hash.

An entry is one JSON file named by the sha256 of everything its value depends on (the
code's or tool's identity, the options, the input bytes), written atomically: a reader sees
all of it or nothing. A missing, unreadable or malformed entry is a miss (the step runs
again); failing to write one is harmless. Entries are never updated in place, so runs of
different versions can share a directory.

Callers decide what may go in: never a decrypted value, nor anything computed from one (a
hash of a short secret can be guessed back). Each use says why its inputs hold none.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping


def key(*parts: str | bytes) -> str:
    """The sha256 of the parts, each length-prefixed (so ("ab", "c") is not ("a", "bc"))."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def default_dir(env: Mapping[str, str], root: Path | str) -> Path:
    """Where the deployer keeps what it can make again (prepared charts, what files parse
    to, tool versions): $DEPLOYER_CACHE_DIR, or <root>/.deployer/charts."""
    return Path(env.get("DEPLOYER_CACHE_DIR") or Path(root) / ".deployer" / "charts")


def stat_text(stat: os.stat_result) -> str:
    """A file's device, inode, size and times: a write changes its ctime (which nothing but
    the kernel sets), a replacement its inode."""
    return (f"{stat.st_dev} {stat.st_ino} {stat.st_size} {stat.st_mtime_ns} "
            f"{stat.st_ctime_ns}")


def code_identity(*paths: str | Path | None) -> str | None:
    """What keys an entry to the code that made it: the sha256 of these source files (a
    module's own, a library's version file); None, so that nothing is kept, when one of them
    is not there or cannot be read (an install of .pyc files only)."""
    digest = hashlib.sha256()
    try:
        for path in paths:
            if path is None:
                return None
            data = Path(path).read_bytes()
            digest.update(f"{len(data)}:".encode())
            digest.update(data)
    except (OSError, TypeError, ValueError):
        return None
    return digest.hexdigest()


def file_identity(path: str | Path) -> str | None:
    """What tells one file (a tool's binary) from another without reading all of it: where
    it is, its inode, size and times, and its first and last 64 KiB (the whole of a small
    file; a Go binary's build ID is at its start). None when it cannot be read."""
    try:
        real = os.path.realpath(path)
        with open(real, "rb") as handle:
            stat = os.fstat(handle.fileno())
            head = handle.read(65536)
            if stat.st_size > 2 * 65536:
                handle.seek(-65536, os.SEEK_END)
            tail = handle.read()
    except OSError:
        return None
    return key(real, stat_text(stat), head, tail)


def program_identity(path: str | Path) -> str | None:
    """file_identity of a program that is the tool itself: an ELF or Mach-O file reached by
    its own name. None for a script (an asdf shim, a wrapper) and for a link to a program of
    another name (a mise or aqua shim: one dispatcher that picks the tool by the name it is
    called with and by its config): what runs may change while they stay the same, so
    nothing they made is kept."""
    if os.path.basename(os.path.realpath(path)) != os.path.basename(path):
        return None
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError:
        return None
    if magic != b"\x7fELF" and magic not in (b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return None
    identity = file_identity(path)
    return key(str(path), identity) if identity else None


class DiskCache:
    """Entries under `directory` (None: nothing is kept, every lookup misses)."""

    def __init__(self, directory: Path | str | None):
        self.directory = Path(directory) if directory is not None else None

    def get(self, name: str | None) -> Any | None:
        """The value kept under `name`, or None (also for no name)."""
        if self.directory is None or name is None:
            return None
        path = self.directory / f"{name}.json"
        try:
            with open(path, encoding="utf-8") as handle:
                value = json.load(handle)
        except (OSError, ValueError):
            return None
        touch(path)               # used: kept by prune() for another KEEP_DAYS
        return value

    def put(self, name: str | None, value: Any) -> None:
        """Keep `value` under `name` if JSON gives it back as it is (not: a date, bytes, a
        tuple, a key that is not a string, NaN); an error, or no name, means it is not kept."""
        if self.directory is None or name is None:
            return
        try:
            text = json.dumps(value, separators=(",", ":"))
            if json.loads(text) != value:
                return
        except (TypeError, ValueError):
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(tmp, self.directory / f"{name}.json")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            pass


KEEP_DAYS = 30            # what no run used for this long is removed (see prune)
_DAY = 86400.0
_ENTRY = re.compile(r"[0-9a-f]{64}\.json")
_PREPARED = re.compile(r"[0-9a-f]{20}")            # stages.chart: a prepared chart's directory
_PULLED = re.compile(r"[0-9a-f]{12}")              # stages.prerequisites: a repository's charts
# the directories of DiskCache entries (what files parse to, what tools say, what is read of
# the Kubernetes schemas); `prerequisite-renders` was kept by earlier versions
ENTRY_DIRS = ("yaml", "hcl", "kubernetes", "tools", "prerequisite-renders")
COMPLETE_MARKER = ".deployer-complete"             # in a prepared chart that is whole
PRUNED_STAMP = ".deployer-pruned"


def touch(path: str | Path) -> None:
    """Note that a kept thing was used now (its mtime), so that prune() keeps it; a cache
    that cannot be written (read-only) is left as it is."""
    try:
        os.utime(path)
    except OSError:
        pass


_used: list[Path] = []       # cache directories this process used (see note_use)


def note_use(directory: str | Path | None) -> None:
    """Note that this run uses `directory`: prune_used() prunes it once the command is done,
    when everything it used has been touched."""
    if directory is not None and Path(directory) not in _used:
        _used.append(Path(directory))


def prune_used(now: float | None = None) -> list[Path]:
    """prune_daily() of every cache directory this process noted (see note_use)."""
    removed = []
    while _used:
        removed += prune_daily(_used.pop(), now=now)
    return removed


def prune_daily(directory: str | Path | None, now: float | None = None) -> list[Path]:
    """prune() the cache directory at most once a day (the first run of the day does it; the
    others see its stamp). Returns what was removed."""
    if directory is None:
        return []
    directory = Path(directory)
    now = time.time() if now is None else now
    stamp = directory / PRUNED_STAMP
    try:
        if now - stamp.stat().st_mtime < _DAY:
            return []
    except OSError:
        if not directory.is_dir():
            return []
    try:
        stamp.touch()
        os.utime(stamp, (now, now))
    except OSError:
        return []             # a cache this run cannot write: nothing is removed either
    return prune(directory, now=now)


def prune(directory: str | Path, keep_days: float = KEEP_DAYS,
          now: float | None = None) -> list[Path]:
    """Remove what the deployer keeps in `directory` and no run used for `keep_days` days
    (each use touches it): prepared charts (complete ones: their marker), DiskCache entries,
    pulled prerequisite charts; and what interrupted runs left half-made, after a day. Only
    what the deployer names so is looked at: anything else in the directory stays. A
    prepared chart is renamed away before it is deleted, so a run never finds one half
    deleted. Returns what was removed."""
    directory = Path(directory)
    now = time.time() if now is None else now
    old, stale = now - keep_days * _DAY, now - _DAY
    removed: list[Path] = []

    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return now

    def remove(path: Path) -> None:
        try:
            if path.is_dir() and not path.is_symlink():
                trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
                os.replace(path, trash)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass

    def children(path: Path) -> list[Path]:
        try:
            return sorted(path.iterdir())
        except OSError:
            return []

    for top in children(directory):
        name = top.name
        if name.startswith(".trash-") and top.is_dir():
            shutil.rmtree(top, ignore_errors=True)          # an earlier prune was cut short
        elif _PREPARED.fullmatch(name) and top.is_dir():
            # its directory's mtime: when it was last used (stages.chart touches it)
            complete = any((chart / COMPLETE_MARKER).is_file() for chart in children(top))
            if complete and mtime(top) < old:
                remove(top)
            elif not complete and mtime(top) < stale and all(
                    child.name.startswith("chart-") for child in children(top)):
                remove(top)                                  # never completed
            else:
                for child in children(top):                  # a preparation cut short
                    if child.name.startswith("chart-") and mtime(child) < stale:
                        remove(child)
        elif name in ENTRY_DIRS and top.is_dir():
            for entry in children(top):
                if (_ENTRY.fullmatch(entry.name) and mtime(entry) < old) or (
                        entry.name.startswith(".tmp-") and mtime(entry) < stale):
                    remove(entry)
        elif name == "prerequisites" and top.is_dir():
            for repo in children(top):
                if not (_PULLED.fullmatch(repo.name) and repo.is_dir()):
                    continue
                for entry in children(repo):
                    if (entry.suffix == ".tgz" and entry.is_file() and mtime(entry) < old) or (
                            entry.name.startswith("pull-") and mtime(entry) < stale):
                        remove(entry)
    return removed


__all__ = ["DiskCache", "KEEP_DAYS", "default_dir", "file_identity", "key", "note_use",
           "program_identity", "prune", "prune_daily", "prune_used", "stat_text", "touch"]
