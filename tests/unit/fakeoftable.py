"""An OpenFlow 1.3 switch model that consumes the bytes the controller sends (FAUCET's FakeOFTable).

`FakeOFTable.apply(messages)` serialises each message exactly as os-ken would put it on the wire
and parses the bytes back with os-ken's parser (`OFPFlowMod.parser`, `OFPMatch.parser`,
`OFPInstruction.parser`, `OFPAction.parser`, `OFPMeterBandHeader.parser`), so a test sees what a
switch would receive, not the objects the controller meant. Then it applies OpenFlow 1.3
semantics:

- flow-mods: add (an entry with the same table, priority and match is replaced), delete
  (non-strict: every entry at least as specific, cookie under its mask) and delete-strict; match
  prerequisites (an IPv4 address needs eth_type 0x0800, a TCP port ip_proto 6, ...), goto only to
  a later table, a meter instruction only to an existing meter: otherwise the message is refused
  and recorded in `errors`, as OVS answers with an OFPT_ERROR;
- meter-mods: add (an existing id is an error), delete (one or all; flows using a deleted meter
  go with it, as in OVS);
- packet-outs: recorded with their output ports (OFPP_IN_PORT resolved);
- lookup: from table 0, the highest-priority entry whose every field matches under its mask;
  instructions meter → apply-actions → goto; **a table without a matching entry drops** (the
  table-miss of OpenFlow 1.3), unless an entry says otherwise.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tspulab.controllers.ofmsgs import CODEC, to_bytes
from tspulab.dpi.packet import decode

N_TABLES = 4

# Which fields a match field needs before it (OpenFlow 1.3 §7.2.3.6, Table 12).
_PREREQ: dict[str, tuple[str, Iterable[int]]] = {
    "ipv4_src": ("eth_type", (0x0800,)),
    "ipv4_dst": ("eth_type", (0x0800,)),
    "ipv6_src": ("eth_type", (0x86DD,)),
    "ipv6_dst": ("eth_type", (0x86DD,)),
    "ip_proto": ("eth_type", (0x0800, 0x86DD)),
    "tcp_src": ("ip_proto", (6,)),
    "tcp_dst": ("ip_proto", (6,)),
    "tcp_flags": ("ip_proto", (6,)),
    "udp_src": ("ip_proto", (17,)),
    "udp_dst": ("ip_proto", (17,)),
}


@dataclass(frozen=True)
class Pkt:
    """The header fields the TSPU pipeline can match on."""

    in_port: int
    src: str
    dst: str
    proto: int = 6
    sport: int = 40000
    dport: int = 443
    tcp_flags: int = 0x018  # PSH|ACK: a packet in the middle of a connection

    @property
    def eth_type(self) -> int:
        return 0x0800 if ipaddress.ip_address(self.src).version == 4 else 0x86DD

    @classmethod
    def from_frame(cls, frame: bytes, in_port: int) -> Pkt:
        p = decode(frame)
        return cls(
            in_port, str(ipaddress.ip_address(p.src)), str(ipaddress.ip_address(p.dst)),
            p.proto, p.sport, p.dport, p.tcp_flags,
        )  # fmt: skip

    def field(self, name: str) -> int | None:
        """The packet's value of a match field as an int, None when it has none."""
        v4 = self.eth_type == 0x0800
        l4 = {6: "tcp", 17: "udp"}.get(self.proto)
        if name == "in_port":
            return self.in_port
        if name == "eth_type":
            return self.eth_type
        if name == "ip_proto":
            return self.proto
        if name in ("ipv4_src", "ipv6_src", "ipv4_dst", "ipv6_dst"):
            if name.startswith("ipv4") != v4:
                return None
            return int(ipaddress.ip_address(self.src if name.endswith("src") else self.dst))
        if name in ("tcp_src", "tcp_dst", "udp_src", "udp_dst"):
            if name[:3] != l4:
                return None
            return self.sport if name.endswith("src") else self.dport
        if name == "tcp_flags":
            return self.tcp_flags if self.proto == 6 else None
        raise KeyError(f"the model does not know match field {name!r}")


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(ipaddress.ip_address(value))
    return int(value)


