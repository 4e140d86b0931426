"""Deploy reports: a new report stamped with the repository's commit, written as JSON."""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Mapping

from deployer.adapters import git
from deployer.console import Console
from deployer.model.report import DeployReport

__all__ = ["DeployReport", "new_report", "write"]


def new_report(root: Path, member, env: Mapping[str, str]) -> DeployReport:
    """A report for `member` stamped with the repository's git commit."""
    sha, dirty = git.state(root, env)
    return DeployReport(member=member.name, release=member.release, namespace=member.namespace,
                        git_sha=sha, git_dirty=dirty,
                        started=datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec="seconds"))


def write(path: Path, reports: list[DeployReport], console: Console) -> None:
    """Write the reports as JSON (atomically), redacted: error texts can quote values that
    helm or the API echoed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps({"deploys": [r.to_json() for r in reports]}, indent=2) + "\n"
    try:
        tmp.write_text(console.redact(text))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
