"""HTTP/1.x request line and Host header."""

from __future__ import annotations

import pytest

from tspulab.dpi.errors import Malformed, NeedData
from tspulab.dpi.http import http_response_status, looks_like_http_request, parse_http_request


def test_request_with_host() -> None:
    req = parse_http_request(b"GET /a?b=1 HTTP/1.1\r\nUser-Agent: x\r\nHost: Example.com\r\n\r\n")
    assert (req.method, req.path, req.version) == ("GET", "/a?b=1", "HTTP/1.1")
    assert req.host == "Example.com" and req.headers_complete


@pytest.mark.parametrize("name", [b"host", b"HOST", b"hOsT"])
def test_host_header_name_is_case_insensitive(name: bytes) -> None:
    assert parse_http_request(b"GET / HTTP/1.0\r\n" + name + b":  a.test \r\n\r\n").host == "a.test"


def test_first_host_wins_and_bare_lf_is_accepted() -> None:
    req = parse_http_request(b"POST /x HTTP/1.1\nHost: one.test\nHost: two.test\n\n")
    assert req.host == "one.test" and req.headers_complete


def test_connect_authority_form() -> None:
    req = parse_http_request(b"CONNECT proxy.test:443 HTTP/1.1\r\nHost: proxy.test:443\r\n\r\n")
    assert req.method == "CONNECT" and req.path == "proxy.test:443"


def test_incomplete_headers_report_what_was_seen() -> None:
    req = parse_http_request(b"GET / HTTP/1.1\r\nAccept: */*\r\nHo")
    assert req.host is None and not req.headers_complete


def test_truncated_request_line_needs_data() -> None:
    with pytest.raises(NeedData):
        parse_http_request(b"GET /very/long")


@pytest.mark.parametrize(
    "data",
    [
        b"FOO / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / x HTTP/1.1\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",  # methods are case-sensitive (RFC 9110 §9.1)
        b"\x16\x03\x01abc\n",
    ],
)
def test_not_http_is_malformed(data: bytes) -> None:
    with pytest.raises(Malformed):
        parse_http_request(data)


@pytest.mark.parametrize(
    "method",
    ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH",
     "MKCALENDAR", "ACL", "BIND", "VERSION-CONTROL", "UPDATEREDIRECTREF", "RPC_IN_DATA"],
)  # fmt: skip
def test_registered_methods(method: str) -> None:
    line = f"{method} /dav/ HTTP/1.1\r\nHost: dav.test\r\n\r\n".encode()
    assert looks_like_http_request(line)
    assert parse_http_request(line).method == method


@pytest.mark.parametrize(
    "line",
    [
        b"GET  /x HTTP/1.1\r\n",  # two spaces
        b"GET /x  HTTP/1.1\r\n",
        b"GET\t/x\tHTTP/1.1\r\n",  # tabs
        b"GET /x HTTP/1.1 \r\n",  # trailing space
        b"GET /x HTTP/1.1\n",
    ],
)
def test_odd_request_line_spacing(line: bytes) -> None:
    req = parse_http_request(line + b"Host: odd.test\r\n\r\n")
    assert (req.method, req.path, req.version, req.host) == ("GET", "/x", "HTTP/1.1", "odd.test")


def test_http_09_simple_request_and_h2_preface() -> None:
    assert parse_http_request(b"GET /\r\n").version == "HTTP/0.9"
    assert parse_http_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").version == "HTTP/2.0"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 404 Not Found\r\n", 404),
        (b"HTTP/1.1 204\r\n", 204),  # empty reason phrase
        (b"HTTP/1.1 301", 301),
        (b"HTTP/1.1 2000 OK\r\n", None),
        (b"HTTP/1.1 OK\r\n", None),
        (b"HTTP/2 200\r\n", None),
        (b"xHTTP/1.1 200 OK\r\n", None),
    ],
)
def test_response_status_line(data: bytes, status: int | None) -> None:
    assert http_response_status(data) == status


def test_looks_like_http_request() -> None:
    assert looks_like_http_request(b"GET / HTTP/1.1")
    assert looks_like_http_request(b"OPTIONS * HTTP/1.1")
    assert not looks_like_http_request(b"GETX / HTTP/1.1")
    assert not looks_like_http_request(b"HTTP/1.1 200 OK")
