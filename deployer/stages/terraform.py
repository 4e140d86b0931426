"""Terraform stacks through the deployer: plan (saved, encrypted, summarised for review),
apply (only the reviewed plan, never an unconsented destroy), outputs, and the k3s
kubeconfig straight into sops.

Every command runs in the member's private 0700 directory (.deployer/terraform/<member>/,
one command at a time) whose files are removed afterwards: Terraform's data dir, the plan
file and, for a stack whose backend is `local`, the state, which is kept sops-encrypted in
secrets/terraform/<member>.tfstate and decrypted only for the command. A run killed
outright (SIGKILL) leaves them there; the next command saves a newer state it finds and
removes the rest.
Plans hold every secret a stack has: they are kept only sops-encrypted (<dir>/<member>.tfplan),
next to a summary with the digest a reviewer approved (<dir>/<member>.plan.json).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from deployer.adapters import sops
from deployer.adapters.terraform import Terraform, TerraformError, cli_config
from deployer.errors import ConfigError, DeployError, DeployerError
from deployer.model import terraform as model
from deployer.model.federation import Member
from deployer.model.workspace import Workspace

PLAN_DIR = "build/terraform"
STATE_DIR = "secrets/terraform"


@dataclass
class Run:
    """One stack's private run: its Terraform, root, private directory and member."""

    ws: Workspace
    member: Member
    stack: model.Stack
    terraform: Terraform
    work: Path
    applying: bool = False          # an apply started and its state is not saved yet

    @property
    def plan_file(self) -> Path:
        return self.work / "plan.tfplan"

    @property
    def state_file(self) -> Path:
        """Where a local-backend stack's state is decrypted to. A saved plan records its
        backend's settings, this path included, so plan and apply (in CI: two jobs, one
        checkout path) must agree on it: it depends on the repository, not on $TMPDIR."""
        return self.work / "terraform.tfstate"


def private_dir(ws: Workspace, member: Member) -> Path:
    """The member's private 0700 run directory (under .deployer/, never committed)."""
    return ws.root / ".deployer" / "terraform" / member.name


def stack_dir(ws: Workspace, member: Member) -> Path:
    """The member's root module directory; a member without one is a ConfigError."""
    directory = ws.root / model.MEMBERS_DIR / member.name
    if not directory.is_dir():
        known = ", ".join(sorted(model.load_stacks(ws.root))) or "none"
        raise ConfigError(f"member {member.name} has no Terraform stack "
                          f"({model.MEMBERS_DIR}/{member.name})", hint=f"stacks: {known}")
    return directory


def stack_for(ws: Workspace, member: Member) -> model.Stack:
    """The member's root module; a member without one is a ConfigError."""
    stack = model.load_stack(member.name, stack_dir(ws, member))
    if stack.backend is None:
        raise ConfigError("the stack declares no backend: Terraform would write its state, "
                          "secrets included, in clear next to it",
                          file=f"{model.MEMBERS_DIR}/{member.name}",
                          hint='declare one: backend "gcs"/"s3", or backend "local" (the '
                               "deployer then keeps the state sops-encrypted)")
    return stack


@contextmanager
def session(ws: Workspace, member: Member) -> Iterator[Run]:
    """An initialised private run of the member's stack: one at a time per member (a lock),
    state (local backend) decrypted in, a state a killed run left behind rescued first, and
    everything removed afterwards - except a state that could not be saved."""
    stack = stack_for(ws, member)
    work = private_dir(ws, member)
    with _locked(work, member) as lock:
        run = None
        keep = False
        try:
            env = {**_env(ws, work), **_secret_vars(ws, member, stack)}
            run = Run(ws, member, stack, Terraform(env, console=ws.console,
                                                   lock_fd=lock.fileno()), work)
            init = ["init", "-input=false", "-no-color"]
            if stack.backend == "local":
                _rescue_or_decrypt(run)
                init.append(f"-backend-config=path={run.state_file}")
            run.terraform.run(stack.root, *init)
            yield run
        except StateNotSaved:
            keep = True
            raise
        except BaseException:
            # after an apply started, whatever went wrong, a state not yet saved stays
            keep = run is not None and run.applying
            raise
        finally:
            _clean(work, keep)


class StateNotSaved(DeployError):
    """The state after an apply could not be encrypted back; its plaintext copy is kept."""


@contextmanager
def _locked(work: Path, member: Member) -> Iterator:
    import fcntl

    work.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(work.parent, 0o700)
    work.mkdir(mode=0o700, exist_ok=True)
    handle = open(work / ".lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(f"another terraform command for {member.name} is running "
                              f"(its lock: {work / '.lock'})") from None
        yield handle
    finally:
        handle.close()


