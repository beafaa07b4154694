"""Scenario schema: the demo loads as written; every invalid file fails where its comment says.

Each file in tests/scenarios/invalid/ starts with one or more `# expect: LINE:COL: FIELD: MESSAGE`
lines; loading it must raise a ScenarioError with a line that starts with `PATH:` plus that text
(FAUCET's check_config_failure habit, one failure file per validation rule).
"""

from __future__ import annotations

import json
import os
from dataclasses import FrozenInstanceError
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tspulab import cli
from tspulab.scenario import scalars
from tspulab.scenario.schema import (
    ErrorLocation,
    ScenarioError,
    data_dir,
    known_profiles,
    load_scenario,
    load_scenario_text,
    resolve_data_path,
    scenario_json_schema,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "demo.yaml"
INVALID = sorted((REPO / "tests" / "scenarios" / "invalid").glob("*.yaml"))
EXPECT = "# expect: "


def _expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.removeprefix(EXPECT) for line in lines if line.startswith(EXPECT)]


def _errors_of(path: Path | str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def _demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _inline_demo(tmp_path: Path) -> str:
    """The demo with its data: registry file replaced by an inline entry (no data folder needed)."""
    text = _demo_text()
    old = "  - file: data:telegram-2018/stage0_telegram_own_2-1779-2018.txt\n"
    assert old in text
    return text.replace(old, "  - inline: [91.108.4.0/22]\n")


# --- the valid demo -------------------------------------------------------------------------


def test_demo_loads_as_written() -> None:
    s = load_scenario(DEMO)
    assert (s.version, s.name, s.profile) == (1, "demo", "rkn-2018-ip")
    assert s.description.startswith("Telegram 2018, day one")
    assert (s.topology.name, s.topology.subscribers) == ("single-isp", 2)
    assert s.path == DEMO and s.source_dir == DEMO.parent
    file_src, inline_src = s.registry
    assert file_src.kind == "file" and file_src.format == "list" and file_src.decisions is None
    assert s.registry_file(file_src) == (
        data_dir(DEMO) / "telegram-2018/stage0_telegram_own_2-1779-2018.txt"
    )
    assert inline_src.kind == "inline"
    assert inline_src.inline == (IPv4Network("18.196.0.0/15"),)
    assert s.dns.address == IPv4Address("77.88.8.8")
    assert [c.name for c in s.clouds] == ["telegram", "aws-fra", "gcp", "yandex"]
    assert s.cloud("telegram").prefixes == (
        IPv4Network("149.154.160.0/20"),
        IPv4Network("91.108.4.0/22"),
    )
    assert [c.domestic for c in s.clouds] == [False, False, False, True]
    assert [(v.name, v.role, v.cloud, v.users) for v in s.services] == [
        ("telegram-web", "target", "telegram", 1),
        ("telegram-aws", "target", "aws-fra", 1),
        ("viber", "innocent", "aws-fra", 40),
        ("evernote", "innocent", "gcp", 10),
        ("yandex", "innocent", "yandex", 90),
    ]
    assert s.services[4].domains == ("yandex.ru", "www.yandex.ru")
    assert s.services[2].address == IPv4Address("18.197.25.40")
    assert {v.protocol for v in s.services} == {"https"}
    assert (s.probes.rounds, s.probes.timeout_s, s.probes.interval_s) == (2, 3.0, 0.0)


def test_demo_through_validate_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _write(tmp_path, _inline_demo(tmp_path))
    assert cli.main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_scenario_is_frozen(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, _inline_demo(tmp_path)))
    with pytest.raises(pydantic.ValidationError):
        s.name = "other"
    with pytest.raises(pydantic.ValidationError):
        s.services[0].address = IPv4Address("1.1.1.1")
    assert isinstance(s.services, tuple)


def test_defaults_when_optional_sections_are_left_out(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: tiny\ntopology: {name: single-isp}\nprofile: rkn-2018-ip\n"
        "clouds: [{name: c, prefixes: ['2001:db8::/32', 198.51.100.0/24]}]\n"
        "services:\n"
        "  - {name: a, role: target, domains: [A.Example.COM.], cloud: c, address: '2001:db8::1'}\n"
        "  - {name: b, role: innocent, domains: [b.example.com], cloud: c, address: 198.51.100.3}\n"
    )
    s = load_scenario(_write(tmp_path, text))
    assert s.topology.subscribers == 2 and s.registry == () and s.description == ""
    assert s.dns.address == IPv4Address("77.88.8.8")
    assert (s.probes.rounds, s.probes.timeout_s, s.probes.interval_s) == (1, 3.0, 0.0)
    assert s.clouds[0].prefixes[0] == IPv6Network("2001:db8::/32")
    assert s.services[0].domains == ("a.example.com",)  # lowercased, root dot dropped
    assert (s.services[0].users, s.services[0].protocol) == (1, "https")


# --- invalid files --------------------------------------------------------------------------


