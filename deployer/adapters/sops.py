"""sops adapter: decrypt to memory, encrypt, edit, re-key. Plaintext never rests on disk.

Every call runs the real sops binary with the repository root as working directory (so the
creation rules in .sops.yaml match paths like `secrets/gke.yaml`) and an explicit environment;
the operator's age identities come from SOPS_AGE_KEY_FILE / SOPS_AGE_KEY in that environment.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from deployer.adapters import process, tools
from deployer.errors import SecretsError, ToolError

SOPS_CONFIG = ".sops.yaml"
TIMEOUT = 60          # seconds for one sops call (age decryption is local and fast)
EDIT_TIMEOUT = None   # `sops edit` waits for a person in an editor: no timeout (killing it
                      # would leave its decrypted temporary file behind)
_NO_KEY_MARKERS = ("failed to get the data key", "could not decrypt data key",
                   "0 successful groups required", "no identity matched",
                   "error getting data key")


def decrypt(root: Path, rel: str, env: Mapping[str, str]) -> str:
    """Plaintext of the sops file `rel` (relative to root), returned in memory only."""
    path = root / rel
    if not path.is_file():
        raise SecretsError("file not found", file=rel,
                           hint=f"create it with ./deploy.py secrets encrypt {rel}")
    if not is_encrypted(path):
        raise SecretsError("not encrypted with sops: plaintext secrets must not be committed",
                           file=rel, hint=f"run ./deploy.py secrets encrypt {rel}")
    clear = first_clear_value(path)
    if clear is not None:
        key, line = clear
        raise SecretsError(f"{key}: value is not encrypted (a secrets file must encrypt every "
                           "value)", file=rel, line=line,
                           hint="re-encrypt it without --unencrypted-regex/-suffix: "
                                f"./deploy.py secrets encrypt --stdin --force {rel} < plaintext")
    result = _sops(root, ["decrypt", rel], process.short_go_run(env))
    if result.returncode != 0:
        raise _decrypt_error(root, rel, result.stderr, env)
    return result.stdout


@contextmanager
def decrypted_file(root: Path, rel: str, env: Mapping[str, str]) -> Iterator[Path]:
    """A 0600 plaintext copy in a private 0700 temp dir, removed on exit (for tools that need a file)."""
    plaintext = decrypt(root, rel, env)
    tmpdir = tempfile.mkdtemp(prefix="deployer-")
    try:
        target = Path(tmpdir) / Path(rel).name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(plaintext)
        yield target
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def is_encrypted(path: Path) -> bool:
    """True when the file carries sops metadata (a top-level `sops:` map with a MAC)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return "\nsops:\n" in f"\n{text}" and "mac: ENC[" in text


def first_clear_value(path: Path) -> tuple[str, int | None] | None:
    """(key path, line) of the first value a sops file holds in clear, or None. Empty strings
    and nulls are fine: sops leaves them as they are, and they hold nothing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None     # sops itself reports it
    return clear_value_in(text, str(path))


def clear_value_in(text: str, label: str) -> tuple[str, int | None] | None:
    """first_clear_value of sops output held in memory (before it is written)."""
    from deployer.model.yamlio import format_path, load_text

    if _all_encrypted_quickly(text):
        return None
    try:
        doc = load_text(text, label, yaml11_words=True)
    except Exception:  # noqa: BLE001 - sops itself reports a malformed file
        return None
    if not isinstance(doc.data, dict):
        return None
    for trail in _clear_values(doc.data):
        return format_path(trail), doc.line_of(trail)
    return None


def _all_encrypted_quickly(text: str) -> bool:
    """True when libyaml reads the file and every value is plainly encrypted, empty or null:
    the usual case, decided without the slower line-keeping parser (which finds the line of a
    clear value, and judges everything this is not sure of). Nodes are read as written, not
    constructed: keys YAML 1.1 would fold together (`yes`/`true`, `010`/`8`) must not hide a
    value, so any key that is not a plain, unique string, any merge key, and any value that
    is not a string or null goes to the careful parser."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return False
    try:
        root = yaml.compose(text, Loader=loader)
    except Exception:  # noqa: BLE001 - the careful parser decides
        return False
    if not isinstance(root, yaml.MappingNode):
        return False
    string, null = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"
    budget = 100_000          # aliases make a small file a huge tree
    stack: list = [(root, True)]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        node, top = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag != string \
                        or key.value in seen or key.value == "<<":
                    return False
                seen.add(key.value)
                if not (top and key.value == "sops"):
                    stack.append((value, False))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, False) for item in node.value)
        elif node.tag == null:
            continue
        elif node.tag != string or not (node.value == "" or (
                node.value.startswith("ENC[") and node.value.endswith("]"))):
            return False
    return True