def _rescue_or_decrypt(run: Run) -> None:
    """Put the member's state in the private dir: a newer plaintext state a killed run left
    there is encrypted back first (it is the only record of what it created)."""
    ws, member = run.ws, run.member
    encrypted = ws.root / STATE_DIR / f"{member.name}.tfstate"
    saved = sops.decrypt_blob(ws.root, encrypted, ws.env) if encrypted.is_file() else None
    if run.state_file.is_file():
        left = run.state_file.read_text(encoding="utf-8")
        if saved is not None and _lineage(left) != _lineage(saved):
            kept = run.state_file.with_name(f"terraform.tfstate.leftover-{int(time.time())}")
            run.state_file.rename(kept)
            raise StateNotSaved(f"{member.name}: {kept} (left by an interrupted run) and "
                                f"{encrypted.relative_to(ws.root)} are states of different "
                                "stacks (lineage); both are kept, nothing is run",
                                hint="decide which is right with a person who knows; remove "
                                     "the other")
        if _serial(left) > _serial(saved):
            ws.console.warn(f"{member.name}: an interrupted terraform run left a newer state "
                            f"(serial {_serial(left)}); saving it to {encrypted.name} first")
            _keep_state(run)
            return
        if _serial(left) >= 0 and _serial(left) < _serial(saved):
            ws.console.warn(f"{member.name}: discarding an older state an interrupted run left "
                            f"(serial {_serial(left)} < {_serial(saved)} in {encrypted.name})")
    if saved is not None:
        _write_private(run.state_file, saved)
    else:
        run.state_file.unlink(missing_ok=True)


def _lineage(state: str | None) -> str | None:
    try:
        return json.loads(state).get("lineage") if state else None
    except (ValueError, TypeError, AttributeError):
        return None


def _serial(state: str | None) -> int:
    if not state:
        return -1
    try:
        return int(json.loads(state).get("serial", -1))
    except (ValueError, TypeError, AttributeError):
        return -1


