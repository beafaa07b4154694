"""Two DPIs on one flow, live: an ISP's own older filter (tspu-behaviour.md §1, §2.1, §4) on its
border's uplink beside the 2022 TSPU, and the report naming the box that stopped each probe.

One lab for the module: one ISP, its TSPU next to the subscribers and its filter on the border's
uplink two routers up (§1: the filter at hops 5-8, not with the TSPU); the filter carries a narrower list than its TSPU (rutracker.org
only; the TSPU also blocks www.linkedin.com by SNI), redirects HTTP with a 302, answers DNS with
its block page's address, and is inline (drops what it answered, so the results do not depend on
a race with the servers; the passive race is shown by the unit tests and scenarios/old-filter).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.controllers.control import send_command
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.registry import Registry
from tspulab.metrics.boxes import OLD_FILTER, TSPU, attribute
from tspulab.metrics.results import read_results
from tspulab.scenario.live import LiveLab
from tspulab.scenario.oldfilter_lab import write_filter_registry
from tspulab.scenario.schema import load_scenario_text
from tspulab.scenario.tspu_config import control_socket_path
from tspulab.topologies.oldfilter import old_filter_dpid, old_filter_switch

BLOCKPAGE = "95.167.13.50"
SCENARIO = f"""
version: 1
name: old-filter-live
topology: {{name: isps}}
profile: tspu-2022
registry:
  - domains: [rutracker.org, www.linkedin.com]
isps:
  - name: rt
    subscribers: 1
    hops: {{tspu: 0, border: 2}}
    old_filter:
      http: redirect
      dns: blockpage
      mode: inline
      blockpage: {BLOCKPAGE}
      registry:
        - domains: [rutracker.org]
  - name: pa
    subscribers: 1
    old_filter:
      dns: "off"
      mode: passive
      blockpage: 95.167.13.60
      registry:
        - domains: [rutracker.org]
clouds:
  - {{name: hosting, prefixes: [195.82.146.0/24]}}
  - {{name: linkedin, prefixes: [108.174.10.0/24]}}
services:
  - {{name: rutracker, role: target, domains: [rutracker.org], cloud: hosting,
     address: 195.82.146.214}}
  - {{name: linkedin, role: target, domains: [www.linkedin.com], cloud: linkedin,
     address: 108.174.10.10}}
  - {{name: bystander, role: innocent, domains: [www.bystander.ru], cloud: hosting,
     address: 195.82.146.215}}
probes:
  timeout_s: 2
