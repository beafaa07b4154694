"""What a sandboxed job's exception comes back as (tspulab.lab.sandbox_init.encode_outcome): the
product's own typed errors as themselves, fields and all, whatever their __init__ takes; others
as themselves when they survive pickling, else a RemoteError with their type and traceback."""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import pytest

from tspulab.dpi.yamlload import ErrorLocation, ScenarioError
from tspulab.lab.sandbox import RemoteError
from tspulab.lab.sandbox_init import encode_outcome
from tspulab.matrix.outcomes import OutcomesError
from tspulab.scenario.runner import RunInterrupted

ERRORS = [
    ErrorLocation("demo.yaml", 12, 5, "services[1].address", "not an IP address"),
    ErrorLocation("demo.yaml", 3, 1, "clock.speed", "must be > 0"),
]


def _travel(exc: BaseException) -> tuple[str, Any, str]:
    try:
        raise exc
    except BaseException as raised:
        outcome = ("error", raised, traceback.format_exc())
    status, value, text = pickle.loads(encode_outcome(outcome))
    assert status == "error"
    return status, value, text


def test_a_scenario_error_comes_back_as_itself_with_file_line_field() -> None:
    _, value, text = _travel(ScenarioError(ERRORS))
    assert type(value) is ScenarioError
    assert value.errors == sorted(ERRORS, key=lambda e: e.line)
    assert str(value) == "demo.yaml:3:1: clock.speed: must be > 0\n" + (
        "demo.yaml:12:5: services[1].address: not an IP address"
    )
    assert "raise exc" in text, "the remote traceback comes too (the caller adds it as a note)"


def test_a_subclass_and_an_interruption_keep_their_type_and_fields() -> None:
    _, value, _ = _travel(OutcomesError(ERRORS[:1]))
    assert type(value) is OutcomesError and value.errors == ERRORS[:1]
    _, value, _ = _travel(RunInterrupted("/runs/r1", "/runs/r1/report.html"))
    assert type(value) is RunInterrupted and value.report == "/runs/r1/report.html"


class _Picky(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def test_a_foreign_exception_that_cannot_travel_comes_back_as_remote_error() -> None:
    _, value, _ = _travel(_Picky(1, 2))
    assert isinstance(value, RemoteError)
    assert "_Picky" in str(value) and "1 and 2" in str(value) and "raise exc" in str(value)


def test_a_builtin_exception_still_comes_back_as_itself() -> None:
    _, value, _ = _travel(ValueError("raised inside"))
    assert type(value) is ValueError and str(value) == "raised inside"


def test_a_product_error_holding_what_cannot_be_pickled_comes_back_as_remote_error() -> None:
    err = ScenarioError(ERRORS)
    err.handle = lambda: None  # type: ignore[attr-defined]
    _, value, _ = _travel(err)
    assert isinstance(value, RemoteError) and "ScenarioError" in str(value)
    assert "services[1].address" in str(value)


@pytest.mark.parametrize("value", [3, {"a": [1, 2]}, None])
def test_a_result_comes_back_unchanged(value: Any) -> None:
    assert pickle.loads(encode_outcome(("ok", value, ""))) == ("ok", value, "")
