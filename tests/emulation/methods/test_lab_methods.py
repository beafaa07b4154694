"""Circumvention tools in the lab: subscribers of two ISPs probe a blocked target through real
VPN, proxy and Tor servers in a cloud, and each TSPU reacts to the tools' real traffic.

ISP `open` runs rkn-2018-ip (the target's prefix is in the registry: direct fails, every one of
the 18 methods, one of each tool family and setting the lab runs, gets through); ISP `vpnblock` runs vpn-protocols-2023 (docs/tspu-behaviour.md §5.4: plain
OpenVPN and WireGuard are dropped by fingerprint, the verdict in the controller's events names the
rule; fully-encrypted and Tor traffic passes). Then the registry at ISP `open` gains the private
Tor network's relay addresses (the December 2021 block, §5.2): a new plain-Tor client fails while
the obfs4 bridge, at an address not listed, still works and is never matched by an SNI rule.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import in_sandbox, leftovers, silent
from tspulab.metrics.results import read_results

SCENARIO = """
version: 1
name: methods-lab
topology:
  name: isps
profile: rkn-2018-ip
registry:
  - inline: [149.154.160.0/20]
isps:
  - name: open
    subscribers: 1
  - name: vpnblock
    subscribers: 1
    profile: vpn-protocols-2023
clouds:
  - name: telegram
    prefixes: [149.154.160.0/20]
  - name: hetzner
    prefixes: [88.99.0.0/16]
services:
  - name: telegram
    role: target
    domains: [web.telegram.org]
    cloud: telegram
    address: 149.154.167.99
  - name: hoster
    role: innocent
    domains: [www.hoster.de]
    cloud: hetzner
    address: 88.99.2.20
circumvention:
  - {name: ovpn-udp, kind: openvpn, cloud: hetzner, address: 88.99.1.10}
  - {name: ovpn-tcp, kind: openvpn, cloud: hetzner, address: 88.99.1.11, options: {proto: tcp}}
  - {name: wg, kind: wireguard, cloud: hetzner, address: 88.99.1.12}
  - {name: ss, kind: shadowsocks, cloud: hetzner, address: 88.99.1.13}
  - {name: tor, kind: tor, cloud: hetzner, address: 88.99.3.1}
  - {name: obfs4, kind: tor, cloud: hetzner, address: 88.99.4.1, options: {transport: obfs4}}
  - {name: ss2022, kind: shadowsocks, cloud: hetzner, address: 88.99.1.14, options: {cipher: 2022-blake3-aes-128-gcm}}
  - {name: vmess, kind: vmess, cloud: hetzner, address: 88.99.1.15}
  - {name: trojan, kind: trojan, cloud: hetzner, address: 88.99.1.16, port: 8443}
  - {name: hy2, kind: hysteria2, cloud: hetzner, address: 88.99.1.17}
  - {name: tuic, kind: tuic, cloud: hetzner, address: 88.99.1.18}
  - {name: ssh, kind: ssh, cloud: hetzner, address: 88.99.1.19}
  - {name: stunnel, kind: stunnel, cloud: hetzner, address: 88.99.1.20, port: 8443}
  - {name: socks, kind: socks5, cloud: hetzner, address: 88.99.1.21}
  - {name: dante, kind: socks5, cloud: hetzner, address: 88.99.1.22, options: {server: dante}}
  - {name: connect, kind: http-connect, cloud: hetzner, address: 88.99.1.23}
  - {name: dns-tunnel, kind: iodine, cloud: hetzner, address: 88.99.1.24}
  - {name: ipsec, kind: ipsec, cloud: hetzner, address: 88.99.1.25}
probes:
  timeout_s: 20
