"""The profile loader's checks: pydantic's errors at file:line:col, and the cross-field checks.

``pydantic_errors`` turns a ValidationError into ``ErrorLocation``s that point into the YAML (the
union-member tags pydantic adds are dropped; a bare scalar where ``{value, source}`` belongs, or a
missing source, gets a message that says so). ``check`` does what the schema cannot: set
references, the parameters each action needs and allows, ranges and probabilities, the desync
section, and the tunnelled-HTTPS pattern against the inspection budget that must cover it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tspulab.dpi.profile_extends import ExtendedDocument
from tspulab.dpi.profile_schema import (
    ACTION_PARAMS,
    OPTIONAL_PARAMS,
    REGISTRY,
    ActionSpec,
    IntRange,
    ProfileSpec,
)
from tspulab.dpi.verdict import DIRECTIONS, SCOPES
from tspulab.dpi.yamlload import ErrorLocation, YamlDocument, did_you_mean, pydantic_message

Document = YamlDocument | ExtendedDocument
"""A profile file as parsed, or merged over the profile it extends (profile_extends.py)."""


def pydantic_errors(doc: Document, err: ValidationError) -> list[ErrorLocation]:
    out = []
    for e in err.errors(include_url=False):
        loc = _data_loc(doc.data, e["loc"])
        message = pydantic_message(e, ProfileSpec)
        if e["type"] == "missing" and loc and loc[-1] == "source":
            message = "missing source (every parameter cites a section of tspu-behaviour.md)"
        elif e["type"] == "model_type" and _cited_slot(doc.data, loc):
            message = "expected {value: ..., source: '§N KEY'}: every parameter carries a source"
        elif e["type"] == "value_error":
            message = str(e.get("ctx", {}).get("error", e["msg"]))
        out.append(doc.error(loc, message))
    return out


def _data_loc(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """``loc`` without pydantic's union-member tags (``int``, ``tuple[int, int]``): the parts
    that are not keys or indices of the YAML data at their level."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_map = isinstance(node, dict) and part in node
        if in_map or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif isinstance(node, dict | list) and part == loc[-1] and not isinstance(part, int):
            out.append(part)  # a missing key: keep it, the error is about it
            break
        else:
            continue
        out.append(part)
    return tuple(out)


def _cited_slot(data: Any, loc: tuple[Any, ...]) -> bool:
    """True when the value at ``loc`` is a bare scalar where a ``{value, source}`` was expected."""
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return not isinstance(node, dict)


