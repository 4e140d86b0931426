"""Constants and helpers the tests share (fixtures live in tests/conftest.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes import chart_repo

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "tests" / "keys"
OPERATOR_KEY = KEYS / "test-only-operator.agekey"
PARTNER_KEY = KEYS / "test-only-partner.agekey"
OTHER_KEY = KEYS / "test-only-other.agekey"
# Which helm the tests run: $DEPLOYER_HELM (helm = v4, helm3 = v3; CI runs the helm-using
# tests once more with helm3), handed to the deployer in the `env` fixture too.
HELM_NAME = os.environ.get("DEPLOYER_HELM") or "helm"
# a test of what does not depend on helm's version (the deploy lock, the kubernetes client):
# run in the main pass only
helm_agnostic = pytest.mark.skipif(HELM_NAME != "helm",
                                   reason="does not depend on helm's version: the main pass "
                                          "runs it")
HELM_BINARY = ROOT / ".tools" / "bin" / HELM_NAME
REPO_PARTS = ("config", "secrets", ".sops.yaml", "mybinder", "terraform")


def public_key(keyfile: Path) -> str:
    """The age recipient printed in a test key file's header."""
    for line in keyfile.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no public key line in {keyfile}")


def write_secrets(repo: Path, rel: str, plaintext: str, env: dict) -> None:
    """Encrypt `plaintext` to `rel` with the real sops, per the repo's .sops.yaml."""
    from deployer.adapters import sops

    sops.encrypt_text(repo, rel, plaintext, env)


# Tests that check values against the real upstream chart schemas skip without that data.
needs_upstream = pytest.mark.skipif(chart_repo.UPSTREAM is None, reason=chart_repo.NO_UPSTREAM)
