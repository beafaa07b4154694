"""The TSPU box through the OpenFlow 1.3 switch model: verdicts, enforcement, reconnects."""

from __future__ import annotations

from pathlib import Path

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tests.unit.controller.wire import CLIENT, SERVER, SUB_PORT, UP_PORT, Conn, Wire, config
from tests.unit.dpi.policy_flows import hello_record
from tests.unit.fakeoftable import FakeOFTable, Pkt
from tspulab.controllers.enforcement import LossAdd, LossRemove
from tspulab.controllers.mirror import mirror_plan, profile_inspects
from tspulab.controllers.ofmsgs import Prebuilt
from tspulab.controllers.pipeline import (
    CONTROLLER_PORT,
    COOKIE_INSPECT,
    COOKIE_JUDGED,
    COOKIE_MIRROR,
    COOKIE_REGISTRY,
    Mirror,
)
from tspulab.controllers.switch_events import (
    BarrierReply,
    FlowRemoved,
    ProfileChange,
    RegistryChange,
    SwitchDown,
)
from tspulab.controllers.tspu_box import TspuBox
from tspulab.dpi.profile import load_profile
from tspulab.dpi.registry import load_inline


@pytest.fixture
def wire(tmp_path: Path) -> Wire:
    w = Wire(TspuBox(config(tmp_path)))
    w.connect()
    return w


def _kind(msg: object) -> int:
    """The OpenFlow message type of a message the box returned."""
    return int(msg.cls_msg_type)  # type: ignore[attr-defined]


def _judged(w: Wire) -> list[object]:
    return w.switch.cookies(COOKIE_JUDGED)


def test_allowed_tls_flow_mirrors_the_handshake_and_is_taken_over(wire: Wire) -> None:
    c = Conn(wire)
    syn, syn_ack, ack = c.handshake()
    # SYN: forwarded by the switch at once, a copy climbs (no packet-out needed); SYN/ACK:
    # forwarded, no copy
    assert (syn.delivered, syn.climbed, syn.packet_outs) == ([UP_PORT], True, [])
    assert (syn_ack.delivered, syn_ack.climbed) == ([SUB_PORT], False)
    # the bare ACK is diverted: its packet-out releases it
    assert ack.switch_ports == [] and ack.delivered == [UP_PORT]
    hello = c.tcp("PA", hello_record("example.com"))
    assert hello.delivered == [UP_PORT] and wire.box.installed != {}
    # the judged rules come before the packet-out that releases the deciding packet
    kinds = [_kind(m) for m in hello.box_output]
    assert kinds.index(ofp.OFPT_FLOW_MOD) < kinds.index(ofp.OFPT_PACKET_OUT)
    assert len(_judged(wire)) == 2
    # from now on the switch carries the flow both ways
    reply = c.tcp("PA", b"\x16\x03\x03" + b"s" * 200, from_client=False)
    assert (reply.delivered, reply.climbed) == ([SUB_PORT], False)
    assert (c.tcp("PA", b"GET").climbed, c.tcp("FA").climbed) == (False, False)
    [verdict] = wire.events("verdict")
    assert verdict["verdict"]["action"] == "allow" and verdict["sni"] == "example.com"
    assert wire.box.stats()["packet_ins"] == 3 and wire.box.stats()["mirrored"] == 1


def test_sni_iv_drops_the_hello_and_the_flow_in_the_switch(wire: Wire) -> None:
    c = Conn(wire)
    c.handshake()
    hello = c.tcp("PA", hello_record("rutracker.org"))
    assert hello.delivered == [] and hello.packet_outs == []
    assert (c.tcp("PA", b"x").delivered, c.tcp("PA", b"y", from_client=False).delivered) == (
        [],
        [],
    )
    assert wire.events("verdict")[0]["verdict"]["rule"] == "sni-iv"


def test_registry_address_never_reaches_the_box(wire: Wire) -> None:
    c = Conn(wire, server="149.154.167.99")
    syn = c.tcp("S")
    assert (syn.delivered, syn.climbed) == ([], False)
    assert wire.switch.process(Pkt(SUB_PORT, CLIENT, "149.154.167.99")).entries[0].cookie == (
        COOKIE_REGISTRY
    )