def _clean(work: Path, keep: bool) -> None:
    """Remove the private run files (the lock file stays: it is empty)."""
    if not work.is_dir():
        return
    for entry in work.iterdir():
        if entry.name == ".lock" or (keep and entry.name.startswith("terraform.tfstate")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def plan(ws: Workspace, member: Member, out_dir: Path, *, extra: tuple[str, ...] = ()
         ) -> model.PlanSummary:
    """`terraform plan` saved for apply: the plan encrypted, its summary and digest beside."""
    with session(ws, member) as run:
        summary = _plan(run, extra)
        save_plan(run, summary, out_dir)
        return summary


def apply(ws: Workspace, member: Member, plan_dir: Path, *, allow_destroy: tuple[str, ...] = (),
          expect_digest: str | None = None) -> dict:
    """Apply the saved, reviewed plan of `member`; returns the outputs (values masked)."""
    reviewed, planned_at = _reviewed(plan_dir, member, expect_digest)
    with session(ws, member) as run:
        if run.stack.backend == "local" and planned_at and planned_at != str(run.state_file):
            raise DeployError(f"{member.name}: the plan was made in another checkout (its "
                              f"state at {planned_at}); applying it here would write the "
                              "state there", hint="plan again in this checkout")
        encrypted = Path(plan_dir) / f"{member.name}.tfplan"
        _write_private(run.plan_file, b"", binary=True)
        run.plan_file.write_bytes(base64.b64decode(sops.decrypt_blob(
            ws.root, encrypted, ws.env,
            remake=f"make the plan again: ./deploy.py terraform plan {member.name}")))
        show = run.terraform.json(run.stack.root, "show", "-json", "-no-color",
                                  str(run.plan_file))
        summary = model.summarize(member.name, show)
        if summary.digest != reviewed:
            raise DeployError(f"{member.name}: the saved plan is not the reviewed one "
                              f"(digest {summary.digest}, reviewed {reviewed})",
                              hint="plan again and have the new plan reviewed")
        _refuse_destroy(summary, allow_destroy)
        return _apply_plan(run)


def output(ws: Workspace, member: Member) -> dict:
    """The stack's outputs: {name: {"value", "sensitive"}}."""
    with session(ws, member) as run:
        return _outputs(run)


def refresh_kubeconfig(ws: Workspace, member: Member) -> str:
    """Fetch the k3s kubeconfig again (the server rotates a client certificate that expires
    soon) and encrypt it into secrets: a targeted replace of the fetching resource, refused
    if the stack has any other change pending. Returns where it was written."""
    with session(ws, member) as run:
        module = run.stack.module_of_kind("hetzner-k3s")
        if module is None:
            raise ConfigError(f"{member.name}: its stack uses no hetzner-k3s module; only k3s "
                              "members have a kubeconfig output to refresh")
        address = f"module.{module}.ssh_resource.kubeconfig"
        summary = _plan(run, (f"-replace={address}",))
        other = [c for c in summary.changes if c.kind != "no-op" and c.address != address]
        if other:
            raise DeployError(f"{member.name}: the stack has other changes pending "
                              f"({', '.join(c.address for c in other[:3])})",
                              hint="run terraform plan/apply for them first")
        _refuse_destroy(summary, ())
        _apply_plan(run)
        return member.cluster.kubeconfig or ""


def save_plan(run: Run, summary: model.PlanSummary, out_dir: Path) -> None:
    """The plan, sops-encrypted, and its summary (no values: addresses and actions)."""
    out_dir = Path(out_dir)
    raw = base64.b64encode(run.plan_file.read_bytes()).decode()
    sops.encrypt_blob(run.ws.root, f"{STATE_DIR}/{run.member.name}.tfplan", raw,
                      out_dir / f"{run.member.name}.tfplan", run.ws.env)
    text = json.dumps({**summary.to_json(), "blocked": [
        c.address for c in summary.protected()],
        "state_path": str(run.state_file) if run.stack.backend == "local" else None},
        indent=2) + "\n"
    _write_private(out_dir / f"{run.member.name}.plan.json", text)


# -- steps --------------------------------------------------------------------------------
def _plan(run: Run, extra: tuple[str, ...]) -> model.PlanSummary:
    args = ["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode",
            f"-out={run.plan_file}"]
    for key, value in model.federation_vars(run.member).items():
        if key in run.stack.variables:
            args.append(f"-var={key}={value}")
    run.terraform.run(run.stack.root, *args, *extra, ok=(0, 2))
    show = run.terraform.json(run.stack.root, "show", "-json", "-no-color", str(run.plan_file))
    return model.summarize(run.member.name, show)


def _apply_plan(run: Run) -> dict:
    ws, member = run.ws, run.member
    before = _serial(run.state_file.read_text(encoding="utf-8")) \
        if run.state_file.is_file() else -1
    run.applying = True
    try:
        run.terraform.run(run.stack.root, "apply", "-input=false", "-no-color", "-json",
                          str(run.plan_file))
    finally:
        _keep_state(run)        # whatever was created is in the state: never lose it
        run.applying = False    # saved (a StateNotSaved above keeps it True: kept in clear)
    if run.stack.backend == "local":
        after = _serial(run.state_file.read_text(encoding="utf-8")) \
            if run.state_file.is_file() else -1
        if after <= before:
            raise DeployError(f"{member.name}: terraform apply wrote no new state where the "
                              f"deployer keeps it ({run.state_file})",
                              hint="check the stack's backend; plan again in this checkout")
    outputs = _outputs(run)
    kubeconfig = (outputs.get("kubeconfig") or {}).get("value")
    if kubeconfig:
        _store_kubeconfig(ws, member, kubeconfig)
    return outputs


def _outputs(run: Run) -> dict:
    found = run.terraform.json(run.stack.root, "output", "-json", "-no-color")
    for value in found.values():
        if value.get("sensitive"):
            run.ws.console.add_secrets(_strings(value.get("value")))
    return found


def _store_kubeconfig(ws: Workspace, member: Member, kubeconfig: str) -> None:
    """The k3s kubeconfig output, sops-encrypted where the member's cluster says."""
    rel = member.cluster.kubeconfig
    if not rel or not rel.startswith("secrets/"):
        raise ConfigError(f"{member.name}: its stack outputs a kubeconfig, but "
                          "cluster.kubeconfig in config/federation.yaml names no file under "
                          "secrets/ to keep it in")
    ws.console.add_secrets(_strings(kubeconfig))
    sops.encrypt_text(ws.root, rel, kubeconfig, ws.env)
    ws.console.info(f"{member.name}: kubeconfig encrypted into {rel}")


def _keep_state(run: Run) -> None:
    """Encrypt the local-backend state back into secrets/terraform/; if that fails, the
    plaintext copy stays in the private dir (StateNotSaved) rather than being lost."""
    if run.stack.backend != "local" or not run.state_file.is_file():
        return
    target = run.ws.root / STATE_DIR / f"{run.member.name}.tfstate"
    try:
        text = run.state_file.read_text(encoding="utf-8")
        if _serial(text) < 0:           # cut short (a killed write): never over a good copy
            raise DeployError("it is not a complete Terraform state")
        sops.encrypt_blob(run.ws.root, f"{STATE_DIR}/{run.member.name}.tfstate", text, target,
                          run.ws.env)
    except (DeployerError, OSError) as exc:
        raise StateNotSaved(f"{run.member.name}: the new state could not be encrypted "
                            f"({exc}); it is kept in clear in {run.state_file} (0600): the "
                            "next terraform command saves it") from None


def _refuse_destroy(summary: model.PlanSummary, allowed: tuple[str, ...]) -> None:
    blocked = summary.protected(allowed)
    if blocked:
        what = ", ".join(f"{c.kind} {c.address}" for c in blocked)
        raise DeployError(f"{summary.member}: the plan would {what}; refused",
                          hint="if that is intended, name each with --allow-destroy NAME")


def _reviewed(plan_dir: Path, member: Member, expect: str | None) -> tuple[str, str | None]:
    """The saved plan's digest (checked against `expect`) and the state path it was made
    with (None for a remote backend)."""
    path = Path(plan_dir) / f"{member.name}.plan.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        digest = saved["digest"]
    except FileNotFoundError:
        raise ConfigError(f"no saved plan for {member.name}", file=str(path),
                          hint=f"run ./deploy.py terraform plan {member.name} first") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError("not a plan summary written by terraform plan",
                          file=str(path)) from None
    if expect and expect != digest:
        raise DeployError(f"{member.name}: the saved plan ({digest}) is not the one "
                          f"reviewed ({expect})", hint="plan again and review it")
    return digest, saved.get("state_path")


def _secret_vars(ws: Workspace, member: Member, stack: model.Stack) -> dict[str, str]:
    """The stack's secret variables (secrets/terraform/<member>.yaml, sops) as TF_VAR_*
    in the child's environment only: never in a file, a -var or a log line."""
    from deployer.model.yamlio import load_text

    rel = f"{STATE_DIR}/{member.name}.yaml"
    if not (ws.root / rel).is_file():
        return {}
    data = load_text(sops.decrypt(ws.root, rel, ws.env), rel).data or {}
    if not isinstance(data, dict):
        raise ConfigError("expected a map of variable names to values", file=rel)
    found = {}
    for name, value in data.items():
        if name not in stack.variables:
            raise ConfigError(f"{name}: the stack declares no such variable", file=rel,
                              hint=f"variables of {model.MEMBERS_DIR}/{member.name}: "
                                   + ", ".join(stack.variables))
        text = value if isinstance(value, str) else json.dumps(value)
        ws.console.add_secrets([text] + [line for line in text.splitlines()
                                         if len(line.strip()) >= 20])
        found[f"TF_VAR_{name}"] = text
    return found


def _env(ws: Workspace, work: Path) -> dict:
    """The explicit environment of Terraform: the project's CLI config (a plugin cache
    shared between runs; providers from $DEPLOYER_TERRAFORM_MIRROR when set), a private
    data dir, and whatever credentials the workspace env carries."""
    # (not under .deployer/terraform/, where each member has its private run directory)
    plugins = Path(ws.env.get("DEPLOYER_CACHE_DIR") or ws.root / ".deployer") / \
        "terraform-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    mirror = ws.env.get("DEPLOYER_TERRAFORM_MIRROR")
    config = work / "terraformrc"
    config.write_text(cli_config(plugins, Path(mirror) if mirror else None))
    return {**ws.env, "TF_CLI_CONFIG_FILE": str(config), "TF_DATA_DIR": str(work / "data"),
            "HOME": ws.env.get("HOME") or str(work)}


def _write_private(path: Path, text, binary: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb" if binary else "w") as handle:
        handle.write(text)


def _strings(value) -> list[str]:
    """The strings of a sensitive output to mask: the value, and for a YAML document (a
    kubeconfig) every long leaf in it (tokens, keys, certificates)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if not isinstance(value, str):
        return []
    found = [value]
    if "\n" in value:
        import yaml

        try:
            doc = yaml.safe_load(value)
        except yaml.YAMLError:
            doc = None
        if isinstance(doc, (dict, list)):
            found += [s for s in _leaves(doc) if len(s) >= 20]
    return found


def _leaves(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _leaves(v)]
    if isinstance(node, list):
        return [s for v in node for s in _leaves(v)]
    return [node] if isinstance(node, str) else []


__all__ = ["plan", "apply", "output", "refresh_kubeconfig", "stack_for", "session",
           "PLAN_DIR", "TerraformError"]
