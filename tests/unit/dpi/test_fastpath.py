"""fastpath.count_decided against the reference path (decode -> lookup -> observe), packet by
packet: the same flows, counters, directions, closing marks and verdicts after every packet."""

from __future__ import annotations

from crafting import client_hello, record, tcp_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.datapaths import PCAPS
from tspulab.dpi.classify import Classifier
from tspulab.dpi.errors import DecodeError
from tspulab.dpi.fastpath import count_decided
from tspulab.dpi.flow import FlowState, FlowTable
from tspulab.dpi.packet import LINKTYPE_RAW, decode
from tspulab.dpi.pcap import read_capture
from tspulab.replay import replay_file

_CAPTURES = ("443-curl.pcap", "dns.pcap", "quic-v2.pcapng", "tor.pcap", "wireguard.pcap")
_FRAMES = [(lt, f) for name in _CAPTURES for _, lt, f in list(read_capture(PCAPS / name))[:60]]


def _port_reuse() -> list[tuple[int, bytes]]:
    """A connection decided by its ClientHello, closed by FIN, then a new SYN on the same 5-tuple
    (the reference path starts a new flow there), and one more ClientHello."""
    hello = record(22, client_hello("reuse.example"))
    return [
        (1, tcp_frame(b"", 1000, "S")),
        (1, tcp_frame(hello, 1001)),
        (1, tcp_frame(b"", 5000, "A", from_client=False)),
        (1, tcp_frame(b"", 1001 + len(hello), "FA")),
        (1, tcp_frame(b"", 5000, "A", from_client=False)),
        (1, tcp_frame(b"", 9000, "S")),
        (1, tcp_frame(hello, 9001)),
        (1, tcp_frame(b"", 7000, "A", from_client=False)),
    ]


_FRAMES += _port_reuse()


def _snapshot(table: FlowTable) -> list[tuple[object, ...]]:
    def one(f: FlowState) -> tuple[object, ...]:
        return (
            f.key, f.client_addr, f.client_port, f.first_seen, f.last_seen, f.from_client,
            f.packets_from_client, f.bytes_from_client, f.packets_from_server,
            f.bytes_from_server, f.tcp_closing, f.classification,
        )  # fmt: skip

    return [one(f) for f in table.flows()] + [("expired", *one(f)) for f in table.expired]


def _reference(table: FlowTable, classifier: Classifier, frame: bytes, lt: int, ts: float) -> None:
    try:
        pkt = decode(frame, lt)
    except DecodeError:
        return
    classifier.observe(pkt, table.lookup(pkt, ts), ts)


@settings(max_examples=150, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(_FRAMES) - 1), min_size=1, max_size=80),
    gaps=st.lists(
        st.sampled_from([0.0, 0.001, 0.5, 20.0, 100.0, 200.0, 400.0]), min_size=80, max_size=80
    ),
    edits=st.lists(st.tuples(st.integers(0, 79), st.integers(0, 70), st.integers(0, 255))),
    raw=st.booleans(),
)
def test_fast_path_leaves_the_reference_state_packet_by_packet(
    picks: list[int], gaps: list[float], edits: list[tuple[int, int, int]], raw: bool
) -> None:
    """Frames of several captures in random order, with random gaps (some past the idle timeout
    and the sweep interval) and random header bytes changed."""
    frames = [bytearray(_FRAMES[i][1]) for i in picks]
    for which, pos, value in edits:
        if which < len(frames) and pos < len(frames[which]):
            frames[which][pos] = value
    ref_table, fast_table = FlowTable(idle_timeout=300.0), FlowTable(idle_timeout=300.0)
    ref_cls, fast_cls = Classifier(), Classifier()
    ts = 1000.0
    for index, (frame_bytes, gap) in enumerate(zip(frames, gaps, strict=False)):
        ts += gap
        lt = _FRAMES[picks[index]][0]
        frame = bytes(frame_bytes)
        if raw and lt == 1 and len(frame) > 14:
            frame, lt = frame[14:], LINKTYPE_RAW
        _reference(ref_table, ref_cls, frame, lt, ts)
        if count_decided(fast_table, frame, lt, ts) is None:
            _reference(fast_table, fast_cls, frame, lt, ts)
        assert _snapshot(fast_table) == _snapshot(ref_table)


def test_replay_with_the_fast_path_equals_the_reference_on_every_capture() -> None:
    """Whole captures: the replay loop (fast path on) reports exactly what the reference loop
    reports, flow by flow."""
    for path in sorted(PCAPS.iterdir()):
        table, classifier = FlowTable(), Classifier("tls-records", inspect_packets=24)
        for ts, lt, frame in read_capture(path):
            _reference(table, classifier, frame, lt, ts)
        reference = [
            (f.key, f.packets_from_client, f.packets_from_server, f.bytes_from_client,
             f.bytes_from_server, f.last_seen, classifier.conclude(f))
            for f in sorted(table.expire_all(), key=lambda f: f.first_seen)
        ]  # fmt: skip
        ours = replay_file(path, "tls-records", inspect_packets=24)
        assert [
            (r.packets_from_client, r.packets_from_server, r.bytes_from_client,
             r.bytes_from_server, r.last_seen, r.classification)
            for r in ours
        ] == [ref[1:] for ref in reference], path.name  # fmt: skip


def test_fast_path_takes_most_packets_of_a_real_capture() -> None:
    table, classifier = FlowTable(), Classifier()
    fast = slow = 0
    for ts, lt, frame in read_capture(PCAPS / "443-firefox.pcap"):
        if count_decided(table, frame, lt, ts) is not None:
            fast += 1
        else:
            slow += 1
            _reference(table, classifier, frame, lt, ts)
    assert fast > 4 * slow


def test_port_reuse_and_sweeps_in_order() -> None:
    """Deterministic cases the random test may miss: a reused 5-tuple after FIN (SYN starts a new
    flow), and a packet of a live decided flow arriving when the idle sweep is due."""
    sequence = [(ts, lt, f) for ts, (lt, f) in enumerate(_port_reuse())]
    other = [(10.0 + i, lt, f) for i, (_, lt, f) in enumerate(read_capture(PCAPS / "dns.pcap"))]
    late = [(1000.0, lt, f) for _, lt, f in sequence[2:3]]  # the first flow's ACK, 1000 s later
    for frames in (sequence, sequence[:5] + other[:4] + [(120.0, *sequence[4][1:])], late):
        ref_table, fast_table = FlowTable(idle_timeout=100.0), FlowTable(idle_timeout=100.0)
        ref_cls, fast_cls = Classifier(), Classifier()
        for ts, lt, frame in frames:
            _reference(ref_table, ref_cls, frame, lt, float(ts))
            if count_decided(fast_table, frame, lt, float(ts)) is None:
                _reference(fast_table, fast_cls, frame, lt, float(ts))
            assert _snapshot(fast_table) == _snapshot(ref_table)
