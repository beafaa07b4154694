"""pytest plugin: regression tests of circumvention tools against dated TSPU behaviours.

Registered under `pytest11` (installing tspulab is enough); docs/ci.md has the walk-through and a
tool repository's layout. In a test file:

    pytestmark = [pytest.mark.tspulab_scenario("lab.yaml"),
                  pytest.mark.tspulab_profiles("tspu-2022", "tspu-2026-reassembly")]

    def test_relay(tspulab_lab):
        sub = tspulab_lab.subscriber()
        assert sub.is_blocked("blocked", how="any")
        assert sub.gets_through("blocked", via="relay")

- `tspulab_lab`: the scenario's lab, up for the whole module (or session: ini `tspulab_scope`),
  one per profile of `tspulab_profiles`, always torn down. It lives in a run sandbox and is
  driven through `tspulab.remote_lab.RemoteLab` (a request/response loop over a Unix socket);
  the sandbox dies with the test process by construction.
- `tspulab_subscriber`: the first subscriber's handle: `run(command)`, `probe`, `gets_through`,
  `is_blocked`, `goodput`.
- `tspulab_tool`: the scenario's first `kind: custom` method (the user's own server, started at
  bring-up in its foreign cloud host, and their client): `alive`, `log(side)`.
- The registry and profile can change mid-test (`tspulab_lab.set_profile`, `.block`,
  `.push_registry`); what a test changed is put back after it.
- Skipped with the reason where root, Open vSwitch, Mininet or another needed program is
  missing. A failing test gets a "tspulab" section: its probes, the TSPU's verdicts on them, the
  run directory (report.html, the capture of each TSPU's subscriber port, the tools' logs), also
  as JUnit properties. Commands of `kind: custom` methods run because the plugin's user wrote
  them in their own tests (the explicit opt-in; `tspulab run` needs `--allow-commands`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tspulab.lab_handles import Check, CommandResult, Lab, Subscriber, Tool, ToolDied

__all__ = ["Check", "CommandResult", "Lab", "Subscriber", "Tool", "ToolDied", "skip_reason"]

NEEDED = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "mnexec", "nginx", "dnsmasq",
          "curl", "ss", "unshare", "setpriv")  # fmt: skip


def skip_reason() -> str | None:
    """Why a live lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "tspulab labs need root (network namespaces, Open vSwitch)"
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        return f"tspulab labs need {', '.join(missing)} (Open vSwitch, Mininet, nginx, ...: " \
            "scripts/setup.sh, or docs/ci.md for CI runners)"  # fmt: skip
    if importlib.util.find_spec("mininet") is None:
        return "tspulab labs need Mininet importable (Debian package mininet; a venv made " \
            "with --system-site-packages)"  # fmt: skip
    return None


# --- options and markers --------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tspulab", "tspulab labs")
    group.addoption(
        "--tspulab-runs-dir", default=None,
        help="where the labs' run directories go (default: ini tspulab_runs_dir, else "
        "<rootdir>/tspulab-runs)",
    )  # fmt: skip
    parser.addini("tspulab_runs_dir", "where the labs' run directories go", default="")
    parser.addini("tspulab_scope", "lifetime of a lab: module or session", default="module")
    parser.addini("tspulab_capture", "capture each TSPU's subscriber port", default="true")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tspulab_profiles(*names): run the test once per TSPU behaviour profile"
    )
    config.addinivalue_line(
        "markers", "tspulab_scenario(source): the lab's scenario (a YAML path relative to the "
        "test file, YAML text, or a mapping)",
    )  # fmt: skip


def _scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = str(config.getini("tspulab_scope"))
    if scope not in ("module", "session"):
        raise pytest.UsageError(f"ini tspulab_scope: '{scope}' (module or session)")
    return scope


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("tspulab_profiles")
    if marker is None or "tspulab_profile" not in metafunc.fixturenames:
        return
    from tspulab.dpi.profile import profile_names

    known = set(profile_names())
    unknown = [p for p in marker.args if p not in known]
    if unknown or not marker.args:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: tspulab_profiles({', '.join(map(repr, unknown))}): "
            f"unknown profile (known: {', '.join(sorted(known))})"
        )
    metafunc.parametrize(
        "tspulab_profile", list(marker.args), indirect=True, scope=_scope("", metafunc.config)
    )


# --- fixtures -------------------------------------------------------------------------------


