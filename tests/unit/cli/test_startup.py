"""What every command pays before it starts: imports."""
import subprocess
import sys

from tests.support import ROOT


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print('\\n'.join(k for k, v in sys.modules.items() if v))"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return set(out.split())


def test_help_imports_no_heavy_library():
    loaded = _imported_after("import sys; sys.argv = ['deploy.py', '--help']\n"
                             "from deployer.cli import run\ntry:\n    run()\n"
                             "except SystemExit:\n    pass")
    heavy = {"kubernetes", "jsonschema", "requests", "ruamel", "yaml", "cryptography",
             "websocket", "kubernetes_validate"}
    assert not heavy & {name.split(".")[0] for name in loaded}


def test_jsonschema_format_grammars_are_not_compiled():
    """rfc3987_syntax compiles lark grammars at import (a second); no deployer check uses it."""
    loaded = _imported_after("import deployer.model.federation as f\nimport jsonschema")
    assert "jsonschema" in loaded and "rfc3987_syntax" not in loaded and "lark" not in loaded


def test_a_command_loads_no_format_checker_it_never_uses():
    loaded = _imported_after("import sys; sys.argv = ['deploy.py', 'members']\n"
                             "from deployer.cli import run\nimport deployer.cli as c\n"
                             "try:\n    run()\nexcept SystemExit:\n    pass\n"
                             "import jsonschema\n"
                             "assert jsonschema.FormatChecker().conforms('x', 'date-time')\n")
    from deployer.cli import UNUSED_FORMAT_CHECKERS

    assert "jsonschema" in loaded
    assert not set(UNUSED_FORMAT_CHECKERS) & {name.split(".")[0] for name in loaded}


def test_a_valid_federation_and_valid_objects_need_no_python_jsonschema():
    """(the compiled check passes them; python-jsonschema, with its imports, is for telling
    what is wrong)"""
    loaded = _imported_after(
        "from pathlib import Path\nfrom deployer.model import federation, manifests\n"
        "federation.load(Path('.'))\n"
        "text = 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: x}\\ndata: {a: b}\\n'\n"
        "assert manifests.validate(manifests.parse(text), '1.34').problems == []\n")
    assert not {"jsonschema", "referencing", "kubernetes_validate"} & {
        name.split(".")[0] for name in loaded}
    loaded = _imported_after(
        "from deployer.model import manifests\n"
        "text = 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: x}\\ndata: {a: 1}\\n'\n"
        "[p] = manifests.validate(manifests.parse(text), '1.34').problems\n"
        "assert p.path == 'data.a', p\n")
    assert "jsonschema" in loaded


def test_a_quick_exit_keeps_the_exit_code_the_output_and_the_atexit_handlers(tmp_path):
    """(validate ends without the interpreter's teardown: common.leave_if_quick)"""
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, sys\n"
            "from deployer.cli import common\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
            "common.begin(None)\n"
            "sys.stdout.write('buffered, not flushed\\n')\n"
            "common.ends_quickly()\n"
            "try:\n    raise SystemExit(3)\n"
            "except SystemExit as exc:\n    common.leave_if_quick(exc.code)\n"
            "print('not reached')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert (done.returncode, done.stdout) == (3, "buffered, not flushed\n")
    assert marker.read_text() == "yes"
    # a command that did not say so ends as usual
    code = code.replace("common.ends_quickly()\n", "")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0 and done.stdout.endswith("not reached\n")


def test_a_quick_exit_whose_output_is_lost_is_not_a_success():
    code = ("import sys\nfrom deployer.cli import common\ncommon.begin(None)\n"
            "sys.stdout.write('a report nobody will read\\n')\ncommon.ends_quickly()\n"
            "common.leave_if_quick(0)\n")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", code], stdout=full, cwd=ROOT,
                              stderr=subprocess.PIPE, text=True,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 120
    assert done.stderr.startswith("error: the output could not be written: "), done.stderr


def _collector_after(command: list[str], *, via_run: bool = True) -> str:
    """Whether the cyclic garbage collector is on when `command` is done, and whether what
    the imports made was set aside (frozen)."""
    driver = ("import atexit, gc, sys\n"
              "atexit.register(lambda: print('collector', gc.isenabled(),"
              " gc.get_freeze_count() > 0))\n"
              f"sys.argv = ['deploy.py', *{command!r}]\n")
    driver += ("from deployer.cli import run\nrun()\n" if via_run else
               "from deployer.cli.app import app\n"
               "from typer.testing import CliRunner\n"
               "CliRunner().invoke(app, sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          cwd=ROOT)
    return done.stdout.strip().splitlines()[-1]


def test_the_collector_is_off_for_start_up_and_short_commands_only():
    # a command that may run long (here: members) runs with it; the imports' objects frozen
    assert _collector_after(["members"]) == "collector True True"
    # validate says it is short (common.ends_quickly): no collector passes over its objects
    assert _collector_after(["--root", "/nonexistent", "validate", "--all"]) == \
        "collector False True"
    # a process that uses the deployer as a library keeps its own setting
    assert _collector_after(["--root", "/nonexistent", "validate", "--all"],
                            via_run=False) == "collector True False"
