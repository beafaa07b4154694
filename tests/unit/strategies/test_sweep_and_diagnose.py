"""The sweep's bookkeeping (pairs, ranking, tables, diff) and --from-capture on crafted captures."""

from __future__ import annotations

from pathlib import Path

from scapy.all import IP, TCP, Ether, Raw, wrpcap  # type: ignore[attr-defined]

from tspulab.strategies import hello
from tspulab.strategies.bench import Trial
from tspulab.strategies.command import diff, table
from tspulab.strategies.diagnose import diagnose, observe
from tspulab.strategies.sweep import (
    StrategyResult,
    by_window,
    live_judgement,
    opened_ports,
    pair_candidates,
    ranked,
)
from tspulab.strategies.verdicts import Judgement

P = ["tspu-2022", "tspu-2026-reassembly"]
OK = Judgement(True, "allow", None, "no rule matched", {"forward": 10})
DROP = Judgement(False, "drop", "sni-iv", "SNI-IV", {"forward": 3, "drop": 7})


def result(spec: str, per_profile: dict[str, list[Judgement | None]], ttfb: float = 0.01,
           live: bool = True) -> StrategyResult:  # fmt: skip
    n = len(next(iter(per_profile.values())))
    trials = [
        Trial(live, ttfb if live else None, "ok" if live else "reset", float(i)) for i in range(n)
    ]
    return StrategyResult(spec, trials, per_profile, 1.0)


def test_success_needs_the_live_answer_and_a_passing_verdict() -> None:
    r = result(
        "split:at=sni", {"tspu-2022": [OK, OK, None], "tspu-2026-reassembly": [DROP, OK, DROP]}
    )
    assert r.success_count("tspu-2022") == 2 and r.success_count("tspu-2026-reassembly") == 1
    assert r.why("tspu-2026-reassembly") == "drop (sni-iv) x2"
    assert r.why("tspu-2022") == "no flow in the capture x1"
    broken = result("prefix:record=ccs", {"tspu-2022": [OK, OK]}, live=False)
    assert broken.success_count("tspu-2022") == 0 and broken.why("tspu-2022") == "live: reset x2"
    assert r.ttfb_ms("tspu-2022") == 10.0


def test_ranking_table_and_diff() -> None:
    a = result("split:at=sni", {"tspu-2022": [OK, OK], "tspu-2026-reassembly": [DROP, DROP]}, 0.02)
    b = result("tlsrec:at=1", {"tspu-2022": [OK, OK], "tspu-2026-reassembly": [OK, OK]}, 0.01)
    c = result("none", {"tspu-2022": [DROP, DROP], "tspu-2026-reassembly": [DROP, DROP]})
    assert [r.strategy for r in ranked([a, b, c], "tspu-2022")] == [
        "tlsrec:at=1",
        "split:at=sni",
        "none",
    ]
    lines = table([a, b, c], "tspu-2022")
    assert lines[4].startswith("| 1 | `tlsrec:at=1` | 2/2 | 10.0 |")
    d = "\n".join(diff([a, b, c], "tspu-2022", "tspu-2026-reassembly"))
    assert "Stopped working (1):\n- `split:at=sni`: 2/2 -> 0/2 (drop (sni-iv) x2)" in d
    assert "Started working (0):\n- none" in d


def test_pairs_come_from_singles_that_failed_somewhere() -> None:
    split = result("split:at=sni", {"tspu-2022": [OK], "tspu-2026-reassembly": [DROP]})
    fake = result("fake:ttl=2", {"tspu-2022": [DROP], "tspu-2026-reassembly": [OK]})
    tlsrec = result("tlsrec:at=1", {"tspu-2022": [OK], "tspu-2026-reassembly": [OK]})
    udp = result("udpfake", {"tspu-2022": [DROP], "tspu-2026-reassembly": [DROP]})
    split2 = result("split:at=1", {"tspu-2022": [DROP], "tspu-2026-reassembly": [DROP]})
    pairs = [s.text() for s in pair_candidates([split, fake, tlsrec, udp, split2], P, 1, 10)]
    assert "split:at=sni+fake:ttl=2" in pairs
    assert not any("tlsrec" in p for p in pairs)  # passes everything alone
    assert not any("udpfake" in p and "split" in p for p in pairs)  # TCP with UDP: refused
    assert "split:at=sni+split:at=1" not in pairs  # one name twice is not a pair
    assert len(pair_candidates([split, fake, udp, split2], P, 1, 1)) == 1


