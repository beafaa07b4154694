"""The `options:` of each circumvention method kind, as the scenario language validates them.

A method in a scenario is `{name, kind, cloud, address, port, options}`; `kind` picks one of the
models below, and `options` is checked against it, so a bad value is reported at its own line
(`scenario.yaml:63:7: circumvention[1].options.cipher: ...`). Leaving `options` out gives the
kind's defaults. docs/methods.md describes every kind and option, and which tool runs it.

This module is pure (pydantic only): the scenario language imports it, the lab's tool adapters
in `tspulab.methods` read the validated models.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from tspulab.scenario.scalars import Bool, Domain, Int, Network


class Options(BaseModel):
    """Options of a method kind: unknown keys are errors, frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """Kinds without options (direct)."""


class TunnelOptions(Options):
    """Kinds whose client brings up a TUN interface with routes."""

    routes: tuple[Network, ...] = (IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1"))
    """Prefixes sent through the tunnel (default: everything, as redirect-gateway def1 does)."""
    mtu: Int = Field(default=1400, ge=576, le=1500)


class Socks5Options(Options):
    server: Literal["microsocks", "dante"] = "microsocks"


class HttpConnectOptions(Options):
    server: Literal["tinyproxy"] = "tinyproxy"


class OpenVpnOptions(TunnelOptions):
    proto: Literal["udp", "tcp"] = "udp"
    tls_crypt: Bool = False
    """Wrap the control channel with a pre-shared key (`--tls-crypt`): no plain P_CONTROL opcode
    and no TLS ClientHello on the wire for a DPI to read."""
    cipher: Literal["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"] = "AES-256-GCM"


class WireGuardOptions(TunnelOptions):
    mtu: Int = Field(default=1420, ge=1280, le=1500)
    keepalive_s: Int = Field(default=0, ge=0, le=3600)
    """PersistentKeepalive of the client's peer (0: off)."""


SHADOWSOCKS_LIBEV_CIPHERS = ("aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305")
SHADOWSOCKS_2022_CIPHERS = (
    "2022-blake3-aes-128-gcm",
    "2022-blake3-aes-256-gcm",
    "2022-blake3-chacha20-poly1305",
)


class ShadowsocksOptions(Options):
    cipher: Literal[
        "aes-128-gcm",
        "aes-256-gcm",
        "chacha20-ietf-poly1305",
        "2022-blake3-aes-128-gcm",
        "2022-blake3-aes-256-gcm",
        "2022-blake3-chacha20-poly1305",
    ] = "chacha20-ietf-poly1305"
    """AEAD ciphers run shadowsocks-libev; the 2022 ones run sing-box."""


class VmessOptions(Options):
    security: Literal["auto", "aes-128-gcm", "chacha20-poly1305", "none"] = "aes-128-gcm"


class TlsOptions(Options):
    server_name: Domain = "www.example.com"
    """The SNI the client sends (the server's certificate names it)."""


class TrojanOptions(TlsOptions):
    pass


class Hysteria2Options(TlsOptions):
    obfs: Literal["none", "salamander"] = "none"
    """salamander hides the QUIC header (no Initial a DPI can decrypt)."""


class TuicOptions(TlsOptions):
    congestion_control: Literal["bbr", "cubic", "new_reno"] = "cubic"


class SshOptions(Options):
    cipher: Literal[
        "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"
    ] = "chacha20-poly1305@openssh.com"


class StunnelOptions(TlsOptions):
    pass


class IodineOptions(TunnelOptions):
    topdomain: Domain = "t.example.net"
    """The domain delegated to the tunnel: every query is a name under it."""
    record_type: Literal["auto", "NULL", "PRIVATE", "TXT", "SRV", "MX", "CNAME", "A"] = "auto"
    """The DNS record type of the answers (iodine -T; auto: iodine picks, NULL where it can)."""
    mtu: Int = Field(default=1130, ge=576, le=1500)


class FrontingOptions(Options):
    front_domain: Domain = "ajax.cdn.example.com"
    """The innocent name the client shows (SNI) and the edge's certificate names."""


class TorOptions(Options):
    transport: Literal["none", "obfs4"] = "none"
    """none: the client connects to the network's relays; obfs4: through an obfs4 bridge."""
    relays: Int = Field(default=4, ge=3, le=8)
    """Relays of the private network besides the bridge (the first 3 are its directory
    authorities), at the method's address and the addresses after it."""


KIND_OPTIONS: dict[str, type[Options]] = {
    "direct": NoOptions,
    "socks5": Socks5Options,
    "http-connect": HttpConnectOptions,
    "openvpn": OpenVpnOptions,
    "wireguard": WireGuardOptions,
    "shadowsocks": ShadowsocksOptions,
    "vmess": VmessOptions,
    "trojan": TrojanOptions,
    "hysteria2": Hysteria2Options,
    "tuic": TuicOptions,
    "ssh": SshOptions,
    "stunnel": StunnelOptions,
    "tor": TorOptions,
    "iodine": IodineOptions,
    "fronting": FrontingOptions,
}
MethodKind = Literal[
    "direct",
    "socks5",
    "http-connect",
    "openvpn",
    "wireguard",
    "shadowsocks",
    "vmess",
    "trojan",
    "hysteria2",
    "tuic",
    "ssh",
    "stunnel",
    "tor",
    "iodine",
    "fronting",
]
METHOD_KINDS: tuple[str, ...] = tuple(KIND_OPTIONS)
DEFAULT_PORTS: dict[str, int] = {
    "socks5": 1080,
    "http-connect": 3128,
    "openvpn": 1194,
    "wireguard": 51820,
    "shadowsocks": 8388,
    "vmess": 10086,
    "trojan": 443,
    "hysteria2": 443,
    "tuic": 443,
    "ssh": 22,
    "stunnel": 443,
    "tor": 9001,
    "iodine": 53,
    "fronting": 443,
}


def default_options(kind: str) -> Options:
    return KIND_OPTIONS[kind]()


def validate_options(value: Any, info: ValidationInfo) -> Any:
    """`options` of a circumvention method, checked against the model of its `kind`.

    A field validator (mode before) of the scenario model: errors keep their nested location, so
    each is reported at the line of the offending option. When `kind` itself is invalid the
    options are left alone (the kind's error is the one to read)."""
    kind = info.data.get("kind")
    if value is None or kind not in KIND_OPTIONS:
        return None  # the model fails on `kind` already: one error, not one per option
    model = KIND_OPTIONS[kind]
    if not isinstance(value, dict):
        raise PydanticCustomError("options", "expected a mapping of {kind} options", {"kind": kind})
    unknown = [k for k in value if k not in model.model_fields]
    if unknown:
        known = ", ".join(model.model_fields) or "none"
        details: list[InitErrorDetails] = [
            {
                "type": PydanticCustomError(
                    "unknown_option",
                    "unknown {kind} option '{key}' (its options: {known})",
                    {"kind": kind, "key": str(key), "known": known},
                ),
                "loc": (str(key),),
                "input": value[key],
            }
            for key in unknown
        ]
        raise ValidationError.from_exception_data("options", details)
    return model.model_validate(value)


__all__ = [
    "DEFAULT_PORTS",
    "KIND_OPTIONS",
    "METHOD_KINDS",
    "SHADOWSOCKS_2022_CIPHERS",
    "SHADOWSOCKS_LIBEV_CIPHERS",
    "MethodKind",
    "Options",
    "default_options",
    "validate_options",
]
