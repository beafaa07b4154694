"""The methods the namespace tests run: one case per tool and setting, and how to run one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.emulation.methods.conftest import SERVER_IP, World
from tspulab.methods import adapter_class
from tspulab.methods.base import Access, Method, MethodContext
from tspulab.methods.options import KIND_OPTIONS

TOR_BASE = "192.0.2.33"
"""A Tor network's relays take this address of the server's prefix and the ones after it."""


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    port: int
    options: dict[str, Any] = field(default_factory=dict)
    programs: tuple[str, ...] = ()
    """Programs it needs (skipped with the reason when one is missing)."""


CASES = [
    Case("openvpn-udp", "openvpn", 1194, {"proto": "udp"}, ("openvpn",)),
    Case("openvpn-tcp", "openvpn", 1194, {"proto": "tcp"}, ("openvpn",)),
    Case("openvpn-udp-tls-crypt", "openvpn", 1195, {"tls_crypt": True}, ("openvpn",)),
    Case(
        "openvpn-tcp-tls-crypt", "openvpn", 1195, {"proto": "tcp", "tls_crypt": True}, ("openvpn",)
    ),
    Case("wireguard", "wireguard", 51820, {}, ("wireguard-go", "wg")),
    Case("ss-chacha20", "shadowsocks", 8388, {}, ("ss-server", "ss-local")),
    Case("ss-aes-256-gcm", "shadowsocks", 8389, {"cipher": "aes-256-gcm"}, ("ss-server",)),
    Case("ss-2022-aes-128", "shadowsocks", 8390, {"cipher": "2022-blake3-aes-128-gcm"}),
    Case("ss-2022-chacha20", "shadowsocks", 8391, {"cipher": "2022-blake3-chacha20-poly1305"}),
    Case("tor", "tor", 9001, {}, ("tor", "tor-gencert")),
    Case("tor-obfs4", "tor", 9101, {"transport": "obfs4"}, ("tor", "tor-gencert", "obfs4proxy")),
    Case("iodine", "iodine", 53, {}, ("iodine", "iodined")),
    Case(
        "iodine-txt",
        "iodine",
        53,
        {"record_type": "TXT", "topdomain": "d.example.org"},
        ("iodine",),
    ),
    Case("ipsec", "ipsec", 500, {}, ("/usr/lib/ipsec/charon", "swanctl", "unshare")),
    Case(
        "ipsec-aes128-sha1",
        "ipsec",
        4501,
        {"ike": "aes128-sha1-modp2048", "esp": "aes128-sha1"},
        ("/usr/lib/ipsec/charon", "swanctl", "unshare"),
    ),
    Case("fronting", "fronting", 443, {}, ("nginx",)),
    Case("trojan", "trojan", 8444, {"server_name": "cdn.example.net"}, ("trojan",)),
    Case("hysteria2", "hysteria2", 443),
    Case("hysteria2-salamander", "hysteria2", 8443, {"obfs": "salamander"}),
    Case("tuic", "tuic", 4443),
    Case("ssh", "ssh", 22, {}, ("ssh", "/usr/sbin/sshd")),
    Case("ssh-aes-gcm", "ssh", 2222, {"cipher": "aes128-gcm@openssh.com"}, ("ssh",)),
    Case("stunnel", "stunnel", 443, {}, ("stunnel4", "microsocks")),
    Case("http-connect", "http-connect", 3128, {}, ("tinyproxy",)),
    Case("socks5-microsocks", "socks5", 1080, {}, ("microsocks",)),
    Case("socks5-dante", "socks5", 1081, {"server": "dante"}, ("danted",)),
    Case("vmess", "vmess", 10086, {}, ("v2ray",)),
    Case("vmess-chacha20", "vmess", 10087, {"security": "chacha20-poly1305"}, ("v2ray",)),
]
BY_ID = {c.id: c for c in CASES}


def skip_if_missing(case: Case) -> None:
    missing = [p for p in case.programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")


def method_for(world: World, case: Case, name: str, clients: int = 1) -> Method:
    skip_if_missing(case)
    ctx = MethodContext(
        name=name,
        directory=world.run_dir / "methods" / name,
        server_address=TOR_BASE if case.kind == "tor" else SERVER_IP,
        port=case.port,
        options=KIND_OPTIONS[case.kind].model_validate(case.options),
        record=world.record,
        clients=clients,
    )
    return adapter_class(case.kind)(ctx)


@contextmanager
def running(world: World, case: Case, name: str | None = None) -> Iterator[tuple[Method, Access]]:
    """The method's server in `srv` and client in `sub`, stopped on the way out."""
    method = method_for(world, case, name or case.id)
    try:
        method.start_server(world.srv)
        yield method, method.start_client(world.sub)
    finally:
        method.stop()
