"""The fidelity suite's plumbing: the `fidelity` marker, `record_fidelity`, and docs/fidelity.md.

A fidelity test names the catalogue rows it shows, `@pytest.mark.fidelity("t06", "s3-rate")`, and
may record what it measured, `record_fidelity("s3-rate", measured="139 kbit/s")` (with
`verdict="partly"` when it shows less than the catalogue claims). A collector registered as a
plugin (it must see the outcomes of the `evidence:` tests elsewhere in the suite too, which a
conftest's own hooks would not) keeps every relevant outcome; when the session ends it

1. fails the session if a row claimed reproduced (or partly) came out lower (see page.py), and
2. writes docs/fidelity.md if every test the catalogue relies on ran (not on a `-k` run, a single
   file, or a machine where the live tests are skipped).

Live tests (`test_live_*.py`) get the emulation marker and its skip reason (no root, no OVS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.emulation.conftest import emulation_skip_reason
from tests.fidelity.catalogue import Catalogue, load_catalogue
from tests.fidelity.page import PAGE, Outcome, Row, render

HERE = Path(__file__).resolve().parent
WORST = {"failed": 3, "xfailed": 2, "skipped": 1, "passed": 0}


class FidelityCollector:
    """Outcomes of the tests that show catalogue rows, and the figures they recorded."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.catalogue: Catalogue = load_catalogue()
        self.rows = {s.id: Row(s) for s in self.catalogue.statements}
        self.marked: dict[str, tuple[str, ...]] = {}  # fidelity test nodeid -> row ids
        self.outcomes: dict[str, Outcome] = {}
        self.fidelity_items: set[str] = set()
        self.deselected = 0

    # --- collection -------------------------------------------------------------------------

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += sum(1 for i in items if Path(i.path).is_relative_to(HERE))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        reason = emulation_skip_reason()
        known = self.rows
        for item in items:
            if not Path(item.path).is_relative_to(HERE):
                continue
            self.fidelity_items.add(item.nodeid)
            if item.path.name.startswith("test_live_"):
                item.add_marker(pytest.mark.emulation)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
            ids: list[str] = []
            for mark in item.iter_markers("fidelity"):
                ids += [str(a) for a in mark.args]
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: unknown fidelity row(s) {unknown}")
            if ids:
                self.marked[item.nodeid] = tuple(ids)

    # --- outcomes ---------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.marked and not self._is_evidence(report.nodeid):
            return
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "passed"
        elif report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "passed"
        old = self.outcomes.get(report.nodeid)
        if old is None or WORST[outcome] > WORST[old.outcome]:
            message = str(report.longrepr)[-300:] if report.failed else ""
            self.outcomes[report.nodeid] = Outcome(report.nodeid, outcome, message)

    def _is_evidence(self, nodeid: str) -> bool:
        return any(
            self._matches(nodeid, ev) for s in self.catalogue.statements for ev in s.evidence
        )

    @staticmethod
    def _matches(nodeid: str, evidence: str) -> bool:
        return nodeid == evidence or nodeid.startswith(evidence + "[")

    def record(self, statement_id: str, measured: str | None, verdict: str | None) -> None:
        if statement_id not in self.rows:
            raise KeyError(f"unknown fidelity row {statement_id!r}")
        row = self.rows[statement_id]
        if measured:
            row.measured.append(measured)
        if verdict:
            row.recorded.append(verdict)

    # --- the end ----------------------------------------------------------------------------

    def _fill(self) -> list[str]:
        """Attach outcomes to rows; the tests the catalogue relies on that did not run."""
        missing: list[str] = []
        for row in self.rows.values():
            row.tests = []
            for nodeid, ids in self.marked.items():
                if row.statement.id in ids:
                    row.tests.append(self.outcomes.get(nodeid, Outcome(nodeid, "missing")))
            for ev in row.statement.evidence:
                found = [o for n, o in self.outcomes.items() if self._matches(n, ev)]
                row.tests += found or [Outcome(ev, "missing")]
            missing += [t.nodeid for t in row.tests if t.outcome in ("missing", "skipped")]
        return sorted(set(missing))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        missing = self._fill()
        problems = [p for r in self.rows.values() if (p := r.regression)]
        complete = not missing and not self.deselected and self._all_files_collected()
        if complete:
            problems += [
                f"{r.statement.id}: claimed {r.statement.status} but no test shows it"
                for r in self.rows.values()
                if r.statement.needs_test and not r.tests
            ]
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
        say: Callable[[str], None] = (
            (lambda m: reporter.write_line(m)) if reporter is not None else print
        )
        if problems:
            say("fidelity: statements below their claimed status:")
            for p in problems:
                say(f"  {p}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if not complete:
            why = (
                f"{len(missing)} test(s) it relies on did not run (e.g. {missing[0]})"
                if missing
                else "the run did not include every fidelity test"
            )
            if self.fidelity_items:
                say(f"fidelity: docs/fidelity.md not regenerated: {why}")
            return
        text = render(self.catalogue, self.rows)
        old = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if _without_stamp(old) != _without_stamp(text):
            PAGE.write_text(text, encoding="utf-8")
            say("fidelity: docs/fidelity.md regenerated")

    def _all_files_collected(self) -> bool:
        files = {p.relative_to(HERE.parents[1]).as_posix() for p in HERE.glob("test_*.py")}
        seen = {n.split("::")[0] for n in self.fidelity_items}
        return files <= seen


def _without_stamp(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "Last written" not in line)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fidelity(*ids): the docs/fidelity.md rows (tests/fidelity/statements.yaml) "
        "this test shows"
    )  # fmt: skip
    if not config.pluginmanager.has_plugin("tspulab-fidelity"):
        config.pluginmanager.register(FidelityCollector(config), "tspulab-fidelity")


@pytest.fixture
def record_fidelity(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """`record_fidelity(statement_id, measured="...", verdict=None)`: the figure this test
    measured (shown beside the published one) and, if lower than the catalogue's claim, the
    verdict (reproduced / partly / not)."""
    collector: FidelityCollector = request.config.pluginmanager.get_plugin("tspulab-fidelity")
    marked = collector.marked.get(request.node.nodeid, ())

    def record(statement_id: str, measured: str | None = None, verdict: str | None = None) -> None:
        if statement_id not in marked:
            raise KeyError(f"{request.node.nodeid} records {statement_id!r} without marking it")
        collector.record(statement_id, measured, verdict)

    yield record
