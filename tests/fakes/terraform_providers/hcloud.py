"""Stand-in for the ``hetznercloud/hcloud`` provider (registry.terraform.io/hetznercloud/hcloud).

Same resource types, attribute names and types as the real provider for what is declared
here; where it simplifies:

* No Hetzner Cloud API is called and nothing exists outside Terraform's state: ids are
  random numbers (as strings, like the real ``id``), reads return the state as it is,
  deletes only forget.
* ``hcloud_server.ipv4_address`` is ``$STANDIN_HCLOUD_IPV4`` of the provider process
  (default 127.0.0.1; "" when ``public_net.ipv4_enabled`` is false) so a test can point it at
  a local SSH server; ``ipv6_address`` is 2001:db8::1, ``status`` is always "running".
* ``user_data`` is kept as given (the real provider stores a hash of it).
* Blocks are LIST blocks with index paths (``rule`` and ``public_net`` are sets in the real
  provider), and only the attributes below exist (no ``network`` block, backups, ...).
* Validation happens in ``terraform validate`` with attribute paths: server types and
  locations from a fixed list, CIDRs, SSH public key prefixes, firewall rule fields, and a
  set token must be 64 characters (the real provider checks that when it is configured).
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import os

from tests.fakes.terraform_providers import (Attribute, Bool, List, ListBlock, Map, Number,
                                             StandInProvider, StandInResource, String, at_least,
                                             Unknown, each, known, matches, one_of, random_digits,
                                             serve)

SERVER_TYPES = (
    # shared vCPU, Intel (cx*2 until 2025, cx*3 since) and AMD
    "cx22", "cx32", "cx42", "cx52", "cx23", "cx33", "cx43", "cx53",
    "cpx11", "cpx21", "cpx31", "cpx41", "cpx51", "cpx12", "cpx22", "cpx32", "cpx42", "cpx52", "cpx62",
    # shared vCPU, Ampere (arm64)
    "cax11", "cax21", "cax31", "cax41",
    # dedicated vCPU
    "ccx13", "ccx23", "ccx33", "ccx43", "ccx53", "ccx63",
)
LOCATIONS = ("fsn1", "nbg1", "hel1", "ash", "hil", "sin")
NETWORK_ZONES = ("eu-central", "us-east", "us-west", "ap-southeast")


def _cidr(value):
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f"{value!r} is not a valid CIDR network: {exc}"
    return None


def _ssh_public_key(value):
    parts = value.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-ed25519", "ssh-rsa", "ecdsa-", "sk-")):
        return "expected an OpenSSH public key (ssh-ed25519 ..., ssh-rsa ..., ecdsa-sha2-... ...)"
    try:
        base64.b64decode(parts[1], validate=True)
    except ValueError:
        return "the key's second field is not base64"
    return None


def _port(value):
    bounds = value.split("-")
    if value == "any" or (1 <= len(bounds) <= 2 and all(b.isdigit() and 1 <= int(b) <= 65535 for b in bounds)):
        return None
    return f"{value!r} is not a port (1-65535), a range (80-85) or \"any\""


def _token(value):
    # never echo the value: it is sensitive
    if len(value) != 64:
        return "entered token is invalid (must be exactly 64 characters long)"
    return None


def _md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def _id():
    return random_digits(8)


class SSHKey(StandInResource):
    name = "ssh_key"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), required=True),
        Attribute("public_key", String(), required=True, requires_replace=True),
        Attribute("labels", Map(String()), optional=True),
        Attribute("fingerprint", String(), computed=True),
    ]
    checks = {("public_key",): _ssh_public_key}

    def computed(self, ctx, state):
        return {"id": _id(), "fingerprint": _md5_fingerprint(state["public_key"])}


class Network(StandInResource):
    name = "network"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), required=True),
        Attribute("ip_range", String(), required=True),
        Attribute("labels", Map(String()), optional=True),
        Attribute("delete_protection", Bool(), optional=True, computed=True, default=False),
    ]
    checks = {("ip_range",): _cidr}

    def computed(self, ctx, state):
        return {"id": _id()}


class NetworkSubnet(StandInResource):
    name = "network_subnet"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("network_id", Number(), required=True, requires_replace=True),
        Attribute("type", String(), required=True, requires_replace=True),
        Attribute("network_zone", String(), required=True, requires_replace=True),
        Attribute("ip_range", String(), required=True, requires_replace=True),
        Attribute("vswitch_id", Number(), optional=True, requires_replace=True),
        Attribute("gateway", String(), computed=True),
    ]
    checks = {
        ("type",): one_of("cloud", "server", "vswitch"),
        ("network_zone",): one_of(*NETWORK_ZONES),
        ("ip_range",): _cidr,
    }

    def computed(self, ctx, state):
        net = ipaddress.ip_network(state["ip_range"])
        return {"id": f"{int(state['network_id'])}-{state['ip_range']}", "gateway": str(net.network_address + 1)}


class Firewall(StandInResource):
    name = "firewall"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), required=True),
        Attribute("labels", Map(String()), optional=True),
    ]
    blocks = [
        ListBlock("rule", [
            Attribute("direction", String(), required=True),
            Attribute("protocol", String(), required=True),
            Attribute("port", String(), optional=True),
            Attribute("source_ips", List(String()), optional=True),
            Attribute("destination_ips", List(String()), optional=True),
            Attribute("description", String(), optional=True),
        ]),
    ]
    checks = {
        ("rule", "*", "direction"): one_of("in", "out"),
        ("rule", "*", "protocol"): one_of("tcp", "udp", "icmp", "gre", "esp"),
        ("rule", "*", "port"): _port,
        ("rule", "*", "source_ips"): each(_cidr),
        ("rule", "*", "destination_ips"): each(_cidr),
    }

    def check(self, diags, config):
        for i, rule in enumerate(config.get("rule") or []):
            protocol, port, direction = rule.get("protocol"), rule.get("port"), rule.get("direction")
            if not (known(protocol) and known(direction)) or port is Unknown:
                continue
            if protocol in ("tcp", "udp") and port is None:
                diags.add_error("Missing port", f"a {protocol} rule needs a port",
                                path=["rule", (i,), "protocol"])
            if protocol not in ("tcp", "udp") and port is not None:
                diags.add_error("Unexpected port", f"a {protocol} rule takes no port", path=["rule", (i,), "port"])
            wanted = "source_ips" if direction == "in" else "destination_ips"
            if rule.get(wanted) is not Unknown and not rule.get(wanted):
                diags.add_error(f"Missing {wanted}", f"an {direction!r} rule needs {wanted}",
                                path=["rule", (i,), "direction"])

    def computed(self, ctx, state):
        return {"id": _id()}


class Server(StandInResource):
    name = "server"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), required=True, requires_replace=True),
        Attribute("server_type", String(), required=True, requires_replace=True),
        Attribute("image", String(), optional=True, requires_replace=True),
        Attribute("location", String(), optional=True, computed=True, requires_replace=True),
        Attribute("ssh_keys", List(String()), optional=True, requires_replace=True),
        Attribute("firewall_ids", List(Number()), optional=True),
        Attribute("user_data", String(), optional=True, requires_replace=True),
        Attribute("labels", Map(String()), optional=True),
        Attribute("ipv4_address", String(), computed=True),
        Attribute("ipv6_address", String(), computed=True),
        Attribute("status", String(), computed=True),
    ]
    blocks = [
        ListBlock("public_net", [
            Attribute("ipv4_enabled", Bool(), optional=True),
            Attribute("ipv6_enabled", Bool(), optional=True),
        ], max_items=1),
    ]
    checks = {
        ("server_type",): one_of(*SERVER_TYPES),
        ("location",): one_of(*LOCATIONS),
        ("firewall_ids",): each(at_least(1)),
    }
    recompute = {"ipv4_address": ("public_net",), "ipv6_address": ("public_net",)}

    def computed(self, ctx, state):
        net = (state.get("public_net") or [{}])[0]
        v4 = net.get("ipv4_enabled") is not False
        v6 = net.get("ipv6_enabled") is not False
        return {
            "id": _id(),
            "location": "fsn1",
            "ipv4_address": os.environ.get("STANDIN_HCLOUD_IPV4", "127.0.0.1") if v4 else "",
            "ipv6_address": "2001:db8::1" if v6 else "",
            "status": "running",
        }


class ServerNetwork(StandInResource):
    name = "server_network"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("server_id", Number(), required=True, requires_replace=True),
        Attribute("network_id", Number(), optional=True, requires_replace=True),
        Attribute("subnet_id", String(), optional=True, requires_replace=True),
        Attribute("ip", String(), optional=True, computed=True),
        Attribute("alias_ips", List(String()), optional=True),
        Attribute("mac_address", String(), computed=True),
    ]
    checks = {("ip",): matches(r"\d{1,3}(\.\d{1,3}){3}", "an IPv4 address")}

    def check(self, diags, config):
        if config.get("network_id") is None and config.get("subnet_id") is None:
            diags.add_error("Missing network", "one of network_id or subnet_id must be set", path=["server_id"])

    def computed(self, ctx, state):
        network = state.get("network_id")
        if network is None:
            network = int(str(state["subnet_id"]).split("-")[0])
        return {
            "id": f"{int(state['server_id'])}-{int(network)}",
            "ip": "10.0.0.2",
            "mac_address": "86:00:00:%02x:%02x:%02x" % tuple(int(random_digits(2)) for _ in range(3)),
        }


class HcloudProvider(StandInProvider):
    source = "hetznercloud/hcloud"
    prefix = "hcloud_"
    config_attributes = [
        Attribute("token", String(), optional=True, sensitive=True),
        Attribute("endpoint", String(), optional=True),
        Attribute("poll_interval", String(), optional=True),
    ]
    config_checks = {("token",): _token}
    resources = [SSHKey, Network, NetworkSubnet, Firewall, Server, ServerNetwork]


def main() -> None:
    serve(HcloudProvider())


if __name__ == "__main__":
    main()
