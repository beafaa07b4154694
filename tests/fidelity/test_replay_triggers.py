"""Fidelity, replay: triggers decided by the classifier alone (tspu-behaviour.md §2.1, §4, §9.25):
HTTP Host is not a TSPU trigger, and DoH/DoT blocking of 2021 written as a profile
(`tests/fidelity/profiles/doh-2021.yaml`, not shipped). Crafted packets through `TspuEngine`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR

from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tspulab.dpi.profile import load_profile
from tspulab.dpi.verdict import Action, Fate

DOH_PROFILE = Path(__file__).with_name("profiles") / "doh-2021.yaml"
GOOGLE_DNS = "8.8.8.8"


def _http(profile: str, host: str, registry: list[str]) -> tuple[Action, bool, str]:
    c = Conn(engine(profile, registry), dport=80)
    c.handshake(0.0)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"
    d = c.data(0.1, request.encode())
    for i in range(25):  # the rest of the exchange, so an undecided flow runs out of its window
        d = c.data(0.2 + i / 100, b"HTTP/1.1 200 OK\r\n\r\n" + bytes(200), from_client=i % 2 == 1)
    protocol = str(c.log[3].classification.protocol) if c.log[3].classification else "undecided"
    return d.verdict.action, d.verdict.final, protocol


@pytest.mark.fidelity("s2-http-host")
@pytest.mark.parametrize(
    ("profile", "host"),
    [
        ("tspu-2022", "rutracker.org"),
        ("tspu-2022", "twitter.com"),
        ("twitter-throttle-2021", "twitter.com"),
        ("quic-sni-2023", "rutracker.org"),
        ("tspu-2026-reassembly", "rutracker.org"),
        ("youtube-2024", "rr1.googlevideo.com"),
        ("ech-2024", "cloudflare-ech.com"),
    ],
)
def test_s2_http_host_is_not_a_tspu_trigger_cp_tspu(profile: str, host: str) -> None:
    """§2.1 CP-TSPU ("the TSPU report does not list plaintext-HTTP Host as a separate TSPU
    trigger"; HTTP blocking was the ISP filters' blockpages, §4): a plain HTTP request whose Host
    is a name the profile blocks or throttles by SNI passes every packet, under every TSPU profile
    that matches names. (The ISP's own filter does match Host: tests/unit/dpi/test_oldfilter.py.)"""
    action, final, protocol = _http(profile, host, ["rutracker.org"])
    assert (action, final) == (Action.ALLOW, True), (profile, protocol)


def _doh_engine():  # type: ignore[no-untyped-def]
    return engine(load_profile(DOH_PROFILE))


@pytest.mark.fidelity("s4-doh-dot", "t25")
@pytest.mark.parametrize(
    ("sni", "port"),
    [("dns.google", 443), ("doh.opendns.com", 443), ("1dot1dot1dot1.cloudflare-dns.com", 853),
     ("dns.google", 853)],
)  # fmt: skip
def test_s4_doh_and_dot_names_get_a_rst_after_the_client_hello_n4p81(sni: str, port: int) -> None:
    """§4 N4P-#81 [R], §9.25: ClientHellos naming the DoH/DoT servers get a TCP RST after the
    ClientHello (the ClientHello passes; the server's reply reaches the client as a RST)."""
    c = Conn(_doh_engine(), server=GOOGLE_DNS, dport=port)
    c.handshake(0.0)
    hello = c.data(0.1, hello_record(sni))
    assert hello.fate is Fate.FORWARD and hello.verdict.action is Action.RESET
    reply = c.data(0.12, b"\x16\x03\x03\x00\x40" + bytes(64), from_client=False)
    assert reply.fate is Fate.RESET


@pytest.mark.fidelity("s4-doh-dot", "t25")
def test_s4_same_address_with_another_sni_is_not_reset_n4p81() -> None:
    """§4 N4P-#81: the same IP with another SNI was not reset."""
    c = Conn(_doh_engine(), server=GOOGLE_DNS)
    c.handshake(0.0)
    assert c.data(0.1, hello_record("www.example.org")).fate is Fate.FORWARD
    assert c.data(0.12, b"\x16\x03\x03\x00\x40" + bytes(64), from_client=False).fate is Fate.FORWARD


@pytest.mark.fidelity("s4-doh-dot", "t25")
def test_s4_udp_dns_to_8888_is_dropped_other_resolvers_pass_n4p81() -> None:
    """§4 N4P-#81: plain UDP DNS to 8.8.8.8 timed out (dropped); to another resolver it passes."""
    query = bytes(DNS(rd=1, qd=DNSQR(qname="example.org")))
    dropped = Conn(_doh_engine(), server=GOOGLE_DNS, dport=53).udp(0.0, query)
    assert dropped.fate is Fate.DROP and dropped.verdict.action is Action.DROP
    other = Conn(_doh_engine(), server="77.88.8.8", dport=53).udp(0.0, query)
    assert other.fate is Fate.FORWARD
