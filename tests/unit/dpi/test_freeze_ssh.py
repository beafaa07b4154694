"""The 16 KB freeze spares SSH (§5.8 N4P-#490 comment 2025-11-28 [A]: "raw iperf3 TCP is also
frozen; SSH/SFTP is not"), in hosting-freeze-2025 and hosting-freeze-h3-2025."""

from __future__ import annotations

import pytest

from tests.unit.dpi.policy_flows import Conn, engine
from tspulab.dpi.classify import Protocol
from tspulab.dpi.verdict import Action, Fate

HETZNER = "88.198.10.20"
PROFILES = ["hosting-freeze-2025", "hosting-freeze-h3-2025"]


def download(c: Conn, start: float, chunks: int, size: int = 1400) -> list[Fate]:
    return [c.data(start + i / 1000, b"d" * size, from_client=False).fate for i in range(chunks)]


@pytest.mark.parametrize("profile", PROFILES)
def test_ssh_to_a_hosting_range_is_not_frozen(profile: str) -> None:
    """OpenSSH: the server's banner comes first, then the client's; 64 KB after it all pass."""
    c = Conn(engine(profile), server=HETZNER, dport=22)
    c.handshake(0.0)
    banner = c.data(0.1, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", from_client=False)
    assert banner.verdict.final and banner.verdict.rule == "ssh-not-frozen"
    assert banner.classification is not None and banner.classification.protocol is Protocol.SSH
    assert c.data(0.11, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").fate is Fate.FORWARD
    assert set(download(c, 0.2, 48)) == {Fate.FORWARD}


@pytest.mark.parametrize("profile", PROFILES)
def test_ssh_on_another_port_is_spared_too(profile: str) -> None:
    """The exemption follows the protocol (the banner), not port 22."""
    c = Conn(engine(profile), server=HETZNER, dport=2222)
    c.handshake(0.0)
    c.data(0.1, b"SSH-2.0-OpenSSH_9.2p1\r\n", from_client=False)
    assert set(download(c, 0.2, 48)) == {Fate.FORWARD}


@pytest.mark.parametrize("profile", PROFILES)
def test_raw_tcp_beside_it_is_still_frozen(profile: str) -> None:
    """iperf3 (a 37-byte cookie, then data) on the same range: frozen after ~16 KB."""
    c = Conn(engine(profile), server=HETZNER, dport=5201)
    c.handshake(0.0)
    assert c.data(0.1, bytes(37)).verdict.action is Action.FREEZE_AFTER_BYTES
    fates = download(c, 0.2, 30)
    assert fates.index(Fate.DROP) == 16384 // 1400


@pytest.mark.parametrize("profile", PROFILES)
def test_an_ssh_banner_late_in_a_frozen_flow_does_not_unfreeze_it(profile: str) -> None:
    """Only a flow that shows SSH within the inspection window is exempt; once the window is
    spent the freeze is final, whatever comes later."""
    c = Conn(engine(profile), server=HETZNER, dport=443)
    c.handshake(0.0)
    fates = download(c, 0.1, 20)
    assert Fate.DROP in fates and c.log[-1].verdict.final
    assert c.data(0.5, b"SSH-2.0-x\r\n", from_client=False).fate is Fate.DROP
