"""The profile file's schema: what a behaviour profile may say, every value with its source.

pydantic models of the YAML as written (``ProfileSpec`` and its parts), the cited-value wrapper
``Cited`` (``{value: ..., source: "§N KEY"}``; ``check_citation`` refuses a source that names no
section of tspu-behaviour.md or one it does not have), and ``IntRange`` for values the sources
give as a range. Checks across fields (set references, action parameters, ranges) are
profile_checks.py; loading is profile.py. docs/profiles.md documents every field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from tspulab.dpi.classify import Protocol
from tspulab.dpi.verdict import Action
from tspulab.dpi.yamlload import did_you_mean

REGISTRY = "registry"
"""The reserved set name: the block registry handed to the engine."""

# Sections of tspu-behaviour.md; §9's numbered statements are accepted as §9.N.
KNOWN_SECTIONS = frozenset(
    ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
    + [f"2.{i}" for i in range(1, 6)]
    + [f"5.{i}" for i in range(1, 11)]
    + [f"9.{i}" for i in range(1, 26)]
    + ["10.1", "10.2"]
)
_SECTION = re.compile(r"§\s*(\d+(?:\.\d+)?)")

T = TypeVar("T")


def check_citation(text: str) -> str:
    """``text`` if it cites at least one section of tspu-behaviour.md and only known ones."""
    sections = _SECTION.findall(text)
    if not sections:
        raise ValueError(f"source {text!r} names no section of tspu-behaviour.md (write §N ...)")
    unknown = [s for s in sections if s not in KNOWN_SECTIONS]
    if unknown:
        raise ValueError(f"source {text!r} names §{unknown[0]}, not a section of the fact sheet")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cited(_Strict, Generic[T]):
    """A parameter and the fact sheet section it comes from."""

    value: T
    source: str

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)


IntOrRange = int | tuple[int, int]


@dataclass(frozen=True, slots=True)
class IntRange:
    """A whole number the sources give as a range; ``pick`` chooses per flow, reproducibly."""

    lo: int
    hi: int

    @classmethod
    def of(cls, value: IntOrRange) -> IntRange:
        return cls(value, value) if isinstance(value, int) else cls(value[0], value[1])

    def pick(self, seed: int, salt: str, key: object) -> int:
        if self.lo == self.hi:
            return self.lo
        digest = hashlib.blake2b(f"{seed}|{salt}|{key!r}".encode(), digest_size=8).digest()
        return self.lo + int.from_bytes(digest) % (self.hi - self.lo + 1)

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


def share_pick(share: float, seed: int, salt: str, key: object) -> bool:
    """Whether this flow is among ``share`` of all flows ("sometimes" in a source), picked
    reproducibly from the seed and the flow's key like ``IntRange.pick``."""
    digest = hashlib.blake2b(f"{seed}|{salt}|{key!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < share


class Inspection(_Strict):
    """How the box looks at a new flow."""

    reassembly: Cited[Literal["none", "tcp", "tls-records"]]
    """TCP: how the client's byte stream is read for a ClientHello (reassembly.ReassemblyMode)."""
    quic_join_initials: Cited[bool] | None = None
    """QUIC: CRYPTO data joined across the flow's Initial packets (a ClientHello spread over
    several Initials is read; NTC-1823 post 69 "defragments frames"), or each datagram read on
    its own. A separate behaviour from TCP reassembly (issue 15): a box can do either alone.
    Unset (profiles written before the split): joined when ``reassembly`` is not ``none``."""
    budget_packets: Cited[IntOrRange]
    """Payload packets (both directions) inspected before an undecided TCP flow is let go."""
    udp_budget_packets: Cited[int] | None = None
    """The same for UDP (the 2022 QUIC filter looked at the first datagram only); default: TCP's."""
    inside_initiated_only: Cited[bool]
    fragment_cache: Cited[int] | None = None
    """IP fragments are buffered until their datagram is complete, then forwarded unreassembled
    with the first fragment's TTL, at most this many per datagram (§2.4, fragments.py); None:
    fragments pass as they come."""
    remote_syn_unblocks: Cited[bool] | None = None
    """A SYN from the server side (TCP split handshake) ends inspection: ALLOW (§2.3)."""
    opaque_first_packet_min_bytes: Cited[int] | None = None
    """A first payload packet that is neither TLS, HTTP nor a SOCKS greeting and has at least this
    many bytes ends inspection: ALLOW (the 2021 throttler's 101-byte rule, §3)."""
    rearm_after_non_matching: Cited[bool] | None = None
    """After a classification no rule matched (a benign ClientHello, other TLS), keep inspecting
    later packets until the budget runs out (the 2021 15-20 packet window, §3)."""
    fold_case: Cited[bool]
    strip_trailing_dot: Cited[bool]


class State(_Strict):
    idle_timeout_s: Cited[float]
    survives_fin_rst: Cited[bool]


class SetSpec(_Strict):
    """A named address/domain set besides the registry (hosting ranges, allowlists, SNI lists)."""

    entries: list[str]
    kind: Literal["exact", "suffix", "subtree", "substring", "ends-with", "ja4"] = "exact"
    """Match kind of bare domain names (``*.x`` and ``*x*`` say their own; ``*x`` is read as
    ends-with only in an ``ends-with`` set, see domains.parse_pattern). ``ja4``: the entries are
    JA4 fingerprints or globs over them (ja4set.py), matched by ``when.ja4_in``."""
    source: str
    note: str = ""

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)


