"""The tunnelled-HTTPS size pattern: a fully encrypted proxy told by its first packets' sizes.

What is modelled (tspu-behaviour.md §5.5, N4P-#363 [R]): from about 2024-04-25 Russian ISPs
blocked Shadowsocks and VMess "on the basis of encapsulated HTTPS exchanges" - not the cover
protocol's bytes but the HTTPS handshake's traffic shape inside the tunnel, as in Xue et al.,
"Fingerprinting Obfuscated Proxy Traffic with Encapsulated TLS Handshakes" (USENIX Security
2024). One reported pattern: **the client sends at least 3 packets, each of 411 bytes or more,
then the server answers.** Whether it applied depended on the server's address range and port
(Outline tests, §5.5: on DigitalOcean only port 443; other ISPs IP-range based); that is the
profile rules' business (``server_in``, ``server_ports``), not this module's.

The detector reads the sizes and directions of a TCP flow's payload packets from its start (the
box must have seen the SYN: a flow picked up mid-connection has no "first packets"):

- a client payload packet smaller than ``min_bytes`` while fewer than ``client_packets`` large
  ones have been seen ends the pattern: **no match**;
- a server payload packet before ``client_packets`` large client packets: **no match** (the server
  answered first);
- a server payload packet after them: **match**, at that packet ("then the server answers").

So it decides at the latest at payload packet ``client_packets + 1`` when the client sends exactly
that many large packets and waits, and never needs more packets than the flow's first server
answer (``packets_needed``). Sizes are TCP payload bytes: the source says "packets of 411 bytes"
without saying which length (IP, TCP payload, frame); payload is assumed (§8), a difference of
40-66 bytes. Pure ACKs are not counted; retransmissions are (the box counts packets as they pass).

The engine (engine.py) runs it only on flows the classifier has not recognised as a plaintext or
known protocol (undecided, unknown, or fully encrypted), withholds the classification from the
rules while the pattern is pending, and on a match gives the flow the class
``tunnelled-https`` that rules name in ``when.protocols``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tspulab.dpi.classify import Classification, Protocol

#: the classes the pattern is looked for on: nothing the classifier could name by its bytes
OPAQUE = frozenset({Protocol.UNKNOWN, Protocol.FULLY_ENCRYPTED})


@dataclass(slots=True)
class SizePattern:
    """One flow's progress through the pattern."""

    large_client: int = 0
    """Client payload packets of at least ``min_bytes`` seen, in a row from the first."""
    sizes: list[int] = field(default_factory=list)
    """The client payload sizes read so far, signed by direction (server negative), for the
    verdict's detail."""
    matched: bool | None = None
    """None while undecided; True once the server answered after the large client packets."""


class TunnelledHttps:
    """The detector of one profile (``tunnelled_https`` section: thresholds from §5.5)."""

    def __init__(self, client_packets: int, min_bytes: int) -> None:
        self.client_packets = client_packets
        self.min_bytes = min_bytes

    @property
    def packets_needed(self) -> int:
        """Payload packets (both directions) read before the earliest possible match."""
        return self.client_packets + 1

    def observe(self, state: SizePattern, from_client: bool, size: int) -> SizePattern:
        """Advance ``state`` by one payload packet of ``size`` bytes; returns ``state``."""
        if state.matched is not None or size <= 0:
            return state
        state.sizes.append(size if from_client else -size)
        if from_client:
            if state.large_client < self.client_packets:
                if size >= self.min_bytes:
                    state.large_client += 1
                else:
                    state.matched = False
        else:
            state.matched = state.large_client >= self.client_packets
        return state

    def classification(self, state: SizePattern, decided_at: int) -> Classification:
        """The class a matched flow gets (rules name it ``tunnelled-https``)."""
        client = [s for s in state.sizes if s > 0]
        detail = (
            f"{len(client)} client packets of >= {self.min_bytes} B "
            f"({', '.join(map(str, client))}), then the server answered ({-state.sizes[-1]} B)"
        )
        return Classification(Protocol.TUNNELLED_HTTPS, decided_at, detail=detail)

    @staticmethod
    def applies_to(classification: Classification | None) -> bool:
        """Whether a flow of this class is looked at (random-looking: nothing recognised)."""
        return classification is None or classification.protocol in OPAQUE
