"""The compiled DPI modules against their .py files, and the import hook that chooses between them.

The pure stack is imported afresh from the .py files (``compiled.forced_pure``, every
``tspulab.dpi`` module reloaded), the compiled stack is the one the process imported; both replay
the same frames through the replay loop (``fastpath.count_decided``, else decode -> lookup ->
observe), and after every packet they must have done the same thing: the same flows, counters,
directions, closing marks, verdicts, JA3 and JA4 (the verdict of each packet and the final
table, with expired flows). Without a build (no compiler) the comparison is skipped; in CI
(``CI`` set, a C compiler present) the modules must be compiled, which proves that a fresh
clone's ``make test`` built them.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tspulab.dpi
from tests.datapaths import PCAPS
from tspulab.dpi import compiled
from tspulab.dpi.pcap import read_capture

_PREFIX = "tspulab.dpi."
_STACK = ("fastpath", "flow", "packet", "classify", "errors")


def _dpi_modules() -> dict[str, ModuleType]:
    return {
        name: module
        for name, module in sys.modules.items()
        if name.startswith(_PREFIX) and name != "tspulab.dpi.compiled"
    }


def _children(modules: dict[str, ModuleType]) -> list[str]:
    """The direct submodules of tspulab.dpi among ``modules`` that the package has as attributes."""
    leaves = [name[len(_PREFIX) :] for name in modules]
    return [leaf for leaf in leaves if "." not in leaf and hasattr(tspulab.dpi, leaf)]


def _import_stack(pure: bool) -> dict[str, ModuleType]:
    """The modules the replay loop needs; with ``pure``, fresh copies from the .py files that
    leave the process's own imports as they were."""
    if not pure:
        return {name: importlib.import_module(_PREFIX + name) for name in _STACK}
    saved = _dpi_modules()
    # `from tspulab.dpi import quic` takes the package's attribute when there is one, so the
    # package's submodule attributes go too while the fresh copies are imported.
    children = {leaf: getattr(tspulab.dpi, leaf) for leaf in _children(saved)}
    for name in saved:
        del sys.modules[name]
    for leaf in children:
        delattr(tspulab.dpi, leaf)
    try:
        with compiled.forced_pure():
            stack = {name: importlib.import_module(_PREFIX + name) for name in _STACK}
        fresh = _dpi_modules()
        for module in fresh.values():  # nothing of the compiled stack leaked in
            assert module.__spec__ is not None and str(module.__spec__.origin).endswith(".py")
            for value in vars(module).values():
                if isinstance(value, ModuleType) and value.__name__.startswith(_PREFIX):
                    assert fresh.get(value.__name__) is value, (module.__name__, value.__name__)
    finally:
        for leaf in _children(_dpi_modules()):
            delattr(tspulab.dpi, leaf)
        for name in _dpi_modules():
            del sys.modules[name]
        sys.modules.update(saved)
        for leaf, module in children.items():
            setattr(tspulab.dpi, leaf, module)
    return stack


