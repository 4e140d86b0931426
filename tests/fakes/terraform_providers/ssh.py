"""Stand-in for the ``loafoe/ssh`` provider (registry.terraform.io/loafoe/ssh): ``ssh_resource``.

Unlike the other stand-ins this one does real work: on create (and on an update that changes
``commands``) it runs the commands over SSH with the real OpenSSH client::

    ssh -F /dev/null -p PORT -i KEYFILE -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes USER@HOST COMMAND

(the key goes to a 0600 temporary file that is removed afterwards; with ``host_key`` set
the host key is checked against it instead). While the connection itself fails (ssh exits
255: refused, unreachable, host still booting...) it retries every ``retry_delay`` until
``timeout``; a command that exits non-zero fails the apply at once. Read keeps the state,
delete does nothing remote.

Where it differs from the real provider (easyssh, SDKv2):

* ``result`` is the stdout of the LAST command, as in the real provider (not all of them
  joined). It is not sensitive (``ssh_sensitive_resource`` is the real provider's sensitive
  twin and is not provided here); a module should mark an output of it sensitive itself.
* ``host_key`` (a known host public key, "ssh-ed25519 AAAA...") is this stand-in's own
  addition; no ``file`` blocks, bastions, passwords, ``pre_commands`` or ``when``.
* The real provider retries failing commands too (until ``timeout``), and checks
  timeout/user/private_key only at apply time; here those checks run in ``validate``.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import tempfile
import time

from tests.fakes.terraform_providers import (Attribute, Bool, Diagnostics, List, Map,
                                             StandInProvider, StandInResource, String, Unknown,
                                             known, matches, serve)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration ("5m", "1m30s", "500ms"); ValueError if it is not one."""
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"time: invalid duration {text!r}")
    return total


def _duration(value):
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return None


class SSHResource(StandInResource):
    name = "resource"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("host", String(), required=True, requires_replace=True),
        Attribute("port", String(), optional=True, computed=True, default="22"),
        Attribute("user", String(), optional=True, requires_replace=True),
        Attribute("private_key", String(), optional=True, sensitive=True),
        Attribute("host_key", String(), optional=True),
        Attribute("agent", Bool(), optional=True, computed=True, default=False),
        Attribute("timeout", String(), optional=True, computed=True, default="5m"),
        Attribute("retry_delay", String(), optional=True, computed=True, default="10s"),
        Attribute("commands", List(String()), optional=True),
        Attribute("triggers", Map(String()), optional=True, requires_replace=True),
        Attribute("result", String(), computed=True),
    ]
    checks = {
        ("port",): matches(r"\d{1,5}", "a port number"),
        ("timeout",): _duration,
        ("retry_delay",): _duration,
        ("host_key",): matches(r"(ssh-|ecdsa-|sk-)\S+ \S+( .*)?", "an OpenSSH public host key"),
    }
    recompute = {"result": ("commands",)}

    def check(self, diags: Diagnostics, config: dict) -> None:
        timeout, delay = config.get("timeout"), config.get("retry_delay")
        if known(timeout) and known(delay) and not diags.has_errors():
            if parse_duration(delay) >= parse_duration(timeout):
                diags.add_error("retry_delay cannot be greater than timeout",
                                f"retry_delay {delay} >= timeout {timeout}", path=["retry_delay"])
        commands = config.get("commands")
        if commands is Unknown or not commands:
            return
        if config.get("user") is None:
            diags.add_error("user must be set when 'commands' is specified", path=["commands"])
        agent, key = config.get("agent"), config.get("private_key")
        if agent is True and known(key):
            diags.add_error("agent mode is enabled, not expecting a private key", path=["private_key"])
        if agent is not True and key is None:
            diags.add_error("'private_key' must be set when 'commands' is specified and 'agent' is false",
                            path=["commands"])

    def computed(self, ctx, state):
        values = {"id": str(random.randint(0, 2 ** 63 - 1))}
        if state.get("result") is Unknown:  # on create, or an update that changed commands
            values["result"] = self._run(ctx, state)
        return values

    def _run(self, ctx, state: dict) -> str:
        commands = state.get("commands") or []
        if not commands:
            return ""
        deadline = time.monotonic() + parse_duration(state["timeout"])
        delay = parse_duration(state["retry_delay"])
        files = []
        try:
            argv = ["ssh", "-F", "/dev/null", "-p", str(state["port"]), "-o", "BatchMode=yes",
                    "-o", "LogLevel=ERROR"]
            if known(state.get("host_key")):
                known_hosts = _temp_file(_known_hosts_line(state["host"], state["port"], state["host_key"]))
                files.append(known_hosts)
                argv += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}"]
            else:
                argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
            if not state.get("agent"):
                key = state.get("private_key") or ""
                files.append(_temp_file(key if key.endswith("\n") else key + "\n"))
                argv += ["-i", files[-1], "-o", "IdentitiesOnly=yes"]
            target = f"{state['user']}@{state['host']}"
            stdout = ""
            for command in commands:
                stdout = _run_one(ctx.diagnostics, argv, target, command, deadline, delay)
                if stdout is None:
                    return ""
            return stdout
        finally:
            for path in files:
                os.unlink(path)


def _temp_file(text: str) -> str:
    fd, path = tempfile.mkstemp(prefix="standin-ssh-")  # mode 0600
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _known_hosts_line(host: str, port: str, key: str) -> str:
    name = host if str(port) == "22" else f"[{host}]:{port}"
    return f"{name} {' '.join(key.split()[:2])}\n"


def _run_one(diags: Diagnostics, argv: list, target: str, command: str, deadline: float, delay: float):
    """stdout of one command, retrying while ssh itself fails; None (and an error) if it never ran."""
    while True:
        left = deadline - time.monotonic()
        connect = ["-o", f"ConnectTimeout={max(1, min(10, int(left)))}"]
        try:
            proc = subprocess.run(argv + connect + [target, command], capture_output=True, text=True,
                                  timeout=max(left, 1), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            diags.add_error(f"execution of command '{command}' failed: context deadline exceeded")
            return None
        if proc.returncode == 0:
            return proc.stdout
        if proc.returncode != 255:
            diags.add_error(f"execution of command '{command}' failed: exit status {proc.returncode}",
                            proc.stdout + proc.stderr)
            return None
        if time.monotonic() + delay >= deadline:
            diags.add_error(f"execution of command '{command}' failed: context deadline exceeded",
                            proc.stderr.strip())
            return None
        time.sleep(delay)


class SSHProvider(StandInProvider):
    source = "loafoe/ssh"
    prefix = "ssh_"
    config_attributes = [Attribute("debug_log", String(), optional=True)]
    resources = [SSHResource]


def main() -> None:
    serve(SSHProvider())


if __name__ == "__main__":
    main()
