"""Fidelity, replay: QUIC statements decided by the classifier (tspu-behaviour.md §5.3 NTC-1823,
§5.6 N4P-#417): the 2022 rule against a fragmented Initial (zapret's ipfrag2), and the ECH rule
on QUIC. Protected Initials are built as RFC 9001 says (tests/unit/dpi/test_quic.py), frames with
scapy, and driven through `TspuEngine`.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedVersion_CH,
    TLS_Ext_Unknown,
)
from scapy.layers.tls.handshake import TLSClientHello

from tests.unit.dpi.policy_flows import CLIENT, SERVER, Conn, engine
from tests.unit.dpi.test_quic import DCID, crypto_frame, padded, protect_initial
from tspulab.dpi.verdict import Action, Fate

ECH_EXTENSION = 0xFE0D


def _initial(sni: str, ech: bool = False) -> bytes:
    ext = [
        TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())]),
        TLS_Ext_SupportedVersion_CH(versions=[0x0304]),
        TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h3")]),
    ]
    if ech:
        ext.append(TLS_Ext_Unknown(type=ECH_EXTENSION, val=bytes(64)))
    hello = bytes(TLSClientHello(ciphers=[0x1301, 0x1302], ext=ext))
    return protect_initial(padded(crypto_frame(0, hello)), DCID, 0)


@pytest.mark.fidelity("s5-quic-stateful")
def test_s5_fragmented_quic_initial_passes_the_2022_rule_ntc1823(record_fidelity) -> None:  # type: ignore[no-untyped-def]
    """§5.3 NTC-1823 post 11 ("ipfrag2 also works where fragments survive"): the same QUIC v1
    Initial that the 2022 rule drops whole passes when its datagram is cut into IP fragments: the
    first fragment carries under 1001 bytes of UDP payload, so the 4-tuple's first packet is not
    QUIC-like and the flow is never inspected; a whole Initial after it passes too."""
    initial = _initial("www.example.org")
    assert len(initial) >= 1200
    whole = Conn(engine("tspu-2022")).udp(0.0, initial)
    assert whole.fate is Fate.DROP and whole.verdict.rule == "quic-v1-1001"
    c = Conn(engine("tspu-2022"), sport=40001)
    datagram = IP(src=CLIENT, dst=SERVER) / UDP(sport=40001, dport=443) / initial
    frags = fragment(datagram, fragsize=600)
    fates = [c.feed(bytes(Ether() / f), 0.1 + i / 1000).fate for i, f in enumerate(frags)]
    later = c.udp(0.2, initial)
    record_fidelity("s5-quic-stateful", measured=f"a {len(initial)}-byte Initial in "
                    f"{len(frags)} fragments: {sorted({f.value for f in fates})}, the next whole "
                    f"Initial {later.fate.value}")  # fmt: skip
    assert fates == [Fate.FORWARD] * len(frags)
    assert later.fate is Fate.FORWARD


@pytest.mark.fidelity("s5-ech", "t16")
@pytest.mark.parametrize(
    ("sni", "ech", "blocked"),
    [("cloudflare-ech.com", True, True), ("cloudflare-ech.com", False, False),
     ("www.example.org", True, False)],
)  # fmt: skip
def test_s5_ech_rule_on_quic_needs_both_outer_sni_and_ech_n4p417(
    sni: str, ech: bool, blocked: bool
) -> None:
    """§5.6 N4P-#417 ("applies to TCP (HTTP/2) and QUIC (HTTP/3)"; "neither alone is blocked";
    packets after the signature dropped, no RST), §9.16: a QUIC Initial with SNI
    cloudflare-ech.com and an ECH extension - the Initial passes, the flow's later datagrams in
    both directions are dropped; either feature alone passes."""
    c = Conn(engine("ech-2024"))
    first = c.udp(0.0, _initial(sni, ech))
    assert first.fate is Fate.FORWARD
    assert first.verdict.action is (Action.DROP_AFTER if blocked else Action.ALLOW)
    later = [c.udp(0.1, b"\x40" + bytes(60)), c.udp(0.11, b"\x40" + bytes(60), from_client=False)]
    assert all((d.fate is Fate.DROP) is blocked for d in later)
