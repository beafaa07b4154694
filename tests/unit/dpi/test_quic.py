"""QUIC Initial: RFC vectors, crafted packets (split, reordered, coalesced), nDPI's captures."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedVersion_CH,
)
from scapy.layers.tls.handshake import TLSClientHello

from tspulab.dpi.errors import DecodeError, Malformed, NeedData
from tspulab.dpi.quic import (
    MAX_CRYPTO_BYTES,
    InitialKeys,
    PacketType,
    QuicInitialAssembler,
    QuicVersion,
    matches_2022_quic_rule,
    parse_initial_frames,
    parse_long_header,
)

# --- RFC 9001 Appendix A / RFC 9369 Appendix A ----------------------------------------------------
RFC_DCID = bytes.fromhex("8394c8f03e515708")
# https://www.rfc-editor.org/rfc/rfc9001#appendix-A.2 (same CRYPTO frame in RFC 9369 A.2)
RFC_PLAIN_PAYLOAD = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff"
) + bytes(917)
V1_CLIENT_INITIAL = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934"
)
# https://www.rfc-editor.org/rfc/rfc9001#appendix-A.3 (the server's Initial)
V1_SERVER_INITIAL = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee"
)
# https://www.rfc-editor.org/rfc/rfc9369#appendix-A.2
V2_CLIENT_INITIAL = bytes.fromhex(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
    "a18b2faa745b6fe189cf772a9f84cbfc"
)


# --- a test-side packet protector, checked byte for byte against the RFC vectors ------------------


def _varint(value: int) -> bytes:
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    return (value | 0x80000000).to_bytes(4, "big")


def protect_initial(
    payload: bytes,
    dcid: bytes,
    pn: int,
    version: int = QuicVersion.VERSION_1,
    key_dcid: bytes | None = None,
    scid: bytes = b"",
    pn_len: int = 4,
) -> bytes:
    """Build and protect a client Initial as RFC 9001 §5 says (the inverse of what the DPI does)."""
    keys = InitialKeys.derive(key_dcid or dcid, version)
    type_bits = 1 if version == QuicVersion.VERSION_2 else 0
    first = 0xC0 | type_bits << 4 | (pn_len - 1)
    length = pn_len + len(payload) + 16
    header = (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
        + b"\x00"  # no token
        + (length | 0x4000).to_bytes(2, "big")
        + pn.to_bytes(pn_len, "big")
    )
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(keys.key).encrypt(nonce, payload, header)
    pn_offset = len(header) - pn_len
    sample = sealed[4 - pn_len : 20 - pn_len]
    enc = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    masked = bytearray(header)
    masked[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        masked[pn_offset + i] ^= mask[1 + i]
    return bytes(masked) + sealed


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + _varint(offset) + _varint(len(data)) + data


def client_hello(sni: str = "blocked.example") -> bytes:
    """A TLS 1.3 ClientHello handshake message crafted with scapy."""
    return bytes(
        TLSClientHello(
            ciphers=[0x1301, 0x1302],
            ext=[
                TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())]),
                TLS_Ext_SupportedVersion_CH(versions=[0x0304]),
                TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h3")]),
            ],
        )
    )


def test_protector_reproduces_rfc9001_and_rfc9369_packets() -> None:
    frames = RFC_PLAIN_PAYLOAD
    assert protect_initial(frames, RFC_DCID, 2) == V1_CLIENT_INITIAL
    assert protect_initial(frames, RFC_DCID, 2, QuicVersion.VERSION_2) == V2_CLIENT_INITIAL


# --- keys and headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "client", "server"),
    [
        (  # https://www.rfc-editor.org/rfc/rfc9001#appendix-A.1
            QuicVersion.VERSION_1,
            ("1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
             "9f50449e04a0e810283a1e9933adedd2"),
            ("cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e",
             "c206b8d9b9f0f37644430b490eeaa314"),
        ),
        (  # https://www.rfc-editor.org/rfc/rfc9369#appendix-A.1
            QuicVersion.VERSION_2,
            ("8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
             "45b95e15235d6f45a6b19cbcb0294ba9"),
            ("82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652",
             "edf6d05c83121201b436e16877593c3a"),
        ),
    ],
)  # fmt: skip
def test_initial_keys_match_rfc(
    version: int, client: tuple[str, str, str], server: tuple[str, str, str]
) -> None:
    for is_client, expected in ((True, client), (False, server)):
        keys = InitialKeys.derive(RFC_DCID, version, is_client)
        assert (keys.key.hex(), keys.iv.hex(), keys.hp.hex()) == expected


def test_long_header_of_rfc_packets() -> None:
    v1 = parse_long_header(V1_CLIENT_INITIAL)
    assert (v1.version, v1.dcid, v1.scid, v1.packet_type) == (1, RFC_DCID, b"", PacketType.INITIAL)
    assert (v1.token, v1.pn_offset, v1.end, v1.supported) == (b"", 18, 1200, True)
    v2 = parse_long_header(V2_CLIENT_INITIAL)  # v2 Initial type bits are 0b01 (RFC 9369 §3.2)
    assert (v2.version, v2.packet_type, v2.end) == (QuicVersion.VERSION_2, PacketType.INITIAL, 1200)
    server = parse_long_header(V1_SERVER_INITIAL)
    assert (server.dcid, server.scid.hex()) == (b"", "f067a5502a4262b5")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", NeedData),
        (b"\x40" + bytes(30), Malformed),  # short header
        (V1_CLIENT_INITIAL[:5], NeedData),
        (V1_CLIENT_INITIAL[:1000], NeedData),  # Length runs past the datagram
        (bytes([0x80]) + V1_CLIENT_INITIAL[1:], Malformed),  # fixed bit clear
        (b"\xc0\x00\x00\x00\x01\x15" + bytes(21) + b"\x00\x00\x41\x00" + bytes(300), Malformed),
        (b"\xc0\x00\x00\x00\x01\x00\x00\x00\x05" + bytes(5), Malformed),  # Length 5 < sample
    ],
)
def test_long_header_rejects(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        parse_long_header(data)


def test_unknown_version_parses_invariants_only() -> None:
    gquic = b"\xc3Q050\x08" + bytes(8) + b"\x00" + bytes(100)
    header = parse_long_header(gquic)
    assert (header.version, header.supported, len(header.dcid)) == (0x51303530, False, 8)


# --- the assembler on the RFC vectors -------------------------------------------------------------


@pytest.mark.parametrize("packet", [V1_CLIENT_INITIAL, V2_CLIENT_INITIAL], ids=["v1", "v2"])
def test_rfc_client_initial_yields_client_hello(packet: bytes) -> None:
    progress = QuicInitialAssembler().feed(packet)
    assert progress.outcome == "complete", progress.error
    assert progress.client_hello is not None
    assert progress.client_hello.sni == "example.com"
    assert progress.client_hello.alpn == ("alpn",)
    assert progress.crypto_bytes == 241
    assert progress.dcid == RFC_DCID
    assert progress.ja4 is not None and progress.ja4.startswith("q13d")


def test_server_initial_does_not_decrypt_with_client_keys() -> None:
    assert QuicInitialAssembler().feed(V1_SERVER_INITIAL).outcome == "decrypt-failed"


def test_any_flipped_ciphertext_bit_fails_the_tag() -> None:
    damaged = bytearray(V1_CLIENT_INITIAL)
    damaged[600] ^= 0x01
    assert QuicInitialAssembler().feed(bytes(damaged)).outcome == "decrypt-failed"


def test_completed_flow_keeps_its_result() -> None:
    assembler = QuicInitialAssembler()
    first = assembler.feed(V1_CLIENT_INITIAL)
    assert assembler.feed(b"\x40garbage") is first


# --- crafted: split, reordered, coalesced, other DCID, drafts -------------------------------------

DCID = bytes.fromhex("0011223344556677")


def padded(frames: bytes) -> bytes:
    return frames + bytes(max(0, 1162 - len(frames)))


def test_client_hello_split_across_two_packets_out_of_order() -> None:
    ch = client_hello("split.example")
    cut = 40
    second = protect_initial(padded(crypto_frame(cut, ch[cut:]) + b"\x01"), DCID, 1)
    first = protect_initial(padded(b"\x01" + crypto_frame(0, ch[:cut])), DCID, 0)
    assembler = QuicInitialAssembler()
    progress = assembler.feed(second)
    assert (progress.outcome, progress.crypto_bytes) == ("need-more", 0)
    progress = assembler.feed(first)
    assert progress.outcome == "complete"
    assert progress.client_hello is not None and progress.client_hello.sni == "split.example"


def test_reordered_frames_in_one_packet_with_ping_and_padding_between() -> None:
    ch = client_hello("chaos.example")
    pieces = [crypto_frame(o, ch[o : o + 17]) for o in range(0, len(ch), 17)]
    frames = b"\x00\x00\x01".join(reversed(pieces)) + b"\x02\x05\x00\x00\x00"  # and an ACK
    progress = QuicInitialAssembler().feed(protect_initial(padded(frames), DCID, 0))
    assert progress.outcome == "complete"
    assert progress.client_hello is not None and progress.client_hello.sni == "chaos.example"


def test_coalesced_initials_and_zero_rtt_in_one_datagram() -> None:
    ch = client_hello("coalesced.example")
    zero_rtt = b"\xd1\x00\x00\x00\x01\x08" + DCID + b"\x00" + _varint(30) + bytes(30)
    datagram = (
        protect_initial(crypto_frame(50, ch[50:]), DCID, 1)
        + zero_rtt
        + protect_initial(crypto_frame(0, ch[:50]), DCID, 2)
        + bytes(200)  # trailing padding after the last packet
    )
    progress = QuicInitialAssembler().feed(datagram)
    assert progress.outcome == "complete", progress.error
    assert progress.client_hello is not None and progress.client_hello.sni == "coalesced.example"


def test_second_initial_with_new_dcid_keeps_first_keys() -> None:
    """RFC 9001 §5.2: keys come from the first Initial's DCID, even after the DCID changes."""
    ch = client_hello("newdcid.example")
    other = bytes.fromhex("a1a2a3a4")
    first = protect_initial(padded(crypto_frame(0, ch[:30])), DCID, 0)
    second = protect_initial(padded(crypto_frame(30, ch[30:])), other, 1, key_dcid=DCID)
    assembler = QuicInitialAssembler()
    assert assembler.feed(first).outcome == "need-more"
    progress = assembler.feed(second)
    assert (progress.outcome, progress.dcid) == ("complete", DCID)


