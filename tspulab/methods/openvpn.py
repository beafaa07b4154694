"""OpenVPN over UDP or TCP, with or without tls-crypt: Debian's openvpn on both sides.

Mutual TLS with certificates of the run's CA (ECDSA P-256, `dh none`: ECDHE), one client, a /24
of the method's own for the tunnel, the data channel cipher from the options. The server
forwards and masquerades (see `tunnel`); the client routes the option's prefixes into its TUN.
Both are ready when they log "Initialization Sequence Completed" (the client only once its TLS
handshake with the server succeeded, so readiness proves the path).

On the wire: without tls-crypt the first packets are P_CONTROL_HARD_RESET_CLIENT_V2 and a TLS
ClientHello inside P_CONTROL, the opcode pattern DPI fingerprints (docs/tspu-behaviour.md §5);
with tls-crypt the control channel is encrypted and authenticated with a pre-shared key.
"""

from __future__ import annotations

import subprocess

from tspulab.methods.base import Access, Method
from tspulab.methods.options import OpenVpnOptions
from tspulab.methods.process import MethodError, Node, wait_listening, wait_log
from tspulab.methods.tunnel import add_routes, enable_forwarding_nat

READY = r"Initialization Sequence Completed"


class OpenVpn(Method):
    kind = "openvpn"
    tool = "openvpn"
    # A client is its own process, routes and log per host; the shared set-up is the server's.
    parallel_clients = True

    @property
    def options(self) -> OpenVpnOptions:
        assert isinstance(self.ctx.options, OpenVpnOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        o, d, ctx = self.options, self.directory, self.ctx
        server = ctx.certs.issue_server("server", [f"{ctx.name}.vpn"], [ctx.server_address])
        client = ctx.certs.issue_client("client", f"{ctx.name}-client")
        net = ctx.tunnel_net()
        common = [
            f"proto {o.proto}4" + ("-server" if o.proto == "tcp" else ""),
            "dev-type tun",
            f"ca {ctx.certs.ca_path}",
            f"data-ciphers {o.cipher}",
            f"tun-mtu {o.mtu}",
            "verb 3",
            "persist-key",
        ]
        if o.tls_crypt:
            key = d / "tls-crypt.key"
            done = subprocess.run(
                ["openvpn", "--genkey", "secret", str(key)], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise MethodError(f"openvpn --genkey failed: {done.stderr.strip()}")
            common.append(f"tls-crypt {key}")
        self.server_dev = ctx.interface("tuns")
        self.client_dev = ctx.interface("tunc")
        (d / "server.conf").write_text(
            "\n".join(
                [
                    *common,
                    f"dev {self.server_dev}",
                    f"local {ctx.server_address}",
                    f"port {ctx.port}",
                    "mode server",
                    "tls-server",
                    f"server {net.network_address} {net.netmask}",
                    "topology subnet",
                    f"cert {server.cert}",
                    f"key {server.key}",
                    "dh none",
                    "ecdh-curve prime256v1",
                    "keepalive 10 60",
                    # One certificate for every subscriber host that runs a client.
                    "duplicate-cn",
                ]
            )
            + "\n"
        )
        client_common = [c.replace("-server", "-client") for c in common]
        (d / "client.conf").write_text(
            "\n".join(
                [
                    *client_common,
                    "client",
                    f"dev {self.client_dev}",
                    f"remote {ctx.server_address} {ctx.port}",
                    "nobind",
                    f"cert {client.cert}",
                    f"key {client.key}",
                    "remote-cert-tls server",
                    # Routes are set by tspulab after the tunnel is up (see start_client).
                    "route-noexec",
                ]
            )
            + "\n"
        )
        self.nat_table = f"tspulab_{ctx.tag(8)}"

    def start_server(self, node: Node) -> None:
        self.prepare()
        enable_forwarding_nat(
            node, self.ctx.tunnel_net(), self.nat_table, self.directory / "nat.nft", self.tool
        )
        self.undo.append((node, f"nft delete table ip {self.nat_table}"))
        started = self.processes.start(
            node, ["openvpn", "--config", str(self.directory / "server.conf")], "openvpn-server"
        )
        if self.options.proto == "tcp":
            wait_listening(node, self.ctx.port, tool="openvpn server", started=started)
        wait_log(started, READY, tool="openvpn server", timeout_s=20)

    def start_client(self, node: Node) -> Access:
        self.prepare()
        started = self.processes.start(
            node, ["openvpn", "--config", str(self.directory / "client.conf")], "openvpn-client"
        )
        wait_log(started, READY, tool="openvpn client", timeout_s=30)
        unroute = add_routes(
            node, self.options.routes, self.client_dev, self.ctx.route_table(), self.tool
        )
        self.undo.append((node, unroute))
        return Access(tun=self.client_dev)
