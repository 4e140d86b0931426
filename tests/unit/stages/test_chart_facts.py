"""What validation reads of a chart (defaults, capability queries, subcharts, kubeVersions,
CRDs) is read in one pass over its archives, and a prepared chart's is kept beside it."""
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from deployer.stages import chart
from deployer.stages.chart import COMPLETE_MARKER, PreparedChart
from tests.unit.stages import chart_facts_reference as reference

ROOT = Path(__file__).resolve().parents[3]
NAMES = ("defaults", "capability_queries", "subcharts", "kube_versions", "crd_kinds")


def _tgz(files: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        for name, text in files.items():
            data = text if isinstance(text, bytes) else text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _crd(group: str, kind: str, *versions: str) -> str:
    listed = "".join(f"    - name: {v}\n" for v in versions)
    return (f"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            f"spec:\n  group: {group}\n  names:\n    kind: {kind}\n  versions:\n{listed}")


def _chart(base: Path, *, complete: bool = False) -> Path:
    """A chart whose charts/ hold a subchart with an unpacked subchart of its own and a
    packed one (a .tgz inside the .tgz, with another inside that), and a second one."""
    root = base / "mychart"
    (root / "templates").mkdir(parents=True)
    (root / "crds").mkdir()
    (root / "charts").mkdir()
    (root / "Chart.yaml").write_text("name: mychart\nversion: 0.1.0\nkubeVersion: '>=1.27'\n")
    (root / "values.yaml").write_text(
        "outer:\n  replicas: 3\n  inner:\n    image: ours\nstarted: 2024-01-02\n")
    (root / "templates/pdb.yaml").write_text(
        '{{ if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}{{ end }}')
    (root / "crds/own.yaml").write_text(_crd("own.example.org", "Own", "v1"))
    deepest = _tgz({
        "deepest/Chart.yaml": "name: deepest\nversion: 3.0.0\nkubeVersion: '>=1.29'\n",
        "deepest/crds/deep.yml": _crd("deep.example.org", "Deep", "v1beta1", "v1")})
    packed = _tgz({
        "packed/Chart.yaml": "name: packed\nversion: 2.0.0\nkubeVersion: '>=1.28'\n",
        "packed/values.yaml": "size: 1\n",
        "packed/crds/widget.yaml": _crd("widgets.example.org", "Widget", "v1")
        + "---\nnot: [a crd\n",
        "packed/charts/deepest-3.0.0.tgz": deepest})
    (root / "charts/outer-1.0.0.tgz").write_bytes(_tgz({
        "outer/Chart.yaml": "name: outer\nversion: 1.0.0\nkubeVersion: '>=1.26'\n"
                            "dependencies:\n- name: inner\n  condition: inner.enabled,x.y\n"
                            "- name: packed\n",
        "outer/values.yaml": "replicas: 1\nresources: {}\n# adminPassword: secret\n"
                             "service:\n  # type: ClusterIP\n  port: 80\n"
                             "anchors: &a {k: v}\nalias: *a\nwhen: 2024-05-06T07:08:09Z\n",
        "outer/values.schema.json": '{"type": "object", "properties": {"replicas": {}}}',
        "outer/templates/deployment.yaml":
            "replicas: {{ .Values.replicas }}\n{{ toYaml .Values.resources }}\n"
            '{{- if .Capabilities.APIVersions.Has "autoscaling/v2" }}{{ end }}\n',
        "outer/templates/_helpers.tpl": '{{ range $k, $v := index .Values "grafana.ini" }}',
        "outer/crds/thing.yaml": _crd("things.example.org", "Thing", "v1alpha1"),
        "outer/charts/inner/Chart.yaml": "name: inner\nversion: 0.5.0\n",
        "outer/charts/inner/values.yaml": "image: theirs\nenabled: true\n",
        "outer/charts/inner/templates/config.yaml": "{{ .Values | toYaml }}\n",
        "outer/charts/packed-2.0.0.tgz": packed}))
    (root / "charts/other-0.1.0.tgz").write_bytes(_tgz({
        "other/Chart.yaml": "name: other\nversion: 0.1.0\n",
        "other/values.yaml": "",
        "other/values.schema.json": "{not json",
        "other/templates/x.yaml": "{{ .Values.other }}\n"}))
    if complete:
        (root / COMPLETE_MARKER).write_text("")
    return root


def _forget() -> None:
    """What a fresh process knows: nothing read yet (the kept facts stay on disk)."""
    for name in NAMES:
        getattr(chart, "_" + name).cache_clear()
    chart._facts_key.cache_clear()


@pytest.fixture(autouse=True)
def fresh():
    _forget()
    yield
    _forget()


def _facts(root: Path) -> dict:
    prepared = PreparedChart(root, ())
    return {name: getattr(prepared, name)() for name in NAMES}


def _exact(value):
    """Everything of a value, to compare: types, the order of maps, the fields Subchart
    leaves out of == too."""
    if isinstance(value, dict):
        return "dict", [(_exact(k), _exact(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_exact(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return type(value).__name__, sorted((_exact(v) for v in value), key=repr)
    if isinstance(value, chart.Subchart):
        return "Subchart", _exact(vars(value))
    return type(value).__name__, value


def _reference(root: Path) -> dict:
    return {name: getattr(reference, "_" + name)(str(root)) for name in NAMES}


def _kept(root: Path) -> list[Path]:
    return sorted(root.parent.glob(".deployer-facts-*"))


def test_one_pass_reads_what_each_function_read(tmp_path):
    root = _chart(tmp_path)
    facts = _facts(root)
    assert facts == _reference(root)
    assert _exact(facts) == _exact(_reference(root))
    # what the nested archives add: a .tgz in a .tgz in charts/outer-1.0.0.tgz
    assert ("deep.example.org/v1", "Deep") in facts["crd_kinds"]
    assert (("outer", "deepest 3.0.0", ">=1.29") in facts["kube_versions"])
    assert facts["defaults"]["outer"]["inner"] == {"image": "ours", "enabled": True}
    assert facts["capability_queries"] == {"policy/v1/PodDisruptionBudget", "autoscaling/v2"}
    other = next(s for s in facts["subcharts"] if s.name == "other")
    assert other.schema == {}, "a values.schema.json that is not JSON reads as {}"
    assert not _kept(root), "a chart directory that is not a prepared chart is only read"


def test_each_archive_is_opened_once(tmp_path, monkeypatch):
    root = _chart(tmp_path)
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    _facts(root)
    # outer-1.0.0.tgz, other-0.1.0.tgz, packed-2.0.0.tgz inside outer, deepest inside packed
    assert len(opened) == 4


def test_one_pass_reads_the_stand_in_chart_as_before(workspace, chart_mirror, tmp_path):
    from deployer.adapters import helm
    from deployer.console import Console

    env = {**workspace.env, "DEPLOYER_CACHE_DIR": str(tmp_path / "cache")}
    prepared = chart.prepare(workspace, helm.Helm(env, console=Console(), echo=False),
                             chart_mirror)
    facts = _facts(prepared.path)
    assert _exact(facts) == _exact(_reference(prepared.path))
    assert len(_kept(prepared.path)) == 1
    _forget()
    assert _exact(_facts(prepared.path)) == _exact(facts), "read back as it was read"


def test_a_prepared_chart_s_facts_are_read_back_not_its_archives(tmp_path, monkeypatch):
    root = _chart(tmp_path, complete=True)
    first = _facts(root)
    [kept] = _kept(root)
    assert kept.parent == root.parent, "beside the chart: helm reads every file inside it"
    assert not list(root.parent.glob("*.tmp"))

    _forget()
    monkeypatch.setattr(tarfile, "open", _no_archive)
    monkeypatch.setattr(chart, "_read_facts", _no_archive)
    again = _facts(root)
    assert _exact(again) == _exact(first)
    # the same from a new process: the archives cannot even be opened there
    script = ("import sys, tarfile\n"
              "from pathlib import Path\n"
              "def no(*a, **k): raise AssertionError('an archive was read')\n"
              "tarfile.open = no\n"
              "from tests.unit.stages.test_chart_facts import _exact, _facts\n"
              "print(repr(_exact(_facts(Path(sys.argv[1])))))\n")
    out = subprocess.run([sys.executable, "-c", script, str(root)], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    assert out == repr(_exact(first)) + "\n"


def _no_archive(*args, **kwargs):
    raise AssertionError("the chart was read again")


def test_a_chart_prepared_again_is_read_again(tmp_path):
    root = _chart(tmp_path, complete=True)
    _facts(root)
    tgz = root / "charts/other-0.1.0.tgz"
    tgz.write_bytes(_tgz({"other/Chart.yaml": "name: other\nversion: 0.2.0\n",
                          "other/values.yaml": "fresh: true\n"}))
    _forget()
    assert _facts(root)["defaults"]["other"] == {"fresh": True}


class _Runs:
    """Unpickling this would run a command: a kept file is data, never code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "code", "other shape"])
def test_a_damaged_facts_file_is_read_again(tmp_path, damage):
    root = _chart(tmp_path, complete=True)
    first = _facts(root)
    [kept] = _kept(root)
    blob = kept.read_bytes()
    ran = tmp_path / "ran"
    kept.write_bytes({"empty": b"",
                      "truncated": blob[:len(blob) // 2],
                      "garbage": b"\x80\x04not a pickle at all",
                      "code": pickle.dumps({"format": chart.FACTS_FORMAT, "x": _Runs(ran)}),
                      "other shape": pickle.dumps({"format": chart.FACTS_FORMAT,
                                                   "facts": {"defaults": {}}})}[damage])
    _forget()
    assert _exact(_facts(root)) == _exact(first)
    assert not ran.exists()
    assert kept.read_bytes() == blob, "written again, whole"


def test_facts_kept_with_another_key_are_not_read(tmp_path, monkeypatch):
    root = _chart(tmp_path, complete=True)
    first = _facts(root)
    [kept] = _kept(root)
    # doctor the kept facts: read back as long as the key is the same ...
    data = pickle.loads(kept.read_bytes())
    data["facts"]["defaults"] = {"doctored": True}
    kept.write_bytes(pickle.dumps(data))
    _forget()
    assert _facts(root)["defaults"] == {"doctored": True}
    # ... and not once the code that reads them changed
    source = tmp_path / "chart.py"
    source.write_bytes(Path(chart.__file__).read_bytes() + b"# changed\n")
    key = chart._facts_key()
    _forget()
    monkeypatch.setattr(chart, "__file__", str(source))
    assert chart._facts_key() != key
    assert _exact(_facts(root)) == _exact(first)
    assert len(_kept(root)) == 2
    _forget()
    monkeypatch.undo()
    monkeypatch.setattr(chart, "FACTS_FORMAT", chart.FACTS_FORMAT + 1)
    assert chart._facts_key() != key


def test_an_error_is_raised_each_time_and_not_kept(tmp_path):
    root = _chart(tmp_path, complete=True)
    values = (root / "values.yaml").read_text()
    (root / "values.yaml").unlink()
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            chart._defaults(str(root))
    # the other facts do not need values.yaml
    assert chart._capability_queries(str(root)) == reference._capability_queries(str(root))
    assert not _kept(root)
    (root / "values.yaml").write_text(values)
    assert chart._defaults(str(root)) == _reference(root)["defaults"]
    assert len(_kept(root)) == 1


def test_a_broken_archive_fails_the_facts_that_read_it_as_before(tmp_path):
    root = _chart(tmp_path)
    (root / "charts/zz-broken-1.0.0.tgz").write_bytes(b"\x1f\x8b\x08 this is no archive")
    for name in NAMES:
        with pytest.raises(Exception) as before:
            getattr(reference, "_" + name)(str(root))
        with pytest.raises(Exception) as now:
            getattr(chart, "_" + name)(str(root))
        assert (type(now.value), str(now.value)) == (type(before.value), str(before.value))


def test_processes_writing_at_once_leave_one_whole_file(tmp_path):
    root = _chart(tmp_path, complete=True)
    facts = chart._read_facts(root)
    store, fingerprint = chart._facts_store(root)
    threads = [threading.Thread(target=chart._save_facts, args=(store, fingerprint, facts))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _kept(root) == [store] and not list(tmp_path.glob("*.tmp"))
    assert chart._load_facts(store, fingerprint) == facts
