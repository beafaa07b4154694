"""The fault runner's one table of (inject, restore) per kind of fault (tspulab.scenario.fault_run):
every kind the scenario language accepts has both, and each calls its own LabFaults action."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from tspulab.contracts import FaultKind
from tspulab.scenario.fault_run import ACTIONS
from tspulab.scenario.faults import FaultKindName


class _Faults:
    """Records which LabFaults action ran, with its argument."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def action(*args: Any) -> str:
            self.calls.append((name, args))
            return f"{name} done"

        return action


def test_every_fault_kind_of_the_language_has_an_injection_and_a_restore() -> None:
    assert {k.value for k in ACTIONS} == set(get_args(FaultKindName))


@pytest.mark.parametrize(
    ("kind", "inject", "restore", "cloud"),
    [
        (FaultKind.KILL_CONTROLLER, "kill_controller", "restart_controller", None),
        (FaultKind.KILL_OVS, "kill_ovs", "restart_ovs", None),
        (FaultKind.KILL_SERVICE, "kill_service", "restart_service", "aws"),
        (FaultKind.KILL_DNS, "kill_dns", "restart_dns", None),
        (FaultKind.FILL_DISK, "fill_disk", "free_disk", None),
    ],
)
def test_each_kind_calls_its_own_action(
    kind: FaultKind, inject: str, restore: str, cloud: str | None
) -> None:
    faults = _Faults()
    do, undo = ACTIONS[kind]
    assert do(faults, cloud) == f"{inject} done"  # type: ignore[arg-type]
    assert undo(faults, cloud) == f"{restore} done"  # type: ignore[arg-type]
    args = (cloud,) if cloud else ()
    assert faults.calls == [(inject, args), (restore, args)]


def test_kill_service_without_its_cloud_is_refused() -> None:
    with pytest.raises(AssertionError, match="names its cloud"):
        ACTIONS[FaultKind.KILL_SERVICE][0](_Faults(), None)  # type: ignore[arg-type]
