"""RST/ACK crafting for SNI-I (rewrite) and injection, checked by decoding the result."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tspulab.controllers.craft import rst_replacing, rst_to_receiver, rst_to_sender

SERVER_REPLY = bytes(
    Ether(src="00:00:00:00:00:02", dst="00:00:00:00:00:01")
    / IP(src="104.244.42.1", dst="10.10.0.11", id=4242, ttl=51)
    / TCP(sport=443, dport=40000, flags="PA", seq=1000, ack=5000)
    / (b"\x16\x03\x03" + b"x" * 97)
)


def test_sni_i_rewrite_keeps_direction_numbers_and_the_replys_ip_id() -> None:
    rst = Ether(rst_replacing(SERVER_REPLY))
    assert rst[IP].src == "104.244.42.1" and rst[IP].dst == "10.10.0.11"
    assert (rst[TCP].sport, rst[TCP].dport) == (443, 40000)
    assert (rst[TCP].seq, rst[TCP].ack) == (1000, 5000)
    assert rst[TCP].flags == "RA"
    assert rst[IP].len == 40, "no payload (the frame is only padded to Ethernet's minimum)"
    # §2.2 SNI-I: an in-path rewrite of the server's reply; no source gives another IP ID, so the
    # reply's own IP ID and TTL stay (issue 15: it was 1, the §4 passive-DPI value of ISP filters)
    assert (rst[IP].id, rst[IP].ttl) == (4242, 51)
    # Checksums as scapy computes them for the same headers.
    again = rst.copy()
    del again[IP].chksum, again[TCP].chksum
    again = Ether(bytes(again))
    assert (again[IP].chksum, again[TCP].chksum) == (rst[IP].chksum, rst[TCP].chksum)


def test_injected_rsts_hit_both_ends_in_window() -> None:
    to_sender = Ether(rst_to_sender(SERVER_REPLY))
    assert to_sender[IP].dst == "104.244.42.1" and to_sender[TCP].dport == 443
    assert to_sender[TCP].seq == 5000 and to_sender[TCP].ack == 1000 + 100
    to_receiver = Ether(rst_to_receiver(SERVER_REPLY))
    assert to_receiver[IP].dst == "10.10.0.11" and to_receiver[TCP].seq == 1100


def test_not_tcp_gives_none() -> None:
    udp = bytes(Ether() / IP(dst="1.2.3.4", proto=17) / (b"\x00" * 20))
    assert rst_replacing(udp) is None and rst_to_sender(udp) is None


def test_sni_i_rewrite_of_an_ipv6_reply_keeps_its_hop_limit() -> None:
    from scapy.layers.inet6 import IPv6

    reply = bytes(
        Ether()
        / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=57)
        / TCP(sport=443, dport=40000, flags="A", seq=7, ack=9)
        / b"x"
    )
    rst = Ether(rst_replacing(reply))
    assert (
        rst[IPv6].hlim == 57 and rst[TCP].flags == "RA" and (rst[TCP].seq, rst[TCP].ack) == (7, 9)
    )


def test_injected_rsts_carry_passive_dpi_ip_id_zero() -> None:
    """§4 GDPI: injected packets of passive ISP DPIs carry IP ID 0x0000 or 0x0001."""
    assert Ether(rst_to_sender(SERVER_REPLY))[IP].id == 0
    assert Ether(rst_to_receiver(SERVER_REPLY))[IP].id == 0
