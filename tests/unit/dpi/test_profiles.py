"""The profile loader: every packaged profile loads and cites; bad files name file:line:col: field."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from tests.datapaths import PCAPS
from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tspulab.dpi.engine import TspuEngine
from tspulab.dpi.flow import FlowState
from tspulab.dpi.policy import HostBlock, decide
from tspulab.dpi.profile import (
    PROFILES_DIR,
    ProfileError,
    load_profile,
    load_profile_text,
    profile_names,
)
from tspulab.dpi.registry import Registry
from tspulab.dpi.verdict import BY_ACTION, Action, Drop, Police

EXPECTED = {
    "rkn-2018-ip",
    "twitter-throttle-2021",
    "tspu-2022",
    "quic-sni-2023",
    "vpn-protocols-2023",
    "vpn-detect-2025",
    "youtube-2024",
    "ech-2024",
    "hosting-freeze-2025",
    "whitelist-2025",
    "tspu-2026-reassembly",
    "tspu-2026-ja4",
    "hosting-freeze-h3-2025",
    "vpn-verify-block-2025",
}


def test_all_issue_profiles_ship_and_load() -> None:
    assert set(profile_names()) >= EXPECTED
    for name in profile_names():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.spec.facts and profile.rules


def _sources(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["source"]] if "source" in node else []
        return found + [s for v in node.values() for s in _sources(v)]
    if isinstance(node, list):
        return [s for v in node for s in _sources(v)]
    return []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_parameter_cites_a_section(name: str) -> None:
    """Each cited value, set, rule and fact names a section of tspu-behaviour.md."""
    data = load_profile(name).spec.model_dump()
    sources = _sources(data)
    assert len(sources) >= 10
    assert all(re.search(r"§\d", s) for s in sources)


def test_packaged_path_and_name_both_load() -> None:
    by_path = load_profile(str(PROFILES_DIR / "tspu-2022.yaml"))
    assert by_path.spec == load_profile("tspu-2022").spec


GOOD = (PROFILES_DIR / "ech-2024.yaml").read_text()


def _error(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile_text(text, "bad.yaml")
    return str(info.value)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_parameter_without_source_is_rejected_with_its_line() -> None:
    text = GOOD.replace(
        '{value: 0, source: "§5.6 N4P-#417: packets on the connection are dropped after the signature, no RST"}',
        "{value: 0}",
    )
    line = _line_of(text, "after_packets: {value: 0}")
    message = _error(text)
    assert f"bad.yaml:{line}:" in message
    assert "rules[0].action.after_packets.source" in message and "missing source" in message


def test_bare_value_where_a_cited_one_is_needed() -> None:
    text = GOOD.replace(
        'budget_packets: {value: 20, source: "§3 CP-THR (not measured for 2024, §8)"}',
        "budget_packets: 20",
    )
    line = _line_of(text, "budget_packets: 20")
    message = _error(text)
    assert f"bad.yaml:{line}:3: inspection.budget_packets:" in message
    assert "every parameter carries a source" in message


def test_source_must_name_a_known_section() -> None:
    text = GOOD.replace('source: "§5.6 N4P-#417: SNI = cloudflare-ech.com"', 'source: "N4P-#417"')
    assert "names no section" in _error(text)
    text = GOOD.replace('source: "§5.6 N4P-#417: SNI = cloudflare-ech.com"', 'source: "§12 X"')
    assert "§12, not a section" in _error(text)


def test_unknown_set_action_parameter_and_key_are_named() -> None:
    text = GOOD.replace("sni_in: ech-outer", "sni_in: ech-outr")
    message = _error(text)
    assert f"bad.yaml:{_line_of(text, 'sni_in: ech-outr')}:" in message
    assert "unknown set 'ech-outr'; did you mean 'ech-outer'?" in message
    text = GOOD.replace("kind: drop-after", "kind: police")
    message = _error(text)
    assert "action police needs 'rate_bps'" in message
    assert "'after_packets' is not a police parameter" in message
    text = GOOD.replace("  reassembly:", "  reasembly:")
    assert "unknown key 'reasembly'; did you mean 'reassembly'?" in _error(text)


def test_yaml_syntax_error_and_unknown_profile() -> None:
    assert _error("name: [unclosed\n").startswith("bad.yaml:")
    with pytest.raises(ProfileError, match="did you mean 'tspu-2022'"):
        load_profile("tspu-2021")


def test_file_outside_the_package_may_have_any_name(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(GOOD)
    assert load_profile(str(path)).name == "ech-2024"  # outside the package, any file name


def test_with_set_entries_copies_and_rejects_unknown_sets() -> None:
    base = load_profile("tspu-2022")
    extended = base.with_set_entries("sni-ii", ["*.google.com"])
    assert extended.sets["sni-ii"].match_domain("news.google.com") is not None
    assert base.sets["sni-ii"].match_domain("news.google.com") is None
    with pytest.raises(ValueError, match="no set 'nope'"):
        base.with_set_entries("nope", ["x.example"])


def test_decide_is_pure_with_time_as_an_argument() -> None:
    """§5.8 §9.19: a host block is state passed in with its expiry; decide reads only its arguments."""
    profile = load_profile("hosting-freeze-2025")
    flow = FlowState(
        key=(6, b"\x0a\x00\x00\x02", 40000, b"\x89\x4a\x05\x06", 443), proto=6,
        client_addr=b"\x0a\x00\x00\x02", client_port=40000, server_addr=b"\x89\x4a\x05\x06",
        server_port=443, initiated_inside=True, first_seen=0.0, last_seen=0.0,
    )  # fmt: skip
    blocks = {flow.client_addr: [HostBlock("ovh", (443,), "tcp", 600.0, "udp-host-block", 0.0)]}
    at = {
        t: decide(flow, None, Registry(), profile, t, host_blocks=blocks)
        for t in (10.0, 599.0, 601.0)
    }
    assert at[10.0].action is Action.DROP and at[10.0].hard_timeout_s == 590.0
    assert at[599.0].action is Action.DROP
    assert at[601.0].action is Action.ALLOW and at[601.0].final
    assert decide(flow, None, Registry(), profile, 10.0, host_blocks=blocks) == at[10.0]


def test_verdict_json_is_declarative() -> None:
    c = Conn(engine("twitter-throttle-2021"))
    c.handshake(0.0)
    v = c.data(0.1, hello_record("twitter.com")).verdict
    record = json.loads(json.dumps(v.to_json()))
    assert record["action"] == "police" and record["final"] is True
    assert (record["rate_bps"], record["burst_bytes"], record["direction"]) == (
        130000,
        16384,
        "both",
    )
    assert record["idle_timeout_s"] == 600.0 and "§3 CP-THR" in record["reason"]
    assert "loss" not in record
    assert isinstance(v, Police) and v.action is Action.POLICE
    assert Drop(True, "x", None).to_json() == {
        "action": "drop", "final": True, "reason": "x", "rule": None,
    }  # fmt: skip


def test_verdict_types_carry_only_their_action_fields() -> None:
    """A tagged verdict: one type per action, each with that action's parameters only."""
    assert set(BY_ACTION) == set(Action)
    common = {"final", "reason", "rule", "idle_timeout_s", "hard_timeout_s"}
    own = {a: {f.name for f in fields(cls)} - common for a, cls in BY_ACTION.items()}
    assert own[Action.ALLOW] == set()
    assert own[Action.DETECT] == {"block_after_s"}
    assert own[Action.POLICE] == {"rate_bps", "burst_bytes", "direction"}
    assert own[Action.RESET] == {"reset_side", "reset_mode"}
    assert own[Action.DROP_AFTER] == {"after_packets"}
    assert own[Action.FREEZE_AFTER_BYTES] == {"freeze_bytes", "reset"}
    assert own[Action.RANDOM_LOSS] == {"loss", "direction"}
    for cls in BY_ACTION.values():
        assert cls.action in BY_ACTION and BY_ACTION[cls.action] is cls
    with pytest.raises(TypeError):
        Police(True, "x", None, rate_bps=1)  # type: ignore[call-arg]