def _flow(tmp_path: Path, name: str, server_reply: list, sport: int = 40000) -> Path:  # type: ignore[type-arg]
    c, s = "10.13.1.2", "10.13.3.2"
    ch = hello.build_client_hello(name, seed=bytes(32))
    pkts = [
        IP(src=c, dst=s) / TCP(sport=sport, dport=443, flags="S", seq=99),
        IP(src=s, dst=c) / TCP(sport=443, dport=sport, flags="SA", seq=500, ack=100),
        IP(src=c, dst=s) / TCP(sport=sport, dport=443, flags="A", seq=100, ack=501),
        IP(src=c, dst=s) / TCP(sport=sport, dport=443, flags="PA", seq=100, ack=501) / Raw(ch),
        *server_reply,
    ]
    for i, p in enumerate(pkts):
        p.time = 1000.0 + i * 0.2
    path = tmp_path / f"{name}.pcap"
    wrpcap(str(path), [Ether() / p for p in pkts])
    return path


def test_an_unanswered_hello_is_a_blackhole_that_sni_iv_predicts(tmp_path: Path) -> None:
    c, s = "10.13.1.2", "10.13.3.2"
    ch = hello.build_client_hello("blocked.example", seed=bytes(32))
    again = [
        IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="PA", seq=100, ack=501) / Raw(ch)
    ] * 3
    path = _flow(tmp_path, "blocked.example", again)
    (flow,) = observe(str(path)).values()
    assert flow.symptom() == "blackhole" and flow.retransmits == 3
    text = "\n".join(diagnose(str(path), [*P, "twitter-throttle-2021"]))
    assert "seen blackhole (first data retransmitted 3x" in text
    matches = next(line for line in text.splitlines() if "matches:" in line)
    assert (
        "tspu-2022 (drop, rule sni-iv)" in matches
        and "tspu-2026-reassembly (drop, rule sni-iv)" in matches
    )
    assert "twitter-throttle-2021 (allow) predicts ok" in text


def test_a_reset_after_the_hello_is_what_sni_i_predicts(tmp_path: Path) -> None:
    c, s = "10.13.1.2", "10.13.3.2"
    rst = [IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="RA", seq=501, ack=100 + 200)]
    path = _flow(tmp_path, "twitter.com", rst)
    text = "\n".join(diagnose(str(path), P))
    assert "seen reset" in text
    matches = next(line for line in text.splitlines() if "matches:" in line)
    assert "tspu-2022 (reset, rule sni-i)" in matches
    assert "tspu-2026-reassembly (drop, rule sni-iv) predicts blackhole" in text


def test_only_connections_opened_in_the_capture_are_judged(tmp_path: Path) -> None:
    c, s = "10.13.1.2", "10.13.3.2"
    pkts = [
        # an earlier run's connection still retransmitting its (whole) ClientHello
        IP(src=c, dst=s) / TCP(sport=41000, dport=443, flags="PA", seq=1, ack=1) / Raw(b"x" * 10),
        IP(src=c, dst=s) / TCP(sport=42000, dport=443, flags="S", seq=1),
        IP(src=s, dst=c) / TCP(sport=443, dport=42000, flags="SA", seq=9, ack=2),
    ]
    path = tmp_path / "c.pcap"
    wrpcap(str(path), [Ether() / p for p in pkts])
    assert opened_ports(path) == {42000}


def test_live_judgement_and_time_windows() -> None:
    flow = {"action": "police", "rule": "twitter-sni", "reason": "r", "fates": {"forward": 3}}
    assert not live_judgement(flow).passed
    ok = {"action": "allow", "rule": None, "reason": "r", "fates": {"forward": 9}}
    assert live_judgement(ok).passed
    dropped = {"action": "allow", "rule": None, "reason": "r", "fates": {"forward": 9, "drop": 1}}
    assert not live_judgement(dropped).passed
    trials = [Trial(True, 0.01, "ok", 10.0), Trial(True, 0.01, "ok", 20.0)]
    per = by_window(trials, [(10.5, OK), (20.1, OK), (20.2, DROP), (9.0, DROP)])
    assert per == [OK, DROP]  # a failing flow of a trial wins; one before every trial is ignored


def test_the_live_box_reset_is_a_rst_ack_with_the_packets_numbers() -> None:
    from tspulab.strategies.censor import as_reset

    reply = IP(src="10.13.3.2", dst="10.13.1.2", id=7) / TCP(
        sport=443, dport=40000, flags="PA", seq=500, ack=900, options=[("NOP", None)] * 4
    ) / Raw(b"server hello")  # fmt: skip
    rst = IP(as_reset(bytes(reply)))
    assert rst[TCP].flags == "RA" and (rst[TCP].seq, rst[TCP].ack) == (500, 900)
    assert len(rst[TCP].payload) == 0 and rst[TCP].dataofs == 5 and rst.len == 40
    again = IP(bytes(rst.copy()))
    del again[TCP].chksum, again[IP].chksum
    again = IP(bytes(again))
    assert (rst[TCP].chksum, rst[IP].chksum) == (again[TCP].chksum, again[IP].chksum)
