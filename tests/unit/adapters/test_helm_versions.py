"""The helm adapter on both pinned helms (helm = 4, helm3 = 3.19): the same calls give the same
parsed results — templates, values-schema reports, lint findings, and release history, values
and manifests on the Kubernetes API test double."""
import io

import pytest

from deployer.adapters import helm as helm_mod
from deployer.console import Console
from deployer.model.release import ReleaseStatus

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\nweb:\n  port: 8080\n",
    "values.schema.json": """{
  "type": "object", "additionalProperties": false,
  "properties": {
    "replicas": {"type": "integer", "minimum": 1},
    "web": {"type": "object", "additionalProperties": false,
            "properties": {"port": {"type": "integer"}}}
  }
}""",
    "templates/cm.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-tiny
data:
  replicas: {{ .Values.replicas | quote }}
  port: {{ .Values.web.port | quote }}
""",
}


@pytest.fixture
def tiny_chart(tmp_path):
    chart = tmp_path / "tiny"
    for rel, text in CHART.items():
        (chart / rel).parent.mkdir(parents=True, exist_ok=True)
        (chart / rel).write_text(text)
    return chart


def _helm(which: str, env: dict) -> helm_mod.Helm:
    console = Console(stdout=io.StringIO(), stderr=io.StringIO())
    return helm_mod.Helm({**env, "DEPLOYER_HELM": which}, console=console, echo=False)


@pytest.mark.parametrize("which,major", [("helm", 4), ("helm3", 3)])
def test_template_schema_report_and_lint_parse_alike(which, major, env, tiny_chart):
    helm = _helm(which, env)
    assert helm.major == major and helm.binary.endswith("/" + which)
    ok = helm.template("r", str(tiny_chart), "ns", "replicas: 2\n", "1.34")
    assert 'replicas: "2"' in ok.stdout and "name: r-tiny" in ok.stdout
    bad = helm.template("r", str(tiny_chart), "ns", "replicas: 0\nweb:\n  port: x\n  extra: 1\n",
                        "1.34", check=False)
    assert bad.returncode != 0
    found = {(v.chart, v.path, v.message.split(":")[0]) for v in
             helm_mod.schema_violations(bad.stderr)}
    paths = {v[1] for v in found}
    assert {("replicas",), ("web", "port"), ("web", "extra")} <= paths, bad.stderr
    assert all(chart == "tiny" for chart, _, _ in found)
    # several unknown keys in one map (helm 4 names them in one message, helm 3 one a line):
    # each is its own violation at its own path, the top level included
    bad = helm.template("r", str(tiny_chart), "ns", "bogusOne: 1\nbogusTwo: 2\nweb:\n  a: 1\n"
                        "  b: 2\n", "1.34", check=False)
    assert {(v.path, v.message) for v in helm_mod.schema_violations(bad.stderr)} == {
        (("bogusOne",), "unknown key 'bogusOne'"), (("bogusTwo",), "unknown key 'bogusTwo'"),
        (("web", "a"), "unknown key 'a'"), (("web", "b"), "unknown key 'b'")}, bad.stderr
    lint = helm.lint(str(tiny_chart), "ns", "replicas: 1\n", "1.34")
    assert lint.returncode == 0 and helm_mod.lint_findings(lint.stdout) == []


@pytest.mark.parametrize("which", ["helm", "helm3"])
def test_releases_on_the_api_double_read_alike(which, env, kube_env, tiny_chart, kube_api):
    helm = _helm(which, {**env, "KUBECONFIG": kube_env["KUBECONFIG"]})
    assert helm.history("tiny", "demo") == [] and helm.values("tiny", "demo") == {}
    assert helm.manifest("tiny", "demo") == ""
    helm.upgrade("tiny", str(tiny_chart), "demo", "replicas: 2\n", timeout=60)
    helm.upgrade("tiny", str(tiny_chart), "demo", "replicas: 3\n", timeout=60)
    history = helm.history("tiny", "demo")
    assert [(r.number, r.status) for r in history] == [(1, ReleaseStatus.SUPERSEDED),
                                                        (2, ReleaseStatus.DEPLOYED)]
    assert history[0].chart == "tiny-0.1.0" and history[1].updated
    assert helm.values("tiny", "demo") == {"replicas": 3}
    assert helm.values("tiny", "demo", revision=1) == {"replicas": 2}
    assert 'replicas: "3"' in helm.manifest("tiny", "demo")
    helm.rollback("tiny", "demo", 1, timeout=60)
    assert kube_api.object("configmaps", "demo", "tiny-tiny")["data"]["replicas"] == "2"
    assert helm.history("tiny", "demo")[-1].description == "Rollback to 1"
    helm.uninstall("tiny", "demo", timeout=60)
    assert helm.history("tiny", "demo") == []


@pytest.mark.parametrize("which,wait,atomic", [("helm", "--wait=watcher", "--rollback-on-failure"),
                                               ("helm3", "--wait", "--atomic")])
def test_each_helms_own_wait_and_rollback_work_against_the_api_double(
        which, wait, atomic, env, kube_env, tiny_chart, kube_api):
    # the deployer waits and rolls back itself; this keeps the double faithful to helm's own
    helm = _helm(which, {**env, "KUBECONFIG": kube_env["KUBECONFIG"]})
    (tiny_chart / "templates" / "deploy.yaml").write_text("""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.29"}]}