CHROME = PCAPS / "chrome.pcap"


def test_cli_replay_with_profile_prints_per_flow_verdicts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """§2.2 SNI-IV, §9.2: `tspulab replay --profile tspu-2022` on nDPI's chrome.pcap; with the
    capture's SNI in the registry, the ClientHello and all later packets of each flow are dropped."""
    from tspulab.cli import main

    assert main(["replay", "--profile", "tspu-2022", str(CHROME)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("127 frames, 6 flows, profile tspu-2022")
    assert all("[tls www.iit.cnr.it] allow rule=-" in line for line in out[1:7])
    argv = ["replay", "--profile", "tspu-2022", "--registry-inline", "www.iit.cnr.it", "--json"]
    assert main([*argv, str(CHROME)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 6
    for record in records:
        assert record["verdict"]["rule"] == "sni-iv" and record["verdict"]["final"]
        assert record["packets"]["forward"] == 3  # SYN, SYN/ACK, ACK; the ClientHello is dropped
        assert record["packets"]["drop"] > 0


def test_cli_replay_with_unknown_profile_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    from tspulab.cli import main

    assert main(["replay", "--profile", "tspu-2021", "nonexistent.pcap"]) == 2
    assert "did you mean 'tspu-2022'" in capsys.readouterr().err


def test_rule_reassembly_is_none_or_the_profiles() -> None:
    text = (PROFILES_DIR / "youtube-2024.yaml").read_text()
    bad = text.replace(
        'reassembly: {value: none, source: "§5.7 NTC-8055 posts 12, 34',
        'reassembly: {value: tls-records, source: "§5.7 NTC-8055 posts 12, 34',
    )
    assert bad != text
    assert "rules[2].when.reassembly: a rule's reassembly is 'none'" in _error(bad)


def test_quic_joining_is_its_own_setting_and_every_issue_profile_states_it() -> None:
    """Issue 15 (mismatch 4): TCP reassembly and QUIC CRYPTO joining are separate settings; the
    shipped profiles state both; one written before the split keeps the old coupling."""
    for name in EXPECTED:
        joined = load_profile(name).spec.inspection.quic_join_initials
        assert joined is not None and "§" in joined.source, name
    old = "\n".join(line for line in GOOD.splitlines() if "quic_join_initials" not in line)
    for mode, joined in (("none", False), ("tcp", True)):
        text = old.replace("reassembly: {value: none", f"reassembly: {{value: {mode}")
        engine = TspuEngine(load_profile_text(text, "old.yaml"), Registry(), [])
        assert engine.classifier.join_quic is joined
