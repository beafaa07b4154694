"""Desync detection (tspulab/dpi/desync.py, the profile's `desync:`; tspu-2026-desync).

Sources, tspu-behaviour.md: §10.2 (zapret #2002, youtubeUnblock #356) [A]: the TSPU detects
desync fakes, then blocks the flow or the host; §6 fake row (NTC-1823, ZAPRET) [R]: matching
non-zero IP IDs on the fake and the real packet trigger blocking. Frames are scapy-crafted with
the TTL and IP ID a Linux client sends (one TTL per socket, IDs counting up by one).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from tests.unit.dpi.policy_flows import CLIENT, SERVER, hello_record
from tspulab.dpi.desync import IPID_WINDOW, RULE, ipv4_ident
from tspulab.dpi.engine import Decision, TspuEngine
from tspulab.dpi.packet import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW, decode
from tspulab.dpi.profile import PROFILES_DIR, ProfileError, load_profile, load_profile_text
from tspulab.dpi.registry import Registry
from tspulab.dpi.verdict import Action, Fate

SUBSCRIBERS = [ipaddress.ip_network("10.0.0.0/8")]
DESYNC = "tspu-2026-desync"
HELLO = hello_record("example.org")  # not in the registry: only desync can stop it
FAKE = hello_record("decoy.example")


@dataclass
class Client:
    """A Linux-like client: one TTL on the wire at the box, IP IDs counting up from `ident`."""

    eng: TspuEngine
    sport: int = 40000
    server: str = SERVER
    ttl: int = 62
    ident: int = 0x1234
    seq: list[int] = field(default_factory=lambda: [1000, 5000])

    def send(
        self, now: float, flags: str, payload: bytes = b"", *, ttl: int | None = None,
        ident: int | None = None, advance: bool = True, from_client: bool = True,
    ) -> Decision:  # fmt: skip
        if from_client:
            ip = IP(src=CLIENT, dst=self.server, ttl=ttl or self.ttl, id=self._id(ident))
            tcp = TCP(sport=self.sport, dport=443, seq=self.seq[0], ack=self.seq[1], flags=flags)
            if advance:
                self.seq[0] += len(payload) + ("S" in flags)
        else:
            ip = IP(src=self.server, dst=CLIENT, ttl=50, id=0)
            tcp = TCP(sport=443, dport=self.sport, seq=self.seq[1], ack=self.seq[0], flags=flags)
            self.seq[1] += len(payload) + ("S" in flags)
        return self.eng.process(bytes(Ether() / ip / tcp / payload), now)

    def _id(self, ident: int | None) -> int:
        if ident is not None:
            return ident
        self.ident = (self.ident + 1) % 65536
        return self.ident

    def handshake(self, now: float) -> list[Decision]:
        return [
            self.send(now, "S"),
            self.send(now + 0.01, "SA", from_client=False),
            self.send(now + 0.02, "A"),
        ]


def _engine(profile: str = DESYNC, time_scale: float = 1.0) -> TspuEngine:
    return TspuEngine(load_profile(profile), Registry(), SUBSCRIBERS, time_scale)


def _caught(d: Decision) -> bool:
    return d.verdict.final and d.verdict.action is Action.DROP and d.verdict.rule == RULE


def test_a_real_client_is_never_flagged() -> None:
    """No fake: a handshake, the ClientHello, a retransmission of it (new ID, same TTL, as Linux
    sends it), the server's answer, more data: nothing is desync."""
    c = Client(_engine())
    decisions = c.handshake(0.0)
    decisions.append(c.send(0.1, "PA", HELLO, advance=False))
    decisions.append(c.send(0.3, "PA", HELLO))  # the retransmission
    decisions.append(c.send(0.4, "PA", b"\x16\x03\x03" + bytes(60), from_client=False))
    decisions.append(c.send(0.5, "PA", b"\x17\x03\x03\x00\x10" + bytes(16)))
    assert not any(_caught(d) for d in decisions), [d.verdict for d in decisions]
    assert all(d.fate is Fate.FORWARD for d in decisions)