def _clear_values(data: dict):
    """Key paths of the values a sops file holds in clear (its `sops:` metadata aside)."""

    def walk(node, trail):
        if isinstance(node, dict):
            for key, value in node.items():
                if trail or key != "sops":
                    yield from walk(value, trail + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, trail + (i,))
        elif node is not None and node != "" and not (
                isinstance(node, str) and node.startswith("ENC[") and node.endswith("]")):
            yield trail

    return walk(data, ())


def recipients(path: Path) -> list[str]:
    """The age recipients a sops file is encrypted to, read from its metadata (no key needed)."""
    from deployer.model.yamlio import load_text

    try:
        meta = load_text(path.read_text(encoding="utf-8"), str(path),
                         yaml11_words=True).data.get("sops", {})
    except Exception:  # unreadable metadata: report no recipients rather than a second error
        return []
    return [entry.get("recipient", "?") for entry in meta.get("age") or []]


def encrypt_in_place(root: Path, rel: str, env: Mapping[str, str]) -> None:
    """Encrypt a plaintext file in place to the recipients .sops.yaml gives its path."""
    path = root / rel
    if not path.is_file():
        raise SecretsError("file not found", file=rel)
    if is_encrypted(path):
        raise SecretsError("already encrypted", file=rel,
                           hint=f"use ./deploy.py secrets edit {rel} to change it")
    _check(root, rel, _sops(root, ["encrypt", "--in-place", rel], env), env, "encrypt")


def encrypt_text(root: Path, rel: str, plaintext: str, env: Mapping[str, str],
                 label: str | None = None) -> None:
    """Write `plaintext` (from memory, via stdin) encrypted to `rel`; plaintext never hits disk.
    It must be what every later read accepts (check_plaintext; errors name `label`, default
    "plaintext of REL"), and sops must encrypt every value of it: a key sops keeps in clear
    (`*_unencrypted`, a rule's unencrypted_regex...) is refused and nothing is written."""
    label = label or f"plaintext of {rel}"
    check_plaintext(plaintext, label)
    result = _sops(root, ["encrypt", "--filename-override", rel, "--input-type", "yaml",
                          "--output-type", "yaml", "/dev/stdin"], env, stdin=plaintext)
    _check(root, rel, result, env, "encrypt", mask=_input_masker(plaintext))
    clear = clear_value_in(result.stdout, rel)
    if clear is not None:
        from deployer.model.yamlio import load_text, parse_path

        key, _ = clear
        line = load_text(plaintext, label).line_of(parse_path(key))
        raise SecretsError(f"{key}: sops would write this value in clear to {rel} "
                           f"({_clear_reason(result.stdout)}); nothing was written",
                           file=label, line=line,
                           hint=f"rename the key, or change that setting in the creation rule "
                                f"for {rel} in {SOPS_CONFIG}")
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(result.stdout)
    tmp.replace(target)


