"""The ISP's old filter from the scenario to the lab plan, the controller's configuration, the
filter's list, and the report's attribution of stopped probes to boxes (no root)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tspulab.contracts import ControllerFile
from tspulab.controllers.config import ControllerConfig, read_registry
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry
from tspulab.lab.linkshape import node_roles
from tspulab.metrics.boxes import OLD_FILTER, TSPU, UNEXPLAINED, attribute, boxes_html, by_box
from tspulab.scenario.build import build_registry, plan_lab
from tspulab.scenario.oldfilter_lab import filter_configs, filter_registry
from tspulab.scenario.schema import load_scenario, load_scenario_text
from tspulab.topologies.multi_isp import MultiIspTopo, PathHops
from tspulab.topologies.oldfilter import (
    OLD_FILTER_SUBSCRIBER_PORT,
    OLD_FILTER_UPSTREAM_PORT,
    blockpage_exchange_ip,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "scenarios" / "old-filter.yaml"


def test_shipped_scenario_plans_a_filter_and_a_block_page_per_isp() -> None:
    scenario = load_scenario(SHIPPED)
    plan = plan_lab(scenario)
    pages = [isp.old_filter.blockpage for isp in plan.topology.isps if isp.old_filter]
    assert pages == ["95.167.13.50", "85.114.1.100"]
    topo = MultiIspTopo(spec=plan.topology)
    for i in (1, 2):
        # the border's uplink runs through the filter: port 1 to the exchange, port 2 to the ISP
        assert topo.port(f"o{i}", "ix")[0] == OLD_FILTER_UPSTREAM_PORT
        assert topo.port(f"o{i}", f"r{i}")[0] == OLD_FILTER_SUBSCRIBER_PORT
        info = topo.nodeInfo(f"bp{i}")
        assert info["ip"].startswith(blockpage_exchange_ip(i))
        assert info["lo_addresses"] == (f"{pages[i - 1]}/32",)
    router = topo.nodeInfo("r1")
    assert ("95.167.13.50/32", blockpage_exchange_ip(1)) in router["static_routes"]


def test_an_isp_without_a_filter_keeps_its_direct_uplink() -> None:
    spec = plan_lab(load_scenario(SHIPPED)).topology
    obit = replace(spec.isps[1], old_filter=None)
    topo = MultiIspTopo(spec=replace(spec, isps=(spec.isps[0], obit)))
    assert "o2" not in topo.switches() and "bp2" not in topo.hosts()
    assert topo.port("r2", "ix")[0] == 1  # the border's eth1 meets the exchange itself


def test_hop_puts_the_filter_on_a_link_inside_the_isp_upstream_of_a_tspu_there() -> None:
    spec = plan_lab(load_scenario(SHIPPED)).topology
    rt = replace(spec.isps[0], hops=PathHops(tspu=2, border=4))
    rt = replace(rt, old_filter=replace(rt.old_filter, hop=2))  # type: ignore[type-var]
    topo = MultiIspTopo(spec=replace(spec, isps=(rt, spec.isps[1])))
    # router 2 - TSPU - filter - router 3: the TSPU nearer the subscribers (§1)
    assert topo.ports["t1"] == {1: ("r1h2", 1), 2: ("o1", OLD_FILTER_SUBSCRIBER_PORT)}
    assert topo.ports["o1"][OLD_FILTER_UPSTREAM_PORT] == ("r1h3", 0)
    roles = node_roles(replace(spec, isps=(rt, spec.isps[1])))
    assert roles["o1"].role == "tspu" and roles["o2"].role == "exchange"  # delays: none inside


def test_controller_file_carries_each_filter_with_its_own_list(tmp_path: Path) -> None:
    scenario = load_scenario(SHIPPED)
    configs = filter_configs(scenario, tmp_path, build_registry(scenario))
    assert [(c.name, c.dpid, c.http, c.dns, c.mode) for c in configs] == [
        ("rostelecom", 0x301, "redirect", "blockpage", "passive"),
        ("obit", 0x302, "page", "nxdomain", "inline"),
    ]
    # rostelecom's filter runs the 2016 dump: rutracker.org (2015) but not linkedin.com (2016-11)
    stale = read_registry(configs[0].registry_file)  # type: ignore[arg-type]
    assert stale.domain_count() == 18255 and stale.address_count(4) == 0
    assert stale.match_domain("rutracker.org") and not stale.match_domain("www.linkedin.com")
    # obit's is 41 % of the published names (a stable hash picks them)
    copy = read_registry(configs[1].registry_file)  # type: ignore[arg-type]
    assert {r.name for r in copy.domain_rules()} == {"linkedin.com", "www.linkedin.com"}
    path = tmp_path / "controller.json"
    ControllerFile(tspus=[], events_log=None, old_filters=configs).write(path)
    loaded = ControllerConfig.load(path)
    assert [f.settings.blockpage for f in loaded.old_filters] == ["95.167.13.50", "85.114.1.100"]
    assert loaded.controls(0x301) and not loaded.controls(0x101)


def test_a_copy_follows_the_published_registry() -> None:
    scenario = load_scenario(SHIPPED)
    obit = scenario.isp("obit")
    published = Registry()
    for n in range(1000):
        published.add_domain(f"site{n}.example", MatchKind.EXACT, source="t")
    assert 300 < filter_registry(scenario, obit, published).domain_count() < 520


def _text(isp_extra: str) -> str:
    return f"""
