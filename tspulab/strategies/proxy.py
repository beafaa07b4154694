"""A local proxy (SOCKS5 or HTTP CONNECT) in the subscriber's namespace that writes the first
request its way.

    python -m tspulab.strategies.proxy --listen 127.0.0.1:1080 --strategy 'split:sni+tlsrec:1'

The client (``curl --socks5 127.0.0.1:1080``) connects through it; the proxy opens the real
connection from the subscriber's address with TCP_NODELAY, reads the client's first write whole
(a TLS record is read to its length), performs ``shaping.plan_first_write`` on it, and then
relays both ways untouched. Like byedpi, it works on the socket, not on packets: a write becomes a
segment because Nagle is off and the proxy waits until the kernel has sent each write (the
socket's unsent byte count, SIOCOUTQNSD, is zero) before the next; disorder sets IP_TTL for one
write and restores it once that write is on the wire; oob sends one byte with MSG_OOB.

SOCKS5 (RFC 1928) without authentication, CONNECT only, IPv4, IPv6 and domain names; or an HTTP
CONNECT request (RFC 9110 §9.3.6, what ``openssl s_client -proxy`` sends). Prints
``ready <host>:<port>`` once listening; one line per connection on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import select
import socket
import socketserver
import struct
import sys
import threading
import time

from tspulab.strategies.shaping import Write, plan_first_write
from tspulab.strategies.spec import Strategy, parse_any

SIOCOUTQNSD = 0x894B
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\n\r\n"
FIRST_WRITE_WAIT_S = 30.0


def unsent_bytes(sock: socket.socket) -> int:
    buf = fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def wait_sent(sock: socket.socket, timeout: float = 0.5) -> None:
    """Until the kernel has put every byte written so far on the wire (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while unsent_bytes(sock) and time.monotonic() < deadline:
        time.sleep(0.0005)


def perform(sock: socket.socket, writes: list[Write]) -> None:
    """Send the writes of a plan, one segment each."""
    default_ttl = sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
    for write in writes:
        if write.ttl is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, write.ttl)
        if write.data:
            sock.sendall(write.data)
        if write.urgent is not None:
            sock.send(bytes([write.urgent]), socket.MSG_OOB)
        wait_sent(sock)
        if write.ttl is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, default_ttl)


def read_first_write(client: socket.socket) -> bytes:
    """The client's first request; a TLS record is read to its announced length."""
    client.settimeout(FIRST_WRITE_WAIT_S)
    data = client.recv(65536)
    if len(data) >= 5 and data[0] == 22 and data[1] == 3:
        need = 5 + struct.unpack_from("!H", data, 3)[0]
        while len(data) < need:
            more = client.recv(need - len(data))
            if not more:
                break
            data += more
    client.settimeout(None)
    return data


def _socks_handshake(client: socket.socket, head: bytes) -> tuple[str, int] | None:
    if len(head) < 2:
        return None
    client.recv(head[1])
    client.sendall(b"\x05\x00")
    req = client.recv(4)
    if len(req) < 4 or req[1] != 1:
        client.sendall(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
        return None
    atyp = req[3]
    if atyp == 1:
        host = str(ipaddress.IPv4Address(client.recv(4)))
    elif atyp == 4:
        host = str(ipaddress.IPv6Address(client.recv(16)))
    elif atyp == 3:
        host = client.recv(client.recv(1)[0]).decode("idna")
    else:
        return None
    port = struct.unpack("!H", client.recv(2))[0]
    return host, port


def _connect_request(client: socket.socket, head: bytes) -> tuple[str, int] | None:
    """An HTTP CONNECT request (RFC 9110 §9.3.6), read to its blank line."""
    data = head
    while b"\r\n\r\n" not in data and len(data) < 8192:
        more = client.recv(4096)
        if not more:
            return None
        data += more
    line = data.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(line) < 2 or line[0] != "CONNECT":
        client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
        return None
    host, _, port = line[1].rpartition(":")
    return host.strip("[]"), int(port)


def _relay(a: socket.socket, b: socket.socket) -> None:
    socks = [a, b]
    while True:
        readable, _, _ = select.select(socks, [], [], 30)
        if not readable:
            return
        for s in readable:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            (b if s is a else a).sendall(data)


class _Handler(socketserver.BaseRequestHandler):
    server: ShapingProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        head = client.recv(2)
        socks = head[:1] == b"\x05"
        target = _socks_handshake(client, head) if socks else _connect_request(client, head)
        if target is None:
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            client.sendall(b"\x05\x05\x00\x01" + bytes(6) if socks else _BAD_GATEWAY)
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.sendall(b"\x05\x00\x00\x01" + bytes(6) if socks else _ESTABLISHED)
        with upstream:
            try:
                first = read_first_write(client)
            except (TimeoutError, OSError) as err:
                # Never relay a first write unshaped: the strategy would silently not apply.
                print(f"{target[0]}:{target[1]} no first write ({err!r}): closed",
                      file=sys.stderr, flush=True)  # fmt: skip
                return
            if first:
                notes: list[str] = []
                try:
                    writes = plan_first_write(first, self.server.strategy.of_layer("stream"), notes)
                except ValueError as err:  # a plan that cannot be made: the write goes as is
                    writes = [Write(first)]
                    notes.append(f"not shaped: {err}")
                perform(upstream, writes)
                print(
                    f"{target[0]}:{target[1]} first write {len(first)} B as "
                    f"{[len(w.data) for w in writes]}{' ' + '; '.join(notes) if notes else ''}",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
            _relay(client, upstream)


class ShapingProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], strategy: Strategy) -> None:
        self.strategy = strategy
        super().__init__(address, _Handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:1080")
    ap.add_argument("--strategy", required=True, help="spec string or YAML file")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = ShapingProxy((host, int(port)), parse_any(args.strategy))
    print(f"ready {host}:{server.server_address[1]}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with contextlib.suppress(KeyboardInterrupt):
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
