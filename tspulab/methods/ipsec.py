"""IPsec / IKEv2 with strongSwan's charon and its userspace ESP (`kernel-libipsec`).

This kernel has XFRM but no ESP (`CONFIG_INET_ESP` unset, no modules), so the kernel cannot hold
an ESP state; the `kernel-libipsec` plugin does ESP in charon itself, on a TUN interface
(`ipsecN`), with ESP in UDP (`encap = yes`, port 4500: RFC 3948) because a userspace process
cannot send raw ESP. What the TSPU sees is real IKEv2 on UDP 500 (IKE_SA_INIT, IKE_AUTH) and
then UDP-encapsulated ESP and IKE on 4500.

- Authentication by a pre-shared key of the run; IKE `aes256-sha256-modp2048` by default (the
  packaged plugins: `aes`, `sha2`, `hmac`, `kdf`, `gmp` for MODP; no openssl, no GCM).
- The server gives each client a virtual IP from a pool (the method's /24): a traffic selector
  `<vip>/32 === 0.0.0.0/0` never covers the peer's own IKE address, which charon refuses to
  route (docs/methods.md, the IPsec row).
- No MOBIKE: a cloud host has more addresses (other VPN servers' tunnel addresses among them)
  and with MOBIKE charon advertised them and moved the SA onto them, so the IKE/ESP path
  wandered through another method's tunnel (seen in the lab: probes took 4 s). For the same
  reason the client's own address is pinned (`local_addrs`).
- Every charon runs with its own configuration (`STRONGSWAN_CONF`), its own vici socket and its
  own /run in a private mount namespace (the PID file path is compiled in), and a client charon
  on ports of its own, so several methods and clients share one host.
- charon installs its routes into the method's routing table with a `from all` rule; on the
  client that rule is replaced by an `oif ipsecN` rule and the option's routes, as the other TUN
  methods do (`tunnel.add_routes`): only probes bound to the interface enter the tunnel.

Ready: the server's charon listens on its ports with the connection loaded; a client is ready
when `swanctl --initiate` returned with the CHILD_SA up and its virtual IP is on a TUN device.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import tempfile
import threading
from pathlib import Path

from tspulab.methods.base import Access, Method
from tspulab.methods.keys import password
from tspulab.methods.options import IpsecOptions
from tspulab.methods.process import (
    MethodError,
    Node,
    Started,
    run_checked,
    wait_command,
    wait_listening,
)
from tspulab.methods.tunnel import add_routes

CHARON = "/usr/lib/ipsec/charon"
PLUGINS = (
    "random nonce aes sha1 sha2 hmac kdf gmp kernel-libipsec kernel-netlink socket-default vici"
)
CONN, CHILD = "tspulab", "net"
SERVER_ID = "server.tspulab"


class Ipsec(Method):
    kind = "ipsec"
    tool = "strongswan"
    # Each host's client is its own charon, ports, vici socket and /run; a blocked IKE_SA_INIT
    # waits out its retransmits in every host at once.
    parallel_clients = True

    @property
    def options(self) -> IpsecOptions:
        assert isinstance(self.ctx.options, IpsecOptions)
        return self.ctx.options

    def _prepare(self) -> None:
        ctx = self.ctx
        self.secret = password()
        self.table = ctx.route_table()
        self.nat_table = f"tspulab_{ctx.tag(8)}"
        # Unix socket paths are at most 107 bytes: the vici sockets and the private /run of each
        # charon live in a short directory of their own, not in the (long) run directory.
        self.sockets = Path(tempfile.mkdtemp(prefix=f"tsipsec{ctx.tag(6)}-"))
        self.client_ports: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        # The IKE port is `port`; with the standard 500, NAT-T (and ESP in UDP) on 4500. On any
        # other port the client starts on NAT-T framing at once, so that port is the NAT-T one.
        if ctx.port == 500:
            self.server_ports = (500, 4500)
        else:
            self.server_ports = (0, ctx.port)

    # --- configuration ---------------------------------------------------------------------

    def _strongswan_conf(self, side: str, ports: tuple[int, int]) -> Path:
        vici = self.sockets / f"{side}.vici"
        text = (
            "charon {\n"
            f"  port = {ports[0]}\n"
            f"  port_nat_t = {ports[1]}\n"
            f"  routing_table = {self.table}\n"
            f"  routing_table_prio = {self.table}\n"
            "  install_virtual_ip = yes\n"
            "  install_dns = no\n"
            "  retransmit_tries = 3\n"
            "  retransmit_timeout = 2.0\n"
            f"  load = {PLUGINS}\n"
            "  plugins {\n"
            f"    vici {{\n      socket = unix://{vici}\n    }}\n"
            "  }\n"
            "  filelog {\n    stderr {\n      default = 1\n      ike = 2\n      flush_line = yes\n"
            "    }\n  }\n"
            "}\n"
        )
        path = self.directory / f"strongswan-{side}.conf"
        path.write_text(text)
        return path

    def _swanctl_conf(self, side: str, local: str = "") -> Path:
        o, ctx = self.options, self.ctx
        secret = f'secrets {{\n  ike-psk {{\n    secret = "{self.secret}"\n  }}\n}}\n'
        if side == "server":
            conn = (
                f"    local_addrs = {ctx.server_address}\n"
                "    pools = pool\n"
                f"    local {{\n      auth = psk\n      id = {SERVER_ID}\n    }}\n"
                "    remote {\n      auth = psk\n    }\n"
                f"    children {{\n      {CHILD} {{\n        local_ts = 0.0.0.0/0\n"
                f"        esp_proposals = {o.esp}\n      }}\n    }}\n"
            )
            pools = f"pools {{\n  pool {{\n    addrs = {self.pool()}\n  }}\n}}\n"
        else:
            conn = (
                f"    local_addrs = {local}\n"
                f"    remote_addrs = {ctx.server_address}\n"
                f"    remote_port = {ctx.port}\n"
                "    vips = 0.0.0.0\n"
                f"    local {{\n      auth = psk\n      id = {side}.tspulab\n    }}\n"
                f"    remote {{\n      auth = psk\n      id = {SERVER_ID}\n    }}\n"
                f"    children {{\n      {CHILD} {{\n        local_ts = dynamic\n"
                "        remote_ts = 0.0.0.0/0\n"
                f"        esp_proposals = {o.esp}\n      }}\n    }}\n"
            )
            pools = ""
        text = (
            f"connections {{\n  {CONN} {{\n    version = 2\n    proposals = {o.ike}\n"
            "    encap = yes\n    mobike = no\n    dpd_delay = 30s\n"
            f"{conn}  }}\n}}\n{pools}{secret}"
        )
        path = self.directory / f"swanctl-{side}.conf"
        path.write_text(text)
        path.chmod(0o600)
        return path

    def pool(self) -> ipaddress.IPv4Network:
        """The virtual IPs the server hands out (the method's /24 without its first address)."""
        return self.ctx.tunnel_net()

    # --- processes ---------------------------------------------------------------------------

    def _charon(self, node: Node, side: str, ports: tuple[int, int]) -> Started:
        conf = self._strongswan_conf(side, ports)
        run = self.sockets / f"run-{side}"
        run.mkdir(exist_ok=True)
        # A client started again: the socket of the charon before must not pass for this one's.
        (self.sockets / f"{side}.vici").unlink(missing_ok=True)
        # A private /run: charon's PID file is /var/run/charon.pid whatever it is told.
        script = f"mount --bind {run} /run && exec {CHARON}"
        return self.processes.start(
            node,
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            f"charon-{side}",
            env={"STRONGSWAN_CONF": str(conf)},
        )

    def _swanctl(self, node: Node, side: str, args: str, tool: str, started: Started) -> str:
        uri = f"unix://{self.sockets / f'{side}.vici'}"
        vici = self.sockets / f"{side}.vici"
        # The socket appears once charon loaded its plugins.
        wait_command(
            node, f"test -S {vici}", tool=tool, what=f"vici socket {vici}", started=started
        )
        return run_checked(node, f"swanctl {args} --uri {uri}", tool=tool)

    def start_server(self, node: Node) -> None:
        self.prepare()
        tool = "strongswan server"
        run_checked(node, "sysctl -q -w net.ipv4.ip_forward=1", tool=tool)
        rules = (
            f"table ip {self.nat_table} {{\n  chain postrouting {{\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    ip saddr {self.pool()} oifname != "ipsec*" masquerade\n  }}\n}}\n'
        )
        (self.directory / "nat.nft").write_text(rules)
        run_checked(node, f"nft -f {self.directory / 'nat.nft'}", tool=tool)
        self.undo.append((node, f"nft delete table ip {self.nat_table}"))
        started = self._charon(node, "server", self.server_ports)
        self.undo.append((node, f"ip rule del table {self.table} priority {self.table}"))
        conf = self._swanctl_conf("server")
        self._swanctl(node, "server", f"--load-all --noprompt --file {conf}", tool, started)
        for port in self.server_ports:
            if port:
                wait_listening(node, port, tool=tool, started=started, proto="udp")

    def _ports_of(self, node: Node) -> tuple[int, int]:
        """IKE and NAT-T ports of the client charon in `node` (two charons cannot both bind
        500/4500 in one host): derived from the method, distinct per host."""
        with self._lock:
            if node.name not in self.client_ports:
                n = len(self.client_ports)
                base = 30000 + (int(self.ctx.tag(4), 16) % 500) * 40
                self.client_ports[node.name] = (base + 2 * n, base + 2 * n + 1)
            return self.client_ports[node.name]

    def start_client(self, node: Node) -> Access:
        self.prepare()
        tool = "strongswan client"
        side = f"client-{node.name}"
        started = self._charon(node, side, self._ports_of(node))
        conf = self._swanctl_conf(side, self._source_address(node))
        self._swanctl(node, side, f"--load-all --noprompt --file {conf}", tool, started)
        # charon's `from all` rule (made when kernel-netlink loaded, before vici opened its
        # socket) would send every packet of the host, the server's own IKE and ESP included,
        # into the tunnel once the CHILD_SA's routes land in the table: gone before they do.
        node.cmd(f"ip rule del table {self.table} priority {self.table} 2>/dev/null")
        # Blocks until the CHILD_SA is up (IKE_SA_INIT, IKE_AUTH with the virtual IP) or fails.
        try:
            self._swanctl(
                node, side, f"--initiate --ike {CONN} --child {CHILD} --timeout 25", tool, started
            )
        except MethodError as err:
            raise MethodError(f"{err}\n  charon log {started.log}") from None
        dev, vip = self._tun_of(node)
        # charon's routes (a default route, an exclude route for the server) give way to the
        # option's, used only by traffic bound to the interface (the method's `oif` rule).
        node.cmd(f"ip route flush table {self.table} 2>/dev/null")
        run_checked(node, f"ip link set {dev} mtu {self.options.mtu}", tool=tool)
        unroute = add_routes(node, self.options.routes, dev, self.table, tool, src=vip)
        self.undo.append((node, unroute))
        return Access(tun=dev)

    def _source_address(self, node: Node) -> str:
        """The host's own address toward the server (its main table). charon picks a source
        from routes of every table, so in a host with other VPN clients it took another
        tunnel's address (seen in the lab: IKE from an OpenVPN client's address, its replies
        carried back through OpenVPN); pinned with `local_addrs`."""
        out = run_checked(node, f"ip -4 -o route get {self.ctx.server_address}", tool=self.tool)
        match = re.search(r"\bsrc (\S+)", out)
        if match is None:
            raise MethodError(
                f"strongswan client on {node.name}: no route to {self.ctx.server_address}: {out}"
            )
        return match[1]

    def _tun_of(self, node: Node) -> tuple[str, str]:
        """The TUN device that holds this client's virtual IP (libipsec names it ipsec%d)."""
        out = node.cmd("ip -o -4 addr show")
        for line in out.splitlines():
            match = re.match(r"\d+:\s+(\S+)\s+inet\s+([\d.]+)/", line)
            if match and ipaddress.IPv4Address(match[2]) in self.pool():
                return match[1], match[2]
        raise MethodError(
            f"strongswan client on {node.name}: CHILD_SA up but no virtual IP of {self.pool()} "
            f"on any interface:\n    {out.strip()}"
        )

    def health(self, node: Node) -> str | None:
        for s in self.processes.started:
            if s.proc.poll() is not None and (s.node is node or s.name == "charon-server"):
                return f"{s.name} on {s.node.name} exited (status {s.proc.returncode})"
        return None

    def stop(self) -> None:
        super().stop()
        if self.prepared:
            shutil.rmtree(self.sockets, ignore_errors=True)
