"""The `mtproto` method in the methods' own network: the lab's MTProto proxy and data centre in
the server host, the project's client in the subscribers, a capture where a TSPU would sit.

The target's web page is not what an MTProto proxy carries (it relays Telegram only), so the
probes ask for Telegram (`web.telegram.org`, the method's default `telegram_domains`); the
reply comes from the lab's data centre behind the proxy, which the subscriber cannot reach on
its own (it listens on the server host's loopback).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.emulation.methods.conftest import SERVER_IP, World
from tests.emulation.methods.test_dpi_sees import replay, tool_flows
from tspulab.methods.base import Access, Method, MethodContext
from tspulab.methods.mtproto import Mtproto
from tspulab.methods.options import MtprotoOptions
from tspulab.methods.probe import probe_through
from tspulab.methods.process import Processes, wait_log

PORT = 8443
TELEGRAM = "https://web.telegram.org/"
BULK = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def mtproto(world: World) -> Iterator[Method]:
    ctx = MethodContext(
        name="mt", directory=world.run_dir / "methods" / "mt", server_address=SERVER_IP,
        port=PORT, options=MtprotoOptions(), record=world.record, clients=2,
    )  # fmt: skip
    method = Mtproto(ctx)
    method.start_server(world.srv)
    yield method
    method.stop()


@pytest.mark.parametrize("transport", ["abridged", "intermediate"])
def test_page_and_bulk_through_the_proxy(world: World, mtproto: Method, transport: str) -> None:
    base = mtproto.start_client(world.sub)
    assert base.mtproto is not None
    access = Access(mtproto=base.mtproto.replace("transport=abridged", f"transport={transport}"))
    for node in (world.sub, world.sub2):
        page = probe_through(node, access, TELEGRAM, method="mt", timeout_s=10)
        assert page.ok and page.size_bytes == 4096 and page.ttfb_s, (page.outcome, page.stderr)
        bulk = probe_through(
            node, access, TELEGRAM + "bulk", method="mt", timeout_s=30, expect_bytes=BULK
        )
        assert bulk.ok and bulk.size_bytes == BULK, (bulk.outcome, bulk.stderr)
        assert bulk.goodput_bps and bulk.goodput_bps > 1e6
        print(
            f"\nmtproto {transport} from {node.name}: TTFB {page.ttfb_s * 1000:.1f} ms, "
            f"goodput {bulk.goodput_bps / 1e6:.0f} Mbit/s"
        )
    assert mtproto.health(world.srv) is None


def test_only_telegram_goes_through(world: World, mtproto: Method) -> None:
    access = mtproto.start_client(world.sub)
    other = probe_through(world.sub, access, world.url, method="mt", timeout_s=5)
    assert not other.ok and other.outcome == "not-telegram"


def test_a_stranger_without_the_secret_gets_nothing(world: World, mtproto: Method) -> None:
    access = mtproto.start_client(world.sub)
    assert access.mtproto is not None
    secret = (mtproto.directory / "secret").read_text().strip()
    wrong = Access(mtproto=access.mtproto.replace(secret, "00" * 16))
    got = probe_through(world.sub, wrong, TELEGRAM, method="mt", timeout_s=5)
    assert not got.ok and got.outcome == "closed" and got.size_bytes == 0


def test_what_the_tspu_sees(world: World, mtproto: Method) -> None:
    """Three connections captured between subscriber and server, replayed under the profiles:
    fully-encrypted from the first packet (vpn-detect-2025 detects), nothing else names it. One
    first packet in ~130 is exempt by chance (random bytes: docs/methods.md), hence three."""
    pcap = world.run_dir / "mtproto.pcap"
    procs = Processes(world.run_dir / "captures", world.record)
    dump = procs.start(
        world.srv,
        ["tcpdump", "-i", world.server_dev, "-n", "-U", "--immediate-mode", "-s", "0", "-w",
         str(pcap), "tcp port", str(PORT)],
        "tcpdump-mtproto",
    )  # fmt: skip
    try:
        wait_log(dump, r"listening on", tool="tcpdump", timeout_s=10)
        access = mtproto.start_client(world.sub)
        for _ in range(3):
            got = probe_through(world.sub, access, TELEGRAM, method="mt", timeout_s=10)
            assert got.ok, got.outcome
        time.sleep(0.3)
    finally:
        procs.stop()
    seen = {
        p: tool_flows(replay(pcap, p), PORT)
        for p in ("vpn-detect-2025", "vpn-protocols-2023", "tspu-2022")
    }
    print(f"\nmtproto: {seen}")
    detect = seen["vpn-detect-2025"]
    assert len(detect) == 3, seen
    assert sum(1 for p, v in detect if (p, v) == ("fully-encrypted", "detect")) >= 2, seen
    for profile in ("vpn-protocols-2023", "tspu-2022"):
        assert {v for _, v in seen[profile]} == {"allow"}, seen
    assert {p for flows in seen.values() for p, _ in flows} <= {"fully-encrypted", None}, seen
