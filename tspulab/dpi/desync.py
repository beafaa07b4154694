"""Desync detection: fake packets on a TCP flow that the client's own stack would not send.

The fakes of zapret, GoodbyeDPI and ByeDPI (a decoy ClientHello or random bytes before the real
data, kept from the server by a low TTL, a bad checksum, a bad sequence number or an MD5 option;
tspu-behaviour.md §6) leave marks a box in the path can read:

- **ttl**: a low-TTL fake reaches the box with a TTL the flow's other packets do not have. A
  stack sends one TTL per socket and the path does not change inside a handshake, so any client
  packet whose TTL differs from the flow's first one (the SYN, as seen at the box) is suspect.
- **ipid**: a connected Linux socket counts its IPv4 IDs up by one per packet (by the segment
  count under GSO). A fake either repeats the real packet's ID (zapret's default; §6: matching
  non-zero IP IDs on fake and real packets *trigger* blocking on googlevideo ranges [R]) or
  carries another one far from the sequence (tspulab's own fakes flip the top bit). So a
  non-zero ID seen before on the flow, or more than ``IPID_WINDOW`` ahead of the last one, is
  suspect. IPv6 has no ID; later IP fragments share their first fragment's and are skipped.

What the box then does is the profile's ``desync`` section (profile.Desync): ``drop-flow`` (a
final drop of the flow) or ``block-client`` (that, and every new flow from the subscriber to the
same server address dropped for ``block_s``, time-scaled). Sources: users report the TSPU
detecting desync fakes and then blocking the whole flow or host in 2025-2026 (§10.2: zapret
#2002, youtubeUnblock #356) **[A]**; which signal the box reads, and for how long it blocks, no
source measures, so both are choices of the profile, documented in docs/profiles.md.

Only the packets the box inspects are checked (a final verdict hands the flow to the switch),
client to server, on flows a subscriber opened. Memory: three numbers and the IDs seen per flow
under inspection (bounded by the inspection budget), and at most ``MAX_BLOCKS`` client blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tspulab.dpi.flow import FlowState
from tspulab.dpi.packet import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_OPENBSD,
    PROTO_TCP,
    TCP_RST,
    Packet,
)
from tspulab.dpi.policy import text
from tspulab.dpi.profile import Desync
from tspulab.dpi.verdict import Drop

RULE = "desync"
"""The rule id desync verdicts carry (a profile's rules may not use it)."""
IPID_WINDOW = 64
"""How far ahead of the flow's last IP ID the next may be before it is out of sequence."""
MAX_IDS_KEPT = 64
MAX_BLOCKS = 65_536
_VLAN_TAGS = (b"\x81\x00", b"\x88\xa8")
_FIXED_OFFSETS = {
    LINKTYPE_RAW: 0, LINKTYPE_RAW_OPENBSD: 0, LINKTYPE_IPV4: 0, LINKTYPE_NULL: 4,
    LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20,
}  # fmt: skip


def ipv4_ident(frame: bytes, linktype: int, pkt: Packet) -> int:
    """The IP ID of ``pkt``'s IPv4 header in ``frame`` (the packet decoded from it), or -1 (IPv6,
    a tunnel, a link type whose header length is not fixed). The header is checked to carry the
    packet's own addresses, so a wrong offset gives -1, never another field."""
    if pkt.ip_version != 4 or pkt.tunnel:
        return -1
    if linktype == LINKTYPE_ETHERNET:
        offset = 14
        while frame[offset - 2 : offset] in _VLAN_TAGS:
            offset += 4
    else:
        found = _FIXED_OFFSETS.get(linktype)
        if found is None:
            return -1
        offset = found
    header = frame[offset : offset + 20]
    if len(header) < 20 or header[0] >> 4 != 4 or header[12:16] != pkt.src:
        return -1
    if header[16:20] != pkt.dst:
        return -1
    return int.from_bytes(header[4:6])


@dataclass(slots=True)
class FlowMarks:
    """What the detector remembers of one flow's client packets."""

    ttl: int
    last_ident: int
    idents: set[int] = field(default_factory=set)


class DesyncDetector:
    """The profile's ``desync`` section at work on one engine's flows."""

    def __init__(self, spec: Desync, time_scale: float = 1.0) -> None:
        self.signals = frozenset(spec.signals.value)
        self.action = spec.action.value
        self.source = spec.signals.source
        self.block_s = (spec.block_s.value if spec.block_s is not None else 0.0) * time_scale
        self.blocks: dict[tuple[bytes, bytes], float] = {}
        """(client, server) -> until: the subscriber's new flows to the server are dropped."""

    def judge(
        self, flow: FlowState, marks: FlowMarks | None, pkt: Packet, ident: int, now: float
    ) -> tuple[Drop | None, FlowMarks | None]:
        """A final drop when ``pkt`` is a fake (or its client is blocked from the server), and the
        flow's marks after it. ``ident`` is the packet's IPv4 ID (-1: none)."""
        if flow.proto != PROTO_TCP or not flow.initiated_inside:
            return None, marks
        blocked = self._blocked(flow, now)
        if blocked is not None:
            return blocked, marks
        if not flow.from_client or pkt.frag_offset:
            return None, marks
        if marks is None:
            first = FlowMarks(pkt.ttl, ident, {ident} if ident > 0 else set())
            return None, first
        why = self._mismatch(marks, pkt, ident)
        if why is None:
            if ident >= 0 and not pkt.tcp_flags & TCP_RST:
                marks.last_ident = ident
                if ident and len(marks.idents) < MAX_IDS_KEPT:
                    marks.idents.add(ident)
            return None, marks
        return self._caught(flow, why, now), marks

    def _mismatch(self, marks: FlowMarks, pkt: Packet, ident: int) -> str | None:
        if "ttl" in self.signals and pkt.ttl != marks.ttl:
            return f"a packet with TTL {pkt.ttl} on a flow whose packets arrive with {marks.ttl}"
        if "ipid" not in self.signals or ident <= 0 or pkt.tcp_flags & TCP_RST:
            return None  # a stack's own RSTs may come from another socket, with another ID
        if ident in marks.idents:
            return f"IP ID {ident} repeated on the flow"
        if marks.last_ident > 0 and (ident - marks.last_ident) % 65536 > IPID_WINDOW:
            return f"IP ID {ident} out of the flow's sequence (last {marks.last_ident})"
        return None

    def _caught(self, flow: FlowState, why: str, now: float) -> Drop:
        reason = f"desync fake detected: {why} ({self.source})"
        if self.action != "block-client":
            return Drop(True, reason + ": the flow is dropped", RULE)
        if len(self.blocks) >= MAX_BLOCKS:
            self.blocks = {k: u for k, u in self.blocks.items() if u > now}
            while len(self.blocks) >= MAX_BLOCKS:  # still full: the oldest block goes
                del self.blocks[next(iter(self.blocks))]
        self.blocks[(flow.client_addr, flow.server_addr)] = now + self.block_s
        return Drop(
            True,
            f"{reason}: {text(flow.client_addr)} blocked from {text(flow.server_addr)} "
            f"for {self.block_s:g} s",
            RULE, scope="client-host", hard_timeout_s=self.block_s,
        )  # fmt: skip

    def _blocked(self, flow: FlowState, now: float) -> Drop | None:
        if not self.blocks:
            return None
        key = (flow.client_addr, flow.server_addr)
        until = self.blocks.get(key)
        if until is None:
            return None
        if until <= now:
            del self.blocks[key]
            return None
        return Drop(
            True,
            f"desync block ({self.source}): {text(flow.client_addr)} -> "
            f"{text(flow.server_addr)} until t={until:g}",
            RULE, scope="client-host", hard_timeout_s=until - now,
        )  # fmt: skip
