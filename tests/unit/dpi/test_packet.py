"""Packet decode: link types, VLAN, IPv4/IPv6, extension headers, fragments, typed errors."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether, Loopback

from tests.datapaths import PCAPS
from tspulab.dpi.errors import DecodeError, Malformed, NeedData, Unsupported
from tspulab.dpi.packet import (
    LINKTYPE_LINUX_SLL,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_SYN,
    _decode_frame,
    decode,
)
from tspulab.dpi.pcap import read_capture


def _a(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def test_ethernet_ipv4_tcp_fields() -> None:
    frame = bytes(
        Ether() / IP(src="10.0.0.2", dst="1.2.3.4", ttl=61)
        / TCP(sport=1234, dport=443, seq=77, ack=5, flags="SA") / b"hello"
    )  # fmt: skip
    pkt = decode(frame)
    assert (pkt.ip_version, pkt.src, pkt.dst) == (4, _a("10.0.0.2"), _a("1.2.3.4"))
    assert (pkt.proto, pkt.sport, pkt.dport, pkt.seq, pkt.ack) == (PROTO_TCP, 1234, 443, 77, 5)
    assert pkt.tcp_flags == TCP_SYN | TCP_ACK
    assert (pkt.payload, pkt.ttl, pkt.ip_len) == (b"hello", 61, 20 + 20 + 5)
    assert not pkt.is_fragment and pkt.has_l4


def test_ethernet_padding_is_not_payload() -> None:
    # Ethernet pads short frames to 60 bytes; the IP total length bounds the payload.
    frame = bytes(Ether() / IP(src="10.0.0.2", dst="1.2.3.4") / UDP(sport=1, dport=2) / b"x")
    pkt = decode(frame + b"\x00" * 20)
    assert pkt.payload == b"x"


@pytest.mark.parametrize("tags", [[Dot1Q(vlan=10)], [Dot1AD(vlan=20), Dot1Q(vlan=10)]])
def test_vlan_tags_are_skipped(tags: list[object]) -> None:
    layer = Ether()
    for tag in tags:
        layer = layer / tag
    frame = bytes(layer / IP(src="10.0.0.2", dst="1.2.3.4") / UDP(sport=5, dport=53) / b"q")
    pkt = decode(frame)
    assert (pkt.proto, pkt.sport, pkt.dport, pkt.payload) == (PROTO_UDP, 5, 53, b"q")


def test_ipv6_hop_by_hop_then_tcp() -> None:
    frame = bytes(
        Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
        / TCP(sport=1, dport=443) / b"abc"
    )  # fmt: skip
    pkt = decode(frame)
    assert (pkt.ip_version, pkt.proto, pkt.dport, pkt.payload) == (6, PROTO_TCP, 443, b"abc")
    assert pkt.src == _a("2001:db8::1")


def test_ipv4_fragments_recognised_not_reassembled() -> None:
    datagram = IP(src="10.0.0.2", dst="1.2.3.4", id=4242) / UDP(sport=7, dport=443) / (b"Z" * 1200)
    frags = fragment(datagram, fragsize=500)
    assert len(frags) == 3
    first, *rest = [decode(bytes(Ether() / f)) for f in frags]
    assert first.is_fragment and first.has_l4 and first.more_fragments
    assert (first.frag_id, first.frag_offset, first.sport, first.dport) == (4242, 0, 7, 443)
    assert first.payload == b"Z" * (len(bytes(frags[0].payload)) - 8)
    for pkt in rest:
        # Non-first fragments: no L4 header, so no ports, and the bytes are not read as UDP.
        assert pkt.is_fragment and not pkt.has_l4
        assert (pkt.sport, pkt.dport, pkt.proto) == (0, 0, PROTO_UDP)
        assert set(pkt.payload) == {ord("Z")}
    assert rest[-1].more_fragments is False
    assert [p.frag_offset for p in rest] == [f.frag * 8 for f in frags[1:]]


def test_ipv4_non_first_fragment_that_looks_like_tcp_is_not_misparsed() -> None:
    fake_tcp = bytes(TCP(sport=80, dport=8080))
    frame = bytes(
        Ether() / IP(src="10.0.0.2", dst="1.2.3.4", proto=6, frag=100, flags=0) / fake_tcp
    )
    pkt = decode(frame)
    assert (pkt.sport, pkt.dport, pkt.frag_offset, pkt.payload) == (0, 0, 800, fake_tcp)


def test_ipv6_fragment_header() -> None:
    base = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2")
    first = decode(
        bytes(base / IPv6ExtHdrFragment(id=99, m=1, offset=0) / UDP(sport=3, dport=4) / (b"a" * 16))
    )
    later = decode(bytes(base / IPv6ExtHdrFragment(id=99, m=0, offset=3, nh=17) / (b"b" * 16)))
    assert (first.frag_id, first.frag_offset, first.more_fragments, first.sport) == (99, 0, True, 3)
    assert (later.frag_id, later.frag_offset, later.more_fragments, later.sport) == (
        99,
        24,
        False,
        0,
    )
    assert later.proto == PROTO_UDP and later.payload == b"b" * 16


def test_linux_cooked_raw_and_loopback_link_types() -> None:
    ip = IP(src="10.0.0.2", dst="1.2.3.4") / UDP(sport=9, dport=10) / b"p"
    assert decode(bytes(CookedLinux(proto=0x0800) / ip), LINKTYPE_LINUX_SLL).payload == b"p"
    assert decode(bytes(ip), LINKTYPE_RAW).dport == 10
    assert decode(bytes(Loopback(type=2) / ip), LINKTYPE_NULL).sport == 9


def test_icmp_type() -> None:
    pkt = decode(bytes(Ether() / IP(src="10.0.0.2", dst="1.2.3.4") / ICMP(type=8)))
    assert (pkt.proto, pkt.icmp_type, pkt.sport) == (1, 8, 0)


@pytest.mark.parametrize(
    ("frame", "linktype", "error"),
    [
        (bytes(Ether() / ARP()), 1, Unsupported),
        (b"\x00" * 10, 1, NeedData),
        (bytes(Ether(type=0x0800)) + b"\x45" + b"\x00" * 10, 1, NeedData),
        (bytes(Ether(type=0x0800)) + b"\x75" + b"\x00" * 30, 1, Malformed),  # IP version 7
        (bytes(Ether() / IP(ihl=3)), 1, Malformed),
        (bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(dataofs=2)), 1, Malformed),
        (bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP())[:-6], 1, NeedData),
        (b"\x00" * 40, 147, Unsupported),
    ],
)
def test_bad_frames_give_typed_errors(
    frame: bytes, linktype: int, error: type[DecodeError]
) -> None:
    with pytest.raises(error):
        decode(frame, linktype)


def _captures() -> list[Path]:
    captures = sorted(PCAPS.glob("*.pcap*"))
    assert captures, f"shipped nDPI captures missing under {PCAPS}"
    return captures


def test_every_real_frame_decodes_or_is_typed() -> None:
    captures = _captures()
    decoded = refused = 0
    for path in captures:
        for _, linktype, frame in read_capture(path):
            try:
                decode(frame, linktype)
                decoded += 1
            except DecodeError:
                refused += 1
    assert decoded > 9000
    assert refused < 200  # ARP, 802.3/LLC and PPPoE frames


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except DecodeError as err:
        return type(err)


def test_fast_path_equals_general_path_on_real_frames() -> None:
    """The fast path of ``decode`` against the general path (the reference) on every frame of the
    captures, IPv4 and IPv6, Ethernet and raw IP (the benchmark's link type)."""
    compared = 0
    for path in _captures():
        for _, linktype, frame in read_capture(path):
            if linktype == 1 and frame[12:14] in (b"\x08\x00", b"\x86\xdd"):
                variants = [(frame, 1), (frame[14:], LINKTYPE_RAW)]
            else:
                variants = [(frame, linktype)]
            for data, lt in variants:
                fast = _outcome(lambda d=data, t=lt: decode(d, t))
                assert fast == _outcome(lambda d=data, t=lt: _decode_frame(d, t, 0))
                compared += 1
    assert compared > 15000


_SAMPLE_FRAMES = [f for _, lt, f in read_capture(PCAPS / "443-curl.pcap") if lt == 1][:20] + [
    f for _, lt, f in read_capture(PCAPS / "quic-v2.pcapng") if lt == 1
][:10]


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(0, len(_SAMPLE_FRAMES) - 1),
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 200),
    raw=st.booleans(),
)
def test_fast_path_equals_general_path_on_mutated_frames(
    index: int, edits: list[tuple[int, int]], cut: int, raw: bool
) -> None:
    """Header bytes changed at random (lengths, flags, versions, ports) and frames cut short: the
    fast path answers exactly as the general path, packet or error."""
    frame = bytearray(_SAMPLE_FRAMES[index])
    for pos, value in edits:
        if pos < len(frame):
            frame[pos] = value
    data = bytes(frame[: max(0, len(frame) - cut)])
    lt = 1
    if raw:
        data, lt = data[14:], LINKTYPE_RAW
    fast = _outcome(lambda: decode(data, lt))
    assert fast == _outcome(lambda: _decode_frame(data, lt, 0))


