"""A prerequisite release's values for one member: config/<name>/common.yaml, then
config/<name>/<member>.yaml, merged as helm merges values files (both optional; no secrets:
cluster-level charts such as cert-manager need none)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deployer.errors import ConfigError
from deployer.model.federation import Member, Prerequisite
from deployer.model.values import merge
from deployer.model.yamlio import dump, load_file


@dataclass(frozen=True)
class PrerequisiteValues:
    """The merged values of one prerequisite for one member, and the files they came from."""

    prerequisite: Prerequisite
    values: dict
    files: tuple[str, ...]      # the layers that exist, first to last

    @property
    def values_yaml(self) -> str:
        return dump(self.values)


def member_values(root: Path, prerequisite: Prerequisite, member: Member,
                  parse_cache: Path | None = None) -> PrerequisiteValues:
    """Layer the prerequisite's values files for `member` (config, in clear: `parse_cache`
    as for yamlio.load_file); a layer that is not a map is a ConfigError naming the file."""
    merged: dict = {}
    used = []
    for rel in prerequisite.values_files(member):
        path = Path(root) / rel
        if not path.exists():
            continue
        doc = load_file(path, rel, cache=parse_cache)
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            raise ConfigError(f"expected a map of Helm values for the {prerequisite.name} "
                              f"release, got {type(doc.data).__name__}", file=rel, line=1)
        merged = merge(merged, doc.data)
        used.append(rel)
    return PrerequisiteValues(prerequisite, merged, tuple(used))
