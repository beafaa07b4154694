"""Smoke test of the os-ken app: every handler, called as os-ken would, with a fake datapath.

As os-ken's own app tests do, `OSKenApp.__init__` is patched out and the datapath is a
MagicMock carrying the real OpenFlow 1.3 modules; `send_msg` serialises each message and applies
the bytes to the switch model, so what the app sends is what a switch would receive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tests.unit.controller.wire import CLIENT, SERVER, SUB_PORT, config
from tests.unit.fakeoftable import FakeOFTable, Pkt
from tspulab.controllers.config import ENV_VAR, write_registry
from tspulab.controllers.dispatch import LockedSocket
from tspulab.controllers.events import EventLog
from tspulab.controllers.pipeline import CONTROLLER_PORT, COOKIE_MIRROR
from tspulab.dpi.registry import load_inline

TSPU_DPID, OTHER_DPID = 1, 99


def _datapath(dpid: int, switch: FakeOFTable) -> Any:
    dp = mock.MagicMock()
    dp.id = dpid
    dp.ofproto, dp.ofproto_parser = ofp, parser

    xids = iter(range(1, 1 << 30))

    def set_xid(msg: Any) -> None:
        assert msg.datapath is dp, "the app sets the datapath before it sends"
        msg.set_xid(next(xids))

    def send(buf: bytes) -> None:
        """One write may hold several messages: split them by their headers' lengths."""
        while buf:
            length = int.from_bytes(buf[2:4])
            switch.apply_bytes(buf[:length])
            buf = buf[length:]

    dp.set_xid.side_effect = set_xid
    dp.send.side_effect = send  # os-ken's queue: only when the socket refuses
    dp.socket = mock.MagicMock()
    dp.socket.sendall.side_effect = send
    dp.send_msg.side_effect = AssertionError("the app writes whole batches")
    return dp


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    tspu = config(tmp_path)
    path = tmp_path / "controller.json"
    # controller.json as the lab writes it (keys of config.py / tspulab.contracts)
    path.write_text(json.dumps({
        "tspus": [{
            "name": "isp1", "dpid": tspu.dpid, "subscriber_port": 1, "upstream_port": 2,
            "subscriber_if": "", "upstream_if": "",
            "profile": tspu.profile, "registry_file": str(tspu.registry_file),
            "subscriber_nets": ["10.0.0.0/8"], "profile_sets": {"sni-ii": ["twitter.com"]},
        }],
        "events_log": str(tmp_path / "events.jsonl"),
    }))  # fmt: skip
    monkeypatch.setenv(ENV_VAR, str(path))
    from tspulab.controllers.tspu import TspuApp

    with mock.patch("os_ken.base.app_manager.OSKenApp.__init__", return_value=None):
        return TspuApp()


def _events(app: Any) -> list[dict[str, Any]]:
    app.event_log.flush()
    path = app.config.events_log
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _packet_in(dp: Any, data: bytes | None, match: dict[str, Any], **kw: Any) -> Any:
    msg = mock.MagicMock(datapath=dp, data=data, match=match, cookie=kw.get("cookie", 0),
                         reason=ofp.OFPR_ACTION, table_id=2,
                         total_len=kw.get("total_len", len(data or b"")))  # fmt: skip
    return mock.MagicMock(msg=msg)


def _syn(sport: int = 40000) -> bytes:
    return bytes(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=443, flags="S"))