# --- encapsulations (issue 14, class 7) -----------------------------------------------------------

# Explicit addresses: scapy would otherwise look the MACs up (ARP) to fill them in.
_MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
_INNER = IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=1111, dport=53) / b"inner"
_OUTER = IP(src="192.0.2.1", dst="192.0.2.2")


def _encapsulated() -> dict[str, bytes]:
    from scapy.contrib.gtp import GTP_U_Header
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet import GRE
    from scapy.layers.l2 import GRE_PPTP
    from scapy.layers.ppp import PPP, PPPoE
    from scapy.layers.vxlan import VXLAN

    return {
        "pppoe": bytes(Ether(**_MACS) / PPPoE(sessionid=3) / PPP(proto=0x21) / _INNER),
        "vlan+pppoe": bytes(
            Ether(**_MACS) / Dot1Q(vlan=4) / PPPoE(sessionid=3) / PPP(proto=0x21) / _INNER
        ),
        "mpls": bytes(
            Ether(type=0x8847, **_MACS) / MPLS(label=5, s=0) / MPLS(label=6, s=1) / _INNER
        ),
        "ipip": bytes(Ether(**_MACS) / _OUTER / _INNER),
        "gre": bytes(
            Ether(**_MACS) / _OUTER / GRE(key_present=1, key=5, seqnum_present=1) / _INNER
        ),
        "gre+eth": bytes(Ether(**_MACS) / _OUTER / GRE(proto=0x6558) / Ether(**_MACS) / _INNER),
        "pptp": bytes(
            Ether(**_MACS) / _OUTER / GRE_PPTP(seqnum_present=1) / PPP(proto=0x21) / _INNER
        ),
        "gtp-u": bytes(
            Ether(**_MACS) / _OUTER / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=7) / _INNER
        ),
        "vxlan": bytes(
            Ether(**_MACS)
            / _OUTER
            / UDP(sport=5, dport=4789)
            / VXLAN(vni=9)
            / Ether(**_MACS)
            / _INNER
        ),
    }


