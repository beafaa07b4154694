"""QUIC Initials in nDPI's real captures: SNIs and JA4 against nDPI's results."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from tests.unit.dpi.ndpi_captures import PCAPS, ip_packets
from tspulab.dpi.quic import QuicInitialAssembler

NDPI = PCAPS.parent


# --- real captures against nDPI -------------------------------------------------------------------


def udp_payloads(path: Path) -> Iterator[tuple[tuple[str, int, str, int], bytes]]:
    """((src, sport, dst, dport), payload) per UDP packet."""
    for ip in ip_packets(path):
        if isinstance(ip.data, dpkt.udp.UDP):
            src = str(ipaddress.ip_address(ip.src))
            dst = str(ipaddress.ip_address(ip.dst))
            yield (src, ip.data.sport, dst, ip.data.dport), bytes(ip.data.data)


_NDPI_FLOW = re.compile(
    r"^\s+\d+\s+UDP \[?([0-9a-f.:]+?)\]?:(\d+) <?-> \[?([0-9a-f.:]+?)\]?:(\d+) (.*)$"
)


def ndpi_quic_flows(name: str) -> dict[frozenset[tuple[str, int]], dict[str, str]]:
    """nDPI's IETF-QUIC flows in result/<name>.out: endpoints -> {sni, ja4, ver}."""
    flows = {}
    for line in (NDPI / "result" / f"{name}.out").read_text().splitlines():
        match = _NDPI_FLOW.match(line)
        if not match or "[QUIC ver: " not in line:
            continue
        a, pa, b, pb, rest = match.groups()
        fields = dict(re.findall(r"\[([^:\]]+): ([^\]]*)\]", rest))
        if fields["QUIC ver"].startswith("Q"):  # Google QUIC: out of scope
            continue
        endpoints = frozenset({(a, int(pa)), (b, int(pb))})
        flows[endpoints] = {k: fields.get(k, "") for k in ("Hostname/SNI", "JA4", "QUIC ver")}
    return flows


def our_quic_flows(name: str) -> dict[frozenset[tuple[str, int]], QuicInitialAssembler | str]:
    """Feed each flow's initiator-side datagrams; value: SNI ("" if none) or the last outcome."""
    assemblers: dict[tuple[str, int, str, int], QuicInitialAssembler] = {}
    results: dict[frozenset[tuple[str, int]], QuicInitialAssembler | str] = {}
    for key, payload in udp_payloads(NDPI / "pcap" / name):
        if (key[2], key[3], key[0], key[1]) in assemblers:
            continue  # the responder's datagrams
        progress = assemblers.setdefault(key, QuicInitialAssembler()).feed(payload)
        endpoints = frozenset({(key[0], key[1]), (key[2], key[3])})
        if progress.outcome == "complete" and progress.client_hello is not None:
            results[endpoints] = assemblers[key]
        elif not isinstance(results.get(endpoints), QuicInitialAssembler):
            results[endpoints] = progress.outcome
    return results


def _ja4_comparable(ja4: str) -> str:
    """JA4 without the SNI flag (char 3) and ALPN chars (8-9). nDPI's QUIC path writes "d" with no
    SNI and "h3"/"h0" for ALPN "h3-29"/"h3", where the JA4 spec gives "i", "h9" and "h3"."""
    return ja4[:3] + ja4[4:8] + ja4[10:]


IETF_CAPTURES = [
    "quic-29.pcap",
    "quic-v2.pcapng",
    "quic_0RTT.pcap",
    "quic_frags_ch_in_multiple_packets.pcapng",
    "quic_frags_ch_out_of_order_same_packet_craziness.pcapng",
    "quic_frags_different_dcid.pcapng",
]


@pytest.mark.parametrize("name", IETF_CAPTURES)
def test_sni_and_ja4_agree_with_ndpi(name: str) -> None:
    expected = ndpi_quic_flows(name)
    ours = our_quic_flows(name)
    assert expected, f"no IETF QUIC flows parsed from {name}.out"
    for endpoints, labels in expected.items():
        assembler = ours.get(endpoints)
        assert isinstance(assembler, QuicInitialAssembler), (endpoints, assembler)
        progress = assembler.feed(b"")  # a completed assembler returns its stored result
        assert progress.client_hello is not None
        assert (progress.client_hello.sni or "") == labels["Hostname/SNI"], endpoints
        if labels["JA4"]:
            assert progress.ja4 is not None
            assert _ja4_comparable(progress.ja4) == _ja4_comparable(labels["JA4"]), endpoints
    assert sum(isinstance(v, QuicInitialAssembler) for v in ours.values()) == len(expected)


@pytest.mark.parametrize("name", ["gquic.pcap", "quic.pcap"])
def test_google_quic_is_not_an_initial(name: str) -> None:
    """gQUIC (Q0xx) is not IETF QUIC: no ClientHello is claimed, nothing raises."""
    outcomes = set(v for v in our_quic_flows(name).values() if isinstance(v, str))
    assert outcomes == {"not-initial"}
    assert not any(isinstance(v, QuicInitialAssembler) for v in our_quic_flows(name).values())
