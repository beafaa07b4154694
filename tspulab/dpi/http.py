"""The start of an HTTP/1.x request, as an ISP filter reads it: method, path and Host.

What is modelled: the request line and header block of RFC 9112 §3 and §5, read leniently the way
a middlebox does (bare LF accepted as a line end, header names case-insensitive, the first Host
header wins, no body). Methods are the IANA HTTP Method Registry (RFC 9110 and the WebDAV, DeltaV,
CalDAV, ACL, SEARCH, BIND and redirect-reference RFCs) plus Microsoft's RPC-over-HTTP methods
that nDPI also knows. The request line is split on runs of spaces and tabs, as RFC 9112 §3 allows
a recipient to ("GET  /x HTTP/1.1" and a trailing space are real), and ``METHOD target`` with no
version is an HTTP/0.9 request. A flow of which only the server side is seen (one-way capture,
asymmetric routing) is still HTTP from its status line: ``http_response_status``.

Earlier Russian ISP filters blocked plaintext HTTP by Host and URL (tspu-behaviour.md §4).
Whether a request split over segments is seen is the reassembly mode's business: this parser
reports what the bytes it was given contain, and whether the header block was complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tspulab.dpi.errors import Malformed, NeedData

_METHOD_NAMES = (
    # RFC 9110 §9, RFC 5789
    "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH "
    # WebDAV (RFC 4918), ordered collections (RFC 3648), ACL (RFC 3744), SEARCH (RFC 5323)
    "PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK ORDERPATCH ACL SEARCH "
    # DeltaV versioning (RFC 3253)
    "VERSION-CONTROL REPORT CHECKOUT CHECKIN UNCHECKOUT MKWORKSPACE UPDATE LABEL MERGE "
    "BASELINE-CONTROL MKACTIVITY "
    # CalDAV (RFC 4791), BIND (RFC 5842), redirect references (RFC 4437), HTTP/2 preface
    "MKCALENDAR BIND UNBIND REBIND MKREDIRECTREF UPDATEREDIRECTREF PRI "
    # Microsoft RPC over HTTP (read by nDPI as HTTP too)
    "RPC_CONNECT RPC_IN_DATA RPC_OUT_DATA"
)
METHODS = frozenset(m.encode() for m in _METHOD_NAMES.split())
_MAX_METHOD = max(len(m) for m in METHODS)
_MAX_REQUEST_LINE = 8192
_VERSION = re.compile(rb"HTTP/1\.\d\Z")
_STATUS_LINE = re.compile(rb"HTTP/1\.[019][ \t]+([1-5]\d\d)(?:[ \t]|\r?\n|\Z)")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    """The request target as sent (origin-form path, or authority for CONNECT)."""
    version: str
    """As sent: "HTTP/1.1", "HTTP/1.0", "HTTP/2.0" (the PRI preface); "HTTP/0.9" when absent."""
    host: str | None
    """The first Host header's value as sent (stripped of surrounding whitespace)."""
    headers_complete: bool
    """True when the blank line ending the header block was in the bytes given."""


def looks_like_http_request(data: bytes) -> bool:
    """A cheap first-bytes test: a known method followed by a space (or tab)."""
    space = data.find(b" ", 0, _MAX_METHOD + 1)
    if space < 0:
        space = data.find(b"\t", 0, _MAX_METHOD + 1)
    return space > 0 and data[:space] in METHODS


def http_response_status(data: bytes) -> int | None:
    """The status code of an HTTP/1.x status line at the start of ``data`` (RFC 9112 §4), or
    None: ``HTTP/1.x``, whitespace, three digits 100-599, then whitespace or the line end."""
    if not data.startswith(b"HTTP/1."):
        return None
    match = _STATUS_LINE.match(data, 0, 64)
    return int(match[1]) if match else None


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
    parts = data[:line_end].split()  # runs of spaces/tabs; the CR goes too
    if len(parts) == 2 and parts[0] in METHODS:
        parts.append(b"HTTP/0.9")  # RFC 1945 §4.1 simple request: no version
    if len(parts) != 3 or parts[0] not in METHODS:
        raise Malformed("HTTP request line is not 'METHOD target HTTP/x.y'")
    method, target, version = parts
    h2_preface = method == b"PRI" and version == b"HTTP/2.0"  # RFC 9113 §3.4
    if _VERSION.match(version) is None and version != b"HTTP/0.9" and not h2_preface:
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