version: 1
name: t
topology: {{name: isps}}
profile: tspu-2022
isps:
  - {{name: a, subscribers: 1{isp_extra}}}
clouds:
  - {{name: c, prefixes: [18.196.0.0/15]}}
services:
  - {{name: t, role: target, domains: [t.example], cloud: c, address: 18.196.0.10}}
  - {{name: i, role: innocent, domains: [i.example], cloud: c, address: 18.196.0.11}}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", None),
        (", old_filter: false", None),
        (", old_filter: true", ("redirect", "reset", "blockpage", "passive", None, 1.0, 0.0)),
        (
            ", old_filter: {http: page, https: off, dns: nxdomain, mode: inline, share: 0.5, lag: 1h}",
            ("page", "off", "nxdomain", "inline", None, 0.5, 3600.0),
        ),
    ],
)
def test_old_filter_key_forms(tmp_path: Path, extra: str, expected: tuple[Any, ...] | None) -> None:
    isp = load_scenario_text(_text(extra), tmp_path / "s.yaml").isp("a")
    f = isp.old_filter
    got = None if f is None else (f.http, f.https, f.dns, f.mode, f.blockpage, f.share, f.lag_s)
    assert got == expected


# --- attribution ---------------------------------------------------------------------------

SUB = {"rt-1": "10.1.0.11"}
SERVICES = {"t": "195.82.146.214", "x": "108.174.10.10", "i": "195.82.146.215"}


def _probe(service: str, kind: str, outcome: str, remote: str | None, **kw: Any) -> dict[str, Any]:
    return {
        "kind": kind, "service": service, "role": "innocent" if service == "i" else "target",
        "isp": "rt", "subscriber": "rt-1", "method": "direct", "ok": outcome == "ok",
        "outcome": outcome, "started": 100.0, "time_total_s": 2.0, "remote_ip": remote,
        "target": {"t": "rutracker.org", "x": "www.linkedin.com", "i": "www.bystander.ru"}[service]
        if kind == "dns" else f"{kind}://" + {"t": "rutracker.org", "x": "www.linkedin.com",
                                             "i": "www.bystander.ru"}[service] + "/",
        **kw,
    }  # fmt: skip


def _filter_event(t: float, action: str, **kw: Any) -> dict[str, Any]:
    return {"t": t, "event": "old-filter-verdict", "box": OLD_FILTER, "isp": "rt",
            "flow": {"client": "10.1.0.11"}, "action": action, **kw}  # fmt: skip


def _tspu_event(t: float, sni: str, server: str, action: str = "drop") -> dict[str, Any]:
    return {"t": t, "event": "verdict", "tspu": "rt", "sni": sni, "verdict": {"action": action},
            "flow": {"client": "10.1.0.11", "server": server, "server_port": 443}}  # fmt: skip


