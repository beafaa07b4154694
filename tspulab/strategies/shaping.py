"""What the stream strategies do to the client's first write: edits, then how it is written.

``plan_first_write(data, steps)`` is pure: it returns the edited bytes as a list of ``Write``s,
each one ``send()`` on a TCP_NODELAY socket (so one TCP segment when the window allows), with
its own TTL (disorder) or an extra urgent byte (oob). The proxy (proxy.py) performs the plan.

Order of the edits, each on the result of the one before: TLS record cuts, a record in front;
then the write cuts (split, disorder, oob) over the edited bytes. Positions ``sni`` are found
again after each edit, by the host name's bytes. The ClientHello's contents are never changed
(its bytes are in the TLS 1.3 transcript hash): only how they are framed and written.
A first write that is not a ClientHello gets only the cuts at absolute positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tspulab.strategies import hello
from tspulab.strategies.catalogue import Position
from tspulab.strategies.spec import Step


@dataclass(frozen=True, slots=True)
class Write:
    data: bytes
    ttl: int | None = None
    """IP TTL for this write (the rest go with the socket's default)."""
    urgent: int | None = None
    """One byte sent after ``data`` with MSG_OOB (the urgent pointer marks it)."""


def resolve(position: Position, off: int, size: int, middle: int | None) -> int | None:
    """A position as an offset into ``size`` bytes whose host name's middle is at ``middle``;
    None when it cannot be placed (no host name, or outside the bytes)."""
    if position.anchor == "abs":
        at = position.value + off
    elif middle is None:
        return None
    else:
        at = middle + position.value + off
    return at if 0 < at < size else None


def _edit(data: bytes, steps: Sequence[Step], notes: list[str]) -> tuple[bytes, int | None]:
    """The reframed write and where the host name's middle now is."""
    try:
        hello.layout(data)
    except hello.NotAClientHello as err:
        edits = [s.name for s in steps if s.name in _EDITS]
        if edits:
            notes.append(f"first write is not a one-record ClientHello ({err}): {edits} skipped")
        return data, None
    middle = hello.sni_middle(data)
    cuts: list[int] = []  # offsets into the handshake message
    for step in steps:
        if step.name != "tlsrec":
            continue
        # An absolute position counts bytes of the handshake message (tlsrec:1 puts only its
        # type byte in the first record); sni is the middle of the name.
        header = hello.RECORD_HEADER
        body_middle = None if middle is None else middle - header
        at = resolve(step.position(), step.num("off"), len(data) - header, body_middle)
        if at is None:
            notes.append(f"{step.text()}: position outside the ClientHello, skipped")
            continue
        cuts.append(at)
    if cuts:
        data = hello.split_records(data, cuts)
        if middle is not None:  # each record header inserted before the name moves it
            middle += hello.RECORD_HEADER * sum(
                1 for c in set(cuts) if hello.RECORD_HEADER + c <= middle
            )
    for step in steps:
        if step.name == "prefix":
            record = hello.prefix_record(step.word("record"), data[1:3])
            data = record + data
            middle = None if middle is None else middle + len(record)
    return data, middle


_EDITS = ("tlsrec", "prefix")


def plan_first_write(
    data: bytes, steps: Sequence[Step], notes: list[str] | None = None
) -> list[Write]:
    """The writes that replace the client's first write under the stream ``steps``."""
    notes = notes if notes is not None else []
    data, middle = _edit(data, steps, notes)
    cuts: dict[int, Step] = {}
    for step in steps:
        if step.name not in ("split", "disorder", "oob"):
            continue
        at = resolve(step.position(), step.num("off"), len(data), middle)
        if at is None:
            notes.append(f"{step.text()}: position not in the {len(data)}-byte write, skipped")
            continue
        other = cuts.get(at)
        if other is None or other.name == "split":
            cuts[at] = step  # disorder and oob cut there too: a plain split adds nothing
        elif step.name != "split":
            notes.append(f"{step.text()}: same position as {other.text()}, skipped")
    writes: list[Write] = []
    start = 0
    for at in sorted(cuts):
        step = cuts[at]
        chunk = data[start:at]
        if step.name == "disorder":
            writes.append(Write(chunk, ttl=step.num("ttl")))
        elif step.name == "oob":
            writes.append(Write(chunk, urgent=step.num("byte")))
        else:
            writes.append(Write(chunk))
        start = at
    writes.append(Write(data[start:]))
    return writes
