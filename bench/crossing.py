"""How long each packet takes to cross the TSPU position, from captures on both of its ports.

tcpdump runs on the switch's subscriber-side and upstream-side interfaces (root namespace, one
clock); a frame seen on one side and then, byte for byte, on the other crossed the switch
(the TSPU never rewrites a forwarded frame). Packets are split into a flow's *first packets*
(up to and including the client's first payload: what the TSPU sends through the controller
until a TLS or DNS verdict is final) and *later packets* (forwarded by switch rules).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from tspulab.lab.record import RunRecord
from tspulab.topologies.multi_isp import TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT

SIDES = {"sub": TSPU_SUBSCRIBER_PORT, "up": TSPU_UPSTREAM_PORT}


@dataclass
class Crossings:
    """Crossing delays (ms) of IPv4 TCP/UDP packets, by position in their flow."""

    first: list[float] = field(default_factory=list)
    later: list[float] = field(default_factory=list)
    unmatched: int = 0


class Capture:
    """tcpdump on both TSPU ports for the duration of a `with` block."""

    def __init__(self, run_dir: Path, record: RunRecord, switch: str) -> None:
        self.run_dir = run_dir
        self.record = record
        self.switch = switch
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def path(self, side: str) -> Path:
        return self.run_dir / f"crossing-{side}.pcap"

    def __enter__(self) -> Capture:
        for side, port in SIDES.items():
            intf = f"{self.switch}-eth{port}"
            log = self.run_dir / f"crossing-{side}.log"
            proc = subprocess.Popen(
                ["tcpdump", "-i", intf, "-n", "-U", "--immediate-mode", "-s", "256",
                 "-w", str(self.path(side))],
                stdout=subprocess.DEVNULL, stderr=log.open("ab"), start_new_session=True,
            )  # fmt: skip
            self.record.process(proc.pid, f"tcpdump {intf}", group_leader=True)
            self.procs[side] = proc
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and "listening" not in log.read_text():
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # let the last packets reach the files
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def crossings(self) -> Crossings:
        seen: dict[str, list[tuple[float, bytes]]] = {}
        for side in SIDES:
            with self.path(side).open("rb") as f:
                seen[side] = [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
        pending: dict[bytes, deque[tuple[float, str]]] = defaultdict(deque)
        for ts, frame, where in sorted((ts, f, side) for side in SIDES for ts, f in seen[side]):
            pending[frame].append((ts, where))
        out = Crossings()
        client_spoke: set[tuple[bytes, bytes, int, int, int]] = set()
        for ts, frame in sorted(seen["sub"] + seen["up"]):
            times = pending.get(frame)
            if not times or times[0][0] != ts:
                continue  # the second sighting of a frame already counted
            _, side = times.popleft()
            other = next((t for t, s in times if s != side), None)
            if other is None:
                out.unmatched += 1
                continue
            times.remove((other, "up" if side == "sub" else "sub"))
            ip = dpkt.ethernet.Ethernet(frame).data
            l4 = ip.data
            if not isinstance(ip, dpkt.ip.IP) or not hasattr(l4, "sport"):
                continue
            a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            key = (*sorted([a, b]), ip.p)
            flow = (key[0][0], key[1][0], key[0][1], key[1][1], key[2])
            delay = (other - ts) * 1000
            (out.later if flow in client_spoke else out.first).append(delay)
            if side == "sub" and len(l4.data) > 0:
                client_spoke.add(flow)
        return out
