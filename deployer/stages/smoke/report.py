"""What a smoke run found: checks, launches with phase timings, and their renderings."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

PHASES = ("waiting", "fetching", "building", "pushing", "built", "launching", "ready")


@dataclass
class Check:
    """One HTTP check."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Launch:
    """One repo launched through the BinderHub API."""

    repo: str
    ok: bool = False
    phases: dict[str, float] = field(default_factory=dict)  # first seen, seconds from start
    steps: dict[str, float] = field(default_factory=dict)   # api / kernel / execute / stop
    total: float = 0.0
    attempts: int = 0
    heartbeats: int = 0
    image: str = ""
    detail: str = ""

    def add_problem(self, text: str) -> None:
        """A problem found after the launch itself (stopping the server): fails it."""
        self.detail = f"{self.detail}; {text}" if self.detail else text
        self.ok = False


@dataclass
class Report:
    """The smoke run of one member."""

    member: str
    started: str
    checks: list[Check] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and all(launch.ok for launch in self.launches)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok] + \
            [f"launch {launch.repo}: {launch.detail}" for launch in self.launches if not launch.ok]

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def rows(self) -> list[list[str]]:
        """Table rows: checks, then one row per launch with its phase timings."""
        rows = [[c.name, "ok" if c.ok else "FAILED", f"{c.seconds:.2f}", c.detail]
                for c in self.checks]
        for launch in self.launches:
            timing = " ".join(f"{p}={launch.phases[p]:.1f}" for p in PHASES
                              if p in launch.phases)
            steps = " ".join(f"{k}={v:.1f}" for k, v in launch.steps.items())
            rows.append([f"launch {launch.repo}", "ok" if launch.ok else "FAILED",
                         f"{launch.total:.2f}",
                         " | ".join(x for x in (timing, steps, launch.detail) if x)])
        return rows

    def markdown(self) -> str:
        """A GitHub step summary."""
        icon = "✅" if self.ok else "❌"
        lines = [f"### {icon} Smoke tests: {self.member}", "",
                 "| check | outcome | seconds | detail |", "|---|---|---|---|"]
        for check in self.checks:
            lines.append(f"| {check.name} | {'ok' if check.ok else '**failed**'} | "
                         f"{check.seconds:.2f} | {_md(check.detail)} |")
        if self.launches:
            lines += ["", "| repo | outcome | " + " | ".join(PHASES) + " | total |",
                      "|---|---|" + "---|" * (len(PHASES) + 1)]
            for launch in self.launches:
                cells = [f"{launch.phases[p]:.1f}" if p in launch.phases else "" for p in PHASES]
                lines.append(f"| `{launch.repo}` | {'ok' if launch.ok else '**failed**'} | "
                             + " | ".join(cells) + f" | {launch.total:.1f} |")
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
