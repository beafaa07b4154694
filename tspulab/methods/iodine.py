"""A DNS tunnel with iodine (Debian's iodine 0.7.0): IP packets inside DNS queries and answers.

`iodined` answers for the method's `topdomain` on UDP port 53 of the cloud host and brings up a
TUN interface; `iodine` in the subscriber sends its queries straight to that address (as to a
foreign resolver), with raw UDP mode skipped (`-r`), so every packet really is DNS: long
base32/base128 labels under `topdomain`, NULL (or the option's) records back. Both ends are TUN
interfaces: the server forwards and masquerades like the other VPNs, the client routes the
method's prefixes as `tunnel.add_routes` does. Ready when the client logs "Connection setup
complete".
"""

from __future__ import annotations

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import password
from tspulab.methods.options import IodineOptions
from tspulab.methods.process import MethodError, Node, wait_listening, wait_log
from tspulab.methods.tunnel import add_routes, enable_forwarding_nat

READY = r"Connection setup complete"


class Iodine(Method):
    kind = "iodine"
    tool = "iodine"

    @property
    def options(self) -> IodineOptions:
        assert isinstance(self.ctx.options, IodineOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx = self.ctx
        if ctx.port != 53:
            raise MethodError(
                f"iodine {ctx.name}: port {ctx.port}: iodine's client asks a nameserver on port "
                "53 only (it has no port option)"
            )
        # iodine reads at most 32 characters of the password.
        self.secret = password()[:32]
        net = ctx.tunnel_net()
        self.server_ip = str(net.network_address + 1)
        self.server_dev, self.client_dev = ctx.interface("dns"), ctx.interface("dnc")
        self.nat_table = f"tspulab_{ctx.tag(8)}"

    def start_server(self, node: Node) -> None:
        self.prepare()
        ctx = self.ctx
        enable_forwarding_nat(
            node, ctx.tunnel_net(), self.nat_table, self.directory / "nat.nft", self.tool
        )
        self.undo.append((node, f"nft delete table ip {self.nat_table}"))
        argv = [
            "iodined", "-f", "-c", "-P", self.secret, "-l", ctx.server_address,
            "-p", str(ctx.port), "-d", self.server_dev, "-m", str(self.options.mtu),
            f"{self.server_ip}/24", self.options.topdomain,
        ]  # fmt: skip
        started = self.processes.start(node, argv, "iodined")
        wait_listening(
            node, ctx.port, tool="iodined", started=started, proto="udp",
            address=ctx.server_address,
        )  # fmt: skip

    def start_client(self, node: Node) -> Access:
        self.prepare()
        argv = ["iodine", "-f", "-r", "-P", self.secret, "-d", self.client_dev]
        if self.options.record_type != "auto":
            argv += ["-T", self.options.record_type]
        argv += [self.ctx.server_address, self.options.topdomain]
        started = self.processes.start(node, argv, "iodine-client")
        wait_log(started, READY, tool="iodine client", timeout_s=30)
        unroute = add_routes(
            node, self.options.routes, self.client_dev, self.ctx.route_table(), self.tool
        )
        self.undo.append((node, unroute))
        return Access(tun=self.client_dev)
