#!/bin/bash
# Queue the matrix as a Slurm job array of N shards, and its merge once every shard has ended
# (afterany: a failed shard's cells are reported as missing, not lost). Prints the merge job's id.
#
#   examples/slurm/submit.sh 8        # from a tspulab clone; the report: $MATRIX_OUT/merged/
set -euo pipefail

shards="${1:?usage: submit.sh SHARDS [sbatch options...]}"
shift
here="$(cd "$(dirname "$0")" && pwd)"
: "${TSPULAB:=.venv/bin/tspulab}"
: "${MATRIX_OUT:=matrix-out}"
export TSPULAB MATRIX_OUT MATRIX_ARGS

array=$(sbatch --parsable --array="1-${shards}" "$@" "${here}/matrix.sbatch")
array="${array%%;*}"   # "jobid;cluster" on a federation
sbatch --parsable --dependency="afterany:${array}" --job-name=tspulab-merge \
    --output="tspulab-merge-%j.out" "$@" \
    --wrap="\"${TSPULAB}\" merge \"${MATRIX_OUT}\"/shard-* --out \"${MATRIX_OUT}/merged\""
