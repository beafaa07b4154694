"""One or several ISPs, each with its own TSPU, around one internet of clouds.

Every scenario runs on this topology: one without `isps` is one ISP (subscribers i1s1.., shown
as sub1.. in the scenario's names).

    ISP 1:  i1s1 ─┐                                              ┌─ cl1  (owns its prefixes)
            i1s2 ─┼─ a1 ──(1) t1 (2)── r1 ─┐                     ├─ cl2
                  ┘  access    TSPU   border│                     ├─ ...
    ISP 2:  i2s1 ─┬─ a2 ──(1) t2 (2)── r2 ──┼── ix (exchange) ────┼─ dns1 (resolver)
            ...   ┘                         │                     └─ ...
    ISP n:  ...      an ──(1) tn (2)── rn ──┘

- ISP i's subscribers live in 10.i.0.0/24 behind its border router r<i> (10.i.0.1); the routers
  and all clouds meet on an exchange network, 100.64.0.0/22 (routers at 100.64.1.i).
- Each ISP's TSPU is a bump in the wire between its access switch and its border router, port 1
  toward the subscribers, port 2 upstream (the TSPU sits close to users, tspu-behaviour.md §1).
  An ISP's `hops` (topologies/hops.py) puts real routers between the subscribers and the border
  and the TSPU after any of them; the picture above is the default, one router.
- Clouds own whole prefixes (`ip route add local`), and route each ISP's network back to its
  router. Host names stay short because they prefix interface names (15 characters at most);
  the scenario's names (e.g. `rostelecom-1`) map onto them in the lab plan.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from mininet.topo import Topo

from tspulab.topologies.hops import PathHops, add_isp_path, isp_block
from tspulab.topologies.nodes import (
    TSPU_SUBSCRIBER_PORT,
    TSPU_UPSTREAM_PORT,
    CloudSpec,
    LinuxRouter,
    PrefixOwner,
)
from tspulab.topologies.oldfilter import OldFilterSpec, add_old_filter, blockpage_routes

__all__ = [
    "TSPU_SUBSCRIBER_PORT",
    "TSPU_UPSTREAM_PORT",
    "CloudSpec",
    "IspSpec",
    "LinuxRouter",
    "MultiIspSpec",
    "MultiIspTopo",
    "PathHops",
    "PrefixOwner",
]

EXCHANGE_NET = ipaddress.ip_network("100.64.0.0/22")
DNS_EXCHANGE_IP = "100.64.0.2"
EXCHANGE_DPID = 3
ACCESS_DPID_BASE = 0x100
TSPU_DPID_BASE = 0x200


def isp_net(i: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.{i}.0.0/24")


def router_exchange_ip(i: int) -> str:
    return f"100.64.1.{i}"


def cloud_exchange_ip(j: int) -> str:
    return str(EXCHANGE_NET.network_address + 10 + j)


@dataclass(frozen=True)
class IspSpec:
    name: str
    subscribers: int
    hops: PathHops = field(default_factory=PathHops)
    """Where its TSPU and border router are (topologies/hops.py); the default is one router."""
    old_filter: OldFilterSpec | None = None
    """The ISP's own older filter on its path (topologies/oldfilter.py), or None."""

    def host(self, i: int, n: int) -> str:
        return f"i{i}s{n}"

    def subscriber_ip(self, i: int, n: int) -> str:
        return str(isp_net(i).network_address + 10 + n)


@dataclass(frozen=True)
class MultiIspSpec:
    isps: tuple[IspSpec, ...]
    clouds: tuple[CloudSpec, ...] = ()
    dns_address: str = "77.88.8.8"
    extra: dict[str, Any] = field(default_factory=dict)

    def tspu_switch(self, i: int) -> str:
        return f"t{i}"

    def access_switch(self, i: int) -> str:
        return f"a{i}"

    @property
    def exchange_switch(self) -> str:
        return "ix"

    @staticmethod
    def tspu_dpid(i: int) -> int:
        return TSPU_DPID_BASE + i


