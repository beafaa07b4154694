"""QUIC that no client Initial decrypts (issue 14, class 2): reserved/greased versions and version
negotiation, versions without known keys, 0-RTT first, short headers only, gQUIC rejections; and
the shapes that must NOT be called QUIC."""

from __future__ import annotations

import random

import pytest
from crafting import udp_frame
from test_quic import DCID, client_hello, crypto_frame, padded, protect_initial

from tests.unit.dpi.test_classify import run
from tspulab.dpi import quic_detect
from tspulab.dpi.classify import Protocol
from tspulab.dpi.packet import Packet, decode

MODES = ("none", "tcp", "tls-records")
RESERVED = 0x1A2A3A4A


def long_header(version: int, first: int = 0xC0, size: int = 1200, dcid: bytes = DCID) -> bytes:
    head = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + b"\x00"
    return head + random.Random(version).randbytes(size - len(head))


def version_negotiation(versions: list[int], dcid: bytes = b"", scid: bytes = DCID) -> bytes:
    head = b"\x80\x00\x00\x00\x00" + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    return head + b"".join(v.to_bytes(4, "big") for v in versions)


def client(payload: bytes) -> Packet:
    return decode(udp_frame(payload))


def server(payload: bytes) -> Packet:
    pkt = decode(udp_frame(payload))
    pkt.src, pkt.dst, pkt.sport, pkt.dport = pkt.dst, pkt.src, pkt.dport, pkt.sport
    return pkt


V1_INITIAL = protect_initial(padded(crypto_frame(0, client_hello("vn.example"))), DCID, 0)


@pytest.mark.parametrize("mode", MODES)
def test_reserved_version_then_negotiation_then_real_initial(mode: str) -> None:
    """RFC 9000 §6: the client tries a greased version, the server lists v1, the client retries
    with a v1 Initial, whose ClientHello gives the SNI."""
    packets = [
        client(long_header(RESERVED)),
        server(version_negotiation([1, 0x6B3343CF])),
        client(V1_INITIAL),
    ]
    verdict = run(packets, mode)
    assert (verdict.protocol, verdict.sni, verdict.quic_version) == (Protocol.QUIC, "vn.example", 1)


def test_reserved_version_and_negotiation_alone_is_quic() -> None:
    packets = [client(long_header(RESERVED)), server(version_negotiation([1]))]
    verdict = run(packets, "none")
    assert verdict.protocol is Protocol.QUIC and verdict.decided_at is None
    assert "negotiation" in verdict.detail


@pytest.mark.parametrize(
    ("version", "family"),
    [
        (0xFF000015, "draft-21"),
        (0xFACEB002, "mvfst"),
        (0x54303531, "gquic"),
        (0xFF000040, "draft-64"),
    ],
)
def test_client_initial_of_a_version_without_keys_is_quic(version: int, family: str) -> None:
    verdict = run([client(long_header(version))], "none")
    assert verdict.protocol is Protocol.QUIC and verdict.decided_at == 1
    assert family in verdict.detail


def test_zero_rtt_before_any_initial() -> None:
    zero_rtt = long_header(1, first=0xD0, size=300)  # type bits 01: 0-RTT in v1
    verdict = run([client(zero_rtt)] * 3, "none")
    assert verdict.protocol is Protocol.QUIC and verdict.decided_at == 3


def test_short_headers_only_are_quic_after_three_client_packets() -> None:
    rng = random.Random(1)
    dcid = rng.randbytes(8)
    packets = [client(bytes([0x40 | rng.randrange(32)]) + dcid + rng.randbytes(900))]
    packets += [client(bytes([0x41]) + dcid + rng.randbytes(900 + i)) for i in range(2)]
    verdict = run(packets, "none")
    assert verdict.protocol is Protocol.QUIC and verdict.decided_at == 3


def test_short_header_heuristic_needs_the_same_dcid_and_port_443() -> None:
    rng = random.Random(2)
    other = [client(b"\x41" + rng.randbytes(900)) for _ in range(5)]  # DCID changes each time
    assert run(other, "none").protocol is Protocol.UNKNOWN
    dcid = rng.randbytes(8)
    off_port = [decode(udp_frame(b"\x41" + dcid + rng.randbytes(900), dport=8443))] * 3
    assert run(off_port, "none").protocol is Protocol.UNKNOWN


def test_gquic_server_rejection_in_a_one_sided_capture() -> None:
    rej = b"\x08" + b"\x11" * 8 + b"\x01" + b"\x22" * 12 + b"\x00\x00REJ\x00" + bytes(200)
    assert run([server(rej)], "none").protocol is Protocol.QUIC


@pytest.mark.parametrize("seed", range(20))
def test_random_long_headers_are_not_quic(seed: int) -> None:
    """IKE, DTLS application data, random ciphertext with the top bit set: the version field is
    not a QUIC version (with overwhelming probability), so nothing is called QUIC."""
    rng = random.Random(seed)
    payload = bytes([0x80 | rng.randrange(128)]) + rng.randbytes(1250)
    if quic_detect.quic_family(int.from_bytes(payload[1:5], "big")) is not None:
        pytest.skip("the random version happens to be a QUIC one")
    assert run([client(payload)] * 3, "none").protocol is not Protocol.QUIC


def test_reserved_version_needs_the_client_initial_shape() -> None:
    """0x?a?a?a?a fixes only 16 bits: a short datagram or one without the fixed bit is not it."""
    assert quic_detect.client_initial_version(long_header(RESERVED)) == RESERVED
    assert quic_detect.client_initial_version(long_header(RESERVED, size=300)) is None
    assert quic_detect.client_initial_version(long_header(RESERVED, first=0x80)) is None
    assert run([client(long_header(RESERVED, size=300))] * 3, "none").protocol is Protocol.UNKNOWN


def test_version_negotiation_shape() -> None:
    assert quic_detect.is_version_negotiation(version_negotiation([1]))
    assert not quic_detect.is_version_negotiation(version_negotiation([1])[:-1])  # not 4-aligned
    assert not quic_detect.is_version_negotiation(version_negotiation([]))
    assert not quic_detect.is_version_negotiation(b"\x80\x00\x00\x00\x00\x30" + bytes(60))


@pytest.mark.parametrize(
    ("version", "family"),
    [
        (1, "v1"),
        (0x6B3343CF, "v2"),
        (0xFF00001D, "draft-29"),
        (0x0A1A2A3A, "reserved"),
        (0xFACEB00E, "mvfst"),
        (0x51303530, "gquic"),
        (0x12345678, None),
        (0, None),
    ],
)
def test_quic_family(version: int, family: str | None) -> None:
    assert quic_detect.quic_family(version) == family
