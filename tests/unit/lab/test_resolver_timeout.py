"""The lab resolver's wait per try follows the scenario's probe timeout."""

from __future__ import annotations

from tspulab.lab.services import resolver_timeout_s


def test_the_default_probe_keeps_lookups_fast_and_a_slow_scenario_waits_longer() -> None:
    assert resolver_timeout_s(3.0) == 1  # the default probe: a blocked lookup fails in ~2 s
    assert resolver_timeout_s(0.5) == 1
    assert resolver_timeout_s(20.0) == 2
    assert resolver_timeout_s(60.0) == 5  # the VM tier: glibc's own default, never more
