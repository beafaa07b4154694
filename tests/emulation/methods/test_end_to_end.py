"""Each circumvention tool carries real traffic end to end in a network of its own.

The subscriber reaches the target (nginx, HTTPS, certificate checked against the run's CA) only
through the method (see conftest): a probe that succeeds proves the tool's own client and server
carried it. Each case fetches the page and a 4 MiB range of /bulk, and reports TTFB and goodput
(printed, and written to <run dir>/methods-results.jsonl).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulation.methods.conftest import SERVER_IP, TARGET_IP, World
from tspulab.methods import adapter_class
from tspulab.methods.base import Access, MethodContext
from tspulab.methods.options import KIND_OPTIONS
from tspulab.methods.probe import probe_through

BULK = 4 * 1024 * 1024
TOR_BASE = "192.0.2.33"  # the relays take this address and the ones after it

#: (case id, kind, port, options, programs it needs)
CASES: list[tuple[str, str, int, dict[str, Any], tuple[str, ...]]] = [
    ("tor", "tor", 9001, {}, ("tor", "tor-gencert")),
    ("tor-obfs4", "tor", 9101, {"transport": "obfs4"}, ("tor", "tor-gencert", "obfs4proxy")),
    ("openvpn-udp", "openvpn", 1194, {"proto": "udp"}, ("openvpn",)),
    ("openvpn-tcp", "openvpn", 1194, {"proto": "tcp"}, ("openvpn",)),
    ("openvpn-udp-tls-crypt", "openvpn", 1195, {"proto": "udp", "tls_crypt": True}, ("openvpn",)),
    ("openvpn-tcp-tls-crypt", "openvpn", 1195, {"proto": "tcp", "tls_crypt": True}, ("openvpn",)),
    ("wireguard", "wireguard", 51820, {}, ("wireguard-go", "wg")),
    ("ss-chacha20", "shadowsocks", 8388, {}, ("ss-server", "ss-local")),
    ("ss-aes-256-gcm", "shadowsocks", 8389, {"cipher": "aes-256-gcm"}, ("ss-server",)),
    ("ss-2022-aes-128", "shadowsocks", 8390, {"cipher": "2022-blake3-aes-128-gcm"}, ()),
    ("ss-2022-chacha20", "shadowsocks", 8391, {"cipher": "2022-blake3-chacha20-poly1305"}, ()),
    ("socks5-microsocks", "socks5", 1080, {}, ("microsocks",)),
    ("socks5-dante", "socks5", 1081, {"server": "dante"}, ("danted",)),
    ("http-connect", "http-connect", 3128, {}, ("tinyproxy",)),
    ("hysteria2", "hysteria2", 443, {}, ()),
    ("hysteria2-salamander", "hysteria2", 8443, {"obfs": "salamander"}, ()),
    ("tuic", "tuic", 4443, {}, ()),
    ("ssh", "ssh", 22, {}, ("ssh", "/usr/sbin/sshd")),
    ("ssh-aes-gcm", "ssh", 2222, {"cipher": "aes128-gcm@openssh.com"}, ("ssh",)),
    ("stunnel", "stunnel", 443, {}, ("stunnel4", "microsocks")),
    ("trojan", "trojan", 8444, {"server_name": "cdn.example.net"}, ("trojan",)),
    ("vmess", "vmess", 10086, {}, ("v2ray",)),
    ("vmess-chacha20", "vmess", 10087, {"security": "chacha20-poly1305"}, ("v2ray",)),
]


def _missing(programs: tuple[str, ...]) -> list[str]:
    return [p for p in programs if shutil.which(p) is None]


@pytest.fixture
def record_result(world: World) -> Iterator[Any]:
    path = world.run_dir / "methods-results.jsonl"

    def write(case: str, data: dict[str, Any]) -> None:
        with path.open("a") as f:
            f.write(json.dumps({"case": case, **data}) + "\n")

    yield write


def _direct_is_impossible(world: World) -> None:
    direct = probe_through(
        world.sub, Access(), world.url, method="direct", timeout_s=2, ca=world.ca.ca_path
    )
    assert not direct.ok, "the target must be unreachable without a method"


@pytest.mark.parametrize(
    ("case", "kind", "port", "options", "programs"), CASES, ids=[c[0] for c in CASES]
)
def test_method_carries_traffic(
    world: World,
    record_result: Any,
    case: str,
    kind: str,
    port: int,
    options: dict[str, Any],
    programs: tuple[str, ...],
) -> None:
    missing = _missing(programs)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")
    _direct_is_impossible(world)
    ctx = MethodContext(
        name=case,
        directory=world.run_dir / "methods" / case,
        server_address=TOR_BASE if kind == "tor" else SERVER_IP,
        port=port,
        options=KIND_OPTIONS[kind].model_validate(options),
        record=world.record,
    )
    method = adapter_class(kind)(ctx)
    try:
        method.start_server(world.srv)
        access = method.start_client(world.sub)
        page = probe_through(
            world.sub, access, world.url, method=case, timeout_s=15, ca=world.ca.ca_path
        )
        assert page.ok, f"{case}: {page.outcome} {page.stderr}"
        bulk = probe_through(
            world.sub,
            access,
            world.bulk_url,
            method=case,
            timeout_s=30,
            ca=world.ca.ca_path,
            expect_bytes=BULK,
            extra_curl=["-r", f"0-{BULK - 1}"],
        )
        assert bulk.ok, f"{case}: bulk {bulk.outcome} {bulk.stderr}"
        assert bulk.goodput_bps and bulk.goodput_bps > 1e6
        record_result(case, {"page": page.to_json(), "bulk": bulk.to_json()})
        print(
            f"\n{case}: {access.describe()} TTFB {page.ttfb_s * 1000:.1f} ms, "
            f"goodput {bulk.goodput_bps / 1e6:.1f} Mbit/s"
        )
    finally:
        method.stop()
    # Stopped: the way through is gone again.
    _direct_is_impossible(world)
    assert TARGET_IP not in world.sub.cmd("ip route")
