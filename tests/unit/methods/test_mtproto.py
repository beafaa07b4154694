"""The MTProto method's own pieces: the obfuscated2 transport, the framing, and the lab's data
centre and proxy with the subscriber's client on loopback."""

from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tspulab.methods.mtproto_client import fetch, mtproto_probe, proxy_link
from tspulab.methods.mtproto_transport import (
    ABRIDGED,
    INTERMEDIATE,
    FrameReader,
    TransportError,
    client_handshake,
    echo_request,
    frame,
    parse_echo_request,
    random_init,
    server_handshake,
)

SECRET = bytes.fromhex("0123456789abcdef0123456789abcdef")


def _ctr_by_hand(key: bytes, block: bytes, data: bytes) -> bytes:
    """AES-CTR from AES-ECB blocks of a big-endian 128-bit counter: the stream OpenSSL's
    AES-256-CTR (Telegram's clients, mtprotoproxy) produces, written independently."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    counter = int.from_bytes(block, "big")
    stream = b""
    while len(stream) < len(data):
        stream += ecb.update(((counter) % (1 << 128)).to_bytes(16, "big"))
        counter += 1
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


@pytest.mark.parametrize("tag", [ABRIDGED, INTERMEDIATE], ids=["abridged", "intermediate"])
@pytest.mark.parametrize("secret", [None, SECRET], ids=["dc", "proxy"])
def test_init_follows_the_published_layout(tag: bytes, secret: bytes | None) -> None:
    wire, _ = client_handshake(tag, secret=secret, dc=-3)
    assert len(wire) == 64
    # The server's key: bytes 8..40 (with the secret: SHA-256 of them and the secret), the
    # counter block bytes 40..56; decrypting the whole init gives the tag at 56 and the DC at 60.
    key = wire[8:40] if secret is None else hashlib.sha256(wire[8:40] + secret).digest()
    plain = _ctr_by_hand(key, wire[40:56], wire)
    assert plain[56:60] == tag
    assert struct.unpack("<h", plain[60:62]) == (-3,)
    assert wire[56:60] != tag  # the tag only travels encrypted


def test_both_directions_and_the_reversed_keys() -> None:
    wire, client = client_handshake(INTERMEDIATE, secret=SECRET, dc=2)
    server = server_handshake(wire, secret=SECRET)
    assert (server.tag, server.dc) == (INTERMEDIATE, 2)
    assert server.decrypt(client.encrypt(b"hello dc")) == b"hello dc"
    assert client.decrypt(server.encrypt(b"hello client")) == b"hello client"
    # The server's sending key is the reversed 48 bytes (key then block), with the secret mixed in.
    wire2, client2 = client_handshake(ABRIDGED, secret=SECRET)
    server2 = server_handshake(wire2, secret=SECRET)
    sent = server2.encrypt(b"x" * 20)
    rev2 = wire2[8:56][::-1]
    assert _ctr_by_hand(hashlib.sha256(rev2[:32] + SECRET).digest(), rev2[32:48], sent) == b"x" * 20
    assert client2.decrypt(sent) == b"x" * 20


def test_a_wrong_secret_or_no_secret_is_refused() -> None:
    refused = 0
    for _ in range(50):
        wire, _ = client_handshake(ABRIDGED, secret=bytes(16))
        try:
            server_handshake(wire, secret=SECRET)
        except TransportError:
            refused += 1
    assert refused == 50  # a random tag is one of three in 2^32 / 3 draws
    with pytest.raises(TransportError, match="64"):
        server_handshake(b"\x00" * 10)


def test_inits_avoid_the_reserved_starts() -> None:
    for _ in range(3000):
        init = random_init(ABRIDGED)
        assert init[0] != 0xEF
        assert init[:4] not in (b"HEAD", b"POST", b"GET ", b"OPTI", b"\xdd" * 4, b"\xee" * 4)
        assert init[:4] != b"\x16\x03\x01\x02" and init[4:8] != bytes(4)


@pytest.mark.parametrize("size", [0, 4, 4 * 126, 4 * 127, 4 * 70000])
def test_abridged_frames(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    framed = frame(ABRIDGED, payload)
    assert len(framed) - size == (1 if size // 4 < 127 else 4)
    reader = FrameReader(ABRIDGED)
    got = [p for i in range(0, len(framed), 1000) for p in reader.feed(framed[i : i + 1000])]
    assert got == [payload]
    with pytest.raises(TransportError):
        frame(ABRIDGED, b"abc")


def test_intermediate_frames_split_anywhere() -> None:
    stream = frame(INTERMEDIATE, b"one") + frame(INTERMEDIATE, b"") + frame(INTERMEDIATE, b"3" * 9)
    reader = FrameReader(INTERMEDIATE)
    assert [p for b in stream for p in reader.feed(bytes([b]))] == [b"one", b"", b"3" * 9]
    with pytest.raises(TransportError, match="limit"):
        FrameReader(INTERMEDIATE, limit=100).feed(struct.pack("<I", 101))


def test_echo_request() -> None:
    assert parse_echo_request(echo_request(12345, 7)) == (12345, 7)
    with pytest.raises(TransportError):
        parse_echo_request(b"\x01" + echo_request(5)[1:])  # an auth key: not the lab's request
    with pytest.raises(TransportError):
        parse_echo_request(b"short")


# --- the lab's data centre and proxy, on loopback -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    log = tmp / f"{args[0]}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tspulab.methods.mtproto_dc", *args],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    for _ in range(200):
        if "listening on" in log.read_text():
            return proc
        if proc.poll() is not None:
            break
        subprocess.run(["sleep", "0.05"], check=True)
    proc.kill()
    raise AssertionError(log.read_text())


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("mtproto")
    dc_port, proxy_port = _free_port(), _free_port()
    dc = _start(tmp, "dc", "--listen", f"127.0.0.1:{dc_port}")
    px = _start(
        tmp, "proxy", "--listen", f"127.0.0.1:{proxy_port}", "--secret", SECRET.hex(),
        "--dc", f"127.0.0.1:{dc_port}",
    )  # fmt: skip
    yield proxy_port, tmp
    for proc in (px, dc):
        proc.kill()
        proc.wait()


def _link(port: int, transport: str, secret: bytes = SECRET) -> str:
    return proxy_link(
        "127.0.0.1", port, secret.hex(), transport=transport, dc=2, domains=("web.telegram.org",)
    )


@pytest.mark.parametrize("transport", ["abridged", "intermediate"])
@pytest.mark.parametrize("size", [0, 4096, 3 * 1024 * 1024 + 4])
def test_a_request_through_the_proxy(proxy: tuple[int, Path], transport: str, size: int) -> None:
    result = fetch(_link(proxy[0], transport), size, 10.0)
    assert result["ok"] and result["outcome"] == "ok", result
    assert result["size"] == size
    assert 0 < result["ttfb_s"] <= result["total_s"]


def test_a_client_with_another_secret_gets_nothing(proxy: tuple[int, Path]) -> None:
    result = fetch(_link(proxy[0], "abridged", bytes(16)), 4096, 3.0)
    assert not result["ok"] and result["outcome"] == "closed" and result["size"] == 0
    assert "unknown protocol tag" in (proxy[1] / "proxy.log").read_text()


class _LocalNode:
    name = "local"

    def cmd(self, command: str) -> str:
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout

    def popen(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_the_probe_reports_ttfb_and_goodput(proxy: tuple[int, Path]) -> None:
    from tspulab.methods.base import Access

    access = Access(mtproto=_link(proxy[0], "intermediate"))
    got = mtproto_probe(
        _LocalNode(), access, "https://web.telegram.org/bulk", method="mt", timeout_s=10,
        expect_bytes=1 << 20,
    )  # fmt: skip
    assert got.ok and got.size_bytes == 1 << 20 and got.goodput_bps and got.ttfb_s
    assert got.access.startswith("MTProto proxy proxy?server=127.0.0.1")
    assert SECRET.hex() not in got.access
    other = mtproto_probe(_LocalNode(), access, "https://www.viber.com/", method="mt", timeout_s=10)
    assert not other.ok and other.outcome == "not-telegram"