def test_sni_i_rewrites_the_server_reply_into_a_rst(wire: Wire) -> None:
    c = Conn(wire)
    c.handshake()
    assert c.tcp("PA", hello_record("instagram.com")).delivered == [UP_PORT]
    reply = c.tcp("PA", b"\x16\x03\x03" + b"s" * 100, from_client=False)
    [out] = reply.packet_outs
    assert not out.data_is_frame and out.ports == (SUB_PORT,)
    rst = Ether(out.data)
    assert rst[TCP].flags == "RA" and rst[IP].src == SERVER and rst[TCP].sport == 443
    # after the RST both directions are dropped in the switch
    assert c.tcp("PA", b"z").delivered == []


def test_sni_ii_stays_on_the_controller_until_the_count_is_spent(wire: Wire) -> None:
    c = Conn(wire)
    c.handshake()
    c.tcp("PA", hello_record("twitter.com"))
    passed = 0
    for i in range(12):
        p = c.tcp("PA", b"d" * 10, from_client=i % 2 == 1)
        passed += bool(p.delivered)
        if not p.climbed:
            break
    assert 5 <= passed <= 8
    assert not c.tcp("PA", b"late").climbed, "the switch drops the rest"
    assert len(_judged(wire)) == 2


def test_reconnect_reinstalls_the_registry_and_every_live_judged_flow(tmp_path: Path) -> None:
    """The reconnect bug: the switch lost its flows and meters while the box kept its books."""
    w = Wire(TspuBox(config(tmp_path, profile="twitter-throttle-2021",
                            registry=("149.154.167.99", "twitter.com"))))  # fmt: skip
    w.connect()
    flows = [Conn(w, sport=40000 + i) for i in range(3)]
    for c in flows:
        c.handshake()
        c.tcp("PA", hello_record("twitter.com" if c.sport != 40002 else "example.com"))
    # two policed flows in the switch; the third is still inspected (the throttler re-arms)
    assert len(w.box.installed) == 2 and len(w.switch.meters) == 4
    before = sorted((e.table_id, e.priority, sorted(e.match.items())) for e in w.switch.entries)

    w.handle(SwitchDown())
    w.switch = FakeOFTable()  # the switch restarted empty
    w.now = 30.0
    w.connect()
    after = sorted((e.table_id, e.priority, sorted(e.match.items())) for e in w.switch.entries)
    assert after == before and len(w.switch.meters) == 4
    for c in flows[:2]:  # the judged flows go on at switch speed, through their meters
        p = w.switch.process(Pkt(SUB_PORT, CLIENT, SERVER, sport=c.sport))
        assert p.ports == [UP_PORT] and len(p.meters) == 1
    assert w.switch.process(Pkt(SUB_PORT, CLIENT, SERVER, sport=40002)).to_controller
    assert w.switch.process(Pkt(SUB_PORT, CLIENT, "149.154.167.99")).ports == []
    assert w.events("tspu-rules-sent")[-1]["restored_flows"] == 2
    # the wipe's FlowRemoved(DELETE) messages do not make the box forget what it re-installed
    c = flows[0]
    match = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": CLIENT, "ipv4_dst": SERVER,
             "tcp_src": c.sport, "tcp_dst": 443}  # fmt: skip
    assert w.handle(FlowRemoved(match, ofp.OFPRR_DELETE, COOKIE_JUDGED)) == []
    assert len(w.box.installed) == 2


