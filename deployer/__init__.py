"""GitOps continuous deployment for a BinderHub federation."""
import sys as _sys

# jsonschema imports rfc3987_syntax when it is installed (test dependencies bring it in) and
# that compiles ~40 lark grammars at import: a second per command. The deployer checks no
# `iri`/`uri-reference` formats, so it tells jsonschema the package is absent.
if "rfc3987_syntax" not in _sys.modules:
    _sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
