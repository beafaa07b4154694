#!/usr/bin/env python3
"""minirelay: a tiny stand-in circumvention tool for tspulab's CI example (docs/ci.md).

client: a local HTTP CONNECT proxy. Each tunnel goes, inside TLS with an innocent SNI, to the
        server, which connects on (TLS-in-TLS); or with --split N straight to the target, the
        first N bytes of the app's first write in a TCP segment of their own (a desync trick).
server: takes the TLS connections, reads "host:port\\n", connects there and relays.
"""

import argparse
import asyncio
import socket
import ssl


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def relay(r1, w1, r2, w2):
    await asyncio.gather(pipe(r1, w2), pipe(r2, w1), return_exceptions=True)


async def client_conn(args, reader, writer):
    request = await reader.readuntil(b"\r\n\r\n")
    target = request.split()[1].decode()  # CONNECT host:port HTTP/1.1
    host, port = target.rsplit(":", 1)
    if args.split:
        r2, w2 = await asyncio.open_connection(host, int(port))
        w2.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        ctx = ssl.create_default_context(cafile=args.ca)
        server, server_port = args.server.rsplit(":", 1)
        r2, w2 = await asyncio.open_connection(
            server, int(server_port), ssl=ctx, server_hostname=args.sni
        )
        w2.write(f"{target}\n".encode())
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    first = await reader.read(65536)
    if args.split:  # two segments: the DPI of a node without reassembly sees no SNI
        w2.write(first[: args.split])
        await w2.drain()
        await asyncio.sleep(0.05)
        first = first[args.split :]
    w2.write(first)
    await relay(reader, writer, r2, w2)


async def server_conn(reader, writer):
    host, port = (await reader.readline()).decode().strip().rsplit(":", 1)
    r2, w2 = await asyncio.open_connection(host, int(port))
    await relay(reader, writer, r2, w2)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["client", "server"])
    p.add_argument("--listen", required=True)
    p.add_argument("--server")
    p.add_argument("--sni", default="cdn.example.net")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--split", type=int, default=0)
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if args.role == "server":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv = await asyncio.start_server(server_conn, host, int(port), ssl=ctx)
    else:
        srv = await asyncio.start_server(lambda r, w: client_conn(args, r, w), host, int(port))
    print(f"minirelay {args.role} listening on {args.listen}", flush=True)
    await srv.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
