import pytest

from deployer.errors import ConfigError
from deployer.model.yamlio import MAX_BYTES, dump, format_path, load_file, load_text, parse_path


def test_lines_of_nested_keys_and_list_items():
    doc = load_text("a:\n  b: 1\n  c:\n    - x: 1\n    - z\nd: null\n", "f.yaml")
    assert doc.data == {"a": {"b": 1, "c": [{"x": 1}, "z"]}, "d": None}
    assert doc.lines[("a", "b")] == 2
    assert doc.lines[("a", "c", 1)] == 5
    assert doc.line_of(("a", "c", 0, "x", "deeper")) == 4
    assert doc.lines[("d",)] == 6


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(ConfigError) as info:
        load_text("a:\n  b: [1, 2\nc: 3\n", "config/x.yaml")
    assert info.value.file == "config/x.yaml"
    assert info.value.line == 3
    assert "malformed YAML" in str(info.value)


def test_duplicate_keys_are_an_error():
    with pytest.raises(ConfigError, match="written twice"):
        load_text("a: 1\nb: 2\na: 3\n", "dup.yaml")


def test_a_duplicate_key_is_named_without_its_values():
    # (they may be secrets: the decrypted values of a sops file are read by the same code)
    with pytest.raises(ConfigError) as info:
        load_text("a: 1\nb:\n  x: hunter2\nb:\n  y: other\n", "s.yaml")
    assert str(info.value) == ("s.yaml:4: malformed YAML: the key 'b' is written twice in one "
                               "map (hint: keep one of them (or indent one under another key))")


@pytest.mark.parametrize("dotted,parts", [
    ("a.b.c", ("a", "b", "c")),
    (r"ingress.annotations.cert-manager\.io/cluster-issuer",
     ("ingress", "annotations", "cert-manager.io/cluster-issuer")),
    ("hosts[2].url", ("hosts", 2, "url")),
])
def test_dotted_paths_round_trip(dotted, parts):
    assert parse_path(dotted) == parts
    assert format_path(parts) == dotted


def test_dump_keeps_key_order():
    assert dump({"z": 1, "a": {"y": [1, 2]}}) == "z: 1\na:\n  y:\n  - 1\n  - 2\n"


# -- bad input: one ConfigError naming the file, never a traceback -----------------------------
@pytest.mark.parametrize("text,expected", [
    ("a: !!python/object:os.system {x: 1}\n", "a: unsupported YAML tag !!python/object:os.system"),
    ("a:\n  b: !!python/name:os.system\n", "a.b: unsupported YAML tag !!python/name:os.system"),
    ("a: !vault 3\n", "a: unsupported YAML tag !vault"),
    ("a: !!binary aGVsbG8=\n", "unsupported YAML value of type bytes"),
    ("a: !!set {x, y}\n", "unsupported YAML value"),
    ("a: " + "{b: " * 80 + "1" + "}" * 80 + "\n", "nested deeper than 64 levels"),
    ("a: !!int nope\n", "malformed YAML: invalid literal for int()"),
    ("a: +_\n", "malformed YAML: a plain value of only a sign and underscores"),
])
def test_unsupported_yaml_is_one_config_error(text, expected):
    with pytest.raises(ConfigError) as info:
        load_text(text, "config/common.yaml")
    assert info.value.file == "config/common.yaml"
    assert expected in str(info.value)


def test_core_tags_are_honoured():
    assert load_text("a: !!str 3\nb: !!int '4'\nc: !!bool 'true'\n", "f").data == \
        {"a": "3", "b": 4, "c": True}


def test_alias_bomb_is_refused_quickly():
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 4096
    with pytest.raises(ConfigError, match="expands to more than 200000 values"):
        load_text(text, "config/common.yaml")


def test_deep_nesting_beyond_the_parser_is_refused():
    with pytest.raises(ConfigError, match="nested deeper"):
        load_text("a: " + "[" * 3000 + "]" * 3000 + "\n", "config/common.yaml")


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "common.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_file(path, "config/common.yaml")
    assert str(info.value).startswith("config/common.yaml:2: not valid UTF-8 (byte 0xe9)")


