"""The chart facts as they were read before the one pass: each function opens every
charts/*.tgz itself. Kept verbatim (only undecorated) as the reference the one pass must
agree with; not used by the deployer."""
from __future__ import annotations

import re  # noqa: F401  (kept as it was)
import tarfile
from pathlib import Path

from deployer.stages.chart import (  # noqa: F401
    Subchart, _WHOLE_VALUES, _WORD, _commented_keys, _values_of, rendered_whole)


def _defaults(chart_dir: str) -> dict:
    """values.yaml of a chart directory merged with those of charts/*.tgz, recursively."""
    from deployer.model.values import merge

    root = Path(chart_dir)
    tree = _values_of((root / "values.yaml").read_bytes())
    for tgz in sorted((root / "charts").glob("*.tgz")) if (root / "charts").is_dir() else []:
        with tarfile.open(tgz) as tf:
            members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()
                       if m.isfile() and m.name.endswith("/values.yaml")}
        for name, data in members.items():
            # <chart>/values.yaml, <chart>/charts/<sub>/values.yaml, ... -> value path
            parts = name.split("/")[:-1]
            path = tuple(p for i, p in enumerate(parts) if not (i % 2 == 1 and p == "charts"))
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = merge(_values_of(data), node.get(path[-1]) or {})
    return tree


def _capability_queries(chart_dir: str) -> frozenset[str] | None:
    import re

    literal = re.compile(r'APIVersions\.Has\s*\(?\s*"([^"]+)"')
    any_query = re.compile(r"APIVersions\.Has\b")
    root = Path(chart_dir)
    texts = [p.read_text("utf-8", "replace") for p in (root / "templates").rglob("*")
             if p.is_file()] if (root / "templates").is_dir() else []
    for tgz in sorted((root / "charts").glob("*.tgz")) if (root / "charts").is_dir() else []:
        with tarfile.open(tgz) as tf:
            texts.extend(tf.extractfile(m).read().decode("utf-8", "replace")
                         for m in tf.getmembers() if m.isfile() and "/templates/" in m.name)
    found: set[str] = set()
    for text in texts:
        queries = literal.findall(text)
        if len(queries) != len(any_query.findall(text)):
            return None
        found.update(queries)
    return frozenset(found)


def _subcharts(chart_dir: str) -> tuple[Subchart, ...]:
    import json

    root = Path(chart_dir)
    found: dict[tuple[str, ...], Subchart] = {}
    for tgz in sorted((root / "charts").glob("*.tgz")) if (root / "charts").is_dir() else []:
        with tarfile.open(tgz) as tf:
            files = {m.name: m for m in tf.getmembers() if m.isfile()}
            for name, member in sorted(files.items()):
                parts = name.split("/")
                if parts[-1] != "Chart.yaml" or not (len(parts) == 2 or parts[-3] == "charts"):
                    continue
                # <chart>/Chart.yaml, <chart>/charts/<sub>/Chart.yaml, ... -> value path
                dirs = parts[:-1]
                prefix = tuple(p for i, p in enumerate(dirs) if not (i % 2 == 1 and p == "charts"))
                schema_file = files.get("/".join(dirs + ["values.schema.json"]))
                schema = None
                if schema_file is not None:
                    try:
                        schema = json.loads(tf.extractfile(schema_file).read().decode())
                    except ValueError:
                        schema = {}
                meta = _values_of(tf.extractfile(member).read())
                conditions = tuple(
                    prefix + tuple(path.strip().split("."))
                    for dep in meta.get("dependencies") or [] if isinstance(dep, dict)
                    for path in str(dep.get("condition") or "").split(",") if path.strip())
                values_file = files.get("/".join(dirs + ["values.yaml"]))
                text = tf.extractfile(values_file).read().decode("utf-8", "replace") \
                    if values_file is not None else ""
                words, whole = _template_words(tf, files, dirs)
                found[prefix] = Subchart(str(meta.get("name") or prefix[-1]), prefix, schema,
                                         conditions, _commented_keys(text), words, whole)
    return tuple(sorted(found.values(), key=lambda s: (len(s.prefix), s.prefix)))


def _template_words(tf: tarfile.TarFile, files: dict,
                    dirs: list[str]) -> tuple[frozenset | None, frozenset]:
    """The identifiers a chart's own templates mention (None when one of them renders the
    whole .Values: then any key may be read), and the names of the maps they render whole."""
    base = "/".join(dirs + ["templates"]) + "/"
    words: set[str] = set()
    whole_names: set[str] = set()
    everything = False
    for name, member in files.items():
        if not name.startswith(base):
            continue
        text = tf.extractfile(member).read().decode("utf-8", "replace")
        if _WHOLE_VALUES.search(text):
            everything = True
        words.update(_WORD.findall(text))
        whole_names.update(rendered_whole(text))
    return (None if everything else frozenset(words)), frozenset(whole_names)




def _kube_versions(chart_dir: str) -> tuple[tuple[str | None, str, str], ...]:
    import io

    found: list[tuple[str | None, str, str]] = []

    def note(meta, top: str | None) -> None:
        if isinstance(meta, dict) and meta.get("kubeVersion"):
            found.append((top, f"{meta.get('name')} {meta.get('version')}",
                          str(meta["kubeVersion"])))

    def walk_tgz(data: bytes, top: str | None) -> None:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf.getmembers():
                if not m.isfile():
                    continue
                parts = m.name.split("/")
                if parts[-1] == "Chart.yaml" and (len(parts) == 2 or parts[-3] == "charts"):
                    meta = _values_of(tf.extractfile(m).read())
                    note(meta, top or (meta.get("name") if len(parts) == 2 else None))
                    if len(parts) == 2 and top is None:
                        top = meta.get("name")
                elif m.name.endswith(".tgz") and len(parts) >= 3 and parts[-2] == "charts":
                    walk_tgz(tf.extractfile(m).read(), top)

    root = Path(chart_dir)
    note(_values_of((root / "Chart.yaml").read_bytes()), None)
    for tgz in sorted((root / "charts").glob("*.tgz")) if (root / "charts").is_dir() else []:
        walk_tgz(tgz.read_bytes(), None)
    return tuple(found)


def _crd_kinds(chart_dir: str) -> tuple[tuple[str, str], ...]:
    import io

    import yaml

    found: set[tuple[str, str]] = set()

    def note(data: bytes) -> None:
        try:
            docs = list(yaml.load_all(data.decode("utf-8", errors="replace"),
                                      Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except yaml.YAMLError:
            return
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            for version in spec.get("versions") or []:
                if kind and isinstance(version, dict) and version.get("name"):
                    found.add((f"{spec.get('group')}/{version['name']}", kind))

    def walk_tgz(data: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf.getmembers():
                parts = m.name.split("/")
                if m.isfile() and len(parts) >= 3 and parts[-2] == "crds" and \
                        parts[-1].endswith((".yaml", ".yml")):
                    note(tf.extractfile(m).read())
                elif m.isfile() and m.name.endswith(".tgz") and parts[-2:-1] == ["charts"]:
                    walk_tgz(tf.extractfile(m).read())

    root = Path(chart_dir)
    for path in sorted((root / "crds").glob("*.y*ml")) if (root / "crds").is_dir() else []:
        note(path.read_bytes())
    for tgz in sorted((root / "charts").glob("*.tgz")) if (root / "charts").is_dir() else []:
        walk_tgz(tgz.read_bytes())
    return tuple(sorted(found))

