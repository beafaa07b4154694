"""The engine's optional hooks, each switched on by a profile setting (engine.py calls them).

- **IP fragments** (``inspection.fragment_cache``, §2.4, fragments.py): a fragment the verdict
  forwards is held until its datagram is complete, then released unreassembled with the first
  fragment's TTL; a datagram past the cache's limit is dropped.
- **Desync detection** (``desync``, §10.2 [A], desync.py): a client packet with a TTL or IPv4 ID
  the flow's own stack would not send ends the flow with a drop (and, ``block-client``, the
  subscriber's new flows to that server for a while).
- **Delayed server blocks** (a ``detect`` rule's ``block_after_s``, §1 TSPU-DOCS [A],
  serverblocks.py): a detection schedules a block of the server's IP:port that lands later, for
  every subscriber.
"""

from __future__ import annotations

from dataclasses import replace

from tspulab.dpi.desync import DesyncDetector, ipv4_ident
from tspulab.dpi.flow import FlowState
from tspulab.dpi.fragments import DEFAULT_TIMEOUT_S, FragmentCache, Held
from tspulab.dpi.judgement import Decision, Judgement
from tspulab.dpi.packet import Packet
from tspulab.dpi.profile import Profile
from tspulab.dpi.serverblocks import ServerBlocks
from tspulab.dpi.verdict import Detect, Drop, Fate, Verdict


class EngineHooks:
    """The hooks one profile switches on; an engine holds one."""

    def __init__(self, profile: Profile, time_scale: float) -> None:
        spec = profile.spec
        cache = spec.inspection.fragment_cache
        self.fragments = (
            FragmentCache(cache.value, DEFAULT_TIMEOUT_S * time_scale)
            if cache is not None
            else None
        )
        """The IP fragment cache of §2.4, when the profile has ``inspection.fragment_cache``."""
        self.desync = DesyncDetector(spec.desync, time_scale) if spec.desync else None
        self.server_blocks = ServerBlocks()
        """IP:port blocks scheduled by ``detect`` rules with ``block_after_s`` (serverblocks.py)."""
        self._idle_s = spec.state.idle_timeout_s.value * time_scale

    # --- IP fragments -----------------------------------------------------------------------

    def ip_ident(self, frame: bytes, linktype: int, pkt: Packet) -> int:
        """The frame's IPv4 ID when desync detection needs it; -1 otherwise."""
        return ipv4_ident(frame, linktype, pkt) if self.desync is not None else -1

    def hold_fragment(self, d: Decision, frame: bytes, now: float, linktype: int) -> Decision:
        """``d`` with the fragment cache's say on a fragment the verdict forwards."""
        pkt = d.packet
        if self.fragments is None or pkt is None or pkt.frag_id < 0 or d.fate is not Fate.FORWARD:
            return d
        held = self.fragments.add(frame, now, linktype)
        if held.held is Held.DROPPED:
            return replace(d, fate=Fate.DROP)
        if held.held is not Held.PASS:
            return replace(d, held=True, released=held.frames)
        return d

    # --- desync -----------------------------------------------------------------------------

    def desync_verdict(
        self, judged: Judgement, pkt: Packet, ip_id: int, now: float
    ) -> Verdict | None:
        """A drop when this packet gives a desync fake away (the flow's marks are updated)."""
        if self.desync is None:
            return None
        caught, judged.desync = self.desync.judge(judged.flow, judged.desync, pkt, ip_id, now)
        return caught

    # --- delayed server blocks --------------------------------------------------------------

    def server_block_verdict(
        self, flow: FlowState, held: Verdict | None, now: float
    ) -> Drop | None:
        """The drop a landed IP:port block puts on ``flow`` (``held``, its current verdict, is
        kept when it already is that drop), or None."""
        if not self.server_blocks:
            return None
        block = self.server_blocks.active((flow.server_addr, flow.server_port, flow.proto), now)
        if block is None:
            return None
        if isinstance(held, Drop) and held.final and held.rule == block.rule:
            return held
        return Drop(
            True,
            f"IP:port block pushed back by the central system (§1 TSPU-DOCS [A]): "
            f"{block.protocol} detected at t={block.detected:g}, blocked from "
            f"t={block.since:g}",
            block.rule, scope="server-host", idle_timeout_s=self._idle_s,
        )  # fmt: skip

    def schedule_server_block(self, judged: Judgement, now: float) -> None:
        """A detection with ``block_after_s`` schedules its server's IP:port block."""
        verdict = judged.verdict
        if not isinstance(verdict, Detect) or verdict.block_after_s is None:
            return
        flow = judged.flow
        c = judged.classification
        key = (flow.server_addr, flow.server_port, flow.proto)
        protocol = str(c.protocol) if c is not None else "unknown"
        self.server_blocks.schedule(key, now, verdict.block_after_s, verdict.rule or "", protocol)
