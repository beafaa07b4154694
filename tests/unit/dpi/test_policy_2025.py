"""hosting-freeze-2025 and whitelist-2025: each test checks one fact of tspu-behaviour.md §5.8/§5.9."""

from __future__ import annotations

from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tspulab.dpi.verdict import Action, Fate

HETZNER = "88.198.10.20"
SCALEWAY = "51.15.1.1"
OVH = "137.74.5.6"


def download(c: Conn, start: float, chunks: int, size: int = 1400) -> list[Fate]:
    return [c.data(start + i / 1000, b"d" * size, from_client=False).fate for i in range(chunks)]


def test_freeze_after_16_kb_of_server_data_without_rst() -> None:
    """§5.8 N4P-#490, §9.18: to a foreign hosting range, after ~16 KB of server->client payload all
    further server->client packets are dropped silently; the client's packets still pass."""
    c = Conn(engine("hosting-freeze-2025"), server=HETZNER)
    c.handshake(0.0)
    assert c.data(0.1, hello_record("my-vps.example")).verdict.action is Action.FREEZE_AFTER_BYTES
    fates = download(c, 0.2, 20)
    passed = fates.index(Fate.DROP)
    assert passed * 1400 <= 16384 < (passed + 1) * 1400
    assert set(fates[passed:]) == {Fate.DROP}
    assert c.data(1.0, b"ack").fate is Fate.FORWARD
    assert Fate.RESET not in fates


def test_freeze_applies_to_raw_tcp_too() -> None:
    """§5.8 N4P-#490 [A]: regardless of protocol (raw iperf3 TCP is frozen as well)."""
    c = Conn(engine("hosting-freeze-2025"), server=HETZNER, dport=5201)
    c.handshake(0.0)
    c.data(0.1, bytes(37))  # iperf3's cookie
    fates = download(c, 0.2, 30)
    assert Fate.DROP in fates and fates.index(Fate.DROP) == 16384 // 1400
    assert c.log[-1].verdict.final


def test_freeze_sni_allowlist_exempts() -> None:
    """§5.8 N4P-#662 [A]: a small SNI allowlist (4pda.to, cloudflare.com) escapes the rule."""
    c = Conn(engine("hosting-freeze-2025"), server="104.16.1.1")
    c.handshake(0.0)
    d = c.data(0.1, hello_record("4pda.to"))
    assert d.verdict.final and d.verdict.rule == "freeze-allowlist"
    assert set(download(c, 0.2, 40)) == {Fate.FORWARD}


def test_freeze_spares_other_ranges() -> None:
    """§5.8: the rule is tied to the foreign hosting ranges; other servers are not frozen."""
    c = Conn(engine("hosting-freeze-2025"), server="93.184.216.34")
    c.handshake(0.0)
    c.data(0.1, hello_record("example.org"))
    assert set(download(c, 0.2, 40)) == {Fate.FORWARD}


def test_udp_to_hosting_range_blocks_https_to_ovh_for_10_minutes_and_renews() -> None:
    """§5.8 N4P-#417 comment, §9.19: any UDP to Scaleway turns on a 10-minute filter blocking all
    HTTPS to OVH for that subscriber; sending UDP again renews it."""
    e = engine("hosting-freeze-2025")
    before = Conn(e, server=OVH, sport=41000)
    assert before.tcp(0.0, "S").fate is Fate.FORWARD
    u = Conn(e, server=SCALEWAY, dport=3478)
    d = u.udp(10.0, b"stun")
    assert d.verdict.action is Action.HOST_BLOCK and d.fate is Fate.FORWARD
    assert (d.verdict.scope, d.verdict.duration_s, d.verdict.target_set) == (
        "client-host",
        600.0,
        "ovh",
    )
    blocked = Conn(e, server=OVH, sport=41001).tcp(20.0, "S")
    assert blocked.fate is Fate.DROP and "host block" in blocked.verdict.reason
    assert Conn(e, server=OVH, sport=41002, dport=80).tcp(20.0, "S").fate is Fate.FORWARD
    other_sub = Conn(e, client="10.0.0.3", server=OVH, sport=41003)
    assert other_sub.tcp(20.0, "S").fate is Fate.FORWARD
    assert Conn(e, server=OVH, sport=41004).tcp(609.0, "S").fate is Fate.DROP
    assert Conn(e, server=OVH, sport=41005).tcp(611.0, "S").fate is Fate.FORWARD
    u.udp(700.0, b"stun again")  # renews for 10 more minutes
    assert Conn(e, server=OVH, sport=41006).tcp(1290.0, "S").fate is Fate.DROP
    assert Conn(e, server=OVH, sport=41007).tcp(1301.0, "S").fate is Fate.FORWARD