@pytest.mark.parametrize("kind", list(_encapsulated()))
def test_encapsulated_inner_packet_is_decoded(kind: str) -> None:
    pkt = decode(_encapsulated()[kind])
    assert (pkt.src, pkt.dst, pkt.sport, pkt.dport) == (_a("10.1.1.1"), _a("10.2.2.2"), 1111, 53)
    assert pkt.payload == b"inner"
    expected = {"pppoe": "", "vlan+pppoe": "", "mpls": "", "gre+eth": "gre", "pptp": "gre"}
    assert pkt.tunnel == expected.get(kind, kind)


def test_6in4_and_nested_tunnels() -> None:
    inner6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=5, dport=443) / b"x"
    pkt = decode(bytes(Ether(**_MACS) / _OUTER / inner6))
    assert (pkt.ip_version, pkt.dport, pkt.payload, pkt.tunnel) == (6, 443, b"x", "6in4")
    from scapy.contrib.gtp import GTP_U_Header

    nested = Ether(**_MACS) / _OUTER / UDP(dport=2152) / GTP_U_Header(teid=1) / _OUTER / inner6
    assert decode(bytes(nested)).tunnel == "gtp-u+6in4"


def test_unreadable_tunnel_payload_leaves_the_outer_packet() -> None:
    """UDP to the GTP-U or VXLAN port that is not one, and a GRE of unknown protocol: the outer
    packet stands, so its own flow is classified instead of an error."""
    not_gtp = decode(bytes(Ether(**_MACS) / _OUTER / UDP(sport=9, dport=2152) / (b"\x00" * 40)))
    assert (not_gtp.dport, not_gtp.tunnel, len(not_gtp.payload)) == (2152, "", 40)
    not_vxlan = decode(bytes(Ether(**_MACS) / _OUTER / UDP(sport=9, dport=4789) / (b"\x00" * 40)))
    assert not_vxlan.dport == 4789
    fragment_ipip = bytes(
        Ether(**_MACS) / IP(src="192.0.2.1", dst="192.0.2.2", proto=4, flags="MF")
    )
    assert decode(fragment_ipip + bytes(_INNER)).proto == 4  # a fragment is not opened


