#!/usr/bin/env python3
"""CPU the controller spends per judged flow, without a switch: a scripted OpenFlow 1.3 peer.

The real controller (`python -m tspulab.controllers.launcher`, both apps, os-ken, the TSPU box
with the tspu-2022 profile) runs as its own process; this script connects to it as a switch does
(HELLO, FEATURES_REPLY, PORT_DESC reply, echo and barrier replies) and sends, for each of N new
TLS flows, the packet-ins the pipeline sends up for one: the SYN (as the inspect table's mirror
rule sends it, with its cookie), the client's ACK and its ClientHello (diverted). It waits for
each flow's two judged flow-mods and reads the controller's CPU time from /proc. No OVS, no
namespaces, no root; the figure is the controller's own cost, which `new_flows_per_second.py`
measures live beside everything else. Repeats are interleaved with nothing but each other;
the report gives min / median / max.

    .venv/bin/python bench/controller_cpu.py [--flows 2000] [--repeats 5] [--window 64]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from os_ken.ofproto import ofproto_v1_3 as ofp
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tspulab.controllers.config import write_registry
from tspulab.dpi.registry import load_inline

HEADER = struct.Struct("!BBHI")
# the pipeline's cookies (controllers/pipeline.py), spelled out so that the script also drives
# controllers from before the mirror rule existed
COOKIE_INSPECT, COOKIE_MIRROR = 0x7370_0003, 0x7370_0007
TICK = os.sysconf("SC_CLK_TCK")
CLIENT, SERVER = "10.0.0.2", "93.184.216.34"


def client_hello(sni: str) -> bytes:
    from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
    from scapy.layers.tls.handshake import TLSClientHello
    from scapy.layers.tls.record import TLS

    hello = TLSClientHello(ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=sni)])])
    return bytes(TLS(msg=[hello]))


def spread(values: list[float], fmt: str) -> str:
    """min / median / max (labbench's format, without importing the lab)."""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def packet_in(frame: bytes, in_port: int, cookie: int) -> bytes:
    oxm = struct.pack("!II", (ofp.OFPXMC_OPENFLOW_BASIC << 16) | (0 << 9) | 4, in_port)
    match = struct.pack("!HH", ofp.OFPMT_OXM, 4 + len(oxm)) + oxm
    match += bytes(-len(match) % 8)
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(frame), ofp.OFPR_ACTION, 2, cookie)
    body += match + b"\x00\x00" + frame
    return HEADER.pack(4, ofp.OFPT_PACKET_IN, HEADER.size + len(body), 0) + body


class FakeSwitch:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.flow_mods = 0
        self.packet_outs = 0
        self.ready = threading.Event()
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 8:
                _, kind, length, xid = HEADER.unpack_from(buf)
                if len(buf) < length:
                    break
                msg, buf = buf[:length], buf[length:]
                self._on(kind, xid, msg)

    def _on(self, kind: int, xid: int, msg: bytes) -> None:
        reply = None
        if kind == ofp.OFPT_HELLO:
            reply = HEADER.pack(4, ofp.OFPT_HELLO, 8, xid)
        elif kind == ofp.OFPT_FEATURES_REQUEST:
            body = struct.pack(ofp.OFP_SWITCH_FEATURES_PACK_STR, 1, 0, 4, 0, 0, 0)
            reply = HEADER.pack(4, ofp.OFPT_FEATURES_REPLY, 8 + len(body), xid) + body
        elif kind == ofp.OFPT_MULTIPART_REQUEST:
            body = struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, ofp.OFPMP_PORT_DESC, 0)
            reply = HEADER.pack(4, ofp.OFPT_MULTIPART_REPLY, 8 + len(body), xid) + body
        elif kind == ofp.OFPT_ECHO_REQUEST:
            reply = HEADER.pack(4, ofp.OFPT_ECHO_REPLY, len(msg), xid) + msg[8:]
        elif kind == ofp.OFPT_BARRIER_REQUEST:
            reply = HEADER.pack(4, ofp.OFPT_BARRIER_REPLY, 8, xid)
            self.ready.set()
        elif kind in (ofp.OFPT_FLOW_MOD, ofp.OFPT_PACKET_OUT):
            with self.lock:
                if kind == ofp.OFPT_FLOW_MOD:
                    self.flow_mods += 1
                else:
                    self.packet_outs += 1
                self.lock.notify_all()
        if reply is not None:
            self.send(reply)

    def wait_flow_mods(self, n: int, timeout_s: float = 120.0) -> None:
        with self.lock:
            ok = self.lock.wait_for(lambda: self.flow_mods >= n, timeout_s)
        if not ok:
            raise SystemExit(f"only {self.flow_mods} of {n} flow-mods came back")


