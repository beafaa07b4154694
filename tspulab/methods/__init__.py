"""Circumvention methods with real tools: one adapter module per tool family.

`adapter_class(kind)` gives the adapter of a scenario method kind; the modules are imported on
demand, so the scenario language (which only needs `tspulab.methods.options`) stays light.
docs/methods.md lists the kinds, their tools and options, and what cannot run here and why.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tspulab.methods.base import Method

#: kind -> "module:Class" of its adapter.
ADAPTERS: dict[str, str] = {
    "openvpn": "openvpn:OpenVpn",
    "wireguard": "wireguard:WireGuard",
    "shadowsocks": "shadowsocks:Shadowsocks",
    "socks5": "proxies:Socks5",
    "http-connect": "proxies:HttpConnect",
    "ssh": "ssh:SshTunnel",
    "stunnel": "stunnel:Stunnel",
    "vmess": "v2ray:Vmess",
    "trojan": "trojan:Trojan",
    "hysteria2": "singbox:Hysteria2",
    "tuic": "singbox:Tuic",
    "tor": "tor:Tor",
    "iodine": "iodine:Iodine",
    "ipsec": "ipsec:Ipsec",
    "fronting": "fronting:Fronting",
    "mtproto": "mtproto:Mtproto",
    "custom": "custom:CustomTool",
}


def adapter_class(kind: str) -> type[Method]:
    """The adapter class of a method kind; KeyError for 'direct' and unknown kinds."""
    module, _, cls = ADAPTERS[kind].partition(":")
    found: type[Method] = getattr(importlib.import_module(f"tspulab.methods.{module}"), cls)
    return found
