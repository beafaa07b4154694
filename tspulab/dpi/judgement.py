"""What the engine keeps per flow and what it answers per frame (engine.py).

``Judgement`` is the engine's per-flow record (the verdict, the inspection budget, the enforcement
counters), kept on the flow as ``FlowState.judgement``; ``Decision`` is the answer for one frame;
``DetectEvent`` one line of the ``detect`` log. Kept apart from the engine so the enforcement
(enforce.py) and the engine's hooks (engine_hooks.py) read and write them without an import cycle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tspulab.dpi.classify import Classification
from tspulab.dpi.desync import FlowMarks
from tspulab.dpi.flow import FlowState
from tspulab.dpi.packet import Packet
from tspulab.dpi.tunnelled_https import SizePattern
from tspulab.dpi.verdict import Fate, Verdict


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one frame."""

    flow: FlowState | None
    verdict: Verdict
    classification: Classification | None
    packet: Packet | None
    fate: Fate = Fate.FORWARD
    """What happens to this very packet under the verdict."""
    first_final: bool = False
    """This packet made the flow's verdict final (a controller logs the verdict once, here)."""
    held: bool = False
    """An IP fragment the profile's fragment cache keeps (§2.4): a caller that buffers sends it
    with ``released``, not now; one that does not forwards it at once (``fate`` stays forward)."""
    released: tuple[bytes, ...] = ()
    """The frames a completed datagram releases now, in arrival order, later fragments carrying
    the first fragment's TTL (fragments.py)."""


@dataclass(frozen=True, slots=True)
class DetectEvent:
    """One ``detect`` log line: who used what, when (§1 TSPU-DOCS stage 1)."""

    subscriber: str
    protocol: str
    time: float
    rule: str
    server: str
    server_port: int
    transport: str


@dataclass(slots=True)
class Judgement:
    """The engine's per-flow record, kept on the flow (``FlowState.judgement``)."""

    flow: FlowState
    verdict: Verdict
    budget: int
    payload_packets: int = 0
    classification: Classification | None = None
    hello_in_one_segment: bool = True
    # enforcement
    started_at_packets: int = 0
    """flow.packets when the current verdict was first enforced (DROP_AFTER counts from it)."""
    tokens: list[float] = field(default_factory=lambda: [0.0, 0.0])
    refilled: list[float] = field(default_factory=lambda: [0.0, 0.0])
    server_payload: int = 0
    reset_sent: bool = False
    rng: random.Random | None = None
    detected: bool = False
    desync: FlowMarks | None = None
    """The desync detector's record of the flow's client packets (desync.py)."""
    sizes: SizePattern | None = None
    """The tunnelled-HTTPS detector's record of the flow's first payload sizes
    (tunnelled_https.py)."""
