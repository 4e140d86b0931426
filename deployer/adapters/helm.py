"""Adapter for the real helm binary, v4 or v3 ($DEPLOYER_HELM picks it; see tools.helm).

What differs between the two and is handled here: helm 4 applies server-side for new releases
and prints values-schema errors as JSON pointers ("- at '/a/b': ..."), helm 3 patches client-side
and prints dotted paths ("- a.b: ..."); `history/get values -o json`, `lint` and `helm version
--short` have the same shape in both. The deploy passes only flags both accept and waits for
rollouts and rolls back itself (helm 4 renamed --atomic to --rollback-on-failure and made --wait
take a strategy; neither is used), so the same argv runs on either.
"""
from __future__ import annotations

import json
import re
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Mapping, Sequence

from deployer.adapters import process, tools
from deployer.console import Console
from deployer.model.release import Revision

# helm's values-schema errors, v4 ("- at '/a/b': msg") and v3 ("- a.b: msg")
_SCHEMA_V4 = re.compile(r"^\s*- at '(?P<path>[^']*)': (?P<msg>.*)$")
_SCHEMA_V3 = re.compile(r"^\s*- (?P<path>[\w.\-\[\]/]+): (?P<msg>.*)$")
# (helm 4: one message for all of a map's unknown keys; helm 3: one line each)
_ADDITIONAL = re.compile(r"^additional properties ((?:'[^']+'(?:, )?)+) not allowed$"
                         r"|^Additional property (\S+) is not allowed$")
_CHART_HEADING = re.compile(r"^(?P<chart>[\w.\-]+):\s*$")


# helm's own operations get this much longer than the --timeout they are given
_MARGIN = 60
RENDER_TIMEOUT = 300  # template, lint, dependency update, repo add


class HelmError(process.ProcessError):
    """helm exited non-zero; carries its stderr (redacted when printed)."""

    def __init__(self, argv: Sequence[str], stderr: str, returncode: int,
                 console: Console | None = None):
        self.argv = list(argv)
        # (helm's own advice to run it with --debug: the deployer has no such flag)
        shown = "\n".join(line for line in stderr.splitlines()
                          if not line.startswith("Use --debug flag"))
        result = process.Result(("helm", *argv), returncode, "", shown)
        super().__init__("helm", result, console=console,
                         what=f"helm {argv[0] if argv else ''}".strip(), lines=3)
        self.stderr = stderr

    @property
    def forbidden(self) -> bool:
        """The API server's authorizer refused helm (RBAC's `<resource> is forbidden: User
        ... cannot ...`): credentials that may not read what helm asked for."""
        return " is forbidden: " in self.stderr


@dataclass(frozen=True)
class SchemaViolation:
    """One values-schema error reported by helm: which chart, which value path, what is wrong."""

    chart: str
    path: tuple[str, ...]
    message: str


