"""``extends:``: a profile written as another profile plus changes.

A profile file may start with ``extends: <profile>`` (a packaged profile's name, or a path to a
``.yaml`` file, relative to the extending file). The result is the base profile's YAML data with
the extending file's top-level keys laid over it:

- a top-level key the file gives replaces the base's whole value (``inspection``, ``rules``,
  ``sets``, ``desync``, ...: no deep merge, so what a profile says is always in one place);
- ``facts`` and ``not_modelled`` are the base's entries followed by the file's own;
- ``name`` and ``title`` must be the file's own.

Errors keep pointing at the line that wrote the value: a problem in a value the base gave is
reported at the base file's line (``tspu-2026-reassembly.yaml:41:9: rules[2]...``), one in the
extending file's own keys at its line. The base is itself loaded as a profile first (so its own
errors come out as its own); chains are followed up to ``MAX_DEPTH`` and a cycle is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tspulab.dpi.yamlload import ErrorLocation, ScenarioError, YamlDocument

MAX_DEPTH = 8
APPENDED = ("facts", "not_modelled")
OWN = ("name", "title")


@dataclass(frozen=True)
class ExtendedDocument:
    """The merged data of an extending file and its base, with errors located in the file that
    wrote each value (the interface of ``YamlDocument`` that the checks use)."""

    own: YamlDocument
    base: YamlDocument | ExtendedDocument
    data: Any

    @property
    def file(self) -> str:
        return self.own.file

    def error(self, loc: Sequence[str | int], message: str) -> ErrorLocation:
        if not loc:
            return self.own.error(loc, message)
        key = loc[0]
        if key in APPENDED and len(loc) > 1 and isinstance(loc[1], int):
            inherited = len(self.base.data.get(key) or [])
            if loc[1] < inherited:
                return self.base.error(loc, message)
            return self.own.error((key, loc[1] - inherited, *loc[2:]), message)
        if isinstance(self.own.data, dict) and key in self.own.data:
            return self.own.error(loc, message)
        return self.base.error(loc, message)


LoadBase = Callable[[str, YamlDocument, tuple[str, ...]], "YamlDocument | ExtendedDocument"]
"""Reads the base a reference names (itself merged), given the extending document and the chain."""


def extended(
    doc: YamlDocument,
    load_base: LoadBase,
    seen: tuple[str, ...] = (),
) -> YamlDocument | ExtendedDocument:
    """``doc`` as written, or merged over its base when it says ``extends:``.

    ``load_base(ref, doc)`` returns the base's document (itself merged) for the reference;
    ``seen`` the files already on the chain (for cycles and depth)."""
    data = doc.data
    if not isinstance(data, dict) or "extends" not in data:
        return doc
    ref = data["extends"]
    if not isinstance(ref, str) or not ref:
        raise ScenarioError([doc.error(("extends",), "a profile name or a .yaml path")])
    if len(seen) >= MAX_DEPTH:
        raise ScenarioError([doc.error(("extends",), f"more than {MAX_DEPTH} profiles deep")])
    base = load_base(ref, doc, seen)
    if not isinstance(base.data, dict):
        raise ScenarioError([doc.error(("extends",), f"{ref}: a profile is a mapping")])
    errors = [doc.error((key,), f"an extending profile gives its own '{key}'")
              for key in OWN if key not in data]  # fmt: skip
    if errors:
        raise ScenarioError(errors)
    merged = {k: v for k, v in base.data.items() if k != "extends"}
    for key, value in data.items():
        if key == "extends":
            continue
        if key in APPENDED and isinstance(value, list):
            merged[key] = [*(base.data.get(key) or []), *value]
        else:
            merged[key] = value
    return ExtendedDocument(doc, base, merged)


def base_path(ref: str, extending_file: str, packaged: Path) -> Path:
    """Where ``extends: ref`` points: a packaged profile by name, or a path relative to the
    extending file."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref)
        if not path.is_absolute():
            path = Path(extending_file).resolve().parent / path
        return path
    return packaged / f"{ref}.yaml"
