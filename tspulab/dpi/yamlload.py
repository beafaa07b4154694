"""Reading scenario YAML while keeping the position of every key and list item.

It lives in the DPI core because behaviour profiles (`profile.py`) are read with it too; the
scenario layer imports it from here (the core never imports the scenario layer).

A scenario file is parsed twice over in one pass: ruamel.yaml's round-trip loader gives a tree of
`CommentedMap`/`CommentedSeq` whose `.lc` records the 0-based line and column of each key and
item, and `to_plain` turns that tree into plain dicts, lists and scalars for pydantic. A pydantic
error location such as `('services', 2, 'address')` is then walked back through the tree to the
line of the offending key. Errors are `ErrorLocation`s, collected into one `ScenarioError`.

Files come from people the user may not trust (CI runs scenarios it did not write), so the loader
is bounded before it builds anything (`YamlLimits`): the file's size, the nesting depth, the items
of one mapping or list, and the number of values once aliases are expanded (nine nested anchors,
the "billion laughs", stand for 10^9 values in a few hundred bytes). The parser checks each event
before the composer gets it (`tspulab.dpi.yamllimits`), and a value ruamel cannot construct
(month 13, an integer of 5000 digits) is reported at its position instead of escaping as a
Python exception.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from tspulab.dpi.yamllimits import LIMITS, LimitedParser, YamlLimits

__all__ = ["LIMITS", "YamlLimits"]  # re-exported: callers set limits through this module

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ErrorLocation:
    """One problem in a scenario file, at a 1-based line and column (0 when unknown)."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}:" if self.line else f"{self.file}:"
        return f"{where} {self.field}: {self.message}" if self.field else f"{where} {self.message}"


class ScenarioError(Exception):
    """Every problem found in a scenario file, sorted by position; str() gives one per line."""

    def __init__(self, errors: Iterable[ErrorLocation]) -> None:
        self.errors: list[ErrorLocation] = sorted(
            set(errors), key=lambda e: (e.file, e.line, e.column, e.field, e.message)
        )
        super().__init__("\n".join(str(e) for e in self.errors))


def format_loc(loc: Sequence[str | int]) -> str:
    """`('services', 2, 'address')` -> `services[2].address` (list indices are 0-based)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


SUGGEST_FROM = 200
"""Among more names than this, "did you mean" only weighs those of about the same length that
start alike: difflib costs microseconds per candidate, and a file of 10,000 references to
10,000 names would otherwise take minutes to report."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A `; did you mean 'x'?` suffix when a choice is close to `word`, else ''."""
    candidates = list(choices)
    if len(candidates) > SUGGEST_FROM:
        head = word[:1]
        candidates = [c for c in candidates if c[:1] == head and abs(len(c) - len(word)) <= 2][
            :SUGGEST_FROM
        ]
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def listed(items: Iterable[object], most: int = 10) -> str:
    """`a, b, c` or, past `most` items, `a, b, ... (1234 in all)`: an error message names a few
    of a long list, not all of them (one line per error, and a file may have thousands)."""
    shown: list[str] = []
    count = 0
    for item in items:
        count += 1
        if count <= most:
            shown.append(str(item))
    if count > most:
        return ", ".join(shown) + f", ... ({count} in all)"
    return ", ".join(shown)


