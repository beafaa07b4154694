"""From test outcomes to each statement's verdict, and from verdicts to docs/fidelity.md.

A statement's verdict is computed from the tests that show it (fidelity tests that name it in
their `fidelity` marker, and the catalogue's `evidence:` tests elsewhere in the suite):

- a test that failed, or an expected failure (a strict xfail: a behaviour known to be missing),
  makes it `not` reproduced;
- a fidelity test may record a lower verdict than the catalogue's (`record_fidelity(...,
  verdict="partly")`): the lowest recorded one counts;
- otherwise, every test passed, and the catalogue's status stands;
- `n/a` rows stay `n/a`.

A verdict lower than the catalogue's status is a regression: the session fails (conftest.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.fidelity.catalogue import CONFIDENCE, RANK, Catalogue, Statement

PAGE = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"

LABEL = {"reproduced": "reproduced", "partly": "partly", "not": "not reproduced", "n/a": "n/a"}

SECTIONS = {
    1: "Architecture, placement, control",
    2: "TSPU behaviour as measured in 2022",
    3: "Twitter throttling, March 2021",
    4: "Earlier ISP-level blocking",
    5: "Protocol blocking and other events, 2018-2026",
    9: "Testable statements",
    10: "Additions of 2026-12-01",
}


@dataclass
class Outcome:
    """The worst phase outcome of one test node: passed, failed, skipped, xfailed."""

    nodeid: str
    outcome: str
    message: str = ""


@dataclass
class Row:
    statement: Statement
    tests: list[Outcome] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        """Every test of the row ran to a verdict (none skipped or missing)."""
        return all(t.outcome in ("passed", "failed", "xfailed") for t in self.tests)

    @property
    def verdict(self) -> str:
        s = self.statement
        if s.status == "n/a":
            return "n/a"
        if any(t.outcome in ("failed", "xfailed") for t in self.tests):
            return "not"
        if not self.tests:
            return "not" if s.needs_test else s.status
        worst = max([s.status, *self.recorded], key=RANK.__getitem__)
        return worst

    @property
    def regression(self) -> str | None:
        """Why this row is worse than the catalogue claims, or None."""
        s = self.statement
        if s.status == "n/a" or not self.tests or not self.ran:
            return None
        if RANK[self.verdict] > RANK[s.status]:
            failed = [t.nodeid for t in self.tests if t.outcome in ("failed", "xfailed")]
            return f"{s.id}: claimed {s.status}, the run says {LABEL[self.verdict]}" + (
                f" ({', '.join(failed)})" if failed else f" (recorded {', '.join(self.recorded)})"
            )
        return None


def _cell(text: str | None) -> str:
    """A table cell: pipes escaped, and asterisks too (rule patterns such as *t.co* are not
    emphasis)."""
    return (text or "—").replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def _tests_cell(row: Row) -> str:
    """One line per test function; a parametrized one's cases folded into a count."""
    grouped: dict[str, list[Outcome]] = {}
    for t in row.tests:
        grouped.setdefault(t.nodeid.split("[", 1)[0], []).append(t)
    names = []
    for base, outcomes in grouped.items():
        short = base.replace("tests/", "", 1)
        cases = f" ({len(outcomes)} cases)" if len(outcomes) > 1 else ""
        kinds = {o.outcome for o in outcomes}
        mark = " (FAILED)" if "failed" in kinds else " (xfail)" if "xfailed" in kinds else ""
        names.append(f"`{short}`{cases}{mark}")
    return "<br>".join(names) or "—"


def _measured_cell(row: Row) -> str:
    if row.measured:
        return _cell("; ".join(row.measured))
    if row.statement.checked:
        return _cell(f"checked: {row.statement.checked}")
    return "—"


