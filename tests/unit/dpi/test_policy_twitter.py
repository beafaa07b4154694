"""twitter-throttle-2021: each test checks one fact of tspu-behaviour.md §3 (CP-THR)."""

from __future__ import annotations

import pytest

from tests.unit.dpi.crafting import CCS
from tests.unit.dpi.policy_flows import Conn, engine, hello_record
from tspulab.dpi.verdict import Action, Fate

PROFILE = "twitter-throttle-2021"


def throttled(sni: str, sport: int = 40000) -> Action:
    c = Conn(engine(PROFILE), sport=sport)
    c.handshake(0.0)
    return c.data(0.1, hello_record(sni)).verdict.action


@pytest.mark.parametrize("sni", ["twitter.com", "abs.twimg.com", "t.co", "mobile.twitter.com"])
def test_twitter_names_are_policed(sni: str) -> None:
    """§3 CP-THR: a Twitter domain in the SNI triggers (rules *.twimg.com, twitter.com, t.co)."""
    assert throttled(sni) is Action.POLICE


@pytest.mark.parametrize("sni", ["reddit.com", "microsoft.com", "rt.com"])
def test_substring_rule_hits_collateral_names(sni: str) -> None:
    """§3 CP-THR, §9.7: the early *t.co* substring rule throttled reddit.com, microsoft.com, rt.com."""
    assert throttled(sni) is Action.POLICE


def test_other_names_pass_and_twimg_apex_is_not_a_subdomain() -> None:
    """§3 CP-THR: *.twimg.com matches any sub-domain; other names are not throttled."""
    assert throttled("example.org") is Action.ALLOW
    assert throttled("twimg.com") is Action.ALLOW


@pytest.mark.parametrize(
    ("sni", "action"),
    [
        ("nottwitter.com", Action.POLICE),  # any text before twitter.com
        ("api.mobile.twitter.com", Action.POLICE),
        ("twitter.community", Action.ALLOW),  # *twitter.com* (the rule before issue 15) hit these
        ("twitter.com.example", Action.ALLOW),
        ("mytwitter.com.evil.example", Action.ALLOW),
    ],
)
def test_twitter_rule_ends_with_twitter_com_as_the_source_writes_it(
    sni: str, action: Action
) -> None:
    """§3 CP-THR, N4P-#65: the early rule was ``*twitter.com``: a name ending in twitter.com, not a
    name containing it (issue 15, mismatch 1)."""
    assert throttled(sni) is action


def test_trailing_dot_evades() -> None:
    """§3 CP-THR, §6: a trailing dot in the SNI evaded the throttler."""
    assert throttled("abs.twimg.com.") is Action.ALLOW
    assert throttled("twitter.com.") is Action.ALLOW


def test_policing_per_direction_at_130_kbps_with_16_kb_burst() -> None:
    """§3 CP-THR, §9.6: policing (drops, not queueing) per direction at 130 kbps; 16 KB pass in the
    first 100 ms, then drops for the rest of the second."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    assert c.data(0.05, hello_record("twitter.com")).verdict.final
    frame_down = None
    forwarded = {True: 0, False: 0}
    first_100ms = 0
    # 10 s of 1,500-byte packets every 5 ms in each direction: 2.4 Mbit/s offered per direction.
    for i in range(2000):
        now = 1.0 + i * 0.005
        for from_client in (True, False):
            d = c.data(now, b"\x17\x03\x03" + bytes(1457), from_client=from_client)
            frame_down = d
            if d.fate is Fate.FORWARD:
                forwarded[from_client] += d.packet.ip_len if d.packet else 0
                if not from_client and now < 1.1:
                    first_100ms += d.packet.ip_len if d.packet else 0
            else:
                assert d.fate is Fate.DROP
    assert frame_down is not None and frame_down.verdict.rate_bps == 130_000
    for direction in (True, False):
        rate_bps = forwarded[direction] * 8 / 10.0
        # 10 s at 130 kbps plus one 16 KB burst: 143 kbps; allow one packet of slack per second.
        assert 125_000 <= rate_bps <= 145_000, (direction, rate_bps)
    assert 15_000 <= first_100ms <= 17_500


def test_outside_initiated_connection_is_not_judged() -> None:
    """§3 CP-THR: no throttling when the remote server opened the TCP connection."""
    c = Conn(engine(PROFILE), client="93.184.216.34", server="10.0.0.2", sport=443, dport=40000)
    first = c.tcp(0.0, "S")
    assert first.verdict.final and first.verdict.action is Action.ALLOW
    assert "outside-initiated" in first.verdict.reason
    c.tcp(0.01, "SA", from_client=False)
    assert (
        c.data(0.1, hello_record("twitter.com"), from_client=False).verdict.action is Action.ALLOW
    )


def test_client_hello_from_server_side_triggers_on_inside_connection() -> None:
    """§3 CP-THR: once an inside-initiated connection exists, a ClientHello from either side triggers."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    assert (
        c.data(0.1, hello_record("twitter.com"), from_client=False).verdict.action is Action.POLICE
    )


