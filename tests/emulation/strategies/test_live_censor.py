"""The bench's box acting live (censor.py runs TspuEngine on an NFQUEUE in the TSPU namespace):
the client really gets reset, dropped or through; and a capture taken at the client of a
connection the live box broke is diagnosed by `--from-capture` as that profile's behaviour."""

from __future__ import annotations

from pathlib import Path

from tspulab.strategies.diagnose import diagnose
from tspulab.strategies.spec import parse


def _live(bench, profile: str, spec: str, n: int = 2):  # type: ignore[no-untyped-def]
    strategy = parse(spec)
    with bench.censor(profile) as flows, bench.strategy(strategy):
        trials = [bench.trial(strategy) for _ in range(n)]
    return trials, [f for f in flows if f["server_port"] == 443]


def test_2022_box_resets_the_control_and_lets_a_split_hello_through(bench) -> None:  # type: ignore[no-untyped-def]
    """§2.2 SNI-I (OONI-22: Twitter by RST from 2022-03-04); §6 split row (CP-TSPU §2.5)."""
    trials, flows = _live(bench, "tspu-2022", "none")
    assert not any(t.ok for t in trials)
    assert all("errno=104" in t.detail for t in trials)  # ECONNRESET at the client
    assert {f["rule"] for f in flows} == {"sni-i"}
    trials, flows = _live(bench, "tspu-2022", "split:sni")
    assert all(t.ok for t in trials) and {f["action"] for f in flows} == {"allow"}


def test_2026_box_drops_a_split_hello_after_reassembly(bench) -> None:  # type: ignore[no-untyped-def]
    """§5.10 (teleproxy #39 [A]): the 2026 nodes reassemble TCP; §6 split row: fails there."""
    trials, flows = _live(bench, "tspu-2026-reassembly", "split:sni", n=1)
    seen = [(f["client_port"], f["action"], f["rule"], f["fates"]) for f in flows]
    assert not trials[0].ok, (trials, seen)
    assert "sni-iv" in {f["rule"] for f in flows}, seen


def test_from_capture_names_the_profile_a_client_capture_shows(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A capture at the client of connections broken by the live 2022 box (reset) and the live
    2026 box (no answer to the ClientHello) is matched to those profiles' rules."""
    for profile, seen, rule in (
        ("tspu-2022", "reset", "tspu-2022 (reset, rule sni-i)"),
        ("tspu-2026-reassembly", "blackhole", "tspu-2026-reassembly (drop, rule sni-iv)"),
    ):
        capture = tmp_path / f"{profile}.pcap"
        strategy = parse("none")
        with bench.censor(profile), bench.capture(capture, at="client"):
            assert not bench.trial(strategy).ok
        lines = diagnose(
            str(capture), ["tspu-2022", "twitter-throttle-2021", "tspu-2026-reassembly"]
        )
        flow_lines = [i for i, line in enumerate(lines) if f"seen {seen}" in line]
        assert flow_lines, "\n".join(lines)
        assert rule in lines[flow_lines[0] + 1], "\n".join(lines)