def test_huge_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "common.yaml"
    with open(path, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    with pytest.raises(ConfigError, match="the limit is 4 MiB"):
        load_file(path, "config/common.yaml")


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        load_file(tmp_path, "config/common.yaml")


def _fresh(path, label, cache=None):
    """load_file as the next run would call it (this process's copy forgotten)."""
    from deployer.model import yamlio

    yamlio._load_cached.cache_clear()
    return load_file(path, label, cache=cache)


VALUES = ("# values\nhub:\n  replicas: 2\n  ratio: 0.5\n  on: 'yes'\n  off: 'no'\n"
          "  when: 2026-01-02\n  empty: null\n  list:\n    - a\n    - {b: 1}\nexplicit: !!str 3\n")


def test_a_parse_kept_on_disk_gives_what_parsing_gives(tmp_path):
    cache = tmp_path / "cache"
    path = tmp_path / "values.yaml"
    path.write_text(VALUES)
    plain = _fresh(path, "config/values.yaml")
    first = _fresh(path, "config/values.yaml", cache)
    entries = list(cache.iterdir())
    assert len(entries) == 1
    again = _fresh(path, "config/values.yaml", cache)          # read back
    for doc in (first, again):
        assert (doc.data, doc.lines, doc.label) == (plain.data, plain.lines, plain.label)
    assert again.data["hub"]["when"] == "2026-01-02" and again.data["explicit"] == "3"
    # the same bytes elsewhere, under another label: the kept parse, with its own label
    other = tmp_path / "copy.yaml"
    other.write_text(VALUES)
    copy = _fresh(other, "config/copy.yaml", cache)
    assert copy.label == "config/copy.yaml" and copy.data == plain.data
    assert list(cache.iterdir()) == entries
    # (what is kept is what the next run reads: shown by changing it)
    import json

    kept = json.loads(entries[0].read_text())
    kept["data"]["hub"]["replicas"] = 7
    entries[0].write_text(json.dumps(kept))
    assert _fresh(path, "config/values.yaml", cache).data["hub"]["replicas"] == 7
    # a changed file is parsed again; a broken entry is parsed again and written anew
    path.write_text(VALUES.replace("replicas: 2", "replicas: 3"))
    assert _fresh(path, "config/values.yaml", cache).data["hub"]["replicas"] == 3
    assert len(list(cache.iterdir())) == 2
    for entry in cache.iterdir():
        entry.write_text('{"data": {"hub": ')
    assert _fresh(path, "config/values.yaml", cache).data["hub"]["replicas"] == 3
    assert _fresh(path, "config/values.yaml", cache).lines[("hub", "replicas")] == 3


def test_a_bad_file_and_a_sops_file_are_never_kept(tmp_path):
    cache = tmp_path / "cache"
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        _fresh(bad, "bad.yaml", cache)
    encrypted = tmp_path / "secrets.yaml"
    encrypted.write_text("token: ENC[AES256_GCM,data:abc=,iv:x=,tag:y=,type:str]\n"
                         "sops:\n  mac: ENC[AES256_GCM,data:m=,iv:i=,tag:t=,type:str]\n")
    assert _fresh(encrypted, "secrets.yaml", cache).data["token"].startswith("ENC[")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_what_ruamel_yaml_fails_on_inside_is_one_config_error():
    for text in ("a: #\n 1_0\n\n", "\n\n| #", "a: # s3cr3t-token\n 1_0\n\n"):
        with pytest.raises(ConfigError, match="ruamel.yaml cannot read it") as info:
            load_text(text, "config/common.yaml")
        assert "s3cr3t" not in str(info.value)     # what ruamel.yaml says quotes the comment
    assert load_text("a: #\n p\n\n", "t.yaml").data == {"a": "p"}     # valid: read quickly


def test_merge_keys_are_read_even_alone_in_their_map():
    doc = load_text("a: &x {b: 1}\nc:\n  <<: *x\nd:\n  <<: *x\n  e: 2\n", "t.yaml")
    assert doc.data == {"a": {"b": 1}, "c": {"b": 1}, "d": {"e": 2, "b": 1}}
    assert doc.line_of(("c", "b")) == 2 and doc.lines[("d", "e")] == 6


def test_anchored_scalars_keep_their_types():
    doc = load_text("x: &b true\ny: *b\nn: &n 3\nf: &f 1.5\noff: &o false\n", "t.yaml")
    assert doc.data == {"x": True, "y": True, "n": 3, "f": 1.5, "off": False}
    assert [type(v) for v in doc.data.values()] == [bool, bool, int, float, bool]


# -- the quick reading (libyaml's events) against ruamel.yaml's ---------------------------------
# load_text reads a document through libyaml where it is sure ruamel.yaml (YAML 1.2) reads it
# the same, and through ruamel.yaml otherwise. Whatever the quick reading accepts must be
# exactly what ruamel.yaml makes of it - the same values of the same types, the same lines -
# and it must accept nothing ruamel.yaml rejects.

def _typed(node):
    if isinstance(node, dict):
        return ("map", [(k, _typed(v)) for k, v in node.items()])
    if isinstance(node, list):
        return ("seq", [_typed(v) for v in node])
    return (type(node).__name__, repr(node))


def _agrees(text):
    """True when the quick reading took `text` (and agreed); False when it left it."""
    from deployer.model import yamlio

    quick = yamlio._load_plain(text, "t.yaml")
    try:
        careful = yamlio._load_careful(text, "t.yaml")
    except ConfigError as exc:
        # (except where ruamel.yaml fails inside on valid YAML: its comment handling)
        assert quick is None or "ruamel.yaml cannot read it" in str(exc), \
            f"accepted what ruamel.yaml rejects ({exc}):\n{text}"
        return False
    if quick is None:
        return False
    assert _typed(quick.data) == _typed(careful.data), text
    assert quick.lines == careful.lines, text
    return True


def _corpus():
    from pathlib import Path

    from tests.fakes.chart_repo import UPSTREAM

    root = Path(__file__).resolve().parents[3]
    found = []
    for base in (root / "config", root / "mybinder", root / "tests", root / "secrets",
                 *([UPSTREAM] if UPSTREAM else []), root / ".github"):
        found += sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml")
                        and p.is_file() and p.stat().st_size < 400_000)
    return found


