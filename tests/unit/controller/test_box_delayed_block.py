"""The two-stage cycle through the controller and the switch model (tspu-behaviour.md §1,
TSPU-DOCS [A]; vpn-verify-block-2025): a detected WireGuard flow is handed to the switch with a
hard timeout equal to the block delay; when the switch times it out, the flow's next packet
climbs and the box, now past the delay, has the switch drop it. The clock is the Wire's ``now``
(a fake clock: nothing reads real time)."""

from __future__ import annotations

from pathlib import Path

from os_ken.ofproto import ofproto_v1_3 as ofp
from scapy.contrib.wireguard import Wireguard, WireguardInitiation

from tests.unit.controller.wire import CLIENT, SERVER, Conn, Wire, config
from tspulab.controllers.pipeline import COOKIE_JUDGED
from tspulab.controllers.switch_events import FlowRemoved
from tspulab.controllers.tspu_box import TspuBox

WG_INIT = bytes(Wireguard() / WireguardInitiation(sender_index=7))


def test_detected_vpn_flow_is_dropped_by_the_switch_once_the_delay_has_passed(
    tmp_path: Path,
) -> None:
    w = Wire(TspuBox(config(tmp_path, profile="vpn-verify-block-2025", registry=())))
    w.connect()
    c = Conn(w, dport=51820)
    w.now = 100.0
    first = c.udp(WG_INIT)
    assert first.climbed and first.delivered, "detect: the initiation passes"
    judged = w.switch.cookies(COOKIE_JUDGED)
    assert judged, "the switch carries the detected flow"
    delays = {e.hard_timeout for e in judged}
    assert len(delays) == 1 and 300 <= next(iter(delays)) <= 900, delays
    delay = next(iter(delays))
    # Before the delay the switch forwards without asking.
    w.now = 100.0 + delay - 1
    assert not c.udp(bytes(64)).climbed
    # The switch's hard timeout fires: its rules go, and it says so.
    w.now = 100.0 + delay + 0.5
    w.switch.entries = [e for e in w.switch.entries if e.cookie != COOKIE_JUDGED]
    match = {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": CLIENT, "ipv4_dst": SERVER,
             "udp_src": 40000, "udp_dst": 51820}  # fmt: skip
    w.handle(FlowRemoved(match, ofp.OFPRR_HARD_TIMEOUT, COOKIE_JUDGED))
    late = c.udp(bytes(64))
    assert late.climbed and late.delivered == [], "the block has landed: dropped"
    assert not c.udp(bytes(64)).climbed and not c.udp(bytes(64)).delivered, "in the switch now"
    # Another subscriber to the same IP:port is dropped too.
    other = Conn(w, client="10.0.0.9", sport=50000, dport=51820)
    assert other.udp(bytes(48)).delivered == []
