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


# -- masked output stays valid YAML (a bare *** is an alias and does not parse) ---------------
NUMBER = 98765432                                               # a numeric secret (a PIN, an id)


def _every_shape(secret: str) -> dict:
    return {"alone": secret, "prefix": f"{secret}-suffix", "inside": f"pre {secret} post",
            "quote": f"it's {secret}", "number": NUMBER, "number_text": str(NUMBER),
            secret: "a key that is a secret", f"{secret}.2": "a key that starts with one",
            "block": f"line one\n{secret} at a line start\nc.token = '{secret}'\n",
            "flow": f"{{user: admin, password: {secret}}}", "flow_list": f"[{secret}, b]",
            "items": [secret, NUMBER, {"k": secret}], "float": 1234.5678,
            "public": "*not-an-alias", "star": "***"}


@pytest.mark.parametrize("serialise", [
    lambda d: yaml.safe_dump(d, sort_keys=False),
    lambda d: yaml.safe_dump(d, default_flow_style=True, width=60),
    lambda d: __import__("deployer.model.yamlio", fromlist=["dump"]).dump(d),
], ids=["block", "flow", "yamlio"])
def test_masked_trees_serialise_to_yaml_that_parses_with_every_mask_quoted(serialise):
    redactor = Redactor([CANARY, NUMBER, 1234.5678])
    masked = redactor.tree(_every_shape(CANARY))
    text = redactor.text(serialise(masked))     # what the console prints: masked twice
    parsed = yaml.safe_load(text)
    assert parsed == masked
    assert CANARY not in text and str(NUMBER) not in text and "1234.5678" not in text
    assert parsed["alone"] == parsed["number"] == parsed["number_text"] == parsed["float"] == \
        "***"
    assert parsed["prefix"] == "***-suffix" and parsed["inside"] == "pre *** post"
    assert parsed["block"] == "line one\n*** at a line start\nc.token = '***'\n"
    assert parsed["flow"] == "{user: admin, password: ***}" and parsed["items"][1] == "***"
    assert {"***", "***.2"} <= set(parsed), "secret keys are masked, not dropped"
    assert parsed["public"] == "*not-an-alias" and parsed["star"] == "***"


def test_two_keys_masked_alike_are_both_kept():
    masked = Redactor([CANARY, "other-secret-value"]).tree(
        {CANARY: 1, "other-secret-value": 2})
    assert masked == {"***": 1, "*** (2)": 2}


def test_rendered_manifests_with_secrets_everywhere_parse():
    from deployer.model import manifests

    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
          "data": {k if isinstance(k, str) else str(k): v if isinstance(v, str) else
                   yaml.safe_dump(v) for k, v in _every_shape(CANARY).items()}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"values.yaml": f"token: {CANARY}\n"},
              "data": {"k": base64.b64encode(CANARY.encode()).decode()}}
    objects = manifests.parse(yaml.safe_dump_all([cm, secret]))
    redactor = Redactor([CANARY, NUMBER])
    text = redactor.text(manifests.redacted_text(objects, redactor))
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert CANARY not in text and CANARY_B64 not in text
    assert docs[0]["data"]["***"] == "a key that is a secret"
    assert docs[0]["data"]["block"].splitlines()[1] == "*** at a line start"
    assert docs[1]["stringData"] == {"values.yaml": "***"} and docs[1]["data"] == {"k": "***"}