def load_scenario_source(source: Any, base: Path) -> Any:
    """A scenario from a marker's argument: a YAML path (relative to `base`), YAML text, or a
    mapping."""
    from tspulab.scenario.schema import load_scenario, load_scenario_text

    if isinstance(source, dict):
        import json

        return load_scenario_text(json.dumps(source), base / "scenario.yaml")
    if isinstance(source, str) and "\n" in source:
        return load_scenario_text(source, base / "scenario.yaml")
    path = Path(source)
    return load_scenario(path if path.is_absolute() else base / path)


def with_profile(scenario: Any, profile: str | None) -> Any:
    """The scenario with every ISP's TSPU running `profile`."""
    if profile is None:
        return scenario
    isps = [isp.model_copy(update={"profile": profile}) for isp in scenario.isps or []]
    copy = scenario.model_copy(update={"profile": profile, "isps": isps or scenario.isps})
    copy._path = scenario.path
    return copy


@pytest.fixture(scope=_scope)
def tspulab_profile(request: pytest.FixtureRequest) -> str | None:
    """The profile this lab runs (from `tspulab_profiles`), or None: the scenario's own."""
    return getattr(request, "param", None)


@pytest.fixture(scope=_scope)
def tspulab_scenario(request: pytest.FixtureRequest) -> Any:
    """The lab's scenario, from the nearest `tspulab_scenario` marker; override the fixture to
    build one in code (with ini tspulab_scope = session, in conftest.py: a marker belongs to a
    module, a session-scoped lab to none)."""
    marker = request.node.get_closest_marker("tspulab_scenario")
    if marker is None:
        raise pytest.UsageError(
            f"{request.node.nodeid or 'session'}: no scenario for the lab: add "
            "pytest.mark.tspulab_scenario('lab.yaml') to the module, or override the "
            "tspulab_scenario fixture (conftest.py, for a session-scoped lab)"
        )
    return load_scenario_source(marker.args[0], Path(str(request.node.path)).parent)


@pytest.fixture(scope=_scope)
def tspulab_runs_dir(request: pytest.FixtureRequest) -> Path:
    """Where run directories go: --tspulab-runs-dir, ini tspulab_runs_dir, else
    <rootdir>/tspulab-runs (keep it as a CI artifact)."""
    config = request.config
    raw = config.getoption("--tspulab-runs-dir") or str(config.getini("tspulab_runs_dir"))
    return Path(raw) if raw else config.rootpath / "tspulab-runs"


@pytest.fixture(scope=_scope)
def tspulab_lab(
    request: pytest.FixtureRequest,
    tspulab_scenario: Any,
    tspulab_profile: str | None,
    tspulab_runs_dir: Path,
) -> Iterator[Lab]:
    """The scenario's lab under the profile, up for the module (or session), torn down after."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from tspulab.methods.custom import require_allowed
    from tspulab.remote_lab import RemoteLab

    scenario = with_profile(tspulab_scenario, tspulab_profile)
    require_allowed(scenario, allow_commands=True)  # programs and files there, before bring-up
    capture = str(request.config.getini("tspulab_capture")).lower() in ("1", "true", "yes")
    remote = RemoteLab(scenario, tspulab_runs_dir, capture=capture, allow_commands=True)
    remote.start()
    lab = Lab(remote, scenario, tspulab_profile)
    try:
        yield lab
    finally:
        remote.close()


@pytest.fixture
def tspulab_subscriber(tspulab_lab: Lab) -> Subscriber:
    """The lab's first subscriber."""
    return tspulab_lab.subscriber()


@pytest.fixture
def tspulab_tool(tspulab_lab: Lab) -> Tool:
    """The scenario's first `kind: custom` method: the user's server, already up in its cloud."""
    tool = tspulab_lab.tool()
    if not tool.alive():
        raise ToolDied(f"{tool.name}: the server is not running:\n{tool.log('server')[-2000:]}")
    return tool


@pytest.fixture(autouse=True)
def _tspulab_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Mark the test's start in the lab it uses, and put back what it changed after it."""
    if "tspulab_lab" not in request.fixturenames:
        yield
        return
    lab: Lab = request.getfixturevalue("tspulab_lab")
    lab.begin(request.node.nodeid)
    request.node._tspulab_lab = lab  # read by the report hook below
    try:
        yield
    finally:
        lab.end()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    lab: Lab | None = getattr(item, "_tspulab_lab", None)
    if lab is None or report.when != "call" or not report.failed or lab.run_dir is None:
        return
    report.sections.append(("tspulab", lab.failure_text()))
    props = [("tspulab_run_dir", str(lab.run_dir)), ("tspulab_profile", lab.profile or "")]
    item.user_properties.extend(props)  # JUnit XML reads them from the teardown report
    if report.user_properties is not item.user_properties:
        report.user_properties.extend(props)
