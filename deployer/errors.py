"""User-facing errors: each names the file, the key and what was expected."""
from __future__ import annotations


class DeployerError(Exception):
    """A failure the operator can act on; the CLI prints it as one line."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.key}: " if self.key else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{key}{self.message}{hint}"


class ConfigError(DeployerError):
    """Bad federation data or Helm values."""


class SecretsError(DeployerError):
    """A secrets file that cannot be found, read or decrypted."""


class ToolError(DeployerError):
    """A required external tool is missing, the wrong version, or failed."""


class ValidationError(DeployerError):
    """Rendered manifests or values that break the chart or policy."""

    exit_code = 1


class DeployError(DeployerError):
    """A failed operation against a cluster."""

    exit_code = 1


class Interrupted(DeployError):
    """The operator (Ctrl-C) or CI (SIGTERM) interrupted the run."""

    exit_code = 130
