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
from string import Formatter
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tspulab.scenario.scalars import Bool, Domain, Float, Int, Network, Str


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


class IpsecOptions(TunnelOptions):
    ike: Literal[
        "aes256-sha256-modp2048", "aes128-sha256-modp2048", "aes256-sha384-modp3072",
        "aes128-sha1-modp2048",
    ] = "aes256-sha256-modp2048"  # fmt: skip
    """The IKE proposal (encryption-integrity-DH group; MODP groups by the gmp plugin: the
    packaged plugins have no ECP or curve25519)."""
    esp: Literal["aes256-sha256", "aes128-sha256", "aes256-sha1", "aes128-sha1"] = "aes256-sha256"
    """The ESP proposal of the CHILD_SA (CBC with HMAC: kernel-libipsec has no GCM here)."""


class FrontingOptions(Options):
    front_domain: Domain = "ajax.cdn.example.com"
    """The innocent name the client shows (SNI) and the edge's certificate names."""


class TorOptions(Options):
    transport: Literal["none", "obfs4"] = "none"
    """none: the client connects to the network's relays; obfs4: through an obfs4 bridge."""
    relays: Int = Field(default=4, ge=3, le=8)
    """Relays of the private network besides the bridge (the first 3 are its directory
    authorities), at the method's address and the addresses after it."""


class MtprotoOptions(Options):
    transport: Literal["abridged", "intermediate"] = "abridged"
    """The framing inside obfuscated2 (the init's protocol tag: 0xefefefef or 0xeeeeeeee)."""
    dc: Int = Field(default=2, ge=1, le=5)
    """The data centre the client asks the proxy for (bytes 60..62 of the init)."""
    telegram_domains: tuple[Domain, ...] = Field(
        default=("web.telegram.org", "telegram.org", "t.me"), min_length=1
    )
    """The names that are Telegram: a probe of another service through the proxy fails."""


# --- custom: the user's own client and server ---------------------------------------------------

#: Placeholders a custom command, environment value, readiness check or access may use
#: (docs/methods.md, "Bring your own tool"); `url` only in `access.command`.
CUSTOM_PLACEHOLDERS = (
    "address", "port", "local_port", "dir", "method_dir", "host", "server_name", "cert", "key",
    "ca", "tun",
)  # fmt: skip


def placeholders(text: str) -> list[str]:
    """The `{name}` fields of a command template (`{{` and `}}` are literal braces)."""
    try:
        return [name for _, name, _, _ in Formatter().parse(text) if name is not None]
    except ValueError as err:
        raise PydanticCustomError(
            "template", "bad braces in '{text}': {err}", {"text": text, "err": str(err)}
        ) from None


def _check_template(text: str, extra: tuple[str, ...] = ()) -> str:
    allowed = (*CUSTOM_PLACEHOLDERS, *extra)
    for name in placeholders(text):
        if name not in allowed:
            raise PydanticCustomError(
                "placeholder",
                "unknown placeholder '{name}' (known: {known}; a literal brace is written twice)",
                {"name": "{" + name + "}", "known": ", ".join("{" + a + "}" for a in allowed)},
            )
    return text


class CustomReady(Options):
    """When a custom side is ready: every check given must pass within `timeout_s`."""

    port: Int | Str | None = None
    """A port that listens in the host (an integer, `{port}` or `{local_port}`)."""
    proto: Literal["tcp", "udp"] = "tcp"
    log: Str | None = None
    """A regular expression searched in the process's output (its log file)."""
    command: Str | None = None
    """A shell command in the host that must succeed (e.g. `ip link show tun0`)."""
    timeout_s: Float = Field(default=15.0, gt=0, le=600)

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and value not in ("{port}", "{local_port}"):
            raise PydanticCustomError(
                "port",
                "expected a port number, '{a}' or '{b}'",
                {"a": "{port}", "b": "{local_port}"},
            )
        if isinstance(value, int) and not 1 <= value <= 65535:
            raise PydanticCustomError("port", "a port is 1-65535", {})
        return value

    @field_validator("command")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)

    @field_validator("log")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            try:
                re.compile(value)
            except re.error as err:
                raise PydanticCustomError(
                    "regex", "not a regular expression: {err}", {"err": str(err)}
                ) from None
        return value

    @model_validator(mode="after")
    def _something(self) -> CustomReady:
        if self.port is None and self.log is None and self.command is None:
            raise PydanticCustomError("ready", "give at least one of port, log or command", {})
        return self


