"""The subscriber's MTProto client: obfuscated2 through a proxy with its secret, one request.

What a Telegram app did with a `tg://proxy?server=...&port=...&secret=...` link in 2018: connect
to the proxy, send the 64-byte obfuscated2 init keyed with the secret and the data centre it
wants, then MTProto packets in the framing its init named. The lab's request asks the data
centre (`mtproto_dc`) for a reply of a given size; time to first byte is from the start of the
connection to the first byte of the reply (as curl's `time_starttransfer`), goodput is the
reply's bytes over the time after it.

An MTProto proxy carries Telegram and nothing else: a probe of another service's URL fails
(`not-telegram`) without connecting, as a user could not open a web site through it.

Run in a subscriber's namespace as
`python -m tspulab.methods.mtproto_client LINK --size N --timeout S`; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tspulab.methods.mtproto_transport import (
    PROTOCOL_TAGS,
    FrameReader,
    TransportError,
    client_handshake,
    echo_request,
    frame,
)

if TYPE_CHECKING:  # the lab's modules load Mininet: the client process does without them
    from tspulab.methods.base import Access
    from tspulab.methods.probe import MethodProbe
    from tspulab.methods.process import Node

PAGE_BYTES = 4096
"""The reply a page probe asks for (a message history's worth of bytes)."""


def proxy_link(
    server: str, port: int, secret: str, *, transport: str, dc: int, domains: tuple[str, ...]
) -> str:
    """A tg://proxy link as users shared them, with the lab's extras (framing, DC, the names
    that are Telegram's) after the three standard fields."""
    query = {"server": server, "port": port, "secret": secret, "transport": transport, "dc": dc}
    return f"tg://proxy?{urlencode(query)}&domains={','.join(domains)}"


def _parse_link(link: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def fetch(link: str, size: int, timeout_s: float) -> dict[str, Any]:
    """One request of `size` bytes through the proxy of `link`: a result dict (ok, outcome,
    ttfb_s, total_s, size)."""
    fields = _parse_link(link)
    tag = PROTOCOL_TAGS[fields["transport"]]
    secret = bytes.fromhex(fields["secret"])
    started = time.monotonic()
    result: dict[str, Any] = {"ok": False, "size": 0, "ttfb_s": None, "total_s": None}
    got = 0
    try:
        with socket.create_connection(
            (fields["server"], int(fields["port"])), timeout=timeout_s
        ) as sock:
            sock.settimeout(max(0.05, timeout_s - (time.monotonic() - started)))
            init, streams = client_handshake(tag, secret=secret, dc=int(fields["dc"]))
            sock.sendall(init + streams.encrypt(frame(tag, echo_request(size))))
            frames = FrameReader(tag)
            seen = False  # a reply frame came (a request of 0 bytes gets one empty frame)
            while got < size or not seen:
                left = timeout_s - (time.monotonic() - started)
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(262144)
                if not data:
                    result["outcome"] = "closed"
                    break
                if result["ttfb_s"] is None:
                    result["ttfb_s"] = time.monotonic() - started
                for payload in frames.feed(streams.decrypt(data)):
                    got += len(payload)
                    seen = True
            else:
                result["ok"] = True
                result["outcome"] = "ok"
    except TimeoutError:
        result["outcome"] = "timeout"
    except ConnectionRefusedError:
        result["outcome"] = "connect-refused"
    except ConnectionResetError:
        result["outcome"] = "reset"
    except OSError as err:
        result["outcome"] = f"connect-failed: {err}"
    except TransportError as err:
        result["outcome"] = f"transport: {err}"
    result["size"] = got
    result["total_s"] = time.monotonic() - started
    return result


def mtproto_probe(
    node: Node,
    access: Access,
    url: str,
    *,
    method: str,
    timeout_s: float,
    expect_bytes: int | None = None,
) -> MethodProbe:
    """A probe of `url` from `node` through the MTProto proxy `access.mtproto` names."""
    from tspulab.methods.probe import MethodProbe, goodput_bps

    assert access.mtproto is not None
    host = urlsplit(url).hostname or ""
    domains = _parse_link(access.mtproto).get("domains", "").split(",")
    started = time.time()
    if host not in domains:
        return MethodProbe(
            method=method, url=url, ok=False, outcome="not-telegram", curl_exit=-1,
            http_code=None, size_bytes=0, ttfb_s=None, total_s=None, goodput_bps=None,
            access=access.describe(), started=started,
            stderr=f"an MTProto proxy carries only Telegram ({', '.join(domains)}), not {host}",
        )  # fmt: skip
    size = expect_bytes if expect_bytes is not None else PAGE_BYTES
    argv = [sys.executable, "-m", "tspulab.methods.mtproto_client", access.mtproto]
    argv += ["--size", str(size), "--timeout", f"{timeout_s:g}"]
    proc = node.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    try:
        info = json.loads(out.decode(errors="replace").strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        info = {"ok": False, "outcome": f"client-exit-{proc.returncode}", "size": 0}
    ok = bool(info.get("ok")) and info.get("size", 0) >= size
    ttfb, total = info.get("ttfb_s"), info.get("total_s")
    return MethodProbe(
        method=method, url=url, ok=ok, outcome="ok" if ok else str(info.get("outcome")),
        curl_exit=proc.returncode, http_code=None, size_bytes=int(info.get("size", 0)),
        ttfb_s=ttfb, total_s=total,
        goodput_bps=goodput_bps(int(info["size"]), ttfb, total) if ok else None,
        access=access.describe(), started=started,
        stderr=err.decode(errors="replace").strip()[-300:],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tspulab.methods.mtproto_client")
    parser.add_argument("link", help="tg://proxy?server=...&port=...&secret=...")
    parser.add_argument("--size", type=int, default=PAGE_BYTES)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    result = fetch(args.link, args.size, args.timeout)
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