class MultiIspTopo(Topo):  # type: ignore[misc]
    def build(self, spec: MultiIspSpec | None = None, **_: Any) -> None:
        spec = spec or MultiIspSpec(isps=(IspSpec("isp", 2),))
        sw = {"protocols": "OpenFlow13"}
        exchange = self.addSwitch(spec.exchange_switch, dpid=f"{EXCHANGE_DPID:016x}", **sw)
        plen = EXCHANGE_NET.prefixlen
        isp_routes = [
            (str(isp_block(i)), router_exchange_ip(i)) for i in range(1, len(spec.isps) + 1)
        ]

        cloud_routes = [
            (p, cloud_exchange_ip(j)) for j, c in enumerate(spec.clouds) for p in c.prefixes
        ]
        cloud_routes.append((f"{spec.dns_address}/32", DNS_EXCHANGE_IP))
        cloud_routes += blockpage_routes([(i, s.old_filter) for i, s in enumerate(spec.isps, 1)])
        for i, isp in enumerate(spec.isps, start=1):
            access = self.addSwitch(
                spec.access_switch(i), dpid=f"{ACCESS_DPID_BASE + i:016x}", **sw
            )
            tspu = self.addSwitch(spec.tspu_switch(i), dpid=f"{spec.tspu_dpid(i):016x}", **sw)
            # the ISP's own older filter, on the link of its path the scenario names
            old_filter = add_old_filter(
                self, i, isp.old_filter, border=isp.hops.border, exchange=exchange,
                exchange_prefixlen=plen, isp_routes=isp_routes, switch_options=sw,
            )  # fmt: skip
            for n in range(1, isp.subscribers + 1):
                host = self.addHost(
                    isp.host(i, n),
                    ip=f"{isp.subscriber_ip(i, n)}/24",
                    defaultRoute=f"via 10.{i}.0.1",
                )
                self.addLink(host, access)
            # access ─ routers (hop 1 .. border r<i>) ─ exchange, the TSPU on the link after
            # router isp.hops.tspu (topologies/hops.py); the default is access ─ TSPU ─ r<i>.
            add_isp_path(
                self, i, isp.hops, access=access, tspu=tspu, exchange=exchange,
                exchange_ip=f"{router_exchange_ip(i)}/{plen}", upstream_routes=tuple(cloud_routes),
                old_filter=old_filter,
            )  # fmt: skip
        for j, cloud in enumerate(spec.clouds):
            # Clouds reach the ISPs through their routers and each other directly (a proxy in
            # one cloud fetches from another), and the resolver.
            others = [r for r in cloud_routes if r[1] != cloud_exchange_ip(j)]
            host = self.addHost(
                cloud.host,
                cls=PrefixOwner,
                ip=f"{cloud_exchange_ip(j)}/{plen}",
                owned_prefixes=cloud.prefixes,
                static_routes=tuple(isp_routes + others),
            )
            self.addLink(host, exchange)
        dns = self.addHost(
            "dns1",
            cls=PrefixOwner,
            ip=f"{DNS_EXCHANGE_IP}/{plen}",
            lo_addresses=(f"{spec.dns_address}/32",),
            static_routes=tuple(isp_routes + [r for r in cloud_routes if r[1] != DNS_EXCHANGE_IP]),
        )
        self.addLink(dns, exchange)


def _mn_custom(isps: str | int = 2, subscribers: str | int = 2) -> MultiIspTopo:
    """`mn --custom topologies/multi_isp.py --topo multi-isp,2` (Mininet's command line)."""
    return MultiIspTopo(spec=MultiIspSpec(
        isps=tuple(IspSpec(f"isp{i}", int(subscribers)) for i in range(1, int(isps) + 1)),
        clouds=(CloudSpec("cl1", ("18.196.0.0/15",), "aws-fra"),),
    ))  # fmt: skip


topos = {"multi-isp": _mn_custom, "single-isp": lambda n=2: _mn_custom(1, n)}
