"""Packets the rewriters send, checked byte by byte with scapy as the independent reader:
checksums, sequence numbers, TTL, IP ID, options, fragment offsets and flags."""

from __future__ import annotations

import pytest
from scapy.all import IP, TCP, UDP, Raw, defragment  # type: ignore[attr-defined]
from scapy.packet import Packet

from tspulab.strategies import hello, wire
from tspulab.strategies.desync import Desync
from tspulab.strategies.serverside import ServerSide
from tspulab.strategies.spec import parse

C, S = "10.13.1.2", "10.13.3.2"
HELLO = hello.build_client_hello("twitter.com", seed=bytes(32))


def data_packet(payload: bytes = HELLO, seq: int = 1000, ipid: int = 4242) -> bytes:
    pkt = IP(src=C, dst=S, ttl=64, id=ipid, flags="DF") / TCP(
        sport=40000, dport=443, seq=seq, ack=777, flags="PA", window=502,
        options=[("NOP", None), ("NOP", None), ("Timestamp", (11, 22))],
    ) / Raw(payload)  # fmt: skip
    return bytes(pkt)


def checksums_ok(raw: bytes) -> bool:
    """scapy recomputes both checksums from scratch; they must equal what we sent."""
    pkt = IP(raw)
    again = pkt.copy()
    del again[IP].chksum
    l4 = TCP if TCP in pkt else UDP
    del again[l4].chksum
    again = IP(bytes(again))
    return pkt[IP].chksum == again[IP].chksum and pkt[l4].chksum == again[l4].chksum


def test_inet_checksum_matches_scapy() -> None:
    raw = data_packet()
    assert wire.with_checksums(raw) == raw
    spoilt = bytearray(raw)
    spoilt[10:12] = b"\0\0"
    spoilt[36:38] = b"\0\0"
    assert wire.with_checksums(bytes(spoilt)) == raw


def test_ttl_fake_is_the_real_packet_with_another_payload_ttl_and_ip_id() -> None:
    real = data_packet()
    fake = IP(wire.fake_of(real, b"X" * 120, ttl=3))
    assert checksums_ok(bytes(fake))
    assert (fake.ttl, fake.id, fake.src, fake.dst) == (3, 4242 ^ 0x8000, C, S)
    assert (fake[TCP].seq, fake[TCP].ack, fake[TCP].sport, fake[TCP].dport) == (
        1000,
        777,
        40000,
        443,
    )
    assert bytes(fake[TCP].payload) == b"X" * 120 and fake.len == 20 + 32 + 120
    assert dict(fake[TCP].options)["Timestamp"] == (11, 22)
    assert IP(wire.fake_of(real, b"Y", ttl=3, same_ipid=True)).id == 4242


def test_badsum_fake_has_a_wrong_transport_checksum_and_a_right_ip_one() -> None:
    fake = IP(wire.fake_of(data_packet(), b"Z" * 10, badsum=True))
    again = IP(bytes(fake.copy()))
    del again[TCP].chksum, again[IP].chksum
    again = IP(bytes(again))
    assert fake[IP].chksum == again[IP].chksum
    assert fake[TCP].chksum != again[TCP].chksum


def test_badseq_fake_moves_seq_and_ack_out_of_the_window() -> None:
    fake = IP(wire.fake_of(data_packet(seq=5), b"Z", badseq=True))
    assert checksums_ok(bytes(fake))
    assert fake[TCP].seq == (5 - 10_000) % 2**32 and fake[TCP].ack == (777 - 66_000) % 2**32


def test_md5_fake_carries_an_rfc2385_option_and_a_longer_header() -> None:
    fake = IP(wire.fake_of(data_packet(), b"Z" * 7, md5=True))
    assert checksums_ok(bytes(fake))
    kinds = [o[0] for o in fake[TCP].options]
    assert "MD5" in kinds or 19 in kinds
    assert fake[TCP].dataofs * 4 == 20 + 12 + 20
    assert bytes(fake[TCP].payload) == b"Z" * 7


@pytest.mark.parametrize(("order", "overlap"), [("forward", 0), ("reverse", 0), ("forward", 16)])
def test_fragments_have_offsets_flags_and_reassemble_to_the_packet(
    order: str, overlap: int
) -> None:
    real = data_packet()
    frags = [IP(f) for f in wire.fragments(real, 96, order=order, overlap=overlap)]
    first, second = frags if order == "forward" else frags[::-1]
    assert (first.frag, first.flags.MF, second.frag * 8, second.flags.MF) == (0, 1, 96 - overlap, 0)
    assert all(f.id == 4242 and f.ttl == 64 and not f.flags.DF for f in frags)
    for f in frags:  # the IP header checksum of each fragment
        again = f.copy()
        del again.chksum
        assert IP(bytes(again)).chksum == f.chksum
    assert len(first.payload) == 96 and first.len == 20 + 96
    assert bytes(second.payload) == bytes(IP(real).payload)[96 - overlap :]
    whole = defragment(sorted(frags, key=lambda f: f.frag))[0] if overlap == 0 else None
    if whole is not None:
        assert bytes(whole[TCP].payload) == HELLO and checksums_ok(bytes(whole))


def test_fragment_cuts_are_checked() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        wire.fragments(data_packet(), 13)
    with pytest.raises(ValueError, match="not inside"):
        wire.fragments(data_packet(b"x" * 10), 64)


