import pytest

from deployer.errors import ConfigError
from deployer.model.yamlio import dump, format_path, load_text, parse_path


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
