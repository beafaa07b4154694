"""Every strategy the spec language knows: its layer, parameters, and the sources it cites.

Layers say where a strategy runs:

``stream``
    in the subscriber's namespace, a local SOCKS5 proxy that edits the client's first write (the
    ClientHello) and decides how it is written to the socket (proxy.py, like byedpi);
``packet``
    in the subscriber's namespace, an NFQUEUE rewriter on the way out (rewriter.py, like
    zapret's nfqws): fakes injected before the real packet, IP fragments instead of it;
``server``
    in the server's namespace, an NFQUEUE rewriter of the server's handshake (serverside.py);
``client``
    options of the TLS client itself (the SNI it sends, the size of its ClientHello). A proxy
    cannot change the ClientHello's contents: the TLS 1.3 transcript hash (RFC 8446 §4.4.1)
    covers it, and the server's Finished check fails (measured: OpenSSL "bad record mac").

Sources are the fact sheet's sections (docs/tspu-behaviour.md §N) with the primary source it names;
docs/strategies.md has the table of what worked where.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_-]{1,63})(\.[A-Za-z0-9_-]{1,63})*\.?$")


@dataclass(frozen=True, slots=True)
class Position:
    """A byte position in the client's first write: ``N`` (from its start) or ``sni`` (the middle
    of the host name in the ClientHello), plus ``off`` bytes."""

    anchor: str
    """"abs" or "sni"."""
    value: int = 0

    def text(self) -> str:
        if self.anchor == "abs":
            return str(self.value)
        return "sni" if self.value == 0 else f"sni{self.value:+d}"

    @classmethod
    def parse(cls, raw: object) -> Position:
        if isinstance(raw, Position):
            return raw
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a position (an integer >= 1, 'sni' or 'sni-N')")
        if isinstance(raw, int):
            if raw < 1:
                raise ValueError(f"{raw} is not a position: it must be >= 1")
            return cls("abs", raw)
        text = str(raw).strip().lower()
        if text.isdigit():
            return cls.parse(int(text))
        match = re.fullmatch(r"sni(-\d+)?", text)
        if match:
            return cls("sni", int(match.group(1) or 0))
        raise ValueError(
            f"{raw!r} is not a position (an integer >= 1, 'sni' or 'sni-N'; "
            "'+' joins strategies, so write sni:off=N for a later byte)"
        )


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str
    """int, position, flag, choice, host, or opt-int (an int or unset)."""
    default: Any
    doc: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] = ()
    multiple_of: int = 1

    def convert(self, raw: object) -> int | str | bool | Position | None:
        if self.kind == "position":
            return Position.parse(raw)
        if self.kind == "flag":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{raw!r} is not a flag value (true/false, 1/0)")
        if self.kind in ("int", "opt-int"):
            return self._int(raw)
        if self.kind == "choice":
            text = str(raw).strip().lower()
            if text not in self.choices:
                raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
            return text
        if self.kind == "host":
            text = str(raw).strip()
            if not _HOST.match(text):
                raise ValueError(f"{raw!r} is not a host name")
            return text
        raise AssertionError(self.kind)

    def _int(self, raw: object) -> int:
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not an integer")
        if isinstance(raw, int):
            value = raw
        else:
            text = str(raw).strip().lower()
            try:
                value = int(text, 16) if text.startswith("0x") else int(text, 10)
            except ValueError:
                raise ValueError(f"{raw!r} is not an integer") from None
        if self.lo is not None and value < self.lo:
            raise ValueError(f"{value} is below the minimum {self.lo}")
        if self.hi is not None and value > self.hi:
            raise ValueError(f"{value} is above the maximum {self.hi}")
        if value % self.multiple_of:
            raise ValueError(f"{value} is not a multiple of {self.multiple_of}")
        return value


Check = Callable[[Mapping[str, Any]], str | None]


def _no_check(_: Mapping[str, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class StrategyDef:
    name: str
    layer: str
    transport: str
    """tcp, udp or any: what connections it applies to."""
    summary: str
    sources: str
    params: tuple[Param, ...] = ()
    repeatable: bool = False
    check: Check = _no_check
    by_name: dict[str, Param] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})


def _at(doc: str = "where to cut: N bytes from the start, or sni (mid host name)") -> Param:
    return Param("at", "position", Position("sni"), doc)


_OFF = Param("off", "int", 0, "bytes added to the position (may be negative)", lo=-4096, hi=4096)


def _fake_check(params: Mapping[str, Any]) -> str | None:
    if params["ttl"] is None and not (params["badsum"] or params["badseq"] or params["md5"]):
        return (
            "a fake needs a way to stay away from the server: ttl=N (expires after the TSPU), "
            "badsum, badseq or md5"
        )
    return None


_STEPS = (
    StrategyDef(
        "split",
        "stream",
        "tcp",
        "the first write goes out as two TCP segments, cut at the position",
        "§6 (ClientHello split row): CP-THR §3, CP-TSPU §2.5; fails on reassembling nodes, "
        "§5.10 teleproxy #39; BYEDPI --split",
        (_at(), _OFF),
        repeatable=True,
    ),
    StrategyDef(
        "disorder",
        "stream",
        "tcp",
        "the part before the position is sent with TTL 1 (lost at the first hop, retransmitted "
        "by the kernel after the rest), so the box sees the segments out of order",
        "§6 (ClientHello split row): BYEDPI --disorder, ZAPRET disorder",
        (_at(), _OFF, Param("ttl", "int", 1, "TTL of the first part", lo=1, hi=255)),
    ),
    StrategyDef(
        "oob",
        "stream",
        "tcp",
        "one out-of-band (urgent) byte is sent after the part before the position; the server's "
        "stream skips it, a box that ignores the urgent pointer reads it in the ClientHello",
        "BYEDPI --oob (§6 names ByeDPI; no measurement against TSPU in the sheet)",
        (_at(), _OFF, Param("byte", "int", 0x61, "value of the urgent byte", lo=0, hi=255)),
    ),
    StrategyDef(
        "tlsrec",
        "stream",
        "tcp",
        "the ClientHello record is cut into two TLS records at the position inside the handshake "
        "message (RFC 8446 §5.1 allows it)",
        "§6 (TLS record fragmentation row): CP-THR §3, CP-TSPU §2.5, BYEDPI --tlsrec",
        (_at("where to cut: N bytes into the handshake message, or sni"), _OFF),
        repeatable=True,
    ),
    StrategyDef(
        "pad",
        "client",
        "tcp",
        "the TLS client makes its ClientHello at least this big, beyond one packet (in the "
        "bench: a long ALPN list; a proxy cannot, the handshake transcript covers the hello)",
        "§6 (ClientHello padding beyond MTU row): CP-THR §3, CP-TSPU §2.5",
        (Param("size", "int", 1600, "ClientHello record size in bytes", lo=600, hi=16000),),
    ),
    StrategyDef(
        "prefix",
        "stream",
        "tcp",
        "another TLS record is written before the ClientHello, in the same segment",
        "§3 CP-THR (a ChangeCipherSpec record first defeats the parser); §2.5 CP-TSPU "
        "(prepending other TLS records); §6 TLS record row",
        (
            Param(
                "record",
                "choice",
                "ccs",
                "the record put first",
                choices=("ccs", "alert", "appdata", "heartbeat"),
            ),
        ),
    ),
    StrategyDef(
        "sni-case",
        "client",
        "tcp",
        "the TLS client sends the host name with letters in another case (names are "
        "case-insensitive)",
        "§6 (SNI case row): ZAPRET --domcase, GDPI -m (aimed at older ISP DPIs)",
        (
            Param(
                "mode",
                "choice",
                "mixed",
                "mixed (every other letter) or upper",
                choices=("mixed", "upper"),
            ),
        ),
    ),
    StrategyDef(
        "sni-dot",
        "client",
        "tcp",
        "the TLS client sends the host name with a trailing dot",
        "§3 CP-THR (a trailing dot worked on the 2021 throttler); §6 SNI row",
    ),
    StrategyDef(
        "fake",
        "packet",
        "any",
        "fake packets with the same addresses go out before the first data packet; they are kept "
        "from the server by a low TTL, a bad checksum, a bad sequence number or an MD5 option",
        "§6 (fake packet first row): CP-THR §3 (a fake ClientHello fails, >= 101 random bytes "
        "work), NTC-1823 posts 11, 51-55, 66 (QUIC), ZAPRET --dpi-desync=fake, GDPI",
        (
            Param(
                "ttl",
                "opt-int",
                None,
                "TTL of the fakes (expire between TSPU and server)",
                lo=1,
                hi=255,
            ),
            Param("badsum", "flag", False, "wrong TCP/UDP checksum"),
            Param("badseq", "flag", False, "sequence and ack numbers far off (TCP)"),
            Param("md5", "flag", False, "a TCP MD5 signature option (RFC 2385) the server drops"),
            Param(
                "data",
                "choice",
                "hello",
                "payload: a decoy ClientHello, random or zero bytes",
                choices=("hello", "random", "zero"),
            ),
            Param("len", "int", 120, "payload length for random/zero", lo=1, hi=1400),
            Param("sni", "host", "www.example.com", "host name of the decoy ClientHello"),
            Param("repeats", "int", 1, "fakes sent before the real packet", lo=1, hi=20),
            Param(
                "ipid",
                "choice",
                "other",
                "IP ID of the fake: other or same as the real one",
                choices=("other", "same"),
            ),
        ),
        check=_fake_check,
    ),
    StrategyDef(
        "ipfrag",
        "packet",
        "any",
        "the first data packet (or UDP datagram) goes out as two IP fragments, cut at the "
        "position inside its transport payload (rounded down to 8 bytes)",
        "§2.4 and §6 (IP fragmentation row): CP-TSPU (fragments not reassembled), NTC-1823 "
        "post 11, ZAPRET ipfrag2",
        (
            _at(),
            _OFF,
            Param(
                "order",
                "choice",
                "forward",
                "which fragment is sent first",
                choices=("forward", "reverse"),
            ),
            Param(
                "overlap",
                "int",
                0,
                "the second fragment repeats this many bytes of the first",
                lo=0,
                hi=1024,
                multiple_of=8,
            ),
        ),
    ),
    StrategyDef(
        "udpfake",
        "packet",
        "udp",
        "datagrams that are not QUIC Initials go out first on the flow: random bytes, zero "
        "padding, or a QUIC short-header packet",
        "§5.3 NTC-1823 posts 11 (a non-QUIC first packet ends inspection), 51-55 (a short-header "
        "fake > 600 B), 61 (5 fakes); §6 fake row",
        (
            Param(
                "data",
                "choice",
                "random",
                "random, zero (padding) or short (short header)",
                choices=("random", "zero", "short"),
            ),
            Param("len", "int", 64, "datagram payload length", lo=1, hi=1400),
            Param("repeats", "int", 1, "fakes sent before the real datagram", lo=1, hi=20),
            Param("ttl", "opt-int", None, "TTL of the fakes (unset: the real TTL)", lo=1, hi=255),
        ),
    ),
    StrategyDef(
        "srvwin",
        "server",
        "tcp",
        "the server's SYN/ACK advertises a small window, so the client sends its ClientHello in "
        "window-sized segments (brdgrd)",
        "§2.5 and §6 (server side: small TCP window row): CP-TSPU",
        (Param("size", "int", 40, "window in the SYN/ACK", lo=1, hi=65535),),
    ),
    StrategyDef(
        "split-handshake",
        "server",
        "tcp",
        "the server answers the SYN with a SYN (simultaneous open, RFC 9293 §3.5), then completes "
        "the handshake; the box sees a SYN from the remote side",
        "§2.3 and §6 (server side: TCP split handshake row): CP-TSPU",
    ),
)

CATALOGUE: dict[str, StrategyDef] = {s.name: s for s in _STEPS}