def test_a_low_ttl_fake_drops_the_flow_and_blocks_the_client_from_the_server() -> None:
    """§10.2 [A]: a fake detected, then the flow and the host blocked; the block (block_s 60)
    covers new flows from the subscriber to that server only, and ends."""
    eng = _engine()
    c = Client(eng)
    c.handshake(0.0)
    fake = c.send(0.1, "PA", FAKE, ttl=1, advance=False)
    assert _caught(fake) and fake.fate is Fate.DROP
    assert "TTL 1 on a flow whose packets arrive with 62" in fake.verdict.reason
    assert fake.verdict.hard_timeout_s == 60
    assert c.send(0.11, "PA", HELLO).fate is Fate.DROP  # the real hello goes nowhere
    again = Client(eng, sport=40001).send(5.0, "S")
    assert _caught(again) and again.fate is Fate.DROP
    assert again.verdict.hard_timeout_s == pytest.approx(55.1)
    other = Client(eng, sport=40002, server="93.184.216.35").send(5.0, "S")
    assert other.fate is Fate.FORWARD and not _caught(other)
    later = Client(eng, sport=40003)
    assert not any(_caught(d) for d in later.handshake(60.2))


def test_an_ip_id_out_of_sequence_gives_a_same_ttl_fake_away() -> None:
    """A bad-checksum / MD5 / bad-seq fake keeps the TTL; tspulab's fakes flip the ID's top bit."""
    c = Client(_engine())
    c.handshake(0.0)
    fake = c.send(0.1, "PA", FAKE, ident=(c.ident + 1) ^ 0x8000, advance=False)
    assert _caught(fake) and "out of the flow's sequence" in fake.verdict.reason


def test_a_fake_repeating_the_real_packets_ip_id_is_caught() -> None:
    """§6 (NTC-1823, ZAPRET) [R]: matching non-zero IP IDs on fake and real packet."""
    c = Client(_engine())
    c.handshake(0.0)
    c.send(0.1, "PA", HELLO[:50])
    repeated = c.send(0.11, "PA", FAKE, ident=c.ident, advance=False)
    assert _caught(repeated) and f"IP ID {c.ident} repeated" in repeated.verdict.reason


def test_ids_may_skip_ahead_within_the_window() -> None:
    """Segments under GSO and other sockets' packets (a global counter) move the ID on by more
    than one; up to IPID_WINDOW is in sequence."""
    c = Client(_engine())
    c.handshake(0.0)
    assert not _caught(c.send(0.1, "PA", HELLO, ident=c.ident + IPID_WINDOW))
    c2 = Client(_engine())
    c2.handshake(0.0)
    assert _caught(c2.send(0.1, "PA", HELLO, ident=c2.ident + IPID_WINDOW + 1))


def test_zero_ids_and_rsts_are_not_read() -> None:
    """Stacks that send ID 0 with DF are not flagged; a RST may come from another socket."""
    c = Client(_engine())
    for d in [*c.handshake(0.0), c.send(0.1, "PA", HELLO, ident=0), c.send(0.2, "PA", b"x")]:
        assert not _caught(d)
    r = Client(_engine(), sport=40009)
    r.handshake(0.0)
    assert not _caught(r.send(0.1, "R", ident=7))


def test_drop_flow_blocks_only_the_flow_and_a_box_without_desync_sees_nothing() -> None:
    text = (PROFILES_DIR / f"{DESYNC}.yaml").read_text(encoding="utf-8")
    block = text[text.index("  action: {value: block-client") :]
    flow_only = text.replace(block, '  action: {value: drop-flow, source: "§10.2 [A]"}\n')
    eng = TspuEngine(load_profile_text(flow_only), Registry(), SUBSCRIBERS)
    c = Client(eng)
    c.handshake(0.0)
    caught = c.send(0.1, "PA", FAKE, ttl=1, advance=False)
    assert _caught(caught) and caught.verdict.hard_timeout_s is None
    assert not _caught(Client(eng, sport=40001).send(0.2, "S"))
    plain = Client(_engine("tspu-2026-reassembly"))
    plain.handshake(0.0)
    assert not _caught(plain.send(0.1, "PA", FAKE, ttl=1, advance=False))


def test_the_block_follows_the_scenarios_time_scale() -> None:
    """With time_scale 0.01 the 60 s block lasts 0.6 s (like every profile timer)."""
    eng = _engine(time_scale=0.01)
    c = Client(eng)
    c.handshake(0.0)
    assert _caught(c.send(0.1, "PA", FAKE, ttl=1, advance=False))
    assert _caught(Client(eng, sport=40001).send(0.5, "S"))
    assert not _caught(Client(eng, sport=40002).send(0.8, "S"))


def test_flows_from_outside_are_not_judged() -> None:
    """§2.3: policy applies to connections that start inside."""
    eng = _engine()
    first = IP(src=SERVER, dst=CLIENT, ttl=50, id=5) / TCP(sport=443, dport=40000, flags="S")
    fake = IP(src=SERVER, dst=CLIENT, ttl=3, id=9000) / TCP(sport=443, dport=40000, flags="PA")
    eng.process(bytes(Ether() / first), 0.0)
    assert not _caught(eng.process(bytes(Ether() / fake / FAKE), 0.1))


