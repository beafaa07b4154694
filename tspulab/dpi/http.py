"""The start of an HTTP/1.x request, as an ISP filter reads it: method, path and Host.

What is modelled: the request line and header block of RFC 9112 §3 and §5, read leniently the way
a middlebox does (bare LF accepted as a line end, header names case-insensitive, the first Host
header wins, no body). Earlier Russian ISP filters blocked plaintext HTTP by Host and URL
(tspu-behaviour.md §4). Whether a request split over segments is seen is the reassembly mode's
business: this parser reports what the bytes it was given contain, and whether the header block
was complete.
"""

from __future__ import annotations

from dataclasses import dataclass

from tspulab.dpi.errors import Malformed, NeedData

METHODS = frozenset(
    (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"TRACE")
)
_MAX_METHOD = 7
_MAX_REQUEST_LINE = 8192


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    """The request target as sent (origin-form path, or authority for CONNECT)."""
    version: str
    """"HTTP/1.0" or "HTTP/1.1"."""
    host: str | None
    """The first Host header's value as sent (stripped of surrounding whitespace)."""
    headers_complete: bool
    """True when the blank line ending the header block was in the bytes given."""


def looks_like_http_request(data: bytes) -> bool:
    """A cheap first-bytes test: a known method followed by a space."""
    space = data.find(b" ", 0, _MAX_METHOD + 1)
    return space > 0 and data[:space] in METHODS


def parse_http_request(data: bytes) -> HttpRequest:
    """Parse the request line and as many header lines as ``data`` holds.

    Raises NeedData if even the request line is incomplete, Malformed if it is not HTTP/1.x.
    """
    line_end = data.find(b"\n", 0, _MAX_REQUEST_LINE)
    if line_end < 0:
        if len(data) >= _MAX_REQUEST_LINE:
            raise Malformed(f"HTTP request line longer than {_MAX_REQUEST_LINE} bytes")
        if not looks_like_http_request(data):
            raise Malformed("not an HTTP request: no known method")
        raise NeedData("HTTP request line incomplete")
    parts = data[:line_end].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or parts[0] not in METHODS:
        raise Malformed("HTTP request line is not 'METHOD target HTTP/1.x'")
    method, target, version = parts
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise Malformed(f"HTTP version {version[:16]!r} is not HTTP/1.x")
    host: str | None = None
    complete = False
    pos = line_end + 1
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break  # header block continues beyond these bytes
        line = data[pos:nl].rstrip(b"\r")
        pos = nl + 1
        if not line:
            complete = True
            break
        colon = line.find(b":")
        if colon <= 0:
            continue  # a line a server would reject; a filter reads past it
        if host is None and line[:colon].strip().lower() == b"host":
            host = line[colon + 1 :].strip().decode("ascii", errors="replace")
    return HttpRequest(
        method=method.decode("ascii"),
        path=target.decode("ascii", errors="replace"),
        version=version.decode("ascii"),
        host=host,
        headers_complete=complete,
    )
