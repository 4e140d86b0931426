"""Pure data and functions: no subprocess, no network, no os.environ."""