def test_fragments_of_one_datagram_share_an_id_without_being_flagged() -> None:
    """§2.4: fragments carry their datagram's ID; the later ones are not compared."""
    c = Client(_engine())
    c.handshake(0.0)
    c.ident += 1
    datagram = IP(src=CLIENT, dst=SERVER, ttl=62, id=c.ident) / TCP(
        sport=40000, dport=443, seq=c.seq[0], ack=c.seq[1], flags="PA"
    ) / HELLO  # fmt: skip
    first, second = (bytes(Ether() / f) for f in _fragment(datagram, 64))
    assert not _caught(c.eng.process(first, 0.1))
    assert not _caught(c.eng.process(second, 0.1))


def _fragment(datagram: IP, size: int) -> list[IP]:
    from scapy.layers.inet import fragment

    frags: list[IP] = fragment(datagram, fragsize=size)
    return frags[:2]


# --- the IP ID as read from the frame ---------------------------------------------------------


def test_ipv4_ident_reads_the_header_of_the_decoded_packet() -> None:
    ip = IP(src="10.0.0.2", dst="93.184.216.34", id=0xBEEF) / TCP()
    eth = bytes(Ether() / ip)
    assert ipv4_ident(eth, LINKTYPE_ETHERNET, decode(eth)) == 0xBEEF
    tagged = bytes(Ether() / Dot1Q(vlan=7) / ip)
    assert ipv4_ident(tagged, LINKTYPE_ETHERNET, decode(tagged)) == 0xBEEF
    raw = bytes(ip)
    assert ipv4_ident(raw, LINKTYPE_RAW, decode(raw, LINKTYPE_RAW)) == 0xBEEF
    # a header that does not carry the packet's addresses is not read
    assert ipv4_ident(eth, LINKTYPE_LINUX_SLL, decode(eth)) == -1
    v6 = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP())
    assert ipv4_ident(v6, LINKTYPE_ETHERNET, decode(v6)) == -1


# --- the profile section ----------------------------------------------------------------------


def _desync_errors(section: str) -> list[str]:
    text = (PROFILES_DIR / f"{DESYNC}.yaml").read_text(encoding="utf-8")
    text = text[: text.index("desync:\n")] + section
    with pytest.raises(ProfileError) as info:
        load_profile_text(text, "d.yaml")
    return [f"{e.field}: {e.message}" for e in info.value.errors]


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ('desync:\n  signals: {value: [ttl], source: "§10.2"}\n'
         '  action: {value: block-client, source: "§10.2"}\n',
         "desync: action block-client needs 'block_s'"),
        ('desync:\n  signals: {value: [ttl], source: "§10.2"}\n'
         '  action: {value: drop-flow, source: "§10.2"}\n  block_s: {value: 5, source: "§8"}\n',
         "desync.block_s: 'block_s' is a block-client parameter"),
        ('desync:\n  signals: {value: [], source: "§10.2"}\n'
         '  action: {value: drop-flow, source: "§10.2"}\n',
         "desync.signals: name at least one of ttl, ipid"),
        ('desync:\n  signals: {value: [checksum], source: "§10.2"}\n'
         '  action: {value: drop-flow, source: "§10.2"}\n',
         "desync.signals.value[0]: 'checksum' is not allowed; expected 'ttl' or 'ipid'"),
        ('desync:\n  signals: {value: [ttl], source: "§10.2"}\n'
         '  action: {value: block-client, source: "§10.2"}\n  block_s: {value: 0, source: "§8"}\n',
         "desync.block_s: a block lasts more than 0 s"),
        ('desync:\n  signals: {value: [ttl]}\n  action: {value: drop-flow, source: "§10.2"}\n',
         "desync.signals.source: missing source"),
    ],
)  # fmt: skip
def test_bad_desync_sections_are_reported_at_their_field(section: str, error: str) -> None:
    errors = _desync_errors(section)
    assert any(e.startswith(error) for e in errors), errors


def test_the_desync_profile_is_the_2026_reassembly_profile_plus_detection() -> None:
    """tspu-2026-desync `extends:` tspu-2026-reassembly and adds its `desync:` section (and facts,
    source): everything else is the base's, as loaded."""
    desync, base = load_profile(DESYNC).spec, load_profile("tspu-2026-reassembly").spec
    for part in ("seed", "inspection", "state", "sets", "rules", "period"):
        assert getattr(desync, part) == getattr(base, part), part
    assert base.desync is None and desync.desync is not None
