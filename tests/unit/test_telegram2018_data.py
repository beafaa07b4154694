"""The Telegram-2018 scenario's data: the generated population is current and as documented, the
press-confirmed ranges are where data/README.md says, and the scenario loads with its population."""

from __future__ import annotations

import csv
import importlib.util
import ipaddress
from pathlib import Path
from types import ModuleType

from tspulab.dpi.registry import load_list
from tspulab.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "telegram-2018"
SCENARIO = ROOT / "scenarios" / "telegram-2018.yaml"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sites", ROOT / "scripts/telegram2018_sites.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sites() -> list[dict[str, str]]:
    lines = [x for x in (DATA / "small_sites_2018.csv").read_text().splitlines() if x[:1] != "#"]
    return list(csv.DictReader(lines))


def _stages() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for stage in sorted(DATA.glob("stage*.txt")):
        nets += [e.network for e in load_list(stage).address_entries()]
    return nets


def test_generated_files_are_current() -> None:
    """The CSV and the scenario's generated block are what the shipped script writes."""
    assert _script().main(["--check"]) == 0


def test_population_is_placed_as_the_assumptions_say() -> None:
    script = _script()
    clouds = script.clouds()
    stages = _stages()
    sites = _sites()
    assert len(sites) == 60 and len({s["address"] for s in sites}) == 60
    for s in sites:
        address = ipaddress.ip_address(s["address"])
        assert any(address in n for n in clouds[s["provider"]]), s
        assert address in ipaddress.ip_network(s["provider_range"])
        blocked = any(address in n for n in stages)
        assert (s["blocked_at_peak"] == "yes") == blocked, s
    # AWS EC2 is most of the hosting space of 2018, so most of the sites.
    share = {p: sum(s["provider"] == p for s in sites) / 60 for p in clouds}
    assert share["aws"] > 0.5


def test_scenario_probes_the_whole_population() -> None:
    scenario = load_scenario(SCENARIO)
    members = {s.name: s for s in scenario.services if s.population == "small-sites"}
    assert {s["name"]: s["address"] for s in _sites()} == {
        n: str(s.address) for n, s in members.items()
    }
    assert [p.name for p in scenario.populations] == ["small-sites"]
    assert "assumed" in scenario.populations[0].assumptions
    named = {s.name for s in scenario.services if s.population is None}
    assert {"viber", "odnoklassniki", "xbox-live", "evernote", "steemit"} <= named
    assert {m.kind for m in scenario.circumvention} == {"socks5", "openvpn", "mtproto"}


def test_press_confirmed_ranges_are_inside_the_dump_stages() -> None:
    """data/README.md: every range the press names is in the registry stages (the union stays
    14,638,234 addresses), each line has its source."""
    stages = _stages()
    text = (DATA / "press_confirmed_ranges.txt").read_text()
    entries = [line for line in text.splitlines() if line and line[0] != "#"]
    assert len(entries) == 14
    for line in entries:
        prefix, comment = line.split("#", 1)
        net = ipaddress.ip_network(prefix.strip())
        assert any(net.subnet_of(n) for n in stages if n.version == net.version), prefix  # type: ignore[arg-type]
        assert ";" in comment and ("20" in comment), line
    union = ipaddress.collapse_addresses(n for n in stages if n.version == 4)  # type: ignore[misc]
    assert sum(n.num_addresses for n in union) == 14_638_234