def test_attribution_names_the_box_that_acted_first() -> None:
    results = [
        _probe("t", "http", "blockpage", "95.167.13.50"),
        _probe("t", "dns", "dns-tampered", "95.167.13.50"),
        _probe("x", "https", "timeout", "108.174.10.10"),
        _probe("x", "http", "ok", "108.174.10.10"),
        _probe("i", "https", "timeout", "195.82.146.215"),  # nobody logged anything
        _probe("t", "https", "timeout", "195.82.146.214", method="socks"),  # not direct
    ]
    events = [
        _filter_event(100.1, "dns-blockpage", qname="rutracker.org", answer="95.167.13.50"),
        _filter_event(100.2, "http-redirect", host="rutracker.org"),
        _tspu_event(100.3, "www.linkedin.com", "108.174.10.10"),
        _tspu_event(100.4, "www.bystander.ru", "195.82.146.215", action="allow"),
        _tspu_event(150.0, "www.bystander.ru", "195.82.146.215"),  # long after the probe
        _filter_event(100.5, "http-redirect", host="other.example"),
    ]
    stops = {(s.service, s.kind): s for s in attribute(results, events, SUB, SERVICES)}
    assert set(stops) == {("t", "http"), ("t", "dns"), ("x", "https"), ("i", "https")}
    http = stops[("t", "http")]
    assert (http.stopped_by, http.boxes) == (OLD_FILTER, (OLD_FILTER,))
    assert http.how == "old-filter: dns-blockpage (95.167.13.50); old-filter: http-redirect"
    assert stops[("x", "https")].stopped_by == TSPU
    assert stops[("i", "https")].stopped_by == UNEXPLAINED
    # a registry address the switch drops without a verdict event is the TSPU's
    again = attribute(results, events, SUB, SERVICES, {"195.82.146.215"})
    assert {s.service: s.stopped_by for s in again if s.kind == "https"}["i"] == TSPU


def test_per_box_figures_and_the_report_section() -> None:
    results = [
        _probe("t", "dns", "nxdomain", None),
        _probe("x", "https", "timeout", "108.174.10.10"),
        _probe("i", "https", "timeout", "195.82.146.215"),
    ]
    events = [
        _filter_event(100.1, "dns-nxdomain", qname="rutracker.org", answer="NXDOMAIN"),
        _tspu_event(100.3, "www.linkedin.com", "108.174.10.10"),
        _tspu_event(100.4, "www.bystander.ru", "195.82.146.215"),
    ]
    services = {"t": ("target", SERVICES["t"]), "x": ("target", SERVICES["x"]),
                "i": ("innocent", SERVICES["i"])}  # fmt: skip
    data = by_box(results, events, SUB, services)
    rt = data["per_isp"]["rt"]
    assert rt[OLD_FILTER]["targets_blocked"] == ["t"] and rt[OLD_FILTER]["intended_blocking"] == 0.5
    assert rt[TSPU]["targets_blocked"] == ["x"] and rt[TSPU]["innocents_blocked"] == ["i"]
    assert rt[TSPU]["collateral_damage"] == 1.0 and rt[OLD_FILTER]["collateral_damage"] == 0.0
    page = boxes_html({"by_box": data})
    assert "Which box stopped which probe" in page and "dns-nxdomain (NXDOMAIN)" in page
    assert boxes_html({}) == ""


# --- the timeline: the filter's copy follows each published change, `lag` after its TSPU -------

TIMELINE = """
version: 1
name: t
topology: {name: isps}
profile: tspu-2022
registry:
  - domains: [rutracker.org]
isps:
  - {name: copy, subscribers: 1, update_delay: 1h, old_filter: {lag: 1d}}
  - {name: own, subscribers: 1, old_filter: {registry: [{domains: [kasparov.ru]}]}}
  - {name: none, subscribers: 1}
clouds:
  - {name: c, prefixes: [18.196.0.0/15]}
services:
  - {name: t, role: target, domains: [t.example], cloud: c, address: 18.196.0.10}
  - {name: i, role: innocent, domains: [i.example], cloud: c, address: 18.196.0.11}
timeline:
  - {at: "+2h", label: add, registry_add: [{domains: [linkedin.com]}]}
"""


