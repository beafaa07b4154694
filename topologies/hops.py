"""One ISP's path from its subscribers to the exchange: routers at real hop counts, the TSPU at one.

    subscribers ─ a<i> ─[0]─ r<i>h1 ─[1]─ r<i>h2 ─[2]─ ... ─ r<i> (border, hop B) ─[B]─ ix
                         (link k follows router k; the TSPU switch t<i> sits on link `tspu`)

- Every router is a `LinuxRouter` (ip_forward=1): forwarding decrements the TTL, and a packet
  whose TTL runs out is dropped there with an ICMP time-exceeded to its sender (RFC 1812 §5.3.1),
  so a subscriber's traceroute counts them and a low-TTL fake dies where it would on a real path.
- The TSPU switch is a bump in the wire on link `tspu`: 0 puts it between the access switch and
  the first router (next to the subscribers, tspu-behaviour.md §1: within 2 hops of the target in
  70 % of located cases), k between routers k and k+1 (the Twitter throttler within the first 5
  hops; ISP filters at hops 5-8, §1 CP-THR), B on the border's uplink to the exchange (backbone
  placement, §1 ZAPRET). The switch does not decrement the TTL, so the packets it judges carry
  the TTL, IP ID and checksums they have on the wire after `tspu` routers: what a real box there
  sees.
- The default (`tspu` 0, `border` 1) is the topology as it was before hops existed: the border
  router r<i> is the subscribers' gateway, with the same names and addresses.

Addresses: the gateway (router 1) is 10.i.0.1 on the subscriber /24; link k between routers k
and k+1 is 10.i.k.0/30 (router k .1, router k+1 .2); the whole ISP is inside 10.i.0.0/16, which
the clouds route to the border router. Each router routes 10.i.0.0/16 down and the rest up.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from tspulab.topologies.nodes import TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT, LinuxRouter

#: The deepest border a scenario may ask for: §1 locates an upstream carrier's DPI at hop 11.
MAX_BORDER_HOP = 16


@dataclass(frozen=True)
class PathHops:
    """Where the TSPU and the ISP's border router are, in router hops from the subscriber."""

    tspu: int = 0
    """Routers between the subscriber and the TSPU (0: the TSPU is before the first router)."""
    border: int = 1
    """Routers from the subscriber to the ISP's border router, the border included (>= 1)."""

    def __post_init__(self) -> None:
        if not 1 <= self.border <= MAX_BORDER_HOP:
            raise ValueError(f"border hop {self.border} is not in 1..{MAX_BORDER_HOP}")
        if not 0 <= self.tspu <= self.border:
            raise ValueError(f"TSPU hop {self.tspu} is not in 0..{self.border} (the border)")

    @property
    def is_default(self) -> bool:
        return self == PathHops()


def isp_block(i: int) -> ipaddress.IPv4Network:
    """Every address of ISP i: its subscribers' /24 and its transit links."""
    return ipaddress.IPv4Network(f"10.{i}.0.0/16")


def router_name(i: int, hop: int, hops: PathHops) -> str:
    """The border keeps the name it always had (r<i>); the routers before it are r<i>h<hop>."""
    return f"r{i}" if hop == hops.border else f"r{i}h{hop}"


def router_names(i: int, hops: PathHops) -> tuple[str, ...]:
    """Every router of ISP i, from the subscribers' gateway (hop 1) to the border."""
    return tuple(router_name(i, k, hops) for k in range(1, hops.border + 1))


def link_addresses(i: int, k: int) -> tuple[str, str]:
    """The two ends (router k, router k+1) of transit link k, with their prefix length."""
    net = ipaddress.IPv4Network(f"10.{i}.{k}.0/30")
    return f"{net.network_address + 1}/30", f"{net.network_address + 2}/30"


def gateway_address(i: int) -> str:
    return f"10.{i}.0.1"


def add_isp_path(
    topo: Any,
    i: int,
    hops: PathHops,
    *,
    access: str,
    tspu: str,
    exchange: str,
    exchange_ip: str,
    upstream_routes: tuple[tuple[str, str], ...],
    old_filter: tuple[str, int] | None = None,
) -> tuple[str, ...]:
    """Add ISP i's routers and its TSPU between the access switch and the exchange switch (both
    already in `topo`). `exchange_ip` is the border's address on the exchange (with its prefix
    length); `upstream_routes` are the border's routes into the exchange. `old_filter`: the ISP's
    own filter switch (already in `topo`) and the link it sits on, upstream of the TSPU when
    they share one (topologies/oldfilter.py). Returns the routers' names, hop 1 first."""
    names = router_names(i, hops)
    for k, name in enumerate(names, start=1):
        down = f"{gateway_address(i)}/24" if k == 1 else link_addresses(i, k - 1)[1]
        routes: list[tuple[str, str]] = []
        if k > 1:  # the subscribers and the links below, through the router below
            routes.append((str(isp_block(i)), link_addresses(i, k - 1)[0].split("/")[0]))
        if k < hops.border:
            routes.append(("0.0.0.0/0", link_addresses(i, k)[1].split("/")[0]))
        else:
            routes.extend(upstream_routes)
        topo.addHost(name, cls=LinuxRouter, ip=down, static_routes=tuple(routes))
    # Link k: below it router k (the access switch for k = 0), above it router k+1 (the exchange
    # for k = border). The router's downstream interface is always eth0, its upstream eth1.
    for k in range(hops.border + 1):
        lower = access if k == 0 else names[k - 1]
        upper = exchange if k == hops.border else names[k]
        lower_end: dict[str, Any] = {}
        upper_end: dict[str, Any] = {}
        if k > 0:
            ip = exchange_ip if k == hops.border else link_addresses(i, k)[0]
            lower_end = {"intfName": f"{lower}-eth1", "params": {"ip": ip}}
        if k < hops.border:
            upper_end = {"intfName": f"{upper}-eth0"}
        # bumps in the wire on this link, the subscribers' side first: (switch, down, up port)
        bumps = [(tspu, TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT)] if k == hops.tspu else []
        if old_filter is not None and k == old_filter[1]:
            bumps.append((old_filter[0], TSPU_SUBSCRIBER_PORT, TSPU_UPSTREAM_PORT))
        for switch, down, up in bumps:
            _link(topo, lower, switch, lower_end, {"port": down})
            lower, lower_end = switch, {"port": up}
        _link(topo, lower, upper, lower_end, upper_end)
    return names


def _link(topo: Any, a: str, b: str, end_a: dict[str, Any], end_b: dict[str, Any]) -> None:
    options: dict[str, Any] = {}
    for suffix, end in (("1", end_a), ("2", end_b)):
        for key, value in end.items():
            options[f"{key}{suffix}"] = value
    topo.addLink(a, b, **options)
