"""The repository being operated on and the environment handed to external tools."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from deployer.model import federation as federation_mod


@dataclass
class Workspace:
    """A config repository (config/, secrets/, the chart) plus an explicit child-process env.

    Credentials and tool settings travel in `env`; os.environ is never mutated, so several
    members can be handled at once in one process.
    """

    root: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    show_secrets: bool = False
    _federation: federation_mod.Federation | None = field(default=None, repr=False)

    @property
    def federation(self) -> federation_mod.Federation:
        """config/federation.yaml, loaded and checked once."""
        if self._federation is None:
            self._federation = federation_mod.load(self.root)
        return self._federation

    @property
    def chart_dir(self) -> Path:
        """The Helm chart this federation deploys."""
        return self.root / self.federation.chart

    def rel(self, path: Path) -> str:
        """`path` relative to the repository root, for messages."""
        try:
            return str(Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)
