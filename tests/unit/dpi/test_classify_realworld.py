"""Issue 14's failure classes on TCP, each from crafted packets in every reassembly mode: STARTTLS
and TLS after a plaintext preamble, ClientHellos that stop parsing midway, tiny bogus segments
before the real one (overlap policy), HTTP methods / odd request lines / response-only flows, DNS
on port 53 with odd names and opcodes, and the Tor detector's false positives."""

from __future__ import annotations

import pytest
from crafting import client_hello, record, tcp_frame, udp_frame, unknown_extension

from tests.datapaths import PCAPS
from tests.unit.dpi.test_classify import run
from tspulab.dpi.classify import Protocol
from tspulab.dpi.packet import Packet, decode
from tspulab.dpi.tls import parse_client_hello_message
from tspulab.replay import replay_file

MODES = ("none", "tcp", "tls-records")
SNI = "blocked.example"
HELLO = record(22, client_hello(SNI))


def conversation(steps: list[tuple[bool, bytes]], isn: int = 1000, srv: int = 9000) -> list[Packet]:
    """A TCP handshake then (from_client, payload) segments with consistent sequence numbers."""
    packets = [decode(tcp_frame(b"", isn, "S")), decode(tcp_frame(b"", srv, "SA", False))]
    seq = {True: isn + 1, False: srv + 1}
    for from_client, payload in steps:
        packets.append(decode(tcp_frame(payload, seq[from_client], "PA", from_client)))
        seq[from_client] += len(payload)
    return packets


STARTTLS = {
    "smtp": [
        (False, b"220 mx.example ESMTP\r\n"),
        (True, b"EHLO client.example\r\n"),
        (False, b"250-mx.example\r\n250 STARTTLS\r\n"),
        (True, b"STARTTLS\r\n"),
        (False, b"220 2.0.0 Ready to start TLS\r\n"),
    ],
    "imap": [
        (False, b"* OK IMAP4rev1 ready\r\n"),
        (True, b"a001 STARTTLS\r\n"),
        (False, b"a001 OK Begin TLS negotiation now\r\n"),
    ],
    "pop3": [(False, b"+OK POP3 ready\r\n"), (True, b"STLS\r\n"), (False, b"+OK Begin TLS\r\n")],
    "ftp": [
        (False, b"220 FTP ready\r\n"),
        (True, b"AUTH TLS\r\n"),
        (False, b"234 AUTH TLS ok\r\n"),
    ],
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", sorted(STARTTLS))
def test_starttls_client_hello_is_read_in_every_mode(protocol: str, mode: str) -> None:
    verdict = run(conversation([*STARTTLS[protocol], (True, HELLO)]), mode)
    assert (verdict.protocol, verdict.sni) == (Protocol.TLS, SNI), verdict
    if mode != "none":  # the stream modes find it behind the preamble and say so
        assert "starttls" in verdict.detail


@pytest.mark.parametrize("mode", ["tcp", "tls-records"])
def test_tls_after_junk_when_picked_up_without_syn(mode: str) -> None:
    """A capture that starts mid-connection: the stream's first bytes are the tail of something
    else; the ClientHello begins at a later segment start."""
    packets = [
        decode(tcp_frame(b"\x00\x17junk from before", 5000)),
        decode(tcp_frame(HELLO, 5000 + 17)),
    ]
    verdict = run(packets, mode)
    assert (verdict.protocol, verdict.sni) == (Protocol.TLS, SNI)


@pytest.mark.parametrize("junk", [b"\x00", b"x", b"\x16"])
@pytest.mark.parametrize("mode", MODES)
def test_tiny_bogus_segment_before_the_client_hello(mode: str, junk: bytes) -> None:
    """1 byte of junk on an ACK at the ClientHello's own sequence number, then the ClientHello:
    the default overlap policy (longest) reads the real one in every mode."""
    packets = conversation([(True, junk)])
    packets.append(decode(tcp_frame(HELLO, 1001)))  # the same sequence number as the junk
    verdict = run(packets, mode)
    assert (verdict.protocol, verdict.sni) == (Protocol.TLS, SNI), verdict


def test_first_seen_overlap_policy_is_fooled_by_the_bogus_segment() -> None:
    packets = conversation([(True, b"x")])
    packets.append(decode(tcp_frame(HELLO, 1001)))
    assert run(packets, "tcp", overlap="first").sni is None
    assert run(packets, "tcp", overlap="last").sni == SNI


def test_equal_size_fake_client_hello_keeps_the_first_under_longest() -> None:
    """A truncated fake is replaced by the longer real segment; a complete fake ClientHello sent
    first (zapret's fake with a low TTL) decides the flow at once, under every policy: the box
    has read a whole ClientHello before the real one arrives."""
    fake = record(22, client_hello("allowed.example"))
    real = record(22, client_hello("blocked.example"))
    assert len(fake) == len(real)
    packets = conversation([])
    packets += [decode(tcp_frame(fake[:10], 1001)), decode(tcp_frame(real, 1001))]
    assert run(packets, "tcp").sni == "blocked.example"  # 10 bytes < the real segment
    packets = conversation([])
    packets += [decode(tcp_frame(fake, 1001)), decode(tcp_frame(real, 1001))]
    assert run(packets, "tcp").sni == "allowed.example"
    assert run(packets, "tcp", overlap="last").sni == "allowed.example"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "damage",
    [
        lambda body: body[:38] + b"\xff" + body[39:],  # session id length 255
        lambda body: body[:-6] + b"\x00\x00\xff\xff\x00\x00",  # extension running past the end
        lambda body: body[:39] + b"\x00\x03" + body[41:],  # odd cipher-suite length
    ],
    ids=["session-id", "extension", "ciphers"],
)
def test_client_hello_failing_midway_is_tls_without_sni(mode: str, damage: object) -> None:
    body = damage(client_hello(SNI))  # type: ignore[operator]
    verdict = run(conversation([(True, record(22, body))]), mode)
    assert verdict.protocol is Protocol.TLS and verdict.sni is None
    assert verdict.decided_at is not None and "unreadable" in verdict.detail


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["PROPFIND", "MKCOL", "LOCK", "REPORT", "SEARCH", "MOVE"])
def test_webdav_methods_are_http(method: str, mode: str) -> None:
    request = f"{method} /dav/x HTTP/1.1\r\nHost: dav.example\r\nDepth: 1\r\n\r\n".encode()
    verdict = run(conversation([(True, request)]), mode)
    assert (verdict.protocol, verdict.host) == (Protocol.HTTP, "dav.example")


