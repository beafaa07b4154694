"""Scenario campaign keys: parsed values (times, durations, ISPs, hosts, steps) and robustness.

The failing files for each rule are in tests/scenarios/invalid/campaign_*.yaml (run by
test_scenario_schema.py); here the valid campaign is read back value by value.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tspulab import cli
from tspulab.scenario.campaign import Expectation, Isp
from tspulab.scenario.model import Scenario
from tspulab.scenario.scalars import (
    format_duration,
    is_relative_time,
    parse_duration,
    time_offset_s,
)
from tspulab.scenario.schema import ScenarioError, load_scenario, load_scenario_text

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN = REPO / "tests" / "scenarios" / "valid" / "campaign.yaml"
DAY, HOUR = 86400.0, 3600.0
START = datetime(2018, 4, 13, tzinfo=UTC)


def _campaign() -> Scenario:
    return load_scenario(CAMPAIGN)


def _text() -> str:
    return CAMPAIGN.read_text(encoding="utf-8")


def _errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "c.yaml")
    return [f"{e.field}: {e.message}" for e in info.value.errors]


# --- durations and times --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("90s", 90.0),
        ("2h", 7200.0),
        ("1d12h", 129600.0),
        ("3d4h30m", 3 * DAY + 4 * HOUR + 1800),
        ("1m0.5s", 60.5),
        ("10m", 600.0),
        ("2d", 2 * DAY),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "1h2d", "-1h", "+1h", "1.5h", "2 h", "1d 2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@given(st.integers(0, 400 * 86400))
def test_format_duration_round_trips(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert text == "0s" or not text.startswith("0")


def test_format_duration_shortest() -> None:
    assert [format_duration(s) for s in (0, 59, 60, 3600, 129600, 90061, 0.25)] == [
        "0s",
        "59s",
        "1m",
        "1h",
        "1d12h",
        "1d1h1m1s",
        "0.25s",
    ]


def test_relative_and_absolute_times() -> None:
    assert is_relative_time("+3d4h30m") and is_relative_time("0s") and is_relative_time("90s")
    assert not is_relative_time("+") and not is_relative_time("stage 1")
    assert time_offset_s("+3d", None) == 3 * DAY
    later = datetime(2018, 4, 16, 12, tzinfo=UTC)
    assert time_offset_s(later, START) == 3.5 * DAY
    assert time_offset_s(later, None) is None


# --- the valid campaign, value by value -------------------------------------------------------


def test_clock() -> None:
    s = _campaign()
    assert s.clock.start == START and s.clock.speed == 86400.0
    assert s.clock.real_s(DAY) == 1.0
    assert s.clock.iso(3.5 * DAY) == "2018-04-16T12:00:00Z"
    assert Scenario.model_fields["clock"].default.start is None  # default: no start, speed 1


def test_timeline_times_labels_and_words() -> None:
    s = _campaign()
    assert [(e.label, e.at_s) for e in s.timeline] == [
        ("stage 0", 3 * DAY + 5 * HOUR),
        ("telegram moves", 3.5 * DAY),
        ("stage 1", 3 * DAY + 18 * HOUR),
        ("t+5d", 5 * DAY),
    ]
    moves, stage1 = s.timeline[1], s.timeline[2]
    assert moves.move_service is not None
    assert moves.move_service.address == IPv4Address("18.196.4.7")
    assert stage1.what() == ("registry_add 18.196.0.0/15", "circumvention start socks-proxy")
    assert s.timeline[0].probe and not s.timeline[1].probe


def test_step_at_and_windows() -> None:
    s = _campaign()
    assert s.step_at(0) == "start"
    assert s.step_at(3 * DAY + 5 * HOUR - 1) == "start"
    assert s.step_at(3 * DAY + 5 * HOUR) == "stage 0"  # at the entry: the entry's step
    assert s.step_at(3.6 * DAY) == "telegram moves"
    assert s.step_at(100 * DAY) == "t+5d"
    assert s.step_window("start") == (0.0, 3 * DAY + 5 * HOUR)
    assert s.step_window("stage 1") == (3 * DAY + 18 * HOUR, 5 * DAY)
    assert s.step_window("t+5d") == (5 * DAY, None)
    with pytest.raises(ValueError, match="no timeline label"):
        s.step_window("stage 9")


def test_probes_every_kinds_from_and_probe_times() -> None:
    s = _campaign()
    assert s.probes.every == "12h" and s.probes.every_s == 12 * HOUR
    assert s.probes.kinds == ("https", "ping") and s.probes.from_ == "all"
    assert s.end_s() == 5.5 * DAY
    times = s.probe_times()
    assert times[0] == 0.0 and times[-1] == 5.5 * DAY
    assert 3 * DAY + 5 * HOUR in times  # stage 0 has probe: true
    assert len(times) == 12 + 1  # 0, 12h, ..., 5.5d (12 ticks), plus stage 0
    assert s.probe_subscribers() == ("rostelecom-1", "rostelecom-2", "smallnet-1")


def test_isps_hosts_and_defaults() -> None:
    s = _campaign()
    rostelecom, smallnet = s.effective_isps()
    assert (rostelecom.name, rostelecom.subscribers, rostelecom.profile) == (
        "rostelecom",
        2,
        "rkn-2018-ip",
    )
    assert (rostelecom.update_delay_s, rostelecom.coverage, rostelecom.fail_mode) == (
        0.0,
        1.0,
        "closed",
    )
    assert (smallnet.update_delay_s, smallnet.coverage, smallnet.fail_mode) == (
        12 * HOUR,
        0.5,
        "open",
    )
    assert smallnet.profile_sets == {} and not smallnet.old_filter
    assert s.subscriber_hosts() == {
        "rostelecom": ("rostelecom-1", "rostelecom-2"),
        "smallnet": ("smallnet-1",),
    }
    assert s.isp_of("smallnet-1") == "smallnet" and s.isp("rostelecom") is rostelecom


def test_default_single_isp_keeps_v1_names() -> None:
    s = load_scenario(REPO / "scenarios" / "tspu-2022-sni.yaml")
    (isp,) = s.effective_isps()
    assert isinstance(isp, Isp) and s.isps is None
    assert (isp.name, isp.subscribers, isp.profile) == ("isp", 2, "tspu-2022")
    assert isp.profile_sets == {"sni-ii": ("www.google.com",)}
    assert isp.update_delay_s == 0.0 and isp.coverage == 1.0
    assert s.subscriber_hosts() == {"isp": ("sub1", "sub2")}
    assert s.probe_subscribers() == ("sub1", "sub2")
    assert s.timeline == () and s.step_at(10.0) == "start" and s.probe_times() == (0.0,)
    assert s.clock.start is None and s.clock.iso(5.0) is None


def test_isp_profile_sets_inherit_only_with_the_same_profile(tmp_path: Path) -> None:
    text = _text().replace(
        "profile: rkn-2018-ip\n",
        "profile: tspu-2022\nprofile_sets: {sni-ii: [www.google.com]}\n",
        1,
    )
    text = text.replace("    subscribers: 1\n", "    subscribers: 1\n    profile: rkn-2018-ip\n")
    s = load_scenario_text(text, tmp_path / "c.yaml")
    rostelecom, smallnet = s.effective_isps()
    assert rostelecom.profile == "tspu-2022"
    assert rostelecom.profile_sets == {"sni-ii": ("www.google.com",)}
    assert (smallnet.profile, smallnet.profile_sets) == ("rkn-2018-ip", {})


def test_circumvention_defaults() -> None:
    (socks,) = _campaign().circumvention
    assert (socks.kind, socks.cloud, socks.address, socks.port) == (
        "socks5",
        "hetzner",
        IPv4Address("88.99.1.10"),
        1080,
    )
    assert _campaign().method("socks-proxy") == socks
    with pytest.raises(ValueError, match="no circumvention"):
        _campaign().method("tor")


def test_expectations_resolved() -> None:
    blocked, via_proxy, collateral, success = _campaign().expect
    assert (blocked.kind, blocked.method, blocked.state, blocked.from_s, blocked.until_s) == (
        "state",
        "direct",
        "blocked",
        3 * DAY + 5 * HOUR,
        None,
    )
    assert blocked.name == "telegram blocked (rostelecom, direct) from stage 0"
    assert via_proxy.method == "socks-proxy" and via_proxy.from_s == 3 * DAY + 18 * HOUR
    assert (collateral.kind, collateral.op, collateral.value, collateral.at) == (
        "metric",
        ">=",
        0.3,
        "stage 1",
    )
    assert collateral.method is None
    assert collateral.name == "collateral_damage >= 0.3 (rostelecom) at stage 1"
    assert collateral.holds(0.3) and not collateral.holds(0.29)
    assert success.holds(1.0) and not success.holds(0.5)
    with pytest.raises(ValueError, match="compares no metric"):
        blocked.holds(1.0)


def test_expectation_times_and_names(tmp_path: Path) -> None:
    text = _text().replace(
        '    from: "stage 0"\n',
        '    from: "+1d"\n    until: 2018-04-20T00:00:00Z\n    name: early block\n',
    )
    s = load_scenario_text(text, tmp_path / "c.yaml")
    first = s.expect[0]
    assert (first.name, first.from_s, first.until_s) == ("early block", DAY, 7 * DAY)
    assert Expectation(role="innocent", state="reachable").default_name() == (
        "every innocent reachable (direct)"
    )


def test_metric_at_a_label_or_a_time(tmp_path: Path) -> None:
    collateral, success = _campaign().expect[2:]
    assert (collateral.at_step, success.at_step) == ("stage 1", None)
    for at, step in [("'+3d20h'", "stage 1"), ("2018-04-14T00:00:00Z", "start"), ("'+9d'", "t+5d")]:
        text = _text().replace('    at: "stage 1"\n', f"    at: {at}\n")
        s = load_scenario_text(text, tmp_path / "c.yaml")
        assert s.expect[2].at_step == step, at


def test_loaded_campaign_dumps_as_json_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dumped = _campaign().model_dump(mode="json", by_alias=True)
    assert dumped["clock"]["start"] == "2018-04-13T00:00:00Z"
    assert dumped["timeline"][0]["at"] == "2018-04-16T05:00:00Z"
    assert dumped["expect"][0]["from"] == "stage 0"
    assert json.loads(json.dumps(dumped)) == dumped


def test_models_are_frozen() -> None:
    s = _campaign()
    with pytest.raises(pydantic.ValidationError):
        s.timeline[0].probe = False
    with pytest.raises(pydantic.ValidationError):
        s.effective_isps()[0].coverage = 0.1


def test_quoted_iso_time_equals_yaml_timestamp(tmp_path: Path) -> None:
    text = _text().replace("at: 2018-04-16T05:00:00Z", "at: '2018-04-16T08:00:00+03:00'")
    s = load_scenario_text(text, tmp_path / "c.yaml")
    assert s.timeline[0].at_s == 3 * DAY + 5 * HOUR
    assert s.timeline[0].at == datetime(2018, 4, 16, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("old", "new", "wanted"),
    [
        ("start: 2018-04-13T00:00:00Z", "start: 2018-04-13", "clock.start: 2018-04-13 is a date"),
        ("speed: 86400", "speed: '86400'", "clock.speed: expected a number"),
        ("every: 12h", "every: 43200", "write '43200s' for seconds"),
        ("kinds: [https, ping]", "kinds: []", "probes.kinds: needs at least 1"),
        ("  from: all\n", "  from: some\n", "probes.from"),
        ("coverage: 0.5", "coverage: -0.1", "must be at least 0"),
        ("value: 0.3", "value: '0.3'", "expect[2].value: expected a number"),
        ('op: ">="', "op: '=>'", "expect[2].op: '=>' is not allowed"),
        ("    probe: true\n", "    probe: 1\n", "timeline[0].probe: expected true or false"),
        ('label: "stage 0"', "label: start", "'start' cannot be a label"),
        (
            "    address: 88.99.1.10\n",
            "    address: 88.99.1.10\n    port: 70000\n",
            "circumvention[0].port: 70000 is out of range",
        ),
    ],
)
def test_single_campaign_rule(old: str, new: str, wanted: str) -> None:
    text = _text()
    assert old in text
    errors = _errors(text.replace(old, new, 1))
    assert any(wanted in e for e in errors), errors


def test_validate_and_schema_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(CAMPAIGN)]) == 0
    assert capsys.readouterr().out.strip() == f"{CAMPAIGN}: ok"
    assert cli.main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    for key in ("clock", "isps", "circumvention", "timeline", "expect"):
        assert key in schema["properties"], key
    probes = schema["$defs"]["Probes"]["properties"]
    assert {"every", "kinds", "from"} <= set(probes)
    assert schema["$defs"]["Isp"]["properties"]["name"]["maxLength"] == 12
    assert schema["$defs"]["Expectation"]["additionalProperties"] is False
    assert "from" in schema["$defs"]["Expectation"]["properties"]
    assert "tspu-2022" in schema["$defs"]["ProfileChange"]["properties"]["name"]["enum"]


def test_docs_campaign_example_is_valid() -> None:
    doc = (REPO / "docs" / "scenario.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    campaigns = [b for b in blocks if "timeline:" in b]
    assert campaigns
    s = load_scenario_text(campaigns[0], REPO / "docs" / "example.yaml")
    assert [e.label for e in s.timeline] == ["stage 0", "telegram moves", "stage 1", "t+5d"]
    assert len(s.expect) == 4


def test_every_scenario_in_the_repo_is_valid() -> None:
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        load_scenario(path)


# --- robustness: any mutation of the campaign gives a Scenario or a ScenarioError -----------

VALUES = [
    "+3d",
    "0s",
    "2018-04-16",
    "2018-04-16T00:00:00",
    "12h",
    "-1",
    "[]",
    "{}",
    "null",
    "x",
    "all",
    "start",
    "1e9",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_campaign_never_crashes(data: st.DataObject) -> None:
    lines = _text().splitlines()
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    action = data.draw(st.sampled_from(["delete", "value", "swap"]), label="action")
    if action == "delete":
        del lines[i]
    elif action == "value" and ":" in lines[i]:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {data.draw(st.sampled_from(VALUES), label='value')}"
    elif action == "swap" and i + 1 < len(lines):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    text = "\n".join(lines) + "\n"
    try:
        s = load_scenario_text(text, "fuzz.yaml")
    except ScenarioError as err:
        assert err.errors
        for e in err.errors:
            assert 0 < e.line <= len(lines) + 1 and e.column >= 1 and e.message, str(e)
        return
    # A scenario that loads has every parsed value.
    assert all(isinstance(e.at_s, float) and e.label for e in s.timeline)
    assert all(x.name for x in s.expect)
    s.probe_times()
    s.subscriber_hosts()
