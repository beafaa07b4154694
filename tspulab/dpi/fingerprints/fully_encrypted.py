"""The GFW's test for "fully encrypted" traffic (Shadowsocks, VMess, obfs4 ...): a payload that
looks uniformly random is blocked unless one of five exemptions applies.

Source: Wu, Zohaib, Durumeric, Houmansadr, Wustrow, "How the Great Firewall of China Detects and
Blocks Fully Encrypted Traffic", USENIX Security 2023, §4 and Algorithm 1. The GFW applies it to
the first data packet a client sends on a TCP connection; a payload is exempt if

- Ex1: the average number of set bits per byte is <= 3.4 or >= 4.6 (random data is near 4);
- Ex2: its first six bytes are printable ASCII (0x20..0x7e);
- Ex3: more than 50 % of its bytes are printable ASCII;
- Ex4: it has more than 20 contiguous printable ASCII bytes;
- Ex5: it starts like TLS (``[\\x16\\x17]\\x03[\\x00-\\x09]``) or HTTP (``GET ``, ``PUT ``,
  ``POST``, ``HEAD``);

and otherwise is treated as fully encrypted. (The GFW then blocks only a fraction of such
connections, about 26 % in the paper; that sampling is policy, not part of this detector.)

On uniformly random payloads of 100+ bytes this matches almost always: Ex1 exempts with
probability about 2e-5 at 100 bytes, Ex2 (95/256)^6 = 0.26 %, Ex3/Ex4 far less. That is the
point of the rule; its false positives are on real, non-random protocols, measured in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

_PRINTABLE = bytes(range(0x20, 0x7F))
_TO_MARK = bytes(ord("P") if i in _PRINTABLE else 0 for i in range(256))
_NON_PRINTABLE = bytes(i for i in range(256) if i not in _PRINTABLE)
_HTTP_PREFIXES = (b"GET ", b"PUT ", b"POST", b"HEAD")


@dataclass(frozen=True, slots=True)
class FullyEncryptedMatch:
    popcount_per_byte: float
    printable_fraction: float
    longest_printable_run: int


def _longest_run_below_21(marks: bytes) -> int:
    """Longest run of b"P" in `marks`, known to be <= 20: a binary search of substring tests."""
    low, high = 0, 20
    while low < high:
        mid = (low + high + 1) // 2
        if b"P" * mid in marks:
            low = mid
        else:
            high = mid - 1
    return low


def _judge(payload: bytes) -> tuple[str | None, FullyEncryptedMatch | None]:
    """(exemption or None, statistics); per-byte work runs in C (bit_count, translate, find)."""
    if not payload:
        return "empty", None
    popcount = int.from_bytes(payload, "big").bit_count() / len(payload)
    if not 3.4 < popcount < 4.6:
        return "ex1", None
    if payload[:6].translate(None, _NON_PRINTABLE) == payload[:6]:
        return "ex2", None
    printable = len(payload.translate(None, _NON_PRINTABLE))
    if printable * 2 > len(payload):
        return "ex3", None
    marks = payload.translate(_TO_MARK)
    if b"P" * 21 in marks:
        return "ex4", None
    longest = _longest_run_below_21(marks)
    tls_like = len(payload) >= 3 and payload[0] in (0x16, 0x17) and payload[1] == 3
    if (tls_like and payload[2] <= 9) or payload[:4] in _HTTP_PREFIXES:
        return "ex5", None
    return None, FullyEncryptedMatch(popcount, printable / len(payload), longest)


def exemption(payload: bytes) -> str | None:
    """The first exemption (``"ex1"`` .. ``"ex5"``) that applies, or None; ``"empty"`` for b""."""
    return _judge(payload)[0]


def match(payload: bytes) -> FullyEncryptedMatch | None:
    """GFW heuristics (Wu et al., USENIX Security 2023, 'How the Great Firewall of China Detects and
    Blocks Fully Encrypted Traffic'): exempt if popcount/byte in [3.4,4.6] fails, first 6 bytes
    printable, >50% printable, >20 contiguous printable, or TLS/HTTP prefix; otherwise
    fully-encrypted. Never raises."""
    return _judge(payload)[1]
