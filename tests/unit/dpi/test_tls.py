"""TLS ClientHello parsing, JA3 and JA4: an RFC vector, crafted edge cases, typed errors."""

from __future__ import annotations

import hashlib

import pytest
from crafting import client_hello, unknown_extension

from tspulab.dpi.errors import Malformed, NeedData
from tspulab.dpi.tls import (
    ClientHello,
    is_grease,
    ja4_fingerprint,
    normalise_hostname,
    parse_client_hello_message,
    parse_record_header,
)

# RFC 8448 §3 (Simple 1-RTT Handshake), the client's ClientHello handshake message.
RFC8448_CLIENT_HELLO = bytes.fromhex(
    "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef"
    "6283024dece7000006130113031302010000910000000b000900000673657276"
    "6572ff01000100000a00140012001d0017001800190100010101020103010400"
    "230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e"
    "51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603"
    "020308040805080604010501060102010402050206020202002d00020101001c"
    "00024001"
)


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_rfc8448_client_hello_fields() -> None:
    ch = parse_client_hello_message(RFC8448_CLIENT_HELLO)
    assert ch.legacy_version == 0x0303
    assert ch.random.hex().startswith("cb34ecb1")
    assert ch.session_id == b""
    assert ch.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert ch.compression_methods == b"\x00"
    assert [t for t, _ in ch.extensions] == [0, 0xFF01, 10, 35, 51, 43, 13, 45, 28]
    assert ch.sni == "server"
    assert ch.supported_versions == (0x0304,)
    assert ch.supported_groups == (0x1D, 0x17, 0x18, 0x19, 0x100, 0x101, 0x102, 0x103, 0x104)
    assert ch.signature_algorithms[:3] == (0x0403, 0x0503, 0x0603)
    assert len(ch.signature_algorithms) == 15
    assert ch.alpn == () and not ch.has_ech


def test_rfc8448_ja3() -> None:
    ch = parse_client_hello_message(RFC8448_CLIENT_HELLO)
    expected = "771,4865-4867-4866,0-65281-10-35-51-43-13-45-28,29-23-24-25-256-257-258-259-260,"
    assert ch.ja3 == expected
    assert ch.ja3_hash == hashlib.md5(expected.encode()).hexdigest()


def test_rfc8448_ja4_follows_the_foxio_recipe() -> None:
    ch = parse_client_hello_message(RFC8448_CLIENT_HELLO)
    sig = ",".join(f"{s:04x}" for s in ch.signature_algorithms)
    # a: TCP, TLS 1.3 (supported_versions), SNI present, 3 ciphers, 9 extensions, no ALPN.
    part_b = _sha12("1301,1302,1303")
    part_c = _sha12("000a,000d,001c,0023,002b,002d,0033,ff01_" + sig)  # SNI (0) excluded, sorted
    assert ch.ja4 == f"t13d030900_{part_b}_{part_c}"
    assert ja4_fingerprint(ch, "q").startswith("q13d0309")


def test_grease_values_are_ignored_by_ja3_and_ja4() -> None:
    plain = parse_client_hello_message(client_hello())
    greased = parse_client_hello_message(client_hello(extra=[unknown_extension(0x2A2A, b"")]))
    assert [t for t, _ in greased.extensions][-1] == 0x2A2A
    assert greased.ja3 == plain.ja3 and greased.ja4 == plain.ja4
    assert is_grease(0xFAFA) and not is_grease(0x0A1A)


def test_sni_is_kept_as_sent_and_normalised_on_request() -> None:
    ch = parse_client_hello_message(client_hello(sni="WwW.Example.COM."))
    assert ch.sni == "WwW.Example.COM."
    assert normalise_hostname(ch.sni) == "www.example.com"


def test_duplicate_server_name_first_wins_both_kept() -> None:
    body = b"\x00\x0e\x00\x00\x0bsecond.test"
    ch = parse_client_hello_message(
        client_hello(sni="first.test", extra=[unknown_extension(0, body)])
    )
    assert [t for t, _ in ch.extensions].count(0) == 2
    assert ch.sni == "first.test"


def test_garbage_in_unknown_extension_is_opaque() -> None:
    ch = parse_client_hello_message(client_hello(extra=[unknown_extension(0x1234, b"\xff" * 40)]))
    assert ch.sni == "example.com" and (0x1234, b"\xff" * 40) in ch.extensions


def test_garbage_in_server_name_is_malformed() -> None:
    with pytest.raises(Malformed, match="server_name"):
        parse_client_hello_message(
            client_hello(sni=None, extra=[unknown_extension(0, b"\x00\x09abc")])
        )


def test_ech_and_alpn() -> None:
    ch = parse_client_hello_message(
        client_hello(extra=[unknown_extension(0xFE0D, b"\x00" * 8)], alpn=("http/1.1",))
    )
    assert ch.has_ech and ch.alpn == ("http/1.1",)
    assert ch.ja4[8:10] == "h1"  # JA4: first and last character of the first ALPN value


def test_non_alphanumeric_alpn_uses_hex_in_ja4() -> None:
    ch = parse_client_hello_message(client_hello(alpn=("\x01ab\x02",)))
    assert ch.ja4[8:10] == "02"  # hex "016162" + "02": first and last hex digit


def test_no_sni_gives_i_in_ja4() -> None:
    ch = parse_client_hello_message(client_hello(sni=None))
    assert ch.sni is None and ch.ja4[3] == "i"


def test_every_truncation_is_need_data() -> None:
    msg = client_hello()
    for cut in range(len(msg)):
        with pytest.raises(NeedData):
            parse_client_hello_message(msg[:cut])


@pytest.mark.parametrize(
    ("offset", "value", "what"),
    [
        (38, 33, "session_id"),  # session_id length 33 > 32
        (4 + 35, 0xFF, "cipher_suites"),  # cipher_suites length high byte: runs past
        (4 + 38 + 6 + 2, 0xFF, "extension"),  # extensions block length no longer matches
    ],
)
def test_over_long_lengths_are_malformed(offset: int, value: int, what: str) -> None:
    msg = bytearray(client_hello())
    msg[offset] = value
    with pytest.raises(Malformed):
        parse_client_hello_message(bytes(msg))


def test_not_a_client_hello() -> None:
    with pytest.raises(Malformed, match="not ClientHello"):
        parse_client_hello_message(b"\x02\x00\x00\x04abcd")


def test_record_header() -> None:
    header = parse_record_header(b"\x16\x03\x01\x00\x10" + b"\x00" * 16)
    assert (header.content_type, header.version, header.length) == (22, 0x0301, 16)
    with pytest.raises(Malformed):
        parse_record_header(b"\x47\x45\x54\x20\x2f")  # "GET /"
    with pytest.raises(Malformed):
        parse_record_header(b"\x16\x03\x01\x00\x00")  # zero length
    with pytest.raises(NeedData):
        parse_record_header(b"\x16\x03")


def test_client_hello_is_frozen() -> None:
    ch: ClientHello = parse_client_hello_message(RFC8448_CLIENT_HELLO)
    with pytest.raises(AttributeError):
        ch.sni = "other"  # type: ignore[misc]
