"""One ISP with a TSPU, and a small internet of clouds behind its border router.

    sub1 ─┐                                                         ┌─ cl1  (owns its prefixes)
    sub2 ─┼─ acc1 ──(1) tspu1 (2)── r1 ─── tr1 ─────────────────────┼─ cl2
    ...  ─┘  access     TSPU         border  transit                ├─ ...
             switch     switch       router  switch                 └─ dns1 (resolver)

- Subscribers live in 10.10.0.0/24 behind the border router r1 (10.10.0.1).
- The TSPU switch is a bump in the wire between the access switch and r1: port 1 faces the
  subscribers, port 2 the upstream (the TSPU sits close to users, tspu-behaviour.md §1).
- Each cloud host owns whole prefixes with `ip route add local PREFIX dev lo`, so one namespace
  answers on every address in, say, a /15, and blocking the prefix breaks every service in it.
- r1 routes each cloud prefix to its host over the transit network 100.64.0.0/24.

Usable from Mininet's command line too:
    mn --custom topologies/single_isp.py --topo single-isp,2 --switch ovs,datapath=user ...
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from mininet.node import Node
from mininet.topo import Topo

ISP_NET = ipaddress.ip_network("10.10.0.0/24")
TRANSIT_NET = ipaddress.ip_network("100.64.0.0/24")
ROUTER_ISP_IP = "10.10.0.1"
ROUTER_TRANSIT_IP = "100.64.0.1"
DNS_TRANSIT_IP = "100.64.0.2"

ACCESS_DPID = 1
TSPU_DPID = 2
TRANSIT_DPID = 3
#: TSPU switch port numbers (fixed in addLink so the controller knows the sides).
TSPU_SUBSCRIBER_PORT = 1
TSPU_UPSTREAM_PORT = 2


class LinuxRouter(Node):  # type: ignore[misc]
    """A namespace that forwards IPv4 (Mininet's examples/linuxrouter.py)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1")
        for dst, via in params.get("static_routes", ()):
            self.cmd(f"ip route add {dst} via {via}")
        return result

    def terminate(self) -> None:
        self.cmd("sysctl -qw net.ipv4.ip_forward=0")
        super().terminate()


class PrefixOwner(Node):  # type: ignore[misc]
    """A host that answers on every address of its prefixes (AnyIP via local routes)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        for prefix in params.get("owned_prefixes", ()):
            self.cmd(f"ip route add local {prefix} dev lo")
        for addr in params.get("lo_addresses", ()):
            self.cmd(f"ip addr add {addr} dev lo")
        for dst, via in params.get("static_routes", ()):
            self.cmd(f"ip route add {dst} via {via}")
        return result


@dataclass(frozen=True)
class CloudSpec:
    """A cloud as the topology needs it: a host name and the prefixes it owns."""

    host: str
    prefixes: tuple[str, ...]
    label: str = ""


@dataclass(frozen=True)
class SingleIspSpec:
    subscribers: int = 2
    clouds: tuple[CloudSpec, ...] = ()
    dns_address: str = "77.88.8.8"
    #: prefixed to switch names (and so to their root-namespace ports) so that several labs can
    #: run on one machine at once; at most 4 characters (interface names are ≤ 15).
    switch_prefix: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def access_switch(self) -> str:
        return f"{self.switch_prefix}acc1"

    @property
    def tspu_switch(self) -> str:
        return f"{self.switch_prefix}tspu1"

    @property
    def transit_switch(self) -> str:
        return f"{self.switch_prefix}tr1"

    def subscriber_ip(self, i: int) -> str:
        return str(ISP_NET.network_address + 10 + i)

    def cloud_transit_ip(self, j: int) -> str:
        return str(TRANSIT_NET.network_address + 10 + j)


class SingleIspTopo(Topo):  # type: ignore[misc]
    """Subscribers, access switch, TSPU switch, border router, transit switch, clouds, DNS."""

    def build(self, spec: SingleIspSpec | None = None, **_: Any) -> None:
        spec = spec or SingleIspSpec()
        sw = {"protocols": "OpenFlow13"}
        if len(spec.switch_prefix) > 4:
            raise ValueError(f"switch prefix {spec.switch_prefix!r} is longer than 4 characters")
        access = self.addSwitch(spec.access_switch, dpid=f"{ACCESS_DPID:016x}", **sw)
        tspu = self.addSwitch(spec.tspu_switch, dpid=f"{TSPU_DPID:016x}", **sw)
        transit = self.addSwitch(spec.transit_switch, dpid=f"{TRANSIT_DPID:016x}", **sw)

        static_routes = [
            (p, spec.cloud_transit_ip(j)) for j, c in enumerate(spec.clouds) for p in c.prefixes
        ]
        static_routes.append((f"{spec.dns_address}/32", DNS_TRANSIT_IP))
        router = self.addHost(
            "r1",
            cls=LinuxRouter,
            ip=f"{ROUTER_ISP_IP}/{ISP_NET.prefixlen}",
            static_routes=tuple(static_routes),
        )

        for i in range(1, spec.subscribers + 1):
            sub = self.addHost(
                f"sub{i}",
                ip=f"{spec.subscriber_ip(i)}/{ISP_NET.prefixlen}",
                defaultRoute=f"via {ROUTER_ISP_IP}",
            )
            self.addLink(sub, access)
        self.addLink(access, tspu, port2=TSPU_SUBSCRIBER_PORT)
        self.addLink(tspu, router, port1=TSPU_UPSTREAM_PORT, intfName2="r1-eth0")
        self.addLink(
            router,
            transit,
            intfName1="r1-eth1",
            params1={"ip": f"{ROUTER_TRANSIT_IP}/{TRANSIT_NET.prefixlen}"},
        )
        for j, cloud in enumerate(spec.clouds):
            host = self.addHost(
                cloud.host,
                cls=PrefixOwner,
                ip=f"{spec.cloud_transit_ip(j)}/{TRANSIT_NET.prefixlen}",
                defaultRoute=f"via {ROUTER_TRANSIT_IP}",
                owned_prefixes=cloud.prefixes,
            )
            self.addLink(host, transit)
        dns = self.addHost(
            "dns1",
            cls=PrefixOwner,
            ip=f"{DNS_TRANSIT_IP}/{TRANSIT_NET.prefixlen}",
            defaultRoute=f"via {ROUTER_TRANSIT_IP}",
            lo_addresses=(f"{spec.dns_address}/32",),
        )
        self.addLink(dns, transit)


def _mn_custom(subscribers: str | int = 2) -> SingleIspTopo:
    """`mn --topo single-isp,N`: N subscribers and two demo clouds."""
    clouds = (
        CloudSpec("cl1", ("18.196.0.0/15",), "aws-fra"),
        CloudSpec("cl2", ("77.88.55.0/24",), "yandex"),
    )
    return SingleIspTopo(spec=SingleIspSpec(subscribers=int(subscribers), clouds=clouds))


topos = {"single-isp": _mn_custom}
