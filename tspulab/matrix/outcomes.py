"""The real-world outcomes of docs/tspu-behaviour.md §6 as data, to set beside matrix cells.

`data/circumvention-outcomes.yaml` holds one entry per claim of a §6 row: the technique as §6
names it, works or fails, when, the source and its confidence, and the cells it speaks about:
method settings (by name, or `kind:<kind>` for every setting of a tool) under the profiles that
model the behaviour the source describes, with the reason. A profile dated after a record does
not inherit it: each profile models one behaviour, so a record applies where the profile models
what the source measured. A cell no entry covers has no record (and no disagreement).

Errors name the file, line and field, as scenario errors do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tspulab.dpi.yamlload import (
    ErrorLocation,
    ScenarioError,
    YamlDocument,
    pydantic_message,
    read_yaml,
)

OUTCOMES_FILE = "circumvention-outcomes.yaml"


def default_outcomes_path() -> Path:
    """The shipped outcomes, in the reference data folder ($TSPULAB_DATA_DIR or data/)."""
    from tspulab.scenario.paths import data_dir

    return data_dir() / OUTCOMES_FILE


class OutcomesError(ScenarioError):
    """Problems in an outcomes file; str() gives `file:line:col: field: message` per line."""


class Outcome(BaseModel):
    """One claim of a §6 row, and the cells it applies to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=60)
    technique: str = Field(min_length=1)
    """The row's technique as §6 names it."""
    section: str = Field(pattern=r"^§\d+(\.\d+)*$")
    result: Literal["works", "fails"]
    when: str = Field(min_length=1)
    source: str = Field(min_length=1)
    confidence: Literal["M", "R", "A", "M/R", "M/A", "R/A"]
    methods: tuple[str, ...] = Field(min_length=1)
    """Setting names, or `kind:<kind>` for every setting of a tool kind."""
    profiles: tuple[str, ...] = Field(min_length=1)
    why: str = Field(min_length=1)
    """Why these profiles model what the source describes."""

    def covers_method(self, method: str, kind: str | None) -> bool:
        return method in self.methods or (kind is not None and f"kind:{kind}" in self.methods)


class OutcomesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    outcomes: tuple[Outcome, ...]


class OutcomeTable:
    """Lookup of the record for a cell."""

    def __init__(self, outcomes: Sequence[Outcome] = (), file: str = "") -> None:
        self.outcomes = tuple(outcomes)
        self.file = file

    def lookup(self, method: str, profile: str) -> Outcome | None:
        from tspulab.matrix.catalogue import BY_NAME

        setting = BY_NAME.get(method)
        kind = setting.kind if setting else None
        for outcome in self.outcomes:
            if profile in outcome.profiles and outcome.covers_method(method, kind):
                return outcome
        return None


def load_outcomes(path: Path | None = None) -> OutcomeTable:
    doc = read_outcomes_doc(path or default_outcomes_path())
    return OutcomeTable(_validate(doc), doc.file)


def read_outcomes_doc(path: Path) -> YamlDocument:
    try:
        return read_yaml(path, str(path))
    except ScenarioError as err:
        raise OutcomesError(err.errors) from err


def load_outcomes_text(text: str, file: str = "<outcomes>") -> OutcomeTable:
    from tspulab.dpi.yamlload import parse_yaml

    try:
        doc = parse_yaml(text, file)
    except ScenarioError as err:
        raise OutcomesError(err.errors) from err
    return OutcomeTable(_validate(doc), file)


def _validate(doc: YamlDocument) -> tuple[Outcome, ...]:
    if not isinstance(doc.data, dict):
        raise OutcomesError([ErrorLocation(doc.file, 1, 1, "", "expected a mapping")])
    try:
        parsed = OutcomesFile.model_validate(doc.data)
    except ValidationError as err:
        raise OutcomesError(
            [doc.error(e["loc"], pydantic_message(e, OutcomesFile)) for e in err.errors()]
        ) from err
    errors = _check(parsed.outcomes, doc)
    if errors:
        raise OutcomesError(errors)
    return parsed.outcomes


def _check(outcomes: Sequence[Outcome], doc: YamlDocument) -> list[ErrorLocation]:
    from tspulab.dpi.profile import profile_names
    from tspulab.dpi.yamlload import did_you_mean
    from tspulab.matrix.catalogue import DIRECT, SETTINGS
    from tspulab.methods.options import METHOD_KINDS

    settings = [s.name for s in SETTINGS]
    kinds = [f"kind:{k}" for k in METHOD_KINDS if k != DIRECT]
    profiles = profile_names()
    errors: list[ErrorLocation] = []
    seen_ids: set[str] = set()
    claimed: dict[tuple[str, str], Outcome] = {}
    for i, o in enumerate(outcomes):
        if o.id in seen_ids:
            errors.append(doc.error(("outcomes", i, "id"), f"id {o.id!r} used twice"))
        seen_ids.add(o.id)
        for j, m in enumerate(o.methods):
            if m != DIRECT and m not in settings and m not in kinds:
                hint = did_you_mean(m, [*settings, *kinds])
                errors.append(
                    doc.error(("outcomes", i, "methods", j), f"unknown method {m!r}{hint}")
                )
        for j, p in enumerate(o.profiles):
            if p not in profiles:
                hint = did_you_mean(p, profiles)
                errors.append(
                    doc.error(("outcomes", i, "profiles", j), f"unknown profile {p!r}{hint}")
                )
        # Two records that say different things about one cell make the comparison arbitrary.
        for s in SETTINGS:
            if not o.covers_method(s.name, s.kind):
                continue
            for p in o.profiles:
                other = claimed.setdefault((s.name, p), o)
                if other is not o and other.result != o.result:
                    errors.append(
                        doc.error(
                            ("outcomes", i, "result"),
                            f"{s.name} under {p}: {o.result!r} here, {other.result!r} in "
                            f"outcome {other.id!r}",
                        )
                    )
    return errors
