"""`smoke --build`: a fresh commit forces a fresh build. Push a throwaway commit to the
member's smoke build repository on a new branch, launch it, then delete the branch."""
from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
import uuid
from typing import Callable, Iterator

from deployer.adapters import sops
from deployer.adapters.git import Git, GitError
from deployer.errors import DeployError
from deployer.model.federation import Member


@contextlib.contextmanager
def throwaway_commit(ws, member: Member, log: Callable[[str], None] = print) -> Iterator[str]:
    """Yield the BinderHub spec of a new branch holding one throwaway commit; the branch is
    deleted afterwards (also when the launch fails)."""
    cfg = member.smoke_build
    if not cfg:
        raise DeployError(f"member {member.name} has no smoke.build repository",
                          file="config/federation.yaml", key=f"members.{member.name}.smoke",
                          hint="add smoke.build: {remote, spec, deploy_key}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    branch = f"smoke-{member.name}-{stamp}-{uuid.uuid4().hex[:6]}"
    tmp = tempfile.mkdtemp(prefix="deployer-smoke-build-")
    env = dict(ws.env)
    pushed = False
    work = os.path.join(tmp, "repo")
    try:
        if cfg.get("deploy_key"):
            key = os.path.join(tmp, "deploy-key")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(sops.decrypt(ws.root, cfg["deploy_key"], ws.env))
            env["GIT_SSH_COMMAND"] = (f"ssh -i {key} -o IdentitiesOnly=yes "
                                      "-o StrictHostKeyChecking=accept-new")
        git = Git(env, console=ws.console, echo=True)
        repo = git.at(work)
        try:
            git.run("clone", "--depth", "1", "--quiet", cfg["remote"], work)
            with open(os.path.join(work, ".binder-smoke"), "w") as handle:
                handle.write(f"{branch}\n")
            repo.run("add", ".binder-smoke")
            repo.run("-c", "user.name=binder smoke test", "-c", "user.email=smoke@invalid",
                     "commit", "--quiet", "-m", f"smoke test {branch}")
            repo.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        except GitError as exc:
            raise DeployError(exc.message) from None
        pushed = True
        log(f"  pushed throwaway branch {branch} to {cfg['remote']}")
        yield f"{cfg['spec'].rstrip('/')}/{branch}"
    finally:
        if pushed:
            try:
                Git(env, cwd=work, console=ws.console, echo=True).run(
                    "push", "--quiet", "origin", "--delete", branch)
                log(f"  deleted branch {branch}")
            except GitError as exc:
                ws.console.warn(f"could not delete smoke branch {branch}: {exc.message}")
        shutil.rmtree(tmp, ignore_errors=True)
