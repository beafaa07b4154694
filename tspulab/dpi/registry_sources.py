"""Loaders that turn registry files into a ``Registry``, with every entry's file and line kept.

Formats (docs/registry.md has examples):

* Roskomnadzor dump (``zapret-info/z-i`` ``dump.csv``): cp1251, ``;``-separated, optionally gzip.
  The first line is ``Updated: <time>``; then ``IPs;domain;URL;authority;decision;date`` where
  several IPs are joined by `` | ``, and a URL with ``;`` in it is quoted (``"..."``). A domain
  ``*.x`` is a mask (loaded as ``mask_kind``, subtree by default), a bare domain is exact.
* Plain lists: one IP, prefix or domain per line; ``#`` starts a comment. Wildcard syntax is read by
  ``parse_pattern``; a bare domain gets ``domain_kind``.
* AWS ``ip-ranges.json``, optionally filtered by region and service.
* Cloud range folders (``lord-alfred/ipranges``: ``<provider>/ipv4*.txt``, ``ipv6*.txt``).
* Inline entries: a list of strings from a scenario.

A bad entry is a ``RegistryLoadError`` naming file, line and field when ``strict``; otherwise it is
a ``LoadWarning`` in ``registry.warnings`` and the rest of the file still loads. The error carries
the entries loaded before it (``partial``), so nothing already read is lost. A dump whose last line
is cut off (an interrupted upload) always gives a warning, never an error.

This module imports ``registry`` only inside functions (``registry`` imports and re-exports these
names, so the two never import each other at module level).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from tspulab.dpi.domains import DomainPatternError, MatchKind, canonical_rule_name
from tspulab.dpi.prefixes import AddressError, looks_like_address

if TYPE_CHECKING:
    from tspulab.dpi.registry import Registry

_log = logging.getLogger(__name__)
_GZIP_MAGIC = b"\x1f\x8b"
_DUMP_FIELDS = ("ips", "domain", "url", "authority", "decision", "date")


def _where(file: str, line: int, field: str, message: str) -> str:
    return f"{file}:{line}: {field}: {message}" if line else f"{file}: {field}: {message}"


class LoadWarning(NamedTuple):
    """A problem in a source that did not stop the load."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return _where(self.file, self.line, self.field, self.message)


class RegistryLoadError(ValueError):
    """A bad entry in a source, loaded strictly. ``partial`` holds what was loaded before it."""

    def __init__(self, file: str, line: int, field: str, message: str, partial: Registry) -> None:
        super().__init__(_where(file, line, field, message))
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.partial = partial


@dataclass
class SourceStats:
    """What one source contributed (rows read, entries added)."""

    source: str
    rows: int = 0
    """Data rows read (the dump's header and comment lines not counted)."""
    rows_kept: int = 0
    """Rows that passed the decision filter."""
    addresses: int = 0
    """Single-address entries (/32, /128) added."""
    prefixes: int = 0
    """Entries shorter than a single address (CIDRs) added."""
    domains: int = 0
    """Domain rule lines added (before de-duplication)."""
    skipped: int = 0
    """Entries or rows left out because of a warning."""


class _Loader:
    """Shared bookkeeping: strict errors or warnings, per-source counts."""

    def __init__(self, path: str, strict: bool) -> None:
        from tspulab.dpi.registry import Registry

        self.registry = Registry()
        self.path = path
        self.strict = strict
        self.stats = SourceStats(path)
        self.registry.sources.append(self.stats)

    def problem(
        self,
        line: int,
        field: str,
        message: str,
        *,
        where: str | None = None,
        always_warn: bool = False,
    ) -> None:
        """Raise (strict) or warn; ``where`` replaces ``file:line`` for sources without lines."""
        file, line = (where, 0) if where else (self.path, line)
        if self.strict and not always_warn:
            raise RegistryLoadError(file, line, field, message, self.registry)
        warning = LoadWarning(file, line, field, message)
        self.registry.warnings.append(warning)
        self.stats.skipped += 1
        _log.debug("%s", warning)  # callers read registry.warnings

    def add_address(
        self, text: str, line: int, decision: str | None = None, where: str | None = None
    ) -> None:
        source = where or f"{self.path}:{line}"
        try:
            entry = self.registry.add_address(text, source, decision=decision, strict=True)
        except AddressError as exc:
            if self.strict or "host bits" not in str(exc):
                self.problem(line, "address", str(exc), where=where)
                return
            # Lenient: a prefix with host bits set still means its network; keep it, say so.
            entry = self.registry.add_address(text, source, decision=decision, strict=False)
            self.registry.warnings.append(
                LoadWarning(
                    where or self.path,
                    0 if where else line,
                    "address",
                    f"{exc}; loaded as {entry.network}",
                )
            )
        if entry.prefixlen == (32 if entry.version == 4 else 128):
            self.stats.addresses += 1
        else:
            self.stats.prefixes += 1

    def add_line(
        self, text: str, line: int, domain_kind: MatchKind, where: str | None = None
    ) -> None:
        if looks_like_address(text):
            self.add_address(text, line, where=where)
            return
        try:
            self.registry.add(text, where or f"{self.path}:{line}", domain_kind)
        except (AddressError, DomainPatternError) as exc:
            self.problem(line, "domain", str(exc), where=where)
            return
        self.stats.domains += 1


