"""`deploy.py terraform validate`: the stacks agree with config/federation.yaml (python-hcl2),
are `terraform fmt`-clean, pass `terraform validate` (providers from the registry, or the
mirror in $DEPLOYER_TERRAFORM_MIRROR), and pass checkov (offline) except for the findings
its config file accepts, each with a reason."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from deployer.adapters import process
from deployer.adapters.terraform import Terraform, TerraformError
from deployer.model import terraform as model
from deployer.model.workspace import Workspace
from deployer.stages.terraform import _env

CHECKOV_CONFIGS = ("terraform/.checkov.yaml", "terraform/checkov.yaml")


def check(ws: Workspace, members: list[str]) -> tuple[list[str], list[str]]:
    """(problems, notes) for the stacks of `members`."""
    problems: list[str] = []
    notes: list[str] = []
    stacks = model.load_stacks(ws.root)
    problems += model.check_stacks(ws.federation, stacks, ws.root)
    work = Path(tempfile.mkdtemp(prefix="deployer-tf-check-"))
    try:
        terraform = Terraform(_env(ws, work), console=ws.console)
        problems += _fmt(terraform, ws.root / "terraform")
        for name in members:
            if name in stacks:
                problems += _validate(terraform, ws.root, stacks[name], work / name)
        found, note = _checkov(ws)
        problems += found
        if note:
            notes.append(note)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return problems, notes


def _fmt(terraform: Terraform, directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    result = terraform.run(directory, "fmt", "-check", "-recursive", "-list=true", "-no-color",
                           check=False)
    if result.returncode == 0:
        return []
    files = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not files:
        return [f"terraform fmt failed: {process.last_lines(result.stderr)}"]
    return [f"terraform/{f}: not formatted (run: terraform fmt -recursive terraform)"
            for f in files]


def _validate(terraform: Terraform, root: Path, stack: model.Stack, data: Path) -> list[str]:
    own = Terraform({**terraform.env, "TF_DATA_DIR": str(data)}, console=terraform.console)
    try:
        own.run(stack.root, "init", "-backend=false", "-input=false", "-no-color")
        result = own.run(stack.root, "validate", "-json", "-no-color", check=False)
    except TerraformError as exc:
        return [f"{model.MEMBERS_DIR}/{stack.member}: {exc}"]
    problems = []
    for diag in result.diagnostics:
        if diag.get("severity") != "error":
            continue
        where = diag.get("range") or {}
        file = Path(where.get("filename", "")) if where.get("filename") else None
        if file is not None and not file.is_absolute():
            file = stack.root / file
        label = _rel(root, file) if file else f"{model.MEMBERS_DIR}/{stack.member}"
        line = (where.get("start") or {}).get("line")
        detail = " ".join((diag.get("detail") or "").split())
        problems.append(f"{label}{':' + str(line) if line else ''}: {diag.get('summary')}"
                        + (f": {detail}" if detail else ""))
    return problems


def _checkov(ws: Workspace) -> tuple[list[str], str | None]:
    binary = ws.env.get("DEPLOYER_CHECKOV") or _installed_checkov(ws)
    if not binary:
        return [], ("checkov is not installed: its checks were skipped (scripts/bootstrap "
                    "--dev installs it in .tools/checkov)")
    config = next((c for c in CHECKOV_CONFIGS if (ws.root / c).is_file()), None)
    argv = [binary, "-d", "terraform", "--framework", "terraform", "--skip-download",
            "--quiet", "--compact", "-o", "json"]
    if config:
        argv += ["--config-file", config]
    env = {k: v for k, v in ws.env.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    result = process.run(argv, env={**env, "BC_SKIP_MAPPING": "TRUE"}, cwd=ws.root,
                         timeout=600, console=ws.console, check=False, tool="checkov")
    try:
        data = json.loads(result.stdout or "{}")
    except ValueError:
        return [f"checkov failed (exit {result.returncode}): "
                f"{process.last_lines(result.stderr or result.stdout)}"], None
    reports = data if isinstance(data, list) else [data]
    problems = []
    for report in reports:
        for failed in (report.get("results") or {}).get("failed_checks") or []:
            lines = failed.get("file_line_range") or [None]
            path = (failed.get("file_path") or "").lstrip("/")
            problems.append(f"terraform/{path}:{lines[0]}: checkov {failed.get('check_id')}: "
                            f"{failed.get('check_name')} ({failed.get('resource')})")
    if result.returncode not in (0, 1) and not problems:
        problems.append(f"checkov failed (exit {result.returncode})")
    return problems, None


def _installed_checkov(ws: Workspace) -> str | None:
    """checkov from its own virtualenv (.tools/checkov, made by scripts/bootstrap --dev:
    its pinned dependencies clash with the deployer's), else from PATH."""
    own = Path(__file__).resolve().parents[2] / ".tools" / "checkov" / "bin" / "checkov"
    if own.is_file():
        return str(own)
    return shutil.which("checkov", path=ws.env.get("PATH"))


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
