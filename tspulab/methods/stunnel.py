"""A TLS tunnel with stunnel: SOCKS5 inside TLS to the cloud, a plain local port in the subscriber.

The server side is stunnel (TLS on the method's port, certificate of the run's CA for
`server_name`) in front of a microsocks on the cloud host's loopback; the client side is stunnel
in client mode, checking the chain and the host name against the run's CA, with a plain port on
the subscriber's loopback. The probe speaks SOCKS5 to that port, so what crosses the TSPU is
one TLS connection with the configured SNI and nothing readable inside.
"""

from __future__ import annotations

from tspulab.methods.base import Access, Method
from tspulab.methods.options import StunnelOptions
from tspulab.methods.process import Node, wait_listening

SOCKS_BEHIND = 1080
"""microsocks on the server's loopback, where stunnel hands the decrypted stream."""


class Stunnel(Method):
    kind = "stunnel"
    tool = "stunnel4"

    @property
    def options(self) -> StunnelOptions:
        assert isinstance(self.ctx.options, StunnelOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, d, sni = self.ctx, self.directory, self.options.server_name
        cert = ctx.certs.issue_server("server", [sni])
        (d / "server.conf").write_text(
            "foreground = yes\npid =\ndebug = notice\n"
            "[tspulab]\n"
            f"accept = {ctx.server_address}:{ctx.port}\n"
            f"connect = 127.0.0.1:{SOCKS_BEHIND}\n"
            f"cert = {cert.cert}\nkey = {cert.key}\n"
        )
        (d / "client.conf").write_text(
            "foreground = yes\npid =\ndebug = notice\n"
            "[tspulab]\nclient = yes\n"
            f"accept = 127.0.0.1:{ctx.local_port}\n"
            f"connect = {ctx.server_address}:{ctx.port}\n"
            f"sni = {sni}\nverifyChain = yes\ncheckHost = {sni}\n"
            f"CAfile = {ctx.certs.ca_path}\n"
        )

    def start_server(self, node: Node) -> None:
        self.prepare()
        socks = self.processes.start(
            node, ["microsocks", "-i", "127.0.0.1", "-p", str(SOCKS_BEHIND)], "microsocks"
        )
        wait_listening(node, SOCKS_BEHIND, tool="microsocks (behind stunnel)", started=socks)
        started = self.processes.start(
            node, ["stunnel4", str(self.directory / "server.conf")], "stunnel-server"
        )
        wait_listening(
            node, self.ctx.port, tool="stunnel server", started=started,
            address=self.ctx.server_address,
        )  # fmt: skip

    def start_client(self, node: Node) -> Access:
        self.prepare()
        started = self.processes.start(
            node, ["stunnel4", str(self.directory / "client.conf")], "stunnel-client"
        )
        wait_listening(
            node, self.ctx.local_port, tool="stunnel client", started=started, address="127.0.0.1"
        )
        return Access(socks5=f"127.0.0.1:{self.ctx.local_port}")
