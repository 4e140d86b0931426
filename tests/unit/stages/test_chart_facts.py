"""What validation reads of a chart (defaults, capability queries, subcharts, kubeVersions,
CRDs) is read in one pass over its archives."""
import io
import tarfile
from pathlib import Path

import pytest

from deployer.stages import chart
from deployer.stages.chart import COMPLETE_MARKER, PreparedChart
from tests.unit.stages import chart_facts_reference as reference

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
    """What a fresh process knows: nothing read yet."""
    for name in NAMES:
        getattr(chart, "_" + name).cache_clear()


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


def test_an_error_is_raised_each_time_and_not_kept(tmp_path):
    root = _chart(tmp_path, complete=True)
    values = (root / "values.yaml").read_text()
    (root / "values.yaml").unlink()
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            chart._defaults(str(root))
    # the other facts do not need values.yaml
    assert chart._capability_queries(str(root)) == reference._capability_queries(str(root))
    (root / "values.yaml").write_text(values)
    assert chart._defaults(str(root)) == _reference(root)["defaults"]


def test_a_broken_archive_fails_the_facts_that_read_it_as_before(tmp_path):
    root = _chart(tmp_path)
    (root / "charts/zz-broken-1.0.0.tgz").write_bytes(b"\x1f\x8b\x08 this is no archive")
    for name in NAMES:
        with pytest.raises(Exception) as before:
            getattr(reference, "_" + name)(str(root))
        with pytest.raises(Exception) as now:
            getattr(chart, "_" + name)(str(root))
        assert (type(now.value), str(now.value)) == (type(before.value), str(before.value))


