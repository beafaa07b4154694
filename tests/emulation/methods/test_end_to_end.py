"""Each circumvention tool carries real traffic end to end in a network of its own.

The subscriber reaches the target (nginx, HTTPS, certificate checked against the run's CA) only
through the method (see conftest): a probe that succeeds proves the tool's own client and server
carried it. Each case fetches the page and a 4 MiB range of /bulk, and reports TTFB and goodput
(printed, and written to <run dir>/methods-results.jsonl).
"""

from __future__ import annotations

import json

import pytest

from tests.emulation.methods.cases import CASES, Case, running
from tests.emulation.methods.conftest import TARGET_IP, World
from tspulab.lab.services import site_marker
from tspulab.methods.base import Access
from tspulab.methods.probe import probe_through

BULK = 4 * 1024 * 1024


def _direct_is_impossible(world: World) -> None:
    direct = probe_through(
        world.sub, Access(), world.url, method="direct", timeout_s=2, ca=world.ca.ca_path
    )
    assert not direct.ok, "the target must be unreachable without a method"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_method_carries_traffic(world: World, case: Case) -> None:
    _direct_is_impossible(world)
    with running(world, case) as (_, access):
        page = probe_through(
            world.sub, access, world.url, method=case.id, timeout_s=15, ca=world.ca.ca_path,
            expect_text=site_marker("target"),
        )  # fmt: skip
        assert page.ok, f"{case.id}: {page.outcome} {page.stderr}"
        bulk = probe_through(
            world.sub, access, world.bulk_url, method=case.id, timeout_s=30,
            ca=world.ca.ca_path, expect_bytes=BULK, extra_curl=["-r", f"0-{BULK - 1}"],
        )  # fmt: skip
        assert bulk.ok, f"{case.id}: bulk {bulk.outcome} {bulk.stderr}"
        assert bulk.goodput_bps and bulk.goodput_bps > 1e6
        # Only what goes through the method's client is carried: the subscriber's other traffic
        # (a direct probe beside it) is not.
        _direct_is_impossible(world)
        with (world.run_dir / "methods-results.jsonl").open("a") as f:
            f.write(json.dumps({"case": case.id, "page": page.to_json(), "bulk": bulk.to_json()}))
            f.write("\n")
        assert page.ttfb_s is not None
        print(
            f"\n{case.id}: {access.describe()} TTFB {page.ttfb_s * 1000:.1f} ms, "
            f"goodput {bulk.goodput_bps / 1e6:.1f} Mbit/s"
        )
    # Stopped: the way through is gone again.
    _direct_is_impossible(world)
    assert TARGET_IP not in world.sub.cmd("ip route")