HEADER = """\
# Fidelity: each statement of the fact sheet, reproduced or not

**Generated** by the fidelity suite (`tests/fidelity/`) at the end of a full test run (`make test`,
or `pytest -q` from the repository root): do not edit by hand. Last written {stamp}.

Every statement of [tspu-behaviour.md](tspu-behaviour.md) §1-5 and §10 tagged [M] (measured) or
[R] (reported), and the 25 testable statements of §9, is a row of the catalogue
`tests/fidelity/statements.yaml` (id, section, tag, statement, published figure, primary source,
claimed status, evidence). [A] (anecdotal), [S] (secondary quote, unverified) and press items have
rows too, marked as such; they need no test. Each row is shown by tests:

- **live** tests (`tests/fidelity/test_live_*.py`) where the behaviour lives in the switch and the
  network (reset timing, drops after N packets, policing, state after RST, inside-only
  triggering): one real lab per module (Mininet, Open vSwitch, the os-ken TSPU, nginx, curl),
  three labs in all, 75-99 s together (measured at a load of 3-13 on 2 cores);
- **replay** tests (`tests/fidelity/test_replay_*.py`) where only the classifier decides: packets
  crafted with scapy driven through `tspulab.dpi.engine.TspuEngine`;
- tests elsewhere in the suite that already check the figure (the catalogue's `evidence:`).

Each fidelity test names its section and primary source, and compares numbers with a tolerance it
states; the figure it measured is in the "measured" column (`checked:` is what an `evidence:`
test asserts). **Status**: reproduced; partly (what is missing is in the row); not reproduced
(why, and who is working on it); n/a (not a behaviour a testbed can show: dates, counts, vendor
names). A failing test, or an expected failure (`xfail`, strict: a behaviour known to be missing),
makes a row "not reproduced".

How the page is made: `tests/fidelity/conftest.py` collects every test's outcome and the figures
the fidelity tests record (`record_fidelity(statement_id, measured=..., verdict=...)`) and writes
this page when the session ends, but only if every test the catalogue relies on ran (a `-k` run,
a single file, or skipped live tests leave it alone). **CI fails** if a statement the catalogue
claims reproduced (or partly) comes out lower: a test failed, a test recorded a lower verdict, or
the test is gone. To change a claim, change `status` in the catalogue and rerun.
"""


def render(catalogue: Catalogue, rows: dict[str, Row], now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    out = [HEADER.format(stamp=stamp)]
    ordered = [rows[s.id] for s in catalogue.statements]
    counts = Counter(r.verdict for r in ordered)
    mr = [r for r in ordered if r.statement.tag in ("M", "R", "M/R", "R/M")]
    counts_mr = Counter(r.verdict for r in mr)
    out.append("## Counts\n")
    out.append("| rows | reproduced | partly | not reproduced | n/a |")
    out.append("|---|---|---|---|---|")
    for name, c, n in (("all", counts, len(ordered)), ("[M]/[R] only", counts_mr, len(mr))):
        out.append(f"| {name}: {n} | {c['reproduced']} | {c['partly']} | {c['not']} | {c['n/a']} |")
    out.append("")
    for major, title in SECTIONS.items():
        section_rows = [r for r in ordered if r.statement.major == major]
        if not section_rows:
            continue
        out.append(f"## §{major} {title}\n")
        out.append("| id | tag | statement | published | measured | status | shown by |")
        out.append("|---|---|---|---|---|---|---|")
        for r in section_rows:
            s = r.statement
            status = LABEL[r.verdict]
            if r.verdict != "reproduced" and s.why:
                status += f": {s.why}"
            if s.owner:
                status += f" (in progress: {s.owner})"
            out.append(
                f"| {s.id} | {s.section} [{s.tag}] {CONFIDENCE[s.tag]} | {_cell(s.text)} "
                f"({_cell(s.source)}) | {_cell(s.published)} | {_measured_cell(r)} "
                f"| **{_cell(status)}** | {_tests_cell(r)} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def committed_statuses(page: Path = PAGE) -> dict[str, str]:
    """Each row's status label on the committed page (id -> reproduced/partly/not/n/a)."""
    back = {v: k for k, v in LABEL.items()}
    statuses = {}
    if not page.is_file():
        return statuses
    for line in page.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if len(cells) >= 7 and cells[0].startswith("| ") and cells[5].startswith("**"):
            label = cells[5].strip("*").split(":")[0].split(" (in progress")[0]
            statuses[cells[0][2:]] = back.get(label, label)
    return statuses
