"""The VPN campaign scenarios without a lab: the files, the language they added, their profiles,
the exit filter of a compliant VPN, and the report sections (tools per date, own-tunnel outages,
detection attribution) on records made here.

Facts: docs/tspu-behaviour.md §10.1 (the VPN law, the 2019 order, the 2021 blocking and
whitelist, the 2025 address requests, the 2026 crackdown), §5.4 (OpenVPN/WireGuard), §5.9
(mobile whitelists).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scapy.contrib.wireguard import Wireguard, WireguardInitiation

from tests.unit.dpi.policy_flows import Conn, engine
from tspulab.dpi.registry import load_inline
from tspulab.dpi.verdict import Fate
from tspulab.methods.process import Processes, wait_log
from tspulab.metrics.detection import (
    Detection,
    IspDataError,
    attribute,
    confusion,
    detection_html,
    load_isp_data,
)
from tspulab.metrics.vpn import insert_sections, outages, own_tunnel_methods, tool_steps_html
from tspulab.scenario.compliant_exit import exit_rules, table_name
from tspulab.scenario.schema import ScenarioError, load_scenario, load_scenario_text
from tspulab.scenario.timeline_runner import planned_probes, uses

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["vpn-ban", "vpn-detection", "vpn-crackdown-2026", "mobile-whitelist-2025"]
WG_INIT = bytes(Wireguard() / WireguardInitiation(sender_index=7))


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_loads_with_expectations_and_a_docs_page(name: str) -> None:
    s = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    assert s.expect, "every VPN scenario states what it expects"
    assert (ROOT / "docs" / "scenarios" / f"{name}.md").is_file()
    assert f"scenarios/{name}.yaml" in (ROOT / "README.md").read_text()


def test_methods_reach_their_services_for_their_subscribers_only() -> None:
    s = load_scenario(ROOT / "scenarios" / "vpn-detection.yaml")
    assert uses(s, "openvpn", "mobile-1", "twitter")  # a VPN user, the default: targets
    assert not uses(s, "openvpn", "mobile-2", "twitter")  # not one of its subscribers
    assert not uses(s, "openvpn", "mobile-1", "yandex")  # an innocent service: not by default
    assert uses(s, "bank-s2s", "home-2", "bank-core")  # an own tunnel names its services
    assert not uses(s, "bank-s2s", "home-2", "twitter")
    # 3 days x (10 subscribers x 5 services direct + 8 (method, user) pairs x 1 service)
    assert planned_probes(s) == 3 * (10 * 5 + 8)


def test_profile_sets_of_a_profile_the_timeline_switches_to_are_accepted() -> None:
    """vpn-ban starts on rkn-2018-ip (no sets) and switches to vpn-ban-2023 (vpn-whitelist)."""
    text = (ROOT / "scenarios" / "vpn-ban.yaml").read_text()
    load_scenario_text(text, ROOT / "scenarios" / "vpn-ban.yaml")
    without_switch = text.replace("    profile: {name: vpn-ban-2023}\n", "")
    with pytest.raises(ScenarioError, match="profile rkn-2018-ip has no set 'vpn-whitelist'"):
        load_scenario_text(without_switch, ROOT / "scenarios" / "vpn-ban.yaml")


# --- the profiles ------------------------------------------------------------------------------


def test_vpn_ban_2023_blocks_foreign_tunnels_spares_whitelisted_and_domestic() -> None:
    """§5.4 N4P-#274 (foreign OpenVPN/WireGuard blocked from 2023-08-07); §10.1 Interfax (the
    whitelist of organisations); §5.4 N4P-#490 (Russian servers allowed)."""
    assert Conn(engine("vpn-ban-2023"), dport=51820).udp(0.0, WG_INIT).fate is Fate.DROP
    listed = engine("vpn-ban-2023", sets={"vpn-whitelist": ["93.184.216.0/24"]})
    assert Conn(listed, dport=51820).udp(0.0, WG_INIT).fate is Fate.FORWARD
    domestic = engine("vpn-ban-2023", sets={"domestic": ["93.184.216.0/24"]})
    assert Conn(domestic, dport=51820).udp(0.0, WG_INIT).fate is Fate.FORWARD
    by_address = engine("vpn-ban-2023", registry=["93.184.216.34"])
    assert Conn(by_address, dport=443).udp(0.0, b"x" * 40).fate is Fate.DROP


def test_vpn_crackdown_2026_reaches_domestic_tunnels_unless_critical() -> None:
    """§10.1: the assumed mechanism of the 2026 outages - the protocol rule without the domestic
    exemption; the counterfactual whitelists critical infrastructure."""
    assert Conn(engine("vpn-crackdown-2026"), dport=51820).udp(0.0, WG_INIT).fate is Fate.DROP
    spared = engine("vpn-crackdown-2026", sets={"critical": ["93.184.216.0/24"]})
    assert Conn(spared, dport=51820).udp(0.0, WG_INIT).fate is Fate.FORWARD


# --- the compliant VPN's exit filter -------------------------------------------------------------


