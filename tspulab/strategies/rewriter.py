"""The NFQUEUE rewriters: client packet strategies and server-side strategies, in a namespace.

    python -m tspulab.strategies.rewriter client --strategy 'fake:ttl=2' --port 443 [--queue 13]
    python -m tspulab.strategies.rewriter server --strategy 'srvwin:40' --port 443 [--queue 14]

Run it inside the namespace it acts for (``ip netns exec NS ...``). It installs its own
``iptables`` rules (``-j NFQUEUE``; nft's ``queue`` does not work on this kernel), removes exactly
those on exit (SIGTERM, SIGINT), and prints ``ready`` once bound. Packets it sends itself (fakes,
fragments, the split handshake's ACK) go out on a raw socket with a firewall mark that its rules
skip, so they are not queued again.

client: every outgoing TCP/UDP packet to ``--port`` is queued (mangle POSTROUTING) and given to
``desync.Desync``. server: the server's SYN/ACKs from ``--port`` (mangle POSTROUTING) and, for
the split handshake, the client's SYN/ACKs to it (mangle PREROUTING) go to ``ServerSide``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from types import FrameType

from tspulab.strategies.desync import Desync, Rewrite
from tspulab.strategies.serverside import ServerSide
from tspulab.strategies.spec import parse_any

MARK = 0x40000000
Rule = tuple[str, ...]


def client_rules(port: int, queue: int, protocols: set[str]) -> list[Rule]:
    return [
        ("-t", "mangle", "POSTROUTING", "-p", proto, "--dport", str(port),
         "-m", "mark", "!", "--mark", f"{MARK:#x}/{MARK:#x}",
         "-j", "NFQUEUE", "--queue-num", str(queue))
        for proto in sorted(protocols)
    ]  # fmt: skip


def server_rules(port: int, queue: int, split_handshake: bool) -> list[Rule]:
    rules: list[Rule] = [
        ("-t", "mangle", "POSTROUTING", "-p", "tcp", "--sport", str(port),
         "--tcp-flags", "SYN,ACK", "SYN,ACK", "-m", "mark", "!", "--mark", f"{MARK:#x}/{MARK:#x}",
         "-j", "NFQUEUE", "--queue-num", str(queue)),
    ]  # fmt: skip
    if split_handshake:
        rules.append(
            ("-t", "mangle", "PREROUTING", "-p", "tcp", "--dport", str(port),
             "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "NFQUEUE", "--queue-num", str(queue))
        )  # fmt: skip
    return rules


def _iptables(action: str, rule: Rule) -> None:
    table, chain, rest = rule[:2], rule[2], rule[3:]
    subprocess.run(["iptables", "-w", *table, action, chain, *rest], check=True)


class RawSender:
    """Sends whole IPv4 packets (IP_HDRINCL), marked so the queue rules skip them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)

    def send(self, packet: bytes) -> None:
        dst = socket.inet_ntoa(packet[16:20])
        self.sock.sendto(packet, (dst, 0))


def apply(pkt: object, rewrite: Rewrite, sender: RawSender) -> None:
    """Carry out a Rewrite on a netfilterqueue packet."""
    for extra in rewrite.before:
        sender.send(extra)
    if rewrite.instead is None:
        pkt.accept()  # type: ignore[attr-defined]
    elif len(rewrite.instead) == 1:
        pkt.set_payload(rewrite.instead[0])  # type: ignore[attr-defined]
        pkt.accept()  # type: ignore[attr-defined]
    else:
        pkt.drop()  # type: ignore[attr-defined]
        for part in rewrite.instead:
            sender.send(part)


def serve(rules: list[Rule], queue: int, handler: Callable[[bytes, int], Rewrite]) -> int:
    from netfilterqueue import NetfilterQueue

    sender = RawSender()
    installed: list[Rule] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    nfq = NetfilterQueue()
    try:
        nfq.bind(queue, lambda p: _handle(p, handler, sender))
        for rule in rules:
            _iptables("-A", rule)
            installed.append(rule)
        print("ready", flush=True)
        nfq.run()
    except KeyboardInterrupt:
        pass
    finally:
        for rule in reversed(installed):
            _iptables("-D", rule)
        nfq.unbind()
    return 0


def _handle(pkt: object, handler: Callable[[bytes, int], Rewrite], sender: RawSender) -> None:
    raw = pkt.get_payload()  # type: ignore[attr-defined]
    try:
        rewrite = handler(raw, pkt.hook)  # type: ignore[attr-defined]
    except Exception as err:  # a packet the rewriter cannot read goes out unchanged
        print(f"rewriter: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        pkt.accept()  # type: ignore[attr-defined]
        return
    if rewrite.note:
        print(f"rewriter: {rewrite.note}", file=sys.stderr, flush=True)
    apply(pkt, rewrite, sender)


NF_INET_PRE_ROUTING = 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("side", choices=("client", "server"))
    ap.add_argument("--strategy", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--queue", type=int, default=13)
    args = ap.parse_args(argv)
    strategy = parse_any(args.strategy)
    if args.side == "client":
        steps = strategy.of_layer("packet")
        desync = Desync(steps)
        protocols = {"tcp", "udp"} & (
            {s.definition.transport for s in steps} | ({"tcp", "udp"} if any(
                s.definition.transport == "any" for s in steps) else set())
        )  # fmt: skip
        return serve(
            client_rules(args.port, args.queue, protocols), args.queue,
            lambda raw, hook: desync.on_packet(raw),
        )  # fmt: skip
    side = ServerSide(strategy.of_layer("server"))
    return serve(
        server_rules(args.port, args.queue, side.split_handshake), args.queue,
        lambda raw, hook: side.incoming(raw) if hook == NF_INET_PRE_ROUTING else side.outgoing(raw),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
