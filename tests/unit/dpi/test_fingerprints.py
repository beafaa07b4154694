"""Fingerprints of VPN and tunnel protocols (OpenVPN, WireGuard, DTLS, SSH): nDPI's real captures,
crafted packets (scapy), and random data."""

from __future__ import annotations

import collections

import pytest
from scapy.contrib.wireguard import (
    Wireguard,
    WireguardCookieReply,
    WireguardInitiation,
    WireguardResponse,
    WireguardTransport,
)
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello

from tests.unit.dpi.ndpi_captures import (
    ALL_CAPTURES,
    random_payloads,
    segments,
)
from tspulab.dpi.fingerprints import dtls, openvpn, ssh, wireguard

# --- OpenVPN --------------------------------------------------------------------------------------


def openvpn_flows(name: str) -> dict[tuple[str, int, str, int], list[openvpn.OpenVPNMatch | None]]:
    """Per flow: [first client reset match, first server reset match]."""
    flows: dict[tuple[str, int, str, int], list[openvpn.OpenVPNMatch | None]] = {}
    for seg in segments(name):
        matcher = openvpn.match_udp if seg.udp else openvpn.match_tcp
        found = matcher(seg.payload, seg.from_client)
        slot = flows.setdefault(seg.flow, [None, None])
        index = 0 if seg.from_client else 1
        if found is not None and slot[index] is None:
            slot[index] = found
    return flows


@pytest.mark.parametrize(
    ("name", "client_resets", "confirmed", "wrappings"),
    [
        # 10 nDPI flows; one (69.197.143.179:443 -> 10.0.2.15:60201) is a one-way capture of
        # the server side only, so its "initiator" sends a server reset: not a client match.
        ("openvpn.pcap", 9, 8, {"none", "tls-auth", "tls-crypt"}),
        ("openvpn-tlscrypt.pcap", 1, 1, {"tls-crypt"}),  # BSD loopback linktype, V3 reset
        ("openvpn_nohmac_tcp.pcapng", 1, 1, {"none"}),
        ("443-opvn.pcap", 1, 1, {"tls-auth"}),
    ],
)
def test_openvpn_captures(
    name: str, client_resets: int, confirmed: int, wrappings: set[str]
) -> None:
    flows = openvpn_flows(name)
    clients = [c for c, _ in flows.values() if c is not None]
    assert len(clients) == client_resets
    assert {c.wrapping for c in clients} == wrappings
    pairs = [(c, s) for c, s in flows.values() if c is not None and s is not None]
    assert sum(openvpn.confirms_handshake(c, s) for c, s in pairs) == confirmed


def test_obfuscated_openvpn() -> None:
    """openvpn_obfuscated.pcapng (NordVPN) holds three flows. The XOR-scrambled ones (TCP to 465,
    UDP to 1214) match nothing, in either direction. The TCP flow to 443 is OpenVPN whose client
    reset is cut into 9-byte segments: no single client segment matches, but the reassembled
    stream does (tls-auth, SHA512) and the server's reset, sent in clear, acks its session id."""
    stream = b""
    server: openvpn.OpenVPNMatch | None = None
    for seg in segments("openvpn_obfuscated.pcapng"):
        matcher = openvpn.match_udp if seg.udp else openvpn.match_tcp
        sender_port = seg.flow[1] if seg.from_client else seg.flow[3]
        if 48072 not in (seg.flow[1], seg.flow[3]):
            assert matcher(seg.payload, True) is None and matcher(seg.payload, False) is None
        elif sender_port == 48072:  # the real client of this flow
            assert matcher(seg.payload, True) is None
            stream += seg.payload
        elif server is None:
            server = matcher(seg.payload, False)
    client = openvpn.match_tcp(stream, True)
    assert client is not None and (client.wrapping, client.hmac_size) == ("tls-auth", 64)
    assert server is not None and openvpn.confirms_handshake(client, server)


SID_C, SID_S = bytes.fromhex("1122334455667788"), bytes.fromhex("99aabbccddeeff00")
NOW = (0x6500_0000).to_bytes(4, "big")


def test_openvpn_crafted_plain_tls_auth_and_tcp() -> None:
    client = b"\x38" + SID_C + b"\x00" + bytes(4)
    server = b"\x40" + SID_S + b"\x01" + bytes(4) + SID_C + bytes(4)
    c, s = openvpn.match_udp(client, True), openvpn.match_udp(server, False)
    assert c is not None and s is not None and openvpn.confirms_handshake(c, s)
    assert (c.session_id, s.remote_session_id, c.detail) == (
        SID_C,
        SID_C,
        "openvpn udp client reset none",
    )
    other = b"\x40" + SID_S + b"\x01" + bytes(4) + SID_S + bytes(4)
    assert not openvpn.confirms_handshake(c, openvpn.match_udp(other, False))  # type: ignore[arg-type]
    hmac = bytes(range(20))
    auth = b"\x38" + SID_C + hmac + b"\x00\x00\x00\x01" + NOW + b"\x00" + bytes(4)
    found = openvpn.match_udp(auth, True)
    assert found is not None and (found.wrapping, found.hmac_size) == ("tls-auth", 20)
    assert openvpn.match_tcp(len(auth).to_bytes(2, "big") + auth, True) == openvpn.OpenVPNMatch(
        found.opcode, 0, SID_C, "tls-auth", 20, None, "tcp"
    )
    with_tlv = client + b"\x00\x01\x00\x02\x00\x01"  # 2.6 early-negotiation TLV
    assert openvpn.match_udp(with_tlv, True) is not None