class QuicInitialRule(_Strict):
    """The March-2022 rule on a UDP flow's first client datagram (§5.3)."""

    port: Cited[int]
    min_bytes: Cited[int]
    version: Cited[int]


WireGuardMessage = Literal["initiation", "response", "cookie-reply", "transport-data"]


class When(_Strict):
    """Conditions, all of which must hold. Set names refer to ``sets`` or ``registry``."""

    address_in: str | None = None
    """Either endpoint in the set (IP mode: both directions)."""
    server_in: str | None = None
    server_not_in: str | None = None
    sni_in: str | None = None
    sni_not_in: str | None = None
    """The flow showed a name (TLS/QUIC SNI) that is not in the set."""
    ja4_in: str | None = None
    """The JA4 of the ClientHello the classifier read (after the profile's reassembly) is in this
    ``kind: ja4`` set (§5.10 teleproxy #39: reassembly before JA4 fingerprinting)."""
    transport: Cited[Literal["tcp", "udp", "icmp"]] | None = None
    server_ports: Cited[list[int]] | None = None
    protocols: Cited[list[str]] | None = None
    ech: Cited[bool] | None = None
    quic_initial: QuicInitialRule | None = None
    payload_packet: Cited[bool] | None = None
    """The packet being judged carries payload (handshake packets pass, the first data does not)."""
    reassembly: Cited[Literal["none", "tcp", "tls-records"]] | None = None
    """The reassembly this rule's SNI match uses, when weaker than the profile's (YouTube 2024:
    the throttle module does not reassemble, the blocking module does, §5.7/§5.10)."""
    wireguard_messages: Cited[list[WireGuardMessage]] | None = None
    """For a WireGuard flow: the message the classifier recognised it by must be one of these
    (which field the TSPU matches is not measured, §5.4, §8: the handshake pair is the community
    belief; ``transport-data`` lets a data packet alone, a flow picked up mid-tunnel, count)."""

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v: Cited[list[str]] | None) -> Cited[list[str]] | None:
        known = {p.value for p in Protocol}
        for name in v.value if v is not None else []:
            if name not in known:
                raise ValueError(f"unknown protocol {name!r}{did_you_mean(name, known)}")
        return v


