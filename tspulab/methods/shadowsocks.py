"""Shadowsocks: shadowsocks-libev (ss-server, ss-local) for the AEAD ciphers, sing-box for 2022.

shadowsocks-libev 3.3.5 has the AEAD ciphers (aes-128/256-gcm, chacha20-ietf-poly1305) but
not the 2022 edition (SIP022, blake3 key derivation): those run on sing-box
(`singbox.Shadowsocks2022`). Either way the client is a local SOCKS5 proxy on the subscriber's
loopback, and on the wire there is no plaintext header at all: the fully-encrypted traffic that
the 2025 entropy heuristics look at (docs/tspu-behaviour.md §5).
"""

from __future__ import annotations

import json

from tspulab.methods.base import Access, Method, MethodContext
from tspulab.methods.keys import password
from tspulab.methods.options import SHADOWSOCKS_2022_CIPHERS, ShadowsocksOptions
from tspulab.methods.process import Node, wait_listening
from tspulab.methods.singbox import Shadowsocks2022


class Shadowsocks(Method):
    kind = "shadowsocks"
    tool = "shadowsocks-libev"

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        cipher = self.options.cipher
        self.sing_box = Shadowsocks2022(ctx) if cipher in SHADOWSOCKS_2022_CIPHERS else None

    @property
    def options(self) -> ShadowsocksOptions:
        assert isinstance(self.ctx.options, ShadowsocksOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        if self.sing_box is not None:
            self.sing_box.prepare()
            return
        ctx, secret = self.ctx, password()
        common = {"password": secret, "method": self.options.cipher, "mode": "tcp_only"}
        server = {"server": ctx.server_address, "server_port": ctx.port, **common}
        client = {
            "server": ctx.server_address,
            "server_port": ctx.port,
            "local_address": "127.0.0.1",
            "local_port": ctx.local_port,
            **common,
        }
        for name, conf in (("server.json", server), ("client.json", client)):
            path = self.directory / name
            path.write_text(json.dumps(conf, indent=1))
            path.chmod(0o600)

    def start_server(self, node: Node) -> None:
        if self.sing_box is not None:
            self.sing_box.start_server(node)
            return
        self.prepare()
        argv = ["ss-server", "-c", str(self.directory / "server.json"), "-v"]
        started = self.processes.start(node, argv, "ss-server")
        wait_listening(
            node, self.ctx.port, tool="ss-server", started=started, address=self.ctx.server_address
        )

    def start_client(self, node: Node) -> Access:
        if self.sing_box is not None:
            return self.sing_box.start_client(node)
        self.prepare()
        argv = ["ss-local", "-c", str(self.directory / "client.json"), "-v"]
        started = self.processes.start(node, argv, "ss-local")
        wait_listening(
            node, self.ctx.local_port, tool="ss-local", started=started, address="127.0.0.1"
        )
        return Access(socks5=f"127.0.0.1:{self.ctx.local_port}")

    def stop(self) -> None:
        if self.sing_box is not None:
            self.sing_box.stop()
        super().stop()
