"""The strategy spec language: ``split:sni+tlsrec:1`` or the same as YAML, parsed and checked.

A *strategy* is one or more *steps* joined by ``+``; a step is a name from the catalogue
(catalogue.py) and its arguments after ``:``. An argument is a value for the next positional
parameter (``split:sni``), ``key=value`` (``fake:ttl=3``) or a bare flag name (``fake:badsum``).

    split:sni                    split the first write in the middle of the host name
    split:1+split:sni            two split points (a multisplit)
    tlsrec:sni+split:1           two TLS records, then two TCP segments
    fake:ttl=2:data=random:len=120+split:sni
    udpfake:data=short:len=601

The YAML form is a list whose items are a bare name, ``{name: positional}`` or
``{name: {param: value}}``; a mapping ``{strategy: [...]}`` or a plain string is accepted too:

    strategy:
      - split: sni
      - tlsrec: {at: 1}
      - fake: {ttl: 2, data: random, len: 120}

Every error names where it is: for a string the column and the step, for YAML the file, line and
column, then ``step.param`` and what was wrong (``tlsrec.at: 'x' is not a position ...``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from tspulab.strategies.catalogue import CATALOGUE, Param, Position, StrategyDef

Value = int | str | bool | Position | None


class StrategySpecError(ValueError):
    """A spec that cannot be used; the message says where (column, or file:line:col) and why."""


@dataclass(frozen=True, slots=True)
class Step:
    """One strategy of a combination, with every parameter filled (defaults included)."""

    name: str
    params: Mapping[str, Value]
    given: frozenset[str] = frozenset()
    """Parameters the spec set explicitly (the canonical form prints only these)."""

    @property
    def definition(self) -> StrategyDef:
        return CATALOGUE[self.name]

    @property
    def layer(self) -> str:
        return self.definition.layer

    def __getitem__(self, key: str) -> Value:
        return self.params[key]

    def num(self, key: str) -> int:
        value = self.params[key]
        assert isinstance(value, int) and not isinstance(value, bool), (key, value)
        return value

    def word(self, key: str) -> str:
        return str(self.params[key])

    def position(self, key: str = "at") -> Position:
        value = self.params[key]
        assert isinstance(value, Position), (key, value)
        return value

    def text(self) -> str:
        parts = [self.name]
        for p in self.definition.params:
            if p.name not in self.given:
                continue
            value = self.params[p.name]
            if p.kind == "flag":
                if value:
                    parts.append(p.name)
            else:
                parts.append(f"{p.name}={_format_value(value)}")
        return ":".join(parts)


@dataclass(frozen=True, slots=True)
class Strategy:
    """A combination of steps, applied together to one connection."""

    steps: tuple[Step, ...]
    source_text: str = field(default="", compare=False)

    def text(self) -> str:
        """Canonical string form (parses back to an equal Strategy)."""
        return "+".join(s.text() for s in self.steps) or "none"

    def layers(self) -> set[str]:
        return {s.layer for s in self.steps}

    def of_layer(self, layer: str) -> list[Step]:
        return [s for s in self.steps if s.layer == layer]

    def __str__(self) -> str:
        return self.text()


NONE = Strategy(())
"""No strategy: the control connection."""


def _format_value(value: Value) -> str:
    if isinstance(value, Position):
        return value.text()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _convert(step: str, param: Param, raw: object, where: str) -> Value:
    """One parameter value from text or YAML scalar, checked against its declaration."""
    label = f"{where}{step}.{param.name}"
    try:
        return param.convert(raw)
    except ValueError as err:
        raise StrategySpecError(f"{label}: {err}") from None


def _build_step(
    name: str,
    positional: Sequence[tuple[object, str]],
    named: Mapping[str, tuple[object, str]],
    step_where: str,
) -> Step:
    """A step from its name and arguments; each argument carries its location prefix."""
    definition = CATALOGUE[name]
    values: dict[str, Value] = {}
    given: set[str] = set()
    slots = [p for p in definition.params if p.kind != "flag"]
    for raw, where in positional:
        flag = definition.by_name.get(raw) if isinstance(raw, str) else None
        if flag is not None and flag.kind == "flag":
            if raw in given:
                raise StrategySpecError(f"{where}{name}.{raw}: given twice")
            values[flag.name] = True
            given.add(flag.name)
            continue
        free = [p for p in slots if p.name not in given]
        if not free:
            allowed = ", ".join(p.name for p in definition.params) or "no parameters"
            raise StrategySpecError(
                f"{where}{name}: too many arguments ({raw!r}); it takes {allowed}"
            )
        param = free[0]
        values[param.name] = _convert(name, param, raw, where)
        given.add(param.name)
    for key, (raw, where) in named.items():
        if key not in definition.by_name:
            allowed = ", ".join(p.name for p in definition.params) or "no parameters"
            raise StrategySpecError(
                f"{where}{name}: unknown parameter '{key}'"
                f"{_suggest(key, list(definition.by_name))} (it takes {allowed})"
            )
        if key in given:
            raise StrategySpecError(f"{where}{name}.{key}: given twice")
        values[key] = _convert(name, definition.by_name[key], raw, where)
        given.add(key)
    for p in definition.params:
        values.setdefault(p.name, p.default)
    step = Step(name, values, frozenset(given))
    problem = definition.check(step.params)
    if problem:
        raise StrategySpecError(f"{step_where}{name}: {problem}")
    return step


def _unknown_step(name: str, where: str) -> StrategySpecError:
    return StrategySpecError(
        f"{where}unknown strategy '{name}'{_suggest(name, list(CATALOGUE))} "
        f"(known: {', '.join(sorted(CATALOGUE))})"
    )


def _check_combination(steps: Sequence[Step], where: str) -> None:
    seen: dict[str, int] = {}
    for step in steps:
        seen[step.name] = seen.get(step.name, 0) + 1
        if seen[step.name] > 1 and not step.definition.repeatable:
            raise StrategySpecError(f"{where}'{step.name}' given twice; it cannot be repeated")
    transports = {s.definition.transport for s in steps} - {"any"}
    if len(transports) > 1:
        raise StrategySpecError(
            f"{where}mixes TCP-only and UDP-only strategies "
            f"({', '.join(f'{s.name}: {s.definition.transport}' for s in steps)})"
        )


def parse(text: str) -> Strategy:
    """Parse the string form. ``none`` (or an empty string) is the control: no strategy."""
    stripped = text.strip()
    if stripped in ("", "none"):
        return Strategy((), text)
    steps: list[Step] = []
    column = text.index(stripped[0]) + 1
    for chunk in stripped.split("+"):
        step_col = column
        if not chunk.strip():
            raise StrategySpecError(f"{text!r} at column {step_col}: empty step ('++'?)")
        pieces = chunk.split(":")
        name = pieces[0].strip()
        where = f"{text!r} at column {step_col}: "
        if name not in CATALOGUE:
            raise _unknown_step(name, where)
        positional: list[tuple[object, str]] = []
        named: dict[str, tuple[object, str]] = {}
        arg_col = step_col + len(pieces[0]) + 1
        for piece in pieces[1:]:
            at = f"{text!r} at column {arg_col}: "
            arg = piece.strip()
            if not arg:
                raise StrategySpecError(f"{at}{name}: empty argument (two ':' in a row?)")
            if "=" in arg:
                key, _, value = arg.partition("=")
                key = key.strip()
                if key in named:
                    raise StrategySpecError(f"{at}{name}.{key}: given twice")
                named[key] = (value.strip(), at)
            else:
                positional.append((arg, at))
            arg_col += len(piece) + 1
        steps.append(_build_step(name, positional, named, where))
        column += len(chunk) + 1
    _check_combination(steps, f"{text!r}: ")
    return Strategy(tuple(steps), text)


def _pos(node: Any, key: object, fallback: tuple[int, int]) -> tuple[int, int]:
    """1-based (line, column) of a key or item in a ruamel round-trip node."""
    try:
        if isinstance(node, CommentedMap):
            line, col = node.lc.key(key)
        elif isinstance(node, CommentedSeq):
            line, col = node.lc.item(key)
        else:
            return fallback
    except (KeyError, IndexError, TypeError, AttributeError):
        return fallback
    return line + 1, col + 1


def from_yaml_node(node: Any, file: str = "<yaml>", base: tuple[int, int] = (1, 1)) -> Strategy:
    """A strategy from a loaded YAML value (list, mapping with ``strategy``, or string)."""
    if isinstance(node, str):
        return parse(node)
    if isinstance(node, Mapping) and "strategy" in node:
        base = _pos(node, "strategy", base)
        node = node["strategy"]
        if isinstance(node, str):
            return parse(node)
    if not isinstance(node, list):
        line, col = base
        raise StrategySpecError(
            f"{file}:{line}:{col}: strategy: expected a list of steps or a string, "
            f"got {type(node).__name__}"
        )
    steps: list[Step] = []
    for i, item in enumerate(node):
        line, col = _pos(node, i, base)
        where = f"{file}:{line}:{col}: strategy[{i}]."
        if isinstance(item, str):
            name, args = item, None
        elif isinstance(item, Mapping) and len(item) == 1:
            name, args = next(iter(item.items()))
            line, col = _pos(item, name, (line, col))
            where = f"{file}:{line}:{col}: strategy[{i}]."
        else:
            raise StrategySpecError(
                f"{file}:{line}:{col}: strategy[{i}]: expected a name or a one-key mapping "
                "{name: arguments}"
            )
        name = str(name)
        if name not in CATALOGUE:
            raise _unknown_step(name, f"{file}:{line}:{col}: strategy[{i}]: ")
        positional: list[tuple[object, str]] = []
        named: dict[str, tuple[object, str]] = {}
        if isinstance(args, Mapping):
            for key, value in args.items():
                kl, kc = _pos(args, key, (line, col))
                named[str(key)] = (value, f"{file}:{kl}:{kc}: strategy[{i}].")
        elif isinstance(args, list):
            positional = [(v, where) for v in args]
        elif args is not None:
            positional = [(args, where)]
        steps.append(_build_step(name, positional, named, where))
    _check_combination(steps, f"{file}:{base[0]}:{base[1]}: strategy: ")
    return Strategy(tuple(steps), file)


def load_yaml(source: str | Path, *, text: str | None = None) -> Strategy:
    """A strategy from a YAML file (or from ``text``, named ``source`` in errors)."""
    name = str(source)
    if text is None:
        try:
            text = Path(source).read_text()
        except OSError as err:
            raise StrategySpecError(f"{name}: cannot read: {err.strerror}") from None
    yaml = YAML(typ="rt")
    try:
        node = yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise StrategySpecError(f"{where}: not valid YAML: {err.problem}") from None
    except YAMLError as err:
        raise StrategySpecError(f"{name}: not valid YAML: {err}") from None
    return from_yaml_node(node, name)


def parse_any(text_or_path: str) -> Strategy:
    """A spec string, or a path to a YAML file (ending in .yaml/.yml)."""
    if text_or_path.endswith((".yaml", ".yml")):
        return load_yaml(text_or_path)
    return parse(text_or_path)