@dataclass
class Entry:
    table_id: int
    priority: int
    match: dict[str, tuple[int, int | None]]
    instructions: list[Any]
    cookie: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    n_packets: int = 0

    def matches(self, pkt: Pkt) -> bool:
        for name, (value, mask) in self.match.items():
            have = pkt.field(name)
            if have is None:
                return False
            if mask is None and have != value:
                return False
            if mask is not None and have & mask != value & mask:
                return False
        return True

    def covers(self, other: dict[str, tuple[int, int | None]]) -> bool:
        """Every field of `other` (a delete's match) is in this entry, as or more specific."""
        return all(self.match.get(k) == v for k, v in other.items())

    def output_ports(self) -> list[int]:
        return [
            a.port
            for i in self.instructions
            if i.type == ofp.OFPIT_APPLY_ACTIONS
            for a in i.actions
            if a.type == ofp.OFPAT_OUTPUT
        ]

    def meter_ids(self) -> list[int]:
        return [i.meter_id for i in self.instructions if i.type == ofp.OFPIT_METER]


@dataclass
class Outcome:
    """What happened to one packet."""

    ports: list[int] = field(default_factory=list)
    meters: list[int] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        return not self.ports

    @property
    def to_controller(self) -> bool:
        return ofp.OFPP_CONTROLLER in self.ports


@dataclass(frozen=True)
class PacketOut:
    data: bytes
    in_port: int
    ports: tuple[int, ...]