@pytest.mark.parametrize(
    ("payload", "from_client"),
    [
        (b"\x39" + SID_C + b"\x00" + bytes(4), True),  # key id 1
        (b"\x38" + SID_C + b"\x00" + bytes(4), False),  # client reset from the responder
        (b"\x40" + SID_S + b"\x01" + bytes(4) + SID_C + bytes(4), True),  # and the reverse
        (b"\x20" + SID_C + b"\x00" + bytes(4), True),  # P_CONTROL_V1: not a session start
        (b"\x38" + SID_C + b"\x00" + b"\x00\x00\x00\x07", True),  # message packet id 7
        (b"\x38" + SID_C + b"\x00" + bytes(4) + b"\x00\x01\x00\x09", True),  # TLV overruns
        (b"\x38" + SID_C + bytes(20) + b"\x00\x00\x00\x02" + NOW + b"\x00" + bytes(4), True),
    ],
)
def test_openvpn_crafted_rejects(payload: bytes, from_client: bool) -> None:
    assert openvpn.match_udp(payload, from_client) is None
    assert openvpn.match_tcp(len(payload).to_bytes(2, "big") + payload, from_client) is None


def test_openvpn_tcp_length_prefix_must_fit() -> None:
    client = b"\x38" + SID_C + b"\x00" + bytes(4)
    assert openvpn.match_tcp(b"\x00\x0e" + client, True) is not None
    assert openvpn.match_tcp(b"\x00\x0f" + client, True) is None  # claims a byte it lacks
    assert openvpn.match_tcp(b"\x00\x0e" + client + b"\x00\x16\x28", True) is not None


def test_openvpn_random_false_positive_rate() -> None:
    """Worst case: random payloads whose first byte is already a client reset opcode (0x38).
    Theory (module docstring): plain < 2^-47, tls-auth < 2^-39, tls-crypt about 2^-16 (packet id)
    x 0.34 (time window) x 0.17 (length window for 14..400 bytes) = 9e-7 per packet, i.e. 0.09
    expected in 100,000. Measured with a fixed seed: 0."""
    payloads = random_payloads(7, 100_000, range(14, 401), first=0x38)
    hits = sum(openvpn.match_udp(p, True) is not None for p in payloads)
    assert hits <= 1


# --- WireGuard ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wireguard.pcap", {1: 2, 2: 2, 4: 48}),  # every UDP payload, incl. 1452-byte MTU packets
        ("mullvad_wireguard.pcap", {4: 10}),
        ("cloudflare-warp.pcap", {}),  # WARP's variant: 0xc1/0xc2/0xc4 types, client id bytes
    ],
)
def test_wireguard_captures(name: str, expected: dict[int, int]) -> None:
    kinds: collections.Counter[int] = collections.Counter()
    for seg in segments(name):
        if seg.udp:
            found = wireguard.match(seg.payload, seg.from_client)
            if found is not None:
                kinds[found.message_type] += 1
    assert dict(kinds) == expected


def test_wireguard_scapy_messages() -> None:
    crafted = {
        wireguard.MessageType.HANDSHAKE_INITIATION: Wireguard()
        / WireguardInitiation(sender_index=7),
        wireguard.MessageType.HANDSHAKE_RESPONSE: Wireguard() / WireguardResponse(sender_index=7),
        wireguard.MessageType.COOKIE_REPLY: Wireguard() / WireguardCookieReply(receiver_index=7),
        wireguard.MessageType.TRANSPORT_DATA: Wireguard()
        / WireguardTransport(receiver_index=7, encrypted_encapsulated_packet=bytes(48)),
    }
    for kind, packet in crafted.items():
        found = wireguard.match(bytes(packet), True)
        assert found is not None and (found.message_type, found.sender_index) == (kind, 7)
    init = bytes(crafted[wireguard.MessageType.HANDSHAKE_INITIATION])
    assert wireguard.match(init[:147], True) is None
    assert wireguard.match(init[:1] + b"\x00\x01\x00" + init[4:], True) is None  # reserved != 0
    assert wireguard.match(bytes([4, 0, 0, 0]) + bytes(36), True) is None  # 40: not 16k


def test_wireguard_random_initiations_never_match() -> None:
    """148 random bytes with type 1 match only if the three reserved bytes are zero: 2^-24, i.e.
    0.006 expected in 100,000."""
    payloads = random_payloads(11, 100_000, range(148, 149), first=1)
    assert sum(wireguard.match(p, True) is not None for p in payloads) == 0


