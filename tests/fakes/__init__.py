"""Test-time stand-ins for things the deployer talks to (generated, never committed as binaries)."""