class FakeOFTable:
    def __init__(self, n_tables: int = N_TABLES) -> None:
        self.n_tables = n_tables
        self.entries: list[Entry] = []
        self.meters: dict[int, list[Any]] = {}
        self.packet_outs: list[PacketOut] = []
        self.errors: list[str] = []
        self.barriers = 0

    # --- messages in --------------------------------------------------------------------------

    def apply(self, messages: Iterable[Any]) -> FakeOFTable:
        """Apply messages (os-ken objects as the controller returns them; other items are
        skipped) in order, through their wire bytes."""
        for msg in messages:
            if not hasattr(msg, "serialize"):
                continue
            self.apply_bytes(to_bytes(msg))
        return self

    def apply_bytes(self, raw: bytes) -> None:
        version, msg_type, msg_len, xid = struct.unpack_from("!BBHI", raw)
        assert version == ofp.OFP_VERSION and msg_len == len(raw), "malformed OpenFlow header"
        if msg_type == ofp.OFPT_FLOW_MOD:
            self._flow_mod(parser.OFPFlowMod.parser(CODEC, version, msg_type, msg_len, xid, raw))
        elif msg_type == ofp.OFPT_METER_MOD:
            self._meter_mod(raw)
        elif msg_type == ofp.OFPT_PACKET_OUT:
            self._packet_out(raw)
        elif msg_type == ofp.OFPT_BARRIER_REQUEST:
            self.barriers += 1
        else:
            raise AssertionError(f"the model does not handle message type {msg_type}")

    def _flow_mod(self, mod: Any) -> None:
        match = {k: _field(v) for k, v in mod.match.items()}
        if mod.command == ofp.OFPFC_ADD:
            error = self._check(mod, match)
            if error:
                self.errors.append(error)
                return
            self.entries = [
                e for e in self.entries
                if not (e.table_id == mod.table_id and e.priority == mod.priority
                        and e.match == match)
            ]  # fmt: skip
            self.entries.append(
                Entry(
                    mod.table_id,
                    mod.priority,
                    match,
                    list(mod.instructions),
                    mod.cookie,
                    mod.idle_timeout,
                    mod.hard_timeout,
                    mod.flags,
                )
            )
        elif mod.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            strict = mod.command == ofp.OFPFC_DELETE_STRICT

            def goes(e: Entry) -> bool:
                if mod.table_id != ofp.OFPTT_ALL and e.table_id != mod.table_id:
                    return False
                if mod.cookie_mask and (e.cookie & mod.cookie_mask) != (
                    mod.cookie & mod.cookie_mask
                ):
                    return False
                if strict:
                    return e.priority == mod.priority and e.match == match
                return e.covers(match)

            self.entries = [e for e in self.entries if not goes(e)]
        else:
            raise AssertionError(f"the model does not handle flow-mod command {mod.command}")

    def _check(self, mod: Any, match: dict[str, tuple[int, int | None]]) -> str | None:
        if not 0 <= mod.table_id < self.n_tables:
            return f"bad table id {mod.table_id}"
        for name in match:
            need = _PREREQ.get(name)
            if need is not None and (need[0] not in match or match[need[0]][0] not in need[1]):
                return f"bad prerequisite: {name} without {need[0]} in {sorted(need[1])}"
        for inst in mod.instructions:
            if inst.type == ofp.OFPIT_GOTO_TABLE and not (
                mod.table_id < inst.table_id < self.n_tables
            ):
                return f"bad goto from table {mod.table_id} to {inst.table_id}"
            if inst.type == ofp.OFPIT_METER and inst.meter_id not in self.meters:
                return f"unknown meter {inst.meter_id}"
        return None

    def _meter_mod(self, raw: bytes) -> None:
        command, _flags, meter_id = struct.unpack_from(
            ofp.OFP_METER_MOD_PACK_STR, raw, ofp.OFP_HEADER_SIZE
        )
        bands, offset = [], ofp.OFP_METER_MOD_SIZE
        while offset < len(raw):
            band = parser.OFPMeterBandHeader.parser(raw, offset)
            bands.append(band)
            offset += band.len
        if command == ofp.OFPMC_ADD:
            if meter_id in self.meters:
                self.errors.append(f"meter {meter_id} exists")
                return
            self.meters[meter_id] = bands
        elif command == ofp.OFPMC_DELETE:
            gone = set(self.meters) if meter_id == ofp.OFPM_ALL else {meter_id} & set(self.meters)
            for m in gone:
                del self.meters[m]
            # a flow that uses a deleted meter is deleted with it
            self.entries = [e for e in self.entries if not gone & set(e.meter_ids())]
        else:
            raise AssertionError(f"the model does not handle meter command {command}")

    def _packet_out(self, raw: bytes) -> None:
        _buffer, in_port, actions_len = struct.unpack_from(
            ofp.OFP_PACKET_OUT_PACK_STR, raw, ofp.OFP_HEADER_SIZE
        )
        offset, end, ports = ofp.OFP_PACKET_OUT_SIZE, ofp.OFP_PACKET_OUT_SIZE + actions_len, []
        while offset < end:
            action = parser.OFPAction.parser(raw, offset)
            offset += action.len
            if action.type == ofp.OFPAT_OUTPUT:
                ports.append(in_port if action.port == ofp.OFPP_IN_PORT else action.port)
        self.packet_outs.append(PacketOut(raw[end:], in_port, tuple(ports)))

    # --- packets through the pipeline ----------------------------------------------------------

    def process(self, pkt: Pkt) -> Outcome:
        out = Outcome()
        table_id: int | None = 0
        while table_id is not None:
            candidates = [e for e in self.entries if e.table_id == table_id and e.matches(pkt)]
            if not candidates:
                return out  # OpenFlow 1.3 table miss: drop
            entry = max(candidates, key=lambda e: e.priority)
            entry.n_packets += 1
            out.entries.append(entry)
            table_id = None
            for inst in entry.instructions:
                if inst.type == ofp.OFPIT_METER:
                    out.meters.append(inst.meter_id)
                elif inst.type == ofp.OFPIT_APPLY_ACTIONS:
                    out.ports += [a.port for a in inst.actions if a.type == ofp.OFPAT_OUTPUT]
                elif inst.type == ofp.OFPIT_GOTO_TABLE:
                    table_id = inst.table_id
        return out

    def outputs(self, pkt: Pkt) -> list[int]:
        """Ports the packet leaves on (the controller port included); [] means dropped."""
        return self.process(pkt).ports

    def table(self, table_id: int) -> list[Entry]:
        return [e for e in self.entries if e.table_id == table_id]

    def cookies(self, cookie: int) -> list[Entry]:
        return [e for e in self.entries if e.cookie == cookie]


def _field(value: Any) -> tuple[int, int | None]:
    if isinstance(value, tuple):
        return _int(value[0]), _int(value[1])
    return _int(value), None
