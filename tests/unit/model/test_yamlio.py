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