# --- DTLS -----------------------------------------------------------------------------------------


def dtls_client_hello(
    sni: str = "snowflake.example", cookie: bytes = b"", fragment: tuple[int, int] | None = None
) -> bytes:
    """A DTLS 1.2 ClientHello: scapy's TLS ClientHello body with the cookie and DTLS headers."""
    tls = bytes(
        TLSClientHello(
            version=0xFEFD,
            ciphers=[0xC02B, 0xC02F],
            ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())])],
        )
    )
    body = tls[4:]
    sid_end = 2 + 32 + 1 + body[34]
    body = body[:sid_end] + bytes([len(cookie)]) + cookie + body[sid_end:]
    offset, length = fragment or (0, len(body))
    chunk = body[offset : offset + length]
    handshake = (
        b"\x01"
        + len(body).to_bytes(3, "big")
        + b"\x00\x00"
        + offset.to_bytes(3, "big")
        + len(chunk).to_bytes(3, "big")
        + chunk
    )
    return b"\x16\xfe\xff" + bytes(8) + len(handshake).to_bytes(2, "big") + handshake


def test_dtls_client_hello_is_parsed_with_the_tls_parser() -> None:
    found = dtls.match_client_hello(dtls_client_hello(cookie=b"\xaa" * 20))
    assert found is not None and found.client_hello is not None
    assert (found.record_version, found.client_version, found.cookie) == (
        0xFEFF,
        0xFEFD,
        b"\xaa" * 20,
    )
    assert found.client_hello.sni == "snowflake.example"
    assert found.client_hello.cipher_suites == (0xC02B, 0xC02F)
    assert found.ja4 is not None and found.ja4.startswith("d")


def test_dtls_fragment_and_rejects() -> None:
    fragment = dtls.match_client_hello(dtls_client_hello(fragment=(0, 40)))
    assert fragment is not None and fragment.fragmented and fragment.client_hello is None
    good = dtls_client_hello()
    assert dtls.match_client_hello(b"\x16\x03\x03" + good[3:]) is None  # TLS, not DTLS
    assert dtls.match_client_hello(good[:3] + b"\x00\x01" + good[5:]) is None  # epoch 1
    assert dtls.match_client_hello(good[:13] + b"\x02" + good[14:]) is None  # ServerHello
    assert dtls.match_client_hello(good[:-3]) is None  # truncated


_DTLS_CAPTURES = ("anyconnect-vpn.pcap",)


@pytest.mark.parametrize("name", [n for n in ALL_CAPTURES if n not in _DTLS_CAPTURES])
def test_no_dtls_in_captures_without_dtls(name: str) -> None:
    """Only anyconnect-vpn.pcap holds DTLS (Cisco's); in the others (signal.pcap is TCP,
    telegram.pcap's UDP is MTProto and VoIP) every match would be a false positive."""
    assert not any(dtls.match_client_hello(s.payload) for s in segments(name) if s.udp)
    assert not any(dtls.match_records(s.payload) for s in segments(name) if s.udp)


def test_cisco_anyconnect_dtls_bad_version() -> None:
    """AnyConnect speaks DTLS with record and client version 0x0100 (OpenSSL DTLS1_BAD_VER): its
    ClientHello matches, and so does every later datagram as a run of DTLS records."""
    udp = [s.payload for s in segments("anyconnect-vpn.pcap") if s.udp and s.flow[3] == 443]
    hellos = [m for m in map(dtls.match_client_hello, udp) if m is not None]
    assert hellos and all(m.record_version == 0x0100 for m in hellos)
    assert sum(dtls.match_records(p) == 0x0100 for p in udp) == len(udp)


# --- SSH ------------------------------------------------------------------------------------------


def test_ssh_capture_banners() -> None:
    banners = [(s.from_client, ssh.match(s.payload)) for s in segments("ssh.pcap")]
    found = [(side, m) for side, m in banners if m is not None]
    assert len(found) == 4  # client and server banner of both connections
    assert {side for side, _ in found} == {True, False}
    assert all(m.proto_version == "2.0" for _, m in found)


def test_ssh_crafted() -> None:
    assert ssh.match(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n") == ssh.SSHMatch(
        "2.0", "OpenSSH_9.6p1", "Ubuntu-3ubuntu13"
    )
    assert ssh.match(b"Welcome\r\nSSH-1.99-Cisco-1.25\r\n") == ssh.SSHMatch(
        "1.99", "Cisco-1.25", ""
    )
    assert ssh.match(b"SSH-3.0-x\r\n") is None
    assert ssh.match(b"SSH-2.0-\r\n") is None
    assert ssh.match(b"\x00\x01binary\nSSH-2.0-x\r\n") is None
    assert ssh.match(b"SSH-2.0-" + b"a" * 300 + b"\r\n") is None