def flows(n: int, first_port: int, hello: bytes, divert_all: bool) -> list[list[bytes]]:
    """Each flow's packet-ins: with the fast path, the SYN's copy (mirror cookie), the ACK and the
    ClientHello; with `divert_all` (the pipeline before issue 11) also the SYN/ACK, all diverted.
    Frames are built once with scapy; each flow patches its client port in (the controller does
    not check TCP checksums, and building 10,000s of frames with scapy takes minutes)."""

    def tcp(flags: str, payload: bytes = b"", up: bool = True) -> bytes:
        ends = (CLIENT, SERVER, 1, 443) if up else (SERVER, CLIENT, 443, 1)
        pkt = Ether() / IP(src=ends[0], dst=ends[1]) / TCP(
            sport=ends[2], dport=ends[3], flags=flags, seq=1000, ack=5000)  # fmt: skip
        return bytes(pkt / payload)

    # (frame, in_port, cookie, offset of the client port: TCP source or destination port)
    sport_at, dport_at = 14 + 20, 14 + 20 + 2
    if divert_all:
        shapes = [(tcp("S"), 1, COOKIE_INSPECT, sport_at),
                  (tcp("SA", up=False), 2, COOKIE_INSPECT, dport_at),
                  (tcp("A"), 1, COOKIE_INSPECT, sport_at),
                  (tcp("PA", hello), 1, COOKIE_INSPECT, sport_at)]  # fmt: skip
    else:
        shapes = [(tcp("S"), 1, COOKIE_MIRROR, sport_at),
                  (tcp("A"), 1, COOKIE_INSPECT, sport_at),
                  (tcp("PA", hello), 1, COOKIE_INSPECT, sport_at)]  # fmt: skip
    out = []
    for i in range(n):
        port = struct.pack("!H", first_port + i)
        out.append([packet_in(f[:at] + port + f[at + 2 :], in_port, cookie)
                    for f, in_port, cookie, at in shapes])  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=64, help="flows in flight at once")
    parser.add_argument("--profile", default="tspu-2022")
    parser.add_argument(
        "--divert-all",
        action="store_true",
        help="the packet-ins of the pipeline before the fast path (4 per flow)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tspulab-ctlcpu-"))
    registry = work / "registry.json"
    write_registry(registry, load_inline(["rutracker.org", "149.154.167.99"], "bench"))
    config = work / "controller.json"
    config.write_text(json.dumps({
        "tspus": [{"name": "bench", "dpid": 1, "subscriber_port": 1, "upstream_port": 2,
                   "subscriber_if": "", "upstream_if": "", "profile": args.profile,
                   "registry_file": str(registry), "subscriber_nets": ["10.0.0.0/8"]}],
        "events_log": str(work / "events.jsonl"),
    }))  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (work / "controller.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tspulab.controllers.launcher", "--config", str(config),
         "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                switch = FakeSwitch(port)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("controller not listening")
        switch.send(HEADER.pack(4, ofp.OFPT_HELLO, 8, 1))
        if not switch.ready.wait(30):
            raise SystemExit(f"no barrier from the controller; see {work}/controller.log")
        hello = client_hello("yandex.ru")
        per_flow_ms, rates = [], []
        base_mods = switch.flow_mods
        print(f"profile {args.profile}, {args.flows} flows × {args.repeats} repeats, "
              f"{args.window} in flight, controller pid {proc.pid}, files in {work}")  # fmt: skip
        batches = [
            flows(args.flows, 1024 + (r * args.flows) % 60000, hello, args.divert_all)
            for r in range(args.repeats)
        ]
        print("sending", flush=True)
        for r, batch in enumerate(batches):
            target = base_mods + 2 * args.flows
            cpu0, t0 = cpu_s(proc.pid), time.perf_counter()
            for i, msgs in enumerate(batch):
                if i >= args.window:
                    switch.wait_flow_mods(base_mods + 2 * (i - args.window + 1))
                switch.send(b"".join(msgs))
            switch.wait_flow_mods(target)
            wall, cpu = time.perf_counter() - t0, cpu_s(proc.pid) - cpu0
            base_mods = switch.flow_mods
            per_flow_ms.append(cpu / args.flows * 1000)
            rates.append(args.flows / wall)
            print(f"repeat {r + 1}: {per_flow_ms[-1]:.3f} ms CPU per judged flow, "
                  f"{rates[-1]:.0f} flows/s", flush=True)  # fmt: skip
        time.sleep(0.5)  # the event log's last batch
        verdicts = sum(
            1 for line in (work / "events.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == "verdict"
        )  # fmt: skip
        print(f"controller CPU per judged flow (ms, min / median / max): "
              f"{spread(per_flow_ms, '{:.3f}')}; flows/s {spread(rates, '{:.0f}')}; "
              f"verdicts logged {verdicts}; packet-outs {switch.packet_outs}")  # fmt: skip
        print(f"one core's worth: {1000 / statistics.median(per_flow_ms):.0f} judged flows/s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
