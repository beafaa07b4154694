"""VMess with v2ray (Debian's v2ray 4.34): a vmess inbound in the cloud, socks → vmess locally.

A user UUID made for the run (alterId 0: the AEAD header, the only one v2ray accepts by default
since 2022), the body cipher from `security`. The server's `freedom` outbound resolves target
names itself; the client opens a SOCKS5 port on the subscriber's loopback.
"""

from __future__ import annotations

import json
from typing import Any

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import uuid4
from tspulab.methods.options import VmessOptions
from tspulab.methods.process import Node, wait_listening


class Vmess(Method):
    kind = "vmess"
    tool = "v2ray"

    @property
    def options(self) -> VmessOptions:
        assert isinstance(self.ctx.options, VmessOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, user = self.ctx, uuid4()
        log: dict[str, Any] = {"loglevel": "info"}
        server = {
            "log": log,
            "inbounds": [
                {
                    "listen": ctx.server_address,
                    "port": ctx.port,
                    "protocol": "vmess",
                    "settings": {"clients": [{"id": user, "alterId": 0}]},
                }
            ],
            "outbounds": [{"protocol": "freedom"}],
        }
        client = {
            "log": log,
            "inbounds": [
                {
                    "listen": "127.0.0.1",
                    "port": ctx.local_port,
                    "protocol": "socks",
                    "settings": {"auth": "noauth", "udp": False},
                }
            ],
            "outbounds": [
                {
                    "protocol": "vmess",
                    "settings": {
                        "vnext": [
                            {
                                "address": ctx.server_address,
                                "port": ctx.port,
                                "users": [
                                    {"id": user, "alterId": 0, "security": self.options.security}
                                ],
                            }
                        ]
                    },
                }
            ],
        }
        for name, conf in (("server.json", server), ("client.json", client)):
            path = self.directory / name
            path.write_text(json.dumps(conf, indent=1))
            path.chmod(0o600)

    def start_server(self, node: Node) -> None:
        self.prepare()
        started = self.processes.start(
            node, ["v2ray", "-config", str(self.directory / "server.json")], "v2ray-server"
        )
        wait_listening(
            node, self.ctx.port, tool="v2ray server", started=started,
            address=self.ctx.server_address,
        )  # fmt: skip

    def start_client(self, node: Node) -> Access:
        self.prepare()
        started = self.processes.start(
            node, ["v2ray", "-config", str(self.directory / "client.json")], "v2ray-client"
        )
        wait_listening(
            node, self.ctx.local_port, tool="v2ray client", started=started, address="127.0.0.1"
        )
        return Access(socks5=f"127.0.0.1:{self.ctx.local_port}")