class CustomSide(Options):
    """One side of a custom tool: what runs in the host, with what, and when it is ready.

    The process runs in its own working directory, `<run dir>/methods/<name>/<side>-<host>/`
    (`{dir}`), where `files` are copied first; its output goes to `<side>.<host>.log` beside."""

    command: Str | tuple[Str, ...]
    """An argv list (no shell), or a string run by `sh -c`."""
    env: dict[Str, Str] = Field(default_factory=dict)
    files: dict[Str, Str] = Field(default_factory=dict)
    """name in the working directory -> source file (relative to the scenario's folder)."""
    ready: CustomReady | None = None
    """Without it the side counts as ready once started (and still running 0.2 s later)."""

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        parts = [value] if isinstance(value, str) else list(value)
        if not parts or not parts[0].strip():
            raise PydanticCustomError("command", "empty command", {})
        for part in parts:
            _check_template(part)
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not key.replace("_", "a").isalnum() or key[0].isdigit():
                raise PydanticCustomError("env", "'{key}' is not a variable name", {"key": key})
            _check_template(text)
        return value

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.startswith("/") or ".." in name.split("/"):
                raise PydanticCustomError(
                    "files", "'{name}': a name inside the working directory", {"name": name}
                )
        return value


class CustomAccess(Options):
    """How a probe goes through a custom client: exactly one of these."""

    socks5: Str | None = None
    """host:port of a SOCKS5 proxy the client opens (e.g. `127.0.0.1:{local_port}`)."""
    http_proxy: Str | None = None
    """host:port of an HTTP proxy that takes CONNECT."""
    tun: Str | None = None
    """The interface the client brings up (`{tun}` is a name unique to the method); `routes`
    go through it for probes bound to it."""
    routes: tuple[Network, ...] = (IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1"))
    command: Str | None = None
    """A shell command in the subscriber host that must succeed (`{url}`: the target's URL);
    exit status 0 is success, its output is kept."""

    @field_validator("socks5", "http_proxy", "tun")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value, ("url",))

    @model_validator(mode="after")
    def _one(self) -> CustomAccess:
        given = [k for k in ("socks5", "http_proxy", "tun", "command") if getattr(self, k)]
        if len(given) != 1:
            raise PydanticCustomError(
                "access", "give exactly one of socks5, http_proxy, tun or command (got {got})",
                {"got": ", ".join(given) or "none"},
            )  # fmt: skip
        return self


class CustomOptions(Options):
    """The user's own tool: commands for its server (in the method's cloud host) and its client
    (in each subscriber host that probes through it). Running commands from a scenario file is
    opt-in: `tspulab run --allow-commands`, or the pytest plugin's explicit use."""

    server: CustomSide | None = None
    """Started at bring-up in the cloud host that owns `address` (none: the client reaches
    something else, e.g. a socks5 method of the same scenario)."""
    client: CustomSide | None = None
    """Started in a subscriber host on its first probe through the method (none: the access
    needs no client process, e.g. a proxy the server opens)."""
    access: CustomAccess
    server_name: Domain | None = None
    """A certificate for this name (and the method's address) is made per run, signed by the
    run's CA: `{cert}`, `{key}`, `{ca}`."""


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
    "ipsec": IpsecOptions,
    "fronting": FrontingOptions,
    "mtproto": MtprotoOptions,
    "custom": CustomOptions,
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
    "ipsec",
    "fronting",
    "mtproto",
    "custom",
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
    "ipsec": 500,
    "fronting": 443,
    "mtproto": 443,
    "custom": 8443,
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
    "CUSTOM_PLACEHOLDERS",
    "DEFAULT_PORTS",
    "KIND_OPTIONS",
    "METHOD_KINDS",
    "SHADOWSOCKS_2022_CIPHERS",
    "SHADOWSOCKS_LIBEV_CIPHERS",
    "CustomAccess",
    "CustomOptions",
    "CustomReady",
    "CustomSide",
    "MethodKind",
    "Options",
    "default_options",
    "validate_options",
]
