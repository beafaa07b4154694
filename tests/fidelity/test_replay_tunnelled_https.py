"""Fidelity, replay: the tunnelled-HTTPS pattern of §5.5 (N4P-#363 [R], §9.22) as
`tspulab replay --profile tunnelled-https-2024` judges a capture - the engine the live controller
runs. The capture is written here from scapy-crafted flows: random payloads (a fully encrypted
proxy's bytes) in the reported sizes and order, to the ranges and ports the Outline tests name.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from tspulab.cli import main

CLIENT = "10.0.0.2"
DIGITALOCEAN = "46.101.7.9"
VULTR = "45.76.1.2"
OTHER = "93.184.216.34"
PATTERN = [620, 1448, 530, -1300, -1300, 900]
"""Client packets positive, server negative: three client packets >= 411 B, then the server."""


def tcp_flow(server: str, dport: int, sport: int, sizes: list[int], t0: float) -> list[Ether]:
    rnd = random.Random(sport)
    seq = [1000, 5000]
    out = []

    def pkt(flags: str, payload: bytes, from_client: bool, t: float) -> None:
        src, dst = (CLIENT, server) if from_client else (server, CLIENT)
        sp, dp = (sport, dport) if from_client else (dport, sport)
        side = 0 if from_client else 1
        frame = Ether() / IP(src=src, dst=dst) / TCP(
            sport=sp, dport=dp, seq=seq[side], ack=seq[1 - side], flags=flags
        ) / payload  # fmt: skip
        frame.time = t
        seq[side] += len(payload) + (1 if "S" in flags else 0)
        out.append(frame)

    pkt("S", b"", True, t0)
    pkt("SA", b"", False, t0 + 0.01)
    pkt("A", b"", True, t0 + 0.02)
    for i, size in enumerate(sizes):
        pkt("PA", rnd.randbytes(abs(size)), size > 0, t0 + 0.03 + i * 0.005)
    return out


def replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flows: list[list[Ether]]
) -> list[dict[str, Any]]:
    pcap = tmp_path / "flows.pcap"
    wrpcap(str(pcap), [f for flow in flows for f in flow])
    argv = ["replay", "--profile", "tunnelled-https-2024", "--subscriber-net", "10.0.0.0/8"]
    assert main([*argv, "--json", str(pcap)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.mark.fidelity("t22", "s5-encapsulated-https", "s5-outline-range-port")
def test_t22_the_pattern_is_blocked_on_443_of_a_suspect_range_only_n4p363(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record_fidelity: Callable[..., None]
) -> None:
    """§9.22: a random-looking flow to a suspect range on 443 where the client sends >= 3 packets
    of >= 411 B and then the server answers is blocked; on port 5555 (DigitalOcean, fortuna's
    Outline test) or to another range it passes."""
    flows = [
        tcp_flow(DIGITALOCEAN, 443, 40001, PATTERN, 0.0),
        tcp_flow(VULTR, 443, 40002, PATTERN, 1.0),
        tcp_flow(DIGITALOCEAN, 5555, 40003, PATTERN, 2.0),
        tcp_flow(OTHER, 443, 40004, PATTERN, 3.0),
        # one large client packet, then the server (a curl fetch through Shadowsocks): passes
        tcp_flow(DIGITALOCEAN, 443, 40005, [640, -1274, -1300, 114, 90], 4.0),
    ]
    got = {r["client"]: r for r in replay(tmp_path, capsys, flows)}
    verdict = {port: got[f"{CLIENT}:{port}"]["verdict"] for port in range(40001, 40006)}
    packets = {port: got[f"{CLIENT}:{port}"]["packets"] for port in range(40001, 40006)}
    for port in (40001, 40002):
        assert (verdict[port]["action"], verdict[port]["rule"]) == ("drop", "tunnelled-https")
        # the handshake and the three client packets pass; the server's answer on is dropped
        assert packets[port] == {"forward": 6, "drop": 3}, packets[port]
    for port, sent in ((40003, 9), (40004, 9), (40005, 8)):
        assert verdict[port]["action"] == "allow" and packets[port] == {"forward": sent}
    assert got[f"{CLIENT}:40001"]["protocol"] == "tunnelled-https"
    record_fidelity(
        "t22", measured="drop on DigitalOcean and Vultr :443 from the server's answer; "
        "allow on DigitalOcean :5555, another range, and one large client packet",
    )  # fmt: skip
