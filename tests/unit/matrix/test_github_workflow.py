"""The GitHub Actions example: valid YAML of the right shape, and its shard jobs together run
every cell of the matrix exactly once (parsed with tspulab's own argument parser)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tspulab.cli import build_parser
from tspulab.matrix.command import spec_from_args
from tspulab.matrix.plan import Shard, all_cells

WORKFLOW = Path(__file__).resolve().parents[3] / "examples" / "github-actions" / "matrix.yml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(WORKFLOW.read_text())
    return data


def _expand(text: str, values: dict[str, str]) -> str:
    """GitHub's ${{ ... }} expressions and the shell's $VAR, for the values the jobs have."""
    text = re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m[1]], text)
    return re.sub(r"\$(\w+)", lambda m: values[f"env.{m[1]}"], text)


def test_the_workflow_has_shard_jobs_and_a_merge() -> None:
    wf = load()
    assert set(wf["on"]) >= {"workflow_dispatch"}
    shard, merge = wf["jobs"]["shard"], wf["jobs"]["merge"]
    assert shard["container"]["options"] == "--privileged"  # namespaces and OVS need it
    assert shard["strategy"]["fail-fast"] is False
    assert merge["needs"] == "shard" and merge["if"] == "always()"
    uses = [s.get("uses", "") for s in merge["steps"]]
    assert any(u.startswith("actions/download-artifact@") for u in uses)
    runs = " ".join(s.get("run", "") for s in merge["steps"])
    assert "tspulab merge shards/*/matrix.jsonl" in runs


def test_the_shard_arguments_cover_the_matrix_exactly_once() -> None:
    wf = load()
    shard_job = wf["jobs"]["shard"]
    numbers = shard_job["strategy"]["matrix"]["shard"]
    (command,) = [s["run"] for s in shard_job["steps"] if "tspulab matrix" in s.get("run", "")]
    taken = []
    specs = set()
    for n in numbers:
        values = {f"env.{k}": str(v) for k, v in wf["env"].items()}
        values |= {"matrix.shard": str(n), **{k.removeprefix("env."): v for k, v in values.items()}}
        argv = shlex.split(_expand(command, values))
        assert argv[:2] == [".venv/bin/tspulab", "matrix"], argv
        args = build_parser().parse_args(argv[1:])
        spec = spec_from_args(args)
        specs.add(spec)
        shard = Shard.parse(args.shard)
        assert shard.count == int(wf["env"]["SHARDS"])
        taken += shard.take(all_cells(spec.methods, spec.profiles))
        assert args.out.endswith(f"shard-{n}")
    (spec,) = specs  # every shard measures the same matrix, or the merge refuses them
    cells = all_cells(spec.methods, spec.profiles)
    assert sorted(taken) == sorted(cells) and len(taken) == len(cells)
    assert sorted(numbers) == list(range(1, int(wf["env"]["SHARDS"]) + 1))


def test_the_artifacts_carry_what_the_merge_reads() -> None:
    wf = load()
    upload = next(
        s for s in wf["jobs"]["shard"]["steps"] if s.get("uses", "").startswith("actions/upload")
    )
    assert "matrix.jsonl" in upload["with"]["path"]
    assert upload["with"]["name"].startswith("matrix-shard-")
    download = next(
        s for s in wf["jobs"]["merge"]["steps"] if s.get("uses", "").startswith("actions/download")
    )
    assert download["with"]["pattern"] == "matrix-shard-*" and download["with"]["path"] == "shards"
