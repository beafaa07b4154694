"""HTTP CONNECT tunnels: the TLS inside is read and judged by its SNI, in every reassembly mode.

An HTTP proxy's CONNECT request (RFC 9110 §9.3.6) and the proxy's 200 reply are plaintext; the
tunnel then carries the subscriber's own ClientHello, which a TSPU reads like SOCKS5's
(docs/tspu-behaviour.md §6, "Unencrypted HTTP/SOCKS proxy: fails", CP-THR). nDPI labels such a
flow HTTP_Connect with the CONNECT target as its host (tests/data/pcaps/ndpi/result/
http_connect.pcap.out); tspulab names what is inside it.
"""

from __future__ import annotations

import pytest

from tests.datapaths import PCAPS
from tests.unit.dpi.crafting import client_hello, handshake_records, record, tcp_frame
from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tspulab.dpi.classify import Classification, Classifier, Protocol
from tspulab.dpi.flow import FlowTable
from tspulab.dpi.packet import decode
from tspulab.dpi.verdict import Fate
from tspulab.replay import replay_file

MODES = ("none", "tcp", "tls-records")
CONNECT = b"CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
SERVER_HELLO = record(22, b"\x02\x00\x00\x46" + bytes(70), 0x0303)


def classify(mode: str, exchange: list[tuple[bytes, bool]]) -> Classification:
    """Drive SYN, SYN/ACK, ACK then ``(payload, from_client)`` segments through a classifier."""
    classifier = Classifier(mode, inspect_packets=20)
    table = FlowTable(())
    seq = [1000, 5000]
    frames = [
        tcp_frame(b"", seq[0], "S"),
        tcp_frame(b"", seq[1], "SA", from_client=False),
    ]
    seq = [seq[0] + 1, seq[1] + 1]
    for payload, from_client in exchange:
        side = 0 if from_client else 1
        frames.append(tcp_frame(payload, seq[side], "PA", from_client=from_client))
        seq[side] += len(payload)
    verdict: Classification | None = None
    flow = None
    for i, frame in enumerate(frames):
        pkt = decode(frame)
        flow = table.lookup(pkt, i * 0.01)
        verdict = classifier.observe(pkt, flow, i * 0.01) or verdict
    assert flow is not None
    return verdict if verdict is not None else classifier.conclude(flow)


@pytest.mark.parametrize("mode", MODES)
def test_the_client_hello_after_connect_and_200_decides(mode: str) -> None:
    hello = hello_record("inner.blocked.example")
    c = classify(mode, [(CONNECT, True), (ESTABLISHED, False), (hello, True)])
    assert c.protocol is Protocol.TLS, c
    assert c.sni == "inner.blocked.example"
    assert c.host == "blocked.example"  # the CONNECT target, as nDPI names the flow's host
    assert "after an http connect to blocked.example:443" in c.detail


@pytest.mark.parametrize("mode", MODES)
def test_a_client_hello_sent_with_the_request_is_read(mode: str) -> None:
    """Clients that do not wait for the proxy's reply (pipelined CONNECT) send both at once."""
    c = classify(mode, [(CONNECT + hello_record("x.example"), True), (ESTABLISHED, False)])
    assert (c.protocol, c.sni) == (Protocol.TLS, "x.example")


@pytest.mark.parametrize("mode", MODES)
def test_the_proxy_reply_and_server_hello_in_one_segment(mode: str) -> None:
    exchange = [(CONNECT, True), (ESTABLISHED + SERVER_HELLO, False)]
    exchange.append((hello_record("y.example"), True))
    c = classify(mode, exchange)
    assert (c.protocol, c.sni) == (Protocol.TLS, "y.example")


def test_a_split_inner_client_hello_is_joined_only_by_the_stream_modes() -> None:
    hello = hello_record("split.example")
    exchange = [(CONNECT, True), (ESTABLISHED, False), (hello[:20], True), (hello[20:], True)]
    for mode in ("tcp", "tls-records"):
        assert classify(mode, exchange).sni == "split.example"
    assert classify("none", exchange).sni is None  # 2021-22 boxes read segments alone (§2.5)


def test_tls_records_mode_reads_an_inner_hello_in_several_records() -> None:
    records = handshake_records(client_hello("records.example"), 40)
    exchange = [(CONNECT, True), (ESTABLISHED, False), (records, True)]
    assert classify("tls-records", exchange).sni == "records.example"
    assert classify("tcp", exchange).sni is None  # the tcp mode reads the first record only


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_connect_is_http(mode: str) -> None:
    refused = b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
    c = classify(mode, [(CONNECT, True), (refused, False)])
    assert (c.protocol, c.host, c.detail) == (Protocol.HTTP, "blocked.example", "response 407")


@pytest.mark.parametrize("mode", MODES)
def test_a_tunnel_that_never_shows_tls_is_http_at_the_end(mode: str) -> None:
    c = classify(mode, [(CONNECT, True), (ESTABLISHED, False)])
    assert c.protocol is Protocol.HTTP and c.host == "blocked.example"
    assert c.decided_at is None and "http connect to blocked.example:443" in c.detail


def test_an_ordinary_request_still_decides_at_once() -> None:
    get = b"GET / HTTP/1.1\r\nHost: site.example\r\n\r\n"
    c = classify("none", [(get, True)])
    assert (c.protocol, c.host, c.decided_at) == (Protocol.HTTP, "site.example", 3)


@pytest.mark.parametrize("profile", ["tspu-2022", "tspu-2026-reassembly"])
def test_the_tspu_drops_a_registry_sni_inside_the_tunnel(profile: str) -> None:
    """§2.2 SNI-IV on the inner ClientHello, as for a SOCKS5 proxy (§6 CP-THR)."""
    c = Conn(engine(profile, ["blocked.example", "*.blocked.example"]), dport=3128)
    c.handshake(0.0)
    assert c.data(0.1, CONNECT).fate is Fate.FORWARD
    assert c.data(0.12, ESTABLISHED, from_client=False).fate is Fate.FORWARD
    d = c.data(0.2, hello_record("www.blocked.example"))
    assert d.verdict.final and d.verdict.rule == "sni-iv" and d.fate is Fate.DROP, d.verdict


@pytest.mark.parametrize("mode", MODES)
def test_the_ndpi_capture_of_a_connect_tunnel(mode: str) -> None:
    """nDPI: 192.168.1.103:1714 -> proxy :8080 is HTTP_Connect, host apache.org."""
    flows = [r for r in replay_file(PCAPS / "http_connect.pcap", mode) if r.server_port == 8080]
    assert len(flows) == 1
    c = flows[0].classification
    assert (c.protocol, c.sni, c.host) == (Protocol.TLS, "apache.org", "apache.org")
