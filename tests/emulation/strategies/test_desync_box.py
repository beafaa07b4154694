"""A TSPU that detects desync fakes (tspu-2026-desync, tspulab/dpi/desync.py) in the OVS lab.

Sources: tspu-behaviour.md §10.2 (zapret #2002, youtubeUnblock #356) [A]: users report the TSPU
detecting desync fakes and then blocking the flow or the host; §6 fake row: low TTL must be
chosen per ISP (ZAPRET). The lab puts the TSPU after the subscriber's gateway (`hops: {tspu: 1,
border: 2}`), so real packets reach it with TTL 63 and a `ttl=2` fake with TTL 1: the box sees
the mismatch where a real box would. One lab, the box keeping its memory between strategies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulation.helpers import in_sandbox
from tspulab.strategies.labsweep import scenario_text, sweep_lab

PROFILE = "tspu-2026-desync"
RECORDS = "tlsrec:at=1"
FAKE = "fake:ttl=2:data=random:len=120"


def _lab(runs_dir: Path) -> list[tuple[str, int, list[str | None]]]:
    from tspulab.scenario.live import LiveLab
    from tspulab.scenario.schema import load_scenario_text

    scenario = load_scenario_text(scenario_text(PROFILE, "twitter.com", (1, 2)), "desync.yaml")
    with LiveLab(scenario, runs_dir, log=lambda *_: None) as run:
        results = sweep_lab(
            run, PROFILE, "twitter.com", [RECORDS, FAKE, RECORDS], 2, control=False,
            fresh_box=False,
        )  # fmt: skip
    # the strategy, its successes, and the rule of the controller's verdict on each trial
    return [
        (r.strategy, r.success_count(PROFILE), [j.rule if j else None for j in r.judged[PROFILE]])
        for r in results
    ]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int, list[Any]]]:
    return in_sandbox(_lab, tmp_path_factory.mktemp("desync"))


def test_tls_records_pass_a_box_that_reassembles_tcp(sequence: list[Any]) -> None:
    """§6 TLS-record row: no TLS-record reassembly (the profile reassembles TCP only, §5.10)."""
    assert sequence[0] == (RECORDS, 2, [None, None]), sequence


def test_a_low_ttl_fake_is_detected_and_the_flow_dropped(sequence: list[Any]) -> None:
    """§10.2 [A]: the fake's TTL (1 at the box) differs from the flow's (63)."""
    assert sequence[1] == (FAKE, 0, ["desync", "desync"]), sequence


def test_the_client_stays_blocked_from_the_server_afterwards(sequence: list[Any]) -> None:
    """§10.2 [A] (youtubeUnblock #356: the host blocked): the same clean strategy that passed
    a moment ago now fails, every new connection dropped at its SYN for block_s (60 s)."""
    assert sequence[2] == (RECORDS, 0, ["desync", "desync"]), sequence
