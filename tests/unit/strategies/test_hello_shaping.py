"""ClientHello edits and the write plans of the stream strategies, checked with scapy's TLS
parser as the independent reader."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

from tspulab.strategies import hello
from tspulab.strategies.shaping import Write, plan_first_write
from tspulab.strategies.spec import parse

NAME = "twitter.com"


def _hello(size: int | None = None) -> bytes:
    return hello.build_client_hello(NAME, size=size, seed=bytes(range(32)))


def _scapy_sni(record: bytes) -> str:
    ch = TLS(record).msg[0]
    assert isinstance(ch, TLSClientHello)
    ext = next(e for e in ch.ext if e.type == 0)
    return ext.servernames[0].servername.decode()


def _records(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        ctype, _, length = struct.unpack_from("!BHH", data, pos)
        out.append((ctype, data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    assert pos == len(data)
    return out


def test_the_decoy_hello_is_a_clienthello_scapy_reads_with_its_name() -> None:
    record = _hello()
    assert _scapy_sni(record) == NAME
    lay = hello.layout(record)
    assert record[lay.name_off : lay.name_off + lay.name_len] == NAME.encode()


def test_another_host_name_keeps_every_length_consistent() -> None:
    record = hello.with_host_name(_hello(), "www.example.com")
    assert _scapy_sni(record) == "www.example.com"
    assert len(record) == len(_hello()) + len("www.example.com") - len(NAME)
    assert hello.layout(record).record_len == len(record) - 5


@pytest.mark.parametrize("size", [600, 1600, 4000])
def test_padding_grows_the_record_to_the_size(size: int) -> None:
    record = _hello(size)
    assert len(record) == size
    assert _scapy_sni(record) == NAME
    assert any(e[0] == hello.EXT_PADDING for e in hello.layout(record).extensions)
    assert (
        hello.pad_to(record, size + 100)[:3] == record[:3]
        and len(hello.pad_to(record, size + 100)) == size + 100
    )


def test_split_records_reassemble_to_the_same_handshake_message() -> None:
    record = _hello()
    out = hello.split_records(record, [1, 50])
    recs = _records(out)
    assert [len(b) for _, b in recs] == [1, 49, len(record) - 5 - 50]
    assert all(t == 22 for t, _ in recs)
    assert b"".join(b for _, b in recs) == record[5:]
    with pytest.raises(ValueError, match="no cut inside"):
        hello.split_records(record, [0, len(record)])


def test_a_non_hello_is_refused() -> None:
    with pytest.raises(hello.NotAClientHello):
        hello.layout(b"GET / HTTP/1.1\r\n\r\n")
    assert hello.sni_middle(b"GET / HTTP/1.1\r\n\r\n") is None


def test_split_at_the_sni_cuts_inside_the_name() -> None:
    record = _hello()
    writes = plan_first_write(record, parse("split:sni").steps)
    assert len(writes) == 2 and b"".join(w.data for w in writes) == record
    name_at = record.find(NAME.encode())
    assert name_at < len(writes[0].data) < name_at + len(NAME)
    assert NAME.encode() not in writes[0].data and NAME.encode() not in writes[1].data


def test_multisplit_disorder_and_oob_plans() -> None:
    record = _hello()
    writes = plan_first_write(record, parse("split:1+disorder:sni:ttl=2").steps)
    assert len(writes[0].data) == 1 and len(writes) == 3
    assert writes[1].ttl == 2 and writes[0].ttl is None and writes[2].ttl is None
    oob = plan_first_write(record, parse("oob:5:byte=0x7a").steps)
    assert oob[0] == Write(record[:5], urgent=0x7A) and oob[1] == Write(record[5:])


def test_tlsrec_and_prefix_reframe_without_changing_the_message() -> None:
    record = _hello()
    writes = plan_first_write(record, parse("prefix:ccs+tlsrec:1+tlsrec:sni").steps)
    data = b"".join(w.data for w in writes)
    recs = _records(data)
    assert recs[0] == (20, b"\x01")  # ChangeCipherSpec first
    assert data[1:3] == record[1:3]  # with the ClientHello record's version
    assert recs[1] == (22, record[5:6])  # tlsrec:1: the type byte alone
    assert b"".join(b for t, b in recs[1:]) == record[5:]
    assert len(recs) == 4 and NAME.encode() not in data


def test_tlsrec_then_split_at_the_sni_finds_the_name_after_reframing() -> None:
    record = _hello()
    writes = plan_first_write(record, parse("tlsrec:sni+split:sni").steps)
    assert len(writes) == 2
    data = b"".join(w.data for w in writes)
    assert len(data) == len(record) + 5


def test_a_non_hello_first_write_gets_only_absolute_cuts() -> None:
    notes: list[str] = []
    data = b"GET / HTTP/1.1\r\nHost: twitter.com\r\n\r\n"
    writes = plan_first_write(data, parse("split:4+tlsrec:1+split:sni").steps, notes)
    assert writes[0].data == b"GET " and b"".join(w.data for w in writes) == data
    assert any("tlsrec" in n for n in notes)
