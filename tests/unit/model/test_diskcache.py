"""The content-keyed disk cache: what goes in comes back as it was, or not at all."""
import os

from deployer.model import diskcache
from deployer.model.diskcache import DiskCache


def test_keys_tell_apart_parts_that_join_to_the_same_bytes():
    assert diskcache.key("ab", "c") != diskcache.key("a", "bc")
    assert diskcache.key("a", b"b") == diskcache.key(b"a", "b")
    assert len(diskcache.key()) == 64


def test_an_entry_comes_back_or_is_a_miss(tmp_path):
    cache = DiskCache(tmp_path / "c")
    assert cache.get("x") is None                     # nothing there yet (no directory)
    value = {"a": [1, 2.5, True, None, "s"], "b": {"nested": {}}}
    cache.put("x", value)
    assert cache.get("x") == value
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["x.json"]   # no temp file left
    (tmp_path / "c" / "x.json").write_text('{"a": [1, ')                  # cut short
    assert cache.get("x") is None
    DiskCache(None).put("x", value)                    # no directory: nothing kept
    assert DiskCache(None).get("x") is None


def test_what_json_would_change_is_not_kept(tmp_path):
    import datetime

    cache = DiskCache(tmp_path)
    for name, value in (("tuple", {"a": (1, 2)}), ("intkey", {1: "x"}),
                        ("date", {"d": datetime.date(2026, 1, 1)}), ("bytes", [b"x"]),
                        ("nan", [float("nan")])):
        cache.put(name, value)
        assert cache.get(name) is None, name
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_be_written_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    DiskCache(blocker / "sub").put("x", [1])           # mkdir fails: the value is not kept
    assert DiskCache(blocker / "sub").get("x") is None


