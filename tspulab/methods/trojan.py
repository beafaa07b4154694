"""Trojan (trojan-gfw, Debian's `trojan`): a TLS server that looks like HTTPS to a prober.

The server terminates TLS with a certificate of the run's CA for `server_name`; a connection
that does not start with the password's hash is handed to `remote_addr` (a real web server, as
trojan is deployed: here the cloud host's loopback port 80). The client (`run_type client`)
opens a SOCKS5 port on the subscriber's loopback and verifies the server's chain and name.
"""

from __future__ import annotations

import json

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import password
from tspulab.methods.options import TrojanOptions
from tspulab.methods.process import Node, wait_listening


class Trojan(Method):
    kind = "trojan"
    tool = "trojan"

    @property
    def options(self) -> TrojanOptions:
        assert isinstance(self.ctx.options, TrojanOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, sni, secret = self.ctx, self.options.server_name, password()
        cert = ctx.certs.issue_server("server", [sni])
        server = {
            "run_type": "server",
            "local_addr": ctx.server_address,
            "local_port": ctx.port,
            "remote_addr": "127.0.0.1",
            "remote_port": 80,
            "password": [secret],
            "log_level": 1,
            "ssl": {"cert": str(cert.cert), "key": str(cert.key), "alpn": ["http/1.1"]},
        }
        client = {
            "run_type": "client",
            "local_addr": "127.0.0.1",
            "local_port": ctx.local_port,
            "remote_addr": ctx.server_address,
            "remote_port": ctx.port,
            "password": [secret],
            "log_level": 1,
            "ssl": {
                "verify": True,
                "verify_hostname": True,
                "cert": str(ctx.certs.ca_path),
                "sni": sni,
                "alpn": ["h2", "http/1.1"],
            },
        }
        for name, conf in (("server.json", server), ("client.json", client)):
            path = self.directory / name
            path.write_text(json.dumps(conf, indent=1))
            path.chmod(0o600)

    def start_server(self, node: Node) -> None:
        self.prepare()
        started = self.processes.start(
            node, ["trojan", "-c", str(self.directory / "server.json")], "trojan-server"
        )
        wait_listening(
            node, self.ctx.port, tool="trojan server", started=started,
            address=self.ctx.server_address,
        )  # fmt: skip

    def start_client(self, node: Node) -> Access:
        self.prepare()
        started = self.processes.start(
            node, ["trojan", "-c", str(self.directory / "client.json")], "trojan-client"
        )
        wait_listening(
            node, self.ctx.local_port, tool="trojan client", started=started, address="127.0.0.1"
        )
        return Access(socks5=f"127.0.0.1:{self.ctx.local_port}")