"""
# trojan and stunnel on 8443: every cloud host's nginx listens on *:443 and *:80.
METHODS = (
    "ovpn-udp", "ovpn-tcp", "wg", "ss", "tor", "obfs4", "ss2022", "vmess", "trojan", "hy2",
    "tuic", "ssh", "stunnel", "socks", "dante", "connect", "dns-tunnel", "ipsec",
)  # fmt: skip
BLOCKED_AT_VPNBLOCK = {"ovpn-udp", "ovpn-tcp", "wg"}
TOR_RELAYS = "88.99.3.0/29"


def _run(runs_dir: Path) -> dict[str, Any]:
    from tspulab.dpi.registry import Registry
    from tspulab.scenario.live import LiveLab
    from tspulab.scenario.schema import load_scenario_text

    scenario = load_scenario_text(SCENARIO, runs_dir / "methods-lab.yaml")
    out: dict[str, Any] = {"first": {}, "after_relay_block": {}}
    with LiveLab(scenario, runs_dir, log=silent, capture=True) as live:
        for sub in ("open-1", "vpnblock-1"):
            out["first"][(sub, "direct")] = live.probe(sub, "telegram", timeout_s=3).to_json()
            for method in METHODS:
                out["first"][(sub, method)] = live.probe(sub, "telegram", method=method).to_json()
        # The relays of the plain-Tor network join the registry at ISP open; new clients.
        blocked = Registry()
        blocked.add_address("149.154.160.0/20", source="scenario")
        blocked.add_address(TOR_RELAYS, source="tor relays")
        assert live.push_registry(blocked, isp="open")["ok"]
        for method in ("tor", "obfs4"):
            live.methods.drop_client(method, live.host("open-1"))
            out["after_relay_block"][method] = live.probe(
                "open-1", "telegram", method=method
            ).to_json()
        out["run_dir"] = live.run_dir
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return in_sandbox(_run, tmp_path_factory.mktemp("runs"))


def test_direct_is_blocked_and_every_method_gets_through_at_open(run: dict[str, Any]) -> None:
    first = run["first"]
    assert not first[("open-1", "direct")]["ok"]
    for method in METHODS:
        probe = first[("open-1", method)]
        assert probe["ok"], f"{method} at ISP open: {probe['outcome']} {probe['extra']}"
        print(f"\n{method}: TTFB {probe['time_starttransfer_s'] * 1000:.0f} ms")


def test_vpn_protocols_2023_stops_plain_openvpn_and_wireguard(run: dict[str, Any]) -> None:
    first = run["first"]
    for method in sorted(BLOCKED_AT_VPNBLOCK):
        assert not first[("vpnblock-1", method)]["ok"], f"{method} passed vpn-protocols-2023"


# Once an expected failure for the TLS-carrying methods (tor, trojan, stunnel, socks, dante):
# in 1 of 4 lab runs at load ~14 their ClientHello never reached the server and the controller
# logged the flows with protocol null after 14 packet-ins. They passed in every full run since
# (three, quiet machine). A suspect, unproven: the features race fixed in 31e7a03, through which
# the learning switch could take a TSPU switch for its own and put its table-miss there.
@pytest.mark.parametrize("method", [m for m in METHODS if m not in BLOCKED_AT_VPNBLOCK])
def test_vpn_protocols_2023_lets_the_others_through(run: dict[str, Any], method: str) -> None:
    probe = run["first"][("vpnblock-1", method)]
    assert probe["ok"], f"{method} at vpnblock: {probe['outcome']} {probe['extra']}"


def test_the_verdicts_name_the_detector(run: dict[str, Any]) -> None:
    events = read_results(run["run_dir"] / "controller-events.jsonl")
    verdicts = [e for e in events if e.get("event") == "verdict"]
    dropped = {
        (e["protocol"], e["server"].rsplit(":", 1)[0] if "server" in e else None)
        for e in verdicts
        if e["verdict"]["action"] == "drop" and e["verdict"].get("rule") == "vpn-protocols"
    }
    protocols = {p for p, _ in dropped}
    assert {"openvpn", "wireguard"} <= protocols, verdicts[-5:]


def test_tor_relays_blocked_by_address_obfs4_not(run: dict[str, Any]) -> None:
    after = run["after_relay_block"]
    assert not after["tor"]["ok"], "plain Tor passed with its relays in the registry"
    assert after["obfs4"]["ok"], f"obfs4: {after['obfs4']['outcome']} {after['obfs4']['extra']}"
    events = read_results(run["run_dir"] / "controller-events.jsonl")
    sni_rules = [
        e for e in events
        if e.get("event") == "verdict" and e.get("protocol") == "fully-encrypted"
        and e["verdict"]["action"] != "allow"
    ]  # fmt: skip
    assert not sni_rules, "obfs4 was acted on"


def test_replay_of_the_capture_gives_the_live_verdicts(run: dict[str, Any]) -> None:
    """Parity on the tools' real traffic: each TSPU's port was captured; replaying it through a
    fresh engine with that TSPU's configuration gives, flow by flow, the verdicts it logged."""
    from tspulab.parity import compare_run

    report = compare_run(run["run_dir"])
    print(
        f"\nparity: {report.agree}/{report.compared} agree, {report.registry_flows} registry flows"
    )
    # Every flow the controllers judged is judged the same by the replay. Flows the live switch
    # never sent up are taken by `compare_run` for registry drops; at ISP open (rkn-2018-ip has
    # no DPI rule, nothing is inspected) a method's flow to an unlisted address is such a flow,
    # so `registry_not_dropped` is not a statement about the tools here (see the report).
    assert report.compared > 0 and not report.mismatches and not report.only_live, report.to_json()


def test_nothing_left(run: dict[str, Any]) -> None:
    # The sandbox's first process may still be exiting a moment after the job's result came back.
    deadline = time.monotonic() + 10
    while leftovers(run["run_dir"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(run["run_dir"]) == []
