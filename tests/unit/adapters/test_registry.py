"""The release sources: a real Helm chart repository (helm package + repo index, served on
127.0.0.1), a real OCI registry (Debian's docker-registry, content pushed with the real helm
and skopeo), and a small double of a registry that demands a Bearer token and paginates
tags/list with Link headers as Docker Hub and quay.io do (distribution 2.8 does neither)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from deployer.adapters.registry import Registry, RegistryError, parse_index, split_reference
from tests.fakes import chart_repo
from tests.fakes.http import QuietHandler, serve
from tests.fakes.oci_registry import OciRegistry, registry_available

HELM = str(Path(__file__).resolve().parents[3] / ".tools" / "bin" / "helm")
DEV_NEW = "1.0.0-0.dev.git.3990.h9a1b2c3d"


@pytest.fixture(scope="module")
def chart_repo_with_versions(tmp_path_factory):
    base = tmp_path_factory.mktemp("bump-repo")
    env = chart_repo.helm_env(base / "home")
    extra = [chart_repo.StandIn("binderhub", DEV_NEW, kube_version=">=1.28.0-0",
                                subcharts=(chart_repo.JUPYTERHUB,),
                                subchart_repository=chart_repo.JUPYTERHUB_REPO),
             chart_repo.StandIn("traefik", "41.2.0", app_version="v3.6.4",
                                kube_version=">=1.22.0-0")]
    repo = chart_repo.build_repo(base / "build", HELM, env, extra=extra)
    with chart_repo.serve(repo) as url:
        yield url


def test_versions_from_a_real_chart_repository(chart_repo_with_versions):
    with Registry() as registry:
        binderhub = registry.chart_versions(chart_repo_with_versions, "binderhub")
        traefik = registry.chart_versions(chart_repo_with_versions + "/", "traefik")
    assert {v.version for v in binderhub} == {chart_repo.BINDERHUB.version, DEV_NEW}
    assert {(v.version, v.app_version) for v in traefik} == {("41.1.1", "v3.6.2"),
                                                              ("41.2.0", "v3.6.4")}
    with Registry() as registry, pytest.raises(RegistryError, match="index.yaml: HTTP 404"):
        registry.chart_versions(chart_repo_with_versions + "/nope", "binderhub")


def test_only_the_wanted_chart_is_parsed_and_agrees_with_a_full_parse():
    text = chart_repo.synthetic_index()
    full = yaml.load(text, Loader=yaml.CSafeLoader)["entries"]
    for chart in ("binderhub", "jupyterhub"):
        assert [v.version for v in parse_index(text, chart)] == \
            [str(e["version"]) for e in full[chart]]
    assert parse_index(text, "nope") == []
    as_json = json.dumps({"apiVersion": "v1", "entries": {"x": [{"version": "1.0.0",
                                                                 "appVersion": "2"}]}})
    assert [(v.version, v.app_version) for v in parse_index(as_json, "x")] == [("1.0.0", "2")]
    with pytest.raises(ValueError, match="not a chart repository index"):
        parse_index("<html>hello</html>", "x")


@pytest.mark.parametrize("reference,expected", [
    ("quay.io/jupyterhub/repo2docker", ("quay.io", "jupyterhub/repo2docker")),
    ("oci://127.0.0.1:5000/charts/binderhub", ("127.0.0.1:5000", "charts/binderhub")),
    ("jupyter/base-notebook", ("registry-1.docker.io", "jupyter/base-notebook")),
    ("python", ("registry-1.docker.io", "library/python")),
    ("localhost/x", ("localhost", "x")),
])
def test_references(reference, expected):
    assert split_reference(reference) == expected


@pytest.fixture(scope="module")
def oci(tmp_path_factory):
    reason = registry_available()
    if reason:   # scripts/bootstrap --dev installs it; in CI a skip would hide that it did not
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    with OciRegistry(tmp_path_factory.mktemp("oci")) as registry:
        yield registry


def test_image_tags_and_oci_charts_from_a_real_registry(oci, tmp_path):
    oci.push_image_tags("jupyterhub/repo2docker", ["2025.08.0", "2025.10.0", "latest"])
    src = tmp_path / "src"
    for version in ("1.2.0", "1.3.0+build.4"):
        chart = src / version / "mini"
        chart.mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: mini\nversion: {version}\n")
        subprocess.run([HELM, "package", str(chart), "-d", str(tmp_path)], check=True,
                       capture_output=True, env=oci.helm_env())
        oci.push_chart(tmp_path / f"mini-{version}.tgz")
    with Registry(plain_http=(oci.host,)) as registry:
        assert sorted(registry.tags(f"{oci.host}/jupyterhub/repo2docker")) == \
            ["2025.08.0", "2025.10.0", "latest"]
        assert sorted(registry.tags(f"oci://{oci.host}/charts/mini")) == \
            ["1.2.0", "1.3.0_build.4"]
        with pytest.raises(RegistryError, match="HTTP 404"):
            registry.tags(f"{oci.host}/no/such")
    with Registry() as registry, pytest.raises(RegistryError, match="SSLError|Connection"):
        registry.tags(f"{oci.host}/jupyterhub/repo2docker")   # https unless told


class _TokenRegistry(QuietHandler):
    """tags/list behind an anonymous Bearer token, 2 tags a page, Link to the next."""

    tags = [f"2025.{m:02d}.0" for m in range(1, 8)]
    seen: list = []

    def do_GET(self):  # noqa: N802
        self.seen.append(self.path)
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            assert "scope=repository%3Ajupyterhub%2Frepo2docker%3Apull" in self.path
            return self.reply(200, "application/json", b'{"token": "anon-123"}')
        if self.headers.get("Authorization") != "Bearer anon-123":
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",'
                                                 'service="test-registry"')
            self.send_header("Content-Length", "0")
            return self.end_headers()
        start = int(self.path.split("last=")[1]) if "last=" in self.path else 0
        page = self.tags[start:start + 2]
        body = json.dumps({"name": "jupyterhub/repo2docker", "tags": page}).encode()
        self.send_response(200)
        if start + 2 < len(self.tags):
            self.send_header("Link", f'</v2/jupyterhub/repo2docker/tags/list?n=2&last='
                                     f'{start + 2}>; rel="next"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_bearer_challenge_and_link_pagination_are_followed():
    with serve(_TokenRegistry) as server:
        host = f"127.0.0.1:{server.server_address[1]}"
        with Registry(plain_http=(host,)) as registry:
            assert registry.tags(f"{host}/jupyterhub/repo2docker") == _TokenRegistry.tags
            # one challenge, one token, then four pages with the token
            assert registry.requests == 6


class _WrongShapes(QuietHandler):
    """A registry and a chart repository behind a misrouted proxy: 200 with a login page,
    JSON that is not a tag list, an index whose `entries` is not a map."""

    answers = {
        "/v2/html/tags/list": ("text/html", b"<!doctype html><html>Sign in</html>"),
        "/v2/list/tags/list": ("application/json", b'["1.0.0"]'),
        "/v2/tagmap/tags/list": ("application/json", b'{"name": "x", "tags": {"a": 1}}'),
        "/yaml/index.yaml": ("text/yaml", b"apiVersion: v1\nentries:\n- traefik\n"),
        "/json/index.yaml": ("application/json", b'{"entries": {"traefik": "41.2.0"}}'),
    }

    def do_GET(self):  # noqa: N802
        kind, body = self.answers[self.path.split("?")[0]]
        self.reply(200, kind, body)


def test_answers_of_the_wrong_shape_are_one_registry_error():
    with serve(_WrongShapes) as server:
        host = f"127.0.0.1:{server.server_address[1]}"
        with Registry(plain_http=(host,)) as registry:
            with pytest.raises(RegistryError, match=r"not a registry's tag list "
                                                    r"\(text/html: '<!doctype html>"):
                registry.tags(f"{host}/html")
            for name in ("list", "tagmap"):
                with pytest.raises(RegistryError, match="not a registry's tag list"):
                    registry.tags(f"{host}/{name}")
            for where in ("yaml", "json"):
                with pytest.raises(RegistryError, match="not a chart repository index"):
                    registry.chart_versions(f"http://{host}/{where}", "traefik")


class _Endless(QuietHandler):
    """A chart repository whose index never ends: one that drips a byte at a time, one
    that streams without end, one that drips its headers, a gzip body that unpacks to far
    more than it weighs, one whose gzip stream never yields a byte, and (the good case) one
    served gzip-encoded in one go."""

    protocol_version = "HTTP/1.1"
    start = b"apiVersion: v1\nentries:\n  traefik:\n  - version: 41.2.0\n"

    def do_GET(self):  # noqa: N802
        import gzip
        import time
        import zlib

        try:
            if self.path.startswith("/headers/"):
                self.send_response(200)
                for _ in range(60):          # (http.client takes at most 100 headers)
                    self.send_header("X-Slow", "1")
                    self.flush_headers()
                    time.sleep(0.05)
                self.end_headers()
                return
            if self.path.startswith(("/bomb/", "/empty-gzip/")):
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                pack = zlib.compressobj(9, zlib.DEFLATED, 31)
                self.wfile.write(pack.compress(self.start))
                for _ in range(100_000 if self.path.startswith("/bomb/") else 100):
                    if self.path.startswith("/bomb/"):
                        self.wfile.write(pack.compress(b"#" * 1024 * 1024))
                    else:       # empty stored blocks: bytes on the wire, none unpacked
                        self.wfile.write(pack.flush(zlib.Z_SYNC_FLUSH))
                        self.wfile.flush()
                        time.sleep(0.05)
                self.close_connection = True
                return
        except OSError:
            self.close_connection = True
            return
        if self.path.startswith("/gzip/"):
            body = gzip.compress(self.start)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/yaml")
        self.end_headers()                      # no length: the answer ends when it closes
        try:
            self.wfile.write(self.start)
            for _ in range(100_000):
                if self.path.startswith("/drip/"):
                    self.wfile.write(b"#")
                    self.wfile.flush()
                    time.sleep(0.02)
                else:
                    self.wfile.write(b"# " + b"x" * 65536 + b"\n")
        except OSError:
            pass
        self.close_connection = True


def test_an_index_that_never_ends_is_refused_within_its_limits():
    import time

    with serve(_Endless) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Registry(deadline=1, max_bytes=2 * 1024 * 1024) as registry:
            assert [v.version for v in registry.chart_versions(f"{url}/gzip", "traefik")] \
                == ["41.2.0"]
            started = time.monotonic()
            with pytest.raises(RegistryError, match=r"drip/index.yaml: the answer took "
                                                    r"longer than 1 s; not read"):
                registry.chart_versions(f"{url}/drip", "traefik")
            with pytest.raises(RegistryError, match=r"huge/index.yaml: the answer is larger "
                                                    r"than 2 MiB; not read"):
                registry.chart_versions(f"{url}/huge", "traefik")
            # counted unpacked: 2 MiB of gzip would be 2 GiB of index
            with pytest.raises(RegistryError, match=r"bomb/index.yaml: the answer is larger "
                                                    r"than 2 MiB; not read"):
                registry.chart_versions(f"{url}/bomb", "traefik")
            for where in ("headers", "empty-gzip"):       # the deadline is kept from outside
                with pytest.raises(RegistryError, match=rf"{where}/index.yaml: the answer "
                                                        r"took longer than 1 s; not read"):
                    registry.chart_versions(f"{url}/{where}", "traefik")
            assert time.monotonic() - started < 15
