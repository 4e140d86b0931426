"""What a deploy did, as data: its outcome, the diff it applied, the rollback it ran, and the
report written to --report. Pure data; stages fill it in, the CLI prints it."""
from __future__ import annotations

import enum
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator


class Outcome(str, enum.Enum):
    """How one member's deploy ended (the words the report and the table show)."""

    NOT_STARTED = "not started"
    DRY_RUN = "dry run"
    UNCHANGED = "unchanged"
    UPGRADING = "upgrading"
    DEPLOYED = "deployed"
    ROLLED_BACK = "rolled back"
    ROLLBACK_FAILED = "rollback failed"
    FAILED = "failed"
    LEFT_AS_IS = "failed (left as is: --no-rollback)"
    SKIPPED = "skipped: staging did not deploy"
    INTERRUPTED = "interrupted"
    REFUSED = "refused: older checkout"   # nothing was deployed (deploy --allow-older)

    @property
    def ok(self) -> bool:
        """The member is where the operator asked it to be."""
        return self in (Outcome.DEPLOYED, Outcome.UNCHANGED, Outcome.DRY_RUN)

    def __str__(self) -> str:
        return self.value


class RollbackAction(str, enum.Enum):
    """What restoring the previous state meant."""

    ROLLED_BACK = "rolled back"
    UNINSTALLED = "uninstalled"
    NOTHING = "nothing to undo"

    def __str__(self) -> str:
        return self.value


@dataclass
class RollbackResult:
    """The automatic rollback after a failed deploy."""

    to: int | None
    revision: int | None
    action: RollbackAction
    seconds: float = 0.0
    detail: str = ""      # what a removal left behind (kept CRDs, the namespace)


@dataclass(frozen=True)
class DiffSummary:
    """Objects a deploy adds, changes and removes (Kind/name refs)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def counts(self) -> str:
        return (f"{len(self.added)} to add, {len(self.changed)} to change, "
                f"{len(self.removed)} to remove")

    def to_json(self) -> dict:
        return {"added": list(self.added), "changed": list(self.changed),
                "removed": list(self.removed)}


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
    diff: DiffSummary | None = None
    outcome: Outcome = Outcome.NOT_STARTED
    failed_stage: str | None = None
    error: str | None = None
    rollback: RollbackResult | None = None
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

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())

    def to_json(self) -> dict:
        """The report as JSON-ready data (the --report format)."""
        out = asdict(self)
        out["outcome"] = self.outcome.value
        out["diff"] = self.diff.to_json() if self.diff is not None else {}
        if self.rollback is not None:
            out["rollback"] = {**asdict(self.rollback), "action": self.rollback.action.value}
        return out
