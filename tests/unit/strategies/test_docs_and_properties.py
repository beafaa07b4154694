"""docs/strategies.md's examples parse, and the write plans keep every byte (hypothesis)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tspulab.strategies import hello
from tspulab.strategies.shaping import plan_first_write
from tspulab.strategies.spec import load_yaml, parse

DOC = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"


def _blocks(lang: str = "") -> list[str]:
    """Fenced blocks opened by exactly ```<lang>."""
    blocks: list[str] = []
    current: list[str] | None = None
    opener = ""
    for line in DOC.read_text().splitlines():
        if current is None and line.startswith("```"):
            current, opener = [], line[3:].strip()
        elif current is not None and line.startswith("```"):
            if opener == lang:
                blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_every_spec_example_in_the_doc_parses() -> None:
    examples = _blocks()[0]  # one spec (or two, with " / ") per line, then a comment
    heads = [line.split("  ")[0] for line in examples.splitlines() if line.strip()]
    specs = [s.strip() for head in heads for s in head.split(" / ")]
    assert len(specs) >= 8
    for spec in specs:
        parse(spec)
    for line in re.findall(r"`([a-z-]+(?::[^`\s]+)?(?:\+[^`\s]+)*)`", DOC.read_text()):
        placeholder = any(c.isupper() for c in line) or "..." in line
        if (
            ":" in line
            and not placeholder
            and line.split(":")[0] in ("split", "tlsrec", "fake", "ipfrag")
        ):
            parse(line)  # the specs quoted in the prose and the tables


def test_the_yaml_example_in_the_doc_loads() -> None:
    (block,) = _blocks("yaml")
    assert load_yaml("doc.yaml", text=block) == parse(
        "split:sni+tlsrec:1+fake:ttl=2:data=random:len=120"
    )


def _unframe(data: bytes) -> bytes:
    """The handshake bytes of a run of TLS records (records of other types dropped)."""
    out, pos = b"", 0
    while pos < len(data):
        ctype, _, length = struct.unpack_from("!BHH", data, pos)
        if ctype == 22:
            out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
    assert pos == len(data)
    return out


@settings(max_examples=200, deadline=None)
@given(
    name=st.from_regex(r"[a-z]{1,20}\.[a-z]{2,6}", fullmatch=True),
    cuts=st.lists(st.integers(1, 180), max_size=3),
    recs=st.lists(st.integers(1, 150), max_size=3),
    prefix=st.booleans(),
    disorder=st.booleans(),
)
def test_plans_keep_every_byte_of_the_hello(
    name: str, cuts: list[int], recs: list[int], prefix: bool, disorder: bool
) -> None:
    record = hello.build_client_hello(name, seed=bytes(32))
    spec = "+".join(
        [f"split:{c}" for c in sorted(set(cuts))] + [f"tlsrec:{r}" for r in sorted(set(recs))]
        + (["prefix:ccs"] if prefix else []) + (["disorder:sni"] if disorder else [])
    ) or "split:sni"  # fmt: skip
    writes = plan_first_write(record, parse(spec).steps)
    data = b"".join(w.data for w in writes)
    assert _unframe(data) == record[5:]  # the same handshake message, whatever the framing
    assert all(w.data for w in writes)
    assert sum(w.ttl is not None for w in writes) == (1 if disorder else 0)
