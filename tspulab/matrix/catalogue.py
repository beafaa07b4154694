"""The method settings and profiles a matrix can combine, and the scenario of one lab of cells.

A *method setting* is one tool with one configuration (OpenVPN over TCP with tls-crypt, Tor with
obfs4, ...), at a fixed address of a foreign hosting cloud (Hetzner's 88.198.0.0/16, which the
hosting-freeze-2025 profile lists), so every lab of a matrix puts a setting at the same place and
cells of different labs, shards and machines measure the same thing. `direct` is the control row:
the target fetched without any tool.

A lab of cells is one scenario: one ISP per profile (each with its own TSPU switch), one
subscriber each, the target in the registry (its prefix and its name: address rules and SNI rules
both apply), and the servers of every method the lab's cells use, started once for all of them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

DIRECT = "direct"
TARGET_SERVICE = "target"
TARGET_DOMAIN = "web.telegram.org"
TARGET_ADDRESS = "149.154.167.99"
TARGET_PREFIX = "149.154.160.0/20"
HOSTING_CLOUD = "hetzner"
HOSTING_PREFIX = "88.198.0.0/16"


@dataclass(frozen=True)
class MethodSetting:
    """One tool in one configuration, as a matrix row."""

    name: str
    kind: str
    address: str
    port: int | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    programs: tuple[str, ...] = ()
    """Programs it needs on the machine (a missing one is reported before any lab starts)."""

    def circumvention(self) -> dict[str, Any]:
        """The setting as a scenario `circumvention:` entry."""
        entry: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "cloud": HOSTING_CLOUD, "address": self.address,
        }  # fmt: skip
        if self.port is not None:
            entry["port"] = self.port
        if self.options:
            entry["options"] = dict(self.options)
        return entry


def _s(name: str, kind: str, host: int, port: int | None = None, programs: tuple[str, ...] = (),
       **options: Any) -> MethodSetting:  # fmt: skip
    return MethodSetting(name, kind, f"88.198.1.{host}", port, MappingProxyType(options), programs)


# Every cloud host's nginx listens on *:443 and *:80, so a TCP method of that cloud takes 8443.
# A Tor network takes the method's address and the ones after it (relays, then the bridge).
SETTINGS: tuple[MethodSetting, ...] = (
    _s("ovpn-udp", "openvpn", 10, programs=("openvpn",)),
    _s("ovpn-tcp", "openvpn", 11, programs=("openvpn",), proto="tcp"),
    _s("ovpn-udp-tls-crypt", "openvpn", 12, programs=("openvpn",), tls_crypt=True),
    _s("ovpn-tcp-tls-crypt", "openvpn", 13, programs=("openvpn",), proto="tcp", tls_crypt=True),
    _s("wireguard", "wireguard", 14, programs=("wireguard-go", "wg")),
    _s("ss-chacha20", "shadowsocks", 15, programs=("ss-server", "ss-local")),
    _s("ss-aes-256-gcm", "shadowsocks", 16, programs=("ss-server",), cipher="aes-256-gcm"),
    _s("ss-2022-aes-128", "shadowsocks", 17, cipher="2022-blake3-aes-128-gcm"),
    _s("vmess", "vmess", 18, programs=("v2ray",)),
    _s("vmess-chacha20", "vmess", 19, programs=("v2ray",), security="chacha20-poly1305"),
    _s("trojan", "trojan", 20, 8443, ("trojan",)),
    _s("hysteria2", "hysteria2", 21),
    _s("hysteria2-salamander", "hysteria2", 22, 8443, obfs="salamander"),
    _s("tuic", "tuic", 23),
    _s("ssh", "ssh", 24, programs=("ssh", "/usr/sbin/sshd")),
    _s("ssh-aes-gcm", "ssh", 25, programs=("ssh",), cipher="aes128-gcm@openssh.com"),
    _s("stunnel", "stunnel", 26, 8443, ("stunnel4", "microsocks")),
    _s("socks5-microsocks", "socks5", 27, programs=("microsocks",)),
    _s("socks5-dante", "socks5", 28, programs=("danted",), server="dante"),
    _s("http-connect", "http-connect", 29, programs=("tinyproxy",)),
    _s("iodine", "iodine", 30, programs=("iodine", "iodined")),
    _s("iodine-txt", "iodine", 31, programs=("iodine",), record_type="TXT"),
    _s("fronting", "fronting", 32, 8443, ("nginx",)),
    _s("ipsec", "ipsec", 33, programs=("swanctl", "/usr/lib/ipsec/charon")),
    _s("mtproto", "mtproto", 34, 8443),
    MethodSetting("tor", "tor", "88.198.3.1", programs=("tor", "tor-gencert")),
    MethodSetting(
        "tor-obfs4",
        "tor",
        "88.198.4.1",
        options=MappingProxyType({"transport": "obfs4"}),
        programs=("tor", "tor-gencert", "obfs4proxy"),
    ),
)
BY_NAME: Mapping[str, MethodSetting] = MappingProxyType({s.name: s for s in SETTINGS})

#: The matrix `tspulab matrix` runs without --methods: one setting of every tool family the lab
#: runs (and both OpenVPN transports), plus the direct control row.
DEFAULT_METHODS: tuple[str, ...] = (
    DIRECT, "ovpn-udp", "ovpn-tcp-tls-crypt", "wireguard", "ss-chacha20", "ss-2022-aes-128",
    "vmess", "tor", "tor-obfs4", "trojan", "hysteria2", "hysteria2-salamander", "tuic", "ssh",
    "stunnel", "socks5-microsocks", "http-connect", "iodine", "fronting",
)  # fmt: skip
#: The profiles of the README that a circumvention tool meets, oldest first.
DEFAULT_PROFILES: tuple[str, ...] = (
    "rkn-2018-ip", "tspu-2022", "vpn-protocols-2023", "vpn-detect-2025",
    "hosting-freeze-2025", "whitelist-2025", "tspu-2026-reassembly",
)  # fmt: skip


class CatalogueError(ValueError):
    """An unknown method or profile name, or a tool this machine lacks."""


def known_methods() -> tuple[str, ...]:
    return (DIRECT, *BY_NAME)


def check_methods(names: Iterable[str]) -> tuple[str, ...]:
    from tspulab.dpi.yamlload import did_you_mean

    out = tuple(dict.fromkeys(names))
    for name in out:
        if name != DIRECT and name not in BY_NAME:
            hint = did_you_mean(name, known_methods())
            raise CatalogueError(
                f"unknown method {name!r}{hint}; known: {', '.join(known_methods())}"
            )
    return out


def check_profiles(names: Iterable[str]) -> tuple[str, ...]:
    from tspulab.dpi.profile import profile_names
    from tspulab.dpi.yamlload import did_you_mean

    known = profile_names()
    out = tuple(dict.fromkeys(names))
    for name in out:
        if name not in known:
            raise CatalogueError(
                f"unknown profile {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
            )
    return out


def missing_programs(methods: Iterable[str]) -> dict[str, list[str]]:
    """Method -> the programs it needs that are not installed here."""
    out: dict[str, list[str]] = {}
    for name in methods:
        if name == DIRECT:
            continue
        missing = [p for p in BY_NAME[name].programs if shutil.which(p) is None]
        if missing:
            out[name] = missing
    return out


def isp_name(profile_index: int) -> str:
    """ISP names are short slugs (profile names are too long for them): p1, p2, ..."""
    return f"p{profile_index}"


def lab_scenario_text(
    name: str, methods: Sequence[str], profiles: Sequence[str], timeout_s: float
) -> str:
    """The scenario of one lab: an ISP per profile, the servers of `methods`. JSON is YAML, so
    it goes through the same loader and checks as any scenario file."""
    settings = [BY_NAME[m] for m in methods if m != DIRECT]
    scenario = {
        "version": 1,
        "name": name,
        "description": "a lab of tspulab matrix cells",
        "topology": {"name": "isps"},
        "profile": profiles[0],
        "registry": [{"inline": [TARGET_PREFIX]}, {"domains": [TARGET_DOMAIN]}],
        "isps": [
            {"name": isp_name(i), "subscribers": 1, "profile": p}
            for i, p in enumerate(profiles, start=1)
        ],
        "clouds": [
            {"name": "telegram", "prefixes": [TARGET_PREFIX]},
            {"name": HOSTING_CLOUD, "prefixes": [HOSTING_PREFIX]},
        ],
        "services": [
            {
                "name": TARGET_SERVICE,
                "role": "target",
                "domains": [TARGET_DOMAIN],
                "cloud": "telegram",
                "address": TARGET_ADDRESS,
            },
            {
                "name": "hoster",
                "role": "innocent",
                "domains": ["www.hoster.de"],
                "cloud": HOSTING_CLOUD,
                "address": "88.198.2.20",
            },
        ],
        "circumvention": [s.circumvention() for s in settings],
        "probes": {"timeout_s": timeout_s},
    }
    return json.dumps(scenario, indent=1)


def method_addresses(name: str) -> list[str]:
    """Every server address of a setting (a Tor network's relays and bridge; the target for
    `direct`), to attribute the controller's verdicts to cells."""
    if name == DIRECT:
        return [TARGET_ADDRESS]
    from ipaddress import ip_address

    s = BY_NAME[name]
    first = ip_address(s.address)
    if s.kind == "tor":
        count = int(s.options.get("relays", 4)) + (1 if s.options.get("transport") else 0)
        return [str(first + i) for i in range(count)]
    return [s.address]


def settings_json() -> list[dict[str, Any]]:
    """The catalogue as data (written into every shard's header: what each name meant)."""
    return [{**s.circumvention(), "programs": list(s.programs)} for s in SETTINGS]


def scenario_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.yaml"
