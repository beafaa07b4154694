"""The `dns` probe: one UDP query for a service's first name to the lab's resolver, from a
subscriber's namespace, and what came back first.

The query is built and the answer read here with dpkt; in the subscriber's namespace a few lines
of Python only send the datagram and print the first answer (a real UDP exchange across the lab:
the TSPU and the ISP's old filter see it as any resolver query). The first answer counts, as for
a stub resolver: an injected answer that beats the resolver's is what the client uses.

Outcomes: `ok` (the service's own address among the A records), `dns-tampered` (other
addresses: a block page's, say), `nxdomain`, `dns-error` (another RCODE), `timeout`.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from ipaddress import IPv4Address
from typing import Any

import dpkt

from tspulab.scenario.probes import ProbeResult

#: runs in the subscriber's namespace: send argv[3] (hex) to argv[1]:53, print the answer (hex)
_EXCHANGE = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
    "s.settimeout(float(sys.argv[2]))\n"
    "s.sendto(bytes.fromhex(sys.argv[3]),(sys.argv[1],53))\n"
    "try:\n"
    "    print(s.recv(4096).hex())\n"
    "except TimeoutError:\n"
    "    sys.exit(3)\n"
)


def dns_query(name: str, qid: int) -> bytes:
    query = dpkt.dns.DNS(id=qid, op=dpkt.dns.DNS_RD)
    query.qd = [dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN)]
    return bytes(query)


def read_answer(raw: bytes, expected: str) -> tuple[str, list[str], int | None]:
    """(outcome, A addresses, rcode) of a DNS response for a name that should be `expected`."""
    try:
        reply = dpkt.dns.DNS(raw)
    except (dpkt.UnpackError, IndexError):
        return "dns-error", [], None
    addresses = [str(IPv4Address(rr.ip)) for rr in reply.an if rr.type == dpkt.dns.DNS_A]
    if reply.rcode == dpkt.dns.DNS_RCODE_NXDOMAIN:
        return "nxdomain", addresses, reply.rcode
    if reply.rcode != dpkt.dns.DNS_RCODE_NOERR:
        return "dns-error", addresses, reply.rcode
    if expected in addresses:
        return "ok", addresses, reply.rcode
    return "dns-tampered", addresses, reply.rcode


def dns_probe(
    host: Any,
    *,
    subscriber: str,
    service: str,
    role: str,
    domain: str,
    resolver: str,
    expected: str,
    timeout_s: float,
    round_no: int,
) -> ProbeResult:
    """Ask `resolver` for `domain`'s A record from `host`; ok when `expected` is among them."""
    qid = random.randrange(1 << 16)
    started = time.time()
    proc = host.popen(
        [sys.executable, "-c", _EXCHANGE, resolver, f"{timeout_s:g}", dns_query(domain, qid).hex()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout_s + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    total = time.time() - started
    text = out.decode(errors="replace").strip()
    addresses: list[str] = []
    rcode: int | None = None
    if proc.returncode == 0 and text:
        outcome, addresses, rcode = read_answer(bytes.fromhex(text), expected)
    elif proc.returncode == 3:
        outcome = "timeout"
    else:
        outcome = "dns-error"
    extra: dict[str, Any] = {"answers": addresses, "rcode": rcode, "resolver": resolver}
    if err.strip():
        extra["stderr"] = err.decode(errors="replace").strip()[-300:]
    return ProbeResult(
        kind="dns", subscriber=subscriber, service=service, role=role, target=domain,
        round=round_no, ok=outcome == "ok", outcome=outcome, started=started,
        remote_ip=addresses[0] if addresses else None, time_total_s=total, extra=extra,
    )  # fmt: skip
