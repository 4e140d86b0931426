"""Adapter for where upstream releases are published: Helm chart repositories over HTTP
(`index.yaml`) and OCI registries (`/v2/<name>/tags/list`: container images and OCI charts).

Chart repository indexes are big (the JupyterHub repository's is ~1.7 MB with ~1,800
entries): only the block of the wanted chart is parsed, with libyaml's C loader when PyYAML
has it. Registries are asked anonymously; a `401` with a Bearer challenge is answered the
way docker and helm do (a token from the realm the registry names, for pull scope).
An answer is read whole within a deadline and a size limit: a server that drips or never
stops costs one dependency a RegistryError, not the scheduled run its job's time or memory.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from deployer.errors import DeployError

TIMEOUT = 30                       # seconds of silence on the connection
DEADLINE = 120                     # seconds for one whole answer (a server that drips)
MAX_BYTES = 100 * 1024 * 1024      # one answer (the biggest public indexes are ~30 MB)
MAX_PAGES = 50                     # tags/list pages (x1000 tags)
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(DeployError):
    """A chart repository or registry that cannot be read."""


@dataclass(frozen=True)
class ChartVersion:
    """One entry of a chart repository index."""

    version: str
    app_version: str | None = None
    created: str | None = None


class Registry:
    """HTTP access to chart repositories and OCI registries (one session, no proxies or
    .netrc from the environment unless `trust_env`)."""

    def __init__(self, *, trust_env: bool = False, timeout: float = TIMEOUT,
                 plain_http: tuple[str, ...] = (), deadline: float = DEADLINE,
                 max_bytes: int = MAX_BYTES):
        """`plain_http`: registry hosts (host:port) spoken to over http, not https;
        `deadline` and `max_bytes` bound one answer's time and size."""
        import requests

        self.session = requests.Session()
        self.session.trust_env = trust_env
        self.session.headers["User-Agent"] = "binderhub-deployer-bump"
        self.timeout = timeout
        self.plain_http = set(plain_http)
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- Helm chart repositories ----------------------------------------------------------
    def chart_versions(self, repository: str, chart: str) -> list[ChartVersion]:
        """Every version of `chart` in the repository's index.yaml."""
        url = repository.rstrip("/") + "/index.yaml"
        text = self._get(url).text
        try:
            return parse_index(text, chart)
        except ValueError as exc:
            raise RegistryError(f"{url}: {exc}") from None

    # -- OCI registries -------------------------------------------------------------------
    def tags(self, reference: str) -> list[str]:
        """Every tag of an image or OCI chart: `host/path/name` or `oci://host/path/name`.
        Docker Hub names (`jupyter/base-notebook`, `python`) are understood."""
        host, name = split_reference(reference)
        scheme = "http" if host in self.plain_http else "https"
        url = f"{scheme}://{host}/v2/{name}/tags/list?n=1000"
        found: list[str] = []
        token = None
        for _page in range(MAX_PAGES):
            response, token = self._get_with_token(url, token, name)
            try:
                data = response.json() if response.content else {}
            except ValueError:
                data = None
            tags = data.get("tags") if isinstance(data, dict) else None
            if not isinstance(data, dict) or not isinstance(tags or [], list):
                raise RegistryError(f"{url}: not a registry's tag list "
                                    f"({_describe(response)})")
            found += [t for t in (tags or []) if isinstance(t, str)]
            link = _LINK_NEXT.search(response.headers.get("Link", ""))
            if not link:
                break
            nxt = link.group(1)
            url = nxt if "://" in nxt else f"{scheme}://{host}{nxt}"
        return found

    # -- helpers ----------------------------------------------------------------------------
    def _get(self, url: str, headers: dict | None = None, ok=(200,)) -> "Answer":
        """One GET whose answer, headers and body, is whole within `deadline` seconds and
        `max_bytes` (decompressed). The deadline is kept from outside the read: a server
        that drips its headers, or a compressed body that never yields a byte, is given up
        on at the deadline (the reading thread is left to its socket timeout, and stops
        reading at its next chunk)."""
        import threading

        from deployer.adapters import abandon

        self.requests += 1
        stop = threading.Event()
        pending = abandon.started(lambda: self._fetch(url, headers, stop), "registry-get")
        if not abandon.wait(pending, self.deadline):
            stop.set()
            raise RegistryError(f"{url}: the answer took longer than {self.deadline:g} s; "
                                "not read")
        response = pending.result()
        if response.status_code not in ok:
            raise RegistryError(f"{url}: HTTP {response.status_code} "
                                f"{response.text[:120].strip()}")
        return response

    def _fetch(self, url: str, headers: dict | None, stop) -> "Answer":
        import requests
        import urllib3

        try:
            with self.session.get(url, headers=headers or {}, timeout=self.timeout,
                                  stream=True) as streamed:
                return Answer(streamed.status_code, streamed.headers,
                              self._body(streamed, url, stop))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise RegistryError(f"{url}: {type(exc).__name__}: {str(exc)[:160]}") from None

    def _body(self, streamed, url: str, stop) -> bytes:
        """The body as it arrives (decompressed: urllib3's read1 bounds each piece), refused
        past the size limit; `stop`: the caller gave up (the deadline passed)."""
        chunks, size = [], 0
        while not stop.is_set():
            chunk = streamed.raw.read1(64 * 1024, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise RegistryError(f"{url}: the answer is larger than "
                                    f"{self.max_bytes // (1024 * 1024) or 1} MiB; not read")
            chunks.append(chunk)
        raise RegistryError(f"{url}: given up (deadline)")

    def _get_with_token(self, url: str, token: str | None, name: str):
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self._get(url, headers, ok=(200, 401))
        if response.status_code == 401 and token is None:
            token = self._token(response.headers.get("WWW-Authenticate", ""), name, url)
            headers["Authorization"] = f"Bearer {token}"
            response = self._get(url, headers)
        elif response.status_code == 401:
            raise RegistryError(f"{url}: HTTP 401 (the registry refused anonymous pulls)")
        return response, token

    def _token(self, challenge: str, name: str, url: str) -> str:
        """An anonymous pull token from the realm a Bearer challenge names."""
        if not challenge.lower().startswith("bearer"):
            raise RegistryError(f"{url}: HTTP 401 without a Bearer challenge")
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise RegistryError(f"{url}: a Bearer challenge without a realm")
        params.setdefault("scope", f"repository:{name}:pull")
        from urllib.parse import urlencode

        # the realm is upstream's too: its answer has the same limits
        response = self._get(realm + ("&" if "?" in realm else "?") + urlencode(params),
                             ok=(200, 400, 401, 403, 404))
        try:
            data = response.json()
        except ValueError as exc:
            raise RegistryError(f"{realm}: no token: {type(exc).__name__}") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) \
            else None
        if response.status_code != 200 or not token:
            raise RegistryError(f"{realm}: no token (HTTP {response.status_code})")
        return token


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer, read within the limits."""

    status_code: int
    headers: object
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


def split_reference(reference: str) -> tuple[str, str]:
    """(registry host, repository name) of an image or OCI chart reference."""
    ref = reference.removeprefix("oci://").strip("/")
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    # Docker Hub: `python` is library/python, `jupyter/base-notebook` is itself
    return "registry-1.docker.io", ref if rest else f"library/{ref}"


def parse_index(text: str, chart: str) -> list[ChartVersion]:
    """The versions of `chart` in a Helm repository index (YAML or JSON)."""
    import yaml

    if text.lstrip().startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict) or "entries" not in data:
            raise ValueError("not a chart repository index (no `entries`)")
        entries = _entries_of(data["entries"], chart)
        return [_chart_version(e) for e in entries if isinstance(e, dict) and e.get("version")]
    block = _chart_block(text, chart)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(block if block is not None else text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ValueError(f"not a chart repository index: {str(exc).splitlines()[0]}") from None
    if block is None:
        if not isinstance(data, dict) or "entries" not in data:
            raise ValueError("not a chart repository index (no `entries:`)")
        entries = _entries_of(data["entries"], chart)
    else:
        entries = _entries_of(data, chart)
    return [_chart_version(e) for e in entries if isinstance(e, dict) and e.get("version")]


def _chart_block(text: str, chart: str) -> str | None:
    """The lines of `entries.<chart>` as `helm repo index` writes them (two-space keys under
    `entries:`), so only that chart is parsed; None when the layout is not that one."""
    head = f"\n  {chart}:\n"
    start = text.find(head)
    if start < 0 or "\nentries:\n" not in text[:start + 1]:
        return None
    end = start + len(head)
    while True:
        nxt = text.find("\n", end)
        if nxt < 0:
            nxt = len(text)
        line = text[end:nxt]
        if line and not line.startswith(("   ", "  -", "  #")) and line.strip():
            break
        if nxt >= len(text):
            end = nxt
            break
        end = nxt + 1
    return text[start + 1:end]


def _entries_of(entries, chart: str) -> list:
    """The list of `chart`'s entries in an index's `entries` map."""
    if entries is None:
        return []
    if not isinstance(entries, dict):
        raise ValueError("not a chart repository index (`entries` is not a map)")
    found = entries.get(chart) or []
    if not isinstance(found, list):
        raise ValueError(f"not a chart repository index (`entries.{chart}` is not a list)")
    return found


def _describe(response) -> str:
    """What an answer was, for an error: its content type and first characters."""
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0]
    start = " ".join(response.text[:60].split())
    return f"{kind}: {start!r}" if start else kind


def _chart_version(entry: dict) -> ChartVersion:
    app = entry.get("appVersion")
    created = entry.get("created")
    return ChartVersion(str(entry["version"]), str(app) if app is not None else None,
                        str(created) if created is not None else None)


__all__ = ["Registry", "RegistryError", "ChartVersion", "parse_index", "split_reference"]
