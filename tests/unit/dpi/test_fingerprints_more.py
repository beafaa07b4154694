"""Fingerprints of DNS, Tor and fully-encrypted traffic: nDPI's real captures, crafted packets
(scapy), and random data."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRROPT
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello

from tests.unit.dpi.ndpi_captures import (
    ALL_CAPTURES,
    RELAYS,
    first_client_payloads,
    random_payloads,
    segments,
)
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.fingerprints import dns, dtls, fully_encrypted, openvpn, ssh, tor, wireguard
from tspulab.dpi.tls import ClientHello, parse_client_hello_message

# --- DNS ------------------------------------------------------------------------------------------


def test_dns_capture() -> None:
    found = [dns.match_udp(s.payload) for s in segments("dns.pcap") if s.udp]
    assert all(m is not None for m in found) and len(found) == 3
    assert {m.qname for m in found if m is not None} >= {"www.example.com"}


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_dns_recall_and_precision_on_captures(name: str) -> None:
    """Every UDP/53 payload matches; off port 53 only the DNS-format protocols mDNS (5353) and
    NetBIOS name service (137) may."""
    for seg in segments(name):
        if not seg.udp:
            continue
        ports = {seg.flow[1], seg.flow[3]}
        found = dns.match_udp(seg.payload)
        if 53 in ports:
            assert found is not None, seg
        elif found is not None:
            assert ports & {5353, 137}, seg


def test_dns_crafted_with_scapy() -> None:
    query = bytes(DNS(id=7, rd=1, qd=DNSQR(qname="blocked.example", qtype="AAAA")))
    assert dns.match_udp(query) == dns.DNSMatch(
        7, False, 0, 0, "blocked.example", 28, 1, (1, 0, 0, 0)
    )
    edns = bytes(DNS(rd=1, qd=DNSQR(qname="a.example"), ar=DNSRROPT(rclass=4096)))
    assert dns.match_udp(edns) is not None
    assert dns.match_udp(query + b"\x00") is None  # trailing garbage after a query
    assert dns.match_udp(query[:4] + b"\x00\x02" + query[6:]) is None  # two questions
    assert dns.match_udp(query[:12] + b"\xc0\x0c" + query[-4:]) is None  # pointer in question


def test_dns_random_false_positive_rate() -> None:
    """QDCOUNT = 1 alone is 2^-16; with the counts, name and class checks none of 100,000 random
    payloads (17..512 bytes) match."""
    payloads = random_payloads(13, 100_000, range(17, 513))
    assert sum(dns.match_udp(p) is not None for p in payloads) == 0


# --- Tor ------------------------------------------------------------------------------------------


def tls_client_hellos(name: str) -> Iterator[ClientHello]:
    for _, payload in first_client_payloads(name, udp=False):
        if payload[:1] == b"\x16" and len(payload) > 9 and payload[5] == 1:
            try:
                yield parse_client_hello_message(payload[5:])
            except DecodeError:
                continue  # a ClientHello spread over several segments


def test_tor_client_hellos_have_tor_traits() -> None:
    hellos = list(tls_client_hellos("tor.pcap"))
    assert len(hellos) == 7 and all(tor.tls_traits(ch) for ch in hellos)


@pytest.mark.parametrize("name", [n for n in ALL_CAPTURES if n != "tor.pcap"])
def test_tor_traits_absent_elsewhere(name: str) -> None:
    assert not any(tor.tls_traits(ch) for ch in tls_client_hellos(name))


@pytest.mark.skipif(not RELAYS.is_file(), reason=f"relay list absent: {RELAYS}")
def test_tor_relay_list(tmp_path: Path) -> None:
    relays = tor.load_relays(RELAYS)
    assert len(relays) > 926  # 926 lines, some of them /29../30 prefixes, expanded
    assert tor.is_relay("2.58.56.35", relays)
    assert tor.is_relay("23.129.64.137", relays)  # inside 23.129.64.136/29
    assert not tor.is_relay("192.0.2.1", relays) and not tor.is_relay("not an ip", relays)
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\n10.0.0.0/8\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2"):
        tor.load_relays(bad)


def test_tor_traits_crafted() -> None:
    def hello(sni: str, alpn: bool = False) -> ClientHello:
        from scapy.layers.tls.extensions import ProtocolName, TLS_Ext_ALPN

        ext = [TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())])]
        if alpn:
            ext.append(TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2")]))
        return parse_client_hello_message(bytes(TLSClientHello(ciphers=[0x1301], ext=ext)))

    assert tor.tls_traits(hello("www.abcd2345.com"))
    assert not tor.tls_traits(hello("www.abcd2345.com", alpn=True))
    assert not tor.tls_traits(hello("www.abc.com"))  # 3 random chars: below Tor's minimum 4
    assert not tor.tls_traits(hello("www.example1.com"))  # "1" is not in base32
    assert not tor.tls_traits(hello("www.abcd2345.net"))


# --- fully encrypted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "rule"),
    [
        (b"\x00" * 50, "ex1"),  # popcount 0
        (b"\xff" * 50, "ex1"),  # popcount 8
        (b"abcdef" + bytes([0x0F, 0xF0]) * 40, "ex2"),
        (bytes([0x0F]) + b"a" * 8 + bytes([0xF0]) + (b"kq" + bytes([0x8E, 0x71])) * 5, "ex3"),
        (bytes([0x80, 0x7F]) * 10 + b"ABCDEFGHIJKLMNOPQRSTU" + bytes([0xF0, 0x8E]) * 20, "ex4"),
        (b"\x16\x03\x01" + bytes([0x0F, 0xF0, 0x3C, 0xC3]) * 20, "ex5"),
        (b"\x17\x03\x03" + bytes([0x0F, 0xF0, 0x3C, 0xC3]) * 20, "ex5"),
        (b"", "empty"),
    ],
)
def test_fully_encrypted_exemptions(payload: bytes, rule: str) -> None:
    assert fully_encrypted.exemption(payload) == rule
    assert fully_encrypted.match(payload) is None


def test_fully_encrypted_boundaries() -> None:
    rng = random.Random(3)
    ciphertext = b"\xf4\x9c" + rng.randbytes(200)
    found = fully_encrypted.match(ciphertext)
    assert found is not None and 3.4 < found.popcount_per_byte < 4.6
    assert fully_encrypted.match(b"\x16\x0a\x01" + ciphertext) is not None  # not a TLS version
    noise = bytes([0x8E, 0x71, 0xF0, 0x0F]) * 12  # popcount 4, nothing printable
    twenty = fully_encrypted.match(noise + b"ABCDEFGHIJKLMNOPQRST" + noise)
    assert twenty is not None and twenty.longest_printable_run == 20
    assert fully_encrypted.exemption(noise + b"ABCDEFGHIJKLMNOPQRSTU" + noise) == "ex4"


def test_fully_encrypted_on_random_data() -> None:
    """The rule is meant to catch random-looking payloads: of 20,000 random payloads of 100..1000
    bytes at least 99 % must match (Ex2 alone exempts 0.26 %)."""
    payloads = random_payloads(17, 20_000, range(100, 1001))
    matched = sum(fully_encrypted.match(p) is not None for p in payloads)
    assert matched >= 0.99 * len(payloads)


PLAINTEXT_CAPTURES = [
    "443-curl.pcap",
    "443-firefox.pcap",
    "443-safari.pcap",
    "chrome.pcap",
    "firefox.pcap",
    "safari.pcap",
    "http.pcapng",
    "http_connect.pcap",
    "ssh.pcap",
    "tls_ech.pcapng",
    "tls_with_huge_ch.pcapng",
    "tor.pcap",
    "dns_dot.pcap",
    "doh.pcapng",
]


@pytest.mark.parametrize("name", PLAINTEXT_CAPTURES)
def test_fully_encrypted_spares_tls_http_ssh(name: str) -> None:
    firsts = [p for _, p in first_client_payloads(name, udp=False)]
    assert firsts, name
    assert [p[:8].hex() for p in firsts if fully_encrypted.match(p)] == []


@pytest.mark.parametrize(
    ("name", "port"), [("shadowsocks.pcap", 8388), ("tls_heur__shadowsocks-tcp.pcapng", 1234)]
)
def test_fully_encrypted_catches_shadowsocks(name: str, port: int) -> None:
    firsts = [(seg.flow[3], p) for seg, p in first_client_payloads(name, udp=False)]
    assert [fully_encrypted.match(p) is not None for dport, p in firsts if dport == port] == [True]


# --- robustness: nothing raises on any bytes ------------------------------------------------------

DETECTORS: list[Callable[[bytes], object]] = [
    lambda p: openvpn.match_udp(p, True),
    lambda p: openvpn.match_udp(p, False),
    lambda p: openvpn.match_tcp(p, True),
    lambda p: openvpn.match_tcp(p, False),
    lambda p: wireguard.match(p, True),
    dtls.match_client_hello,
    ssh.match,
    dns.match_udp,
    fully_encrypted.match,
]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    for detector in DETECTORS:
        detector(data)
