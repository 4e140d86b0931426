"""The Redactor: secret values masked in text and value trees, in every encoding."""
import base64

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
