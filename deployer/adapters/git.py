"""Adapter for the real git binary: repository state for reports, clones and pushes for the
smoke build, changed files for `plan`. Every call has a timeout and an explicit env."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from deployer.adapters import process
from deployer.console import Console
from deployer.errors import DeployError, ToolError

TIMEOUT = 300  # clones and pushes over the network


class GitError(DeployError):
    """git failed; the message names the subcommand and git's last line."""


class Git:
    """git run in `cwd` (or with -C) with an explicit environment; never prompts."""

    def __init__(self, env: Mapping[str, str], *, cwd: str | Path | None = None,
                 console: Console | None = None, echo: bool = False,
                 timeout: float = TIMEOUT):
        self.env = {**env, "GIT_TERMINAL_PROMPT": "0"}
        self.cwd = str(cwd) if cwd is not None else None
        self.console = console
        self.echo = echo
        self.timeout = timeout

    def at(self, cwd: str | Path) -> "Git":
        """The same git, run in another directory."""
        return Git(self.env, cwd=cwd, console=self.console, echo=self.echo,
                   timeout=self.timeout)

    def run(self, *args: str, check: bool = True) -> process.Result:
        """`git ARGS`; a failure is a GitError naming the subcommand and git's last line."""
        try:
            # a path git prints may be any bytes (a file name that is not UTF-8): shown
            # escaped (\xe9), never a crash
            result = process.run(["git", *args], env=self.env, cwd=self.cwd,
                                 timeout=self.timeout, console=self.console, echo=self.echo,
                                 check=False, tool="git", errors="backslashreplace")
        except ToolError as exc:
            raise GitError(exc.message, hint=exc.hint) from None
        if check and not result.ok:
            detail = process.last_lines(result.stderr or result.stdout)
            if self.console is not None:
                detail = self.console.redact(detail)
            raise GitError(f"git {args[0]} failed: {detail[:200]}")
        return result

    def output(self, *args: str) -> str:
        """stdout of `git ARGS`, stripped."""
        return self.run(*args).stdout.strip()

    def is_ancestor(self, older: str, newer: str) -> bool | None:
        """Whether commit `older` is in the history of commit `newer`; None when git cannot
        tell (either is not in this clone: a shallow checkout, a commit not fetched)."""
        try:
            for sha in (older, newer):
                if sha.startswith("-") or not self.run("cat-file", "-e", f"{sha}^{{commit}}",
                                                       check=False).ok:
                    return None
            found = self.run("merge-base", "--is-ancestor", older, newer, check=False)
        except GitError:
            return None
        return {0: True, 1: False}.get(found.returncode)


def is_ancestor(root: Path, env: Mapping[str, str], older: str, newer: str) -> bool | None:
    """Git.is_ancestor in the repository at `root`."""
    return Git(env, cwd=root, timeout=30).is_ancestor(older, newer)


def state(root: Path, env: Mapping[str, str]) -> tuple[str, bool]:
    """HEAD's sha and whether the work tree has uncommitted changes ("" when not a repo)."""
    git = Git(env, timeout=30)
    try:
        sha = git.run("-C", str(root), "rev-parse", "HEAD", check=False)
        if not sha.ok:
            return "", False
        dirty = git.run("-C", str(root), "status", "--porcelain", check=False)
    except GitError:
        return "", False
    return sha.stdout.strip(), bool(dirty.stdout.strip())
