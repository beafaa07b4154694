"""Test-only: connections built from scapy-crafted frames and driven through a ``TspuEngine``.

A ``Conn`` keeps TCP sequence numbers for both sides so the frames are what a real client and
server would send; every ``send`` returns the engine's ``Decision`` at an explicit time.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from tests.unit.dpi.crafting import client_hello, record
from tspulab.dpi.engine import Decision, TspuEngine
from tspulab.dpi.profile import Profile, load_profile
from tspulab.dpi.registry import Registry, load_inline
from tspulab.dpi.verdict import Action, Fate

SUBSCRIBERS = [ipaddress.ip_network("10.0.0.0/8")]
CLIENT = "10.0.0.2"
SERVER = "93.184.216.34"


def hello_record(sni: str | None, padding: int = 0, extra: list[object] | None = None) -> bytes:
    """A ClientHello in one TLS handshake record."""
    return record(22, client_hello(sni, padding=padding, extra=extra))  # type: ignore[arg-type]


def engine(
    profile: str | Profile,
    registry: list[str] | None = None,
    time_scale: float = 1.0,
    sets: dict[str, list[str]] | None = None,
) -> TspuEngine:
    prof = load_profile(profile) if isinstance(profile, str) else profile
    for name, entries in (sets or {}).items():
        prof = prof.with_set_entries(name, entries)
    reg = load_inline(registry or [], "test-registry") if registry else Registry()
    return TspuEngine(prof, reg, SUBSCRIBERS, time_scale)


@dataclass
class Conn:
    """One TCP connection (or UDP/ICMP exchange) between ``client`` and ``server``."""

    eng: TspuEngine
    client: str = CLIENT
    server: str = SERVER
    sport: int = 40000
    dport: int = 443
    seq: list[int] = field(default_factory=lambda: [1000, 5000])
    log: list[Decision] = field(default_factory=list)

    def _ends(self, from_client: bool) -> tuple[str, str, int, int]:
        if from_client:
            return self.client, self.server, self.sport, self.dport
        return self.server, self.client, self.dport, self.sport

    def tcp(
        self, now: float, flags: str = "PA", payload: bytes = b"", from_client: bool = True
    ) -> Decision:
        src, dst, sp, dp = self._ends(from_client)
        side = 0 if from_client else 1
        ack = self.seq[1 - side] if "A" in flags else 0
        frame = bytes(
            Ether()
            / IP(src=src, dst=dst)
            / TCP(sport=sp, dport=dp, seq=self.seq[side], ack=ack, flags=flags)
            / payload
        )
        self.seq[side] += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        return self.feed(frame, now)

    def handshake(self, now: float) -> list[Decision]:
        return [
            self.tcp(now, "S"),
            self.tcp(now + 0.01, "SA", from_client=False),
            self.tcp(now + 0.02, "A"),
        ]

    def data(self, now: float, payload: bytes, from_client: bool = True) -> Decision:
        return self.tcp(now, "PA", payload, from_client)

    def udp(self, now: float, payload: bytes, from_client: bool = True) -> Decision:
        src, dst, sp, dp = self._ends(from_client)
        frame = bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / payload)
        return self.feed(frame, now)

    def icmp(self, now: float, from_client: bool = True) -> Decision:
        src, dst, _, _ = self._ends(from_client)
        return self.feed(bytes(Ether() / IP(src=src, dst=dst) / ICMP() / b"ping"), now)

    def feed(self, frame: bytes, now: float) -> Decision:
        decision = self.eng.process(frame, now)
        self.log.append(decision)
        return decision


def fates(decisions: list[Decision]) -> list[Fate]:
    return [d.fate for d in decisions]


def final_action(d: Decision) -> Action:
    assert d.verdict.final, d.verdict
    return d.verdict.action
