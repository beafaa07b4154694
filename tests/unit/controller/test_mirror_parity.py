"""The fast path forwards SYN/ACKs without a copy to the controller: the engine's verdicts must not
depend on them. Every flow of these nDPI captures gets the same verdict with and without them."""

from __future__ import annotations

import pytest

from tests.datapaths import PCAPS
from tspulab.dpi.engine import engine_for
from tspulab.dpi.engine_replay import replay_with_profile
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.packet import PROTO_TCP, TCP_ACK, TCP_SYN, decode
from tspulab.dpi.pcap import read_capture
from tspulab.dpi.profile import load_profile
from tspulab.dpi.registry import load_inline

CAPTURES = ("chrome.pcap", "443-curl.pcap", "ssh.pcap", "openvpn.pcap", "tls_2_reasms.pcapng",
            "tls_with_huge_ch.pcapng", "tor.pcap", "telegram.pcap")  # fmt: skip
REGISTRY = ["google.com", "*.google.com", "twitter.com", "facebook.com", "telegram.org"]


def _syn_ack(linktype: int, frame: bytes) -> bool:
    try:
        p = decode(frame, linktype)
    except DecodeError:
        return False
    return p.proto == PROTO_TCP and p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK


@pytest.mark.parametrize("profile", ["tspu-2022", "twitter-throttle-2021", "vpn-protocols-2023"])
def test_verdicts_do_not_need_the_syn_ack(profile: str) -> None:
    prof = load_profile(profile)
    compared = removed = 0
    for name in CAPTURES:
        frames = list(read_capture(PCAPS / name))
        without = [f for f in frames if not _syn_ack(f[1], f[2])]
        removed += len(frames) - len(without)
        verdicts = []
        for feed in (frames, without):
            result = replay_with_profile(feed, engine_for(prof, load_inline(REGISTRY, "t")))
            verdicts.append({(v.flow.key, v.flow.client_port): v.verdict for v in result.flows})
        both = verdicts[0].keys() & verdicts[1].keys()
        for key in both:
            a, b = verdicts[0][key], verdicts[1][key]
            assert (a.action, a.rule, a.final) == (b.action, b.rule, b.final), (name, key)
        compared += len(both)
    assert compared > 50 and removed > 20
