"""The bench client's options for the client strategies."""

from __future__ import annotations

from tspulab.strategies.spec import parse
from tspulab.strategies.tlsclient import alpn_list, s_client_argv, sent_name


def test_sni_case_and_trailing_dot() -> None:
    assert sent_name("twitter.com", parse("sni-case").steps) == "TwItTeR.CoM"
    assert sent_name("twitter.com", parse("sni-case:upper+sni-dot").steps) == "TWITTER.COM."
    assert sent_name("twitter.com", parse("split:sni").steps) == "twitter.com"


def test_padding_alpn_adds_at_least_the_size_in_names_of_at_most_255_bytes() -> None:
    names = alpn_list(parse("pad:1600").steps).split(",")
    assert names[0] == "http/1.1"
    assert sum(len(n) + 1 for n in names[1:]) >= 1600 and all(len(n) <= 255 for n in names)
    assert alpn_list(()) == "http/1.1"


def test_argv_goes_through_the_proxy_only_when_asked() -> None:
    argv = s_client_argv("10.0.0.1", "t.example", "/ca.pem", parse("sni-dot").steps)
    assert argv[argv.index("-servername") + 1] == "t.example." and "-proxy" not in argv
    assert argv[argv.index("-verify_hostname") + 1] == "t.example"
    assert s_client_argv("10.0.0.1", "t", "/c", (), proxy="127.0.0.1:1080")[-2:] == [
        "-proxy",
        "127.0.0.1:1080",
    ]
