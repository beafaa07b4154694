"""Every lab of docs/labs/ run as its student page says, checked against its teacher page.

The six pages run side by side (each lab is a sandbox of its own; most of a lab's time is spent
waiting for probes, handshakes and timeouts, not computing), once per test session; each test
then checks one page. Transcripts go to the test's folder (`<page>.transcript.txt`).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.emulation.labs.pages import LABS, ROOT, PageRun, blocks, checks, failures, run_page

PAGES = sorted(p for p in LABS.glob("0*.md") if not p.name.endswith(".teacher.md"))
#: Labs at once: enough to overlap their waiting, few enough for a 2-core machine.
PARALLEL = 3


def teacher(page: Path) -> Path:
    return page.with_suffix(".teacher.md")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageRun]:
    work = tmp_path_factory.mktemp("labs")

    def one(page: Path) -> PageRun:
        folder = work / page.stem
        folder.mkdir()
        run = run_page(page, folder)
        (work / f"{page.stem}.transcript.txt").write_text(run.transcript, encoding="utf-8")
        return run

    # the longest labs first, so that the short ones fill in beside them
    order = sorted(PAGES, key=lambda p: p.name not in ("05-vpn-detection.md", "06-campaign.md"))
    with ThreadPoolExecutor(PARALLEL) as pool:
        done = dict(zip(order, pool.map(one, order), strict=True))
    for page, run in done.items():
        print(f"{page.name}: {run.seconds:.0f} s")
    return {page.name: run for page, run in done.items()}


def test_six_labs_each_with_its_teacher_page() -> None:
    assert len(PAGES) == 6
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for heading in ("## Goal", "## Background", "## Steps", "## Questions"):
            assert heading in text, f"{page.name}: no {heading}"
        assert "tspu-behaviour.md" in text and "§" in text, f"{page.name}: no cited source"
        notes = teacher(page).read_text(encoding="utf-8")
        for heading in ("## Expected observations", "## Common mistakes", "## Grading"):
            assert heading in notes, f"{teacher(page).name}: no {heading}"
        steps_with_commands = {b.step for b in blocks(page)}
        checked = {c.step for c in checks(teacher(page))}
        assert steps_with_commands - {"0"} <= checked, (
            f"{page.name}: steps without expected observations: "
            f"{sorted(steps_with_commands - checked)}"
        )


def test_links_and_files_the_pages_name_exist() -> None:
    """Relative links, and the repository files a page names in backquotes, are there."""
    for page in [*PAGES, *(teacher(p) for p in PAGES), LABS / "README.md"]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
        for named in re.findall(r"`((?:scenarios|docs|tspulab|data|tests)/[\w./-]+)`", text):
            assert (ROOT / named).exists(), f"{page.name}: no file {named}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_lab(page: Path, runs: dict[str, PageRun]) -> None:
    run = runs[page.name]
    bad = failures(run, teacher(page))
    assert not bad, "\n".join([*bad, "--- transcript ---", run.transcript[-6000:]])