def test_the_quick_reading_agrees_on_every_yaml_file_here():
    files = _corpus()
    assert len(files) > 40
    taken = [p for p in files if _agrees(p.read_text(encoding="utf-8"))]
    # the usual file is read quickly: config, values, Chart.yaml, sops files (ENC[...] values
    # are plain strings); not the charts' templates, which are not YAML
    assert {"values.yaml", "Chart.yaml", "federation.yaml", "staging.yaml"} <= \
        {p.name for p in taken}
    readable = [p for p in files if "templates" not in p.parts]
    assert len(taken) > 0.8 * len(readable), sorted(set(readable) - set(taken))


SCALARS = [
    "0", "-0", "00", "007", "0o17", "0x1F", "0b101", "1_000", "+1", "-1", "12", "1e3", "1E+3",
    "1.5", "-1.5", "+1.5", "1.", ".5", "1.50", "-0.0", "0.0", "10.25e-2", ".inf", "-.Inf",
    ".nan", "1:30", "190:20:30", "2025-01-01", "2025-1-1 10:00:00", "2025-01-01T10:00:00Z",
    "yes", "no", "on", "off", "y", "n", "Y", "~", "null", "Null", "NULL", "nULL", "true",
    "True", "TRUE", "tRUE", "false", "False", "<<", "=", "-", "--flag=1", "1-2", "1.2.3",
    "v1.2", "12abc", "0.1.0", "1e", "e1", "Infinity", "NaN", "12:00", "a b", "x#y", "x #y",
    "'single'", "'it''s'", '"double"', '"esc \\t \\u00e9 \\x41"', '"slash \\/"', '""', "''",
    "|\n    line one\n    line two\n", "|-\n    kept\n\n", "|+\n    kept\n\n", ">\n    fold\n"
    "    ed\n\n    para\n", ">-\n      more\n    less\n", "|2\n     indented\n", "&a anchored",
    "&b true", "!!str 3", "!!int '4'", "!custom x", "! 12", "[1, a, 'b', {c: ~}]", "{a: 1, b}",
    "[]", "{}", "\"multi\n    line\"", "plain\n    continued", "é", "日本", "tab\tin", "😀",
    "\"\\N\\_\\L\\P\"", "? complex", "*a", "", "- item",
]


def test_the_quick_reading_agrees_on_every_kind_of_scalar():
    """The scalars above, and every short plain scalar made of what numbers, timestamps,
    booleans and nulls are made of: the quick reading leaves to ruamel.yaml what it would not
    read the same."""
    import itertools

    alphabet = "01789.-+_:eExXobT ~nNtf"
    short = ["".join(chars) for size in (1, 2, 3) for chars in
             itertools.product(alphabet, repeat=size)]
    short = [s for s in short if s == s.strip() and not s.startswith(("- ", ": "))]
    for scalar in short:
        _agrees(f"k: {scalar}\n")
    taken = 0
    for scalar in SCALARS:
        for text in (f"key: {scalar}\n", f"list:\n  - {scalar}\n  - after\n",
                     f"a:\n  b: 1\n  c: {scalar}\nd: [x, y]\n", f"{scalar}: v\nother: 1\n",
                     f"- {scalar}\n", f"{{k: {scalar}}}\n" if "\n" not in scalar else "k: 1\n"):
            taken += _agrees(text)
    assert taken > 265      # (yes, no, on, off, y, n, Y as values: refused, see below)


