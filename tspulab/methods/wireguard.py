"""WireGuard with wireguard-go (userspace; this machine has no kernel module) and wireguard-tools.

`wireguard-go -f IFNAME` makes a TUN interface and a UAPI socket under /var/run/wireguard/
(shared by every namespace of the machine, so the interface names are unique per method and
side); `wg setconf` gives it keys and the peer; `ip` gives it an address and routes. Keys are
X25519 pairs made for the run. The client is ready once a handshake completed: a ping to the
server's tunnel address crosses the tunnel (docs/tspu-behaviour.md §5: the 148-byte handshake
initiation with message type 1 is what DPI matches).
"""

from __future__ import annotations

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import X25519Pair, random_b64
from tspulab.methods.options import WireGuardOptions
from tspulab.methods.process import Node, run_checked, wait_command, wait_listening
from tspulab.methods.tunnel import add_routes, disable_nat, enable_forwarding_nat


class WireGuard(Method):
    kind = "wireguard"
    tool = "wireguard-go"

    @property
    def options(self) -> WireGuardOptions:
        assert isinstance(self.ctx.options, WireGuardOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, o = self.ctx, self.options
        server, client = X25519Pair.generate(), X25519Pair.generate()
        psk = random_b64(32)
        net = ctx.tunnel_net()
        self.server_ip, self.client_ip = str(net.network_address + 1), str(net.network_address + 2)
        self.server_dev, self.client_dev = ctx.interface("wgs"), ctx.interface("wgc")
        (self.directory / "server.conf").write_text(
            "[Interface]\n"
            f"PrivateKey = {server.b64()[0]}\n"
            f"ListenPort = {ctx.port}\n\n"
            "[Peer]\n"
            f"PublicKey = {client.b64()[1]}\n"
            f"PresharedKey = {psk}\n"
            f"AllowedIPs = {self.client_ip}/32\n"
        )
        keepalive = f"PersistentKeepalive = {o.keepalive_s}\n" if o.keepalive_s else ""
        (self.directory / "client.conf").write_text(
            "[Interface]\n"
            f"PrivateKey = {client.b64()[0]}\n\n"
            "[Peer]\n"
            f"PublicKey = {server.b64()[1]}\n"
            f"PresharedKey = {psk}\n"
            f"Endpoint = {ctx.server_address}:{ctx.port}\n"
            "AllowedIPs = 0.0.0.0/0\n" + keepalive
        )
        for conf in ("server.conf", "client.conf"):
            (self.directory / conf).chmod(0o600)
        self.nat_table = f"tspulab_{ctx.tag(8)}"

    def _interface(self, node: Node, dev: str, conf: str, address: str, side: str) -> None:
        tool = f"wireguard-go {side}"
        # Foreground, so the PID we hold is the daemon's and stopping it removes the interface.
        started = self.processes.start(
            node, ["wireguard-go", "-f", dev], f"wireguard-go-{side}", env={"LOG_LEVEL": "verbose"}
        )
        wait_command(
            node, f"ip link show {dev}", tool=tool, what=f"interface {dev}", started=started
        )
        run_checked(node, f"wg setconf {dev} {self.directory / conf}", tool=tool)
        run_checked(node, f"ip addr add {address}/24 dev {dev}", tool=tool)
        run_checked(node, f"ip link set {dev} mtu {self.options.mtu} up", tool=tool)
        self._started = started

    def start_server(self, node: Node) -> None:
        self.prepare()
        enable_forwarding_nat(
            node, self.ctx.tunnel_net(), self.nat_table, self.directory / "nat.nft", self.tool
        )
        self._server_node = node
        self._interface(node, self.server_dev, "server.conf", self.server_ip, "server")
        wait_listening(
            node, self.ctx.port, tool="wireguard-go server", started=self._started, proto="udp"
        )

    def start_client(self, node: Node) -> Access:
        self.prepare()
        self._client_node = node
        self._interface(node, self.client_dev, "client.conf", self.client_ip, "client")
        wait_command(
            node,
            f"ping -n -c 1 -W 1 {self.server_ip}",
            tool="wireguard-go client",
            what=f"a handshake with {self.ctx.server_address}:{self.ctx.port} (ping through)",
            started=self._started,
            timeout_s=20,
        )
        self._unroute = add_routes(
            node, self.options.routes, self.client_dev, self.ctx.route_table(), self.tool
        )
        return Access(tun=self.client_dev)

    def stop(self) -> None:
        super().stop()
        unroute = getattr(self, "_unroute", None)
        if unroute is not None:
            self._client_node.cmd(f"{unroute} 2>/dev/null")
        if getattr(self, "_server_node", None) is not None:
            disable_nat(self._server_node, self.nat_table)