class ActionSpec(_Strict):
    kind: Action
    reset_side: Cited[Literal["client", "server", "both"]] | None = None
    reset_mode: Cited[Literal["inject", "rewrite"]] | None = None
    after_packets: Cited[IntOrRange] | None = None
    rate_bps: Cited[int] | None = None
    burst_bytes: Cited[int] | None = None
    direction: Cited[str] | None = None
    loss: Cited[float] | None = None
    freeze_bytes: Cited[int] | None = None
    duration_s: Cited[float] | None = None
    scope: Cited[str] | None = None
    target_set: str | None = None
    target_ports: Cited[list[int]] | None = None
    target_transport: Cited[Literal["tcp", "udp"]] | None = None
    reset_share: Cited[float] | None = None
    """freeze-after-bytes: the share of TCP flows whose cut comes with a RST to the client (the
    2025 account's "sometimes", §10.2); the others freeze silently (§5.8)."""
    block_after_s: Cited[IntOrRange] | None = None
    """detect: the server's IP:port is blocked for every subscriber this many seconds after the
    detection (the central two-stage cycle of 5-15 minutes, §1 TSPU-DOCS [A])."""


# Which action parameters each action needs (the loader rejects missing and stray ones).
ACTION_PARAMS: dict[Action, tuple[str, ...]] = {
    Action.ALLOW: (),
    Action.DROP: (),
    Action.DETECT: (),
    Action.RESET: ("reset_side", "reset_mode"),
    Action.DROP_AFTER: ("after_packets",),
    Action.POLICE: ("rate_bps", "burst_bytes", "direction"),
    Action.RANDOM_LOSS: ("loss", "direction"),
    Action.FREEZE_AFTER_BYTES: ("freeze_bytes",),
    Action.HOST_BLOCK: ("duration_s", "scope", "target_set"),
}
OPTIONAL_PARAMS: dict[Action, tuple[str, ...]] = {
    Action.HOST_BLOCK: ("target_ports", "target_transport"),
    Action.FREEZE_AFTER_BYTES: ("reset_share",),
    Action.DETECT: ("block_after_s",),
}


class RuleSpec(_Strict):
    id: str
    title: str
    source: str
    initiator: Cited[Literal["inside", "any"]] | None = None
    """Who must have opened the flow; default: the profile's ``inside_initiated_only``."""
    when: When
    action: ActionSpec

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)


class Fact(_Strict):
    fact: str
    source: str

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)


class NotModelled(_Strict):
    fact: str
    why: str
    source: str

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)


class Desync(_Strict):
    """Detection of desync fakes on a TCP flow, and what the box does then (desync.py)."""

    signals: Cited[list[Literal["ttl", "ipid"]]]
    """Which marks give a fake away: a TTL unlike the flow's, an IP ID repeated or out of
    sequence."""
    action: Cited[Literal["drop-flow", "block-client"]]
    block_s: Cited[float] | None = None
    """block-client: how long the subscriber's new flows to the server are dropped."""


class TunnelledHttpsSpec(_Strict):
    """The tunnelled-HTTPS size pattern of §5.5 (tunnelled_https.py): the client sends
    ``client_packets`` payload packets of at least ``min_bytes`` each, then the server answers.
    A match gives the flow the class ``tunnelled-https``, which rules name in
    ``when.protocols`` (with the address ranges, ports and action the profile chooses)."""

    client_packets: Cited[int]
    min_bytes: Cited[int]


class ProfileSpec(_Strict):
    """The YAML file as written."""

    name: str
    title: str
    period: str
    source: str
    facts: list[Fact]
    not_modelled: list[NotModelled] = []
    seed: Cited[int]
    inspection: Inspection
    state: State
    sets: dict[str, SetSpec] = {}
    rules: list[RuleSpec]
    desync: Desync | None = None
    """Desync detection (desync.py); None: fakes are judged like any packet."""
    tunnelled_https: TunnelledHttpsSpec | None = None
    """The tunnelled-HTTPS size pattern (tunnelled_https.py); None: not looked for."""

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)