def _plain(value: object, depth: int = 0) -> object:
    """A value of either stack in terms both can be compared by (their classes differ)."""
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and depth < 4:
        return (
            type(value).__name__,
            tuple(
                (f.name, _plain(getattr(value, f.name), depth + 1))
                for f in dataclasses.fields(value)
            ),
        )
    if isinstance(value, list | tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    return type(value).__name__


def _verdict(verdict: object) -> object:
    if verdict is None:
        return None
    return (_plain(verdict), verdict.ja3, verdict.ja4)  # type: ignore[attr-defined]


def _flow(flow: object) -> object:
    fields = (
        "key", "client_addr", "client_port", "server_addr", "server_port", "first_seen",
        "last_seen", "from_client", "packets_from_client", "bytes_from_client",
        "packets_from_server", "bytes_from_server", "tcp_closing",
    )  # fmt: skip
    classification = flow.classification  # type: ignore[attr-defined]
    return (tuple(getattr(flow, f) for f in fields), _verdict(classification))


class _Replay:
    """The replay loop of ``tspulab replay`` over one stack, recording what each packet did."""

    def __init__(self, stack: dict[str, ModuleType], reassembly: str, idle: float = 300.0):
        self.fastpath = stack["fastpath"]
        self.count_decided = stack["fastpath"].count_decided
        self.decode = stack["packet"].decode
        self.decode_error = stack["errors"].DecodeError
        self.table = stack["flow"].FlowTable(idle_timeout=idle)
        self.classifier = stack["classify"].Classifier(reassembly)

    def packet(self, frame: bytes, linktype: int, ts: float) -> object:
        flow = self.count_decided(self.table, frame, linktype, ts)
        if flow is not None:
            return ("fast", _flow(flow))
        try:
            pkt = self.decode(frame, linktype)
        except self.decode_error as err:
            return ("undecoded", type(err).__name__)
        flow = self.table.lookup(pkt, ts)
        verdict = self.classifier.observe(pkt, flow, ts)
        return ("slow", _flow(flow), _verdict(verdict))

    def replay(self, frames: list[tuple[float, int, bytes]]) -> object:
        undecoded: Counter[str] = Counter()
        count = self.fastpath.replay(frames, self.table, self.classifier, undecoded)
        return count, dict(undecoded), self.end()

    def end(self) -> list[object]:
        flows = self.table.expire_all()
        return [(_flow(f), _verdict(self.classifier.conclude(f))) for f in flows]


_CAPTURES = sorted(PCAPS.iterdir())
_FRAMES = [(lt, f) for path in _CAPTURES for _, lt, f in list(read_capture(path))[:40]]


@pytest.fixture(scope="module")
def stacks() -> Iterator[tuple[dict[str, ModuleType], dict[str, ModuleType]]]:
    if not any(s.compiled for s in compiled.status()):
        pytest.skip("no DPI module compiled here: " + _not_compiled())
    native = _import_stack(pure=False)
    assert all(
        compiled.in_use(m.__name__) for m in native.values() if m.__name__ in compiled.COMPILED
    )
    yield _import_stack(pure=True), native


def _not_compiled() -> str:
    return "; ".join(f"{s.module}: {s.reason}" for s in compiled.status() if not s.compiled)


@pytest.mark.parametrize("reassembly", ["none", "tcp", "tls-records"])
def test_compiled_replay_equals_pure_on_every_capture(
    stacks: tuple[dict[str, ModuleType], dict[str, ModuleType]], reassembly: str
) -> None:
    pure_stack, native_stack = stacks
    for path in _CAPTURES:
        pure, native = _Replay(pure_stack, reassembly), _Replay(native_stack, reassembly)
        frames = list(read_capture(path))
        for index, (ts, lt, frame) in enumerate(frames):
            assert native.packet(frame, lt, ts) == pure.packet(frame, lt, ts), (path.name, index)
        assert native.end() == pure.end(), path.name
        # the whole loop of `tspulab replay` (fastpath.replay), compiled and pure
        pure, native = _Replay(pure_stack, reassembly), _Replay(native_stack, reassembly)
        assert native.replay(frames) == pure.replay(frames), path.name


@settings(max_examples=120, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(_FRAMES) - 1), min_size=1, max_size=60),
    gaps=st.lists(st.sampled_from([0.0, 0.001, 0.5, 80.0, 200.0, 400.0]), min_size=60, max_size=60),
    edits=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 90), st.integers(0, 255))),
    reassembly=st.sampled_from(["none", "tcp", "tls-records"]),
)
def test_compiled_equals_pure_packet_by_packet_on_mutated_frames(
    stacks: tuple[dict[str, ModuleType], dict[str, ModuleType]],
    picks: list[int],
    gaps: list[float],
    edits: list[tuple[int, int, int]],
    reassembly: str,
) -> None:
    """Frames of every capture in random order, random idle gaps (past the timeout and the sweep
    interval), random bytes changed (headers and the start of payloads)."""
    pure_stack, native_stack = stacks
    frames = [bytearray(_FRAMES[i][1]) for i in picks]
    for which, pos, value in edits:
        if which < len(frames) and pos < len(frames[which]):
            frames[which][pos] = value
    pure, native = _Replay(pure_stack, reassembly, 300.0), _Replay(native_stack, reassembly, 300.0)
    ts = 1000.0
    for index, frame in enumerate(frames):
        ts += gaps[index]
        lt = _FRAMES[picks[index]][0]
        assert native.packet(bytes(frame), lt, ts) == pure.packet(bytes(frame), lt, ts), index
    assert native.end() == pure.end()