def test_host_block_duration_follows_time_scale() -> None:
    """§5.8 §9.19 with time_scale 0.01: the 10-minute block lasts 6 s of scenario time."""
    e = engine("hosting-freeze-2025", time_scale=0.01)
    Conn(e, server=SCALEWAY, dport=3478).udp(0.0, b"x")
    assert Conn(e, server=OVH, sport=41001).tcp(5.0, "S").fate is Fate.DROP
    assert Conn(e, server=OVH, sport=41002).tcp(6.5, "S").fate is Fate.FORWARD


# --- whitelist-2025 --------------------------------------------------------------------------

VPS = "95.216.1.1"
YANDEX = "77.88.55.60"
VK = "87.240.132.67"


def wl(**sets: list[str]) -> object:
    return engine("whitelist-2025", sets={"allow-sni-ranges": [f"{VK}/32"], **sets})


def test_whitelist_handshake_completes_but_client_hello_is_dropped() -> None:
    """§5.9 N4P-#516, §9.20: for a non-allowlisted destination the SYN/ACK completes but the
    ClientHello (and everything after) is dropped."""
    c = Conn(wl(), server=VPS)  # type: ignore[arg-type]
    assert {d.fate for d in c.handshake(0.0)} == {Fate.FORWARD}
    d = c.data(0.1, hello_record("gosuslugi.ru"))
    assert d.verdict.final and d.fate is Fate.DROP and d.verdict.rule == "cut-tcp-data"
    assert c.data(0.5, hello_record("gosuslugi.ru")).fate is Fate.DROP


def test_whitelist_any_sni_to_allowlisted_ip() -> None:
    """§5.9 N4P-#516: any SNI works towards a Yandex IP (destination-IP allowlist)."""
    c = Conn(wl(), server=YANDEX)  # type: ignore[arg-type]
    first = c.tcp(0.0, "S")
    assert first.verdict.final and first.verdict.rule == "allow-ip"
    c.tcp(0.01, "SA", from_client=False)
    assert c.data(0.1, hello_record("my-vpn.example")).fate is Fate.FORWARD


def test_whitelist_allowlisted_sni_needs_allowlisted_range() -> None:
    """§5.9 N4P-#516, §6 (REALITY): an allowlisted SNI passes on allowlisted ranges only; towards a
    personal VPS no SNI works."""
    c = Conn(wl(), server=VK)  # type: ignore[arg-type]
    c.handshake(0.0)
    d = c.data(0.1, hello_record("vk.com"))
    assert d.verdict.final and d.verdict.rule == "allow-sni" and d.fate is Fate.FORWARD
    c = Conn(wl(), server=VK, sport=40001)  # type: ignore[arg-type]
    c.handshake(0.0)
    assert c.data(0.1, hello_record("my-vpn.example")).fate is Fate.DROP


def test_whitelist_dns_and_icmp() -> None:
    """§5.9 N4P-#516: UDP DNS to 8.8.8.8 works, to 1.1.1.1 does not; ICMP to non-whitelisted hosts
    is blocked."""
    e = wl()
    query = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    assert Conn(e, server="8.8.8.8", dport=53).udp(0.0, query).fate is Fate.FORWARD  # type: ignore[arg-type]
    assert Conn(e, server="1.1.1.1", dport=53).udp(0.0, query).fate is Fate.DROP  # type: ignore[arg-type]
    assert Conn(e, server=VPS).icmp(0.0).fate is Fate.DROP  # type: ignore[arg-type]
    assert Conn(e, server=YANDEX).icmp(0.0).fate is Fate.FORWARD  # type: ignore[arg-type]