def test_there_are_enough_invalid_files() -> None:
    assert len(INVALID) >= 10
    assert len([p for p in INVALID if p.name.startswith("campaign_")]) >= 20
    for path in INVALID:
        assert _expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_scenario_reports_expected_error(path: Path) -> None:
    shown = os.path.relpath(path)
    lines = str(_errors_of(shown)).splitlines()
    for expect in _expectations(path):
        wanted = f"{shown}:{expect}"
        assert any(line.startswith(wanted) for line in lines), f"{wanted!r} not in {lines}"


def test_three_independent_errors_are_all_reported() -> None:
    path = REPO / "tests" / "scenarios" / "invalid" / "three_errors.yaml"
    err = _errors_of(path)
    assert len(err.errors) == 3
    assert [(e.line, e.field) for e in err.errors] == [
        (5, "vesion"),
        (60, "services[4].address"),
        (65, "probes.timeout_s"),
    ]
    assert str(err).splitlines() == [str(e) for e in err.errors]


def test_error_location_fields_and_format() -> None:
    err = _errors_of(REPO / "tests" / "scenarios" / "invalid" / "address_outside_cloud.yaml")
    (only,) = err.errors
    assert isinstance(only, ErrorLocation)
    assert (only.line, only.column, only.field) == (45, 5, "services[2].address")
    assert only.file.endswith("address_outside_cloud.yaml")
    assert str(only) == f"{only.file}:45:5: services[2].address: {only.message}"
    with pytest.raises(FrozenInstanceError):
        only.line = 1  # type: ignore[misc]


def test_errors_are_sorted_by_line(tmp_path: Path) -> None:
    text = _inline_demo(tmp_path)
    text = text.replace("timeout_s: 3", "timeout_s: 100").replace("version: 1", "version: 3")
    text = text.replace("subscribers: 2", "subscribers: 0")
    err = _errors_of(_write(tmp_path, text))
    assert [e.field for e in err.errors] == ["version", "topology.subscribers", "probes.timeout_s"]
    assert [e.line for e in err.errors] == sorted(e.line for e in err.errors)


def test_missing_registry_file_names_resolved_path(tmp_path: Path) -> None:
    text = _inline_demo(tmp_path).replace(
        "  - inline: [18.196.0.0/15]", "  - file: lists/absent.txt\n    format: rkn-dump"
    )
    (only,) = _errors_of(_write(tmp_path, text)).errors
    assert only.field == "registry[1].file"
    assert str(tmp_path / "lists" / "absent.txt") in only.message
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "absent.txt").write_text("1.2.3.4\n")
    s = load_scenario(tmp_path / "s.yaml")
    assert s.registry_file(s.registry[1]) == tmp_path / "lists" / "absent.txt"
    assert s.registry[1].format == "rkn-dump"


def test_registry_entry_types_and_ipv6(tmp_path: Path) -> None:
    text = _inline_demo(tmp_path).replace(
        "  - inline: [18.196.0.0/15]", "  - inline: [18.196.0.0/15, 1.2.3.4, '2001:db8::/48']"
    )
    s = load_scenario(_write(tmp_path, text))
    assert s.registry[1].inline == (
        ip_network("18.196.0.0/15"),
        ip_network("1.2.3.4/32"),
        ip_network("2001:db8::/48"),
    )


def test_ipv6_host_bits_suggest_network(tmp_path: Path) -> None:
    text = _inline_demo(tmp_path).replace("[18.196.0.0/15]\n\ndns", "['2001:db8::1/32']\n\ndns")
    (only,) = _errors_of(_write(tmp_path, text)).errors
    assert only.field == "registry[1].inline[0]"
    assert only.message == "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"


@pytest.mark.parametrize(
    ("old", "new", "field", "fragment"),
    [
        ("rounds: 2", "rounds: '2'", "probes.rounds", "expected an integer, got a string"),
        ("domestic: true", "domestic: yes", "clouds[3].domestic", "expected true or false"),
        ("role: target", "role: victim", "services[0].role", "'victim' is not allowed"),
        ("users: 40", "users: 0", "services[2].users", "must be at least 1"),
        ("topology:\n  name", "topology:\n  nme", "topology.nme", "did you mean 'name'?"),
        ("    users: 90", "    port: 443", "services[4].port", "known keys: name, role"),
        ("timeout_s: 3", "timeout_s: 3\n  interval_s: -1", "probes.interval_s", "at least 0"),
        ("name: demo", "name: " + "a" * 41, "name", "at most 40 characters"),
        ("address: 77.88.55.60", "address: 149.154.167.99", "services[4].address", "already"),
        ("[www.viber.com]", "['*.viber.com']", "services[2].domains[0]", "not a valid DNS"),
        ("profile: rkn-2018-ip", "profile: [rkn-2018-ip]", "profile", "expected a string"),
        ("clouds:\n", "clouds: {}\nx:\n", "clouds", "expected a list, got a mapping"),
        ("version: 1", "version: true", "version", "expected the integer 1, got True"),
        ("version: 1", "version: 1.0", "version", "expected the integer 1, got 1.0"),
        ("services:\n", "services:\nx:\n", "services", "expected a list, got an empty value"),
        ("rkn-2018-ip\n", "rkn-2018-ip\n7: x\n", "[7]", "key 7 is not a string"),
        (
            "[18.196.0.0/15]\n",
            "[18.196.0.0/15]\n    decisions: [a]\n",
            "registry[1].decisions",
            "applies only to 'file' sources",
        ),
        ("inline: [18.196.0.0/15]", "inline: null", "registry[1]", "exactly one of 'inline'"),
    ],
)
def test_single_rule(tmp_path: Path, old: str, new: str, field: str, fragment: str) -> None:
    text = _inline_demo(tmp_path)
    assert old in text
    errors = _errors_of(_write(tmp_path, text.replace(old, new, 1))).errors
    matching = [e for e in errors if e.field == field]
    assert matching, [str(e) for e in errors]
    assert any(fragment in e.message for e in matching), [str(e) for e in matching]