def test_compiled_modules_in_use_where_a_compiler_is() -> None:
    """CI runs a fresh clone's ``make test`` as root with gcc (scripts/setup.sh installs it):
    there every listed module must be compiled and imported compiled. Elsewhere the modules
    reported compiled must be the ones imported."""
    states = compiled.status()
    for state in states:
        if state.compiled:
            importlib.import_module(state.module)
            assert compiled.in_use(state.module), state.module
    if os.environ.get("CI") and shutil.which("cc") and not os.environ.get(compiled.PURE_ENV):
        assert all(s.compiled for s in states), _not_compiled()


def test_pure_env_imports_every_module_from_its_source() -> None:
    code = (
        "import tspulab.dpi.classify, tspulab.dpi.fastpath, sys\n"
        "from tspulab.dpi import compiled\n"
        "print(sum(compiled.in_use(m) for m in compiled.COMPILED))\n"
        "print(sys.modules['tspulab.dpi.fastpath'].__spec__.origin)\n"
    )
    env = {**os.environ, compiled.PURE_ENV: "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "0" and out[1].endswith("fastpath.py")


def _fake_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, dict[str, dict[str, object]]]:
    source, ext = tmp_path / "fastpath.py", tmp_path / "fastpath.so"
    source.write_text("X = 1\n")
    ext.write_bytes(b"\x7fELF" + bytes(100))
    monkeypatch.setattr(compiled, "source_path", lambda module: source)
    monkeypatch.setattr(compiled, "extension_path", lambda module: ext)
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    record = {
        "tspulab.dpi.fastpath": {
            "extension": ext.name,
            "size": ext.stat().st_size,
            "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        }
    }
    return source, ext, record


def test_an_extension_is_used_only_with_the_source_it_was_built_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, ext, record = _fake_build(tmp_path, monkeypatch)
    judge = compiled._judge
    assert judge("tspulab.dpi.fastpath", record).compiled
    source.write_text("X = 2\n")  # edited after the build: the .py runs, and the reason says why
    state = judge("tspulab.dpi.fastpath", record)
    assert not state.compiled and "fastpath.py changed since the build" in state.reason
    assert "make build" in state.reason
    source.write_text("X = 1\n")
    ext.write_bytes(b"\x7fELF" + bytes(50))  # another build's extension, not the recorded one
    assert not judge("tspulab.dpi.fastpath", record).compiled
    assert "no build record" in judge("tspulab.dpi.fastpath", {}).reason
    ext.unlink()
    assert judge("tspulab.dpi.fastpath", record).reason == "not built (no extension module)"


def test_pure_env_wins_over_a_good_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, record = _fake_build(tmp_path, monkeypatch)
    monkeypatch.setenv(compiled.PURE_ENV, "1")
    assert not compiled._judge("tspulab.dpi.fastpath", record).compiled
    monkeypatch.setenv(compiled.PURE_ENV, "0")
    assert compiled._judge("tspulab.dpi.fastpath", record).compiled


def test_build_record_is_well_formed_where_it_exists() -> None:
    manifest = Path(compiled.__file__).with_name(compiled.MANIFEST)
    if not manifest.exists():
        pytest.skip("no build here")
    modules = json.loads(manifest.read_text())["modules"]
    assert set(modules) <= set(compiled.COMPILED)
    for module, entry in modules.items():
        assert entry["extension"] == compiled.extension_path(module).name
        assert len(entry["source_sha256"]) == 64


def test_an_extension_the_loader_refuses_falls_back_to_its_source(tmp_path: Path) -> None:
    """A tree shared with a machine whose C library or Python differs: the dynamic loader refuses
    the extension, the module is imported from its .py and the status says why."""
    source = tmp_path / "tspulab_fake_dpi.py"
    source.write_text("X = 1\n")
    ext = source.with_name("tspulab_fake_dpi" + importlib.machinery.EXTENSION_SUFFIXES[0])
    ext.write_bytes(b"not an ELF file")
    finder = compiled._Finder()
    loader = compiled._ExtensionOrSource("tspulab_fake_dpi", ext, source, finder)
    spec = importlib.util.spec_from_file_location("tspulab_fake_dpi", ext, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    assert module.X == 1 and module.__file__ == str(source)
    state = finder.decided["tspulab_fake_dpi"]
    assert not state.compiled and state.reason.startswith("extension failed to load")