"""
PROBES = [
    ("rutracker", "http"),
    ("rutracker", "dns"),
    ("linkedin", "https"),
    ("linkedin", "http"),
    ("linkedin", "dns"),
    ("bystander", "https"),
    ("bystander", "http"),
]


def _lab_run(runs_dir: Path) -> dict[str, Any]:
    scenario = load_scenario_text(SCENARIO, "old-filter-live.yaml")
    with LiveLab(scenario, runs_dir, log=silent) as live:
        results = {
            (service, kind): live.probe("rt-1", service, kind=kind).to_json()
            for service, kind in PROBES
        }
        # §9 statement 24: a client that drops the passive filter's injections (IP ID 0/1, as
        # GoodbyeDPI's passive-DPI blocking does; not the SYN/ACK, which Linux sends with ID 0)
        # gets through: the server's own answer follows the injected 302
        nft = (
            "add table inet dropinj; add chain inet dropinj in { type filter hook input priority 0; }; "
            "add rule inet dropinj in tcp sport 80 tcp flags & syn == 0 ip id { 0, 1 } counter drop"
        )
        nft_out = live.host("pa-1").cmd(f"nft '{nft}' && echo installed")
        results[("passive-ignoring", "http")] = live.probe(
            "pa-1", "rutracker", kind="http"
        ).to_json()
        dropped = live.host("pa-1").cmd("nft list table inet dropinj")
        results[("passive-ignoring", "nft")] = {"out": nft_out, "dropped": dropped}
        live.host("pa-1").cmd("nft delete table inet dropinj")
        # a new list reaches a filter over the control channel (what the timeline does with a
        # copy of each published change): pa's filter now also lists www.linkedin.com
        update = Registry()
        for name in ("rutracker.org", "www.linkedin.com"):
            update.add_domain(name, MatchKind.EXACT, source="test")
        path = write_filter_registry(live.run_dir, "pa", 1, update)
        reply = send_command(
            control_socket_path(live.run_dir),
            {"cmd": "registry", "file": str(path), "dpid": old_filter_dpid(2)},
        )
        results[("pa-update", "reply")] = reply
        results[("pa-update", "http")] = live.probe("pa-1", "linkedin", kind="http").to_json()
        stats = live.controller_stats()  # flushes the event log
        flows = live.lab.dump_flows(old_filter_switch(1))
        records = read_results(live.run_dir / "results.jsonl")
        events = read_results(live.run_dir / "controller-events.jsonl")
        stops = attribute(
            records, events, live.address_of_host, live.addresses,
            {a for a in live.addresses.values() if live.registry.contains_address(a)},
        )  # fmt: skip
    return {
        "results": results, "stats": stats, "flows": flows, "events": events,
        "stops": [s.to_json() for s in stops], "run_dir": live.run_dir,
    }  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return in_sandbox(_lab_run, tmp_path_factory.mktemp("runs"))


def _stop(lab: dict[str, Any], service: str, kind: str) -> dict[str, Any]:
    [stop] = [s for s in lab["stops"] if (s["service"], s["kind"]) == (service, kind)]
    return stop


def test_http_to_a_listed_site_gets_the_isps_302_to_its_block_page(lab: dict[str, Any]) -> None:
    r = lab["results"][("rutracker", "http")]
    assert (r["ok"], r["outcome"], r["http_code"]) == (False, "blockpage", 302)
    [event] = [
        e for e in lab["events"]
        if e.get("event") == "old-filter-verdict" and e.get("action") == "http-redirect"
        and e.get("isp") == "rt"
    ]  # fmt: skip
    assert event["host"] == "rutracker.org" and event["box"] == OLD_FILTER
    assert _stop(lab, "rutracker", "http")["stopped_by"] == OLD_FILTER


def test_dns_for_a_listed_name_gets_the_block_page_address(lab: dict[str, Any]) -> None:
    r = lab["results"][("rutracker", "dns")]
    assert (r["ok"], r["outcome"], r["extra"]["answers"]) == (False, "dns-tampered", [BLOCKPAGE])
    assert "dns-blockpage (95.167.13.50)" in _stop(lab, "rutracker", "dns")["how"]


def test_tls_is_dropped_by_the_tspu_not_the_old_filter(lab: dict[str, Any]) -> None:
    r = lab["results"][("linkedin", "https")]
    assert (r["ok"], r["outcome"]) == (False, "timeout")
    stop = _stop(lab, "linkedin", "https")
    assert (stop["stopped_by"], stop["boxes"]) == (TSPU, [TSPU])
    tspu = [e for e in lab["events"] if e.get("event") == "verdict" and e.get("sni")]
    assert {e["sni"]: e["verdict"]["action"] for e in tspu}["www.linkedin.com"] == "drop"
    assert not any(
        "linkedin" in str(e.get(k)) for e in lab["events"]
        if e.get("event") == "old-filter-verdict" and e.get("isp") == "rt"
        for k in ("host", "sni", "qname")
    )  # fmt: skip


def test_a_site_outside_the_filters_narrower_list_passes_it(lab: dict[str, Any]) -> None:
    # in the TSPU's registry, not in the filter's: HTTP is the filter's business (§2.1), and the
    # TSPU does not block by Host; DNS is answered by the resolver
    for kind in ("http", "dns"):
        assert lab["results"][("linkedin", kind)]["ok"], kind
    for kind in ("http", "https"):
        assert lab["results"][("bystander", kind)]["ok"], kind
    assert {(s["service"], s["kind"]) for s in lab["stops"] if s["isp"] == "rt"} == {
        ("rutracker", "http"),
        ("rutracker", "dns"),
        ("linkedin", "https"),
    }


def test_a_client_that_drops_passive_injections_gets_through(lab: dict[str, Any]) -> None:
    assert "installed" in lab["results"][("passive-ignoring", "nft")]["out"]
    r = lab["results"][("passive-ignoring", "http")]
    assert (r["ok"], r["outcome"], r["http_code"]) == (True, "ok", 200)
    # the injected 302 did reach the client, and was dropped there
    counted = re.search(
        r"counter packets (\d+)", lab["results"][("passive-ignoring", "nft")]["dropped"]
    )
    assert counted is not None and int(counted.group(1)) >= 1
    acted = [
        e for e in lab["events"]
        if e.get("event") == "old-filter-verdict" and e.get("isp") == "pa"
        and e.get("host") == "rutracker.org"
    ]  # fmt: skip
    assert [(e["action"], e["mode"]) for e in acted] == [("http-redirect", "passive")]


def test_a_new_list_reaches_the_filter_live(lab: dict[str, Any]) -> None:
    assert lab["results"][("pa-update", "reply")] == {
        "ok": True, "tspu": "pa", "added": 1, "removed": 0,
        "seconds": lab["results"][("pa-update", "reply")]["seconds"],
    }  # fmt: skip
    r = lab["results"][("pa-update", "http")]
    assert (r["ok"], r["outcome"], r["http_code"]) == (False, "blockpage", 302)


def test_the_filter_counts_and_its_switch_carries_judged_flows(lab: dict[str, Any]) -> None:
    stats = lab["stats"]
    assert stats["old_filter_http-redirect"] >= 1 and stats["old_filter_dns-blockpage"] >= 1
    assert "cookie=0x73700010" in lab["flows"]  # its judged and inspection rules
    assert leftovers(lab["run_dir"]) == []
