"""WireGuard with wireguard-go (userspace; this machine has no kernel module) and wireguard-tools.

`wireguard-go -f IFNAME` makes a TUN interface and a UAPI socket under /var/run/wireguard/
(shared by every namespace of the machine, so the interface names are unique per method and
side); `wg setconf` gives it keys and the peer; `ip` gives it an address and routes. Keys are
X25519 pairs made for the run. The client is ready once a handshake completed: a ping to the
server's tunnel address crosses the tunnel (docs/tspu-behaviour.md §5: the 148-byte handshake
initiation with message type 1 is what DPI matches).
"""

from __future__ import annotations

import threading

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import X25519Pair, random_b64
from tspulab.methods.options import WireGuardOptions
from tspulab.methods.process import (
    MethodError,
    Node,
    Started,
    run_checked,
    wait_command,
    wait_listening,
)
from tspulab.methods.tunnel import add_routes, enable_forwarding_nat


class WireGuard(Method):
    kind = "wireguard"
    tool = "wireguard-go"
    # Each host's client has its own key, address and interface; only picking them is shared.
    parallel_clients = True

    @property
    def options(self) -> WireGuardOptions:
        assert isinstance(self.ctx.options, WireGuardOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx, o = self.ctx, self.options
        server = X25519Pair.generate()
        net = ctx.tunnel_net()
        self.server_ip = str(net.network_address + 1)
        self.server_dev = ctx.interface("wgs")
        # One key pair, preshared key and address per subscriber host that may run a client.
        peers, self.client_ips = [], []
        keepalive = f"PersistentKeepalive = {o.keepalive_s}\n" if o.keepalive_s else ""
        for i in range(ctx.clients):
            client, psk = X25519Pair.generate(), random_b64(32)
            address = str(net.network_address + 2 + i)
            self.client_ips.append(address)
            peers.append(
                f"[Peer]\nPublicKey = {client.b64()[1]}\nPresharedKey = {psk}\n"
                f"AllowedIPs = {address}/32\n"
            )
            self._write(
                f"client{i}.conf",
                f"[Interface]\nPrivateKey = {client.b64()[0]}\n\n"
                f"[Peer]\nPublicKey = {server.b64()[1]}\nPresharedKey = {psk}\n"
                f"Endpoint = {ctx.server_address}:{ctx.port}\nAllowedIPs = 0.0.0.0/0\n" + keepalive,
            )
        self._write(
            "server.conf",
            f"[Interface]\nPrivateKey = {server.b64()[0]}\nListenPort = {ctx.port}\n\n"
            + "\n".join(peers),
        )
        self.nat_table = f"tspulab_{ctx.tag(8)}"
        self.client_index: dict[str, int] = {}
        self._index_lock = threading.Lock()

    def _write(self, name: str, text: str) -> None:
        path = self.directory / name
        path.write_text(text)
        path.chmod(0o600)

    def _interface(self, node: Node, dev: str, conf: str, address: str, side: str) -> Started:
        tool = f"wireguard-go {side}"
        # Foreground, so the PID we hold is the daemon's and stopping it removes the interface.
        started = self.processes.start(
            node, ["wireguard-go", "-f", dev], f"wireguard-go-{side}", env={"LOG_LEVEL": "verbose"}
        )
        # The UAPI socket comes a moment after the interface; `wg` needs the socket (without it
        # wg tries the kernel's netlink: "Protocol not supported" here).
        sock = f"/var/run/wireguard/{dev}.sock"
        wait_command(
            node, f"ip link show {dev} && test -S {sock}", tool=tool,
            what=f"interface {dev} and its UAPI socket {sock}", started=started,
        )  # fmt: skip
        run_checked(node, f"wg setconf {dev} {self.directory / conf}", tool=tool)
        run_checked(node, f"ip addr add {address}/24 dev {dev}", tool=tool)
        run_checked(node, f"ip link set {dev} mtu {self.options.mtu} up", tool=tool)
        return started

    def start_server(self, node: Node) -> None:
        self.prepare()
        enable_forwarding_nat(
            node, self.ctx.tunnel_net(), self.nat_table, self.directory / "nat.nft", self.tool
        )
        self.undo.append((node, f"nft delete table ip {self.nat_table}"))
        started = self._interface(node, self.server_dev, "server.conf", self.server_ip, "server")
        wait_listening(
            node, self.ctx.port, tool="wireguard-go server", started=started, proto="udp"
        )

    def start_client(self, node: Node) -> Access:
        self.prepare()
        # A host keeps its key when its client is started again (after a failed start).
        with self._index_lock:
            i = self.client_index.setdefault(node.name, len(self.client_index))
            if i >= self.ctx.clients:
                del self.client_index[node.name]
                raise MethodError(
                    f"wireguard {self.ctx.name}: keys were made for {self.ctx.clients} client(s)"
                )
        # Names unique per client too: the UAPI socket is named after the interface.
        dev = self.ctx.interface(f"wg{i}c")
        started = self._interface(node, dev, f"client{i}.conf", self.client_ips[i], "client")
        wait_command(
            node,
            f"ping -n -c 1 -W 1 {self.server_ip}",
            tool="wireguard-go client",
            what=f"a handshake with {self.ctx.server_address}:{self.ctx.port} (ping through)",
            started=started,
            timeout_s=20,
        )
        unroute = add_routes(node, self.options.routes, dev, self.ctx.route_table(), self.tool)
        self.undo.append((node, unroute))
        return Access(tun=dev)
