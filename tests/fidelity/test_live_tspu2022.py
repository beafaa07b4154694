"""Fidelity, live: the 2022 TSPU's SNI and IP behaviours (tspu-behaviour.md §2, CP-TSPU, IMC
2022; the six behaviours as quoted in CP-TSPU-S [S]) on a real lab, read from packet captures on
both sides of the TSPU switch: what the subscriber sent and received (the subscriber-side port)
and what the TSPU let through upstream.

One lab (`scenarios/tspu-2022-sni.yaml`); probes run at once where they are independent; each
test then checks one statement against the captures and the controller's verdicts.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import silent
from tests.fidelity.livelab import rtt_ms, sandboxed, start_wire_server, verdicts, wire
from tspulab.dpi.packet import decode
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.registry import load_inline
from tspulab.parity import capture_name
from tspulab.scenario.live import LiveLab
from tspulab.scenario.schema import load_scenario
from tspulab.topologies.multi_isp import TSPU_UPSTREAM_PORT

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "tspu-2022-sni.yaml"
UPSTREAM_PCAP = "fidelity-upstream.pcap"
IP_BLOCKED = "195.82.146.215"  # the scenario's bystander, pushed into the registry mid-run
RST, SYN, ACK = 0x04, 0x02, 0x10


@dataclass(frozen=True)
class Seen:
    """One TCP packet of a capture: time, direction (from the subscriber?), flags, payload."""

    t: float
    up: bool
    flags: int
    payload: int
    sport: int


def _packets(pcap: Path, server: str) -> list[Seen]:
    out = []
    for t, link, frame in read_capture(pcap):
        try:
            p = decode(frame, link)
        except Exception:
            continue
        if p.proto != 6:
            continue
        src, dst = str(ipaddress.ip_address(p.src)), str(ipaddress.ip_address(p.dst))
        if server not in (src, dst):
            continue
        up = dst == server
        out.append(Seen(t, up, p.tcp_flags, len(p.payload), p.sport if up else p.dport))
    return out


def _tcpdump(live: LiveLab, iface: str, path: Path) -> subprocess.Popen[bytes]:
    log = path.with_suffix(".log")
    proc = subprocess.Popen(
        ["tcpdump", "-i", iface, "-U", "-s", "0", "-w", str(path)],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), start_new_session=True,
    )  # fmt: skip
    live.record.process(proc.pid, f"tcpdump {iface}", group_leader=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "listening" not in log.read_text():
        time.sleep(0.05)
    return proc


def _measure(runs: Path) -> dict[str, Any]:
    with LiveLab(load_scenario(SCENARIO), runs, capture=True, log=silent) as live:
        tspu = live.tspu_switch
        upstream = _tcpdump(live, f"{tspu}-eth{TSPU_UPSTREAM_PORT}", live.run_dir / UPSTREAM_PCAP)
        sub = live.host("sub1")
        m: dict[str, Any] = {"run_dir": str(live.run_dir), "addresses": dict(live.addresses)}
        m["rtt_ms"] = rtt_ms(sub, live.addresses["twitter"])
        with ThreadPoolExecutor(max_workers=4) as pool:
            probes = {
                "twitter": pool.submit(live.probe, "sub1", "twitter", timeout_s=3),
                "rutracker": pool.submit(live.probe, "sub1", "rutracker", timeout_s=3),
                "google": pool.submit(
                    live.probe, "sub1", "google", path="/bulk", range_bytes=65536, timeout_s=3
                ),
            }
            m.update({k: f.result().to_json() for k, f in probes.items()})
        # IP mode: the bystander's address goes into the registry mid-run.
        registry = live.registry
        registry.merge(load_inline([IP_BLOCKED], "fidelity"))
        live.push_registry(registry)
        m["ip_https"] = live.probe("sub1", "bystander", timeout_s=3).to_json()
        m["ip_ping"] = live.probe("sub1", "bystander", kind="ping", timeout_s=2).to_json()
        # An outside-initiated connection naming a registry host (SNI-IV's trigger).
        start_wire_server(live, sub, ["rutracker.org"], 64 * 1024)
        m["outside"] = wire(
            live.host("hosting"), "--addr", sub.IP(), "--sni", "rutracker.org",
            "--request", str(64 * 1024), "--timeout", "5",
        )  # fmt: skip
        m["verdicts"] = verdicts(live)
        time.sleep(0.3)
        upstream.send_signal(2)
        upstream.wait(timeout=5)
    run_dir = Path(m["run_dir"])
    sub_pcap = run_dir / capture_name(live.isps[0].name)
    m["down"] = {s: _packets(sub_pcap, a) for s, a in m["addresses"].items()}
    m["up"] = {s: _packets(run_dir / UPSTREAM_PCAP, a) for s, a in m["addresses"].items()}
    return m


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return sandboxed(tmp_path_factory, _measure)


def _hello(packets: list[Seen]) -> Seen:
    return next(p for p in packets if p.up and p.payload > 0)


@pytest.mark.fidelity("s2-sni-i", "t03", "s1-in-path")
def test_s2_sni_i_reply_rewritten_into_rst_within_one_rtt_cp_tspu(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§2.2 SNI-I [S] (CP-TSPU-S), §9.3: the ClientHello passes, the server's first reply reaches
    the client as a RST/ACK without payload; curl sees a reset about 1 RTT after its ClientHello.
    Read from the subscriber-side capture: no server payload ever arrives, the first server
    packet after the ClientHello is a RST/ACK. Tolerance: the reset within one round trip of
    the lab's handshake (SYN to SYN/ACK at the same port) plus 50 ms for the controller, which
    decides on the ClientHello and rewrites the reply (measured 7.4 ms after the ClientHello
    against a 0.4 ms round trip, and 17.7 ms against 2.3 ms, at loads of 6-13 on 2 cores: on a
    real path of tens of ms that is "about 1 RTT"; in the lab the controller's time dominates)."""
    assert lab["twitter"]["outcome"] == "reset", lab["twitter"]
    down = lab["down"]["twitter"]
    hello = _hello(down)
    syn = next(p for p in down if p.up and p.flags & SYN)
    synack = next(p for p in down if not p.up and p.flags & SYN and p.sport == syn.sport)
    after = [p for p in down if not p.up and p.t > hello.t and p.sport == hello.sport]
    assert after and after[0].flags & RST and after[0].flags & ACK and after[0].payload == 0
    assert all(p.payload == 0 for p in after), "no server data reaches the client"
    reset_ms = (after[0].t - hello.t) * 1000
    handshake_ms = (synack.t - syn.t) * 1000
    up = [p for p in lab["up"]["twitter"] if p.sport == hello.sport]
    assert any(p.payload for p in up if p.up), "the ClientHello itself passed upstream"
    record_fidelity("s2-sni-i", measured=f"RST/ACK {reset_ms:.1f} ms after the ClientHello "
                    f"(handshake RTT {handshake_ms:.1f} ms, ping {lab['rtt_ms']:.2f} ms)")  # fmt: skip
    record_fidelity("t03", measured=f"reset after {reset_ms:.1f} ms (RTT {handshake_ms:.1f} ms)")
    record_fidelity("s1-in-path", measured="the server's reply rewritten into a RST/ACK in path")
    assert reset_ms <= handshake_ms + 50


