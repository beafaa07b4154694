"""The ISP's old filter box through the OpenFlow 1.3 switch model: what climbs, what it injects."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from tests.unit.controller.wire import PORTS, SUB_PORT, UP_PORT, Conn, Wire
from tests.unit.dpi.policy_flows import hello_record
from tspulab.controllers.config import OldFilterConfig, write_registry
from tspulab.controllers.oldfilter_box import COOKIE_OLD_FILTER, OldFilterBox
from tspulab.controllers.switch_events import BarrierReply, FlowRemoved, RegistryChange
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.oldfilter import FilterSettings
from tspulab.dpi.registry import Registry

BLOCKPAGE = "95.167.13.50"


def _registry(*names: str) -> Registry:
    registry = Registry()
    for name in names:
        registry.add_domain(name, MatchKind.EXACT, source="test")
    return registry


def _wire(tmp: Path, mode: str = "passive", **settings: str) -> Wire:
    path = tmp / "oldfilter.json"
    write_registry(path, _registry("rutracker.org"))
    config = OldFilterConfig(
        dpid=0x301, ports=PORTS, registry_file=path, name="rt",
        settings=FilterSettings(blockpage=BLOCKPAGE, isp="rt", mode=mode, **settings),  # type: ignore[arg-type]
    )  # fmt: skip
    w = Wire(OldFilterBox(config))  # type: ignore[arg-type]
    w.connect()
    return w


def _get(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


@pytest.fixture
def wire(tmp_path: Path) -> Wire:
    return _wire(tmp_path)


def test_rules_install_and_the_barrier_is_reported(wire: Wire) -> None:
    assert wire.events("old-filter-rules-sent")[0]["domains"] == 1
    wire.handle(BarrierReply())
    assert wire.events("old-filter-rules-installed")[0]["isp"] == "rt"


def test_upstream_traffic_and_other_ports_never_climb(wire: Wire) -> None:
    c = Conn(wire, dport=22)
    assert [p.climbed for p in c.handshake()] == [False, False, False]
    assert c.tcp("PA", b"SSH-2.0-x\r\n").delivered == [UP_PORT]
    web = Conn(wire, dport=80, sport=40001)
    syn, syn_ack, _ = web.handshake()
    assert (syn.climbed, syn.delivered) == (True, [UP_PORT])
    assert (syn_ack.climbed, syn_ack.delivered) == (False, [SUB_PORT])


def test_passive_http_block_injects_a_302_first_and_lets_the_request_go_on(wire: Wire) -> None:
    c = Conn(wire, dport=80)
    c.handshake()
    request_seq = c.seq[0]
    server_seq = c.seq[1]
    req = c.tcp("PA", _get("rutracker.org"))
    injected = [o for o in req.packet_outs if not o.data_is_frame]
    assert len(injected) == 1 and injected[0].ports == (SUB_PORT,)
    reply = Ether(injected[0].data)
    assert reply[IP].src == c.server and reply[IP].dst == c.client and reply[IP].id == 1
    assert reply[TCP].flags == "FPA" and reply[TCP].seq == server_seq
    assert reply[TCP].ack == request_seq + len(_get("rutracker.org"))
    assert bytes(reply[TCP].payload).startswith(
        b"HTTP/1.1 302 Found\r\nLocation: http://95.167.13.50/"
    )
    # the injection is sent before the request itself (it must win the race)
    assert req.packet_outs[0].data_is_frame is False and req.delivered == [UP_PORT]
    [event] = wire.events("old-filter-verdict")
    assert event["box"] == "old-filter" and event["action"] == "http-redirect"
    assert event["host"] == "rutracker.org" and event["flow"]["client"] == c.client
    # the flow is judged: the rest runs in the switch, both ways
    assert len(wire.switch.cookies(COOKIE_OLD_FILTER)) >= 2
    assert c.tcp("PA", b"HTTP/1.1 200 OK\r\n\r\n", from_client=False).delivered == [SUB_PORT]
    assert c.tcp("A").climbed is False


def test_inline_http_block_drops_the_request_and_the_flow(tmp_path: Path) -> None:
    wire = _wire(tmp_path, mode="inline")
    c = Conn(wire, dport=80)
    c.handshake()
    req = c.tcp("PA", _get("rutracker.org"))
    assert req.delivered == [] and len(req.packet_outs) == 1
    assert c.tcp("A").delivered == []


def test_unlisted_host_is_judged_allowed_after_its_request(wire: Wire) -> None:
    c = Conn(wire, dport=80)
    c.handshake()
    req = c.tcp("PA", _get("yandex.ru"))
    assert req.delivered == [UP_PORT] and all(o.data_is_frame for o in req.packet_outs)
    assert wire.events("old-filter-verdict") == []
    assert c.tcp("PA", b"more").climbed is False


def test_tls_reset_after_a_listed_client_hello(wire: Wire) -> None:
    c = Conn(wire, dport=443)
    c.handshake()
    hello = c.tcp("PA", hello_record("rutracker.org"))
    [rst] = [o for o in hello.packet_outs if not o.data_is_frame]
    assert rst.ports == (SUB_PORT,) and Ether(rst.data)[TCP].flags == "RA"
    assert Ether(rst.data)[IP].id == 0
    assert hello.delivered == [UP_PORT]  # passive: the ClientHello goes on
    assert wire.events("old-filter-verdict")[0]["sni"] == "rutracker.org"


def test_dns_query_for_a_listed_name_is_answered_in_the_resolvers_place(tmp_path: Path) -> None:
    wire = _wire(tmp_path, mode="inline")
    frame = bytes(
        Ether() / IP(src="10.1.0.11", dst="77.88.8.8") / UDP(sport=33333, dport=53)
        / DNS(id=7, rd=1, qd=DNSQR(qname="rutracker.org"))
    )  # fmt: skip
    passage = wire.send(frame, SUB_PORT)
    assert passage.delivered == []  # inline: the query never reaches the resolver
    [answer] = passage.packet_outs
    reply = Ether(answer.data)
    assert (reply[IP].src, reply[UDP].sport, reply[UDP].dport) == ("77.88.8.8", 53, 33333)
    assert dpkt.dns.DNS(bytes(reply[UDP].payload)).an[0].ip == bytes([95, 167, 13, 50])
    event = wire.events("old-filter-verdict")[0]
    assert (event["action"], event["qname"], event["answer"]) == (
        "dns-blockpage",
        "rutracker.org",
        BLOCKPAGE,
    )
    other = bytes(
        Ether() / IP(src="10.1.0.11", dst="77.88.8.8") / UDP(sport=33334, dport=53)
        / DNS(id=8, rd=1, qd=DNSQR(qname="yandex.ru"))
    )  # fmt: skip
    assert wire.send(other, SUB_PORT).delivered == [UP_PORT]


def test_registry_change_replaces_the_list(wire: Wire) -> None:
    wire.handle(RegistryChange(_registry("rutracker.org", "kasparov.ru")))
    assert wire.box.last_registry_change == (1, 0)
    c = Conn(wire, dport=80)
    c.handshake()
    assert wire.events("old-filter-verdict") == []
    c.tcp("PA", _get("kasparov.ru"))
    assert wire.events("old-filter-verdict")[0]["host"] == "kasparov.ru"


def test_expired_flow_is_inspected_again(wire: Wire) -> None:
    c = Conn(wire, dport=80)
    c.handshake()
    c.tcp("PA", _get("yandex.ru"))
    box: OldFilterBox = wire.box  # type: ignore[assignment]
    [ep] = box.done
    match = dict(ep.match(True))
    wire.handle(FlowRemoved(match, reason=0))  # OFPRR_IDLE_TIMEOUT
    assert box.done == set()


def test_profile_and_registry_commands_without_a_dpid_skip_old_filters(tmp_path: Path) -> None:
    from tspulab.controllers.switch_events import ProfileChange

    wire = _wire(tmp_path)
    assert wire.handle(ProfileChange("tspu-2022")) == []


def test_undecided_flows_are_bounded(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    import tspulab.controllers.oldfilter_box as box_module

    monkeypatch.setattr(box_module, "MAX_UNDECIDED", 3)
    for port in range(41000, 41005):
        Conn(wire, dport=80, sport=port).tcp("S")
    box: OldFilterBox = wire.box  # type: ignore[assignment]
    assert len(box.flows) == 3 and box.counters["undecided_evicted"] == 2
