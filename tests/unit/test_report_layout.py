"""The report's layout in a real browser: at 1,280 px nothing is wider than the page, and at
1,000 px only the wide tables scroll, inside their own box. Needs Chromium (Debian's `chromium`);
skipped with the reason where it is missing (the suite does not install it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_metrics_fixture import CAMPAIGN_EXPECT, write_campaign
from tspulab.metrics.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page: measures every table and figure, writes the findings as JSON
# into the document, which --dump-dom then prints.
MEASURE = """<script>
const W = document.documentElement.clientWidth, out = {page: document.documentElement.scrollWidth,
  width: W, loose: [], boxed: []};
document.querySelectorAll("table, img.fig").forEach((el, i) => {
  const right = el.getBoundingClientRect().right;
  if (right <= W + 1) return;
  const box = el.parentElement.classList.contains("scroll");
  (box ? out.boxed : out.loose).push(el.tagName + " " + i + " " + Math.round(right));
});
const pre = document.createElement("pre"); pre.id = "measured";
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>"""


def _measure(page: Path, width: int, tmp_path: Path) -> dict[str, object]:
    probe = tmp_path / f"measure-{width}.html"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="
         + str(tmp_path / "profile"), f"--window-size={width},1000", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    return dict(json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_tables_and_figures_fit_the_page(tmp_path: Path) -> None:
    page = write_report(write_campaign(tmp_path / "run"), CAMPAIGN_EXPECT).path
    wide = _measure(page, 1280, tmp_path)
    assert wide["page"] == wide["width"], wide
    assert wide["loose"] == [] and wide["boxed"] == [], wide
    narrow = _measure(page, 1000, tmp_path)
    assert narrow["page"] == narrow["width"], narrow
    assert narrow["loose"] == [], "a table wider than the page outside a scrolling box"
