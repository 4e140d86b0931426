"""The Redactor: secret values masked in text and value trees, in every encoding."""
import base64
import json

import pytest
import yaml

from deployer.model.redact import Redactor

CANARY = "canary-7f3a9c-do-not-print"
CANARY_B64 = base64.b64encode(CANARY.encode()).decode()


def test_redactor_masks_plain_and_base64_forms():
    redactor = Redactor([CANARY, "abc", True, 12])
    text = f"a {CANARY} b {CANARY_B64} c {CANARY_B64.rstrip('=')} abc"
    assert redactor.text(text) == "a *** b *** c *** abc"
    tree = redactor.tree({"x": {"y": "public", "z": [f"in {CANARY}"]}}, [("x", "y")])
    assert tree == {"x": {"y": "***", "z": ["in ***"]}}


def test_multi_line_secrets_are_masked_in_manifests():
    from deployer.model import manifests

    secret = "-----BEGIN KEY-----\nc2VjcmV0LWxpbmUtb25l\nc2VjcmV0LWxpbmUtdHdv\n-----END KEY-----\n"
    objects = manifests.parse(yaml_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "x"}, "data": {"key": secret}}))
    text = manifests.redacted_text(objects, Redactor([secret]))
    assert "c2VjcmV0LWxpbmUtb25l" not in text and "c2VjcmV0LWxpbmUtdHdv" not in text


def yaml_dump(data):
    import yaml

    return yaml.safe_dump(data)


# -- every encoding helm and YAML produce ------------------------------------------------------
LONG = ("correct horse battery staple " * 6).strip()          # > 80 columns: YAML folds it
UMLAUT = "pässwörd-äöü-geheim-ß"                                # non-ASCII: escaped as \xE4
B64 = base64.b64encode(b"-----BEGIN KEY-----\x00\x01binary-key-material").decode()


def _leaks(text: str) -> list[str]:
    pieces = [LONG, UMLAUT, B64, "battery staple correct horse battery", "geheim"]
    return [p for p in pieces if p in text] + (["umlaut escape"] if "p\\xE4ss" in text or
                                                "p\\xe4ss" in text or "p\\u00e4" in text
                                                else [])


@pytest.mark.parametrize("serialise", [
    lambda d: yaml.safe_dump(d, width=60),                       # folded, \x escapes
    lambda d: yaml.safe_dump(d, allow_unicode=True, width=60),
    lambda d: yaml.safe_dump(d, default_style='"', width=60),    # double-quoted, \ breaks
    lambda d: json.dumps(d),                                     # \u00e4
    lambda d: json.dumps(d, ensure_ascii=False, indent=2),
], ids=["yaml", "yaml-unicode", "yaml-double-quoted", "json", "json-unicode"])
def test_text_search_catches_folded_escaped_and_base64_forms(serialise):
    data = {"config": {"long": LONG, "umlaut": UMLAUT, "key": B64,
                       "embedded": f"password={UMLAUT}; token={LONG}"}}
    text = serialise(data)
    assert _leaks(text), "the serialiser must show the secrets in some form"
    assert _leaks(Redactor([LONG, UMLAUT, B64]).text(text)) == []


def test_tree_masking_is_by_position_and_stays_valid_yaml():
    redactor = Redactor([LONG, UMLAUT])
    inner = base64.b64encode(json.dumps({"auths": {"r": {"password": UMLAUT}}}).encode()).decode()
    tree = {"a": LONG, "b": f"x {UMLAUT} y", "c": inner, "d": "public", "e": [UMLAUT, 3]}
    masked = redactor.tree(tree)
    assert masked == {"a": "***", "b": "x *** y", "c": "***", "d": "public", "e": ["***", 3]}
    assert yaml.safe_load(yaml.safe_dump(masked)) == masked


def test_a_secret_cut_short_by_a_message_is_masked():
    secret = "s3cr3t-" + "x" * 80
    redactor = Redactor([secret])
    assert redactor.text(f'got "{secret[:57]}..."') == 'got "***..."'
    assert redactor.text(f"value: {secret[:30]}") == "value: ***"
    assert redactor.text(f"prefix {secret[:8]} and more") == f"prefix {secret[:8]} and more"
