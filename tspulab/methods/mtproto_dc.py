"""The lab's Telegram data centre and MTProto proxy: two small asyncio servers of the project.

No registry packages an MTProto *server* (a data centre), and the PyPI proxy (`mtprotoproxy`)
relays only to Telegram's own fixed data-centre addresses, so the lab runs its own pair:

- `dc`: accepts the obfuscated2 transport without a secret (as a data centre does), reads framed
  requests and answers each lab echo request (`mtproto_transport.echo_request`) with a framed
  reply of the size asked for: enough for time to first byte and goodput;
- `proxy`: what an MTProto proxy of 2018 did: accepts obfuscated2 with its 16-byte secret mixed
  into the keys, refuses a client whose tag does not decrypt (another secret), opens its own
  obfuscated2 connection to the data centre with the client's protocol tag and relays the
  decrypted stream both ways, re-encrypted for each side.

Run as `python -m tspulab.methods.mtproto_dc dc --listen ADDR:PORT` or
`... proxy --listen ADDR:PORT --secret HEX --dc ADDR:PORT`; each logs "listening on" when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable

from tspulab.methods.mtproto_transport import (
    ABRIDGED,
    INIT_SIZE,
    PADDED_INTERMEDIATE,
    FrameReader,
    Streams,
    TransportError,
    client_handshake,
    frame,
    parse_echo_request,
    server_handshake,
)

CHUNK = 256 * 1024
"""The largest reply frame (a real DC's largest upload.file part is 512 KiB)."""
_FILLER = os.urandom(CHUNK)
HANDSHAKE_TIMEOUT_S = 10.0


def _log(text: str) -> None:
    print(text, flush=True)


async def _serve_dc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    try:
        wire = await asyncio.wait_for(reader.readexactly(INIT_SIZE), HANDSHAKE_TIMEOUT_S)
        streams = server_handshake(wire)
        if streams.tag == PADDED_INTERMEDIATE:
            raise TransportError("padded intermediate is not served")
        frames = FrameReader(streams.tag)
        while data := await reader.read(65536):
            for payload in frames.feed(streams.decrypt(data)):
                size, number = parse_echo_request(payload)
                _log(f"dc: {peer} request {number}: {size} bytes")
                await _reply(writer, streams, size)
    except (TransportError, asyncio.IncompleteReadError, TimeoutError, ConnectionError) as err:
        _log(f"dc: {peer} closed: {type(err).__name__}: {err}")
    finally:
        writer.close()


async def _reply(writer: asyncio.StreamWriter, streams: Streams, size: int) -> None:
    left = size
    while left > 0:
        part = min(left, CHUNK)
        if streams.tag == ABRIDGED:
            part += -part % 4
        writer.write(streams.encrypt(frame(streams.tag, _FILLER[:part])))
        left -= part
        await writer.drain()
    if size == 0:
        writer.write(streams.encrypt(frame(streams.tag, b"")))
        await writer.drain()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transform: Callable[[bytes], bytes]
) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(transform(data))
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _proxy_handler(secret: bytes, dc_host: str, dc_port: int) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            wire = await asyncio.wait_for(reader.readexactly(INIT_SIZE), HANDSHAKE_TIMEOUT_S)
            client = server_handshake(wire, secret=secret)
        except (TransportError, asyncio.IncompleteReadError, TimeoutError) as err:
            # A real proxy keeps a prober's connection open and says nothing; the lab closes it.
            _log(f"proxy: {peer} refused: {type(err).__name__}: {err}")
            writer.close()
            return
        try:
            dc_reader, dc_writer = await asyncio.open_connection(dc_host, dc_port)
        except OSError as err:
            _log(f"proxy: {peer}: data centre {dc_host}:{dc_port} unreachable: {err}")
            writer.close()
            return
        init, upstream = client_handshake(client.tag, dc=client.dc)
        dc_writer.write(init)
        _log(f"proxy: {peer} -> DC {client.dc} at {dc_host}:{dc_port}")

        def up(data: bytes) -> bytes:
            return upstream.encrypt(client.decrypt(data))

        def down(data: bytes) -> bytes:
            return client.encrypt(upstream.decrypt(data))

        await asyncio.gather(_pipe(reader, dc_writer, up), _pipe(dc_reader, writer, down))

    return handle


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def _main(args: argparse.Namespace) -> None:
    host, port = _split(args.listen)
    if args.role == "dc":
        server = await asyncio.start_server(_serve_dc, host, port)
    else:
        secret = bytes.fromhex(args.secret)
        dc_host, dc_port = _split(args.dc)
        server = await asyncio.start_server(_proxy_handler(secret, dc_host, dc_port), host, port)
    _log(f"{args.role}: listening on {host}:{port}")
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tspulab.methods.mtproto_dc")
    parser.add_argument("role", choices=["dc", "proxy"])
    parser.add_argument("--listen", required=True, help="ADDR:PORT")
    parser.add_argument("--secret", default="", help="the proxy's secret, 32 hex digits")
    parser.add_argument("--dc", default="", help="the data centre's ADDR:PORT (proxy)")
    args = parser.parse_args(argv)
    if args.role == "proxy" and (len(args.secret) != 32 or not args.dc):
        parser.error("a proxy needs --secret (32 hex digits) and --dc ADDR:PORT")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
