"""The catalogue against the fact sheet, the tests it names, and the committed page; and the rules
that turn test outcomes into verdicts (page.py), on made-up outcomes."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.fidelity.catalogue import (
    RANK,
    REPO,
    Catalogue,
    Statement,
    load_catalogue,
    missing_evidence,
)
from tests.fidelity.page import PAGE, Outcome, Row, committed_statuses, render
from tspulab.dpi.yamlload import ScenarioError

SHEET = REPO / "docs" / "tspu-behaviour.md"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def _sheet_bullets() -> dict[str, list[str]]:
    """The tag of every bullet of the sheet that opens with one (`- **[M]** ...`), by section."""
    bullets: dict[str, list[str]] = {}
    section = None
    for line in SHEET.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^##+ (\d+(?:\.\d+)?)\.? ", line)
        if head:
            section = head.group(1)
            continue
        tag = re.match(r"^- \*\*\[([^\]]+)\]", line)
        if tag and section:
            bullets.setdefault(section, []).append(tag.group(1))
    return bullets


def _marked_rows() -> set[str]:
    """Row ids named by `@pytest.mark.fidelity(...)` in the suite's test files."""
    ids: set[str] = set()
    for path in HERE.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "fidelity"
            ):
                ids |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return ids


def test_every_measured_or_reported_bullet_of_1_to_5_and_10_has_rows(catalogue: Catalogue) -> None:
    """Each section of §1-5 has at least as many [M]/[R] rows as the sheet has [M]/[R] bullets
    (a bullet may become several rows, never none); §10's [R] bullets likewise."""
    rows = Counter(s.section[1:] for s in catalogue.statements if "M" in s.tag or "R" in s.tag)
    for section, tags in _sheet_bullets().items():
        if int(section.split(".")[0]) not in (1, 2, 3, 4, 5):
            continue
        wanted = sum(1 for t in tags if t.split("/")[0] in ("M", "R"))
        assert rows[section] >= wanted, (section, rows[section], wanted)
    text = SHEET.read_text(encoding="utf-8")
    r10 = len(re.findall(r"\[R\]", text.split("## 10.", 1)[1]))
    assert rows["10.2"] + rows["10.1"] >= r10 - 1  # one [R] is a citation inside a [press] bullet


def test_every_testable_statement_of_9_has_a_row(catalogue: Catalogue) -> None:
    text = SHEET.read_text(encoding="utf-8").split("## 9.", 1)[1].split("## 10.", 1)[0]
    numbers = [int(n) for n in re.findall(r"^(\d+)\. \*\*", text, flags=re.MULTILINE)]
    assert numbers == list(range(1, 26))
    ids = {s.id for s in catalogue.statements}
    assert {f"t{n:02d}" for n in numbers} <= ids


def test_sections_exist_in_the_sheet(catalogue: Catalogue) -> None:
    sections = set(_sheet_bullets()) | {"9", "10.1", "10.2", "2.2"}
    for s in catalogue.statements:
        assert s.section[1:] in sections, (s.id, s.section)


def test_evidence_names_existing_tests(catalogue: Catalogue) -> None:
    problems = [m for s in catalogue.statements for e in s.evidence if (m := missing_evidence(e))]
    assert problems == []


def test_every_claimed_row_is_shown_by_a_test(catalogue: Catalogue) -> None:
    """Reproduced and partly rows need a fidelity test naming them or `evidence:`; rows a
    fidelity test names exist."""
    marked = _marked_rows()
    ids = {s.id for s in catalogue.statements}
    assert marked <= ids, marked - ids
    bare = [s.id for s in catalogue.statements if s.needs_test and not s.evidence
            and s.id not in marked]  # fmt: skip
    assert bare == []


def test_committed_page_claims_no_more_than_the_catalogue(catalogue: Catalogue) -> None:
    """docs/fidelity.md is written by the suite from the catalogue and the run's outcomes, so a
    row's status there is never better than the catalogue's claim (a hand edit of the page would
    be). The page lags a catalogue edit until the next full run writes it; the session fails when
    a run's outcome is below a claim (conftest.py)."""
    page = committed_statuses()
    assert page, f"{PAGE} has no rows: run the whole suite (make test) to write it"
    claims = {s.id: s.status for s in catalogue.statements}
    better = {i: (status, claims[i]) for i, status in page.items()
              if i in claims and RANK[status] < RANK[claims[i]]}  # fmt: skip
    assert better == {}
    assert set(page) <= set(claims), set(page) - set(claims)


def test_bad_catalogue_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "statements.yaml"
    bad.write_text(
        "statements:\n"
        "  - id: s3-x\n    section: '§3'\n    tag: M\n    text: a statement of the sheet\n"
        "    source: CP-THR\n    status: partly\n"
    )
    with pytest.raises(ScenarioError, match=r"statements.yaml:2:.*needs a 'why'"):
        load_catalogue(bad)
    bad.write_text(
        "statements:\n"
        "  - id: s3-x\n    section: '§3'\n    tag: Q\n    text: a statement of the sheet\n"
        "    source: CP-THR\n    status: reproduced\n"
    )
    with pytest.raises(ScenarioError, match=r"statements.yaml:4:\d+: statements\[0\]\.tag"):
        load_catalogue(bad)


# --- verdicts from outcomes ----------------------------------------------------------------------


def _row(status: str = "reproduced", *outcomes: str, recorded: tuple[str, ...] = ()) -> Row:
    why = None if status == "reproduced" else "because"
    s = Statement(id="s3-x", section="§3", tag="M", text="a statement of the sheet",
                  source="CP-THR", status=status, why=why)  # type: ignore[arg-type]  # fmt: skip
    row = Row(s, [Outcome(f"t{i}", o) for i, o in enumerate(outcomes)])
    row.recorded = list(recorded)
    return row


@pytest.mark.parametrize(
    ("status", "outcomes", "recorded", "verdict", "regression"),
    [
        ("reproduced", ("passed", "passed"), (), "reproduced", False),
        ("reproduced", ("passed", "failed"), (), "not", True),
        ("reproduced", ("passed",), ("partly",), "partly", True),
        ("partly", ("passed",), ("reproduced",), "partly", False),
        ("partly", ("failed",), (), "not", True),
        ("not", ("xfailed",), (), "not", False),
        ("not", (), (), "not", False),
        ("n/a", (), (), "n/a", False),
        ("reproduced", ("passed", "skipped"), (), "reproduced", False),  # not a full run
    ],
)
def test_verdict_and_regression(
    status: str, outcomes: tuple[str, ...], recorded: tuple[str, ...], verdict: str,
    regression: bool,
) -> None:  # fmt: skip
    row = _row(status, *outcomes, recorded=recorded)
    assert row.verdict == verdict
    assert (row.regression is not None) is regression


def test_render_counts_and_rows(catalogue: Catalogue) -> None:
    rows = {s.id: Row(s) for s in catalogue.statements}
    text = render(catalogue, rows)
    assert "## Counts" in text and "| s3-rate |" in text
    assert text.count("\n| s") + text.count("\n| t") == len(catalogue.statements)
