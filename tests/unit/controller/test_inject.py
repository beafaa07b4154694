"""The old filter's injected answers (controllers/inject.py), read back with scapy: addresses and
ports swapped, the TCP segment where the client expects the server's, IP ID 0/1 and TTL 64."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from tspulab.controllers.inject import tcp_answer, udp_answer

CLIENT, SERVER = "02:00:00:00:00:01", "02:00:00:00:00:02"
PAGE = b"HTTP/1.1 302 Found\r\nLocation: http://block.example/\r\n\r\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: rutracker.org\r\n\r\n"


def test_tcp_answer_takes_the_servers_place_with_fin() -> None:
    frame = (
        Ether(src=CLIENT, dst=SERVER)
        / IP(src="10.1.0.11", dst="195.82.146.214", id=77)
        / TCP(sport=40000, dport=80, seq=1000, ack=5000, flags="PA")
        / Raw(REQUEST)
    )
    out = Ether(tcp_answer(bytes(frame), PAGE))
    assert (out.src, out.dst) == (SERVER, CLIENT)
    assert (out[IP].src, out[IP].dst, out[IP].id, out[IP].ttl) == (
        "195.82.146.214", "10.1.0.11", 1, 64
    )  # fmt: skip
    seg = out[TCP]
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (80, 40000, 5000, 1000 + len(REQUEST))
    assert seg.flags == "FPA" and out[Raw].load == PAGE


def test_tcp_answer_over_ipv6_wraps_the_acknowledgement() -> None:
    frame = (
        Ether(src=CLIENT, dst=SERVER)
        / IPv6(src="2001:db8::11", dst="2001:db8::1")
        / TCP(sport=40001, dport=80, seq=0xFFFFFFF0, ack=7, flags="PA")
        / Raw(b"x" * 40)
    )
    out = Ether(tcp_answer(bytes(frame), PAGE))
    assert (out[IPv6].src, out[IPv6].dst, out[IPv6].hlim) == ("2001:db8::1", "2001:db8::11", 64)
    assert (out[TCP].seq, out[TCP].ack) == (7, (0xFFFFFFF0 + 40) & 0xFFFFFFFF)


def test_udp_answer_comes_from_the_queried_server() -> None:
    frame = (
        Ether(src=CLIENT, dst=SERVER)
        / IP(src="10.1.0.11", dst="77.88.8.8")
        / UDP(sport=5353, dport=53)
        / Raw(b"\x12\x34query")
    )
    out = Ether(udp_answer(bytes(frame), b"answer"))
    assert (out[IP].src, out[IP].dst, out[IP].id) == ("77.88.8.8", "10.1.0.11", 0)
    assert (out[UDP].sport, out[UDP].dport, out[Raw].load) == (53, 5353, b"answer")  # then padding


def test_no_answer_to_what_is_not_that_transport() -> None:
    tcp_frame = bytes(Ether() / IP(dst="10.0.0.1") / TCP() / Raw(b"x"))
    udp_frame = bytes(Ether() / IP(dst="10.0.0.1") / UDP() / Raw(b"x"))
    assert udp_answer(tcp_frame, b"x") is None and tcp_answer(udp_frame, b"x") is None
    assert tcp_answer(bytes(Ether() / ARP()), b"x") is None
