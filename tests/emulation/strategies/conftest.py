"""A live strategy bench (tspulab/strategies/bench.py) shared by the tests of a module.

Skipped, with the reason, without root, the programs the bench drives, or netfilterqueue.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

from tspulab.dpi.pcap import read_capture
from tspulab.strategies.bench import SERVER, Bench, Trial, missing_programs
from tspulab.strategies.spec import parse
from tspulab.strategies.sweep import judge_trials
from tspulab.strategies.verdicts import Judgement

PROFILES = ("tspu-2022", "twitter-throttle-2021", "tspu-2026-reassembly")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the strategy bench needs root (network namespaces, iptables)"
    missing = missing_programs()
    if missing:
        return f"missing programs: {', '.join(missing)} (run scripts/setup.sh)"
    if importlib.util.find_spec("netfilterqueue") is None:
        return "netfilterqueue is not installed (scripts/setup.sh)"
    return None


@dataclass
class Run:
    spec: str
    trials: list[Trial]
    capture: Path
    judged: dict[str, list[Judgement | None]]

    def passes(self, profile: str) -> bool:
        """Every trial answered by the server and let through by the profile."""
        return all(t.ok for t in self.trials) and all(
            j is not None and j.passed for j in self.judged[profile]
        )

    def verdicts(self, profile: str) -> list[str]:
        return [f"{j.action}/{j.rule}" if j else "no flow" for j in self.judged[profile]]

    def client_segments(self) -> list[dpkt.ip.IP]:
        """The client's IPv4 packets to the server as the box saw them, in capture order."""
        out = []
        server = bytes(int(x) for x in SERVER.split("."))
        for _, _, frame in read_capture(self.capture):
            eth = dpkt.ethernet.Ethernet(frame)
            if isinstance(eth.data, dpkt.ip.IP) and eth.data.dst == server:
                out.append(eth.data)
        return out

    def server_packets(self) -> list[dpkt.ip.IP]:
        out = []
        server = bytes(int(x) for x in SERVER.split("."))
        for _, _, frame in read_capture(self.capture):
            eth = dpkt.ethernet.Ethernet(frame)
            if isinstance(eth.data, dpkt.ip.IP) and eth.data.src == server:
                out.append(eth.data)
        return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with Bench(target="twitter.com", workdir=tmp_path_factory.mktemp("bench"), quic=True) as b:
        yield b


@pytest.fixture
def run(bench: Bench, tmp_path: Path):  # type: ignore[no-untyped-def]
    def _run(
        spec: str, trials: int = 2, transport: str = "tcp", profiles: tuple[str, ...] = PROFILES
    ) -> Run:
        strategy = parse(spec)
        capture = tmp_path / "box.pcap"
        with bench.capture(capture), bench.strategy(strategy):
            done = [bench.trial(strategy, transport) for _ in range(trials)]
        return Run(spec, done, capture, judge_trials(capture, done, profiles, bench.target))

    return _run
