"""The repository being operated on, the environment handed to external tools, and the
console that prints (and redacts) everything this workspace shows."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from deployer.console import Console
from deployer.model import diskcache, federation as federation_mod
from deployer.model.yamlio import Document, load_file


@dataclass
class Workspace:
    """A config repository (config/, secrets/, the chart) plus an explicit child-process env.

    Credentials and tool settings travel in `env`; os.environ is never read or mutated below
    the CLI, so several members (or several workspaces) can be handled in one process. The
    secrets this workspace has decrypted are known to its `console` only.
    """

    root: Path
    env: Mapping[str, str]
    show_secrets: bool = False
    console: Console = field(default_factory=Console)
    _federation: federation_mod.Federation | None = field(default=None, repr=False)
    # what one run reads once for every member (e.g. decrypted secrets/common.yaml): memory only
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.console.reveal = self.show_secrets

    @property
    def federation(self) -> federation_mod.Federation:
        """config/federation.yaml, loaded and checked once."""
        if self._federation is None:
            self._federation = federation_mod.load(self.root, parse_cache=self.parse_cache)
        return self._federation

    @property
    def cache_dir(self) -> Path:
        """Where the deployer keeps what it can make again (prepared charts, what files
        parse to): $DEPLOYER_CACHE_DIR or <repo>/.deployer/charts."""
        return diskcache.default_dir(self.env, self.root)

    @property
    def parse_cache(self) -> Path:
        """Where what unchanged YAML files in clear parse to is kept (see yamlio.load_file)."""
        return self.cache_dir / "yaml"

    def load_yaml(self, path: Path, label: str | None = None) -> Document:
        """A YAML file in clear (config, chart, .sops.yaml), parsed once per content."""
        return load_file(path, label, cache=self.parse_cache)

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
