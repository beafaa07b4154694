"""Which DPI modules run compiled, and the import hook that never lets a stale build run.

The modules in ``COMPILED`` (the per-packet path of ``tspulab replay`` and of the controller:
decode, flow table, classifier, parsers) are compiled by Cython from their own ``.py`` files
when tspulab is installed (``setup.py``; ``make build`` or ``bash scripts/setup.sh`` rebuilds).
Nothing is written for the compiler alone: the ``.py`` file is the specification, the extension
module is the same code without the interpreter's dispatch, and tests check packet by packet that
both leave the same flows, counters and verdicts (tests/unit/dpi/test_compiled.py).

An extension module ``fastpath.cpython-311-x86_64-linux-gnu.so`` beside ``fastpath.py`` would
normally shadow the ``.py`` whatever the ``.py`` says now (the import system tries extension
modules first). So the build records, in ``_compiled.json`` beside them, the SHA-256 of each
source it compiled and the size of the extension it made; ``install()`` puts a finder in front
of the import system that loads an extension only when its source still has that hash and the
extension is the one recorded. Otherwise the module is imported from its ``.py``: an edited
source runs as written (pure Python, slower) until the next build, and ``status()`` says so.
``TSPULAB_DPI_PURE=1`` in the environment imports every module from its ``.py``.

Kept to the standard library: ``setup.py`` loads this file by path before tspulab is installed.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

COMPILED: tuple[str, ...] = (
    "tspulab.dpi.fastpath",
    "tspulab.dpi.packet",
    "tspulab.dpi.flow",
    "tspulab.dpi.classify",
    "tspulab.dpi.classify_types",
    "tspulab.dpi.classify_udp",
    "tspulab.dpi.quic",
    "tspulab.dpi.quic_keys",
    "tspulab.dpi.quic_detect",
    "tspulab.dpi.tls",
    "tspulab.dpi.reassembly",
    "tspulab.dpi.http",
    "tspulab.dpi.pcap",
    "tspulab.dpi.fingerprints.dns",
    "tspulab.dpi.fingerprints.dtls",
    "tspulab.dpi.fingerprints.fully_encrypted",
    "tspulab.dpi.fingerprints.openvpn",
    "tspulab.dpi.fingerprints.ssh",
    "tspulab.dpi.fingerprints.tor",
    "tspulab.dpi.fingerprints.wireguard",
)
"""Modules compiled by ``setup.py``, by the measurement in docs/dpi.md ("Compiled modules")."""

MANIFEST = "_compiled.json"
"""The build record, in the tspulab/dpi directory beside the extension modules."""
PURE_ENV = "TSPULAB_DPI_PURE"
REBUILD_HINT = "make build (or bash scripts/setup.sh)"

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the tspulab directory
_EXTENSION_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def source_path(module: str) -> Path:
    """The ``.py`` file of a module in ``COMPILED``."""
    return _PACKAGE_ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")


def extension_path(module: str) -> Path:
    """Where the build puts the module's extension for this interpreter."""
    source = source_path(module)
    return source.with_name(source.stem + _EXTENSION_SUFFIX)


def source_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    module: str
    compiled: bool
    """True when the import hook loads the extension module."""
    reason: str
    """Why not, in words (empty when compiled)."""