def _read_lines(path: Path) -> tuple[list[bytes], bool]:
    """Lines of a file (gunzipped if it has the gzip magic), and whether it ends in a newline."""
    data = path.read_bytes()
    if data.startswith(_GZIP_MAGIC):
        data = gzip.decompress(data)
    ends_with_newline = data.endswith(b"\n")
    lines = data.split(b"\n")
    if ends_with_newline:
        lines.pop()
    return lines, ends_with_newline


def _decode(loader: _Loader, raw: bytes, number: int, encoding: str) -> str:
    try:
        return raw.decode(encoding).rstrip("\r")
    except UnicodeDecodeError as exc:
        loader.problem(number, "encoding", f"not {encoding}: {exc.reason} at byte {exc.start}")
        return raw.decode(encoding, errors="replace").rstrip("\r")


def load_list(
    path: str | Path,
    *,
    domain_kind: MatchKind = MatchKind.EXACT,
    strict: bool = True,
    encoding: str = "utf-8",
) -> Registry:
    """A plain list: one IP, prefix or domain pattern per line, ``#`` comments, blank lines."""
    path = Path(path)
    loader = _Loader(str(path), strict)
    lines, _ = _read_lines(path)
    for number, raw in enumerate(lines, start=1):
        text = _decode(loader, raw, number, encoding).split("#", 1)[0].strip()
        if not text:
            continue
        loader.stats.rows += 1
        loader.stats.rows_kept += 1
        if len(text.split()) != 1:
            loader.problem(number, "entry", f"expected one entry per line, got {text!r}")
            continue
        loader.add_line(text, number, domain_kind)
    return loader.registry


def load_inline(
    entries: Iterable[str],
    source: str = "inline",
    *,
    domain_kind: MatchKind = MatchKind.EXACT,
    strict: bool = True,
) -> Registry:
    """Entries given as strings (e.g. a scenario's ``inline:`` list).

    Each entry's source, and the ``file`` of its errors, reads ``<source>[i]`` (0-based, like the
    YAML list it came from); such errors have ``line`` 0.
    """
    loader = _Loader(source, strict)
    for index, text in enumerate(entries):
        loader.stats.rows += 1
        loader.stats.rows_kept += 1
        loader.add_line(text.strip(), 0, domain_kind, where=f"{source}[{index}]")
    return loader.registry


