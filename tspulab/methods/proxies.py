"""Plain proxies: SOCKS5 (microsocks or dante) and HTTP CONNECT (tinyproxy).

These have no client program of their own: the protocol is what applications speak, so the
probe's curl is the client (`--socks5-hostname`, names resolved by the proxy as Telegram's
clients did in 2018; `--proxytunnel` for CONNECT). The server is ready when it listens.
"""

from __future__ import annotations

from tspulab.methods.base import Access, Method
from tspulab.methods.options import HttpConnectOptions, Socks5Options
from tspulab.methods.process import Node, wait_listening


class Socks5(Method):
    kind = "socks5"
    tool = "microsocks/dante"

    @property
    def options(self) -> Socks5Options:
        assert isinstance(self.ctx.options, Socks5Options)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx = self.ctx
        if self.options.server == "dante":
            (self.directory / "danted.conf").write_text(
                "logoutput: stderr\n"
                f"internal: {ctx.server_address} port = {ctx.port}\n"
                f"external: {ctx.server_address}\n"
                "socksmethod: none\nclientmethod: none\n"
                "user.privileged: root\nuser.unprivileged: nobody\n"
                "client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 log: error }\n"
                "socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 log: error }\n"
            )

    def start_server(self, node: Node) -> None:
        self.prepare()
        ctx = self.ctx
        if self.options.server == "dante":
            argv = [
                "danted", "-f", str(self.directory / "danted.conf"),
                "-p", str(self.directory / "danted.pid"), "-N", "1",
            ]  # fmt: skip
            name = "danted"
        else:
            argv = ["microsocks", "-i", ctx.server_address, "-p", str(ctx.port)]
            name = "microsocks"
        started = self.processes.start(node, argv, name)
        wait_listening(node, ctx.port, tool=name, started=started, address=ctx.server_address)

    def start_client(self, node: Node) -> Access:
        return Access(socks5=f"{self.ctx.server_address}:{self.ctx.port}")


class HttpConnect(Method):
    kind = "http-connect"
    tool = "tinyproxy"

    @property
    def options(self) -> HttpConnectOptions:
        assert isinstance(self.ctx.options, HttpConnectOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, d = self.ctx, self.directory
        (d / "tinyproxy.conf").write_text(
            f"Port {ctx.port}\nListen {ctx.server_address}\nTimeout 600\n"
            "MaxClients 200\nLogLevel Info\n"
            f'PidFile "{d / "tinyproxy.pid"}"\n'
            "ConnectPort 443\nConnectPort 80\nDisableViaHeader Yes\n"
        )

    def start_server(self, node: Node) -> None:
        self.prepare()
        argv = ["tinyproxy", "-d", "-c", str(self.directory / "tinyproxy.conf")]
        started = self.processes.start(node, argv, "tinyproxy")
        wait_listening(
            node, self.ctx.port, tool="tinyproxy", started=started, address=self.ctx.server_address
        )

    def start_client(self, node: Node) -> Access:
        return Access(http_proxy=f"{self.ctx.server_address}:{self.ctx.port}")
