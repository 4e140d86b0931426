"""An in-memory Kubernetes API server for tests: the real helm, kubectl and kubernetes
client talk to it over HTTP on 127.0.0.1.

    with KubeAPI() as cluster:
        cluster.kubeconfig(path)            # a kubeconfig pointing at it
        cluster.faults.never_ready("deployments", "ns", "hub")
        cluster.go_away(); cluster.come_back()

Run by hand for debugging: python -m tests.fakes.kube_api --port 8001
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import yaml

from .controllers import Controllers
from .server import Api, Faults, HttpServer

__all__ = ["KubeAPI", "Faults"]


class KubeAPI:
    """Server lifecycle: start, stop, drop off the network and come back on the same port."""

    def __init__(self, version: str = "1.34.2", *, port: int = 0, rollout_delay: float = 0.2,
                 token: str | None = None):
        self.api = Api(version, token)
        self.port = port
        self.controllers = Controllers(self.api, delay=rollout_delay)
        self._http: HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "KubeAPI":
        self._http = HttpServer(("127.0.0.1", self.port), self.api)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        if not self.controllers.is_alive() and not self.controllers.halt.is_set():
            self.controllers.start()
        return self

    def stop(self) -> None:
        self.controllers.halt.set()
        self.go_away()

    def go_away(self) -> None:
        """The server disappears: the port stops listening and open connections are cut."""
        if self._http is None:
            return
        self._http.stopping.set()
        self._http.shutdown()
        self._http.drop_connections()
        self._http.server_close()
        self._http = None

    def come_back(self) -> None:
        """Listen again on the same port, with every object still there."""
        self.start()

    def __enter__(self) -> "KubeAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- access --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def faults(self) -> Faults:
        return self.api.faults

    @property
    def store(self):
        return self.api.store

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.api.requests

    def kubeconfig(self, path: Path, *, namespace: str = "default", context: str = "test",
                   token: str | None = None) -> Path:
        """Write a kubeconfig for this server (mode 0600) and return its path."""
        user = {"token": token or self.api.token or "test-token"}
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": user}],
            "contexts": [{"name": context, "context": {"cluster": "test", "user": "test",
                                                       "namespace": namespace}}],
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def object(self, plural: str, namespace: str, name: str, group: str = "") -> dict | None:
        """Direct read of the stored object (for assertions), or None."""
        with self.api.store.lock:
            obj = self.api.store.objects.get((group, plural), {}).get((namespace, name))
            return yaml.safe_load(yaml.safe_dump(obj)) if obj is not None else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