def load_rkn_dump(
    path: str | Path,
    decisions: Collection[str] | None = None,
    *,
    mask_kind: MatchKind = MatchKind.SUBTREE,
    strict: bool = False,
    encoding: str = "cp1251",
) -> Registry:
    """A Roskomnadzor register dump (``dump.csv``, plain or gzip); only ``decisions`` if given.

    Lenient by default: third-party dumps carry odd rows, and one should not hide the rest.
    """
    import csv

    path = Path(path)
    loader = _Loader(str(path), strict)
    registry = loader.registry
    lines, ends_with_newline = _read_lines(path)
    wanted = None if decisions is None else frozenset(d.strip() for d in decisions)
    if not lines:
        loader.problem(1, "header", "empty file")
        return registry
    header = _decode(loader, lines[0], 1, encoding)
    if header.startswith("Updated:"):
        registry.updated = header.removeprefix("Updated:").strip()
        first_row = 2
    else:
        loader.problem(1, "header", f"expected 'Updated: <time>', got {header[:60]!r}")
        first_row = 1
    texts = [_decode(loader, raw, n, encoding) for n, raw in enumerate(lines, start=1)]
    last_line = len(lines)
    reader = csv.reader(texts[first_row - 1 :], delimiter=";", quotechar='"')
    number = first_row - 1
    for row in reader:
        number = first_row - 1 + reader.line_num
        if not row or row == [""]:
            continue
        loader.stats.rows += 1
        if len(row) < len(_DUMP_FIELDS):
            if number == last_line and not ends_with_newline:
                loader.problem(
                    number,
                    _DUMP_FIELDS[len(row) - 1],
                    f"last line cut off after {len(row)} of {len(_DUMP_FIELDS)} fields "
                    f"(truncated file); row skipped: {';'.join(row)[:80]!r}",
                    always_warn=True,
                )
            else:
                loader.problem(
                    number, "row", f"{len(row)} fields, expected 6: {texts[number - 1]!r}"
                )
            continue
        # An unquoted ';' inside the URL splits it; the last three fields are always in place.
        ips, domain = row[0], row[1].strip()
        decision = row[-2].strip()
        if wanted is not None and decision not in wanted:
            continue
        loader.stats.rows_kept += 1
        for ip in ips.split("|"):
            ip = ip.strip()
            if ip:
                loader.add_address(ip, number, decision or None)
        if domain:
            _add_dump_domain(loader, domain, number, decision or None, mask_kind)
    return registry


def _add_dump_domain(
    loader: _Loader, domain: str, number: int, decision: str | None, mask_kind: MatchKind
) -> None:
    kind = mask_kind if domain.startswith("*.") else MatchKind.EXACT
    text = domain[2:] if domain.startswith("*.") else domain
    try:
        name = canonical_rule_name(text, kind)
    except DomainPatternError as exc:
        loader.problem(number, "domain", str(exc))
        return
    loader.registry._add_rule(name, kind, f"{loader.path}:{number}", domain, decision)
    loader.stats.domains += 1


def load_aws_ranges(
    path: str | Path,
    *,
    regions: Collection[str] | None = None,
    services: Collection[str] | None = None,
    strict: bool = True,
) -> Registry:
    """AWS ``ip-ranges.json``; keep only ``regions`` / ``services`` when given (e.g. ``{"EC2"}``).

    An entry's source, and the ``file`` of its errors, is ``<file>:prefixes[i]`` or
    ``<file>:ipv6_prefixes[i]`` (JSON has no useful line numbers); such errors have ``line`` 0.
    """
    path = Path(path)
    loader = _Loader(str(path), strict)
    try:
        document = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        loader.problem(getattr(exc, "lineno", 1), "json", str(exc))
        return loader.registry
    for section, key in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
        items = document.get(section, []) if isinstance(document, dict) else None
        if not isinstance(items, list):
            loader.problem(1, section, "expected a list of prefix objects")
            continue
        for index, item in enumerate(items):
            loader.stats.rows += 1
            where = f"{section}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get(key), str):
                loader.problem(0, key, "missing or not a string", where=f"{path}:{where}")
                continue
            if regions is not None and item.get("region") not in regions:
                continue
            if services is not None and item.get("service") not in services:
                continue
            loader.stats.rows_kept += 1
            loader.add_address(item[key], 0, where=f"{path}:{where}")
    return loader.registry


def load_cloud_ranges(
    root: str | Path, provider: str, versions: Collection[int] = (4, 6), *, strict: bool = True
) -> Registry:
    """A provider folder of ``lord-alfred/ipranges``: ``<root>/<provider>/ipv4*.txt`` and ipv6."""
    from tspulab.dpi.registry import Registry

    folder = Path(root) / provider
    files = [f for v in sorted(versions) for f in sorted(folder.glob(f"ipv{v}*.txt"))]
    if not files:
        raise FileNotFoundError(f"no ipv4*/ipv6*.txt range files in {folder}")
    registry = Registry()
    for file in files:
        registry.merge(load_list(file, strict=strict))
    return registry
