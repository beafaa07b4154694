"""A few seconds of bench/fuzz_core.py in the suite: generated and mutated frames through
`TspuEngine.process` in every profile and reassembly mode, with no exception.

The full run (10^6 packets, figures in docs/benchmarks.md) is `python bench/fuzz_core.py`. Here also: the
harness itself counts and records an exception (so a 0 means something), and the mutator keeps
most frames decodable (so the fuzz reaches the parsers instead of stopping at the link layer).
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tspulab.dpi.errors import DecodeError
from tspulab.dpi.packet import decode
from tspulab.dpi.profile import profile_names

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fuzz_core.py"


@pytest.fixture(scope="module")
def fuzz_core() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("fuzz_core", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_core"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["fuzz_core"]


def test_short_fuzz_of_every_profile_and_mode_raises_nothing(fuzz_core: ModuleType) -> None:
    report = fuzz_core.fuzz(total=12_000, seed=7, seconds=20.0)
    assert report.engines == 3 * len(profile_names())
    assert report.packets >= 6_000
    assert not report.exceptions, report.exceptions.most_common(5)
    # The blocking paths ran, not only "allow".
    kinds = {key.split("/")[0] for key in report.actions}
    assert {"allow", "drop"} <= kinds, report.actions
    assert report.flows_created > 100


def test_the_harness_counts_and_records_an_exception(
    fuzz_core: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = fuzz_core.TspuEngine.process
    calls = {"n": 0, "raised": 0}

    def flaky(self: object, frame: bytes, now: float, **kw: object) -> object:
        if now >= 1_000_000.0:  # the fuzz itself (the registry's pre-pass runs before 1e6 s)
            calls["n"] += 1
            if calls["n"] % 500 == 0:
                calls["raised"] += 1
                raise IndexError("planted")
        return real(self, frame, now, **kw)

    monkeypatch.setattr(fuzz_core.TspuEngine, "process", flaky)
    report = fuzz_core.fuzz(total=2_000, seed=3, only_profile="tspu-2022")
    (key,) = report.exceptions
    assert key.startswith("IndexError at test_fuzz_core.py:")
    assert report.exceptions[key] == calls["raised"] >= 3
    (written,) = fuzz_core.save_inputs(report, tmp_path)
    lines = written.read_text().splitlines()
    assert lines[0] == f"# {key}" and "profile tspu-2022" in lines[1]
    now, linktype, frame = lines[-1].split()
    assert float(now) > 0 and int(linktype) in (1, 101) and bytes.fromhex(frame)


def test_mutants_and_generated_frames_mostly_decode(fuzz_core: ModuleType) -> None:
    rng = random.Random(5)
    seeds = fuzz_core.load_seeds()
    assert len(seeds) > 1000
    decoded = 0
    for _ in range(2_000):
        linktype, frame = (
            fuzz_core.mutate(rng, rng.choice(seeds), rng.choice(seeds))
            if rng.random() < 0.5
            else fuzz_core.generate(rng)
        )
        try:
            decode(frame, linktype)
            decoded += 1
        except DecodeError:
            pass
    assert decoded > 1_200, decoded


def test_every_reassembly_mode_is_set(fuzz_core: ModuleType) -> None:
    from tspulab.dpi.profile import load_profile

    for mode in fuzz_core.MODES:
        profile = fuzz_core.with_mode(load_profile("tspu-2022"), mode)
        assert profile.spec.inspection.reassembly.value == mode
        engine = fuzz_core.TspuEngine(profile, fuzz_core.Registry(), ())
        assert engine.classifier.mode.value == mode


def test_a_flood_of_new_flows_stays_within_the_table_limit(fuzz_core: ModuleType) -> None:
    """bench/fuzz_flood.py on a table limited to 2,000 flows: full, then 100 more new flows, in
    every reassembly mode; the table holds its limit and evicts the rest."""
    spec = importlib.util.spec_from_file_location("fuzz_flood", BENCH.with_name("fuzz_flood.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_flood"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        results = list(module.flood(past=100, seed=4, max_flows=2_000))
    finally:
        del sys.modules["fuzz_flood"]
    assert [r.mode for r in results] == ["none", "tcp", "tls-records"]
    for r in results:
        assert r.held == 2_000 and r.max_flows == 2_000
        assert 80 <= r.evicted <= 100 and r.flows >= 2_100, r