def test_exit_filter_drops_the_registry_forwarded_and_own() -> None:
    rules = exit_rules("kaspersky", load_inline(["149.154.160.0/20", "2001:67c:4e8::/48"]))
    table = table_name("kaspersky")
    assert f"delete table inet {table}" in rules  # a new version replaces the old one
    assert "149.154.160.0/20" in rules and "2001:67c:4e8::/48" in rules
    assert "hook forward" in rules and "hook output" in rules
    empty = exit_rules("kaspersky", load_inline([]))
    assert "elements" not in empty
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("nft not installed: the syntax check needs it")
    for script in (rules, empty):
        check = subprocess.run([nft, "-c", "-f", "-"], input=script, text=True, capture_output=True)
        if "Operation not permitted" in check.stderr:
            pytest.skip("nft -c needs CAP_NET_ADMIN")
        assert check.returncode == 0, check.stderr


# --- a client started again ------------------------------------------------------------------


class _Local:
    name = "local"

    def cmd(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("not used")

    def popen(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_readiness_of_a_restarted_client_ignores_the_previous_clients_lines(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    first = procs.start(_Local(), ["sh", "-c", "echo READY; sleep 5"], "client")
    wait_log(first, "READY", tool="t", timeout_s=5)
    procs.stop()
    second = procs.start(_Local(), ["sh", "-c", "sleep 5"], "client")
    with pytest.raises(Exception, match="READY"):
        wait_log(second, "READY", tool="t", timeout_s=0.5)
    procs.stop()


# --- report sections -------------------------------------------------------------------------


def _probe(step: str, t: float, method: str, service: str, ok: bool, isp: str = "a") -> dict:
    role = "target" if service == "telegram" else "innocent"
    return {"kind": "https", "isp": isp, "step": step, "scenario_t_s": t, "method": method,
            "service": service, "role": role, "ok": ok, "subscriber": f"{isp}-1",
            "outcome": "ok" if ok else "timeout", "started": 1000.0 + t}  # fmt: skip


def _event(label: str, t: float) -> dict:
    return {"kind": "event", "label": label, "scenario_t_s": t}


def test_own_tunnel_outages_run_from_a_failing_step_to_recovery_per_isp() -> None:
    steps = [("rules on", 100.0), ("rolled back", 400.0), ("rules on again", 1000.0)]
    records = [_event(label, t) for label, t in steps]
    for isp, fails in (("a", True), ("b", False)):
        records += [
            _probe("start", 0.0, "pos", "payments", True, isp),
            _probe("rules on", 100.0, "pos", "payments", not fails, isp),
            _probe("rolled back", 400.0, "pos", "payments", True, isp),
            _probe("rules on again", 1000.0, "pos", "payments", not fails, isp),
            _probe("start", 0.0, "vpn", "telegram", True, isp),
        ]
    assert own_tunnel_methods(records) == ["pos"]  # vpn reaches a target: not an own tunnel
    by_isp = {o.isp: o for o in outages(records)}
    assert by_isp["a"].failing_steps == ["rules on", "rules on again"]
    assert by_isp["a"].windows == [(100.0, 400.0), (1000.0, None)]  # the second never ended
    assert by_isp["a"].duration_s is None
    closed = outages([r for r in records if r.get("step") != "rules on again"])
    assert {o.isp: o.duration_s for o in closed} == {"a": 300.0, "b": None}
    assert by_isp["b"].failing_steps == [] and by_isp["b"].windows == []
    page = tool_steps_html(records)
    assert "payments" in page and "✗" in page and "✓" in page
    assert insert_sections("<h2>Timeline</h2>", "<h2>X</h2>") == "<h2>X</h2><h2>Timeline</h2>"


def _write_isp_data(folder: Path) -> None:
    folder.mkdir()
    (folder / "subscribers.csv").write_text(
        "# comment\naccount,isp,host,municipality,tspu,activity,vpn_user\n"
        "A1,m,m-1,x,t,OpenVPN,yes\nA2,m,m-2,x,t,games,no\nA3,h,h-1,x,t,browsing,no\n"
        "A4,h,h-2,x,t,WireGuard,yes\n"
    )
    (folder / "leases.csv").write_text(
        "isp,host,public_address,nat,from,until\n"
        "m,m-1,203.0.113.10,cgnat,2025-04-01T00:00:00Z,2025-04-02T00:00:00Z\n"
        "m,m-2,203.0.113.10,cgnat,2025-04-01T00:00:00Z,2025-04-02T00:00:00Z\n"
        "h,h-1,203.0.113.101,dynamic,2025-04-01T00:00:00Z,2025-04-02T00:00:00Z\n"
        "h,h-2,203.0.113.102,dynamic,2025-04-01T00:00:00Z,2025-04-02T00:00:00Z\n"
    )
    (folder / "submission-2025-03-31.csv").write_text(
        "account,public_address,municipality,tspu\n"
        "A1,203.0.113.10,x,t\nA2,203.0.113.10,x,t\nA3,203.0.113.102,x,t\nA4,203.0.113.101,x,t\n"
    )


def test_detections_attributed_inside_through_the_nat_log_and_by_the_snapshot(
    tmp_path: Path,
) -> None:
    """CGNAT flags the user's neighbours on the shared address; a snapshot taken before the
    address moved flags the wrong person and misses the user."""
    _write_isp_data(tmp_path / "d")
    data = load_isp_data(tmp_path / "d")
    assert data is not None
    at = datetime(2025, 4, 1, 10, tzinfo=UTC)
    found = [
        Detection("m-1", "openvpn", "95.216.1.10", 1194, at, "openvpn"),
        Detection("h-2", "wireguard", "95.216.1.11", 51820, at, "wireguard"),
    ]
    v = attribute(found, data)
    assert confusion(v, data, "inside") == {"tp": 2, "fp": 0, "fn": 0, "tn": 2}
    assert confusion(v, data, "NAT log") == {"tp": 2, "fp": 1, "fn": 0, "tn": 1}  # A2 shares
    assert confusion(v, data, "submission") == {"tp": 1, "fp": 2, "fn": 1, "tn": 0}
    assert "shares 203.0.113.10 with m-1" in v.flagged["NAT log"]["A2"]
    page = detection_html(found, data, {"openvpn": (3, {"m-1"})}, {"openvpn": "openvpn"})
    assert "VPN users found" in page and "precision" in page


def test_isp_data_errors_name_the_file_and_line(tmp_path: Path) -> None:
    _write_isp_data(tmp_path / "d")
    path = tmp_path / "d" / "subscribers.csv"
    path.write_text(path.read_text().replace("A2,m,m-2,x,t,games,no", "A2,m,m-2,x,t,games,maybe"))
    with pytest.raises(IspDataError, match=r"subscribers.csv:4: vpn_user must be yes or no"):
        load_isp_data(tmp_path / "d")
    assert load_isp_data(tmp_path / "nothing-here") is None


def test_the_shipped_detection_data_covers_every_host_of_the_scenario() -> None:
    s = load_scenario(ROOT / "scenarios" / "vpn-detection.yaml")
    data = load_isp_data(ROOT / "data" / "vpn-detection")
    assert data is not None
    hosts = {h for hs in s.subscriber_hosts().values() for h in hs}
    assert set(data.subscribers) == hosts
    users = {h for m in s.circumvention if m.kind in ("openvpn", "wireguard", "shadowsocks")
             and m.name != "bank-s2s" for h in (m.subscribers or ())}  # fmt: skip
    assert users == {h for h, sub in data.subscribers.items() if sub.vpn_user}
    for step in ("2025-04-01T10:00:00+00:00", "2025-04-02T10:00:00+00:00"):
        at = datetime.fromisoformat(step)
        assert all(data.public_address(h, at) is not None for h in hosts)


def test_clients_of_openvpn_and_wireguard_start_side_by_side_in_different_hosts(
    tmp_path: Path,
) -> None:
    """A blocked handshake waits 20-30 s: hosts must not wait for each other's (the crackdown's
    tunnels in three ISPs at once); other kinds keep starting one client at a time."""
    from tspulab.methods.lab import LabMethods

    s = load_scenario(ROOT / "scenarios" / "vpn-ban.yaml")
    lab = LabMethods(s.circumvention, tmp_path, None, clients=2, log=lambda _m: None)

    class Host:
        def __init__(self, name: str) -> None:
            self.name = name

    a, b = Host("h1"), Host("h2")
    for name in ("expressvpn", "nordvpn"):  # openvpn, wireguard
        assert lab._client_lock(name, a) is not lab._client_lock(name, b)  # type: ignore[arg-type]
        assert lab._client_lock(name, a) is lab._client_lock(name, a)  # type: ignore[arg-type]
    one = lab._client_lock("own-shadowsocks", a)  # type: ignore[arg-type]
    assert one is lab._client_lock("own-shadowsocks", b)  # type: ignore[arg-type]


def test_probes_waiting_on_a_failing_client_start_share_its_failure(tmp_path: Path) -> None:
    """One blocked handshake per host and round, not one per service probed through it."""
    import threading
    import time

    from tspulab.methods.lab import LabMethods
    from tspulab.methods.process import MethodError

    s = load_scenario(ROOT / "scenarios" / "vpn-ban.yaml")
    lab = LabMethods(s.circumvention, tmp_path, None, clients=1, log=lambda _m: None)
    tries: list[str] = []

    def blocked(node: object) -> None:
        tries.append("start")
        time.sleep(0.3)
        raise MethodError("no handshake")

    lab.adapters["kaspersky"].start_client = blocked  # type: ignore[method-assign, assignment]
    host = type("Host", (), {"name": "h1"})()
    errors: list[str] = []

    def probe() -> None:
        try:
            lab.access("kaspersky", host)
        except MethodError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=probe) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tries == ["start"] and errors == ["no handshake"] * 3
    probe()  # a later round tries again
    assert tries == ["start", "start"]
