"""A probe through a method: one curl through the tool's own client, with TTFB and goodput.

curl runs in the subscriber's namespace and goes through the `Access` the client gave: its local
SOCKS5 proxy (names resolved by the far side, as socks5h), its HTTP CONNECT proxy, or plainly
over the routes of its TUN interface. `--write-out %{json}` gives the timings: time to first byte
is `time_starttransfer`, goodput is the body's bytes over the transfer time after the first byte
(or the whole time when the body came in one go).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tspulab.methods.base import Access
from tspulab.methods.process import Node


@dataclass(frozen=True)
class MethodProbe:
    """One fetch through a method. `ok`: HTTP 200/206 with the full body within the timeout."""

    method: str
    url: str
    ok: bool
    outcome: str
    curl_exit: int
    http_code: int | None
    size_bytes: int
    ttfb_s: float | None
    total_s: float | None
    goodput_bps: float | None
    """Bits per second of the body, from the first byte to the last."""
    access: str
    started: float
    stderr: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parse(stdout: str) -> dict[str, Any]:
    last = stdout.rstrip("\n").rpartition("\n")[2]
    try:
        info = json.loads(last)
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def goodput_bps(size: int, ttfb_s: float | None, total_s: float | None) -> float | None:
    if not size or total_s is None:
        return None
    window = total_s - (ttfb_s or 0.0)
    if window < 0.005:  # the body came with the first byte: use the whole request
        window = total_s
    return size * 8 / window if window > 0 else None


def probe_through(
    node: Node,
    access: Access,
    url: str,
    *,
    method: str,
    timeout_s: float = 10.0,
    ca: Path | None = None,
    expect_bytes: int | None = None,
    argv_prefix: list[str] | None = None,
    extra_curl: list[str] | None = None,
    expect_text: str | None = None,
) -> MethodProbe:
    """Fetch `url` from `node` through `access`.

    `expect_bytes`: the body must be this long (a bulk transfer); `expect_text`: the body must
    contain it (the page names the service that answered: reaching another host is no success);
    `argv_prefix` wraps curl; `extra_curl` adds curl options (e.g. a Host header)."""
    if access.command is not None:  # a custom tool's own command fetches the URL
        from tspulab.methods.custom import command_probe

        return command_probe(
            node, access, url, method=method, timeout_s=timeout_s, expect_text=expect_text
        )
    if access.mtproto is not None:  # Telegram's own protocol through an MTProto proxy
        from tspulab.methods.mtproto_client import mtproto_probe

        return mtproto_probe(
            node, access, url, method=method, timeout_s=timeout_s, expect_bytes=expect_bytes
        )
    if access.front:
        # Domain fronting: the innocent name in the URL (SNI, certificate), the real one in Host.
        parts = urlsplit(url)
        extra_curl = [*(extra_curl or []), "-H", f"Host: {parts.hostname}"]
        url = urlunsplit(parts._replace(netloc=access.front))
        ca = Path(access.ca) if access.ca else ca
    body_to = "-" if expect_text is not None else "/dev/null"
    argv = ["curl", "-sS", "-o", body_to, "--max-time", f"{timeout_s:g}", "-w", "\\n%{json}"]
    argv += access.curl_args()
    if ca is not None:
        argv += ["--cacert", str(ca)]
    argv += [*(extra_curl or []), url]
    started = time.time()
    proc = node.popen([*(argv_prefix or []), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    text = out.decode(errors="replace")
    info = _parse(text)
    body = text.rstrip("\n").rpartition("\n")[0]
    code = proc.returncode
    http = info.get("http_code") or info.get("response_code")
    size = int(info.get("size_download") or 0)
    ttfb = info.get("time_starttransfer")
    total = info.get("time_total")
    ttfb_s = float(ttfb) if isinstance(ttfb, int | float) and ttfb > 0 else None
    total_s = float(total) if isinstance(total, int | float) else None
    complete = expect_bytes is None or size == expect_bytes
    right = expect_text is None or expect_text in body
    ok = code == 0 and http in (200, 206) and complete and right
    if ok:
        outcome = "ok"
    elif code == 0:
        if http not in (200, 206):
            outcome = f"http-{http}"
        else:
            outcome = f"short-body ({size} B)" if not complete else "wrong-service"
    else:
        outcome = {
            5: "proxy-unresolved",
            7: "connect-failed",
            28: "timeout",
            35: "tls-handshake-failed",
            52: "empty-reply",
            56: "recv-failed",
            97: "proxy-handshake-failed",
        }.get(code, f"curl-exit-{code}")
    return MethodProbe(
        method=method,
        url=url,
        ok=ok,
        outcome=outcome,
        curl_exit=code,
        http_code=http if isinstance(http, int) else None,
        size_bytes=size,
        ttfb_s=ttfb_s,
        total_s=total_s,
        goodput_bps=goodput_bps(size, ttfb_s, total_s) if ok else None,
        access=access.describe(),
        started=started,
        stderr=err.decode(errors="replace").strip()[-300:],
    )
