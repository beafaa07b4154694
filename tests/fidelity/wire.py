"""A TLS client and server the live fidelity tests run inside lab hosts (`python -m
tests.fidelity.wire ...`), printing one JSON line of what they measured.

curl measures one transfer's average; the statements need more: the bytes that arrive in the first
100 ms (the policer's burst), the rate after the burst, the same 5-tuple reused after a RST,
several requests on one connection with an idle gap between them, a ClientHello sent with a small
TTL, and a connection opened from the *outside* (the server in the subscriber's namespace). The
client does not check certificates: the statements are about what the censor does to the bytes.

    client --addr A --sni NAME [--host NAME] [--sport P] [--request BYTES[@IDLE_S] ...] [--rst] [--hello-ttl N]
    server --bind A --cert C --key K [--bytes N]
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Any

BURST_WINDOW_S = 0.1
#: The policer's burst is 16 KB; the rate after it is measured from the first read at or past
#: this many bytes (reads come a TLS record, up to 16 KB, at a time).
AFTER_BURST_BYTES = 12_288


def _request(tls: ssl.SSLSocket, sni: str, size: int, timeout_s: float) -> dict[str, Any]:
    """One HTTP/1.1 range request for `size` bytes of /bulk on the open connection."""
    started = time.monotonic()
    tls.sendall(f"GET /bulk HTTP/1.1\r\nHost: {sni}\r\nRange: bytes=0-{size - 1}\r\n\r\n".encode())
    head = b""
    marks: list[tuple[float, int]] = []
    body = 0
    deadline = started + timeout_s
    while b"\r\n\r\n" not in head or body < size:
        tls.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = tls.recv(65536)
        except (TimeoutError, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        now = time.monotonic()
        if b"\r\n\r\n" not in head:
            head += chunk
            if b"\r\n\r\n" in head:
                head, _, rest = head.partition(b"\r\n\r\n")
                head += b"\r\n\r\n"
                body += len(rest)
        else:
            body += len(chunk)
        marks.append((now, body))
    done = time.monotonic()
    first = marks[0][0] if marks else None
    in_burst = max((b for t, b in marks if first is not None and t - first <= BURST_WINDOW_S),
                   default=0)  # fmt: skip
    after = [(t, b) for t, b in marks if b >= AFTER_BURST_BYTES]
    rate = None
    if len(after) >= 2 and after[-1][0] > after[0][0]:
        rate = (after[-1][1] - after[0][1]) * 8 / (after[-1][0] - after[0][0])
    return {
        "bytes": body,
        "complete": body >= size,
        "seconds": done - started,
        "first_byte_s": None if first is None else first - started,
        "burst_bytes": in_burst,
        "rate_after_burst_bps": rate,
        "goodput_bps": body * 8 / (done - first) if first is not None and done > first else None,
        "marks": len(marks),
    }


def client(args: argparse.Namespace) -> dict[str, Any]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.sport:
        sock.bind(("0.0.0.0", args.sport))
    sock.settimeout(args.timeout)
    out: dict[str, Any] = {"sni": args.sni, "requests": []}
    started = time.monotonic()
    try:
        sock.connect((args.addr, 443))
        out["connect_s"] = time.monotonic() - started
        out["sport"] = sock.getsockname()[1]
        if args.hello_ttl:
            # Only the ClientHello and what follows carry the small TTL: the handshake completed
            # at full TTL, as in CP-THR's TTL-limited measurements.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, args.hello_ttl)
        # --sni "": no server_name extension at all
        tls = ctx.wrap_socket(sock, server_hostname=args.sni or None)
        out["handshake_s"] = time.monotonic() - started
        for spec in args.request:
            size, _, idle = spec.partition("@")
            if idle:
                time.sleep(float(idle))
            out["requests"].append(
                _request(tls, args.host or args.sni or args.addr, int(size), args.timeout)
            )
        sock = tls
    except (OSError, ssl.SSLError) as err:
        out["error"] = f"{type(err).__name__}: {err}"
        out["error_s"] = time.monotonic() - started
    finally:
        if args.rst:
            # SO_LINGER 0: close() sends a RST, not a FIN, and leaves nothing in TIME_WAIT, so
            # the next connection may reuse the source port at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return out


def server(args: argparse.Namespace) -> None:
    """Accept TLS connections; answer each request line with `--bytes` bytes and close."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, 443))
    listener.listen(8)
    print(json.dumps({"listening": True}), flush=True)

    def serve(conn: socket.socket) -> None:
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                body = bytes(args.bytes)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (OSError, ssl.SSLError):
            return

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fidelity.wire")
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--addr", required=True)
    c.add_argument("--sni", required=True)
    c.add_argument("--host", default="", help="the Host header (default: the SNI)")
    c.add_argument("--sport", type=int, default=0)
    c.add_argument("--request", action="append", default=[], help="BYTES[@IDLE_S]")
    c.add_argument("--rst", action="store_true")
    c.add_argument("--hello-ttl", type=int, default=0)
    c.add_argument("--timeout", type=float, default=10.0)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--bytes", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    if args.cmd == "client":
        print(json.dumps(client(args)), flush=True)
    else:
        server(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
