"""Behaviour profiles: one dated TSPU (or ISP filter) behaviour as a YAML data file.

A profile says how the box inspects (reassembly, inspection budget, the 2021 first-packet rules,
name normalisation), how long it remembers a flow, which named address/domain sets it knows besides
the block registry, and an ordered list of rules, each a condition set (``when``) and an action
(``action``, see verdict.py). Every setting, every rule, every set and every action parameter
carries ``source:``, a citation that names a section of tspu-behaviour.md (``§3 CP-THR``); the
loader refuses a value without one, and a section number the fact sheet does not have.

Cited values are written ``{value: ..., source: "..."}``. A value that the sources give as a range
(SNI-II's 5-8 packets, the 15-20 packet window) is written ``[lo, hi]``; the engine picks one value
per flow, deterministically from the profile's seed and the flow's 5-tuple (``IntRange.pick``), so
a replay and a live run agree.

Errors name file, line, column and field, like scenario files (yamlload.py)::

    tspu-2022.yaml:41:9: rules[2].action.after_packets: missing source (every parameter cites ...)

``load_profile("tspu-2022")`` reads the packaged ``tspulab/profiles/tspu-2022.yaml``; a path loads
any file. Profiles are documented in docs/profiles.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tspulab.dpi.classify import Protocol
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.ja4set import Ja4PatternError, Ja4Set
from tspulab.dpi.registry import Registry, RegistryLoadError, load_inline
from tspulab.dpi.verdict import DIRECTIONS, SCOPES, Action
from tspulab.dpi.yamlload import (
    ErrorLocation,
    ScenarioError,
    YamlDocument,
    did_you_mean,
    parse_yaml,
    pydantic_message,
)

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
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


class ProfileError(ScenarioError):
    """Every problem found in a profile file; str() gives one ``file:line:col: field: ...`` each."""


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
_ACTION_PARAMS: dict[Action, tuple[str, ...]] = {
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
_OPTIONAL_PARAMS: dict[Action, tuple[str, ...]] = {
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

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        return check_citation(v)


@dataclass(frozen=True)
class Profile:
    """A loaded profile: the validated spec plus its sets compiled into ``Registry`` indexes."""

    spec: ProfileSpec
    sets: Mapping[str, Registry]
    file: str
    ja4_sets: Mapping[str, Ja4Set] = field(default_factory=dict)
    """The ``kind: ja4`` sets (not in ``sets``: they hold fingerprints, not names or addresses)."""
    budget: IntRange = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", IntRange.of(self.spec.inspection.budget_packets.value))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rules(self) -> list[RuleSpec]:
        return self.spec.rules

    def with_set_entries(self, name: str, entries: Iterable[str] | Registry) -> Profile:
        """A copy whose set ``name`` also holds ``entries`` (scenario lists, test targets).

        ``ValueError`` when the profile has no such set; registry loader errors for bad entries.
        """
        if name in self.ja4_sets:
            if isinstance(entries, Registry):
                raise ValueError(f"set {name!r} holds JA4 fingerprints, not a registry")
            ja4_sets = dict(self.ja4_sets)
            ja4_sets[name] = ja4_sets[name].union(Ja4Set.of(entries))
            return replace(self, ja4_sets=ja4_sets)
        if name not in self.sets:
            known = sorted([*self.sets, *self.ja4_sets])
            raise ValueError(f"profile {self.name} has no set {name!r} (sets: {', '.join(known)})")
        spec = self.spec.sets[name]
        extra = (
            entries
            if isinstance(entries, Registry)
            else load_inline(list(entries), f"{name}+", domain_kind=MatchKind(spec.kind))
        )
        merged = Registry().merge(self.sets[name]).merge(extra)
        sets = dict(self.sets)
        sets[name] = merged
        return replace(self, sets=sets)


def profile_names() -> list[str]:
    """The packaged profiles: stems of tspulab/profiles/*.yaml."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A packaged profile by name, or a profile file by path; ``ProfileError`` on any problem."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or "/" in text):
        path = PROFILES_DIR / f"{text}.yaml"
        if not path.is_file():
            hint = did_you_mean(text, profile_names())
            known = ", ".join(profile_names())
            raise ProfileError(
                [ErrorLocation(text, 0, 0, "", f"unknown profile{hint} (known: {known})")]
            )
    file = path.name
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError([ErrorLocation(file, 0, 0, "", f"cannot read: {err}")]) from err
    profile = load_profile_text(source, file)
    if path.parent == PROFILES_DIR and profile.name != path.stem:
        raise ProfileError(
            [ErrorLocation(file, 0, 0, "name", f"{profile.name!r} differs from the file name")]
        )
    return profile


def load_profile_text(text: str, file: str = "<profile>") -> Profile:
    """A profile from YAML text (named ``file`` in errors)."""
    try:
        doc = parse_yaml(text, file)
    except ScenarioError as err:
        raise ProfileError(err.errors) from err
    if not isinstance(doc.data, dict):
        raise ProfileError([ErrorLocation(file, 1, 1, "", "a profile is a mapping")])
    try:
        spec = ProfileSpec.model_validate(doc.data)
    except ValidationError as err:
        raise ProfileError(_pydantic_errors(doc, err)) from err
    errors = _check(spec, doc)
    sets: dict[str, Registry] = {}
    ja4_sets: dict[str, Ja4Set] = {}
    for name, set_spec in spec.sets.items():
        if set_spec.kind == "ja4":
            try:
                ja4_sets[name] = Ja4Set.of(set_spec.entries)
            except Ja4PatternError as err:
                errors.append(doc.error(("sets", name, "entries"), str(err)))
            continue
        try:
            sets[name] = load_inline(
                set_spec.entries, f"{file}:sets.{name}", domain_kind=MatchKind(set_spec.kind)
            )
        except (RegistryLoadError, ValueError) as err:
            errors.append(doc.error(("sets", name, "entries"), str(err)))
    if errors:
        raise ProfileError(errors)
    return Profile(spec=spec, sets=sets, file=file, ja4_sets=ja4_sets)


def _pydantic_errors(doc: YamlDocument, err: ValidationError) -> list[ErrorLocation]:
    out = []
    for e in err.errors(include_url=False):
        loc = _data_loc(doc.data, e["loc"])
        message = pydantic_message(e, ProfileSpec)
        if e["type"] == "missing" and loc and loc[-1] == "source":
            message = "missing source (every parameter cites a section of tspu-behaviour.md)"
        elif e["type"] == "model_type" and _cited_slot(doc.data, loc):
            message = "expected {value: ..., source: '§N KEY'}: every parameter carries a source"
        elif e["type"] == "value_error":
            message = str(e.get("ctx", {}).get("error", e["msg"]))
        out.append(doc.error(loc, message))
    return out


def _data_loc(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """``loc`` without pydantic's union-member tags (``int``, ``tuple[int, int]``): the parts
    that are not keys or indices of the YAML data at their level."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_map = isinstance(node, dict) and part in node
        if in_map or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif isinstance(node, dict | list) and part == loc[-1] and not isinstance(part, int):
            out.append(part)  # a missing key: keep it, the error is about it
            break
        else:
            continue
        out.append(part)
    return tuple(out)


def _cited_slot(data: Any, loc: tuple[Any, ...]) -> bool:
    """True when the value at ``loc`` is a bare scalar where a ``{value, source}`` was expected."""
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return not isinstance(node, dict)


def _check(spec: ProfileSpec, doc: YamlDocument) -> list[ErrorLocation]:
    """Semantic checks pydantic cannot do: set references, action parameters, ranges."""
    errors: list[ErrorLocation] = []
    ja4_names = {name for name, s in spec.sets.items() if s.kind == "ja4"}
    known_sets = {REGISTRY, *spec.sets} - ja4_names
    if REGISTRY in spec.sets:
        errors.append(doc.error(("sets", REGISTRY), "'registry' is reserved for the block list"))
    budget = spec.inspection.budget_packets.value
    if not isinstance(budget, int) and not 0 < budget[0] <= budget[1]:
        errors.append(doc.error(("inspection", "budget_packets"), "range must be [lo, hi], lo>0"))
    errors += _check_desync(spec, doc)
    ids: set[str] = set()
    for i, rule in enumerate(spec.rules):
        where: tuple[str | int, ...] = ("rules", i)
        if rule.id in ids:
            errors.append(doc.error((*where, "id"), f"duplicate rule id {rule.id!r}"))
        ids.add(rule.id)
        w = rule.when
        for key in ("address_in", "server_in", "server_not_in", "sni_in", "sni_not_in"):
            ref = getattr(w, key)
            if ref is not None and ref not in known_sets:
                hint = did_you_mean(ref, known_sets)
                what = "a JA4 set (use ja4_in)" if ref in ja4_names else "unknown set"
                errors.append(doc.error((*where, "when", key), f"{what} {ref!r}{hint}"))
        if w.ja4_in is not None and w.ja4_in not in ja4_names:
            hint = did_you_mean(w.ja4_in, ja4_names)
            errors.append(doc.error((*where, "when", "ja4_in"), f"no ja4 set {w.ja4_in!r}{hint}"))
        a = rule.action
        needed = _ACTION_PARAMS[a.kind]
        allowed = {*needed, *_OPTIONAL_PARAMS.get(a.kind, ())}
        for name in ActionSpec.model_fields:
            if name == "kind":
                continue
            present = getattr(a, name) is not None
            if name in needed and not present:
                errors.append(doc.error((*where, "action"), f"action {a.kind} needs '{name}'"))
            elif present and name not in allowed:
                errors.append(
                    doc.error((*where, "action", name), f"'{name}' is not a {a.kind} parameter")
                )
        if a.target_set is not None and a.target_set not in known_sets:
            errors.append(doc.error((*where, "action", "target_set"), "unknown set"))
        if a.direction is not None and a.direction.value not in DIRECTIONS:
            errors.append(
                doc.error((*where, "action", "direction"), f"expected one of {DIRECTIONS}")
            )
        if a.scope is not None and a.scope.value not in SCOPES:
            errors.append(doc.error((*where, "action", "scope"), f"expected one of {SCOPES}"))
        for share in ("loss", "reset_share"):
            cited = getattr(a, share)
            if cited is not None and not 0.0 <= cited.value <= 1.0:
                errors.append(doc.error((*where, "action", share), "a probability is in [0, 1]"))
        if a.block_after_s is not None:
            lo, hi = IntRange.of(a.block_after_s.value).lo, IntRange.of(a.block_after_s.value).hi
            if not 0 <= lo <= hi:
                errors.append(doc.error((*where, "action", "block_after_s"), "need 0 <= lo <= hi"))
        if a.after_packets is not None and not isinstance(a.after_packets.value, int):
            lo, hi = a.after_packets.value
            if not 0 <= lo <= hi:
                errors.append(doc.error((*where, "action", "after_packets"), "need 0 <= lo <= hi"))
        if w.reassembly is not None and w.reassembly.value not in (
            "none",
            spec.inspection.reassembly.value,
        ):
            errors.append(
                doc.error(
                    (*where, "when", "reassembly"),
                    "a rule's reassembly is 'none' or the profile's inspection.reassembly",
                )
            )
    return errors


def _check_desync(spec: ProfileSpec, doc: YamlDocument) -> list[ErrorLocation]:
    d = spec.desync
    if d is None:
        return []
    errors = []
    if not d.signals.value:
        errors.append(doc.error(("desync", "signals"), "name at least one of ttl, ipid"))
    if d.action.value == "block-client" and d.block_s is None:
        errors.append(doc.error(("desync",), "action block-client needs 'block_s'"))
    elif d.action.value == "drop-flow" and d.block_s is not None:
        errors.append(doc.error(("desync", "block_s"), "'block_s' is a block-client parameter"))
    if d.block_s is not None and not d.block_s.value > 0:
        errors.append(doc.error(("desync", "block_s"), "a block lasts more than 0 s"))
    if any(rule.id == "desync" for rule in spec.rules):
        errors.append(doc.error(("rules",), "rule id 'desync' is reserved for desync verdicts"))
    return errors
