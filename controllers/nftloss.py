"""Random per-packet loss on the TSPU switch's ports, with nftables.

OpenFlow 1.3 cannot drop a random fraction of one flow's packets: a select group picks its bucket
by a hash of the flow, so every packet of a flow lands in the same bucket. This kernel has no
netem and no tc `gact` either, but it has nftables' netdev *egress* hook and `numgen random`.
Open vSwitch's userspace datapath sends through AF_PACKET, and such frames do pass the egress hook
(measured: 567 of 2,000 frames dropped at p = 0.3, the sender seeing ENOBUFS), so a rule on the
TSPU switch's egress port drops the chosen fraction of one direction of one flow, in the kernel,
after the switch forwarded it: the TSPU box dropping on its way out.

One table per run (`netdev <name>`, recorded by the lab for cleanup), one egress chain per port.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading

from tspulab.controllers.enforcement import LossRule

SCALE = 1_000_000


class NftLoss:
    def __init__(self, table: str, subscriber_if: str, upstream_if: str) -> None:
        self.table = table
        self.interfaces = {"down": subscriber_if, "up": upstream_if}
        self._handles: dict[tuple[object, str], int] = {}
        self._lock = threading.Lock()
        self._ready = False

    def _nft(self, *args: str) -> str:
        return subprocess.run(
            ["nft", *args], check=True, capture_output=True, text=True, timeout=10
        ).stdout

    def _ensure(self) -> None:
        if self._ready:
            return
        self._nft("add", "table", "netdev", self.table)
        for direction, ifname in self.interfaces.items():
            self._nft(
                "add", "chain", "netdev", self.table, direction,
                f"{{ type filter hook egress device {ifname} priority 0 ; }}",
            )  # fmt: skip
        self._ready = True

    def add(self, loss: LossRule) -> None:
        ep = loss.ep
        if loss.direction == "up":
            src, sport, dst, dport = ep.client, ep.client_port, ep.server, ep.server_port
        else:
            src, sport, dst, dport = ep.server, ep.server_port, ep.client, ep.client_port
        fam = "ip" if ipaddress.ip_address(src).version == 4 else "ip6"
        l4 = "tcp" if ep.proto == 6 else "udp"
        threshold = round(loss.probability * SCALE)
        with self._lock:
            self._ensure()
            out = self._nft(
                "--echo", "--handle", "add", "rule", "netdev", self.table, loss.direction,
                f"{fam} saddr {src} {fam} daddr {dst} {l4} sport {sport} {l4} dport {dport} "
                f"numgen random mod {SCALE} < {threshold} counter drop",
            )  # fmt: skip
            match = re.search(r"# handle (\d+)", out)
            if match:
                self._handles[(ep, loss.direction)] = int(match.group(1))

    def remove_flow(self, ep: object) -> None:
        with self._lock:
            for direction in ("up", "down"):
                handle = self._handles.pop((ep, direction), None)
                if handle is not None:
                    subprocess.run(
                        ["nft", "delete", "rule", "netdev", self.table, direction,
                         "handle", str(handle)],
                        check=False, capture_output=True, timeout=10,
                    )  # fmt: skip

    def close(self) -> None:
        with self._lock:
            if self._ready:
                subprocess.run(
                    ["nft", "delete", "table", "netdev", self.table],
                    check=False,
                    capture_output=True,
                    timeout=10,
                )
                self._ready = False