@pytest.mark.parametrize("mode", MODES)
def test_odd_request_line_is_http(mode: str) -> None:
    request = b"GET  /x\tHTTP/1.1 \r\nHost: odd.example\r\n\r\n"
    verdict = run(conversation([(True, request)]), mode)
    assert (verdict.protocol, verdict.host) == (Protocol.HTTP, "odd.example")


@pytest.mark.parametrize("mode", MODES)
def test_response_only_flow_is_http(mode: str) -> None:
    """Only the server's side was captured (asymmetric routing): its first packet opens the
    flow, so the flow's 'client' is the server; the status line still says HTTP."""
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    packets = [decode(tcp_frame(response, 7000, "PA", from_client=False))]
    assert run(packets, mode).protocol is Protocol.HTTP


def _dns(name_labels: list[bytes], flags: int) -> bytes:
    name = b"".join(bytes([len(label)]) + label for label in name_labels) + b"\x00"
    return (
        b"\x12\x34"
        + flags.to_bytes(2, "big")
        + b"\x00\x01\x00\x00\x00\x00\x00\x00"
        + name
        + (b"\x00\x01\x00\x01")
    )


@pytest.mark.parametrize(
    ("labels", "flags", "host"),
    [
        ([b"ex\x01mple", b"com"], 0x0100, "ex\\001mple.com"),  # a control byte in a label
        ([b"a b", b"test"], 0x0100, "a\\032b.test"),  # a space
        ([b"\xc3\xa9t\xc3\xa9", b"ru"], 0x0100, "\\195\\169t\\195\\169.ru"),  # raw UTF-8
        ([b"example", b"com"], 0x1000, "example.com"),  # opcode 2 (STATUS)
        ([b"example", b"com"], 0x0900, "example.com"),  # opcode 1 (IQUERY), RD
        ([b"example", b"com"], 0x3000, "example.com"),  # opcode 6 (DSO)
        ([b"example", b"com"], 0x0140, "example.com"),  # the Z bit
    ],
)
def test_dns_on_port_53_with_odd_names_and_opcodes(
    labels: list[bytes], flags: int, host: str
) -> None:
    verdict = run([decode(udp_frame(_dns(labels, flags), dport=53))], "none")
    assert (verdict.protocol, verdict.host) == (Protocol.DNS, host)
    # Off port 53 the strict reading applies: opcode QUERY, Z clear, printable labels only.
    off_port = run([decode(udp_frame(_dns(labels, flags), dport=5555))], "none")
    printable = all(0x21 <= b <= 0x7E for label in labels for b in label)
    assert (off_port.protocol is Protocol.DNS) == (flags == 0x0100 and printable)


