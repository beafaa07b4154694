"""Parse `ovs-ofctl dump-flows` / `dump-ports` text into records (flow and port counters)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FLOW_FIELD = re.compile(r"(\w+)=([^,\s]+)")


@dataclass(frozen=True)
class FlowStat:
    cookie: int
    table: int
    priority: int
    n_packets: int
    n_bytes: int
    match: str
    actions: str


def parse_dump_flows(text: str) -> list[FlowStat]:
    flows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        head, _, actions = line.partition(" actions=")
        fields = dict(_FLOW_FIELD.findall(head))
        # The match is whatever follows the counters: "priority=100,ip,nw_dst=18.196.0.0/15".
        match = head.split(" ")[-1]
        flows.append(
            FlowStat(
                cookie=int(fields.get("cookie", "0"), 16),
                table=int(fields.get("table", "0")),
                priority=int(fields.get("priority", "32768")),
                n_packets=int(fields.get("n_packets", "0")),
                n_bytes=int(fields.get("n_bytes", "0")),
                match=match,
                actions=actions,
            )
        )
    return flows


_PORT = re.compile(
    r"port\s+(\S+):\s+rx pkts=(\d+), bytes=(\d+).*?\n\s+tx pkts=(\d+), bytes=(\d+)", re.S
)


def parse_dump_ports(text: str) -> dict[str, dict[str, int]]:
    """Port name/number -> rx/tx packet and byte counters."""
    out = {}
    for port, rxp, rxb, txp, txb in _PORT.findall(text):
        out[port.strip('"')] = {
            "rx_packets": int(rxp),
            "rx_bytes": int(rxb),
            "tx_packets": int(txp),
            "tx_bytes": int(txb),
        }
    return out
