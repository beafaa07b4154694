"""A tiny OpenFlow 1.3 table walker for `FlowRule` descriptions (FAUCET's FakeOFTable idea).

It answers "what happens to this packet": the output ports, or drop. Only the match fields the
TSPU pipeline uses are understood: in_port, eth_type, ipv4/ipv6 src/dst (exact or masked).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tspulab.controllers.pipeline import PIPELINE, FlowRule, GotoTable, Meter, Output, table


@dataclass(frozen=True)
class Pkt:
    in_port: int
    src: str
    dst: str
    proto: int = 6
    sport: int = 40000
    dport: int = 443

    @property
    def eth_type(self) -> int:
        return 0x0800 if ipaddress.ip_address(self.src).version == 4 else 0x86DD


def _field_matches(name: str, value: object, pkt: Pkt) -> bool:
    if name == "in_port":
        return pkt.in_port == value
    if name == "eth_type":
        return pkt.eth_type == value
    if name == "ip_proto":
        return pkt.proto == value
    if name.endswith(("_src", "_dst")) and name.split("_")[0] in ("tcp", "udp"):
        if name.split("_")[0] != {6: "tcp", 17: "udp"}.get(pkt.proto):
            return False
        return (pkt.sport if name.endswith("_src") else pkt.dport) == value
    addr = pkt.src if name.endswith("_src") else pkt.dst
    if (name.startswith("ipv4") and pkt.eth_type != 0x0800) or (
        name.startswith("ipv6") and pkt.eth_type != 0x86DD
    ):
        return False
    if isinstance(value, tuple):
        mask_bits = bin(int(ipaddress.ip_address(value[1]))).count("1")
        net = ipaddress.ip_network(f"{value[0]}/{mask_bits}")
    else:
        net = ipaddress.ip_network(str(value))
    return ipaddress.ip_address(addr) in net


class FakeFlowTable:
    def __init__(self, rules: list[FlowRule]) -> None:
        self.rules = rules
        #: meters the last packet passed through (a policer is not simulated, only recorded)
        self.meters_passed: list[int] = []

    def lookup(self, table_name: str, pkt: Pkt) -> FlowRule | None:
        candidates = [
            r
            for r in self.rules
            if r.table == table_name and all(_field_matches(k, v, pkt) for k, v in r.match)
        ]
        return max(candidates, key=lambda r: r.priority, default=None)

    def outputs(self, pkt: Pkt) -> list[int]:
        """Ports the packet leaves on; [] means dropped."""
        current = PIPELINE[0].name
        ports: list[int] = []
        self.meters_passed = []
        for _ in range(len(PIPELINE)):
            rule = self.lookup(current, pkt)
            if rule is None:
                miss = table(current).miss
                if miss is None:
                    return ports
                current = miss
                continue
            self.meters_passed += [a.meter_id for a in rule.actions if isinstance(a, Meter)]
            ports += [a.port for a in rule.actions if isinstance(a, Output)]
            gotos = [a.table for a in rule.actions if isinstance(a, GotoTable)]
            if not gotos:
                return ports
            current = gotos[0]
        raise AssertionError("pipeline loop")