def to_plain(node: Any) -> Any:
    """The round-trip tree as builtin dicts, lists, str, int, float and bool (for pydantic)."""
    if isinstance(node, dict):
        return {to_plain(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    # bool before int: bool (and ruamel's anchored ScalarBoolean) are int subclasses.
    if isinstance(node, bool) or type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


@dataclass(frozen=True)
class YamlDocument:
    """A parsed scenario file: the position-carrying tree and its plain-data twin."""

    file: str
    tree: Any
    data: Any

    def position(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, column) of the deepest key or item of `loc` present in the file.

        A missing key (a required field left out) resolves to the mapping that should hold it.
        """
        node = self.tree
        line, col = (node.lc.line, node.lc.col) if isinstance(node, CommentedMap) else (0, 0)
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                break
        return line + 1, col + 1

    def error(self, loc: Sequence[str | int], message: str) -> ErrorLocation:
        line, col = self.position(loc)
        return ErrorLocation(self.file, line, col, format_loc(loc), message)

    def line_of(self, loc: Sequence[str | int]) -> int:
        return self.position(loc)[0]


# --- pydantic errors -> readable messages ---------------------------------------------------

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "an empty value",
}
_EXPECTED = {
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
    "greater_than": ("gt", "more than"),
    "less_than": ("lt", "less than"),
}


def describe_type(value: object) -> str:
    """What a YAML value is, in YAML words: 'a mapping', 'a list', 'an integer', ..."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def yaml_keys(model: type[BaseModel]) -> dict[str, str]:
    """YAML key -> field name of a model (a key such as `from` is the alias of field `from_`)."""
    return {info.alias or name: name for name, info in model.model_fields.items()}


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (to list the keys it knows)."""
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(yaml_keys(model).get(part, ""))
        found = _find_model(field.annotation) if field is not None else None
        if found is None:
            return None
        model = found
    return model


def pydantic_message(err: ErrorDetails, root: type[BaseModel]) -> str:
    """One pydantic error as a sentence about the YAML the user wrote."""
    kind, loc, value = err["type"], err["loc"], err.get("input")
    ctx = err.get("ctx", {})
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = model_at(root, loc[:-1])
        known = tuple(yaml_keys(model)) if model else ()
        hint = did_you_mean(key, known) or (f" (known keys: {listed(known, 30)})" if known else "")
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "literal_error":
        if loc == ("version",):
            return f"unsupported version {value!r}; the only version is {ctx.get('expected')}"
        return f"{value!r} is not allowed; expected {ctx.get('expected')}"
    if kind in _EXPECTED:
        shown = "" if value is None else f" {value!r}"
        return f"expected {_EXPECTED[kind]}, got {describe_type(value)}{shown}"
    if kind == "invalid_key":
        return f"key {loc[-1]!r} is not a string"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"{value!r} is out of range: must be {words} {ctx.get(key)}"
    if kind == "finite_number":
        return f"{value!r} is not a finite number"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    return err["msg"]


def _path_to_mapping(node: Any, line: int, col: int, loc: Loc = ()) -> Loc | None:
    """The location of the mapping that starts at 0-based (line, col), searched depth first."""
    if isinstance(node, CommentedMap):
        if (node.lc.line, node.lc.col) == (line, col):
            return loc
        children: Iterable[tuple[str | int, Any]] = node.items()
    elif isinstance(node, CommentedSeq):
        children = enumerate(node)
    else:
        return None
    for key, child in children:
        found = _path_to_mapping(child, line, col, (*loc, key))
        if found is not None:
            return found
    return None


def _duplicate_key_field(text: str, err: DuplicateKeyError) -> str:
    """`services[3].address` for a duplicate key, found by re-reading with duplicates allowed."""
    key = re.search(r'duplicate key "(.*?)"', str(err.problem))
    if key is None or err.context_mark is None:
        return ""
    yaml = _yaml(LIMITS)
    yaml.allow_duplicate_keys = True
    try:
        tree = yaml.load(text)
    except YAMLError:  # incl. a value that cannot be built (a ConstructorError here)
        return ""
    loc = _path_to_mapping(tree, err.context_mark.line, err.context_mark.column)
    return format_loc((*loc, key.group(1))) if loc is not None else ""


def _yaml_error(file: str, text: str, err: MarkedYAMLError) -> ErrorLocation:
    mark = err.problem_mark or err.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    problem = err.problem or err.context or "invalid YAML"
    field = ""
    if isinstance(err, DuplicateKeyError):
        first = err.context_mark
        problem = problem.split(" with value")[0]
        field = _duplicate_key_field(text, err)
        if first is not None:
            problem += f" (in the mapping that starts at line {first.line + 1})"
    elif err.context and err.problem and err.context_mark is not None:
        problem = f"{problem} ({err.context} at line {err.context_mark.line + 1})"
    return ErrorLocation(file, line, col, field, f"YAML: {problem}")


class _Constructor(RoundTripConstructor):
    """The round-trip constructor, with a value it cannot build reported at its position."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError) as err:
            shown = str(node.value) if isinstance(node.value, str) else ""
            if len(shown) > 40:
                shown = f"{shown[:20]}...({len(shown)} characters)"
            raise ConstructorError(
                problem=f"cannot read the value {shown!r}: {err}", problem_mark=node.start_mark
            ) from err


def _yaml(limits: YamlLimits) -> YAML:
    """A round-trip loader with the limits checked and unbuildable values as YAML errors."""
    yaml = YAML(typ="rt")
    yaml.Parser = LimitedParser
    yaml.Constructor = _Constructor
    yaml.tspulab_limits = limits  # type: ignore[attr-defined]
    yaml.allow_duplicate_keys = False
    return yaml


def read_yaml(path: Path, file: str, limits: YamlLimits = LIMITS) -> YamlDocument:
    """Parse `path` (named `file` in errors); syntax errors, duplicate keys and passed limits ->
    ScenarioError. At most `limits.max_bytes` + 1 bytes are read."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except OSError as err:
        raise ScenarioError([ErrorLocation(file, 0, 0, "", f"cannot read: {err}")]) from err
    if len(raw) > limits.max_bytes:
        raise ScenarioError([_too_big(file, raw, limits)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError([ErrorLocation(file, 0, 0, "", f"cannot read: {err}")]) from err
    return parse_yaml(text, file, limits)


def _too_big(file: str, head: bytes, limits: YamlLimits) -> ErrorLocation:
    before = head[: limits.max_bytes].decode("utf-8", errors="replace")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return ErrorLocation(
        file,
        line,
        column,
        "",
        f"the file is longer than the limit of {limits.max_bytes} bytes for a YAML file "
        "(long lists belong in a registry file)",
    )


def parse_yaml(text: str, file: str, limits: YamlLimits = LIMITS) -> YamlDocument:
    """Parse YAML text (named `file` in errors); syntax errors, duplicate keys, values that
    cannot be built and passed limits -> ScenarioError."""
    if len(text.encode("utf-8")) > limits.max_bytes:
        raise ScenarioError([_too_big(file, text.encode("utf-8"), limits)])
    yaml = _yaml(limits)
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as err:
        raise ScenarioError([_yaml_error(file, text, err)]) from err
    except YAMLError as err:
        raise ScenarioError([ErrorLocation(file, 0, 0, "", f"YAML: {err}")]) from err
    return YamlDocument(file=file, tree=tree, data=to_plain(tree))
