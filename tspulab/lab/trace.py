"""A traceroute from a lab host: which address answers at each TTL.

iputils' ``ping -t TTL`` sends one echo request with that TTL; the router where it runs out
answers with ICMP time-exceeded ("From 10.1.1.2 icmp_seq=1 Time to live exceeded") and the
target with an echo reply ("64 bytes from 104.244.42.1: ..."). No traceroute package is needed
(Debian's iputils-ping is always there), and each probe is an ICMP echo, which the TSPU passes
unless the address itself is blocked (IP mode drops ICMP too, §2.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_EXCEEDED = re.compile(r"From (\S+?):? .*(?:Time to live exceeded|ttl exceeded)", re.I)
_REPLY = re.compile(r"bytes from (\S+?):")


@dataclass(frozen=True)
class Hop:
    ttl: int
    address: str | None
    """Who answered (None: nothing within the timeout)."""
    reached: bool
    """The target itself answered: the path is ``ttl`` hops long."""


def parse_ping(ttl: int, output: str) -> Hop:
    """One ``ping -n -c1 -t TTL`` output as a hop."""
    reply = _REPLY.search(output)
    if reply is not None:
        return Hop(ttl, reply.group(1), True)
    exceeded = _EXCEEDED.search(output)
    return Hop(ttl, exceeded.group(1) if exceeded else None, False)


def trace(host: Any, address: str, max_hops: int = 20, timeout_s: int = 1) -> list[Hop]:
    """The hops from a Mininet node (``host.cmd``) to ``address``, up to the target or
    ``max_hops``. The target is at ``len(result)`` when ``result[-1].reached``."""
    hops: list[Hop] = []
    for ttl in range(1, max_hops + 1):
        out = host.cmd(f"ping -n -c1 -W{timeout_s} -t{ttl} {address}")
        hops.append(parse_ping(ttl, out))
        if hops[-1].reached:
            break
    return hops


def describe(hops: list[Hop]) -> str:
    """``1 10.1.0.1 / 2 10.1.1.2 / 3 * / 4 104.244.42.1 (target)``"""
    return " / ".join(f"{h.ttl} {h.address or '*'}{' (target)' if h.reached else ''}" for h in hops)
