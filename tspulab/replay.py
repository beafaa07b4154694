"""`tspulab replay`: run the DPI core over a capture file, one report line per flow.

The loop is the one a live controller runs per packet-in (decode → flow lookup → classify), so a
capture replayed here gets the verdicts the emulation would give (ARCHITECTURE.md, "The path of a
packet"). Flows are reported in order of first appearance; an undecided flow's line shows the
best guess at capture end with no decided-at.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from tspulab.dpi import fastpath
from tspulab.dpi.classify import Classification, Classifier
from tspulab.dpi.flow import FlowState, FlowTable, Network
from tspulab.dpi.pcap import read_capture

_TRANSPORT = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}


@dataclass(frozen=True, slots=True)
class FlowReport:
    """One flow of a replayed capture."""

    transport: str
    client: str
    client_port: int
    server: str
    server_port: int
    initiated_inside: bool
    packets_from_client: int
    packets_from_server: int
    bytes_from_client: int
    bytes_from_server: int
    first_seen: float
    last_seen: float
    classification: Classification

    @property
    def five_tuple(self) -> str:
        return (
            f"{self.transport} {self.client}:{self.client_port} -> {self.server}:{self.server_port}"
        )

    def to_json(self) -> str:
        c = self.classification
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "classification"}
        verdict = {f.name: getattr(c, f.name) for f in fields(c) if f.name != "hello"}
        verdict["protocol"] = str(c.protocol)
        verdict["ja3"], verdict["ja4"] = c.ja3, c.ja4
        record["classification"] = verdict
        return json.dumps(record, sort_keys=True)


@dataclass(slots=True)
class ReplayResult:
    flows: list[FlowReport]
    frames: int = 0
    undecoded: Counter[str] = field(default_factory=Counter)
    """Frames the decoder refused, by error class (Unsupported for ARP and the like)."""


def _text(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def _report(flow: FlowState, classifier: Classifier) -> FlowReport:
    return FlowReport(
        transport=_TRANSPORT.get(flow.proto, f"ip{flow.proto}"),
        client=_text(flow.client_addr),
        client_port=flow.client_port,
        server=_text(flow.server_addr),
        server_port=flow.server_port,
        initiated_inside=flow.initiated_inside,
        packets_from_client=flow.packets_from_client,
        packets_from_server=flow.packets_from_server,
        bytes_from_client=flow.bytes_from_client,
        bytes_from_server=flow.bytes_from_server,
        first_seen=flow.first_seen,
        last_seen=flow.last_seen,
        classification=classifier.conclude(flow),
    )


def replay_frames(
    frames: Iterable[tuple[float, int, bytes]],
    classifier: Classifier,
    table: FlowTable,
) -> ReplayResult:
    """Feed (timestamp, linktype, frame) through decode, the flow table and the classifier;
    packets of decided flows take ``fastpath.count_decided``, which leaves the same state. The
    loop is ``fastpath.replay``, compiled with the DPI core (tspulab/dpi/compiled.py)."""
    result = ReplayResult(flows=[])
    result.frames = fastpath.replay(frames, table, classifier, result.undecoded)
    ended = table.expire_all()
    ended.sort(key=lambda f: f.first_seen)
    result.flows = [_report(f, classifier) for f in ended]
    return result


def replay_capture(
    path: str | Path,
    reassembly: str = "none",
    subscriber_nets: Sequence[Network] = (),
    tor_relays: frozenset[str] = frozenset(),
    inspect_packets: int = 10,
    idle_timeout: float = 300.0,
) -> ReplayResult:
    classifier = Classifier(reassembly, tor_relays, inspect_packets)
    table = FlowTable(tuple(subscriber_nets), idle_timeout)
    return replay_frames(read_capture(path), classifier, table)


def replay_file(
    path: str | Path,
    reassembly: str = "none",
    subscriber_nets: Sequence[Network] = (),
    tor_relays: frozenset[str] = frozenset(),
    inspect_packets: int = 10,
    idle_timeout: float = 300.0,
) -> list[FlowReport]:
    """Every flow of a pcap/pcapng file with its classification, in order of first packet."""
    return replay_capture(
        path, reassembly, subscriber_nets, tor_relays, inspect_packets, idle_timeout
    ).flows


def run_replay_cli(
    path: str,
    reassembly: str,
    as_json: bool,
    subscriber_nets: Sequence[str],
    tor_relays_path: str | None,
    profile: str | None = None,
    registry_files: Sequence[str] = (),
    registry_inline: Sequence[str] = (),
) -> int:
    """The `tspulab replay` command: print one line per flow; 2 on unreadable input."""
    import sys

    from tspulab.dpi.errors import Malformed

    try:
        nets = [ipaddress.ip_network(n, strict=False) for n in subscriber_nets]
    except ValueError as err:
        print(f"tspulab replay: --subscriber-net: {err}", file=sys.stderr)
        return 2
    if profile is not None:
        from tspulab.profile_replay import run_profile_replay_cli

        return run_profile_replay_cli(path, profile, nets, registry_files, registry_inline, as_json)
    relays: frozenset[str] = frozenset()
    if tor_relays_path:
        from tspulab.dpi.fingerprints import tor

        relays = tor.load_relays(tor_relays_path)
    try:
        result = replay_capture(path, reassembly, nets, relays)
    except (OSError, Malformed) as err:
        print(f"tspulab replay: {err}", file=sys.stderr)
        return 2
    if as_json:
        for report in result.flows:
            print(report.to_json())
        return 0
    _print_table(path, result)
    return 0


def _print_table(path: str, result: ReplayResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path}: {result.frames} frames, {len(result.flows)} flows")
    for column in ("flow", "protocol", "SNI / Host", "JA4", "decided at", "detail"):
        table.add_column(column, overflow="fold")
    for r in result.flows:
        c = r.classification
        table.add_row(
            r.five_tuple,
            str(c.protocol),
            c.sni or c.host or "",
            c.ja4 or "",
            "-" if c.decided_at is None else str(c.decided_at),
            c.detail,
        )
    console = Console()
    console.print(table)
    if result.undecoded:
        console.print("not decoded: " + ", ".join(f"{k} {v}" for k, v in result.undecoded.items()))