def test_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    (only,) = _errors_of(tmp_path / "nope.yaml").errors
    assert only.line == 0 and "cannot read" in only.message
    assert str(only).startswith(f"{tmp_path / 'nope.yaml'}: cannot read")


def test_empty_file_is_a_scenario_error(tmp_path: Path) -> None:
    (only,) = _errors_of(_write(tmp_path, "# nothing\n")).errors
    assert "must be a mapping" in only.message


def test_validate_cli_prints_errors(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "tests" / "scenarios" / "invalid" / "unknown_cloud.yaml"
    assert cli.main(["validate", str(path)]) == 1
    assert f"{path}:44:5: services[2].cloud: unknown cloud 'awz'" in capsys.readouterr().err


# --- paths, profiles, JSON Schema -----------------------------------------------------------


def test_resolve_data_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = tmp_path / "campaign" / "s.yaml"
    assert resolve_data_path("lists/a.txt", scenario) == tmp_path / "campaign" / "lists" / "a.txt"
    monkeypatch.setenv("TSPULAB_DATA_DIR", str(tmp_path / "ref"))
    assert resolve_data_path("data:x/y.txt", scenario) == tmp_path / "ref" / "x" / "y.txt"
    monkeypatch.delenv("TSPULAB_DATA_DIR")
    # By default data: is the project's own data/ folder, wherever the scenario lives.
    shipped = Path(__file__).resolve().parents[2] / "data"
    assert resolve_data_path("data:x.txt", scenario) == shipped / "x.txt"
    assert (shipped / "README.md").is_file()


def test_known_profiles_follow_shipped_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "rkn-2018-ip" in known_profiles()
    (tmp_path / "tspu-2022.yaml").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    monkeypatch.setattr(scalars, "PROFILES_DIR", tmp_path)
    assert known_profiles() == ("rkn-2018-ip", "tspu-2022")


def test_json_schema_for_editors(capsys: pytest.CaptureFixture[str]) -> None:
    schema = scenario_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "version",
        "name",
        "topology",
        "profile",
        "clouds",
        "services",
    }
    assert "rkn-2018-ip" in schema["properties"]["profile"]["enum"]
    assert schema["$defs"]["Topology"]["properties"]["name"]["enum"] == ["isps", "single-isp"]
    assert schema["$defs"]["Service"]["additionalProperties"] is False
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema


def test_load_scenario_text(tmp_path: Path) -> None:
    s = load_scenario_text(_inline_demo(tmp_path), tmp_path / "inline.yaml")
    assert s.name == "demo" and s.source_dir == tmp_path
    with pytest.raises(ScenarioError) as info:
        load_scenario_text("version: 1\nversion: 1\n", "mem.yaml")
    (only,) = info.value.errors
    assert str(only) == 'mem.yaml:2:1: version: YAML: found duplicate key "version" ' + (
        "(in the mapping that starts at line 1)"
    )


# --- robustness: any text gives a Scenario or a ScenarioError, nothing else ------------------

TRICKY = [
    "[]",
    "{}",
    "null",
    "x: y",
    "&a 1",
    "*nope",
    "'",
    "- x",
    "1e400",
    "-1",
    "0x10",
    "? [a]\n  : b",
    "[1, [2]]",
    "{[a]: b}",
    "!!binary aGk=",
    "2018-04-16",
    "<<: {a: 1}",
    "\t",
    "...",
    "---",
    "|\n  text",
    ".inf",
    "~",
    "'2001:db8::/32'",
    '"\\x00"',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_demo_never_crashes(data: st.DataObject) -> None:
    lines = _inline_demo(Path()).splitlines()
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    action = data.draw(st.sampled_from(["delete", "value", "truncate", "indent"]), label="action")
    if action == "delete":
        del lines[i]
    elif action == "value" and ":" in lines[i]:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {data.draw(st.sampled_from(TRICKY), label='value')}"
    elif action == "truncate":
        lines = [*lines[:i], lines[i][: len(lines[i]) // 2]]
    else:
        lines[i] = " " + lines[i]
    text = "\n".join(lines) + "\n"
    try:
        load_scenario_text(text, "fuzz.yaml")
    except ScenarioError as err:
        assert err.errors
        for e in err.errors:
            assert 0 < e.line <= len(text.splitlines()) + 1, str(e)
            assert e.column >= 1 and e.message, str(e)