# --- Tor ---------------------------------------------------------------------------------------


def _hello(sni: str, extension_types: tuple[int, ...], alpn: tuple[str, ...] = ()) -> bytes:
    extra = [unknown_extension(t, b"") for t in extension_types]
    return record(22, client_hello(sni, alpn=alpn, extra=extra))


OPENSSL_PYTHON = (35, 22, 23, 45, 51, 49)  # session_ticket, ..., post_handshake_auth (Python)
TOR_OPENSSL = (22, 23, 45, 51)  # SSL_OP_NO_TICKET: no session_ticket


@pytest.mark.parametrize(
    ("sni", "extensions", "alpn", "expected"),
    [
        ("www.amazon.com", OPENSSL_PYTHON, (), Protocol.TLS),  # the reported false positive
        ("www.amazon.com", (35, 22, 23, 45, 51), (), Protocol.TLS),  # curl --no-alpn
        ("www.amazon.com", (5, 18, 23, 51), (), Protocol.TLS),  # Go: status_request, SCT
        ("www.amazon.com", OPENSSL_PYTHON, ("h2",), Protocol.TLS),
        ("www.q4cyamnc6mtok.com", TOR_OPENSSL, (), Protocol.TOR),  # Tor's own client
        ("www.q4cyamnc6mtok.com", OPENSSL_PYTHON, (), Protocol.TLS),
    ],
)
def test_tor_needs_more_than_the_sni_shape(
    sni: str, extensions: tuple[int, ...], alpn: tuple[str, ...], expected: Protocol
) -> None:
    verdict = run(conversation([(True, _hello(sni, extensions, alpn))]), "none")
    assert verdict.protocol is expected


def test_tor_false_positive_rate_on_shipped_non_tor_tls_flows() -> None:
    """Goal 0: no TLS flow of the captures other than tor.pcap is called Tor. Reported next to it:
    how many of their ClientHellos the SNI shape alone would have flagged."""
    tls_flows = tor_flows = 0
    for path in sorted(PCAPS.iterdir()):
        if path.name == "tor.pcap":
            continue
        for report in replay_file(path, "tls-records", inspect_packets=24):
            protocol = report.classification.protocol
            tls_flows += protocol in (Protocol.TLS, Protocol.TOR)
            tor_flows += protocol is Protocol.TOR
    print(f"Tor verdicts on {tls_flows} non-Tor TLS flows: {tor_flows}")
    assert tls_flows > 70 and tor_flows == 0


def test_tor_pcap_client_hellos_keep_their_traits() -> None:
    reports = replay_file(PCAPS / "tor.pcap", "tls-records", inspect_packets=24)
    tor_verdicts = [r for r in reports if r.classification.protocol is Protocol.TOR]
    assert len(tor_verdicts) == 7
    hello = parse_client_hello_message(client_hello("www.abcd2345.com", alpn=()))
    assert hello.sni == "www.abcd2345.com"


@pytest.mark.parametrize(("mode", "seen"), [("none", False), ("tcp", True), ("tls-records", True)])
def test_dns_over_tcp_split_after_its_length_prefix(mode: str, seen: bool) -> None:
    """RFC 7766 framing with the 2-byte length in its own segment: the stream modes join it."""
    message = _dns([b"tcp", b"example"], 0x0100)
    framed = len(message).to_bytes(2, "big") + message
    packets = [decode(tcp_frame(b"", 1000, "S", dport=53))]
    packets += [decode(tcp_frame(framed[:2], 1001, dport=53))]
    packets += [decode(tcp_frame(framed[2:], 1003, dport=53))]
    verdict = run(packets, mode)
    assert (verdict.protocol is Protocol.DNS) is seen
    if seen:
        assert verdict.host == "tcp.example"
