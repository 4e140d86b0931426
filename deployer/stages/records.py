"""Deploy reports: what was deployed where, how long each stage took, what happened."""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class DeployReport:
    """One member's deploy, as written to --report."""

    member: str
    release: str
    namespace: str
    git_sha: str = ""
    git_dirty: bool = False
    started: str = ""
    revision_before: int | None = None
    revision_after: int | None = None
    stages: dict[str, float] = field(default_factory=dict)
    diff: dict = field(default_factory=dict)
    outcome: str = "not started"
    failed_stage: str | None = None
    error: str | None = None
    rollback: dict | None = None
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; a failure inside it is recorded as the failed stage."""
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.failed_stage = self.failed_stage or name
            raise
        finally:
            self.stages[name] = round(self.stages.get(name, 0) + time.perf_counter() - start, 3)


def new_report(root: Path, member, env) -> DeployReport:
    """A report for `member` stamped with the repository's git commit."""
    sha, dirty = git_state(root, env)
    return DeployReport(member=member.name, release=member.release, namespace=member.namespace,
                        git_sha=sha, git_dirty=dirty,
                        started=datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec="seconds"))


def git_state(root: Path, env) -> tuple[str, bool]:
    """HEAD's sha and whether the work tree has uncommitted changes (real git)."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, env=dict(env), timeout=30)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, env=dict(env), timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "", False
    if sha.returncode != 0:
        return "", False
    return sha.stdout.strip(), bool(dirty.stdout.strip())


def write(path: Path, reports: list[DeployReport]) -> None:
    """Write the reports as JSON (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    from deployer.output import redact

    text = json.dumps({"deploys": [asdict(r) for r in reports]}, indent=2) + "\n"
    tmp.write_text(redact(text))  # error texts can quote values helm or the API echoed
    os.replace(tmp, path)