class Helm:
    """Runs helm with an explicit environment (kubeconfig, HELM_* homes); never os.environ."""

    def __init__(self, env: Mapping[str, str], *, console: Console, echo: bool = True,
                 context: str | None = None, renders: threading.Semaphore | None = None):
        """`renders`: held by each offline render (template, lint), to bound how many run
        at once."""
        self.binary = tools.helm(env)
        self.version = tools.helm_version(self.binary, env)
        self.major = self.version[0]
        self.env = dict(env)
        self.console = console
        self.echo = echo
        self.context = context
        self.renders = renders

    def with_env(self, **changes: str) -> "Helm":
        """The same helm with some environment variables changed."""
        return Helm({**self.env, **changes}, console=self.console, echo=self.echo,
                    context=self.context, renders=self.renders)

    def run(self, args: Sequence[str], *, stdin: str | None = None, check: bool = True,
            timeout: float = RENDER_TIMEOUT, offline_render: bool = False) -> process.Result:
        """Run `helm ARGS`; the command is shown first (values arrive on stdin, never in argv).
        `offline_render`: a template or lint that reaches no cluster (a short Go run without
        its collector: process.SHORT_GO_RUN)."""
        env = process.short_go_run(self.env) if offline_render else self.env
        bound = self.renders if offline_render and self.renders is not None else nullcontext()
        with bound:
            result = process.run([self.binary, *args], env=env, timeout=timeout,
                                 console=self.console, stdin=stdin, echo=self.echo,
                                 check=False, tool="helm")
        if check and not result.ok:
            raise HelmError(list(args), result.stderr, result.returncode, self.console)
        return result

    def repo_add(self, name: str, url: str) -> None:
        """Register a chart repository (needed before resolving dependencies from it)."""
        self.run(["repo", "add", name, url, "--force-update"])

    def dependency_update(self, chart_dir: str) -> None:
        """Resolve Chart.yaml dependencies into chart_dir/charts from the added repositories."""
        self.run(["dependency", "update", chart_dir, "--skip-refresh"])

    def pull(self, chart: str, repository: str, version: str, destination: str) -> None:
        """`helm pull CHART --repo URL --version V` into `destination` (a .tgz; no repo add)."""
        self.run(["pull", chart, "--repo", repository, "--version", version,
                  "--destination", destination])

    def template(self, release: str, chart: str, namespace: str, values_yaml: str,
                 kube_version: str, check: bool = True,
                 api_versions: Sequence[str] = ()) -> process.Result:
        """`helm template` with the merged values on stdin; returns the completed process.
        `api_versions`: what the cluster serves, for the charts' capability checks."""
        return self.run(["template", release, chart, "--namespace", namespace,
                         "--kube-version", _full_version(kube_version),
                         *_api_version_args(api_versions), "--values", "-"],
                        stdin=values_yaml, check=check, offline_render=True)

    def lint(self, chart: str, namespace: str, values_yaml: str,
             kube_version: str) -> process.Result:
        """`helm lint` with the merged values on stdin; never raises (findings are parsed).
        (lint has no --api-versions: it renders capability-gated templates with helm's
        built-in set; see lint_findings' `rendered`.) The values schemas are not checked
        again where helm can skip them (3.16+): `helm template` of the same values checks
        them (and names the file and line), so lint's report of them is dropped anyway
        (lint_findings)."""
        skip = ["--skip-schema-validation"] if self.version[:2] >= (3, 16) else []
        return self.run(["lint", chart, "--namespace", namespace,
                         "--kube-version", _full_version(kube_version), *skip,
                         "--values", "-"],
                        stdin=values_yaml, check=False, offline_render=True)

    # -- releases on a cluster (KUBECONFIG comes from self.env) ------------------------------
    def render_live(self, release: str, chart: str, namespace: str, values_yaml: str,
                    kube_version: str, api_versions: Sequence[str] = ()) -> str:
        """`helm template --dry-run=server`: rendered against the cluster, so a chart's
        `lookup` sees the live objects (generated secrets are kept, as `upgrade` keeps them).
        Nothing is written. The capabilities are NOT the cluster's: `template` renders with
        helm's built-in set (helm 3's says Kubernetes 1.20), so the member's version and API
        versions are passed as for the offline render, on helm 3 and 4 alike."""
        return self.run(["template", release, chart, *self._at(namespace), "--dry-run=server",
                         "--kube-version", _full_version(kube_version),
                         *_api_version_args(api_versions), "--values", "-"],
                        stdin=values_yaml).stdout

    def history(self, release: str, namespace: str,
                timeout: float = RENDER_TIMEOUT) -> list[Revision]:
        """`helm history -o json`, oldest first; an unknown release has no history.
        `timeout`: seconds helm may take (it has no request timeout of its own: an API
        server that accepts connections and never answers would hold it)."""
        result = self.run(["history", release, *self._at(namespace), "-o", "json",
                           "--max", "256"], check=False, timeout=timeout)
        if result.returncode != 0:
            if "not found" in result.stderr:
                return []
            raise HelmError(["history", release], result.stderr, result.returncode,
                            self.console)
        try:
            entries = json.loads(result.stdout or "[]") or []
        except ValueError:
            raise HelmError(["history", release], "helm printed no JSON history", 1) from None
        return sorted((Revision.from_helm(e) for e in entries), key=lambda r: r.number)

    def manifest(self, release: str, namespace: str, revision: int | None = None) -> str:
        """The manifest helm recorded for a revision ("" when there is no release)."""
        args = ["get", "manifest", release, *self._at(namespace)]
        if revision is not None:
            args += ["--revision", str(revision)]
        result = self.run(args, check=False)
        if result.returncode != 0:
            if "not found" in result.stderr:
                return ""
            raise HelmError(args, result.stderr, result.returncode, self.console)
        return result.stdout

    def values(self, release: str, namespace: str, revision: int | None = None) -> dict:
        """The user-supplied values of a revision ({} when there is no release)."""
        args = ["get", "values", release, *self._at(namespace), "-o", "json"]
        if revision is not None:
            args += ["--revision", str(revision)]
        result = self.run(args, check=False)
        if result.returncode != 0:
            if "not found" in result.stderr:
                return {}
            raise HelmError(args, result.stderr, result.returncode, self.console)
        return json.loads(result.stdout or "{}") or {}

    def upgrade(self, release: str, chart: str, namespace: str, values_yaml: str,
                timeout: int) -> None:
        """`helm upgrade --install` with the values on stdin; waiting is done by the caller."""
        self.run(["upgrade", "--install", release, chart, *self._at(namespace),
                  "--create-namespace", "--values", "-", "--history-max", "20",
                  "--timeout", f"{timeout}s"], stdin=values_yaml, timeout=timeout + _MARGIN)

    def rollback(self, release: str, namespace: str, revision: int, timeout: int) -> None:
        """`helm rollback` to a revision (a new revision with that revision's content)."""
        self.run(["rollback", release, str(revision), *self._at(namespace),
                  "--timeout", f"{timeout}s"], timeout=timeout + _MARGIN)

    def uninstall(self, release: str, namespace: str, timeout: int) -> None:
        """Remove a release that never deployed."""
        self.run(["uninstall", release, *self._at(namespace), "--timeout", f"{timeout}s"],
                 timeout=timeout + _MARGIN)

    def _at(self, namespace: str) -> list[str]:
        args = ["--namespace", namespace]
        return args + (["--kube-context", self.context] if self.context else [])