@pytest.mark.parametrize("text, line, key, word, meant", [
    ("prometheus:\n  enabled: no\n", 2, "prometheus.enabled", "no", "false"),
    ("a: 1\nlist:\n  - x\n  - On\n", 4, "list[1]", "On", "true"),
    ("a: {b: Y}\n", 1, "a.b", "Y", "true"),
    ("k: &x off\nother: *x\n", 1, "k", "off", "false"),
])
def test_an_unquoted_yaml11_boolean_word_as_a_value_is_refused(text, line, key, word, meant):
    # helm and kubectl read `enabled: no` as false (YAML 1.1); YAML 1.2 as the word "no":
    # which one the operator meant is not for this tool to guess
    with pytest.raises(ConfigError) as info:
        load_text(text, "config/x.yaml")
    assert (info.value.file, info.value.line, info.value.key) == ("config/x.yaml", line, key)
    assert str(info.value).endswith(
        f"{word} (unquoted) is {meant} to helm and kubectl (YAML 1.1) but the word '{word}' "
        f"to YAML 1.2, which this tool reads: write {meant} for the boolean, or '{word}' "
        "(quoted) for the word")


def test_quoted_or_tagged_words_and_keys_are_read_as_yaml_12_reads_them():
    from deployer.model import yamlio

    text = ("on: 1\nyes:\n  a: 'no'\n  b: \"off\"\n  c: !!str y\n  d: |\n    on\n"
            "  e: [true, False, 'N']\n  f: nothing\n")
    doc = load_text(text, "x.yaml")
    assert doc.data == {"on": 1, "yes": {"a": "no", "b": "off", "c": "y", "d": "on\n",
                                         "e": [True, False, "N"], "f": "nothing"}}
    assert yamlio._load_plain("on: 1\nn: x\n", "x.yaml").data == {"on": 1, "n": "x"}  # quick
    # what the tool only looks into (a sops file's values in clear) reads them as words
    assert load_text("a: no\n", "s.yaml", yaml11_words=True).data == {"a": "no"}


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n", "a: &x {b: 1}\nc:\n  <<: *x\n", "%YAML 1.1\n---\na: yes\n",
    "a: 1\n---\nb: 2\n", "? [a, b]\n: 1\n", "a: 1\r\nb:\r\n  - x\r\n", "\ufeffa: 1\n",
    "a: x\u2028y\n", "a: x\x85y\n", "a: '\u0007'\n", "a:\tb\n", "a: 1 # c\n# end\n",
    "a: [1, 2\n", "a: b: c\n", "- a\nb: 1\n", "a:\n  - b\n  -\n  - c\n", "a:\n-\n- x\n",
    "---\n", "", "# only a comment\n", "...\n", "plain\n", "a: " + "[" * 70 + "]" * 70 + "\n",
    "'a': 1\n\"b\": 2\n", "a: {b: [c, {d: e}], f: g}\n", "a: !!map {b: 1}\n", "a: &n\nb: 1\n",
    # (found by review: libyaml and ruamel.yaml differ on these)
    "a: &b:c 1\n", "&k:v a: 1\n", "a: |#note\n  x\n", "a: >-#\n  x\n", "a: |2#\n   x\n",
    "a: |\n \n  x\n", "a: >\n \n  x\n", "a: |\r\n \r\n  x\r\n", "a:\n  b: |\n   \n    x\n",
    "a: |\n \n  \n", '["a":b]\n', "a: #\n p\n\n", "a: #\n 1_0\n\n", "\n\n| #",
])
def test_the_quick_reading_agrees_on_structure(text):
    _agrees(text)


def test_the_quick_reading_agrees_on_variations_of_the_files_here():
    """Lines of the repository's YAML files with their values swapped for the scalars above
    (deterministically sampled)."""
    import random
    import re

    rng = random.Random(15)
    value = re.compile(r"^(\s*(?:- )?[\w./-]+:) (\S.*)$")
    tried = taken = 0
    for path in _corpus():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:400]
        spots = [i for i, line in enumerate(lines) if value.match(line)]
        for i in rng.sample(spots, min(len(spots), 6)):
            scalar = rng.choice(SCALARS)
            if "\n" in scalar:
                indent = len(lines[i]) - len(lines[i].lstrip())
                scalar = scalar.replace("\n    ", "\n" + " " * (indent + 4))
            varied = lines[:i] + [value.sub(lambda m: f"{m.group(1)} {scalar}",
                                            lines[i].rstrip("\n")) + "\n"] + lines[i + 1:]
            tried += 1
            taken += _agrees("".join(varied))
    assert tried > 200 and taken > tried / 3
