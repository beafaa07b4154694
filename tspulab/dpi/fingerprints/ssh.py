"""SSH, recognised from the identification string each side sends first (RFC 4253 §4.2).

``SSH-protoversion-softwareversion SP comments CR LF``, at most 255 bytes with CR LF, printable
US-ASCII. protoversion is "2.0", or "1.99" for servers that also speak SSH-1 (RFC 4253 §5.1);
"1.5" is plain SSH-1. A server may send other lines before its version line (RFC 4253 §4.2), so
the server side is searched line by line within the first payload. One packet suffices; a random
payload would have to begin with the 4 bytes "SSH-" (2^-32) and then be printable.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_LINE = 255
_VERSIONS = ("2.0", "1.99", "1.5")


@dataclass(frozen=True, slots=True)
class SSHMatch:
    proto_version: str
    software: str
    comments: str


def _parse_line(line: bytes) -> SSHMatch | None:
    if not line.startswith(b"SSH-") or len(line) > _MAX_LINE - 2:
        return None
    if any(byte < 0x20 or byte > 0x7E for byte in line):
        return None
    text = line[4:].decode("ascii")
    proto, _, rest = text.partition("-")
    if proto not in _VERSIONS or not rest:
        return None
    # RFC 4253 forbids "-" in softwareversion, but real stacks are lax; only emptiness is refused.
    software, _, comments = rest.partition(" ")
    return SSHMatch(proto, software, comments) if software else None


def match(payload: bytes) -> SSHMatch | None:
    """The SSH identification string at the start of `payload` (or after a server's preamble
    lines). A line without CR LF still matches if it is the whole payload (some stacks send LF
    only, RFC 4253 §4.2 tolerates it). Never raises."""
    for line in payload[: _MAX_LINE * 4].split(b"\n")[:8]:
        line = line.rstrip(b"\r")
        found = _parse_line(line)
        if found is not None:
            return found
        if any(byte < 0x20 or byte > 0x7E for byte in line):
            return None  # a preamble is text lines; binary data before "SSH-" is something else
    return None