def test_expired_flow_is_forgotten_with_its_meters_and_other_direction(tmp_path: Path) -> None:
    w = Wire(TspuBox(config(tmp_path, profile="twitter-throttle-2021",
                            registry=("twitter.com",))))  # fmt: skip
    w.connect()
    c = Conn(w)
    c.handshake()
    c.tcp("PA", hello_record("twitter.com"))
    match = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": CLIENT, "ipv4_dst": SERVER,
             "tcp_src": 40000, "tcp_dst": 443}  # fmt: skip
    # the switch expired the client→server rule; the server→client one is still there
    w.switch.entries = [e for e in w.switch.entries if e.match.get("tcp_src") != (40000, None)]
    out = w.handle(FlowRemoved(match, ofp.OFPRR_IDLE_TIMEOUT, COOKIE_JUDGED))
    assert w.box.installed == {} and w.switch.meters == {} and _judged(w) == []
    assert [_kind(m) for m in out].count(ofp.OFPT_METER_MOD) == 2
    assert w.events("flow-expired")[0]["flow"]["client_port"] == 40000
    # an unknown removal is counted, nothing else
    assert w.handle(FlowRemoved(match, ofp.OFPRR_IDLE_TIMEOUT, COOKIE_JUDGED)) == []
    assert w.box.stats()["flow_removed_unknown"] == 1
    # the flow's next packet is a new flow to the box
    assert c.tcp("PA", b"again").climbed


def test_a_hard_timeout_that_ran_out_while_away_is_not_restored(tmp_path: Path) -> None:
    w = Wire(TspuBox(config(tmp_path, profile="hosting-freeze-2025", registry=())))
    w.connect()
    box = w.box
    from tspulab.controllers.enforcement import plan_for
    from tspulab.controllers.pipeline import FlowEndpoints
    from tspulab.controllers.tspu_box import Installed
    from tspulab.dpi.verdict import Drop, Fate

    ep = FlowEndpoints(6, CLIENT, 40000, SERVER, 443)
    plan = plan_for(ep, Drop(True, "block", "r", hard_timeout_s=10.0), Fate.DROP, [])
    box.installed["k"] = Installed("k", ep, plan, at=0.0)
    w.now = 4.0
    w.switch = FakeOFTable()
    w.connect()
    assert {e.hard_timeout for e in _judged(w)} == {6}, "re-installed with the time left"
    w.now = 11.0
    w.switch = FakeOFTable()
    w.connect()
    assert _judged(w) == [] and box.installed == {}


def test_random_loss_work_goes_to_the_worker_not_the_packet_path(tmp_path: Path) -> None:
    w = Wire(TspuBox(config(tmp_path, profile="youtube-2024", registry=())))
    w.connect()
    names = load_profile("youtube-2024").sets
    name = next(iter(n for n in names if "youtube" in n or "googlevideo" in n), None)
    assert name is not None
    sni = "rr1.googlevideo.com"
    c = Conn(w)
    c.handshake()
    c.tcp("PA", hello_record(sni))
    adds = [x for x in w.loss_work if isinstance(x, LossAdd)]
    assert adds and all(a.loss.ep.client_port == 40000 for a in adds)
    match = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": CLIENT, "ipv4_dst": SERVER,
             "tcp_src": 40000, "tcp_dst": 443}  # fmt: skip
    w.handle(FlowRemoved(match, ofp.OFPRR_IDLE_TIMEOUT, COOKIE_JUDGED))
    assert isinstance(w.loss_work[-1], LossRemove)


# --- robustness (issue 16): log, count, keep serving -----------------------------------------


def test_malformed_truncated_and_stray_packet_ins_are_counted_and_dropped(wire: Wire) -> None:
    from tspulab.controllers.switch_events import PacketIn

    # not decodable as IP: the DPI passes it, as the wire would (engine's documented choice)
    [released] = wire.handle(PacketIn(b"\x00" * 5, SUB_PORT, 5))
    assert _kind(released) == ofp.OFPT_PACKET_OUT and released.body.endswith(b"\x00" * 5)
    assert wire.handle(PacketIn(b"\x00" * 60, SUB_PORT, 1500)) == []
    assert wire.handle(PacketIn(b"\x00" * 60, None, 60)) == []
    assert wire.handle(PacketIn(b"\x00" * 60, 7, 60)) == []
    stats = wire.box.stats()
    assert stats["truncated_packet_in"] == 1 and stats["unknown_port"] == 2
    refused = wire.events("packet-in-refused")
    assert {r["why"] for r in refused} == {"truncated_packet_in", "unknown_port"}
    # a truncated real frame: the start of a SYN
    syn = bytes(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=1, dport=443, flags="S"))
    assert wire.handle(PacketIn(syn[:20], SUB_PORT, len(syn))) == []
    # still serving
    c = Conn(wire)
    c.handshake()
    assert c.tcp("PA", hello_record("example.com")).delivered == [UP_PORT]


