"""Wilson intervals, cells against their records, shards and the grouping of cells into labs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tspulab.matrix.catalogue import DEFAULT_METHODS, DEFAULT_PROFILES, DIRECT
from tspulab.matrix.outcomes import load_outcomes_text
from tspulab.matrix.plan import Cell, Shard, all_cells, group_labs
from tspulab.matrix.records import TrialRecord
from tspulab.matrix.stats import summarise, wilson


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # Values from the closed form (Wilson 1927), z = 1.96, as R's prop.test(correct=FALSE).
        (0, 1, 0.0, 0.7935),
        (1, 1, 0.2065, 1.0),
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (9, 10, 0.5958, 0.9821),
        (3, 3, 0.4385, 1.0),
    ],
)
def test_wilson_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got[0] == pytest.approx(lo, abs=5e-4) and got[1] == pytest.approx(hi, abs=5e-4)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_rate_and_stays_in_0_1(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson(3, 2)
    assert wilson(0, 0) == (0.0, 1.0)


RECORDS = load_outcomes_text(
    """
version: 1
outcomes:
  - {id: vpn, technique: Plain WireGuard / OpenVPN, section: "§6", result: fails, when: "2023",
     source: N4P-#274, confidence: R, methods: [kind:openvpn], profiles: [vpn-protocols-2023],
     why: the profile models it}
""",
    "records.yaml",
)


def _trials(method: str, profile: str, oks: list[bool]) -> list[TrialRecord]:
    return [
        TrialRecord(
            method=method,
            profile=profile,
            trial=i,
            lab="lab1",
            ok=ok,
            outcome="ok" if ok else "timeout",
            ttfb_s=0.02 * i if ok else None,
            goodput_bps=8e6 if ok else None,
            started=0.0,
        )
        for i, ok in enumerate(oks, start=1)
    ]


def test_a_cell_that_works_against_a_record_that_fails_is_a_disagreement() -> None:
    cell = Cell("ovpn-udp", "vpn-protocols-2023")
    s = summarise(cell, _trials(*cell.key().split("@"), [True, True, False]), [], RECORDS)
    assert (s.successes, s.trials, s.observed, s.agreement, s.firm) == (
        2,
        3,
        "works",
        "disagree",
        False,
    )
    assert s.ttfb_ms == pytest.approx(30.0) and s.goodput_mbps == pytest.approx(8.0)
    firm = summarise(cell, _trials("ovpn-udp", "vpn-protocols-2023", [True] * 10), [], RECORDS)
    assert firm.firm  # [0.72, 1]: the whole interval above one half


def test_agreement_no_record_and_not_measured() -> None:
    blocked = _trials("ovpn-tcp", "vpn-protocols-2023", [False, False])
    assert (
        summarise(Cell("ovpn-tcp", "vpn-protocols-2023"), blocked, [], RECORDS).agreement == "agree"
    )
    assert summarise(Cell("wireguard", "tspu-2022"), [], [], RECORDS).agreement == "not-measured"
    other = _trials("wireguard", "tspu-2022", [True])
    assert summarise(Cell("wireguard", "tspu-2022"), other, [], RECORDS).agreement == "no-record"


def test_shard_parse() -> None:
    assert Shard.parse(" 2 / 8 ") == Shard(2, 8)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(bad)


@given(st.integers(1, 40), st.integers(1, 9), st.integers(1, 50))
def test_shards_cover_every_cell_once(methods: int, profiles: int, shards: int) -> None:
    cells = all_cells([f"m{i}" for i in range(methods)], [f"p{j}" for j in range(profiles)])
    taken = [c for i in range(1, shards + 1) for c in Shard(i, shards).take(cells)]
    assert sorted(taken) == sorted(cells) and len(set(taken)) == len(cells)
    sizes = [len(Shard(i, shards).take(cells)) for i in range(1, shards + 1)]
    assert max(sizes) - min(sizes) <= 1


def test_labs_keep_each_method_in_one_lab_and_follow_jobs() -> None:
    cells = all_cells(DEFAULT_METHODS, DEFAULT_PROFILES)
    for jobs in (1, 2, 4, 64):
        labs = group_labs(cells, jobs)
        assert len(labs) == min(jobs, len(DEFAULT_METHODS))
        assert sorted(c for lab in labs for c in lab.cells) == sorted(cells)
        owners = {m: [lab.id for lab in labs if m in lab.methods] for m in DEFAULT_METHODS}
        assert all(len(v) == 1 for v in owners.values())
    bounded = group_labs(cells, 1, max_methods=5)
    assert len(bounded) == 4 and max(len(lab.methods) for lab in bounded) <= 5
    assert group_labs([], 3) == []


def test_a_shard_edge_gives_a_lab_only_its_own_profiles() -> None:
    cells = all_cells([DIRECT, "tor"], ["tspu-2022", "whitelist-2025", "rkn-2018-ip"])
    part = Shard(2, 3).take(cells)  # direct@rkn-2018-ip, tor@tspu-2022
    (lab,) = group_labs(part, 1)
    assert lab.methods == (DIRECT, "tor")
    assert lab.profiles == ("rkn-2018-ip", "tspu-2022")
