"""The chart with its dependencies resolved by helm, cached by content (and mirror) hash.

Dependencies come from the repositories named in Chart.yaml, or, with a mirror, from one
repository that serves the same charts and versions (a corporate proxy, or the stand-in
repository the tests serve on 127.0.0.1). Only the repository URLs differ.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from deployer.errors import ConfigError, DeployError
from deployer.adapters.helm import Helm, HelmError
from deployer.model import diskcache
from deployer.model.memo import shared
from deployer.model.yamlio import format_path
from deployer.model.workspace import Workspace

COMPLETE_MARKER = diskcache.COMPLETE_MARKER     # in a prepared chart that is whole


@dataclass(frozen=True)
class Dependency:
    """One entry of Chart.yaml `dependencies`."""

    name: str
    version: str
    repository: str
    condition: str | None
    line: int | None


@dataclass(frozen=True)
class PreparedChart:
    """A chart directory whose charts/ holds every enabled dependency."""

    path: Path
    dependencies: tuple[Dependency, ...]

    def defaults(self) -> dict:
        """Default values of the chart and of every (sub)chart under the key Helm gives it."""
        return _defaults(str(self.path))

    def crd_kinds(self) -> tuple[tuple[str, str], ...]:
        """(group/version, kind) of every CRD the chart and its subcharts ship in crds/
        (helm installs them before the templates)."""
        return _crd_kinds(str(self.path))

    def subcharts(self) -> tuple["Subchart", ...]:
        """Every (sub)chart under charts/, with the values path Helm gives it and its values
        schema (None when it ships none), outermost first."""
        return _subcharts(str(self.path))

    def capability_queries(self) -> frozenset[str] | None:
        """The API versions the chart's and subcharts' templates ask helm about
        (`.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget"`), or None when a
        template asks about a computed one (then every served version matters)."""
        return _capability_queries(str(self.path))

    def kube_versions(self) -> tuple[tuple[str | None, str, str], ...]:
        """(dependency, "name version", kubeVersion constraint) of the chart (dependency
        None) and of every (sub)chart that states one (dependency: the top-level dependency
        it comes with). helm checks only the top chart's; a dependency that needs a newer
        Kubernetes than a member runs would otherwise pass validation."""
        return _kube_versions(str(self.path))


@dataclass(frozen=True)
class Subchart:
    """A chart bundled under charts/ (or under a subchart's charts/)."""

    name: str
    prefix: tuple[str, ...]          # its values path, e.g. ("binderhub", "jupyterhub")
    schema: dict | None = field(default=None, compare=False, hash=False)
    # values paths (absolute) of the `condition`s of its own dependencies: helm reads them
    conditions: tuple[tuple[str, ...], ...] = ()
    # key paths (relative) its values.yaml documents in comments ("# adminPassword: ...")
    commented: frozenset = frozenset()
    # the identifiers its own templates mention (None: a template renders .Values whole)
    template_words: frozenset | None = field(default=None, compare=False, hash=False)
    # names of the maps its templates render whole (`toYaml .Values.securityContext`,
    # `with .service.spec` + `toYaml .`, `range $k, $v := index .Values "grafana.ini"`):
    # any key under such a map is read
    rendered_whole: frozenset = field(default=frozenset(), compare=False, hash=False)


def dependencies(ws: Workspace) -> tuple[Dependency, ...]:
    """The dependencies declared in the chart's Chart.yaml."""
    label = ws.rel(ws.chart_dir / "Chart.yaml")
    doc = ws.load_yaml(ws.chart_dir / "Chart.yaml", label)
    _check_chart_keys(doc, label)
    _check_values_schema(ws)
    deps = []
    for i, entry in enumerate(doc.data.get("dependencies") or []):
        for key in ("name", "version", "repository"):
            if not entry.get(key):
                raise ConfigError(f"dependency without {key!r}", file=label,
                                  line=doc.line_of(("dependencies", i)),
                                  key=f"dependencies[{i}]")
        if not _EXACT_VERSION.fullmatch(str(entry["version"])):
            raise ConfigError(f"version {entry['version']!r} is not one exact version",
                              file=label, line=doc.line_of(("dependencies", i, "version")),
                              key=f"dependencies[{i}].version",
                              hint="pin the exact version (e.g. 41.1.1): a range would let a "
                                   "new upstream release in without a reviewed change")
        deps.append(Dependency(entry["name"], str(entry["version"]), entry["repository"],
                               entry.get("condition"), doc.line_of(("dependencies", i))))
    return tuple(deps)


# what helm's Chart.yaml (apiVersion v2) has: helm only warns of another key ("failed to
# strictly parse chart metadata"), and a misspelled `condition:` turns a dependency on
CHART_KEYS = ("apiVersion", "name", "version", "kubeVersion", "description", "type",
              "keywords", "home", "sources", "dependencies", "maintainers", "icon",
              "appVersion", "deprecated", "annotations")
DEPENDENCY_KEYS = ("name", "version", "repository", "condition", "tags", "enabled",
                   "import-values", "alias")
_EXACT_VERSION = re.compile(r"v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def _check_values_schema(ws: Workspace) -> None:
    """The chart's values.schema.json is one JSON object: helm's report of a broken one
    ("values don't meet the specifications of the schema(s)... invalid character") blames
    the values and names no file."""
    import json

    path = ws.chart_dir / "values.schema.json"
    if not path.is_file():
        return
    label = ws.rel(path)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not valid UTF-8", file=label) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=label,
                          line=exc.lineno, hint="helm reads the chart's values schema as "
                                                "JSON") from None
    if not isinstance(schema, dict):
        raise ConfigError("not a JSON Schema (a JSON object)", file=label, line=1)


def _check_chart_keys(doc, label: str) -> None:
    """Every key of Chart.yaml, and of each of its dependencies, is one helm knows."""
    data = doc.data if isinstance(doc.data, dict) else {}
    places = [((), data, CHART_KEYS)] + [
        (("dependencies", i), entry, DEPENDENCY_KEYS)
        for i, entry in enumerate(data.get("dependencies") or []) if isinstance(entry, dict)]
    for base, mapping, known in places:
        for key in mapping:
            if key not in known:
                path = base + (key,)
                raise ConfigError(f"unknown key {key!r} (expected one of: {', '.join(known)})",
                                  file=label, line=doc.line_of(path), key=format_path(path),
                                  hint="helm would ignore it")


def prepare(ws: Workspace, helm: Helm, mirror: str | None = None) -> PreparedChart:
    """Copy the chart into the cache and let helm fetch its dependencies (once per content)."""
    source = ws.chart_dir
    if not (source / "Chart.yaml").is_file():
        raise ConfigError("chart not found", file=ws.rel(source / "Chart.yaml"),
                          hint="federation.chart in config/federation.yaml names the chart dir")
    deps = dependencies(ws)
    dest = cache_dir(ws) / _content_key(source, mirror) / source.name
    diskcache.note_use(cache_dir(ws))     # pruned once the command is done (cli.common)
    if (dest / COMPLETE_MARKER).is_file():
        diskcache.touch(dest.parent)     # used now: diskcache.prune keeps it (not the marker:
        return PreparedChart(dest, deps)  # the facts kept beside it are keyed by its mtime)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="chart-", dir=dest.parent))
    # a private repository list: resolving dependencies never touches the operator's helm repos
    helm = helm.with_env(HELM_REPOSITORY_CONFIG=str(work / "repositories.yaml"),
                         HELM_REPOSITORY_CACHE=str(dest.parent.parent / "repository-cache"))
    try:
        copy = work / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        if deps:
            repos = {d.repository: (mirror.rstrip("/") if mirror else d.repository) for d in deps}
            if mirror:
                _point_at_mirror(copy / "Chart.yaml", repos)
            for url in sorted(set(repos.values())):
                try:
                    helm.repo_add("dep-" + hashlib.sha256(url.encode()).hexdigest()[:10], url)
                except HelmError as exc:
                    users = ", ".join(d.name for d in deps if repos[d.repository] == url)
                    raise DeployError(f"chart repository {url} (for {users}) cannot be reached: "
                                      f"{_last(exc.stderr)}",
                                      file=ws.rel(ws.chart_dir / "Chart.yaml"),
                                      hint="check network access, or pass --chart-mirror URL "
                                           "(a repository serving the same charts)") from None
            try:
                helm.dependency_update(str(copy))
            except HelmError as exc:
                raise _missing_dependency(ws, deps, repos, exc) from None
            _check_fetched(ws, copy, deps)
        (copy / COMPLETE_MARKER).write_text("")
        try:
            os.replace(copy, dest)
        except OSError:  # another process prepared the same content meanwhile
            if not (dest / COMPLETE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return PreparedChart(dest, deps)


def cache_dir(ws: Workspace) -> Path:
    """Where prepared charts are kept: $DEPLOYER_CACHE_DIR or <repo>/.deployer/charts."""
    return ws.cache_dir


def _content_key(source: Path, mirror: str | None) -> str:
    digest = hashlib.sha256(f"mirror={mirror or ''}\n".encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        if rel.parts[0] in ("charts",) or rel.name == "Chart.lock":
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def _point_at_mirror(chart_yaml: Path, repos: dict[str, str]) -> None:
    """Rewrite dependency repository URLs structurally (comments and order kept)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    data = yaml.load(chart_yaml.read_text())
    for entry in data.get("dependencies") or []:
        entry["repository"] = repos[entry["repository"]]
    with chart_yaml.open("w") as handle:
        yaml.dump(data, handle)


def _check_fetched(ws: Workspace, chart: Path, deps: tuple[Dependency, ...]) -> None:
    """Every dependency must now be in charts/ with exactly the pinned version."""
    import tarfile

    label = ws.rel(ws.chart_dir / "Chart.yaml")
    found = {}
    for tgz in (chart / "charts").glob("*.tgz"):
        with tarfile.open(tgz) as tf:
            member = next((m for m in tf.getmembers() if m.name.endswith("/Chart.yaml")
                           and m.name.count("/") == 1), None)
            if member is None:
                continue
            from deployer.model.yamlio import load_text
            meta = load_text(tf.extractfile(member).read().decode(), str(tgz),
                             yaml11_words=True).data       # a dependency's: not ours to refuse
            found[meta.get("name")] = str(meta.get("version"))
    for dep in deps:
        if found.get(dep.name) != dep.version:
            raise DeployError(f"dependency {dep.name} {dep.version} was not fetched "
                              f"(got {found.get(dep.name) or 'nothing'})", file=label,
                              line=dep.line, key=f"dependencies.{dep.name}")


def _missing_dependency(ws: Workspace, deps, repos: dict[str, str], exc: HelmError) -> DeployError:
    label = ws.rel(ws.chart_dir / "Chart.yaml")
    text = exc.stderr
    for dep in deps:
        if dep.name in text:
            return DeployError(f"cannot fetch dependency {dep.name} {dep.version} from "
                               f"{repos[dep.repository]}: {exc.message.split(': ', 1)[-1]}",
                               file=label, line=dep.line, key=f"dependencies.{dep.name}",
                               hint="check the version exists in that repository, or pass "
                                    "--chart-mirror URL")
    return DeployError(f"cannot fetch dependencies: {exc.message}", file=label,
                       hint="check network access to the chart repositories, or pass "
                            "--chart-mirror URL")


# What validation reads of a chart: its default values, the API versions its templates ask
# helm about, its subcharts, their kubeVersions and the CRDs they ship. All five are read
# in one pass over the chart's files and its charts/*.tgz (each archive, and each archive
# nested in one, decompressed once), and a prepared chart's are kept beside it: it never
# changes, so a later run reads them back instead of the archives.

FACTS_FORMAT = 1          # of the kept facts; the key also changes with the code reading them
_FACT_NAMES = ("defaults", "capability_queries", "subcharts", "kube_versions", "crd_kinds")


@shared
def _defaults(chart_dir: str) -> dict:
    """values.yaml of a chart directory merged with those of charts/*.tgz, recursively."""
    return _fact(chart_dir, "defaults")


@shared
def _capability_queries(chart_dir: str) -> frozenset[str] | None:
    return _fact(chart_dir, "capability_queries")


@shared
def _subcharts(chart_dir: str) -> tuple[Subchart, ...]:
    return _fact(chart_dir, "subcharts")


@shared
def _kube_versions(chart_dir: str) -> tuple[tuple[str | None, str, str], ...]:
    return _fact(chart_dir, "kube_versions")


@shared
def _crd_kinds(chart_dir: str) -> tuple[tuple[str, str], ...]:
    return _fact(chart_dir, "crd_kinds")


def _fact(chart_dir: str, name: str):
    try:
        facts = _chart_facts(chart_dir)
    except _Unread as unread:        # the facts that could be read, this time
        facts = unread.facts
    ok, value = facts[name]
    if not ok:
        raise value
    return value


class _Unread(Exception):
    """A fact of the chart could not be read: none is kept, the next call reads them again
    (each of the functions above keeps those it could read)."""

    def __init__(self, facts: dict[str, tuple[bool, object]]):
        super().__init__("a chart fact could not be read")
        self.facts = facts


@shared
def _chart_facts(chart_dir: str) -> dict[str, tuple[bool, object]]:
    """Every fact of a chart directory, by name: (True, value), or (False, the error reading
    it raised; then raised as _Unread). Those kept beside a prepared chart are read back; a
    directory that is not a complete prepared chart is only read, never written beside."""
    root = Path(chart_dir)
    store = _facts_store(root)
    if store is not None:
        kept = _load_facts(*store)
        if kept is not None:
            return kept
    facts = _read_facts(root)
    if not all(ok for ok, _ in facts.values()):
        raise _Unread(facts)
    if store is not None:
        _save_facts(*store, facts)
    return facts


def _clearing_facts(clear_own):
    def cache_clear() -> None:
        clear_own()
        _chart_facts.cache_clear()
    return cache_clear


# clearing any one of them forgets every fact read in this process (the kept ones stay)
for _fn in (_defaults, _capability_queries, _subcharts, _kube_versions, _crd_kinds):
    _fn.cache_clear = _clearing_facts(_fn.cache_clear)     # type: ignore[attr-defined]
del _fn


def _read_facts(root: Path) -> dict[str, tuple[bool, object]]:
    chart = _ChartFiles(root)
    facts: dict[str, tuple[bool, object]] = {}
    for name, read in (("defaults", _read_defaults),
                       ("capability_queries", _read_capability_queries),
                       ("subcharts", _read_subcharts),
                       ("kube_versions", _read_kube_versions),
                       ("crd_kinds", _read_crd_kinds)):
        try:
            facts[name] = (True, read(chart))
        except Exception as exc:     # noqa: BLE001 - raised to whoever asks for this fact
            facts[name] = (False, exc)
    return facts


class _Member:
    """A file of a chart archive: its bytes, or the error reading them raised."""

    __slots__ = ("name", "_data", "_text", "_archive")

    def __init__(self, name: str, data: bytes | Exception):
        self.name = name
        self._data = data
        self._text: str | None = None
        self._archive: _Archive | None = None

    def data(self) -> bytes:
        if isinstance(self._data, Exception):
            raise self._data
        return self._data

    def text(self) -> str:
        if self._text is None:
            self._text = self.data().decode("utf-8", "replace")
        return self._text

    def archive(self) -> "_Archive":
        """The archive this file is (a subchart's charts/<dep>.tgz), read once."""
        if self._archive is None:
            self._archive = _Archive.load(self.data())
        return self._archive


class _Archive:
    """The files of a chart archive in archive order, or the error opening it raised
    (raised again to every fact that reads the archive, as opening it did)."""

    def __init__(self, files: list[_Member] | None, error: Exception | None = None):
        self._files = files
        self._error = error

    @property
    def files(self) -> list[_Member]:
        if self._error is not None:
            raise self._error
        return self._files

    @classmethod
    def read(cls, path: Path) -> "_Archive":
        try:
            data = path.read_bytes()
        except Exception as exc:     # noqa: BLE001 - raised to the facts that read it
            return cls(None, exc)
        return cls.load(data)

    @classmethod
    def load(cls, data: bytes) -> "_Archive":
        import io
        import tarfile

        if data[:2] == b"\x1f\x8b":
            # gzip (what helm writes): decompressed once, its files then read from memory
            import gzip
            try:
                with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tf:
                    return cls([_Member(m.name, tf.extractfile(m).read())
                                for m in tf.getmembers() if m.isfile()])
            except Exception:        # noqa: BLE001 - read as tarfile reads it, errors and all
                pass
        try:
            tf = tarfile.open(fileobj=io.BytesIO(data))
            members = tf.getmembers()
        except Exception as exc:     # noqa: BLE001 - raised to the facts that read it
            return cls(None, exc)
        files = []
        with tf:
            for m in members:
                if m.isfile():
                    try:
                        files.append(_Member(m.name, tf.extractfile(m).read()))
                    except Exception as exc:     # noqa: BLE001 - raised to who reads the file
                        files.append(_Member(m.name, exc))
        return cls(files)


class _ChartFiles:
    """A chart directory; its charts/*.tgz are read (once) when a fact first asks for them."""

    def __init__(self, root: Path):
        self.root = root
        self._archives: list[_Archive] | None = None

    def archives(self) -> list[_Archive]:
        """charts/*.tgz in name order."""
        if self._archives is None:
            charts = self.root / "charts"
            self._archives = [_Archive.read(tgz) for tgz in sorted(charts.glob("*.tgz"))] \
                if charts.is_dir() else []
        return self._archives


def _read_defaults(chart: _ChartFiles) -> dict:
    from deployer.model.values import merge

    tree = _values_of((chart.root / "values.yaml").read_bytes())
    for archive in chart.archives():
        members = {m.name: m.data() for m in archive.files if m.name.endswith("/values.yaml")}
        for name, data in members.items():
            # <chart>/values.yaml, <chart>/charts/<sub>/values.yaml, ... -> value path
            parts = name.split("/")[:-1]
            path = tuple(p for i, p in enumerate(parts) if not (i % 2 == 1 and p == "charts"))
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = merge(_values_of(data), node.get(path[-1]) or {})
    return tree


def _read_capability_queries(chart: _ChartFiles) -> frozenset[str] | None:
    literal = re.compile(r'APIVersions\.Has\s*\(?\s*"([^"]+)"')
    any_query = re.compile(r"APIVersions\.Has\b")
    root = chart.root
    texts = [p.read_text("utf-8", "replace") for p in (root / "templates").rglob("*")
             if p.is_file()] if (root / "templates").is_dir() else []
    for archive in chart.archives():
        texts.extend(m.text() for m in archive.files if "/templates/" in m.name)
    found: set[str] = set()
    for text in texts:
        queries = literal.findall(text)
        if len(queries) != len(any_query.findall(text)):
            return None
        found.update(queries)
    return frozenset(found)


def _read_subcharts(chart: _ChartFiles) -> tuple[Subchart, ...]:
    import json

    found: dict[tuple[str, ...], Subchart] = {}
    for archive in chart.archives():
        files = {m.name: m for m in archive.files}
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
                    schema = json.loads(schema_file.data().decode())
                except ValueError:
                    schema = {}
            meta = _values_of(member.data())
            conditions = tuple(
                prefix + tuple(path.strip().split("."))
                for dep in meta.get("dependencies") or [] if isinstance(dep, dict)
                for path in str(dep.get("condition") or "").split(",") if path.strip())
            values_file = files.get("/".join(dirs + ["values.yaml"]))
            text = values_file.text() if values_file is not None else ""
            words, whole = _template_words(files, dirs)
            found[prefix] = Subchart(str(meta.get("name") or prefix[-1]), prefix, schema,
                                     conditions, _commented_keys(text), words, whole)
    return tuple(sorted(found.values(), key=lambda s: (len(s.prefix), s.prefix)))


def _template_words(files: dict[str, _Member],
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
        text = member.text()
        if _WHOLE_VALUES.search(text):
            everything = True
        words.update(_WORD.findall(text))
        whole_names.update(rendered_whole(text))
    return (None if everything else frozenset(words)), frozenset(whole_names)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHOLE_VALUES = re.compile(r"(?:toYaml|toJson|toPrettyJson)\s+\$?\.Values\s*[|})]|"
                           r"\$?\.Values\s*\|\s*(?:toYaml|toJson|toPrettyJson)\b")
_REF = r"\$?[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"     # .Values.a.b, $.x.y, $svc.spec
_TO = r"(?:toYaml|toJson|toPrettyJson|toRawJson)"
_WHOLE_PATTERNS = (
    re.compile(rf"{_TO}\s+\(?\s*({_REF})"),                          # toYaml .Values.a.b
    re.compile(rf"({_REF})\s*\)?\s*\|\s*{_TO}\b"),                  # .Values.a.b | toYaml
    # {{ with .service.spec }} ... {{ toYaml . }} (no other action between)
    re.compile(rf"\bwith\s+({_REF})\s*-?}}}}[^{{]*{{{{-?\s*(?:{_TO}\s+\.\s*[|}})-]|"
               rf"\.\s*\|\s*{_TO}\b)"),
    re.compile(rf"\brange\s+[^}}]*:=\s*\(?\s*({_REF})"),              # range $k, $v := .a.b
)
_INDEXED = re.compile(r'\bindex\s+\$?\.Values\s+"([^"]+)"')    # index .Values "grafana.ini"
_PICKED = re.compile(rf'\bpick\s+\$?\.Values((?:\s+"[^"]+")+)\s*\)?\s*\|\s*{_TO}\b')


def rendered_whole(text: str) -> set[str]:
    """Names (last segment) of the maps a template renders whole or ranges over."""
    found = set()
    for pattern in _WHOLE_PATTERNS:
        for ref in pattern.findall(text):
            last = ref.rsplit(".", 1)[-1]
            if last and last != "Values":
                found.add(last)
    for names in _PICKED.findall(text):          # pick .Values "config" "cors" | toYaml
        found.update(re.findall(r'"([^"]+)"', names))
    return found | set(_INDEXED.findall(text))


def _commented_keys(text: str) -> frozenset:
    """Key paths a values.yaml documents as comments (charts list optional keys that way)."""
    import re

    key_line = re.compile(r"^(\s*)([A-Za-z_][\w.\-/]*)\s*:(\s|$)")
    comment_line = re.compile(r"^(\s*)#\s?(\s*)([A-Za-z_][\w.\-/]*):(\s|$)")
    stack: list[tuple[int, str]] = []
    found = set()
    for line in text.splitlines():
        real = key_line.match(line)
        comment = None if real else comment_line.match(line)
        if not real and not comment:
            continue
        indent = len(real.group(1)) if real else len(comment.group(1)) + len(comment.group(2))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if real:
            stack.append((indent, real.group(2)))
        else:
            found.add(tuple(k for _, k in stack) + (comment.group(3),))
    return frozenset(found)


def _read_kube_versions(chart: _ChartFiles) -> tuple[tuple[str | None, str, str], ...]:
    found: list[tuple[str | None, str, str]] = []

    def note(meta, top: str | None) -> None:
        if isinstance(meta, dict) and meta.get("kubeVersion"):
            found.append((top, f"{meta.get('name')} {meta.get('version')}",
                          str(meta["kubeVersion"])))

    def walk(archive: _Archive, top: str | None) -> None:
        for m in archive.files:
            parts = m.name.split("/")
            if parts[-1] == "Chart.yaml" and (len(parts) == 2 or parts[-3] == "charts"):
                meta = _values_of(m.data())
                note(meta, top or (meta.get("name") if len(parts) == 2 else None))
                if len(parts) == 2 and top is None:
                    top = meta.get("name")
            elif m.name.endswith(".tgz") and len(parts) >= 3 and parts[-2] == "charts":
                walk(m.archive(), top)

    note(_values_of((chart.root / "Chart.yaml").read_bytes()), None)
    for archive in chart.archives():
        walk(archive, None)
    return tuple(found)


def _read_crd_kinds(chart: _ChartFiles) -> tuple[tuple[str, str], ...]:
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

    def walk(archive: _Archive) -> None:
        for m in archive.files:
            parts = m.name.split("/")
            if len(parts) >= 3 and parts[-2] == "crds" and parts[-1].endswith((".yaml", ".yml")):
                note(m.data())
            elif m.name.endswith(".tgz") and parts[-2:-1] == ["charts"]:
                walk(m.archive())

    root = chart.root
    for path in sorted((root / "crds").glob("*.y*ml")) if (root / "crds").is_dir() else []:
        note(path.read_bytes())
    for archive in chart.archives():
        walk(archive)
    return tuple(sorted(found))


def _facts_store(root: Path) -> tuple[Path, tuple] | None:
    """Where a prepared chart's facts are kept (beside the chart directory: helm reads every
    file inside it), and what they were read from (its marker and archives: a chart prepared
    again is read again); None for a directory that is not a complete prepared chart."""
    key = _facts_key()
    root = root.absolute()
    if key is None or not root.name:
        return None
    try:
        marker = (root / COMPLETE_MARKER).stat()
        if not stat.S_ISREG(marker.st_mode):
            return None
        charts = root / "charts"
        archives = sorted(charts.glob("*.tgz")) if charts.is_dir() else []
        fingerprint = ((COMPLETE_MARKER, marker.st_size, marker.st_mtime_ns),) + tuple(
            (tgz.name, st.st_size, st.st_mtime_ns) for tgz in archives for st in [tgz.stat()])
    except OSError:
        return None
    return root.parent / f".deployer-facts-{root.name}-{key}.pickle", fingerprint


@shared
def _facts_key() -> str | None:
    """Changes with the code that reads the facts (this module, the values merge), with
    PyYAML and with Python: facts read by other code are never used."""
    import yaml

    from deployer.model import values

    digest = hashlib.sha256(f"format={FACTS_FORMAT}\npython={sys.version_info[:2]}\n"
                            f"pyyaml={yaml.__version__} {getattr(yaml, '__with_libyaml__', '')}"
                            "\n".encode())
    try:
        for source in (__file__, values.__file__):
            digest.update(Path(source).read_bytes() + b"\0")
    except (OSError, TypeError):
        return None
    return digest.hexdigest()[:20]


class _FactsUnpickler(pickle.Unpickler):
    """Reads back what facts are made of (YAML and JSON data, Subchart), nothing else: a
    file in the cache is data, never code to run."""

    _ALLOWED = {("deployer.stages.chart", "Subchart"), ("datetime", "date"),
                ("datetime", "datetime"), ("datetime", "time"), ("datetime", "timedelta"),
                ("datetime", "timezone")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of chart facts")
        return super().find_class(module, name)


def _load_facts(store: Path, fingerprint: tuple) -> dict[str, tuple[bool, object]] | None:
    """The kept facts; None when they are missing, unreadable or not of this chart."""
    try:
        with open(store, "rb") as handle:
            kept = _FactsUnpickler(handle).load()
    except Exception:                # noqa: BLE001 - missing, truncated, garbled: read again
        return None
    if not (isinstance(kept, dict) and kept.get("format") == FACTS_FORMAT
            and kept.get("fingerprint") == fingerprint):
        return None
    facts = kept.get("facts")
    if not (isinstance(facts, dict) and set(facts) == set(_FACT_NAMES)
            and isinstance(facts["defaults"], dict)
            and (facts["capability_queries"] is None
                 or isinstance(facts["capability_queries"], frozenset))
            and isinstance(facts["subcharts"], tuple)
            and all(isinstance(s, Subchart) for s in facts["subcharts"])
            and isinstance(facts["kube_versions"], tuple)
            and isinstance(facts["crd_kinds"], tuple)):
        return None
    return {name: (True, facts[name]) for name in _FACT_NAMES}


def _save_facts(store: Path, fingerprint: tuple, facts: dict[str, tuple[bool, object]]) -> None:
    """Keep the facts (atomically: a reader sees the old file, the new one or none; two
    processes writing at once both write whole files). Not kept when that fails."""
    import io

    try:
        blob = pickle.dumps({"format": FACTS_FORMAT, "fingerprint": fingerprint,
                             "facts": {name: value for name, (_, value) in facts.items()}},
                            protocol=4)
        _FactsUnpickler(io.BytesIO(blob)).load()     # only what a later run can read back
    except Exception:                # noqa: BLE001 - then the facts are read on each run
        return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=store.name + ".", suffix=".tmp", dir=store.parent)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)        # as readable as the chart beside it
            handle.write(blob)
        os.replace(tmp, store)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _values_of(data: bytes) -> dict:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded = yaml.load(data.decode(), Loader=loader) if data else None
    return loaded if isinstance(loaded, dict) else {}


def _last(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
