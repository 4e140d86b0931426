"""Which API versions a chart's templates ask helm about (only those are passed to helm)."""
import io
import tarfile

from deployer.stages.chart import _capability_queries


def _tgz(path, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _chart(tmp_path, own: str, sub: str):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/pdb.yaml").write_text(own)
    (tmp_path / "charts").mkdir()
    _tgz(tmp_path / "charts/sub-1.0.0.tgz", {
        "sub/Chart.yaml": "name: sub\nversion: 1.0.0\n",
        "sub/templates/_helpers.tpl": sub,
        # a values file that mentions a capability is not a template
        "sub/values.yaml": '# .Capabilities.APIVersions.Has "not/asked"\n'})
    return str(tmp_path)


def test_literal_queries_of_the_chart_and_its_subcharts(tmp_path):
    chart = _chart(tmp_path,
                   '{{ if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}',
                   '{{- if and (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") '
                   '.Values.x }}{{ end }}')
    assert _capability_queries(chart) == {"policy/v1/PodDisruptionBudget",
                                          "monitoring.coreos.com/v1"}


def test_a_computed_query_means_every_version_matters(tmp_path):
    chart = _chart(tmp_path, '{{ if .Capabilities.APIVersions.Has $apiVersion }}',
                   '{{ if .Capabilities.APIVersions.Has "autoscaling/v2" }}')
    assert _capability_queries(chart) is None