@pytest.mark.fidelity("s2-sni-iv", "t02")
def test_s2_sni_iv_client_hello_retransmitted_unanswered_no_rst_cp_tspu(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§2.2 SNI-IV [S] (CP-TSPU-S), §9.2: a registry SNI in one segment: the ClientHello never
    passes the box (absent upstream), the server never ACKs it, the client retransmits it with
    a growing timeout, no RST anywhere, curl times out. Tolerance: at least 2 retransmissions
    in 3 s, each gap at least as long as the one before (exponential RTO)."""
    assert lab["rutracker"]["outcome"] == "timeout", lab["rutracker"]
    down = lab["down"]["rutracker"]
    hello = _hello(down)
    sends = [p.t for p in down if p.up and p.payload and p.sport == hello.sport]
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    from_server = [p for p in down if not p.up and p.t > hello.t and p.sport == hello.sport]
    upstream = [p for p in lab["up"]["rutracker"] if p.up and p.payload]
    record_fidelity("s2-sni-iv", measured=f"ClientHello sent {len(sends)}x (gaps "
                    f"{', '.join(f'{g * 1000:.0f}' for g in gaps)} ms), nothing back, no RST")  # fmt: skip
    record_fidelity("t02", measured=f"{len(sends) - 1} retransmissions, no RST")
    assert len(sends) >= 3
    assert all(b >= a * 0.9 for a, b in itertools.pairwise(gaps)), gaps
    assert from_server == [] and upstream == []
    assert not any(p.flags & RST for p in down + lab["up"]["rutracker"])


@pytest.mark.fidelity("s2-sni-ii", "t04")
def test_s2_sni_ii_5_to_8_packets_then_drops_both_ways_cp_tspu(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§2.2 SNI-II [S] (CP-TSPU-S), §9.4: after the ClientHello 5-8 more packets pass in either
    direction, then everything is dropped both ways; the 64 KB transfer never completes.
    Counted from the captures: client packets after the ClientHello seen upstream (passed) plus
    server packets seen at the subscriber side (passed). Tolerance: the box's pick lies in 5-8 and
    the count within one of it (measured: pick 5, 6 passed; pick 8, 9 passed: a packet crossing
    the switch while the verdict's rules go in)."""
    assert not lab["google"]["ok"], lab["google"]
    hello = _hello(lab["down"]["google"])
    passed_up = [p for p in lab["up"]["google"]
                 if p.up and p.t >= hello.t and p.sport == hello.sport]  # fmt: skip
    passed_down = [p for p in lab["down"]["google"]
                   if not p.up and p.t > hello.t and p.sport == hello.sport]  # fmt: skip
    # the ClientHello itself is the first client packet seen upstream after it
    passed = len(passed_up) - 1 + len(passed_down)
    verdict = next(v["verdict"] for v in lab["verdicts"]
                   if v["sni"] == "www.google.com" and v["flow"]["client_port"] == hello.sport)  # fmt: skip
    record_fidelity("s2-sni-ii", measured=f"{passed} packets passed after the ClientHello "
                    f"(verdict's pick {verdict['after_packets']})")  # fmt: skip
    record_fidelity("t04", measured=f"{passed} packets, then drops")
    assert verdict["action"] == "drop-after"
    # The box's pick is the published 5-8; what crosses the lab can be one more (measured: pick
    # 5 -> 6, pick 8 -> 9 on a quiet machine): a packet already past the switch while the
    # verdict's drop rules go in. The engine itself passes exactly the pick (unit tests).
    assert 5 <= verdict["after_packets"] <= 8
    assert abs(passed - verdict["after_packets"]) <= 1


@pytest.mark.fidelity("s2-ip", "t13", "s2-ip-trigger-out-of-registry")
def test_s2_ip_mode_syn_and_icmp_dropped_cp_tspu(lab: dict[str, Any], record_fidelity) -> None:  # type: ignore[no-untyped-def]
    """§2.2 IP [S], §9.13 (OONI-TOR, CP-TSPU): a registry address: SYNs get no SYN/ACK (the
    client retransmits its SYN until curl times out), ICMP echo is dropped too."""
    down = lab["down"]["bystander"]
    syns = [p for p in down if p.up and p.flags & SYN]
    synacks = [p for p in down if not p.up and p.flags & SYN]
    record_fidelity("s2-ip", measured=f"{len(syns)} SYNs, 0 SYN/ACKs; ping "
                    f"{lab['ip_ping']['outcome']}")  # fmt: skip
    record_fidelity(
        "t13", measured=f"{len(syns)} SYNs unanswered; ICMP {lab['ip_ping']['outcome']}"
    )
    assert lab["ip_https"]["outcome"] == "timeout", lab["ip_https"]
    assert lab["ip_ping"]["outcome"] == "timeout", lab["ip_ping"]
    assert len(syns) >= 2 and synacks == []


@pytest.mark.fidelity("s2-asymmetric", "t01")
def test_s2_outside_initiated_registry_sni_passes_cp_tspu(
    lab: dict[str, Any], record_fidelity
) -> None:  # type: ignore[no-untyped-def]
    """§2.3 CP-TSPU ("no test sequence that began with a packet from the remote peer triggered
    blocking"), §9.1: a connection opened from outside to a server in the subscriber's network,
    with a registry name in its ClientHello, completes."""
    out = lab["outside"]
    record_fidelity("s2-asymmetric", measured=f"outside-initiated rutracker.org: "
                    f"{out['requests'][0]['bytes']} of 65536 bytes")  # fmt: skip
    assert out["requests"] and out["requests"][0]["complete"], out