@pytest.mark.parametrize("version", [0xFF00001D, 0xFF00001C, 0xFF000022])
def test_drafts_decrypt(version: int) -> None:
    packet = protect_initial(padded(crypto_frame(0, client_hello())), DCID, 0, version)
    progress = QuicInitialAssembler().feed(packet)
    assert (progress.outcome, progress.version) == ("complete", version)


def test_unknown_frame_stops_but_keeps_earlier_crypto() -> None:
    ch = client_hello()
    frames = parse_initial_frames(crypto_frame(0, ch) + b"\x08" + bytes(20))  # 0x08 = STREAM
    assert frames.crypto == ((0, ch),) and frames.stopped_at == 0x08


def test_crypto_beyond_limit_and_wrong_handshake_type_are_malformed() -> None:
    far = protect_initial(padded(crypto_frame(MAX_CRYPTO_BYTES, b"x")), DCID, 0)
    assert QuicInitialAssembler().feed(far).outcome == "malformed"
    server_hello = protect_initial(padded(crypto_frame(0, b"\x02\x00\x00\x04abcd")), DCID, 0)
    assert QuicInitialAssembler().feed(server_hello).outcome == "malformed"


def test_truncated_frames_are_malformed_not_raised() -> None:
    packet = protect_initial(b"\x06\x00\x44\x00" + bytes(1100), DCID, 0)  # CRYPTO len > packet
    assert QuicInitialAssembler().feed(packet).outcome == "malformed"


