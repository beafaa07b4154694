#!/usr/bin/env python3
"""Open short TLS flows at a steady rate and say how many got the server's first reply.

Run inside a subscriber's namespace by bench/new_flows_per_second.py. Each flow is a TCP
connection that sends one real TLS ClientHello (made once by Python's ssl module for the given
name, then replayed: the DPI reads the SNI, the server answers with its ServerHello), waits for
the first bytes of the server's reply, and closes with a RST (SO_LINGER 0: no TIME_WAIT). Source
ports are given, never reused within a lab: a TSPU keeps a flow's verdict past its RST (the
profile's state lifetime), so a 5-tuple used again would be forwarded on the old verdict and not
judged anew (the kernel's random ports collide after a few hundred connections). No client-side
crypto per flow, so the generator is cheap.

Prints one JSON object: attempted, ok, failures by kind, latencies (ms), CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import ssl
import struct
import time
from collections import Counter


def client_hello(server_name: str) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the ServerHello
        tls.do_handshake()
    return outgoing.read()


async def one_flow(
    address: str,
    port: int,
    source_port: int,
    hello: bytes,
    timeout_s: float,
    stats: Counter[str],
    lat: list[float],
) -> None:
    started = time.monotonic()
    writer = None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.bind(("0.0.0.0", source_port))
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout=timeout_s)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(hello)
        first = await asyncio.wait_for(reader.read(5), timeout=timeout_s)
        if first[:1] == b"\x16":
            stats["ok"] += 1
            lat.append((time.monotonic() - started) * 1000)
        elif not first:
            stats["closed"] += 1
        else:
            stats["not-tls"] += 1
    except TimeoutError:
        stats["timeout"] += 1
    except ConnectionResetError:
        stats["reset"] += 1
    except OSError as exc:
        stats[f"oserror-{exc.errno}"] += 1
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if writer is not None:
            writer.close()
        else:
            sock.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    hello = client_hello(args.sni)
    stats: Counter[str] = Counter()
    lat: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    start = args.start_at
    await asyncio.sleep(max(0.0, start - time.time()))
    t0 = time.monotonic()
    total = round(args.rate * args.seconds)
    if args.first_port + total > 65536:
        raise SystemExit(f"not enough source ports from {args.first_port} for {total} flows")
    launched = 0
    while launched < total:
        due = min(total, int((time.monotonic() - t0) * args.rate) + 1)
        while launched < due:
            task = asyncio.create_task(
                one_flow(args.address, args.port, args.first_port + launched, hello,
                         args.timeout, stats, lat)
            )  # fmt: skip
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            launched += 1
        await asyncio.sleep(0.002)
    launch_s = time.monotonic() - t0
    if tasks:
        await asyncio.wait(tasks)
    lat.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "attempted": launched,
        "launch_s": launch_s,
        "ok": stats.pop("ok", 0),
        "failures": dict(stats),
        "latency_ms": lat,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--sni", required=True)
    parser.add_argument("--rate", type=float, required=True, help="new flows per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--first-port", type=int, default=20000, help="source ports from here")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock start (epoch s)")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
