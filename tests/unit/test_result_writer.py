"""The results writer shared by the probes of one round, which run in a thread pool."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tspulab.metrics.results import ResultWriter, read_results


def test_writers_in_many_threads_keep_every_line_whole(tmp_path: Path) -> None:
    """A campaign lab run failed with BufferError when one probe appended while another's
    os.write held a view of the buffer; every record must arrive, whole, exactly once."""
    path = tmp_path / "results.jsonl"
    pad = "x" * 5000  # long lines: os.write takes long enough for threads to meet in it
    with ResultWriter(path) as writer, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: writer.write({"i": i, "pad": pad}), range(2000)))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2000 and writer.count == 2000 and writer.held == 0
    assert sorted(json.loads(line)["i"] for line in lines) == list(range(2000))
    assert len(read_results(path)) == 2000