# --- the March-2022 rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "payload", "expected"),
    [
        (443, b"\xc0\x00\x00\x00\x01" + bytes(995), False),  # 1000 bytes: below the threshold
        (443, b"\xc0\x00\x00\x00\x01" + bytes(996), True),  # 1001 bytes: the smallest trigger
        (443, b"\x00\x00\x00\x00\x01" + bytes(996), True),  # the first byte is not looked at
        (444, b"\xc0\x00\x00\x00\x01" + bytes(1200), False),
        (443, b"\xc0\xff\x00\x00\x1d" + bytes(1200), False),  # draft-29 passed until 2022-03-19
        (443, b"\xc0\x6b\x33\x43\xcf" + bytes(1200), False),
    ],
)
def test_2022_rule(port: int, payload: bytes, expected: bool) -> None:
    assert matches_2022_quic_rule(port, payload) is expected


# --- robustness -----------------------------------------------------------------------------------

OUTCOMES = {"complete", "need-more", "not-initial", "decrypt-failed", "malformed"}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=1500))
def test_random_bytes_never_raise(data: bytes) -> None:
    progress = QuicInitialAssembler().feed(data)
    assert progress.outcome in OUTCOMES - {"complete"}
    with contextlib.suppress(DecodeError):
        parse_long_header(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=1300), st.sampled_from([1, 0x6B3343CF, 0xFF00001D]))
def test_random_bodies_behind_a_valid_header_never_raise(body: bytes, version: int) -> None:
    data = b"\xc3" + version.to_bytes(4, "big") + b"\x08" + DCID + b"\x00\x00" + body
    assert QuicInitialAssembler().feed(data).outcome in OUTCOMES - {"complete"}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_plaintext_frames_raise_only_decode_errors(plain: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_initial_frames(plain)


def test_truncated_initial_is_malformed_and_fake_initial_does_not_fix_keys() -> None:
    assert QuicInitialAssembler().feed(V1_CLIENT_INITIAL[:900]).outcome == "malformed"
    fake = b"\xc0\x00\x00\x00\x01\x08" + bytes(8) + b"\x00\x00\x44\x9e" + bytes(1182)
    assembler = QuicInitialAssembler()
    assert assembler.feed(fake).outcome == "decrypt-failed"  # a zapret-style fake first packet
    progress = assembler.feed(V1_CLIENT_INITIAL)
    assert (progress.outcome, progress.dcid) == ("complete", RFC_DCID)
