"""Versions ordered by semver, development builds included (packaging rejects them)."""
from __future__ import annotations

import pytest

from deployer.model import versions

DEV_OLD = "1.0.0-0.dev.git.3983.h383374de"
DEV_NEW = "1.0.0-0.dev.git.3990.h9a1b2c3d"


def test_dev_builds_order_by_their_build_number_not_as_text():
    # as text, "…3983…" > "…10000…"; by semver the numeric identifier wins
    assert versions.parse(DEV_OLD) < versions.parse("1.0.0-0.dev.git.10000.h00000000")
    assert versions.newest([DEV_OLD, DEV_NEW, "1.0.0-0.dev.git.10000.habcdef01"], DEV_OLD,
                           prereleases=True).text == "1.0.0-0.dev.git.10000.habcdef01"


def test_the_commit_of_a_dev_build():
    assert versions.parse(DEV_OLD).commit == "383374de"
    assert versions.parse("2025.08.0-12.g3e4f5a6").commit == "3e4f5a6"
    assert versions.parse("41.1.1").commit is None


def test_policy_prereleases_major_and_prefix():
    tags = ["41.1.1", "41.2.0", "42.0.0", "42.1.0-rc.1", "v43.0.0", "latest", "sha-1234"]
    assert versions.newest(tags, "41.1.1").text == "42.0.0"
    assert versions.newest(tags, "41.1.1", hold_major=True).text == "41.2.0"
    assert versions.newest(tags, "41.1.1", prereleases=True).text == "42.1.0-rc.1"
    assert versions.newest(tags, "42.0.0") is None
    assert versions.newest(["v3.6.2", "v3.6.10", "3.7.0"], "v3.6.2").text == "v3.6.10"


def test_a_release_beats_its_prereleases_and_dev_builds():
    assert versions.newest(["1.0.0", DEV_NEW], DEV_OLD, prereleases=True).text == "1.0.0"
    # a current dev build without prereleases allowed moves only to a release
    assert versions.newest([DEV_NEW], DEV_OLD, prereleases=False) is None


def test_calendar_versions_with_leading_zeros():
    assert versions.newest(["2025.08.0", "2025.10.0", "2025.9.1"], "2025.08.0").text == \
        "2025.10.0"


@pytest.mark.parametrize("text", ["latest", "", "main", "1.2.3.4", None, True, "v", "1.0-"])
def test_not_versions(text):
    assert versions.parse(text) is None


def test_major_bump():
    assert versions.is_major_bump("41.1.1", "42.0.0")
    assert not versions.is_major_bump("41.1.1", "41.9.0")


@pytest.mark.parametrize("constraint,ok,not_ok", [
    (">=1.22.0-0", ["1.22", "1.34"], ["1.21"]),
    (">=1.40.0-0", ["1.40"], ["1.34", "1.33"]),
    ("^1.8.0-0", ["1.8", "1.34"], ["2.0", "1.7"]),
    ("~1.30", ["1.30", "1.30.5"], ["1.31", "1.29"]),
    (">= 1.19.0-0 < 1.35.0-0", ["1.19", "1.34"], ["1.35", "1.18"]),
    (">=1.19, <1.35", ["1.34"], ["1.35"]),
    ("1.28 - 1.31", ["1.28", "1.31"], ["1.32", "1.27"]),
    ("1.x", ["1.0", "1.99"], ["2.0"]),
    ("<1.20 || >=1.30", ["1.19", "1.30"], ["1.25"]),
    (">1.30", ["1.31"], ["1.30", "1.30.9"]),
    ("<=1.30", ["1.30.9", "1.29"], ["1.31"]),
])
def test_kube_version_constraints_as_helm_reads_them(constraint, ok, not_ok):
    assert all(versions.satisfies(v, constraint) for v in ok), ok
    assert not any(versions.satisfies(v, constraint) for v in not_ok), not_ok


def test_constraints_compare_versions_as_semver_orders_them():
    """Every operator with every bound shape, on versions around the bound: the verdict is
    what semver's ordering of the plain versions gives (as Masterminds semver decides)."""
    import itertools

    import semver

    def ordered(have, op, low, high=None):
        a, b = semver.Version(*have), semver.Version(*low)
        if high is not None:
            return b <= a < semver.Version(*high)
        return {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b,
                "<=": a <= b}[op]

    around = [(x, y, z) for x in (0, 1, 2) for y in (0, 1, 29, 30, 31) for z in (0, 1, 9)]
    for have, (op, bound) in itertools.product(around, itertools.product(
            ["^", "~", ">=", "<=", ">", "<", "=", "!="], ["0.0.1", "0.1", "1", "1.30", "1.30.1"])):
        parts = [int(p) for p in bound.split(".")] + [0] * (3 - bound.count(".") - 1)
        low, given = tuple(parts), bound.count(".") + 1
        if op == "^":
            high = ((low[0] + 1, 0, 0) if low[0] > 0 or given == 1 else
                    (0, low[1] + 1, 0) if low[1] > 0 or given == 2 else (0, 0, low[2] + 1))
            want = ordered(have, op, low, high)
        elif op == "~":
            want = ordered(have, op, low, (low[0] + 1, 0, 0) if given == 1 else
                           (low[0], low[1] + 1, 0))
        elif given < 3 and op in ("=", "!=", ">", "<="):      # 1.30 means all of 1.30.x
            nxt = (low[0] + 1, 0, 0) if given == 1 else (low[0], low[1] + 1, 0)
            inside = ordered(have, op, low, nxt)
            want = {"=": inside, "!=": not inside, ">": ordered(have, ">=", nxt),
                    "<=": ordered(have, "<", nxt)}[op]
        else:
            want = ordered(have, op, low)
        text = ".".join(map(str, have))
        assert versions.satisfies(text, f"{op}{bound}") is want, (text, op, bound)


def test_an_unreadable_constraint_is_no_verdict():
    assert versions.satisfies("1.34", ">= banana") is None
    assert versions.satisfies("not-a-version", ">=1.0") is None


def test_number_only_tags_do_not_beat_releases_of_another_shape():
    assert versions.newest(["2025.10.0", "20240101", "1234567"], "2025.08.0").text == \
        "2025.10.0"
    assert versions.newest(["20240101", "1234567"], "2025.08.0") is None
    # the shape is the number of core parts as written, and the `v`
    assert versions.newest(["3.13", "3.13.1", "4"], "3.12").text == "3.13"
    assert versions.newest(["v3.7", "v3.6.3", "3.6.4"], "v3.6.2").text == "v3.6.3"
    assert versions.newest(["20240101", "20250101"], "20231201").text == "20250101"
    assert versions.parse("2025.08.0").parts == 3 and versions.parse("v41").parts == 1
