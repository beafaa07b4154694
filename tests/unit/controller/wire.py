"""Test-only: a TSPU box wired to the OpenFlow 1.3 switch model, and TCP connections through it.

`Wire.send(frame, in_port)` does what the real pair does: the switch model looks the frame up;
if a rule sends it to the controller, the box gets the packet-in (with that rule's cookie) and
its answer (flow-mods, meter-mods, packet-outs) is applied to the switch model as wire bytes.
The result says where the frame went: out of the switch, through a packet-out, or nowhere.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from tests.unit.fakeoftable import FakeOFTable, PacketOut, Pkt
from tspulab.controllers.config import TspuConfig, write_registry
from tspulab.controllers.enforcement import LossAdd, LossRemove
from tspulab.controllers.pipeline import CONTROLLER_PORT, TspuPorts
from tspulab.controllers.switch_events import Event, PacketIn, SwitchUp
from tspulab.controllers.tspu_box import TspuBox
from tspulab.dpi.registry import load_inline

SUB_PORT, UP_PORT = 1, 2
PORTS = TspuPorts(subscriber=SUB_PORT, upstream=UP_PORT)
CLIENT, SERVER = "10.0.0.2", "93.184.216.34"
TSPU_2022_SETS = {"sni-ii": ("twitter.com",), "sni-i": ("instagram.com",)}


def config(
    tmp: Path,
    profile: str | None = "tspu-2022",
    registry: tuple[str, ...] = ("149.154.167.99", "rutracker.org"),
    sets: dict[str, tuple[str, ...]] | None = None,
    dpid: int = 1,
) -> TspuConfig:
    path = tmp / f"registry-{dpid}.json"
    write_registry(path, load_inline(list(registry), "test-registry"))
    return TspuConfig(
        dpid=dpid, ports=PORTS, registry_prefixes=(), profile=profile, registry_file=path,
        subscriber_nets=(ipaddress.ip_network("10.0.0.0/8"),),
        profile_sets=sets if sets is not None else (TSPU_2022_SETS if profile == "tspu-2022" else {}),
        name=f"isp{dpid}",
    )  # fmt: skip


@dataclass(frozen=True)
class Out:
    """A packet-out the box caused: its data is the frame itself, or not (a RST)."""

    out: PacketOut
    data_is_frame: bool

    @property
    def ports(self) -> tuple[int, ...]:
        return self.out.ports

    @property
    def data(self) -> bytes:
        return self.out.data


@dataclass
class Passage:
    """Where one frame went."""

    switch_ports: list[int]
    climbed: bool
    packet_outs: list[Out]
    box_output: list[Any]

    @property
    def delivered(self) -> list[int]:
        """Ports the frame itself (unchanged) left on, by the switch or a packet-out."""
        return self.switch_ports + [p for o in self.packet_outs for p in o.ports if o.data_is_frame]


@dataclass
class Wire:
    box: TspuBox
    switch: FakeOFTable = field(default_factory=FakeOFTable)
    now: float = 0.0
    logged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    loss_work: list[LossAdd | LossRemove] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.box.log = lambda event, **fields: self.logged.append(
            (event, json.loads(json.dumps(fields)))
        )

    def handle(self, event: Event) -> list[Any]:
        out = self.box.handle(self.now, event)
        self.switch.apply(out)
        self.loss_work += [o for o in out if isinstance(o, LossAdd | LossRemove)]
        return out

    def connect(self) -> list[Any]:
        out = self.handle(SwitchUp())
        assert self.switch.errors == [], self.switch.errors
        return out

    def send(self, frame: bytes, in_port: int) -> Passage:
        outcome = self.switch.process(Pkt.from_frame(frame, in_port))
        ports = [p for p in outcome.ports if p != CONTROLLER_PORT]
        if not outcome.to_controller:
            return Passage(ports, False, [], [])
        before = len(self.switch.packet_outs)
        # a packet-in carries the cookie of the rule that sent it up (OpenFlow 1.3 §7.4.1)
        cookie = next(e.cookie for e in outcome.entries if CONTROLLER_PORT in e.output_ports())
        out = self.handle(PacketIn(frame, in_port, len(frame), cookie))
        assert self.switch.errors == [], self.switch.errors
        outs = [Out(o, o.data == frame) for o in self.switch.packet_outs[before:]]
        return Passage(ports, True, outs, out)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for e, f in self.logged if e == name]


@dataclass
class Conn:
    """A TCP (or UDP) connection from a subscriber through the TSPU, with real sequence numbers."""

    wire: Wire
    client: str = CLIENT
    server: str = SERVER
    sport: int = 40000
    dport: int = 443
    seq: list[int] = field(default_factory=lambda: [1000, 5000])

    def tcp(self, flags: str = "PA", payload: bytes = b"", from_client: bool = True) -> Passage:
        side = 0 if from_client else 1
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        sp, dp = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        ack = self.seq[1 - side] if "A" in flags else 0
        frame = bytes(
            Ether(src="02:00:00:00:00:01" if from_client else "02:00:00:00:00:02",
                  dst="02:00:00:00:00:02" if from_client else "02:00:00:00:00:01")
            / IP(src=src, dst=dst)
            / TCP(sport=sp, dport=dp, seq=self.seq[side], ack=ack, flags=flags)
            / payload
        )  # fmt: skip
        self.seq[side] += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        return self.wire.send(frame, SUB_PORT if from_client else UP_PORT)

    def udp(self, payload: bytes, from_client: bool = True) -> Passage:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        sp, dp = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        frame = bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / payload)
        return self.wire.send(frame, SUB_PORT if from_client else UP_PORT)

    def handshake(self) -> list[Passage]:
        return [self.tcp("S"), self.tcp("SA", from_client=False), self.tcp("A")]
