"""TSPULAB_TIME_SCALE stretches the lab's bring-up waits, never shortens them."""

from __future__ import annotations

import pytest

from tspulab.lab.timescale import ENV, scaled


@pytest.mark.parametrize(("value", "expected"), [(None, 20.0), ("12", 240.0), ("0.5", 20.0),
                                                 ("fast", 20.0), ("2.5", 50.0)])  # fmt: skip
def test_scaled(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: float) -> None:
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    assert scaled(20.0) == expected
