"""Circumvention tools × behaviour profiles × trials: `tspulab matrix` and `tspulab merge`.

`catalogue` (method settings, the scenario of a lab of cells), `plan` (cells, shards, labs),
`lab` (one lab inside its sandbox), `runner` (labs in parallel), `records` (the results file's
typed records), `stats` (Wilson intervals, cells against their records), `outcomes` (the
real-world outcomes of docs/tspu-behaviour.md §6 as data), `merge`, `report` (HTML, JUnit, text).
docs/matrix.md describes the whole.
"""