def schema_violations(stderr: str) -> list[SchemaViolation]:
    """Parse helm's "values don't meet the specifications of the schema(s)" report."""
    if "don't meet the specifications of the schema" not in stderr:
        return []
    found: list[SchemaViolation] = []
    chart = ""
    for line in stderr.splitlines():
        heading = _CHART_HEADING.match(line)
        if heading and not line.startswith(" "):
            chart = heading.group("chart")
            continue
        match = _SCHEMA_V4.match(line) or _SCHEMA_V3.match(line)
        if not match or not chart:
            continue
        message = match.group("msg").strip()
        if message in ("validation failed", "'anyOf' failed", "'allOf' failed",
                       "'oneOf' failed") or message.startswith("'if' failed"):
            continue
        raw = match.group("path")
        if raw.startswith("/") or raw == "":  # a JSON pointer (helm 4)
            path = tuple(p.replace("~1", "/").replace("~0", "~") for p in raw.split("/") if p)
        else:  # a dotted path (helm 3)
            path = tuple(p for p in raw.split(".") if p)
        if path == ("(root)",):          # helm 3's name for the top level
            path = ()
        extra = _ADDITIONAL.match(message)
        if extra:  # point at each offending key itself, so its file:line can be found
            names = re.findall(r"'([^']+)'", extra.group(1)) if extra.group(1) else \
                [extra.group(2)]
            violations = [SchemaViolation(chart, path + (name,), f"unknown key {name!r}")
                          for name in names]
        else:
            violations = [SchemaViolation(chart, path, message)]
        for violation in violations:
            if violation not in found:
                found.append(violation)
    return found


def lint_findings(stdout: str) -> list[str]:
    """[ERROR] and [WARNING] lines of helm lint, minus the schema report template also gives."""
    findings = []
    for line in stdout.splitlines():
        if line.startswith(("[ERROR]", "[WARNING]")) and "meet the specifications" not in line \
                and "- at '" not in line:
            findings.append(line.strip())
    return findings


def _api_version_args(api_versions: Sequence[str]) -> list[str]:
    """One --api-versions flag per version (helm 3 and 4 add them to their built-in set)."""
    return [arg for version in api_versions for arg in ("--api-versions", version)]


def _full_version(version: str) -> str:
    """helm wants major.minor.patch for --kube-version."""
    return version if version.count(".") >= 2 else f"{version}.0"