def _read_manifest() -> dict[str, dict[str, object]]:
    try:
        record = json.loads((_PACKAGE_ROOT / "dpi" / MANIFEST).read_text())
        modules = record["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return modules if isinstance(modules, dict) else {}


def _judge(module: str, manifest: dict[str, dict[str, object]]) -> ModuleStatus:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return ModuleStatus(module, False, f"{PURE_ENV} is set")
    ext = extension_path(module)
    if not ext.exists():
        return ModuleStatus(module, False, "not built (no extension module)")
    entry = manifest.get(module)
    if entry is None:
        return ModuleStatus(module, False, f"no build record in {MANIFEST}; run {REBUILD_HINT}")
    try:
        size = ext.stat().st_size
        digest = source_sha256(source_path(module))
    except OSError as err:
        return ModuleStatus(module, False, f"unreadable: {err}")
    if entry.get("extension") != ext.name or entry.get("size") != size:
        return ModuleStatus(
            module, False, f"{ext.name} is not the one the build recorded; run {REBUILD_HINT}"
        )
    if entry.get("source_sha256") != digest:
        return ModuleStatus(
            module, False, f"{source_path(module).name} changed since the build; run {REBUILD_HINT}"
        )
    return ModuleStatus(module, True, "")


class _Finder(importlib.abc.MetaPathFinder):
    """Decides, for each module in ``COMPILED``, between its extension and its ``.py``."""

    def __init__(self) -> None:
        self.force_pure = False
        self._manifest: dict[str, dict[str, object]] | None = None
        self.decided: dict[str, ModuleStatus] = {}

    def status(self, module: str) -> ModuleStatus:
        if self.force_pure:
            return ModuleStatus(module, False, "pure path forced (compiled.forced_pure)")
        if module not in self.decided:
            if self._manifest is None:
                self._manifest = _read_manifest()
            self.decided[module] = _judge(module, self._manifest)
        return self.decided[module]

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        source = source_path(fullname)
        if not self.status(fullname).compiled:
            return importlib.util.spec_from_file_location(fullname, source)
        ext = extension_path(fullname)
        loader = _ExtensionOrSource(fullname, ext, source, self)
        return importlib.util.spec_from_file_location(fullname, ext, loader=loader)


class _ExtensionOrSource(importlib.abc.Loader):
    """Loads the extension module; if the dynamic loader refuses it (a tree shared with another
    machine whose C library or Python differs), the ``.py`` instead, and the status says why."""

    def __init__(self, name: str, ext: Path, source: Path, finder: _Finder) -> None:
        self.extension = importlib.machinery.ExtensionFileLoader(name, str(ext))
        self.source = importlib.machinery.SourceFileLoader(name, str(source))
        self.finder = finder
        self.chosen: importlib.abc.Loader = self.extension

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        try:
            return self.extension.create_module(spec)
        except ImportError as err:
            self.chosen = self.source
            spec.origin = self.source.path
            spec.cached = importlib.util.cache_from_source(self.source.path)
            self.finder.decided[spec.name] = ModuleStatus(
                spec.name, False, f"extension failed to load: {err}"
            )
            return None

    def exec_module(self, module: ModuleType) -> None:
        self.chosen.exec_module(module)


_FINDER = _Finder()


def install() -> None:
    """Put the finder in front of the import system (tspulab/dpi/__init__.py does, once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def status() -> list[ModuleStatus]:
    """Every module of ``COMPILED``: whether it is (or would be) imported compiled, and why not."""
    return [_FINDER.status(module) for module in COMPILED]


def in_use(module: str) -> bool:
    """True when the imported ``module`` is its extension module (not its ``.py``)."""
    loaded = sys.modules.get(module)
    origin = getattr(getattr(loaded, "__spec__", None), "origin", None) or ""
    return origin.endswith(_EXTENSION_SUFFIX)


@contextmanager
def forced_pure() -> Iterator[None]:
    """Modules imported inside the block come from their ``.py`` files. For tests that load
    both paths side by side: the caller removes the modules from ``sys.modules`` first."""
    before = _FINDER.force_pure
    _FINDER.force_pure = True
    try:
        yield
    finally:
        _FINDER.force_pure = before


def main(argv: Sequence[str] | None = None) -> int:
    """Print each module's status; with ``--check``, exit 1 unless every one is compiled."""
    args = list(sys.argv[1:] if argv is None else argv)
    states = status()
    for state in states:
        print(f"{state.module:<40} {'compiled' if state.compiled else 'pure: ' + state.reason}")
    done = sum(s.compiled for s in states)
    print(f"{done} of {len(states)} DPI modules compiled")
    return 0 if "--check" not in args or done == len(states) else 1
