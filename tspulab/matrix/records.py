"""What a matrix run writes, as typed records: written and read by this module only.

A run (one shard, or the whole matrix as shard 1/1) writes `matrix.jsonl`, one JSON object a
line, flushed as measured, so a killed run keeps what it had:

- `header` first: the matrix (methods, profiles, trials, transfer size, timeouts), the shard and
  its cells, the catalogue of method settings the names stood for;
- `lab` once per lab when it is down: its cells' methods and profiles, bring-up time, error;
- `trial` per probe: the cell, success, the probe's outcome, time to first byte, goodput;
- `verdicts` per cell: what the cell's ISP's TSPU decided about the cell's flows (protocols
  seen, the rules that acted);
- `end` last, when the shard finished.

`tspulab merge` reads shard files with `read_results`, checks that they are shards of one matrix,
and writes the union with the same models.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

RESULTS_FILE = "matrix.jsonl"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixSpec(_Record):
    """What was measured: equal in every shard of one matrix."""

    methods: tuple[str, ...]
    profiles: tuple[str, ...]
    trials: int = Field(ge=1)
    transfer_bytes: int = Field(ge=1)
    timeout_s: float = Field(gt=0)


class Header(_Record):
    type: Literal["header"] = "header"
    spec: MatrixSpec
    shard: str
    cells: tuple[str, ...]
    """`method@profile` keys of this shard's cells."""
    jobs: int
    concurrency: int
    started: float
    host: str
    catalogue: tuple[dict[str, Any], ...] = ()


class LabRecord(_Record):
    type: Literal["lab"] = "lab"
    lab: str
    methods: tuple[str, ...]
    profiles: tuple[str, ...]
    started: float
    bringup_s: float | None = None
    wall_s: float
    error: str | None = None
    run_dir: str | None = None


class TrialRecord(_Record):
    type: Literal["trial"] = "trial"
    method: str
    profile: str
    trial: int
    lab: str
    ok: bool
    outcome: str
    ttfb_s: float | None = None
    goodput_bps: float | None = None
    size_bytes: int = 0
    total_s: float | None = None
    started: float
    detail: str = ""


class VerdictRecord(_Record):
    type: Literal["verdicts"] = "verdicts"
    method: str
    profile: str
    lab: str
    protocols: dict[str, int]
    """Protocol as the engine named it -> flows."""
    actions: dict[str, int]
    """`rule:action` of every verdict other than allow -> flows."""


class Footer(_Record):
    type: Literal["end"] = "end"
    finished: float
    wall_s: float
    labs: int


Record = Annotated[
    Header | LabRecord | TrialRecord | VerdictRecord | Footer, Field(discriminator="type")
]
_RECORD: TypeAdapter[Record] = TypeAdapter(Record)


class ResultsError(ValueError):
    """A results file that is not a matrix's, named with its file and line."""


class ResultsWriter:
    """Appends records, one line each, flushed at once; safe from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: BaseModel) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)


def parse_line(line: str, where: str) -> Record:
    try:
        return _RECORD.validate_json(line)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ResultsError(f"{where}: {field}: {first['msg']}") from None


def read_results(path: Path) -> list[Record]:
    """Every record of a results file, in order; a bad line is an error naming file and line."""
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ResultsError(f"{path}: cannot read: {err}") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as err:
            raise ResultsError(f"{path}:{n}: not JSON: {err.msg}") from None
        records.append(parse_line(line, f"{path}:{n}"))
    if not records or not isinstance(records[0], Header):
        raise ResultsError(f"{path}:1: a matrix results file starts with its header record")
    return records