def test_every_handler_with_a_fake_datapath(app: Any) -> None:
    switch, other_switch = FakeOFTable(), FakeOFTable()
    dp, other = _datapath(TSPU_DPID, switch), _datapath(OTHER_DPID, other_switch)

    # connect: features, then the state change to MAIN
    app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=dp, datapath_id=dp.id)))
    app.state_change(mock.MagicMock(datapath=dp, state=MAIN_DISPATCHER))
    assert switch.errors == [] and switch.cookies(COOKIE_MIRROR)
    assert isinstance(dp.socket, LockedSocket) and not dp.send.called, "written directly"
    assert switch.barriers == 1
    app.barrier_reply(mock.MagicMock(msg=mock.MagicMock(datapath=dp)))

    # a switch that is not a TSPU (the learning switch's) is left alone, whatever it sends
    app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=other, datapath_id=other.id)))
    app.packet_in(_packet_in(other, _syn(), {"in_port": 1}))
    assert other_switch.entries == [] and other_switch.packet_outs == []

    # a mirrored SYN: judged, not sent again; a diverted one: released by a packet-out
    app.packet_in(_packet_in(dp, _syn(), {"in_port": SUB_PORT}, cookie=COOKIE_MIRROR))
    assert switch.packet_outs == []
    app.packet_in(_packet_in(dp, _syn(40001), {"in_port": SUB_PORT}))
    assert [o.ports for o in switch.packet_outs] == [(2,)]

    # malformed, truncated and stray packet-ins: counted, logged, nothing sent
    app.packet_in(_packet_in(dp, None, {}))
    app.packet_in(_packet_in(dp, _syn(40002)[:30], {"in_port": SUB_PORT}, total_len=54))
    app.packet_in(_packet_in(dp, _syn(40003), {"in_port": 77}))
    assert len(switch.packet_outs) == 1

    # flow removed (unknown flow), switch error, both for a known and an unknown switch
    removed = mock.MagicMock(datapath=dp, reason=ofp.OFPRR_IDLE_TIMEOUT, cookie=0)
    removed.match = parser.OFPMatch(eth_type=0x0800, ip_proto=6, ipv4_src=CLIENT,
                                    ipv4_dst=SERVER, tcp_src=1, tcp_dst=443)  # fmt: skip
    app.flow_removed(mock.MagicMock(msg=removed))
    error = mock.MagicMock(datapath=dp, type=ofp.OFPET_BAD_MATCH, code=1, data=b"\x04\x0e")
    app.error_msg(mock.MagicMock(msg=error))
    error_other = mock.MagicMock(datapath=other, type=ofp.OFPET_BAD_MATCH, code=1, data=b"")
    app.error_msg(mock.MagicMock(msg=error_other))

    # the control channel
    stats = app._command({"cmd": "stats"})
    assert stats["ok"] and stats["packet_ins"] == 5 and stats["unknown_port"] == 2
    assert stats["truncated_packet_in"] == 1 and stats["switch_errors"] == 1
    registry = app.config.tspus[0].registry_file.parent / "registry-2.json"
    write_registry(registry, load_inline(["91.108.4.0/22"], "v2"))
    reply = app._command({"cmd": "registry", "file": str(registry)})
    assert (reply["ok"], reply["added"], reply["removed"]) == (True, 1, 1)
    assert switch.process(Pkt(SUB_PORT, CLIENT, "91.108.4.9", proto=1)).ports == []
    assert app._command({"cmd": "profile", "name": "rkn-2018-ip"}) == {"ok": True}
    assert switch.process(Pkt(SUB_PORT, CLIENT, SERVER)).ports == [2]
    assert app._command({"cmd": "nope"})["ok"] is False

    # disconnect and reconnect: the switch is rebuilt, the other switch is still served
    app.state_change(mock.MagicMock(datapath=dp, state=DEAD_DISPATCHER))
    assert TSPU_DPID not in app.datapaths
    switch2 = FakeOFTable()
    dp2 = _datapath(TSPU_DPID, switch2)
    app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=dp2, datapath_id=dp2.id)))
    assert switch2.errors == [] and switch2.process(Pkt(SUB_PORT, CLIENT, SERVER)).ports == [2]
    app.state_change(mock.MagicMock(datapath=other, state=DEAD_DISPATCHER))

    names = [e["event"] for e in _events(app)]
    for expected in ("tspu-rules-sent", "tspu-rules-installed", "switch-up",
                     "packet-in-refused", "switch-error", "registry-update", "profile-change",
                     "switch-down"):  # fmt: skip
        assert expected in names, expected
    assert "handler-error" not in names
    assert app.ignored["PacketIn"] == 1 and app.ignored["SwitchError"] == 1


def test_hot_events_are_handled_in_the_reader_thread(app: Any) -> None:
    """Packet-ins and the like skip os-ken's app queue (controllers/dispatch.py)."""
    switch = FakeOFTable()
    dp = _datapath(TSPU_DPID, switch)
    app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=dp, datapath_id=dp.id)))
    app.event_handlers = {}
    app.register_handler(ofp_event.EventOFPPacketIn, app.packet_in)
    app.events, app._events_sem = mock.MagicMock(), mock.MagicMock()
    ev = ofp_event.EventOFPPacketIn(_packet_in(dp, _syn(40001), {"in_port": SUB_PORT}).msg)
    app._send_event(ev, MAIN_DISPATCHER)
    assert [o.ports for o in switch.packet_outs] == [(2,)] and not app.events.put.called
    # the features (os-ken sets the dpid after the observers) and state changes still queue
    app._send_event(
        ofp_event.EventOFPSwitchFeatures(mock.MagicMock(datapath=dp)), CONFIG_DISPATCHER
    )
    app._send_event(ofp_event.EventOFPStateChange(dp), MAIN_DISPATCHER)
    assert app.events.put.call_count == 2


def test_a_refused_direct_write_falls_back_to_os_kens_queue(app: Any) -> None:
    switch = FakeOFTable()
    dp = _datapath(TSPU_DPID, switch)
    app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=dp, datapath_id=dp.id)))
    dp.socket._sock.sendall.side_effect = BrokenPipeError()
    app.packet_in(_packet_in(dp, _syn(40009), {"in_port": SUB_PORT}))
    assert dp.send.called and len(switch.packet_outs) == 1


def test_locked_socket_serialises_writers() -> None:
    import socket
    import threading

    a, b = socket.socketpair()
    locked = LockedSocket(a)
    chunks = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=locked.sendall, args=(c,)) for c in chunks]
    got = bytearray()

    def read_all() -> None:
        while len(got) < 800_000:
            got.extend(b.recv(1 << 16))

    reader = threading.Thread(target=read_all)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader.join(timeout=10)
    runs = [got[i : i + 100_000] for i in range(0, 800_000, 100_000)]
    assert all(len(set(r)) == 1 for r in runs), "no write interleaved with another"
    assert locked.fileno() == a.fileno()
    a.close()
    b.close()


