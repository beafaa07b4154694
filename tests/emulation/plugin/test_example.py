"""The CI example of docs/ci.md runs as a user would run it, so it cannot rot.

examples/minirelay (a stand-in tool: a TLS-in-TLS relay and a split-ClientHello client) is copied
to a fresh folder, as a tool's repository, and its ten-line test file runs there with plain
`pytest` and the installed plugin: against tspu-2022 and tspu-2026-reassembly, the relay gets
through under both and the split ClientHello under tspu-2022 only (expected to fail, strictly,
under the 2026 profile, which reassembles TCP: docs/tspu-behaviour.md §5.10). A second run
drops the xfail to see a failing test carry its lab: the run directory, the capture, the TSPU's
verdict and the tool's logs, also as JUnit properties.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "minirelay"

pytest_plugins = ["pytester"]

if not any(e.value == "tspulab.pytest_plugin" for e in entry_points(group="pytest11")):
    pytest.skip("the tspulab plugin is not installed (pip install -e .)", allow_module_level=True)


@pytest.fixture
def tool_repo(pytester: pytest.Pytester) -> Path:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    return pytester.path


def test_the_example_passes_and_fails_as_documented(
    pytester: pytest.Pytester, tool_repo: Path
) -> None:
    junit = tool_repo / "junit.xml"
    result = pytester.runpytest_subprocess("-rxXs", "-v", f"--junitxml={junit}", "tests")
    print(result.stdout.str())
    result.assert_outcomes(passed=3, xfailed=1)
    result.stdout.fnmatch_lines([
        "*test_relay_gets_through?tspu-2022? PASSED*",
        "*test_split_hello_gets_through?tspu-2022? PASSED*",
        "*test_relay_gets_through?tspu-2026-reassembly? PASSED*",
        "*test_split_hello_gets_through?tspu-2026-reassembly? XFAIL*",
    ])  # fmt: skip
    runs = sorted((tool_repo / "tspulab-runs").iterdir())
    assert len(runs) == 2  # one lab per profile, shared by the module's tests
    for run in runs:
        assert (run / "report.html").is_file() and (run / "capture-isp.pcap").is_file()
        assert "listening on" in (run / "methods" / "relay" / "server.cl2.log").read_text()
    assert ET.parse(junit).getroot().find(".//testcase") is not None


def test_a_failing_test_carries_its_lab(pytester: pytest.Pytester, tool_repo: Path) -> None:
    junit = tool_repo / "junit.xml"
    result = pytester.runpytest_subprocess(
        "--runxfail", "-k", "split and reassembly", f"--junitxml={junit}", "tests"
    )
    print(result.stdout.str())
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*tspulab*",
        "run directory: *minirelay-ci-*",
        "capture: *capture-isp.pcap",
        "*sub1 -> https://blocked.example.org/ ?timeout?*",
        "*104.16.1.10:443 tls sni=blocked.example.org drop rule=sni-iv*",
        "client.*.log:",
    ])  # fmt: skip
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["tspulab_profile"] == "tspu-2026-reassembly"
    assert Path(props["tspulab_run_dir"]).is_dir()
