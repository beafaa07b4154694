"""Behaviour profiles: one dated TSPU (or ISP filter) behaviour as a YAML data file.

A profile says how the box inspects (reassembly, inspection budget, the 2021 first-packet rules,
name normalisation), how long it remembers a flow, which named address/domain sets it knows besides
the block registry, and an ordered list of rules, each a condition set (``when``) and an action
(``action``, see verdict.py). Every setting, every rule, every set and every action parameter
carries ``source:``, a citation that names a section of tspu-behaviour.md (``§3 CP-THR``); the
loader refuses a value without one, and a section number the fact sheet does not have.

Cited values are written ``{value: ..., source: "..."}``. A value that the sources give as a range
(SNI-II's 5-8 packets, the 15-20 packet window) is written ``[lo, hi]``; the engine picks one value
per flow, deterministically from the profile's seed and the flow's 5-tuple (``IntRange.pick``), so
a replay and a live run agree.

Errors name file, line, column and field, like scenario files (yamlload.py)::

    tspu-2022.yaml:41:9: rules[2].action.after_packets: missing source (every parameter cites ...)

``load_profile("tspu-2022")`` reads the packaged ``tspulab/profiles/tspu-2022.yaml``; a path loads
any file. Profiles are documented in docs/profiles.md. The schema is profile_schema.py (its names
are re-exported here), the checks across fields profile_checks.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import ValidationError

from tspulab.dpi.domains import MatchKind
from tspulab.dpi.ja4set import Ja4PatternError, Ja4Set
from tspulab.dpi.profile_checks import check, pydantic_errors
from tspulab.dpi.profile_extends import ExtendedDocument, base_path, extended
from tspulab.dpi.profile_schema import (
    KNOWN_SECTIONS,
    REGISTRY,
    ActionSpec,
    Cited,
    Desync,
    Fact,
    Inspection,
    IntOrRange,
    IntRange,
    NotModelled,
    ProfileSpec,
    QuicInitialRule,
    RuleSpec,
    SetSpec,
    State,
    TunnelledHttpsSpec,
    When,
    WireGuardMessage,
    check_citation,
    share_pick,
)
from tspulab.dpi.registry import Registry, RegistryLoadError, load_inline
from tspulab.dpi.yamlload import (
    ErrorLocation,
    ScenarioError,
    YamlDocument,
    did_you_mean,
    parse_yaml,
)

__all__ = [
    "KNOWN_SECTIONS", "PROFILES_DIR", "REGISTRY", "ActionSpec", "Cited", "Desync", "Fact",
    "Inspection", "IntOrRange", "IntRange", "NotModelled", "Profile", "ProfileError",
    "ProfileSpec", "QuicInitialRule", "RuleSpec", "SetSpec", "State", "TunnelledHttpsSpec",
    "When", "WireGuardMessage", "check_citation", "load_profile", "load_profile_text",
    "profile_names", "share_pick",
]  # fmt: skip

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"


class ProfileError(ScenarioError):
    """Every problem found in a profile file; str() gives one ``file:line:col: field: ...`` each."""


@dataclass(frozen=True)
class Profile:
    """A loaded profile: the validated spec plus its sets compiled into ``Registry`` indexes."""

    spec: ProfileSpec
    sets: Mapping[str, Registry]
    file: str
    ja4_sets: Mapping[str, Ja4Set] = field(default_factory=dict)
    """The ``kind: ja4`` sets (not in ``sets``: they hold fingerprints, not names or addresses)."""
    budget: IntRange = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", IntRange.of(self.spec.inspection.budget_packets.value))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rules(self) -> list[RuleSpec]:
        return self.spec.rules

    def with_set_entries(self, name: str, entries: Iterable[str] | Registry) -> Profile:
        """A copy whose set ``name`` also holds ``entries`` (scenario lists, test targets).

        ``ValueError`` when the profile has no such set; registry loader errors for bad entries.
        """
        if name in self.ja4_sets:
            if isinstance(entries, Registry):
                raise ValueError(f"set {name!r} holds JA4 fingerprints, not a registry")
            ja4_sets = dict(self.ja4_sets)
            ja4_sets[name] = ja4_sets[name].union(Ja4Set.of(entries))
            return replace(self, ja4_sets=ja4_sets)
        if name not in self.sets:
            known = sorted([*self.sets, *self.ja4_sets])
            raise ValueError(f"profile {self.name} has no set {name!r} (sets: {', '.join(known)})")
        spec = self.spec.sets[name]
        extra = (
            entries
            if isinstance(entries, Registry)
            else load_inline(list(entries), f"{name}+", domain_kind=MatchKind(spec.kind))
        )
        merged = Registry().merge(self.sets[name]).merge(extra)
        sets = dict(self.sets)
        sets[name] = merged
        return replace(self, sets=sets)


def profile_names() -> list[str]:
    """The packaged profiles: stems of tspulab/profiles/*.yaml."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A packaged profile by name, or a profile file by path; ``ProfileError`` on any problem."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or "/" in text):
        path = PROFILES_DIR / f"{text}.yaml"
        if not path.is_file():
            hint = did_you_mean(text, profile_names())
            known = ", ".join(profile_names())
            raise ProfileError(
                [ErrorLocation(text, 0, 0, "", f"unknown profile{hint} (known: {known})")]
            )
    file = path.name
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError([ErrorLocation(file, 0, 0, "", f"cannot read: {err}")]) from err
    profile = load_profile_text(source, file, path=path)
    if path.parent == PROFILES_DIR and profile.name != path.stem:
        raise ProfileError(
            [ErrorLocation(file, 0, 0, "name", f"{profile.name!r} differs from the file name")]
        )
    return profile


def load_profile_text(text: str, file: str = "<profile>", *, path: Path | None = None) -> Profile:
    """A profile from YAML text (named ``file`` in errors; ``path``, where it was read from,
    resolves a relative ``extends:``)."""
    return _build(_document(text, file, path, ()), file)


def _document(
    text: str, file: str, path: Path | None, chain: tuple[str, ...]
) -> YamlDocument | ExtendedDocument:
    """The file's YAML, merged over its base when it says ``extends:`` (profile_extends.py)."""
    try:
        doc = parse_yaml(text, file)
    except ScenarioError as err:
        raise ProfileError(err.errors) from err
    if not isinstance(doc.data, dict):
        raise ProfileError([ErrorLocation(file, 1, 1, "", "a profile is a mapping")])
    here = str(path.resolve()) if path is not None else file

    def load_base(
        ref: str, child: YamlDocument, _: tuple[str, ...]
    ) -> YamlDocument | ExtendedDocument:
        base = base_path(ref, str(path) if path is not None else file, PROFILES_DIR)
        key = str(base.resolve())
        if key in (*chain, here):
            raise ProfileError([child.error(("extends",), f"{ref}: a cycle of extends")])
        try:
            base_text = base.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            hint = did_you_mean(ref, profile_names())
            message = f"unknown profile {ref!r}{hint}" if not base.exists() else f"{err}"
            raise ProfileError([child.error(("extends",), message)]) from err
        base_doc = _document(base_text, base.name, base, (*chain, here))
        _build(base_doc, base.name)  # the base's own errors are reported as its own
        return base_doc

    try:
        return extended(doc, load_base, (*chain, here))
    except ProfileError:
        raise
    except ScenarioError as err:
        raise ProfileError(err.errors) from err


def _build(doc: YamlDocument | ExtendedDocument, file: str) -> Profile:
    try:
        spec = ProfileSpec.model_validate(doc.data)
    except ValidationError as err:
        raise ProfileError(pydantic_errors(doc, err)) from err
    errors = check(spec, doc)
    sets: dict[str, Registry] = {}
    ja4_sets: dict[str, Ja4Set] = {}
    for name, set_spec in spec.sets.items():
        if set_spec.kind == "ja4":
            try:
                ja4_sets[name] = Ja4Set.of(set_spec.entries)
            except Ja4PatternError as err:
                errors.append(doc.error(("sets", name, "entries"), str(err)))
            continue
        try:
            sets[name] = load_inline(
                set_spec.entries, f"{file}:sets.{name}", domain_kind=MatchKind(set_spec.kind)
            )
        except (RegistryLoadError, ValueError) as err:
            errors.append(doc.error(("sets", name, "entries"), str(err)))
    if errors:
        raise ProfileError(errors)
    return Profile(spec=spec, sets=sets, file=file, ja4_sets=ja4_sets)
