"""A real QUIC server and client (aioquic) for the lab's namespaces.

    python -m tspulab.lab.quicpeer server --cert C --key K [--bind ADDRESS] [--port 443]
    python -m tspulab.lab.quicpeer client --host NAME --ca CA [--version 1|2] [--timeout S]

The client completes a QUIC handshake (TLS 1.3 inside QUIC, ALPN "h3", the SNI is the host
name) and a PING round trip, then prints one JSON line: {"ok": bool, "outcome", "handshake_s",
"version"}. Blocking a QUIC Initial (tspu-behaviour.md §5.3) shows as a handshake timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion

ALPN = ["h3"]
VERSIONS = {1: QuicProtocolVersion.VERSION_1, 2: QuicProtocolVersion.VERSION_2}


async def _serve(args: argparse.Namespace) -> None:
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    config.supported_versions = [QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2]
    config.load_cert_chain(args.cert, args.key)
    # Bind the service's own address: a UDP socket on 0.0.0.0 would answer from the host's
    # routing source (its transit address), and the client would drop the reply.
    await serve(args.bind, args.port, configuration=config)
    print(f"quic server listening on udp/{args.port}", flush=True)
    await asyncio.Event().wait()


async def _client(args: argparse.Namespace) -> dict[str, object]:
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name=args.host)
    config.load_verify_locations(args.ca)
    config.supported_versions = [VERSIONS[args.version]]
    started = time.monotonic()
    address = socket.gethostbyname(args.host)
    try:
        async with asyncio.timeout(args.timeout):
            async with connect(address, args.port, configuration=config) as client:
                await client.ping()
    except TimeoutError:
        return {"ok": False, "outcome": "timeout", "version": args.version,
                "elapsed_s": round(time.monotonic() - started, 3)}  # fmt: skip
    except ConnectionError as err:
        return {"ok": False, "outcome": f"error: {err}", "version": args.version}
    return {"ok": True, "outcome": "ok", "version": args.version,
            "handshake_s": round(time.monotonic() - started, 4)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--port", type=int, default=443)
    s.add_argument("--bind", default="0.0.0.0", help="the service address (AnyIP prefixes)")
    c = sub.add_parser("client")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, default=443)
    c.add_argument("--ca", required=True)
    c.add_argument("--version", type=int, choices=sorted(VERSIONS), default=1)
    c.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.role == "server":
        asyncio.run(_serve(args))
        return 0
    result = asyncio.run(_client(args))
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
