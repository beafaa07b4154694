"""Enforcement: the ``Fate`` of one packet under its flow's verdict (engine.py calls it).

Per verdict type (verdict.py): ALLOW and DETECT forward; DROP drops; DROP_AFTER forwards the
``after_packets`` packets after the trigger, then drops; RESET injects RSTs in the trigger's place
(``inject``) or turns the next packet towards the reset side into one (``rewrite``, SNI-I);
POLICE runs a token bucket per direction; FREEZE_AFTER_BYTES drops server-to-client packets past
the byte count (once a RST, when the verdict says so); RANDOM_LOSS draws per packet from a
per-flow generator seeded by the profile's seed and the flow's key (a replay and a live run draw
alike); HOST_BLOCK forwards and records a block of the subscriber (policy.HostBlock) that later
flows meet in ``policy.evaluate``.
"""

from __future__ import annotations

import hashlib
import random

from tspulab.dpi.flow import FlowState
from tspulab.dpi.judgement import Judgement
from tspulab.dpi.packet import Packet
from tspulab.dpi.policy import HostBlock
from tspulab.dpi.verdict import (
    Allow,
    Detect,
    Drop,
    DropAfter,
    Fate,
    FreezeAfterBytes,
    Police,
    Reset,
    Verdict,
)
from tspulab.dpi.verdict import HostBlock as HostBlockVerdict

#: verdicts under which every packet passes (a tuple: `Allow | Detect` is rebuilt per call)
_PASSING = (Allow, Detect)


class Enforcer:
    """Applies verdicts to packets; holds the subscribers' host blocks it records."""

    def __init__(self, seed: int, host_blocks: dict[bytes, list[HostBlock]]) -> None:
        self.seed = seed
        self.host_blocks = host_blocks

    def fate(self, judged: Judgement, pkt: Packet, now: float) -> Fate:
        v = judged.verdict
        flow = judged.flow
        from_client = flow.from_client
        if not from_client and pkt.has_l4:
            judged.server_payload += len(pkt.payload)
        if isinstance(v, _PASSING):
            return Fate.FORWARD
        if isinstance(v, Drop):
            return Fate.DROP
        if isinstance(v, DropAfter):
            passed = flow.packets - judged.started_at_packets - 1  # packets after the trigger
            return Fate.FORWARD if passed <= v.after_packets else Fate.DROP
        if isinstance(v, Reset):
            return _reset(judged, v, from_client)
        if isinstance(v, HostBlockVerdict):
            self._host_block(judged, v, now)
            return Fate.FORWARD
        if isinstance(v, FreezeAfterBytes):
            frozen = not from_client and judged.server_payload > v.freeze_bytes
            if frozen and v.reset and not judged.reset_sent:
                judged.reset_sent = True  # the packet over the limit becomes a RST (§10.2)
                return Fate.RESET
            return Fate.DROP if frozen else Fate.FORWARD
        if not _in_direction(v.direction, from_client):
            return Fate.FORWARD
        if isinstance(v, Police):
            return _police(judged, v, pkt, now, 0 if from_client else 1)
        if judged.rng is None:  # RandomLoss
            judged.rng = random.Random(_flow_seed(self.seed, flow))
        return Fate.DROP if judged.rng.random() < v.loss else Fate.FORWARD

    def _host_block(self, judged: Judgement, v: HostBlockVerdict, now: float) -> None:
        flow = judged.flow
        blocks = self.host_blocks.setdefault(flow.client_addr, [])
        until = now + v.duration_s
        rule = v.rule or ""
        block = HostBlock(v.target_set, v.target_ports, v.target_transport, until, rule, now)
        # Sending again renews the block (§5.8): replace the one of the same rule and target.
        blocks[:] = [b for b in blocks if (b.rule, b.target_set) != (rule, v.target_set)]
        blocks.append(block)


def burst(verdict: Verdict) -> float:
    """The token bucket's starting fill for a verdict (a POLICE burst; 0 otherwise)."""
    return float(verdict.burst_bytes) if isinstance(verdict, Police) else 0.0


def _reset(judged: Judgement, v: Reset, from_client: bool) -> Fate:
    if judged.reset_sent:
        return Fate.DROP  # the connection is over for the client; leftovers go nowhere
    if v.reset_mode == "rewrite":
        # SNI-I: the trigger passes; the next packet towards the reset side becomes the RST.
        towards_client = not from_client
        target = v.reset_side
        if judged.flow.packets - judged.started_at_packets <= 1:
            return Fate.FORWARD
        if target == "both" or (target == "client") == towards_client:
            judged.reset_sent = True
            return Fate.RESET
        return Fate.FORWARD
    judged.reset_sent = True  # inject: the trigger is answered by RSTs in its place
    return Fate.RESET


def _police(judged: Judgement, v: Police, pkt: Packet, now: float, d: int) -> Fate:
    rate = v.rate_bps / 8.0
    burst_bytes = float(v.burst_bytes)
    tokens = min(burst_bytes, judged.tokens[d] + (now - judged.refilled[d]) * rate)
    judged.refilled[d] = now
    if tokens >= pkt.ip_len:
        judged.tokens[d] = tokens - pkt.ip_len
        return Fate.FORWARD
    judged.tokens[d] = tokens
    return Fate.DROP


def _in_direction(direction: str, from_client: bool) -> bool:
    if direction == "both":
        return True
    return (direction == "client-to-server") == from_client


def _flow_seed(seed: int, flow: FlowState) -> int:
    digest = hashlib.blake2b(f"{seed}|loss|{flow.key!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest)