def test_a_handler_exception_is_logged_not_raised(app: Any) -> None:
    app.boxes[TSPU_DPID].handle = mock.MagicMock(side_effect=RuntimeError("bug"))
    dp = _datapath(TSPU_DPID, FakeOFTable())
    app.packet_in(_packet_in(dp, _syn(), {"in_port": SUB_PORT}))
    [error] = [e for e in _events(app) if e["event"] == "handler-error"]
    assert error["handler"] == "packet_in" and "RuntimeError" in error["error"]


def test_event_log_is_batched_and_flushed(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "e.jsonl")
    for i in range(3):
        log.write("x", i=i)
    log.flush()
    lines = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [x["i"] for x in lines] == [0, 1, 2]
    assert EventLog(None).write("x") is None


def test_controller_port_is_openflows() -> None:
    assert CONTROLLER_PORT == ofp.OFPP_CONTROLLER


def test_one_tspu_in_trouble_does_not_stop_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ISPs' TSPUs in one controller: malformed packet-ins, switch errors and a disconnect
    on one are logged and counted there while the other goes on judging flows."""
    from tests.unit.dpi.policy_flows import hello_record

    entries = []
    for dpid in (1, 2):
        tspu = config(tmp_path, dpid=dpid)
        entries.append({
            "name": f"isp{dpid}", "dpid": dpid, "subscriber_port": 1, "upstream_port": 2,
            "subscriber_if": "", "upstream_if": "", "profile": "tspu-2022",
            "registry_file": str(tspu.registry_file), "subscriber_nets": ["10.0.0.0/8"],
        })  # fmt: skip
    path = tmp_path / "controller.json"
    path.write_text(json.dumps({"tspus": entries, "events_log": str(tmp_path / "ev.jsonl")}))
    monkeypatch.setenv(ENV_VAR, str(path))
    from tspulab.controllers.tspu import TspuApp

    with mock.patch("os_ken.base.app_manager.OSKenApp.__init__", return_value=None):
        app = TspuApp()
    switches = {1: FakeOFTable(), 2: FakeOFTable()}
    dps = {d: _datapath(d, switches[d]) for d in (1, 2)}
    for dp in dps.values():
        app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=dp, datapath_id=dp.id)))
        app.state_change(mock.MagicMock(datapath=dp, state=MAIN_DISPATCHER))

    # trouble on ISP 1
    app.packet_in(_packet_in(dps[1], b"\x00" * 3, {"in_port": 1}, total_len=1500))
    app.packet_in(_packet_in(dps[1], _syn(), {"in_port": 9}))
    app.error_msg(mock.MagicMock(msg=mock.MagicMock(datapath=dps[1], type=ofp.OFPET_BAD_MATCH,
                                                    code=9, data=b"")))  # fmt: skip
    app.state_change(mock.MagicMock(datapath=dps[1], state=DEAD_DISPATCHER))

    # ISP 2 judges a TLS flow as usual: its rules land in its own switch only
    def frame(flags: str, payload: bytes = b"") -> bytes:
        return bytes(Ether() / IP(src=CLIENT, dst=SERVER)
                     / TCP(sport=41000, dport=443, flags=flags) / payload)  # fmt: skip

    app.packet_in(_packet_in(dps[2], frame("S"), {"in_port": 1}, cookie=COOKIE_MIRROR))
    app.packet_in(_packet_in(dps[2], frame("A"), {"in_port": 1}))
    app.packet_in(_packet_in(dps[2], frame("PA", hello_record("example.com")), {"in_port": 1}))
    reply = Pkt(2, SERVER, CLIENT, sport=443, dport=41000)
    assert switches[2].process(reply).ports == [1], "the flow is carried by ISP 2's switch"
    assert switches[1].process(reply).to_controller, "ISP 1's switch knows nothing of it"
    one, two = app.boxes[1].stats(), app.boxes[2].stats()
    assert (one["truncated_packet_in"], one["unknown_port"], one["switch_errors"]) == (1, 1, 1)
    assert two["judged"] == 1 and "switch_errors" not in two
    assert not app.boxes[1].connected and app.boxes[2].connected
    events = _events(app)
    assert [e["tspu"] for e in events if e["event"] == "verdict"] == ["isp2"]
    assert "handler-error" not in {e["event"] for e in events}


def test_features_before_os_ken_named_the_datapath(app: Any) -> None:
    """os-ken sets datapath.id in the reader thread after handing the app its features event:
    the app's thread may see None there. The TSPU's rules go out by the message's dpid (the VM
    guest's bring-up waited 600 s for a TSPU switch whose features were taken as a stranger's)."""
    switch = FakeOFTable()
    dp = _datapath(TSPU_DPID, switch)
    dp.id = None
    app.switch_features(mock.MagicMock(msg=mock.MagicMock(datapath=dp, datapath_id=TSPU_DPID)))
    assert switch.cookies(COOKIE_MIRROR) and switch.barriers == 1
