"""The one way programs run: echo, explicit env, timeout, redacted failures, stoppable."""
from __future__ import annotations

import io
import os
import sys
import threading
import time

import pytest

from deployer.adapters import process
from deployer.console import Console
from deployer.errors import ToolError

PY = sys.executable


def _console():
    out, err = io.StringIO(), io.StringIO()
    return Console(stdout=out, stderr=err), err


def test_the_command_is_shown_with_the_tool_name_and_secrets_masked():
    console, err = _console()
    console.add_secrets(["hunter2-secret"])
    process.run([PY, "-c", "print('hi')", "hunter2-secret"], env={}, console=console,
                tool="python")
    assert err.getvalue() == "$ python -c 'print('\"'\"'hi'\"'\"')' ***\n"


def test_the_child_gets_only_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("DEPLOYER_TEST_LEAK", "from-the-shell")
    result = process.run([PY, "-c", "import os; print(os.environ.get('DEPLOYER_TEST_LEAK'), "
                                    "os.environ.get('GIVEN'))"], env={"GIVEN": "yes"}, echo=False)
    assert result.stdout.split() == ["None", "yes"]


def test_failure_names_the_tool_exit_code_and_last_line_redacted():
    console, _ = _console()
    console.add_secrets(["s3cret-token"])
    with pytest.raises(process.ProcessError) as info:
        process.run([PY, "-c", "import sys; print('first', file=sys.stderr); "
                               "print('Error: bad token s3cret-token', file=sys.stderr); "
                               "sys.exit(3)"], env={}, console=console, tool="helm")
    exc = info.value
    assert str(exc) == "helm -c failed (exit 3): Error: bad token ***"
    assert exc.returncode == 3 and exc.tool == "helm"
    assert "s3cret-token" in exc.stderr, "the raw output stays available to the caller"


def test_timeout_stops_the_program_and_says_so():
    start = time.monotonic()
    with pytest.raises(ToolError, match=r"sleep.* timed out after 0.3s"):
        process.run(["sleep", "30"], env={"PATH": os.defpath}, timeout=0.3, echo=False)
    assert time.monotonic() - start < 10
    assert process.running() == 0


def test_a_missing_program_is_a_tool_error():
    with pytest.raises(ToolError, match="cannot run no-such-tool"):
        process.run(["/nonexistent/no-such-tool"], env={}, echo=False)


def test_non_positive_timeouts_are_refused():
    with pytest.raises(ToolError, match="positive"):
        process.run([PY, "-c", "pass"], env={}, timeout=0, echo=False)


def test_terminate_all_stops_running_children():
    errors = []

    def runner():
        try:
            process.run(["sleep", "30"], env={"PATH": os.defpath}, timeout=60, echo=False)
        except process.ProcessError as exc:
            errors.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    deadline = time.monotonic() + 5
    while process.running() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.terminate_all(grace=2)
    thread.join(5)
    assert not thread.is_alive()
    assert errors and errors[0].returncode == -15


def test_input_that_is_not_text_is_one_error_and_the_child_is_stopped():
    """A str with lone surrogates (what Python makes of bytes that are not UTF-8) cannot be
    written to the child: one ToolError that quotes none of it, and no child left."""
    with pytest.raises(ToolError) as info:
        process.run([PY, "-c", "import sys; sys.stdin.read()"], env={},
                    stdin="password: caf\udce9-hunter2\n", echo=False, tool="sops")
    assert "input is not valid text" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert process.running() == 0
