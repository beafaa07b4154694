"""Joining the results of shards into one matrix, and checking that they belong together.

Shards of one matrix have the same spec (methods, profiles, trials, transfer size, timeout) and
the same catalogue (a name meant the same setting on every machine), and no cell twice. The
merged file is an ordinary results file (a header, the shards' records, an end record), so a
merged matrix reads, reports and merges again like a single run. Missing shards are allowed: the
report shows their cells as not measured and says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tspulab.matrix.plan import all_cells
from tspulab.matrix.records import (
    Footer,
    Header,
    Record,
    ResultsError,
    ResultsWriter,
    read_results,
)


def merge_records(paths: Sequence[Path]) -> list[Record]:
    if not paths:
        raise ResultsError("nothing to merge: give the shards' matrix.jsonl files or folders")
    loaded = [(p, read_results(p)) for p in paths]
    first_path, first = loaded[0]
    head = first[0]
    assert isinstance(head, Header)
    owner: dict[str, Path] = {}
    body: list[Record] = []
    footers: list[Footer] = []
    headers: list[Header] = []
    for path, records in loaded:
        header = records[0]
        assert isinstance(header, Header)
        if header.spec != head.spec:
            raise ResultsError(
                f"{path}: not a shard of the matrix of {first_path}: "
                f"{header.spec.model_dump()} != {head.spec.model_dump()}"
            )
        if header.catalogue != head.catalogue:
            raise ResultsError(
                f"{path}: its method settings differ from {first_path}'s (another tspulab "
                "version?): the same names would stand for different tools"
            )
        for key in header.cells:
            if key in owner:
                raise ResultsError(f"{path}: cell {key} is also in {owner[key]}")
            owner[key] = path
        headers.append(header)
        for record in records[1:]:
            if isinstance(record, Header):
                raise ResultsError(f"{path}: a second header")
            if isinstance(record, Footer):
                footers.append(record)
            else:
                body.append(record)
    order = [c.key() for c in all_cells(head.spec.methods, head.spec.profiles)]
    merged = Header(
        spec=head.spec,
        shard=",".join(h.shard for h in headers),
        cells=tuple(k for k in order if k in owner),
        jobs=max(h.jobs for h in headers),
        concurrency=max(h.concurrency for h in headers),
        started=min(h.started for h in headers),
        host=",".join(dict.fromkeys(h.host for h in headers)),
        catalogue=head.catalogue,
    )
    out: list[Record] = [merged, *body]
    if footers:
        out.append(
            Footer(
                finished=max(f.finished for f in footers),
                wall_s=max(f.wall_s for f in footers),
                labs=sum(f.labs for f in footers),
            )
        )
    return out


def results_path(path: Path) -> Path:
    """A shard's results file, given it or its folder."""
    from tspulab.matrix.records import RESULTS_FILE

    return path / RESULTS_FILE if path.is_dir() else path


def write_records(records: Sequence[Record], path: Path) -> Path:
    if path.exists():
        raise FileExistsError(f"{path} exists: give another --out, or remove it")
    writer = ResultsWriter(path)
    for record in records:
        writer.write(record)
    return path
