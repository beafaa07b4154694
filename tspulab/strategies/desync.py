"""What the packet strategies do to a client's first data packet: the pure part of the rewriter.

``Desync.on_packet(raw)`` takes one outgoing IPv4 packet and returns a ``Rewrite``: packets to
send before it (fakes) and what goes out in its place (``None``: the packet itself, unchanged).
rewriter.py runs it on an NFQUEUE; the unit tests run it on packets they build with scapy.

Per flow (5-tuple), only the *first data packet* is touched (the ClientHello, or a QUIC Initial):
fakes go out once, before it; with ``ipfrag`` it and each of its retransmissions (the same
sequence number) go out as fragments. Every other packet passes unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dpkt

from tspulab.strategies import hello, wire
from tspulab.strategies.shaping import resolve
from tspulab.strategies.spec import Step

FlowKey = tuple[bytes, int, bytes, int, int]


@dataclass(frozen=True, slots=True)
class Rewrite:
    before: tuple[bytes, ...] = ()
    instead: tuple[bytes, ...] | None = None
    note: str = ""


PASS = Rewrite()


@dataclass(slots=True)
class _Flow:
    first_seq: int | None = None
    first_len: int = 0


def fake_payload(step: Step, real_payload: bytes, rand: Callable[[int], bytes]) -> bytes:
    data = step["data"]
    length = step.num("len")
    if data == "hello":
        # The real ClientHello with the decoy name (the same fingerprint), else a made-up one.
        try:
            return hello.with_host_name(real_payload, step.word("sni"))
        except hello.NotAClientHello:
            return hello.build_client_hello(step.word("sni"))
    if data == "zero":
        return bytes(length)
    if data == "short":
        # QUIC short header (RFC 9000 §17.3.1): header form 0, fixed bit 1.
        body = rand(length)
        return bytes([0x40 | (body[0] & 0x3F)]) + body[1:]
    return rand(length)


def fragment_cut(step: Step, l4_header: int, payload: bytes) -> tuple[int, str]:
    """Where ``ipfrag`` cuts, in bytes of the IP payload, rounded down to 8."""
    at = resolve(step.position(), step.num("off"), len(payload), hello.sni_middle(payload))
    note = ""
    if at is None:
        at = len(payload) // 2
        note = f"{step.text()}: no host name in the payload, cut in its middle"
    cut = (l4_header + at) // 8 * 8
    cut = max(cut, 8)
    if cut - step.num("overlap") <= 0:
        cut = step.num("overlap") + 8
    return cut, note


@dataclass
class Desync:
    steps: Sequence[Step]
    rand: Callable[[int], bytes] = os.urandom
    flows: dict[FlowKey, _Flow] = field(default_factory=dict)

    def on_packet(self, raw: bytes) -> Rewrite:
        try:
            ip = wire.parse(raw)
        except (ValueError, dpkt.UnpackError):
            return PASS
        l4 = ip.data
        if isinstance(l4, dpkt.tcp.TCP):
            proto, payload = 6, bytes(l4.data)
            header_len = l4.off * 4
        elif isinstance(l4, dpkt.udp.UDP):
            proto, payload = 17, bytes(l4.data)
            header_len = 8
        else:
            return PASS
        if not payload or ip.mf or ip.offset:
            return PASS
        key = (ip.src, l4.sport, ip.dst, l4.dport, proto)
        flow = self.flows.setdefault(key, _Flow())
        seq = l4.seq if proto == 6 else 0
        if flow.first_seq is None:
            flow.first_seq, flow.first_len = seq, len(payload)
            first = True
        elif proto == 6 and seq == flow.first_seq and len(payload) == flow.first_len:
            first = False  # a retransmission of the first data packet: fragments again
        else:
            return PASS
        applicable = [s for s in self.steps if s.definition.transport in ("any", _NAME[proto])]
        before: list[bytes] = []
        notes: list[str] = []
        if first:
            for step in applicable:
                if step.name in ("fake", "udpfake"):
                    before += self._fakes(step, raw, payload)
        instead: tuple[bytes, ...] | None = None
        for step in applicable:
            if step.name == "ipfrag":
                cut, note = fragment_cut(step, header_len, payload)
                if note:
                    notes.append(note)
                instead = tuple(
                    wire.fragments(raw, cut, order=step.word("order"),
                                   overlap=step.num("overlap"))
                )  # fmt: skip
        return Rewrite(tuple(before), instead, "; ".join(notes))

    def _fakes(self, step: Step, raw: bytes, payload: bytes) -> list[bytes]:
        out = []
        for _ in range(step.num("repeats")):
            data = fake_payload(step, payload, self.rand)
            ttl = step["ttl"]
            out.append(
                wire.fake_of(
                    raw,
                    data,
                    ttl=ttl if isinstance(ttl, int) else None,
                    badsum=bool(step.params.get("badsum", False)),
                    badseq=bool(step.params.get("badseq", False)),
                    md5=bool(step.params.get("md5", False)),
                    same_ipid=step.params.get("ipid") == "same",
                )
            )
        return out


_NAME = {6: "tcp", 17: "udp"}