def decode_plaintext(raw: bytes, label: str) -> str:
    """`raw` (what an operator piped in) as UTF-8 text; anything else is one SecretsError
    naming the line, quoting none of it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SecretsError("not valid UTF-8 text: a secrets file is YAML in UTF-8",
                           file=label, line=line,
                           hint="convert it first, e.g. iconv -f LATIN1 -t UTF-8") from None


def check_plaintext(text: str, label: str) -> None:
    """Refuse plaintext that sops would encrypt into a file every later read rejects, or that
    sops would refuse with a message quoting it: more than one YAML document, malformed YAML,
    anything but a mapping at the top, a top-level `sops` key. Messages quote no value."""
    import yaml

    from deployer.errors import ConfigError
    from deployer.model.yamlio import load_text

    documents = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise SecretsError("more than one YAML document (a `---` line between "
                                       "them): a secrets file is one mapping", file=label,
                                       line=event.start_mark.line + 1,
                                       hint="put every key in one document; encrypt other "
                                            "documents to files of their own")
    except yaml.YAMLError:
        pass                                  # load_text names the error
    try:
        doc = load_text(text, label)
    except ConfigError as exc:
        mask = _input_masker(text, keys=False)
        raise SecretsError(mask(exc.message), file=label, line=exc.line, key=exc.key,
                           hint=exc.hint) from None
    data = doc.data
    if not isinstance(data, dict):
        what = ("nothing" if data is None else "a list" if isinstance(data, list)
                else "a single value")
        raise SecretsError(f"not a YAML mapping (it holds {what}): a secrets file is "
                           "`key: value` lines", file=label, line=1,
                           hint="./deploy.py secrets view MEMBER shows the layout of a "
                                "member's file")
    if "sops" in data:
        raise SecretsError("sops: this key holds sops's own metadata (is it a file sops "
                           "encrypted already?)", file=label, line=doc.line_of(("sops",)),
                           hint="give the decrypted values; ./deploy.py secrets edit changes "
                                "an encrypted file")


def encrypt_blob(root: Path, rule_path: str, plaintext: str, dest: Path,
                 env: Mapping[str, str]) -> None:
    """Write `plaintext` (any text: a Terraform plan in base64, a state) encrypted as one
    sops binary blob to `dest` (mode 0600), to the recipients .sops.yaml gives `rule_path`.
    The plaintext goes through stdin only."""
    result = _sops(root, ["encrypt", "--filename-override", rule_path, "--input-type",
                          "binary", "--output-type", "json", "/dev/stdin"], env,
                   stdin=plaintext)
    _check(root, rule_path, result, env, "encrypt")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(result.stdout)
    tmp.replace(dest)


def decrypt_blob(root: Path, path: Path, env: Mapping[str, str],
                 remake: str | None = None) -> str:
    """The plaintext of a blob written by encrypt_blob, in memory only. `remake`: how to
    make the blob again when it was changed without sops (a file that is not in git)."""
    path = Path(path)
    label = str(path)
    if not path.is_file():
        raise SecretsError("file not found", file=label)
    result = _sops(root, ["decrypt", "--input-type", "json", "--output-type", "binary",
                          str(path.resolve())], env)
    if result.returncode != 0:
        if "sops metadata not found" in result.stderr:
            raise SecretsError("not a sops-encrypted file", file=label)
        raise _decrypt_error(root, label, result.stderr, env, remake)
    return result.stdout


def edit(root: Path, rel: str, env: Mapping[str, str]) -> bool:
    """Open the file in $EDITOR through `sops edit` (sops re-encrypts on save); True when it
    changed.

    The file is checked first (decrypt: a missing key or a value in clear is one error
    before any editor starts). sops edits an encrypted copy in a private 0700 directory,
    which is also its TMPDIR (and the editor's): the plaintext copy sops writes for the
    editor lives there, and the directory is removed in `finally` - also when sops or the
    deployer is stopped by a signal (SIGTERM, SIGHUP from a closed SSH session: the caller
    turns them into exceptions, see cli/interrupts.py), where sops itself would leave its
    copy behind. The file is replaced (atomically) only when sops saved the copy and every
    value in it is encrypted; otherwise it is left as it was."""
    import stat

    path = root / rel
    if not path.is_file():
        raise SecretsError("file not found", file=rel)
    decrypt(root, rel, env)
    private = Path(tempfile.mkdtemp(prefix="deployer-edit-"))
    try:
        copy = private / path.name
        shutil.copyfile(path, copy)
        tmp = private / "tmp"
        tmp.mkdir(mode=0o700)
        cmd = [tools.find("sops", env), "--disable-version-check", "--config", SOPS_CONFIG,
               "edit", str(copy)]
        code = process.run_attached(cmd, env={**env, "TMPDIR": str(tmp)}, cwd=root,
                                    timeout=EDIT_TIMEOUT, tool="sops")
        if code == 200:          # the editor saved nothing new
            return False
        if code != 0:
            raise _edit_error(rel, code)
        text = copy.read_text(encoding="utf-8")
        clear = clear_value_in(text, rel)
        if clear is not None:
            key, line = clear
            raise SecretsError(f"{key}: sops would write this value in clear "
                               f"({_clear_reason(text)}); the file is unchanged",
                               file=rel, line=line,
                               hint="edit it again and rename that key")
        with process.signals_held():
            staged = path.with_name(f".{path.name}.tmp")
            try:
                staged.write_text(text, encoding="utf-8")
                staged.chmod(stat.S_IMODE(path.stat().st_mode))
                staged.replace(path)
            finally:
                staged.unlink(missing_ok=True)
        return True
    finally:
        with process.signals_held():
            shutil.rmtree(private, ignore_errors=True)


class EditFailed(SecretsError):
    """`sops edit` or the editor failed; the file is unchanged (a failed operation)."""

    exit_code = 1


def _edit_error(rel: str, code: int) -> SecretsError:
    """What a failed `sops edit` (its message went to the terminal) says, by exit code."""
    import signal

    if code == 201:              # sops: "Could not run editor" (or it exited non-zero)
        return EditFailed("the editor failed (it could not be started, or exited non-zero: "
                          "sops edit exit 201); the file is unchanged", file=rel,
                          hint="check $SOPS_EDITOR / $EDITOR, then edit again")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return EditFailed(f"sops edit was stopped by {name}; the file is unchanged", file=rel)
    return EditFailed(f"sops edit failed (exit {code}; its message is above); the file is "
                      "unchanged", file=rel)


def update_recipients(root: Path, rel: str, env: Mapping[str, str]) -> None:
    """Re-encrypt the data key of `rel` to the recipients .sops.yaml now lists. The file's
    format is read from its content (a Terraform state's `.tfstate` is sops JSON)."""
    kind = encrypted_format(root / rel) or "yaml"
    _check(root, rel, _sops(root, ["updatekeys", "--yes", "--input-type", kind, rel], env),
           env, "update keys of")


def rotate_data_key(root: Path, rel: str, env: Mapping[str, str]) -> None:
    """Generate a new data key for `rel` and re-encrypt every value with it."""
    kind = encrypted_format(root / rel) or "yaml"
    _check(root, rel, _sops(root, ["rotate", "--in-place", "--input-type", kind,
                                   "--output-type", kind, rel], env), env, "rotate")


def encrypted_format(path: Path) -> str | None:
    """"yaml" or "json" when the file carries sops metadata in that format, whatever its
    name: sops YAML, sops JSON, and a binary blob (encrypt_blob: JSON holding `data` and
    `sops`, e.g. secrets/terraform/<stack>.tfstate); None otherwise."""
    import json

    try:
        if path.stat().st_size > 64 * 2**20:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        meta = data.get("sops") if isinstance(data, dict) else None
        return "json" if isinstance(meta, dict) and "mac" in meta else None
    return "yaml" if is_encrypted(path) else None


def encrypted_files(root: Path) -> list[str]:
    """Every sops-encrypted file under secrets/ (by its content, see encrypted_format),
    relative to root, sorted."""
    base = root / "secrets"
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in base.rglob("*")
                  if p.is_file() and encrypted_format(p))


def secret_files(root: Path, found: list[str] | None = None) -> list[str]:
    """The encrypted files under secrets/ (`found`: encrypted_files(root), when the caller
    has it) that a creation rule of .sops.yaml covers (those sops can re-key), relative to
    root, sorted."""
    rules = creation_rules(root)
    return [rel for rel in (encrypted_files(root) if found is None else found)
            if matching_rule(rules, rel) is not None]


def creation_rules(root: Path) -> list[dict]:
    """The creation rules of .sops.yaml (none without the file)."""
    from deployer.model.yamlio import load_text

    try:
        data = load_text((root / SOPS_CONFIG).read_text(encoding="utf-8"), SOPS_CONFIG).data
    except (OSError, UnicodeDecodeError):
        return []
    rules = data.get("creation_rules") if isinstance(data, dict) else None
    return [rule for rule in rules or [] if isinstance(rule, dict)]


def matching_rule(rules: list[dict], rel: str) -> dict | None:
    """The rule sops picks for `rel`: the first whose path_regex is found in the path
    relative to the .sops.yaml directory (a rule without one matches every path)."""
    import re

    from deployer.errors import ConfigError

    for number, rule in enumerate(rules):
        pattern = str(rule.get("path_regex") or "")
        try:
            if re.search(pattern, rel):
                return rule
        except re.error as exc:
            # skipping it would judge by another rule than the one sops may pick
            raise ConfigError(f"{pattern}: the deployer cannot read this regular expression "
                              f"({exc}), so it cannot tell which files the rule covers",
                              file=SOPS_CONFIG, key=f"creation_rules[{number}].path_regex",
                              hint="write it in the syntax Go and Python share (e.g. $ "
                                   "rather than \\z)") from None
    return None


def _sops(root: Path, args: list[str], env: Mapping[str, str],
          stdin: str | None = None) -> process.Result:
    cmd = [tools.find("sops", env), "--disable-version-check", "--config", SOPS_CONFIG, *args]
    try:
        return process.run(cmd, env=env, cwd=root, stdin=stdin, timeout=TIMEOUT, echo=False,
                           check=False, tool="sops")
    except ToolError as exc:
        raise SecretsError(f"sops: {exc.message}", hint=exc.hint) from None


def _check(root: Path, rel: str, result, env: Mapping[str, str], action: str,
           mask=None) -> None:
    """Turn a failed sops run into one SecretsError; `mask`: what hides the input's strings
    in sops's message (sops quotes a value it cannot read)."""
    if result.returncode == 0:
        return
    err = result.stderr.strip()
    if mask is not None:
        err = mask(err)
    if "no matching creation rules" in err:
        raise SecretsError(f"cannot {action}: no creation rule in {SOPS_CONFIG} matches this path",
                           file=rel, hint=f"add a path_regex for it to {SOPS_CONFIG}")
    if any(marker in err.lower() for marker in _NO_KEY_MARKERS):
        raise _decrypt_error(root, rel, err, env)
    raise SecretsError(f"cannot {action}: sops: {_last_line(err)}", file=rel)


def _input_masker(text: str, keys: bool = True):
    """A function that masks, in a message about `text`, every string `text` holds (values;
    keys too unless keys=False): anywhere in their encodings when at least
    redact.MIN_LENGTH long (the Redactor), and quoted ('x', "x", `x`) whatever their length.
    The strings are read with YAML's scanner, as far as it gets."""
    import re

    import yaml

    from deployer.model.redact import MASK, Redactor

    strings: list[str] = []
    after_key = False
    try:
        for token in yaml.scan(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(token, yaml.ScalarToken) and token.value.strip() and \
                    (keys or not after_key):
                strings.append(token.value)
            after_key = isinstance(token, yaml.KeyToken)
    except yaml.YAMLError:
        pass
    redactor = Redactor(strings)
    quoted = (re.compile("|".join(f"{q}{re.escape(v)}{q}" for v in sorted(set(strings), key=len,
                                                                          reverse=True)
                                  for q in ("'", '"', "`")))
              if strings else None)

    def mask(message: str) -> str:
        if quoted is not None:
            message = quoted.sub(lambda m: f"{m.group(0)[0]}{MASK}{m.group(0)[0]}", message)
        return redactor.text(message)

    return mask


def _clear_reason(encrypted: str) -> str:
    """Which setting in a sops file's metadata keeps values in clear, in words."""
    from deployer.model.yamlio import load_text

    try:
        meta = load_text(encrypted, "sops output").data.get("sops") or {}
    except Exception:  # noqa: BLE001 - only an explanation
        meta = {}
    said = {"unencrypted_suffix": "sops keeps keys ending in `{}` in clear",
            "unencrypted_regex": "sops keeps keys matching unencrypted_regex `{}` in clear",
            "encrypted_suffix": "sops encrypts only keys ending in `{}`",
            "encrypted_regex": "sops encrypts only keys matching encrypted_regex `{}`"}
    reasons = [text.format(meta[name]) for name, text in said.items() if meta.get(name)]
    return "; ".join(reasons) or "sops keeps it in clear"


# how an age secret key starts (spelt in two parts: no key-shaped text in the source)
_AGE_KEY_PREFIX = "AGE-SECRET-" + "KEY-"


def _decrypt_error(root: Path, rel: str, stderr: str, env: Mapping[str, str],
                   remake: str | None = None) -> SecretsError:
    lowered = stderr.lower()
    unusable = _unusable_identities(stderr, env)
    if unusable is not None:
        return SecretsError(f"cannot decrypt: {unusable}", file=rel,
                            hint="point SOPS_AGE_KEY_FILE at your age key file (age-keygen "
                                 f"writes one; its key line starts {_AGE_KEY_PREFIX}1)")
    if any(marker in lowered for marker in _NO_KEY_MARKERS):
        keyfile = env.get("SOPS_AGE_KEY_FILE")
        source = (f"SOPS_AGE_KEY_FILE={keyfile}" if keyfile else
                  "SOPS_AGE_KEY" if env.get("SOPS_AGE_KEY") else
                  "no SOPS_AGE_KEY_FILE set (sops then reads ~/.config/sops/age/keys.txt)")
        return SecretsError(f"cannot decrypt: none of your age identities ({source}) is one of "
                            f"its recipients", file=rel, hint=_recipient_hint(root, rel))
    if "mac mismatch" in lowered or "message authentication failed" in lowered:
        return SecretsError("cannot decrypt: integrity check failed (the file was changed "
                            "without sops)", file=rel,
                            hint=remake or "restore it from git history, then change it "
                                           "with ./deploy.py secrets edit")
    return SecretsError(f"cannot decrypt: sops: {_last_line(stderr)}", file=rel)


def _unusable_identities(stderr: str, env: Mapping[str, str]) -> str | None:
    """Why sops could not use the operator's age identities at all (a key file that is
    missing or unreadable, one that holds no age key), in words; None when it could, or
    when it says nothing of it. Whatever looks like a secret key is masked."""
    import re

    text = re.sub(r"\s*\n\s*\|\s?", " ", stderr)          # sops wraps its reasons
    text = re.sub(re.escape(_AGE_KEY_PREFIX) + r"\S+", "***", text)
    keyfile = env.get("SOPS_AGE_KEY_FILE")
    opened = re.search(r"failed to open SOPS_AGE_KEY_FILE file: open .*?: (.+?)\. Did not "
                       r"find", text)
    if opened:
        return f"SOPS_AGE_KEY_FILE={keyfile} cannot be read ({opened.group(1)})"
    parsed = re.search(r"failed to parse '(SOPS_AGE_KEY_FILE|SOPS_AGE_KEY)' age identities: "
                       r"(.+?)\. Did not find", text)
    if parsed:
        what = (f"SOPS_AGE_KEY_FILE={keyfile} is not an age key file"
                if parsed.group(1) == "SOPS_AGE_KEY_FILE" else "SOPS_AGE_KEY holds no age key")
        return f"{what} (sops: {parsed.group(2)})"
    return None


def _recipient_hint(root: Path, rel: str) -> str:
    names = recipients(root / rel)
    listed = ", ".join(names) if names else "none found in its metadata"
    return f"it is encrypted to: {listed}; point SOPS_AGE_KEY_FILE at a key for one of them"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
