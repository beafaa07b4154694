"""The §5.5 size pattern through the TSPU box and its OpenFlow switch model: the controller sees a
flow's packets as packet-ins until the verdict is final, so the window must cover the pattern's
packets (tunnelled_https.py: client_packets + 1 payload packets when the client waits)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.unit.controller.wire import SUB_PORT, UP_PORT, Conn, Wire, config
from tspulab.controllers.tspu_box import TspuBox

DIGITALOCEAN = "46.101.7.9"


def noise(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def box(tmp_path: Path) -> Wire:
    w = Wire(TspuBox(config(tmp_path, profile="tunnelled-https-2024", registry=())))
    w.connect()
    return w


def test_the_flow_climbs_until_the_server_answers_then_the_switch_drops_it(tmp_path: Path) -> None:
    w = box(tmp_path)
    c = Conn(w, server=DIGITALOCEAN, dport=443)
    syn, _, ack = c.handshake()
    assert syn.climbed and syn.delivered == [UP_PORT]  # the SYN is copied: the pattern needs it
    assert ack.climbed
    for size in (620, 1448, 530):  # pending: each one climbs and is released
        p = c.tcp("PA", noise(size))
        assert p.climbed and p.delivered == [UP_PORT], size
    answer = c.tcp("PA", noise(1300), from_client=False)
    assert answer.climbed and answer.delivered == []  # the answer decides: dropped
    assert not c.tcp("PA", noise(900)).climbed, "the switch drops the rest"
    assert c.tcp("PA", noise(900), from_client=False).delivered == []
    [verdict] = w.events("verdict")
    assert verdict["verdict"]["rule"] == "tunnelled-https"
    assert w.box.stats()["packet_ins"] == 6  # SYN copy, ACK, three client packets, the answer


def test_a_flow_the_rule_cannot_apply_to_leaves_the_controller_at_its_syn(tmp_path: Path) -> None:
    w = box(tmp_path)
    c = Conn(w, server=DIGITALOCEAN, dport=5555)
    c.handshake()
    for size in (620, 1448, 530, -1300):
        p = c.tcp("PA", noise(abs(size)), from_client=size > 0)
        assert not p.climbed and p.switch_ports == [UP_PORT if size > 0 else SUB_PORT]
    assert w.box.stats()["packet_ins"] == 1
