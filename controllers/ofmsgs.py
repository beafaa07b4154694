"""Pure `FlowRule` / `MeterSpec` descriptions to OpenFlow 1.3 messages, built without a switch.

Every function returns an os-ken message object whose `datapath` is None (FAUCET's valve_of
habit): the app sets the datapath in the one place it sends, and tests serialise the same object
(`to_bytes`) and feed the bytes to a fake flow table.

Flow-mods are the controller's hot path (two per judged flow): os-ken's `OFPMatch(**fields)`
costs ~70 µs a call here, more than the DPI engine spends on a packet. `flow_mod` therefore packs
the OXM fields the pipeline uses with prebuilt struct templates (a few µs) into a `Prebuilt`
message; any other field falls back to os-ken's own `OFPMatch`. `tests/unit/controller` checks
the bytes are identical to os-ken's (`reference_flow_mod`) for every rule kind.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from types import SimpleNamespace
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from os_ken.ofproto.ofproto_parser import MsgBase

from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    FlowRule,
    GotoTable,
    MatchValue,
    Meter,
    MeterSpec,
    Output,
    table,
)

#: what os-ken's serialisers read from a datapath: the protocol modules, nothing else.
CODEC = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=None)

_COMMANDS = {"add": ofp.OFPFC_ADD, "delete": ofp.OFPFC_DELETE_STRICT}
_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct(ofp.OFP_FLOW_MOD_PACK_STR0)
_OXM_CLASS = ofp.OFPXMC_OPENFLOW_BASIC

# name -> (OXM field number, struct format of the value); the fields the pipeline matches on.
_OXM_FIELDS: dict[str, tuple[int, str]] = {
    "in_port": (ofp.OXM_OF_IN_PORT >> 9 & 0x7F, "I"),
    "eth_type": (ofp.OXM_OF_ETH_TYPE >> 9 & 0x7F, "H"),
    "ip_proto": (ofp.OXM_OF_IP_PROTO >> 9 & 0x7F, "B"),
    "ipv4_src": (ofp.OXM_OF_IPV4_SRC >> 9 & 0x7F, "4s"),
    "ipv4_dst": (ofp.OXM_OF_IPV4_DST >> 9 & 0x7F, "4s"),
    "tcp_src": (ofp.OXM_OF_TCP_SRC >> 9 & 0x7F, "H"),
    "tcp_dst": (ofp.OXM_OF_TCP_DST >> 9 & 0x7F, "H"),
    "udp_src": (ofp.OXM_OF_UDP_SRC >> 9 & 0x7F, "H"),
    "udp_dst": (ofp.OXM_OF_UDP_DST >> 9 & 0x7F, "H"),
    "ipv6_src": (ofp.OXM_OF_IPV6_SRC >> 9 & 0x7F, "16s"),
    "ipv6_dst": (ofp.OXM_OF_IPV6_DST >> 9 & 0x7F, "16s"),
}


class Prebuilt(MsgBase):  # type: ignore[misc]
    """An OpenFlow message whose body was packed without os-ken's object model; serialising it
    only writes the header (version, type, length, xid), as `Datapath.send_msg` expects."""

    def __init__(self, msg_type: int, body: bytes) -> None:
        super().__init__(None)
        self.cls_msg_type = msg_type
        self.body = body

    def serialize(self) -> None:
        self.version = ofp.OFP_VERSION
        self.msg_type = self.cls_msg_type
        xid: int = getattr(self, "xid", None) or 0
        self.xid = xid
        self.msg_len = _HEADER.size + len(self.body)
        self.buf = _HEADER.pack(self.version, self.msg_type, self.msg_len, xid) + self.body


def to_bytes(msg: Any) -> bytes:
    """Serialise a message built here (tests, the fake flow table)."""
    if msg.datapath is None:
        msg.datapath = CODEC
    msg.serialize()
    return bytes(msg.buf)


# --- flow-mods --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _packed_addr(text: str, size: int) -> bytes:
    return ipaddress.ip_address(text).packed if size else b""


def _oxm_spec(number: int, fmt: str) -> tuple[int, int, struct.Struct, bytes, bytes]:
    """(number, address size or 0, value struct, exact header, masked header)."""
    size = int(fmt[:-1]) if fmt.endswith("s") else 0
    value = struct.Struct("!" + fmt)
    head = (_OXM_CLASS << 16) | (number << 9)
    return (
        number, size, value,
        struct.pack("!I", head | value.size), struct.pack("!I", head | 1 << 8 | 2 * value.size),
    )  # fmt: skip


_OXM_SPECS = {name: _oxm_spec(number, fmt) for name, (number, fmt) in _OXM_FIELDS.items()}


def _oxm(name: str, value: MatchValue) -> tuple[int, bytes] | None:
    spec = _OXM_SPECS.get(name)
    if spec is None:
        return None
    number, size, packer, exact, masked = spec
    if isinstance(value, tuple):
        if size:
            return number, masked + _packed_addr(str(value[0]), size) + _packed_addr(
                str(value[1]), size
            )
        return number, masked + packer.pack(value[0]) + packer.pack(value[1])
    if size:
        return number, exact + _packed_addr(str(value), size)
    return number, exact + packer.pack(value)


def _match_bytes(match: tuple[tuple[str, MatchValue], ...]) -> bytes:
    fields = []
    for name, value in match:
        packed = _oxm(name, value)
        if packed is None:  # a field the templates do not know: os-ken's own serialiser
            return _reference_match_bytes(match)
        fields.append(packed)
    fields.sort(key=lambda f: f[0])  # os-ken's order: by OXM field number
    oxm = b"".join(f[1] for f in fields)
    length = 4 + len(oxm)
    return struct.pack("!HH", ofp.OFPMT_OXM, length) + oxm + bytes(-length % 8)


def _reference_match_bytes(match: tuple[tuple[str, MatchValue], ...]) -> bytes:
    buf = bytearray()
    length = parser.OFPMatch(**dict(match)).serialize(buf, 0)
    return bytes(buf[: length + (-length % 8)])


@functools.lru_cache(maxsize=4096)
def _instructions(rule_table: str, actions: tuple[Any, ...]) -> bytes:
    out = b""
    for a in actions:
        if isinstance(a, Meter):
            out += struct.pack(ofp.OFP_INSTRUCTION_METER_PACK_STR, ofp.OFPIT_METER, 8, a.meter_id)
    outputs = [a for a in actions if isinstance(a, Output)]
    if outputs:
        acts = b"".join(
            struct.pack(
                ofp.OFP_ACTION_OUTPUT_PACK_STR,
                ofp.OFPAT_OUTPUT,
                ofp.OFP_ACTION_OUTPUT_SIZE,
                a.port,
                ofp.OFPCML_NO_BUFFER if a.port == CONTROLLER_PORT else 0,
            )
            for a in outputs
        )
        out += struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts
    gotos = [a for a in actions if isinstance(a, GotoTable)]
    if gotos:
        probe = FlowRule(rule_table, 0, (), (gotos[0],))
        target = probe.goto_table_id()
        assert target is not None
        out += struct.pack(ofp.OFP_INSTRUCTION_GOTO_TABLE_PACK_STR, ofp.OFPIT_GOTO_TABLE, 8, target)
    return out


def flow_mod(rule: FlowRule, command: str = "add") -> Prebuilt:
    """The OFPFlowMod adding (or strictly deleting) `rule`; no output or goto means drop."""
    fixed = _FLOW_MOD.pack(
        rule.cookie, 0, table(rule.table).table_id, _COMMANDS[command], rule.idle_timeout,
        rule.hard_timeout, rule.priority, ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY,
        ofp.OFPFF_SEND_FLOW_REM if rule.notify_removed else 0,
    )  # fmt: skip
    body = fixed + _match_bytes(rule.match)
    if command == "add":
        body += _instructions(rule.table, rule.actions)
    return Prebuilt(ofp.OFPT_FLOW_MOD, body)


def reference_flow_mod(rule: FlowRule, command: str = "add") -> Any:
    """`flow_mod` built with os-ken's object model (what the templates must equal, byte for
    byte; also the readable form in tests)."""
    inst: list[Any] = [
        parser.OFPInstructionMeter(a.meter_id, ofp.OFPIT_METER)
        for a in rule.actions
        if isinstance(a, Meter)
    ]
    actions = [
        parser.OFPActionOutput(a.port, ofp.OFPCML_NO_BUFFER if a.port == CONTROLLER_PORT else 0)
        for a in rule.actions
        if isinstance(a, Output)
    ]
    if actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    target = rule.goto_table_id()
    if target is not None:
        inst.append(parser.OFPInstructionGotoTable(target))
    return parser.OFPFlowMod(
        datapath=None,
        cookie=rule.cookie,
        table_id=table(rule.table).table_id,
        command=_COMMANDS[command],
        idle_timeout=rule.idle_timeout,
        hard_timeout=rule.hard_timeout,
        priority=rule.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        flags=ofp.OFPFF_SEND_FLOW_REM if rule.notify_removed else 0,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**rule.match_dict()),
        instructions=inst if command == "add" else [],
    )


def delete_all_flows() -> Any:
    """Remove every flow in every table (a fresh start when a switch connects)."""
    return parser.OFPFlowMod(
        datapath=None,
        table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


# --- meters, packet-outs, barriers --------------------------------------------------------------


def meter_mod(meter: MeterSpec, command: str = "add") -> Any:
    """A meter with a single drop band: a policer, as the 2021 Twitter throttler was."""
    commands = {"add": ofp.OFPMC_ADD, "delete": ofp.OFPMC_DELETE}
    bands = [parser.OFPMeterBandDrop(rate=meter.rate_kbps, burst_size=meter.burst_kbits)]
    return parser.OFPMeterMod(
        datapath=None,
        command=commands[command],
        flags=ofp.OFPMF_KBPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
        meter_id=meter.meter_id,
        bands=bands if command == "add" else [],
    )


def delete_all_meters() -> Any:
    return parser.OFPMeterMod(
        datapath=None, command=ofp.OFPMC_DELETE, flags=0, meter_id=ofp.OFPM_ALL, bands=[]
    )


_PACKET_OUT = struct.Struct(ofp.OFP_PACKET_OUT_PACK_STR)
_OUTPUT = struct.Struct(ofp.OFP_ACTION_OUTPUT_PACK_STR)


def packet_out(data: bytes, in_port: int, out_port: int) -> Prebuilt:
    """Send `data` out of `out_port` as if it came in on `in_port` (OFPP_IN_PORT when they are
    the same port: OpenFlow does not output a packet to its own in_port otherwise). Packed with
    struct like `flow_mod` (one per released packet); equal to `reference_packet_out`."""
    port = ofp.OFPP_IN_PORT if out_port == in_port else out_port
    action = _OUTPUT.pack(ofp.OFPAT_OUTPUT, ofp.OFP_ACTION_OUTPUT_SIZE, port, ofp.OFPCML_MAX)
    head = _PACKET_OUT.pack(ofp.OFP_NO_BUFFER, in_port, len(action))
    return Prebuilt(ofp.OFPT_PACKET_OUT, head + action + data)


def reference_packet_out(data: bytes, in_port: int, out_port: int) -> Any:
    """`packet_out` built with os-ken's object model."""
    port = ofp.OFPP_IN_PORT if out_port == in_port else out_port
    return parser.OFPPacketOut(
        datapath=None,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=in_port,
        actions=[parser.OFPActionOutput(port)],
        data=data,
    )


def barrier() -> Any:
    return parser.OFPBarrierRequest(None)
