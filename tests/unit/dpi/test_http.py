"""HTTP/1.x request line and Host header."""

from __future__ import annotations

import pytest

from tspulab.dpi.errors import Malformed, NeedData
from tspulab.dpi.http import looks_like_http_request, parse_http_request


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
    [b"FOO / HTTP/1.1\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET /\r\n\r\n", b"\x16\x03\x01abc\n"],
)
def test_not_http_is_malformed(data: bytes) -> None:
    with pytest.raises(Malformed):
        parse_http_request(data)


def test_looks_like_http_request() -> None:
    assert looks_like_http_request(b"GET / HTTP/1.1")
    assert looks_like_http_request(b"OPTIONS * HTTP/1.1")
    assert not looks_like_http_request(b"GETX / HTTP/1.1")
    assert not looks_like_http_request(b"HTTP/1.1 200 OK")
