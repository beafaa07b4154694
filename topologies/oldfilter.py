"""An ISP's own older filter and its block page, as the multi-ISP topology adds them.

    ... ─ r<i> (border, hop B) ─(1) o<i> (2)─ ix ─┬─ bp<i>  (the ISP's block page)
                                   old filter      └─ clouds, dns1, other ISPs

- The filter `o<i>` is a bump in the wire on one link of the ISP's path (topologies/hops.py):
  by default the border router's uplink to the exchange, the ISP's core, past the TSPU and every
  router of the ISP (tspu-behaviour.md §1: "ISP blocking devices were at hops 5-8, so the
  throttler and the ISP filter are not co-located", CP-THR; `isps[].hops.border` sets how many
  routers that is); `old_filter.hop: k` puts it on link k instead (after k routers, as
  `hops.tspu` places the TSPU), upstream of the TSPU when they share a link. It sees every
  subscriber of the ISP, whatever the TSPU's coverage. Port 1 faces the subscribers, port 2 the
  exchange, as on a TSPU switch.
- The block page host `bp<i>` sits on the exchange at 100.64.2.<i> and answers on the block page
  address (a public address of the ISP's, `old_filter.blockpage`) on its loopback, as a cloud
  does; every router and cloud routes that address to it.

| node | address |
|---|---|
| o<i> | switch, dpid 0x300 + i |
| bp<i> | 100.64.2.<i>/22 on the exchange; the block page address /32 on lo |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tspulab.topologies.nodes import TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT, PrefixOwner

OLD_FILTER_DPID_BASE = 0x300
#: port numbers of the filter switch: those of a TSPU (1 toward the subscribers, 2 upstream)
OLD_FILTER_SUBSCRIBER_PORT = TSPU_SUBSCRIBER_PORT
OLD_FILTER_UPSTREAM_PORT = TSPU_UPSTREAM_PORT


@dataclass(frozen=True)
class OldFilterSpec:
    """Where an ISP's old filter is and the address its block page answers on."""

    blockpage: str
    hop: int | None = None
    """The link it sits on, after this many routers; None: the border's uplink."""


def old_filter_switch(i: int) -> str:
    return f"o{i}"


def old_filter_dpid(i: int) -> int:
    return OLD_FILTER_DPID_BASE + i


def blockpage_host(i: int) -> str:
    return f"bp{i}"


def blockpage_exchange_ip(i: int) -> str:
    return f"100.64.2.{i}"


def blockpage_routes(specs: list[tuple[int, OldFilterSpec | None]]) -> list[tuple[str, str]]:
    """Routes to every ISP's block page address (for routers, clouds and the resolver)."""
    return [(f"{f.blockpage}/32", blockpage_exchange_ip(i)) for i, f in specs if f is not None]


def add_old_filter(
    topo: Any,
    i: int,
    spec: OldFilterSpec | None,
    *,
    border: int,
    exchange: str,
    exchange_prefixlen: int,
    isp_routes: list[tuple[str, str]],
    switch_options: dict[str, Any],
) -> tuple[str, int] | None:
    """Add ISP i's filter switch and block page host; return the switch and the link of the
    ISP's path it goes on (for `hops.add_isp_path`), or None when the ISP has no filter."""
    if spec is None:
        return None
    switch = topo.addSwitch(
        old_filter_switch(i), dpid=f"{old_filter_dpid(i):016x}", **switch_options
    )
    page = topo.addHost(
        blockpage_host(i),
        cls=PrefixOwner,
        ip=f"{blockpage_exchange_ip(i)}/{exchange_prefixlen}",
        lo_addresses=(f"{spec.blockpage}/32",),
        static_routes=tuple(isp_routes),
    )
    topo.addLink(page, exchange)
    return str(switch), border if spec.hop is None else spec.hop