def test_a_stray_icmp_packet_in_is_released_without_rules(wire: Wire) -> None:
    """The inspect table sends only TCP and UDP up; anything else that arrives (another app's
    table-miss rule, a misconfigured switch) is judged and released, never pushed as a rule the
    switch would refuse (an ICMP 5-tuple has no ports: OFPBMC_BAD_PREREQ)."""
    from scapy.layers.inet6 import ICMPv6ND_NS, IPv6

    from tspulab.controllers.switch_events import PacketIn

    frame = bytes(Ether() / IPv6(src="::", dst="ff02::1:ff00:6") / ICMPv6ND_NS(tgt="fe80::6"))
    out = wire.handle(PacketIn(frame, SUB_PORT, len(frame)))
    assert [_kind(m) for m in out] == [ofp.OFPT_PACKET_OUT] and wire.switch.errors == []


def test_an_engine_failure_is_counted_and_other_flows_go_on(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = wire.box.engine
    assert engine is not None
    real = engine.process
    calls = []

    def flaky(frame: bytes, now: float, **kw: object) -> object:
        calls.append(frame)
        if len(calls) == 1:
            raise IndexError("a DPI bug")
        return real(frame, now, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "process", flaky)
    lost = Conn(wire, sport=41000).tcp("PA", b"boom")
    assert lost.delivered == [] and wire.box.stats()["engine_error"] == 1
    c = Conn(wire)
    c.handshake()
    assert c.tcp("PA", hello_record("example.com")).delivered == [UP_PORT]


def test_switch_errors_are_logged_and_counted(wire: Wire) -> None:
    from tspulab.controllers.switch_events import SwitchError

    header = bytes([4, ofp.OFPT_FLOW_MOD, 0, 56, 0, 0, 0, 42])
    assert wire.handle(SwitchError(ofp.OFPET_METER_MOD_FAILED, 9, header)) == []
    assert wire.handle(SwitchError(ofp.OFPET_BAD_MATCH, 1)) == []
    [first, second] = wire.events("switch-error")
    assert first["type"] == "OFPET_METER_MOD_FAILED" and first["refused"]["xid"] == 42
    assert second["refused"] is None
    assert wire.box.stats()["switch_errors"] == 2


def test_barrier_reply_times_the_install(wire: Wire) -> None:
    wire.now = 0.25
    wire.handle(BarrierReply())
    assert wire.events("tspu-rules-installed") == [{"dpid": 1, "seconds": 0.25}]
    wire.handle(BarrierReply())
    assert len(wire.events("tspu-rules-installed")) == 1


# --- run-time changes ------------------------------------------------------------------------


def test_registry_change_adds_before_it_removes(wire: Wire) -> None:
    new = load_inline(["91.108.4.0/22", "rutracker.org"], "v2")
    out = wire.handle(RegistryChange(new))
    flow_mods = [m for m in out if isinstance(m, Prebuilt)]
    assert len(flow_mods) == 4 and wire.box.last_registry_change == (1, 1)
    commands = [m.body[17] for m in flow_mods]  # the flow-mod command byte
    assert commands == [ofp.OFPFC_ADD] * 2 + [ofp.OFPFC_DELETE_STRICT] * 2
    assert wire.switch.process(Pkt(SUB_PORT, CLIENT, "91.108.5.1")).ports == []
    assert wire.switch.process(Pkt(SUB_PORT, CLIENT, "149.154.167.99", proto=1)).ports == [UP_PORT]


def test_registry_change_while_disconnected_waits_for_the_reconnect(wire: Wire) -> None:
    wire.handle(SwitchDown())
    assert wire.handle(RegistryChange(load_inline(["91.108.4.0/22"], "v2"))) == []
    wire.switch = FakeOFTable()
    wire.connect()
    assert wire.switch.process(Pkt(SUB_PORT, CLIENT, "91.108.5.1", proto=1)).ports == []


def test_profile_change_follows_with_the_inspect_table(wire: Wire) -> None:
    assert wire.switch.cookies(COOKIE_INSPECT) and wire.switch.cookies(COOKIE_MIRROR)
    wire.handle(ProfileChange("rkn-2018-ip"))
    assert wire.switch.cookies(COOKIE_INSPECT) == [] and wire.switch.cookies(COOKIE_MIRROR) == []
    assert not Conn(wire).tcp("S").climbed
    wire.handle(ProfileChange("tspu-2022"))
    assert len(wire.switch.cookies(COOKIE_INSPECT)) == 4 + 4  # + UDP 443 both ways, v4 and v6
    assert Conn(wire, sport=40001).tcp("S").climbed


def test_detections_are_logged_and_drained(tmp_path: Path) -> None:
    w = Wire(TspuBox(config(tmp_path, profile="vpn-detect-2025", registry=())))
    w.connect()
    c = Conn(w, dport=51820)
    handshake = bytes([1, 0, 0, 0]) + bytes(144)  # a WireGuard handshake initiation
    c.udp(handshake)
    assert [d["protocol"] for d in w.events("detect")] == ["wireguard"]
    assert w.box.engine is not None and len(w.box.engine.detections) == 0


@pytest.mark.parametrize(
    ("profile", "inspects", "mirror"),
    [
        ("rkn-2018-ip", False, Mirror()),
        ("tspu-2022", True, Mirror(tcp_syn=True, udp=True, udp_divert_ports=(443,))),
        ("twitter-throttle-2021", True, Mirror(tcp_syn=True, udp=True)),
        ("hosting-freeze-2025", True, Mirror()),  # host blocks drop a new flow's first packet
        ("vpn-detect-2025", True, Mirror(tcp_syn=True, udp=True)),  # detect only: nothing held
        ("vpn-protocols-2023", True, Mirror(tcp_syn=True)),  # WireGuard on any UDP port: drop
        ("whitelist-2025", True, Mirror(tcp_syn=True)),  # SYNs pass (§5.9); other UDP dropped
    ],
)
def test_which_packets_each_profile_may_mirror(
    profile: str, inspects: bool, mirror: Mirror
) -> None:
    p = load_profile(profile)
    assert (profile_inspects(p), mirror_plan(p)) == (inspects, mirror)


def test_dns_is_mirrored_and_quic_port_diverted_under_tspu_2022(wire: Wire) -> None:
    dns = Conn(wire, sport=5353, dport=53).udp(b"\x12\x34" + bytes(30))
    assert (dns.switch_ports, dns.climbed, dns.packet_outs) == ([UP_PORT], True, [])
    quic = Conn(wire, sport=5353, dport=443)
    initial = b"\xc0\x00\x00\x00\x01" + bytes(1200)
    assert quic.udp(initial).switch_ports == [], "the QUIC v1 rule may drop it: diverted"
    # a server's packet from port 443 to a client port is diverted too, never mirrored
    from_443 = Pkt(UP_PORT, SERVER, CLIENT, proto=17, sport=443, dport=6000)
    assert wire.switch.process(from_443).ports == [CONTROLLER_PORT]


def test_no_mirror_rule_under_a_profile_that_can_drop_a_syn(tmp_path: Path) -> None:
    w = Wire(TspuBox(config(tmp_path, profile="hosting-freeze-2025", registry=())))
    w.connect()
    assert w.switch.cookies(COOKIE_MIRROR) == []
    syn = Conn(w).tcp("S")
    assert syn.switch_ports == [] and syn.delivered == [UP_PORT]
    other = Pkt(SUB_PORT, CLIENT, SERVER, sport=40001, tcp_flags=2)
    assert w.switch.process(other).ports == [CONTROLLER_PORT]