def test_tunnel_depth_is_bounded() -> None:
    packet = _INNER
    for _ in range(10):
        packet = IP(src="192.0.2.1", dst="192.0.2.2") / packet
    assert decode(bytes(Ether(**_MACS) / packet)).proto == 4  # the 5th level is left closed


# --- pcapng with several interfaces (issue 14, class 7) -------------------------------------------


def _block(btype: int, body: bytes, order: str = "<") -> bytes:
    import struct

    body += b"\x00" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(order + "II", btype, size) + body + struct.pack(order + "I", size)


def _pcapng(order: str = "<") -> bytes:
    """Two interfaces: Ethernet in microseconds, raw IP in nanoseconds (if_tsresol 9)."""
    import struct

    shb = _block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)
    idb_eth = _block(1, struct.pack(order + "HHI", 1, 0, 65535), order)
    tsresol = struct.pack(order + "HH", 9, 1) + b"\x09\x00\x00\x00" + b"\x00" * 4
    idb_raw = _block(1, struct.pack(order + "HHI", 101, 0, 65535) + tsresol, order)
    first = bytes(
        Ether(**_MACS) / IP(src="10.0.0.2", dst="1.2.3.4") / UDP(sport=5, dport=53) / b"q"
    )
    second = bytes(IP(src="1.2.3.4", dst="10.0.0.2") / UDP(sport=53, dport=5) / b"r")

    def epb(iface: int, ticks: int, frame: bytes) -> bytes:
        head = struct.pack(
            order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)
        )
        return _block(6, head + frame, order)

    t0 = 1_700_000_000
    return (
        shb + idb_eth + idb_raw + epb(0, t0 * 10**6, first) + epb(1, t0 * 10**9 + 5 * 10**8, second)
    )


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_keep_their_own_link_type_and_resolution(
    tmp_path: Path, order: str
) -> None:
    path = tmp_path / "two.pcapng"
    path.write_bytes(_pcapng(order))
    frames = list(read_capture(path))
    assert [(round(ts, 3), lt) for ts, lt, _ in frames] == [(1.7e9, 1), (1.7e9 + 0.5, LINKTYPE_RAW)]
    from tspulab.replay import replay_file

    flows = replay_file(path)
    assert len(flows) == 1 and flows[0].packets_from_server == 1  # one flow, not two


def test_pcapng_errors_name_the_block(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcapng"
    path.write_bytes(_pcapng()[:-7])
    with pytest.raises(DecodeError, match=r"bad\.pcapng: block 5"):
        list(read_capture(path))


# --- classic pcap -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "magic", "scale"),
    [
        ("<", 0xA1B2C3D4, 10**6),
        (">", 0xA1B2C3D4, 10**6),
        ("<", 0xA1B23C4D, 10**9),
        (">", 0xA1B23C4D, 10**9),
    ],
)
def test_pcap_byte_orders_and_resolutions(
    tmp_path: Path, order: str, magic: int, scale: int
) -> None:
    import struct

    frame = bytes(Ether(**_MACS) / _INNER)
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(order + "IIII", 1_700_000_000, scale // 4, len(frame), len(frame)) + frame
    path = tmp_path / "x.pcap"
    path.write_bytes(head + rec + rec)
    frames = list(read_capture(path))
    assert [(ts, lt, f) for ts, lt, f in frames] == [(1_700_000_000.25, 1, frame)] * 2
    path.write_bytes(head + rec + rec[:-3])
    with pytest.raises(DecodeError, match=r"x\.pcap: record 2: .* of .* bytes"):
        list(read_capture(path))
    path.write_bytes(b"\x00" * 30)
    with pytest.raises(DecodeError, match="not a pcap or pcapng file"):
        list(read_capture(path))
