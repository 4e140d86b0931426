import pytest

from deployer.errors import ConfigError
from deployer.model.yamlio import MAX_BYTES, dump, format_path, load_file, load_text, parse_path


def test_lines_of_nested_keys_and_list_items():
    doc = load_text("a:\n  b: 1\n  c:\n    - x: 1\n    - y\nd: null\n", "f.yaml")
    assert doc.data == {"a": {"b": 1, "c": [{"x": 1}, "y"]}, "d": None}
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
    with pytest.raises(ConfigError, match="duplicate key"):
        load_text("a: 1\nb: 2\na: 3\n", "dup.yaml")


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


VALUES = ("# values\nhub:\n  replicas: 2\n  ratio: 0.5\n  on: yes\n  off: 'no'\n"
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


def test_anchored_scalars_keep_their_types():
    doc = load_text("x: &b true\ny: *b\nn: &n 3\nf: &f 1.5\noff: &o false\n", "t.yaml")
    assert doc.data == {"x": True, "y": True, "n": 3, "f": 1.5, "off": False}
    assert [type(v) for v in doc.data.values()] == [bool, bool, int, float, bool]
