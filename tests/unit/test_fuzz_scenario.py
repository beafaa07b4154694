"""Mutation fuzz of the campaign keys: any text gives a Scenario or a ScenarioError, nothing else.

Seeded from tests/scenarios/valid/campaign.yaml (every campaign key), with one to four stacked
mutations drawn from values that stress each campaign scalar (durations and times at and past
their limits, impossible dates, labels that read as times, non-finite numbers, addresses in special
ranges, YAML aliases and tags). A file that loads must then work at run time: every method the
runners call on a Scenario is called. Set TSPULAB_FUZZ_EXAMPLES for a longer run (each crash it
found is a named test below).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tspulab.scenario.schema import Scenario, ScenarioError, load_scenario_text

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN = REPO / "tests" / "scenarios" / "valid" / "campaign.yaml"
EXAMPLES = int(os.environ.get("TSPULAB_FUZZ_EXAMPLES", "300"))

VALUES = [
    # durations and times
    "+3d",
    "0s",
    "+0s",
    "36500d",
    "+36500d",
    "36501d",
    "+" + "9" * 400 + "d",
    "1" * 30 + "s",
    "0.5s",
    "1d1d",
    "12h",
    "-1h",
    "2018-04-16",
    "2018-04-16T00:00:00",
    "2018-04-16T05:00:00Z",
    "'2018-04-16T05:00:00+14:00'",
    "'0001-01-01T00:00:00+01:00'",
    "'9999-12-31T23:59:59-01:00'",
    "2018-13-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    # labels and names
    "start",
    "'stage 0'",
    "'stage 1'",
    "'telegram moves'",
    "t+3d12h",
    "''",
    "' '",
    "x" * 70,
    "direct",
    "socks-proxy",
    "rostelecom",
    "all",
    "[all]",
    "[rostelecom-1, rostelecom-1]",
    "[https, https]",
    "[dns]",
    # numbers
    "0",
    "-1",
    "1e9",
    "1e400",
    ".inf",
    "-.inf",
    ".nan",
    "1" * 5000,
    "0x10",
    "true",
    # addresses
    "127.0.0.1",
    "'::1'",
    "0.0.0.0",
    "88.99.1.10",
    "18.196.4.7",
    "[18.196.0.0/15, 18.196.0.0/16]",
    "[0.0.0.0/0]",
    # structure
    "[]",
    "{}",
    "null",
    "~",
    "[[[[[[]]]]]]",
    "{start: [socks-proxy], stop: [socks-proxy]}",
    "{service: telegram, cloud: hetzner, address: 88.99.1.10}",
    "{isp: nobody, name: tspu-2022}",
    "{file: 'data:../x'}",
    "[{file: /dev/null}]",
    "*nope",
    "&a [*a]",
    "!!binary aGk=",
    "!!set {a}",
    "!custom x",
    "'",
]


def _text() -> str:
    return CAMPAIGN.read_text(encoding="utf-8")


def _exercise(s: Scenario) -> None:
    """What the runners and the report call on a loaded scenario."""
    times = s.probe_times()
    assert times == tuple(sorted(set(times)))
    end = s.end_s()
    for t in (0.0, end, *times[:5]):
        label = s.step_at(t)
        s.step_window(label)
    s.clock.iso(end)
    s.clock.real_s(end)
    for entry in s.timeline:
        assert isinstance(entry.at_s, float) and entry.label
        entry.what()
    for exp in s.expect:
        assert exp.name and exp.default_name()
        if exp.kind == "metric":
            exp.holds(0.5)
    hosts = s.subscriber_hosts()
    for host in s.probe_subscribers():
        assert s.isp_of(host) in hosts
    for isp in s.effective_isps():
        s.isp(isp.name)
        isp.update_delay_s  # noqa: B018
    for method in s.circumvention:
        s.method(method.name)
    for source in s.registry:
        if source.file is not None:
            s.registry_file(source)
    s.model_dump(mode="json")


def _mutate(data: st.DataObject, lines: list[str]) -> list[str]:
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        action = data.draw(
            st.sampled_from(["delete", "value", "swap", "duplicate", "indent", "move"]),
            label="action",
        )
        if action == "delete":
            del lines[i]
        elif action == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {data.draw(st.sampled_from(VALUES), label='value')}"
        elif action == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = "  " + lines[i]
        elif action == "move":
            j = data.draw(st.integers(0, len(lines) - 1), label="to")
            lines.insert(j, lines.pop(i))
    return lines


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_campaign_never_crashes(data: st.DataObject) -> None:
    lines = _mutate(data, _text().splitlines())
    text = "\n".join(lines) + "\n"
    try:
        s = load_scenario_text(text, REPO / "tests" / "scenarios" / "valid" / "fuzz.yaml")
    except ScenarioError as err:
        assert err.errors
        for e in err.errors:
            assert 0 < e.line <= len(lines) + 1 and e.column >= 1 and e.message, str(e)
        return
    _exercise(s)


# --- crashes the fuzz found, each fixed (a plain exception instead of a ScenarioError) ----------


def _replace(old: str, new: str) -> str:
    text = _text()
    assert old in text
    return text.replace(old, new, 1)


METRIC = 'metric: collateral_damage\n    isp: rostelecom\n    op: ">="\n    value: 0.3'


@pytest.mark.parametrize(
    ("old", "new", "field", "fragment"),
    [
        # OverflowError: int too large to convert to float (parse_duration of 400 digits)
        ('at: "+5d"', "at: '+" + "9" * 400 + "d'", "timeline[3].at", "longer than the limit"),
        # ValueError: cannot convert float NaN to integer (probe times of a 5000-digit `every`)
        ("every: 12h", "every: " + "1" * 5000 + "s", "probes.every", "longer than the limit"),
        # ValueError: month must be in 1..12 (ruamel building a timestamp)
        ("start: 2018-04-13T00:00:00Z", "start: 2018-13-13T00:00:00Z", "", "month must be"),
        # OverflowError: cannot convert float infinity to integer (a count of .inf addresses)
        (
            METRIC,
            METRIC.replace("collateral_damage", "blocked_addresses").replace("0.3", ".inf"),
            "expect[2].value",
            "not a finite number",
        ),
        # ValueError: cannot convert float NaN to integer (a count of .nan addresses)
        (
            METRIC,
            METRIC.replace("collateral_damage", "blocked_addresses").replace("0.3", ".nan"),
            "expect[2].value",
            "not a finite number",
        ),
    ],
)
def test_fuzz_crash_is_now_an_error(old: str, new: str, field: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(_replace(old, new), "fuzz.yaml")
    matching = [e for e in info.value.errors if e.field == field and fragment in e.message]
    assert matching, [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    "start",
    [
        # Found by the fuzz (whole unit suite, 300 examples): OverflowError: date value out of
        # range, from astimezone(UTC) of year 1 at +01:00.
        "'0001-01-01T00:00:00+01:00'",
        "'9999-12-31T23:59:59-01:00'",
        # Loaded before, then overflowed at run time (start + a day of scenario time).
        "9999-12-31T00:00:00Z",
    ],
)
def test_instants_near_the_ends_of_time_are_errors_not_overflows(start: str) -> None:
    text = _replace("start: 2018-04-13T00:00:00Z", f"start: {start}")
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "fuzz.yaml")
    assert any(
        e.field == "clock.start" and "outside the years 1900 to 2199" in e.message
        for e in info.value.errors
    ), str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # Found by the fuzz (4,000 examples): `op: null` loaded, then Expectation.holds raised
        # ValueError ("compares no metric") when the campaign's results were judged.
        ('op: "=="', "op: null", "expect[3]: 'op' is empty (a metric is compared"),
        ("value: 1\n", "value: null\n", "expect[3]: 'value' is empty"),
        # The same hole elsewhere: a state expectation without a state, a server without address.
        ("    state: blocked", "    state: null", "expect[0]: 'state' is empty"),
        ("    address: 88.99.1.10", "    address: null", "circumvention[0]: 'address' is empty"),
        ("  - service: telegram\n    isp", "  - service: null\n    isp", "got: none"),
    ],
)
def test_explicit_null_is_not_a_value(old: str, new: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(_replace(old, new), "fuzz.yaml")
    assert any(message in str(e) for e in info.value.errors), str(info.value)


def test_duplicate_key_beside_an_unreadable_value() -> None:
    # Found by the fuzz (3,000 examples): the duplicate-key message re-reads the file to name the
    # field, and that second reading raised ValueError (Exceeds the limit (4300 digits)) on a
    # 5000-digit number the first reading had not reached yet.
    text = _replace("version: 1\n", "version: 1\nversion: 1\n") + "x: " + "1" * 5000 + "\n"
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "fuzz.yaml")
    (only,) = info.value.errors
    assert str(only).startswith('fuzz.yaml:3:1: YAML: found duplicate key "version"')
