"""The TSPU switch's OpenFlow 1.3 pipeline, declared as data, and the flow rules it holds.

This module is pure (no os-ken import, no switch): it turns registry prefixes and port roles into
`FlowRule` descriptions, which the app in `tspu.py` sends as FlowMods and which tests feed to a
fake flow table. Tables are referred to by name, never by number; `goto()` refuses an edge the
pipeline does not declare (FAUCET's `ValveTable.goto` habit).

    in ──► registry ──────────────► forward ──► out
           drop: ip src or dst       subscriber port ⇄ upstream port
           in a registry prefix      (a bump in the wire: no MAC learning,
           (both directions)          no packet ever goes to the controller)

Documented table by table in docs/pipeline.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_IPV6 = 0x86DD

# Cookies tag rules by purpose, so a registry diff can delete exactly the registry rules.
COOKIE_REGISTRY = 0x7370_0001
COOKIE_FORWARD = 0x7370_0002
COOKIE_MISS = 0x7370_00FF


@dataclass(frozen=True)
class Table:
    name: str
    table_id: int
    purpose: str
    next_tables: tuple[str, ...] = ()
    #: what happens to a packet no rule matches: go to the named table, or drop.
    miss: str | None = None


PIPELINE: tuple[Table, ...] = (
    Table(
        "registry",
        0,
        "Proactive drop rules: every packet to or from a registry address or prefix "
        "(the IP mode of the TSPU: tspu-behaviour.md §2.2 'IP'). "
        "Aggregated prefixes, 2 rules each.",
        next_tables=("forward",),
        miss="forward",
    ),
    Table(
        "forward",
        1,
        "Bump in the wire: subscriber-side port to upstream port and back, at switch speed.",
        miss=None,
    ),
)

_BY_NAME = {t.name: t for t in PIPELINE}


def table(name: str) -> Table:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no table {name!r} in the TSPU pipeline") from None


def goto(src: str, dst: str) -> int:
    """Table id of `dst`, asserting the pipeline allows src → dst."""
    if dst not in table(src).next_tables:
        raise ValueError(f"pipeline does not allow goto {src} → {dst}")
    return table(dst).table_id


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class GotoTable:
    table: str


Action = Output | GotoTable
MatchValue = int | str | tuple[str, str]


@dataclass(frozen=True)
class FlowRule:
    """One flow entry: os-ken `OFPMatch` keyword fields, and what to do. No actions = drop."""

    table: str
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    actions: tuple[Action, ...] = ()
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    kind: Literal["registry", "forward", "miss"] = field(default="forward")

    @property
    def is_drop(self) -> bool:
        return not self.actions

    def match_dict(self) -> dict[str, MatchValue]:
        return dict(self.match)


@dataclass(frozen=True)
class TspuPorts:
    """Port roles of the TSPU switch: which side the subscribers are on."""

    subscriber: int
    upstream: int


def _masked(net: IPNetwork) -> MatchValue:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


def registry_rules(prefixes: Iterable[IPNetwork], priority: int = 100) -> list[FlowRule]:
    """Drop rules for aggregated registry prefixes: one for each direction of each prefix."""
    rules = []
    for net in prefixes:
        if net.version == 4:
            eth, src, dst = ETH_TYPE_IPV4, "ipv4_src", "ipv4_dst"
        else:
            eth, src, dst = ETH_TYPE_IPV6, "ipv6_src", "ipv6_dst"
        value = _masked(net)
        for field_name in (dst, src):
            rules.append(
                FlowRule(
                    table="registry",
                    priority=priority,
                    match=(("eth_type", eth), (field_name, value)),
                    cookie=COOKIE_REGISTRY,
                    kind="registry",
                )
            )
    return rules


def base_rules(ports: TspuPorts) -> list[FlowRule]:
    """Table-miss gotos and the bump-in-the-wire forwarding."""
    registry_miss = FlowRule(
        table="registry",
        priority=0,
        match=(),
        actions=(GotoTable("forward"),),
        cookie=COOKIE_MISS,
        kind="miss",
    )
    goto("registry", "forward")  # assert the edge exists
    wire = [
        FlowRule(
            table="forward",
            priority=10,
            match=(("in_port", a),),
            actions=(Output(b),),
            cookie=COOKIE_FORWARD,
        )
        for a, b in ((ports.subscriber, ports.upstream), (ports.upstream, ports.subscriber))
    ]
    return [registry_miss, *wire]


def tspu_rules(prefixes: Sequence[IPNetwork], ports: TspuPorts) -> list[FlowRule]:
    """Everything the TSPU switch holds once the registry is installed."""
    return [*base_rules(ports), *registry_rules(prefixes)]
