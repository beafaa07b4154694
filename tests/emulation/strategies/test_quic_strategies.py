"""UDP strategies before a QUIC Initial on the live bench (aioquic client and server)."""

from __future__ import annotations

import dpkt

QUIC = ("tspu-2022", "quic-sni-2023")


def _datagrams(run) -> list[dpkt.ip.IP]:  # type: ignore[no-untyped-def]
    return [p for p in run.client_segments() if isinstance(p.data, dpkt.udp.UDP)]


def test_quic_control_is_dropped(run) -> None:  # type: ignore[no-untyped-def]
    """§5.3 NTC-1823 post 10 (2022: a first QUIC v1 datagram >= 1001 B to port 443) and post 74
    / FOCI26 (2023+: the SNI of the decrypted Initial)."""
    r = run("none", transport="udp", profiles=QUIC)
    assert all(t.ok for t in r.trials)
    assert r.verdicts("tspu-2022") == ["drop/quic-v1-1001"] * 2
    assert r.verdicts("quic-sni-2023") == ["drop/quic-sni"] * 2


def test_a_fake_first_datagram_passes_the_2022_rule(run) -> None:  # type: ignore[no-untyped-def]
    """§5.3 NTC-1823 post 11 / §6 fake row: the 2022 filter is stateful; if the first datagram of
    a flow is not QUIC, later ones are not checked. The 2023 SNI filter is not fooled."""
    r = run("udpfake:data=short:len=601", transport="udp", profiles=QUIC)
    first = _datagrams(r)[0]
    assert len(first.data.data) == 601 and first.data.data[0] & 0xC0 == 0x40  # short header
    assert all(t.ok for t in r.trials)
    assert r.passes("tspu-2022") and not r.passes("quic-sni-2023")


def test_zero_padding_datagram_before_the_initial(run) -> None:  # type: ignore[no-untyped-def]
    """§5.3 NTC-1823 post 11: any non-QUIC first datagram ends the 2022 inspection."""
    r = run("udpfake:data=zero:len=1200", transport="udp", profiles=QUIC)
    assert _datagrams(r)[0].data.data == bytes(1200)
    assert r.passes("tspu-2022")
