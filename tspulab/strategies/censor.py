"""The bench's box acting live: ``TspuEngine`` on an NFQUEUE in the TSPU namespace.

    python -m tspulab.strategies.censor --profile tspu-2022 --registry-inline twitter.com \\
        --subscriber-if down0 --log verdicts.jsonl [--queue 15]

Every packet entering the namespace (mangle PREROUTING, so TTL-1 fakes that would expire here are
judged too, as the capture sees them) goes through ``TspuEngine.process`` — the engine of the live
controller and of ``tspulab replay --profile`` — and its fate is carried out: forward (accept),
drop, or reset (the packet becomes a RST/ACK with its own addresses and numbers, no payload: the
SNI-I rewrite, tspu-behaviour.md §2.2). The side a packet came in on (``--subscriber-if``) tells
the engine who is inside.

On SIGTERM it removes its rule and writes one JSON line per flow to ``--log``: addresses, first
packet time, verdict (action, rule, reason) and packets per fate. Prints ``ready`` once bound.
This is the bench's stand-in for the OVS lab's TSPU; it adds nothing to the engine.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import dpkt

from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.packet import LINKTYPE_RAW
from tspulab.dpi.policy import text
from tspulab.dpi.profile import load_profile
from tspulab.dpi.registry import load_inline
from tspulab.dpi.verdict import Fate
from tspulab.strategies import wire


def as_reset(raw: bytes) -> bytes:
    """The packet as a RST/ACK: same addresses, ports, seq and ack; no options, no payload."""
    ip = wire.parse(raw)
    tcp = ip.data
    if not isinstance(tcp, dpkt.tcp.TCP):
        return raw
    tcp.flags = dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK
    tcp.data = b""
    tcp.opts = b""
    tcp.off = 5
    tcp.win = 0
    return wire.build(ip)


class LiveBox:
    def __init__(self, engine: TspuEngine, subscriber_ifindex: int) -> None:
        self.engine = engine
        self.subscriber_ifindex = subscriber_ifindex
        self.fates: dict[int, dict[str, int]] = {}

    def handle(self, pkt: Any) -> None:
        raw = pkt.get_payload()
        inside = pkt.indev == self.subscriber_ifindex
        decision = self.engine.process(
            raw, time.time(), from_subscriber_side=inside, linktype=LINKTYPE_RAW
        )
        if decision.flow is not None:
            counts = self.fates.setdefault(id(decision.flow), {})
            counts[decision.fate.value] = counts.get(decision.fate.value, 0) + 1
        if decision.fate is Fate.DROP:
            pkt.drop()
        elif decision.fate is Fate.RESET:
            pkt.set_payload(as_reset(raw))
            pkt.accept()
        else:
            pkt.accept()

    def flows(self) -> list[dict[str, object]]:
        out = []
        for flow in sorted(self.engine.flows(), key=lambda f: f.first_seen):
            verdict = self.engine.verdict_of(flow)
            if verdict is None:
                continue
            out.append({
                "proto": flow.proto,
                "client": text(flow.client_addr), "client_port": flow.client_port,
                "server": text(flow.server_addr), "server_port": flow.server_port,
                "initiated_inside": flow.initiated_inside, "first_seen": flow.first_seen,
                "action": verdict.action.value, "rule": verdict.rule, "reason": verdict.reason,
                "fates": self.fates.get(id(flow), {}),
            })  # fmt: skip
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--registry-inline", action="append", default=[])
    ap.add_argument("--subscriber-if", required=True, help="interface towards the subscribers")
    ap.add_argument("--subscriber-net", action="append", default=[])
    ap.add_argument("--queue", type=int, default=15)
    ap.add_argument("--log", required=True)
    args = ap.parse_args(argv)
    from netfilterqueue import NetfilterQueue

    engine = TspuEngine(
        load_profile(args.profile),
        load_inline(args.registry_inline, "bench registry"),
        [ipaddress.ip_network(n) for n in args.subscriber_net],
    )
    box = LiveBox(engine, socket.if_nametoindex(args.subscriber_if))
    rule = ["-t", "mangle", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(args.queue)]

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    nfq = NetfilterQueue()
    installed = False
    try:
        nfq.bind(args.queue, box.handle)
        subprocess.run(["iptables", "-w", *rule[:2], "-A", *rule[2:]], check=True)
        installed = True
        print("ready", flush=True)
        nfq.run()
    except KeyboardInterrupt:
        pass
    finally:
        if installed:
            subprocess.run(["iptables", "-w", *rule[:2], "-D", *rule[2:]], check=False)
        nfq.unbind()
        Path(args.log).write_text("".join(json.dumps(f) + "\n" for f in box.flows()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