def check(spec: ProfileSpec, doc: Document) -> list[ErrorLocation]:
    """Semantic checks pydantic cannot do: set references, action parameters, ranges."""
    errors: list[ErrorLocation] = []
    ja4_names = {name for name, s in spec.sets.items() if s.kind == "ja4"}
    known_sets = {REGISTRY, *spec.sets} - ja4_names
    if REGISTRY in spec.sets:
        errors.append(doc.error(("sets", REGISTRY), "'registry' is reserved for the block list"))
    budget = spec.inspection.budget_packets.value
    if not isinstance(budget, int) and not 0 < budget[0] <= budget[1]:
        errors.append(doc.error(("inspection", "budget_packets"), "range must be [lo, hi], lo>0"))
    errors += _check_desync(spec, doc)
    errors += _check_tunnelled_https(spec, doc)
    ids: set[str] = set()
    for i, rule in enumerate(spec.rules):
        where: tuple[str | int, ...] = ("rules", i)
        if rule.id in ids:
            errors.append(doc.error((*where, "id"), f"duplicate rule id {rule.id!r}"))
        ids.add(rule.id)
        w = rule.when
        for key in ("address_in", "server_in", "server_not_in", "sni_in", "sni_not_in"):
            ref = getattr(w, key)
            if ref is not None and ref not in known_sets:
                hint = did_you_mean(ref, known_sets)
                what = "a JA4 set (use ja4_in)" if ref in ja4_names else "unknown set"
                errors.append(doc.error((*where, "when", key), f"{what} {ref!r}{hint}"))
        if w.ja4_in is not None and w.ja4_in not in ja4_names:
            hint = did_you_mean(w.ja4_in, ja4_names)
            errors.append(doc.error((*where, "when", "ja4_in"), f"no ja4 set {w.ja4_in!r}{hint}"))
        a = rule.action
        needed = ACTION_PARAMS[a.kind]
        allowed = {*needed, *OPTIONAL_PARAMS.get(a.kind, ())}
        for name in ActionSpec.model_fields:
            if name == "kind":
                continue
            present = getattr(a, name) is not None
            if name in needed and not present:
                errors.append(doc.error((*where, "action"), f"action {a.kind} needs '{name}'"))
            elif present and name not in allowed:
                errors.append(
                    doc.error((*where, "action", name), f"'{name}' is not a {a.kind} parameter")
                )
        if a.target_set is not None and a.target_set not in known_sets:
            errors.append(doc.error((*where, "action", "target_set"), "unknown set"))
        if a.direction is not None and a.direction.value not in DIRECTIONS:
            errors.append(
                doc.error((*where, "action", "direction"), f"expected one of {DIRECTIONS}")
            )
        if a.scope is not None and a.scope.value not in SCOPES:
            errors.append(doc.error((*where, "action", "scope"), f"expected one of {SCOPES}"))
        for share in ("loss", "reset_share"):
            cited = getattr(a, share)
            if cited is not None and not 0.0 <= cited.value <= 1.0:
                errors.append(doc.error((*where, "action", share), "a probability is in [0, 1]"))
        if a.block_after_s is not None:
            lo, hi = IntRange.of(a.block_after_s.value).lo, IntRange.of(a.block_after_s.value).hi
            if not 0 <= lo <= hi:
                errors.append(doc.error((*where, "action", "block_after_s"), "need 0 <= lo <= hi"))
        if a.after_packets is not None and not isinstance(a.after_packets.value, int):
            lo, hi = a.after_packets.value
            if not 0 <= lo <= hi:
                errors.append(doc.error((*where, "action", "after_packets"), "need 0 <= lo <= hi"))
        if w.reassembly is not None and w.reassembly.value not in (
            "none",
            spec.inspection.reassembly.value,
        ):
            errors.append(
                doc.error(
                    (*where, "when", "reassembly"),
                    "a rule's reassembly is 'none' or the profile's inspection.reassembly",
                )
            )
    return errors


def _check_desync(spec: ProfileSpec, doc: Document) -> list[ErrorLocation]:
    d = spec.desync
    if d is None:
        return []
    errors = []
    if not d.signals.value:
        errors.append(doc.error(("desync", "signals"), "name at least one of ttl, ipid"))
    if d.action.value == "block-client" and d.block_s is None:
        errors.append(doc.error(("desync",), "action block-client needs 'block_s'"))
    elif d.action.value == "drop-flow" and d.block_s is not None:
        errors.append(doc.error(("desync", "block_s"), "'block_s' is a block-client parameter"))
    if d.block_s is not None and not d.block_s.value > 0:
        errors.append(doc.error(("desync", "block_s"), "a block lasts more than 0 s"))
    if any(rule.id == "desync" for rule in spec.rules):
        errors.append(doc.error(("rules",), "rule id 'desync' is reserved for desync verdicts"))
    return errors


def _check_tunnelled_https(spec: ProfileSpec, doc: Document) -> list[ErrorLocation]:
    t = spec.tunnelled_https
    if t is None:
        return []
    errors = []
    if t.client_packets.value < 1:
        errors.append(doc.error(("tunnelled_https", "client_packets"), "at least 1 packet"))
    if t.min_bytes.value < 1:
        errors.append(doc.error(("tunnelled_https", "min_bytes"), "at least 1 byte"))
    # The engine inspects a flow for budget_packets payload packets (the controller sees them as
    # packet-ins); the pattern decides at the server's answer after client_packets packets.
    needed = t.client_packets.value + 1
    lowest = IntRange.of(spec.inspection.budget_packets.value).lo
    if lowest < needed:
        errors.append(
            doc.error(
                ("inspection", "budget_packets"),
                f"the tunnelled_https pattern needs {needed} payload packets "
                f"(client_packets + the server's answer); the budget allows {lowest}",
            )
        )
    if not any(
        r.when.protocols is not None and "tunnelled-https" in r.when.protocols.value
        for r in spec.rules
    ):
        errors.append(
            doc.error(
                ("tunnelled_https",),
                "no rule names protocol 'tunnelled-https' (when.protocols): the pattern would "
                "never act",
            )
        )
    return errors