def test_opaque_first_packet_of_101_bytes_ends_inspection() -> None:
    """§3 CP-THR, §9.8: a first packet of >= 101 random bytes stops inspection; 100 bytes does not."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    d = c.data(0.1, bytes(range(101)))
    assert d.verdict.final and d.verdict.action is Action.ALLOW and "101 B" in d.verdict.reason
    assert c.data(0.2, hello_record("twitter.com")).verdict.action is Action.ALLOW
    c = Conn(engine(PROFILE), sport=40001)
    c.handshake(0.0)
    assert not c.data(0.1, bytes(range(100))).verdict.final
    assert c.data(0.2, hello_record("twitter.com")).verdict.action is Action.POLICE


def test_fake_client_hello_first_keeps_inspection_window_open() -> None:
    """§3 CP-THR, §6: a single fake ClientHello fails, the box keeps inspecting 15-20 more packets."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    assert not c.data(0.1, hello_record("example.org")).verdict.final
    for i in range(10):
        assert not c.data(
            0.2 + i * 0.01, b"\x17\x03\x03\x00\x10" + bytes(16), from_client=False
        ).verdict.final
    assert c.data(0.5, hello_record("twitter.com")).verdict.action is Action.POLICE


def test_http_proxy_first_packet_keeps_inspection() -> None:
    """§3 CP-THR: HTTP proxy traffic first keeps the throttler inspecting (unencrypted proxies fail)."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    connect = (
        b"CONNECT twitter.com:443 HTTP/1.1\r\nHost: twitter.com:443\r\n"
        + b"X-Pad: "
        + bytes(80)
        + b"\r\n\r\n"
    )
    assert len(connect) >= 101
    assert not c.data(0.1, connect).verdict.final
    assert c.data(0.2, b"HTTP/1.1 200 OK\r\n\r\n", from_client=False).verdict.final is False
    assert c.data(0.3, hello_record("twitter.com")).verdict.action is Action.POLICE


def test_window_closes_after_15_to_20_packets() -> None:
    """§3 CP-THR, §9.8: inspection lasts 15-20 packets after the first; a later ClientHello passes."""
    e = engine(PROFILE)
    c = Conn(e)
    c.handshake(0.0)
    c.data(0.1, hello_record("example.org"))
    n = 1
    d = None
    while True:
        d = c.data(0.2 + n * 0.01, b"\x17\x03\x03\x00\x10" + bytes(16), from_client=n % 2 == 0)
        n += 1
        if d.verdict.final:
            break
    assert 16 <= n <= 21 and d.verdict.action is Action.ALLOW
    assert c.data(1.0, hello_record("twitter.com")).verdict.action is Action.ALLOW


@pytest.mark.parametrize("cut", [20, 60, 100])
def test_split_client_hello_is_not_reassembled(cut: int) -> None:
    """§3 CP-THR, §9.5: a ClientHello split across TCP segments is not matched (no reassembly)."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    stream = hello_record("twitter.com")
    assert c.data(0.1, stream[:cut]).verdict.action is Action.ALLOW
    assert c.data(0.11, stream[cut:]).verdict.action is Action.ALLOW


def test_ccs_record_before_client_hello_defeats_parser() -> None:
    """§3 CP-THR, §9.9: a ChangeCipherSpec record before the ClientHello in the same segment defeats it."""
    c = Conn(engine(PROFILE))
    c.handshake(0.0)
    assert c.data(0.1, CCS + hello_record("twitter.com")).verdict.action is Action.ALLOW


def test_state_survives_rst_and_fin() -> None:
    """§3 CP-THR, §9.10: injected FIN or RST does not clear the throttling state."""
    e = engine(PROFILE)
    c = Conn(e)
    c.handshake(0.0)
    c.data(0.1, hello_record("twitter.com"))
    assert c.tcp(0.2, "R").verdict.action is Action.POLICE
    assert c.data(0.3, b"more").verdict.action is Action.POLICE
    # A new connection on the same 5-tuple after the RST still carries the state.
    c.seq = [90000, 70000]
    assert c.tcp(0.4, "S").verdict.action is Action.POLICE
    assert c.tcp(0.5, "F").verdict.action is Action.POLICE


def test_idle_state_expires_after_10_minutes_but_active_flows_stay_throttled() -> None:
    """§3 CP-THR, §9.10: idle flows lose their state after ~10 minutes; active flows stay throttled (2 h)."""
    e = engine(PROFILE)
    c = Conn(e)
    c.handshake(0.0)
    c.data(0.1, hello_record("twitter.com"))
    for minute in range(5, 125, 5):  # active for two hours, a packet every 5 minutes
        assert c.data(minute * 60.0, b"x").verdict.action is Action.POLICE
    last = 120 * 60.0
    assert c.data(last + 590, b"x").verdict.action is Action.POLICE  # 9 min 50 s idle
    d = c.data(last + 590 + 601, b"y" * 200)  # 10 min 1 s idle: a new, mid-stream flow
    assert d.verdict.action is Action.ALLOW


def test_time_scale_compresses_the_idle_timer() -> None:
    """§3 CP-THR: the 10-minute idle expiry runs in 6 s of scenario time with time_scale=0.01."""
    e = engine(PROFILE, time_scale=0.01)
    c = Conn(e)
    c.handshake(0.0)
    c.data(0.1, hello_record("twitter.com"))
    assert c.data(5.9, b"x").verdict.action is Action.POLICE
    assert c.data(12.0, b"y" * 200).verdict.action is Action.ALLOW
    assert c.log[4].verdict.idle_timeout_s == pytest.approx(6.0)