""")
    helm.run(["upgrade", "--install", "tiny", str(tiny_chart), "-n", "demo",
              "--create-namespace", wait, "--timeout", "30s"])
    assert helm.history("tiny", "demo")[-1].status is ReleaseStatus.DEPLOYED
    kube_api.faults.never_ready("deployments", "demo", "web",  # only the bad revision
                                when=lambda obj: obj["spec"]["replicas"] == 2)
    failed = helm.run(["upgrade", "tiny", str(tiny_chart), "-n", "demo", "--set", "replicas=2",
                       atomic, "--timeout", "3s"], check=False)
    assert failed.returncode != 0
    history = helm.history("tiny", "demo")
    assert [r.status for r in history] == [ReleaseStatus.SUPERSEDED, ReleaseStatus.FAILED,
                                           ReleaseStatus.DEPLOYED]
    assert "Rollback to 1" in history[-1].description


def _logging_helm(tmp_path, env) -> str:
    """The real helm, behind a script that logs each call's start, end and GOGC."""
    from deployer.adapters import tools

    real = tools.helm(env)
    script = tmp_path / "helm-logged"
    log = tmp_path / "calls.log"
    script.write_text(f"""#!/bin/sh
echo "start $$ $(date +%s.%N) GOGC=${{GOGC:-unset}} $1" >> {log}
"{real}" "$@"; rc=$?
echo "end $$ $(date +%s.%N)" >> {log}
exit $rc
""")
    script.chmod(0o755)
    return str(script)


def _most_at_once(lines: list[str]) -> int:
    events = sorted((float(line.split()[2]), 1 if line.startswith("start") else -1)
                    for line in lines)
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_offline_renders_run_bounded_and_without_go_collector(env, tiny_chart, tmp_path):
    import threading

    helm = helm_mod.Helm({**env, "DEPLOYER_HELM": _logging_helm(tmp_path, env)},
                         console=Console(stdout=io.StringIO(), stderr=io.StringIO()),
                         echo=False, renders=threading.BoundedSemaphore(2))
    (tmp_path / "calls.log").write_text("")
    threads = [threading.Thread(target=helm.template, args=(f"r{i}", str(tiny_chart), "ns",
                                                            "replicas: 2\n", "1.34"))
               for i in range(6)]
    threads.append(threading.Thread(target=helm.lint, args=(str(tiny_chart), "ns", "", "1.34")))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "calls.log").read_text().splitlines()
    starts = [line for line in lines if line.startswith("start")]
    assert len(starts) == 7
    assert _most_at_once(lines) <= 2
    assert all("GOGC=off" in line for line in starts)
    # an operator's own GOGC wins; a render with a cluster (not offline) is not bounded
    (tmp_path / "calls.log").write_text("")
    helm.with_env(GOGC="50").template("r", str(tiny_chart), "ns", "", "1.34")
    helm.run(["version", "--short"])
    starts = (tmp_path / "calls.log").read_text().splitlines()[::2]
    assert "GOGC=50 template" in starts[0] and "GOGC=unset version" in starts[1]


@pytest.mark.parametrize("reported,skips", [("v3.15.4", False), ("v3.16.0", True),
                                            ("v4.1.4", True)])
def test_lint_skips_the_values_schemas_only_where_helm_can(reported, skips, env, tiny_chart,
                                                           tmp_path):
    """(helm template of the same values checks them; helm before 3.16 has no such flag)"""
    from deployer.adapters import tools

    real = tools.helm({**env, "DEPLOYER_HELM": "helm3"})
    script = tmp_path / "helm-as-reported"
    log = tmp_path / "args.log"
    script.write_text(f"""#!/bin/sh
if [ "$1" = version ]; then echo '{reported}+gabc'; exit 0; fi
echo "$*" >> {log}
exec "{real}" "$@"
""")
    script.chmod(0o755)
    helm = helm_mod.Helm({**env, "DEPLOYER_HELM": str(script)},
                         console=Console(stdout=io.StringIO(), stderr=io.StringIO()), echo=False)
    result = helm.lint(str(tiny_chart), "ns", "replicas: 2\n", "1.34")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("--skip-schema-validation" in log.read_text()) == skips