class _Lab:
    """What TimelineRun reads of a LiveLab, without a network."""

    def __init__(self, scenario: Any, run_dir: Path) -> None:
        from tspulab.metrics.results import ResultWriter

        self.scenario = scenario
        self.registry = build_registry(scenario)
        self.isps = scenario.effective_isps()
        self.run_dir = run_dir
        self.speed = 1.0
        self.writer = ResultWriter(run_dir / "results.jsonl")

    def log(self, *_: object) -> None:
        pass


def test_timeline_pushes_copies_lag_after_the_tspu_and_never_an_own_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tspulab.scenario.timeline_runner as tr
    from tspulab.metrics.results import read_results

    scenario = load_scenario_text(TIMELINE, tmp_path / "s.yaml")
    pushed: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        tr, "push_filter_registry",
        lambda run_dir, s, isp, version, reg: pushed.append((isp, version, reg.domain_count())),
    )  # fmt: skip
    run = tr.TimelineRun(_Lab(scenario, tmp_path))  # type: ignore[arg-type]
    run._apply_entry(7200.0, scenario.timeline[0])
    due = sorted((t, kind, payload[0]) for t, _, _, kind, payload in run._heap)
    assert due == [
        (7200.0, "registry", "none"), (7200.0, "registry", "own"),
        (7200.0 + 3600, "registry", "copy"),
        (7200.0 + 3600 + 86400, "old-filter-registry", "copy"),
    ]  # fmt: skip
    [(_, _, _, _, (isp, published))] = [e for e in run._heap if e[3] == "old-filter-registry"]
    run._filter_registry(93600.0, isp, published)
    assert pushed == [("copy", 1, 2)]
    lines = read_results(tmp_path / "results.jsonl")
    [line] = [r for r in lines if r["kind"] == "old-filter-registry"]
    assert (line["isp"], line["domains"], line["step"]) == ("copy", 2, "add")


def test_the_shells_verdict_view_shows_the_filters_acts() -> None:
    from tspulab.shell.views import verdict_lines

    events = [
        _filter_event(100.2, "http-redirect", host="rutracker.org", mode="passive"),
        _tspu_event(100.3, "www.linkedin.com", "108.174.10.10"),
    ]
    events[0]["flow"] = {"client": "10.1.0.11", "server": "95.167.13.50", "server_port": 80}
    lines = verdict_lines(events, started=100.0, limit=None)
    assert (
        "rt         old filter: 10.1.0.11 → 95.167.13.50:80  rutracker.org  ⇒ http-redirect"
        in (lines[0])
    )
    assert "sni=www.linkedin.com  ⇒ drop" in lines[1]


def test_a_restarted_controller_gets_each_filters_newest_list(tmp_path: Path) -> None:
    from tspulab.lab.faults import latest_registry_file

    for name in ("oldfilter-rt-0.json", "oldfilter-rt-2.json", "oldfilter-rt-10.json",
                 "oldfilter-rtx-11.json", "registry-rt-12.json"):  # fmt: skip
        (tmp_path / name).write_text("{}")
    assert latest_registry_file(tmp_path, "rt", "oldfilter") == tmp_path / "oldfilter-rt-10.json"
    assert latest_registry_file(tmp_path, "rt") == tmp_path / "registry-rt-12.json"


def test_terminal_lines_only_when_an_old_filter_stopped_something() -> None:
    from tspulab.metrics.boxes import box_lines

    services = {"t": ("target", SERVICES["t"]), "i": ("innocent", SERVICES["i"])}
    filtered = by_box(
        [_probe("t", "dns", "nxdomain", None), _probe("i", "https", "timeout", SERVICES["i"])],
        [_filter_event(100.1, "dns-nxdomain", qname="rutracker.org", answer="NXDOMAIN"),
         _tspu_event(100.3, "www.bystander.ru", SERVICES["i"])],
        SUB, services,
    )  # fmt: skip
    assert box_lines(filtered) == ["stopped by box, rt: old-filter 1 (t); tspu 1 (i (innocent))"]
    tspu_only = by_box([_probe("i", "https", "timeout", SERVICES["i"])],
                       [_tspu_event(100.3, "www.bystander.ru", SERVICES["i"])], SUB, services)  # fmt: skip
    assert box_lines(tspu_only) == [] and box_lines(None) == []