def _handshake(d: Desync) -> list:  # type: ignore[type-arg]
    syn = bytes(IP(src=C, dst=S, id=1) / TCP(sport=40000, dport=443, flags="S", seq=999))
    return [
        d.on_packet(syn),
        d.on_packet(
            bytes(IP(src=C, dst=S) / TCP(sport=40000, dport=443, flags="A", seq=1000, ack=777))
        ),
    ]


def test_fakes_go_once_before_the_first_data_packet_only() -> None:
    d = Desync(
        list(parse("fake:ttl=2:data=random:len=101:repeats=2").steps), rand=lambda n: b"\xab" * n
    )
    assert all(r.before == () and r.instead is None for r in _handshake(d))
    first = d.on_packet(data_packet())
    assert len(first.before) == 2 and first.instead is None
    for raw in first.before:
        fake = IP(raw)
        assert fake.ttl == 2 and bytes(fake[TCP].payload) == b"\xab" * 101 and checksums_ok(raw)
    retrans = d.on_packet(data_packet())
    later = d.on_packet(data_packet(b"next", seq=1000 + len(HELLO)))
    assert retrans.before == () and later.before == () and later.instead is None


def test_decoy_hello_fake_is_the_real_hello_with_the_decoy_name() -> None:
    d = Desync(list(parse("fake:md5:sni=decoy.example.org").steps))
    fake = IP(d.on_packet(data_packet()).before[0])
    payload = bytes(fake[TCP].payload)
    assert hello.layout(payload).name_len == len("decoy.example.org")
    assert payload[:5][:3] == HELLO[:3] and b"twitter" not in payload


def test_ipfrag_fragments_the_first_data_packet_and_its_retransmissions() -> None:
    d = Desync(list(parse("ipfrag:sni+fake:ttl=2").steps))
    first = d.on_packet(data_packet())
    assert first.instead is not None and len(first.instead) == 2 and len(first.before) == 1
    cut = IP(first.instead[1]).frag * 8
    name_at = 20 + 12 + HELLO.find(b"twitter.com")
    assert name_at < cut + 8 and cut <= name_at + len("twitter.com")  # the cut lands in the name
    again = d.on_packet(data_packet())
    assert again.instead is not None and again.before == ()


def test_udp_fakes_before_the_first_datagram() -> None:
    d = Desync(
        list(parse("udpfake:data=short:len=601:repeats=3").steps), rand=lambda n: b"\xff" * n
    )
    initial = bytes(
        IP(src=C, dst=S) / UDP(sport=5000, dport=443) / Raw(b"\xc3\x00\x00\x00\x01" + bytes(1195))
    )
    r = d.on_packet(initial)
    assert len(r.before) == 3 and r.instead is None
    fake = IP(r.before[0])
    assert len(fake[UDP].payload) == 601 and bytes(fake[UDP].payload)[0] == 0x7F  # 0x40 | 0x3f
    assert checksums_ok(r.before[0]) and fake[UDP].len == 8 + 601
    assert d.on_packet(initial).before == ()


def _synack(ts: bool = True) -> Packet:
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (500, 100)), ("NOP", None), ("WScale", 7)]
    return IP(src=S, dst=C, id=0) / TCP(sport=443, dport=40000, flags="SA", seq=5000, ack=1000,
                                        window=65160, options=opts if ts else [])  # fmt: skip


def test_srvwin_rewrites_only_the_synack_window() -> None:
    side = ServerSide(list(parse("srvwin:37").steps))
    r = side.outgoing(bytes(_synack()))
    assert r.instead is not None
    out = IP(r.instead[0])
    assert out[TCP].window == 37 and out[TCP].flags == "SA" and checksums_ok(r.instead[0])
    assert (
        side.outgoing(bytes(IP(src=S, dst=C) / TCP(sport=443, dport=40000, flags="A"))).instead
        is None
    )


def test_split_handshake_sequence_numbers_flags_and_timestamps() -> None:
    side = ServerSide(list(parse("split-handshake").steps))
    syn = IP(side.outgoing(bytes(_synack())).instead[0])  # type: ignore[index]
    assert syn[TCP].flags == "S" and syn[TCP].seq == 5000 and syn[TCP].ack == 0
    assert dict(syn[TCP].options)["Timestamp"] == (500, 0) and checksums_ok(bytes(syn))
    client_synack = IP(src=C, dst=S, id=9) / TCP(
        sport=40000, dport=443, flags="SA", seq=999, ack=5001, window=64240,
        options=[("MSS", 1460), ("Timestamp", (123, 500))],
    )  # fmt: skip
    r = side.incoming(bytes(client_synack))
    to_server = IP(r.instead[0])  # type: ignore[index]
    to_client = IP(r.before[0])
    assert to_server[TCP].flags == "A" and (to_server[TCP].seq, to_server[TCP].ack) == (1000, 5001)
    assert dict(to_server[TCP].options)["Timestamp"] == (123, 500)
    assert (to_client.src, to_client.dst, to_client[TCP].sport) == (S, C, 443)
    assert to_client[TCP].flags == "A" and (to_client[TCP].seq, to_client[TCP].ack) == (5001, 1000)
    assert dict(to_client[TCP].options)["Timestamp"] == (500, 123)
    assert checksums_ok(r.instead[0]) and checksums_ok(r.before[0])  # type: ignore[index]
    assert side.incoming(bytes(client_synack)).instead is None  # once per handshake