def test_a_file_changed_in_place_has_another_identity_even_with_its_old_size_and_times(tmp_path):
    path = tmp_path / "tool"
    path.write_bytes(b"#!/bin/sh\necho v1.2.3\n")
    before = diskcache.file_identity(path)
    assert before == diskcache.file_identity(path)
    stat = path.stat()
    with open(path, "r+b") as handle:                 # same inode, same size
        handle.write(b"#!/bin/sh\necho v1.2.4\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert diskcache.file_identity(path) != before
    assert diskcache.file_identity(tmp_path / "missing") is None


def test_a_large_file_is_told_apart_by_its_ends_and_its_times(tmp_path):
    path = tmp_path / "big"
    data = bytearray(os.urandom(512 * 1024))
    path.write_bytes(bytes(data))
    first = diskcache.file_identity(path)
    data[10] ^= 1                                      # a build ID lives near the start
    path.write_bytes(bytes(data))
    second = diskcache.file_identity(path)
    assert second != first
    os.utime(path, ns=(1, 1))                          # rewritten or touched: asked again
    assert diskcache.file_identity(path) != second


def test_only_a_program_itself_has_a_program_identity(tmp_path):
    script = tmp_path / "shim"
    script.write_text("#!/bin/sh\nexec real-helm \"$@\"\n")
    assert diskcache.program_identity(script) is None
    elf = tmp_path / "helm"
    elf.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert diskcache.program_identity(elf) is not None
    assert diskcache.program_identity(tmp_path / "missing") is None
    # a link by the program's own name (Homebrew's) is the program; a link of another name
    # to it is a dispatcher that may pick another program next time (mise, aqua)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "helm").symlink_to(elf)
    (tmp_path / "bin" / "sops").symlink_to(elf)
    assert diskcache.program_identity(tmp_path / "bin" / "helm") not in (
        None, diskcache.program_identity(elf))
    assert diskcache.program_identity(tmp_path / "bin" / "sops") is None


def test_a_code_identity_changes_with_any_of_its_files_and_is_none_without_one(tmp_path):
    from deployer.model.diskcache import code_identity

    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text("a = 1\n")
    two.write_text("b = 2\n")
    first = code_identity(one, two)
    assert first and first == code_identity(one, two)
    two.write_text("b = 3\n")
    assert code_identity(one, two) not in (None, first)
    assert code_identity(one, tmp_path / "missing.py") is None
    assert code_identity(one, None) is None
    # ("ab", "c") is not ("a", "bc")
    one.write_text("ab")
    two.write_text("c")
    split = code_identity(one, two)
    one.write_text("a")
    two.write_text("bc")
    assert code_identity(one, two) != split


DAY = 86400


def _aged(path, days, now):
    os.utime(path, (now - days * DAY, now - days * DAY))
    return path


def _cache(tmp_path, now):
    """A cache directory as runs leave it, each thing some days old; and what is not the
    deployer's (which prune never touches, however old)."""
    root = tmp_path / "cache"
    things = {}

    def file(name, path, days, data=""):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
        things[name] = _aged(path, days, now)

    def prepared(key, days, complete=True):
        chart = root / key / ("mybinder" if complete else "chart-a1b2/mybinder")
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text("name: mybinder\n")
        if complete:
            (chart / ".deployer-complete").write_text("")
        things[key] = _aged(root / key, days, now)

    prepared("a" * 20, 40)
    prepared("b" * 20, 2)
    prepared("c" * 20, 3, complete=False)                        # cut short, nothing after it
    (root / ("b" * 20) / "chart-x1y2").mkdir()                   # cut short beside a good one
    things["partial"] = _aged(root / ("b" * 20) / "chart-x1y2", 2, now)
    _aged(root / ("b" * 20), 2, now)
    for sub in ("yaml", "kubernetes", "hcl", "tools", "prerequisite-renders"):
        file(f"{sub} old", root / sub / ("1" * 64 + ".json"), 31, "{}")
        file(f"{sub} new", root / sub / ("2" * 64 + ".json"), 29, "{}")
    file("tmp", root / "yaml" / ".tmp-abc", 2)
    pulled = root / "prerequisites" / ("d" * 12)
    file("old tgz", pulled / "cert-manager-v1.0.0.tgz", 60, "old")
    file("new tgz", pulled / "cert-manager-v1.1.0.tgz", 10, "new")
    (pulled / "pull-xyz").mkdir()
    things["pull tmp"] = _aged(pulled / "pull-xyz", 5, now)
    # not the deployer's: another program's files in a shared cache directory
    for foreign in (root / "notes.txt", root / "yaml" / "notes.json",
                    root / "other" / ("3" * 64 + ".json"), root / ("e" * 19) / "x",
                    root / "repository-cache" / "dep-1-index.yaml",
                    root / "prerequisites" / "mine" / "a.tgz"):
        file(f"foreign {foreign.relative_to(root)}", foreign, 400)
    _aged(root / ("e" * 19), 400, now)
    return root, things


def test_prune_removes_what_no_run_used_for_a_month_and_nothing_else(tmp_path):
    import time

    now = time.time()
    root, things = _cache(tmp_path, now)
    removed = set(diskcache.prune(root, now=now))
    gone = {"a" * 20, "c" * 20, "partial", "tmp", "old tgz", "pull tmp"} | {
        f"{sub} old" for sub in ("yaml", "kubernetes", "hcl", "tools", "prerequisite-renders")}
    assert removed == {things[name] for name in gone}
    for name, path in things.items():
        assert path.exists() == (name not in gone), name
    assert (root / ("b" * 20) / "mybinder" / ".deployer-complete").is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".trash-")]


def test_a_use_keeps_an_entry_and_prune_runs_once_a_day(tmp_path):
    import time

    now = time.time()
    cache = DiskCache(tmp_path / "yaml")
    cache.put("f" * 64, {"a": 1})
    entry = _aged(tmp_path / "yaml" / ("f" * 64 + ".json"), 40, now)
    assert cache.get("f" * 64) == {"a": 1}                     # a hit is a use
    assert diskcache.prune_daily(tmp_path, now=now) == []
    assert entry.exists() and (tmp_path / ".deployer-pruned").is_file()
    _aged(entry, 40, now)
    assert diskcache.prune_daily(tmp_path, now=now + 3600) == []   # pruned less than a day ago
    assert entry.exists()
    assert diskcache.prune_daily(tmp_path, now=now + DAY + 1) == [entry]
    assert diskcache.prune_daily(tmp_path / "missing", now=now) == []
    assert not (tmp_path / "missing").exists()
