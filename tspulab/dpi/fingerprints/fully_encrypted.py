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
_HTTP_PREFIXES = (b"GET ", b"PUT ", b"POST", b"HEAD")
_TO_MARK = bytes(ord("P") if i in _PRINTABLE else 0 for i in range(256))


@dataclass(frozen=True, slots=True)
class FullyEncryptedMatch:
    popcount_per_byte: float
    printable_fraction: float
    longest_printable_run: int


def _printable_stats(payload: bytes) -> tuple[int, int]:
    """(count of printable bytes, longest run of them), using C-level translate/split."""
    # Map printable bytes to "P" and the rest to a separator, then measure the pieces.
    mapped = payload.translate(_TO_MARK)
    printable = mapped.count(b"P")
    longest = max((len(run) for run in mapped.split(b"\x00")), default=0)
    return printable, longest


def exemption(payload: bytes) -> str | None:
    """The first exemption (``"ex1"`` .. ``"ex5"``) that applies, or None; ``"empty"`` for b""."""
    if not payload:
        return "empty"
    bits = int.from_bytes(payload, "big").bit_count()
    if not 3.4 < bits / len(payload) < 4.6:
        return "ex1"
    if all(byte in _PRINTABLE for byte in payload[:6]):
        return "ex2"
    printable, longest = _printable_stats(payload)
    if printable * 2 > len(payload):
        return "ex3"
    if longest > 20:
        return "ex4"
    tls_like = len(payload) >= 3 and payload[0] in (0x16, 0x17) and payload[1] == 3
    if (tls_like and payload[2] <= 9) or payload[:4] in _HTTP_PREFIXES:
        return "ex5"
    return None


def match(payload: bytes) -> FullyEncryptedMatch | None:
    """GFW heuristics (Wu et al., USENIX Security 2023, 'How the Great Firewall of China Detects and
    Blocks Fully Encrypted Traffic'): exempt if popcount/byte in [3.4,4.6] fails, first 6 bytes
    printable, >50% printable, >20 contiguous printable, or TLS/HTTP prefix; otherwise
    fully-encrypted. Never raises."""
    if exemption(payload) is not None:
        return None
    bits = int.from_bytes(payload, "big").bit_count()
    printable, longest = _printable_stats(payload)
    return FullyEncryptedMatch(bits / len(payload), printable / len(payload), longest)
