"""The ISP's old filter's decisions (tspulab.dpi.oldfilter), per packet, without a switch."""

from __future__ import annotations

import dpkt
import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from tests.unit.dpi.policy_flows import hello_record
from tspulab.dpi.domains import MatchKind
from tspulab.dpi.oldfilter import (
    BLOCKPAGE_MARKER,
    BLOCKPAGE_PATH,
    DnsTamper,
    FilterSettings,
    HttpBlock,
    OldFilterPolicy,
    Pass,
    TlsReset,
    keep_share,
    parse_dns_query,
    partial_copy,
)
from tspulab.dpi.packet import decode
from tspulab.dpi.registry import Registry, load_inline

BLOCKPAGE = "95.167.13.50"


def policy(**settings: object) -> OldFilterPolicy:
    registry = Registry()
    registry.add_domain("rutracker.org", MatchKind.EXACT, source="test")
    registry.add_domain("kasparov.ru", MatchKind.SUBTREE, source="test")
    return OldFilterPolicy(FilterSettings(blockpage=BLOCKPAGE, isp="rt", **settings), registry)  # type: ignore[arg-type]


def tcp(payload: bytes, dport: int = 80, flags: str = "PA") -> bytes:
    return bytes(
        Ether() / IP(src="10.1.0.11", dst="195.82.146.214")
        / TCP(sport=40000, dport=dport, flags=flags, seq=1, ack=1) / payload
    )  # fmt: skip


def dns_query(name: str, qtype: str = "A") -> bytes:
    return bytes(
        Ether() / IP(src="10.1.0.11", dst="77.88.8.8") / UDP(sport=5353, dport=53)
        / DNS(id=0x1234, rd=1, qd=DNSQR(qname=name, qtype=qtype))
    )  # fmt: skip


def judge(p: OldFilterPolicy, frame: bytes, from_subscriber: bool = True) -> object:
    return p.judge(decode(frame), from_subscriber)


def get(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8\r\n\r\n".encode()


def test_http_host_on_the_list_gets_a_302_to_the_block_page() -> None:
    action = judge(policy(), tcp(get("rutracker.org")))
    assert isinstance(action, HttpBlock) and action.kind == "http-redirect"
    head = action.response.decode()
    assert head.startswith("HTTP/1.1 302 Found\r\n")
    assert f"Location: http://{BLOCKPAGE}{BLOCKPAGE_PATH}?host=rutracker.org\r\n" in head


@pytest.mark.parametrize(
    "host", ["RuTracker.org", "rutracker.org.", "rutracker.org:80", "www.kasparov.ru"]
)
def test_host_is_matched_after_case_dot_and_port_are_normalised(host: str) -> None:
    assert isinstance(judge(policy(), tcp(get(host))), HttpBlock)


def test_page_mode_answers_with_the_block_page_itself() -> None:
    action = judge(policy(http="page"), tcp(get("rutracker.org")))
    assert isinstance(action, HttpBlock) and action.kind == "http-page"
    assert (
        action.response.startswith(b"HTTP/1.1 200 OK")
        and BLOCKPAGE_MARKER.encode() in action.response
    )


@pytest.mark.parametrize(
    "frame",
    [
        tcp(get("yandex.ru")),  # not on the filter's list
        tcp(get("notrutracker.org")),  # exact rule: no suffix match
        tcp(b"GET / HTTP/1.1\r\nHo"),  # the Host header split into the next segment
        tcp(get("rutracker.org"), dport=8080),  # not an HTTP port of the filter
    ],
)
def test_what_the_filter_passes(frame: bytes) -> None:
    assert isinstance(judge(policy(), frame), Pass)


def test_handshake_packets_are_passed_without_ending_inspection() -> None:
    assert judge(policy(), tcp(b"", flags="S")) == Pass(done=False)
    assert judge(policy(), tcp(b"", flags="A")) == Pass(done=False)
    assert judge(policy(), tcp(get("rutracker.org")), from_subscriber=False) == Pass(done=True)


def test_http_off_passes_listed_hosts() -> None:
    assert isinstance(judge(policy(http="off"), tcp(get("rutracker.org"))), Pass)


def test_tls_client_hello_with_a_listed_sni_is_reset() -> None:
    action = judge(policy(), tcp(hello_record("rutracker.org"), dport=443))
    assert action == TlsReset("rutracker.org")
    assert isinstance(judge(policy(), tcp(hello_record("yandex.ru"), dport=443)), Pass)
    assert isinstance(
        judge(policy(https="off"), tcp(hello_record("rutracker.org"), dport=443)), Pass
    )


def test_tls_client_hello_split_over_segments_passes() -> None:
    record = hello_record("rutracker.org")
    assert isinstance(judge(policy(), tcp(record[:40], dport=443)), Pass)


def test_dns_query_for_a_listed_name_gets_the_block_page_address() -> None:
    action = judge(policy(), dns_query("rutracker.org"))
    assert isinstance(action, DnsTamper) and action.answer == BLOCKPAGE
    reply = dpkt.dns.DNS(action.response)
    assert reply.id == 0x1234 and reply.qr == dpkt.dns.DNS_R and reply.rcode == 0
    assert [(a.name, a.type, a.ip) for a in reply.an] == [
        ("rutracker.org", dpkt.dns.DNS_A, bytes([95, 167, 13, 50]))
    ]
    assert reply.qd[0].name == "rutracker.org"


def test_dns_nxdomain_mode_and_aaaa_questions() -> None:
    action = judge(policy(dns="nxdomain"), dns_query("www.kasparov.ru"))
    assert isinstance(action, DnsTamper) and action.answer == "NXDOMAIN"
    assert dpkt.dns.DNS(action.response).rcode == dpkt.dns.DNS_RCODE_NXDOMAIN
    # an AAAA question for a listed name: an empty answer (no IPv6 block page), not a wrong type
    aaaa = judge(policy(), dns_query("rutracker.org", "AAAA"))
    assert isinstance(aaaa, DnsTamper)
    reply = dpkt.dns.DNS(aaaa.response)
    assert reply.rcode == 0 and list(reply.an) == []


def test_dns_passes_other_names_responses_and_off() -> None:
    assert isinstance(judge(policy(), dns_query("yandex.ru")), Pass)
    assert isinstance(judge(policy(dns="off"), dns_query("rutracker.org")), Pass)
    response = bytes(
        Ether() / IP() / UDP(sport=5353, dport=53) / DNS(qr=1, qd=DNSQR(qname="rutracker.org"))
    )
    assert isinstance(judge(policy(), response), Pass)


@pytest.mark.parametrize(
    "raw", [b"", b"\x00" * 11, b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x05ab"]
)
def test_truncated_dns_queries_are_not_parsed(raw: bytes) -> None:
    assert parse_dns_query(raw) is None


def test_partial_copy_keeps_a_stable_share_of_names_and_no_addresses() -> None:
    registry = load_inline(["149.154.160.0/20"], "test")
    for n in range(2000):
        registry.add_domain(f"site{n}.example", MatchKind.EXACT, source="test")
    copy = partial_copy(registry, 0.135)
    kept = copy.domain_count()
    assert 0.10 * 2000 < kept < 0.17 * 2000  # §2.1: Rostelecom's filter held 1,302 of 9,655
    assert copy.address_count(4) == 0
    assert all(keep_share(r.name, 0.135) for r in copy.domain_rules())
    assert partial_copy(registry, 0.135).domain_count() == kept
    assert partial_copy(registry, 1.0).domain_count() == 2000
