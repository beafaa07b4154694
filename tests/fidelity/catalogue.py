"""The statements catalogue (`statements.yaml`): every statement of docs/tspu-behaviour.md the
fidelity suite accounts for, with the status the project claims for it.

A row names the fact sheet's section and tag, the statement in a line, the published figure, the
primary source, the claimed `status` and its evidence: tests under tests/fidelity point at rows
with `@pytest.mark.fidelity("id", ...)`, and `evidence:` lists tests elsewhere in the suite
(`path::function`, or `path::Class::function`) that already check the behaviour. `why` says what
is missing for a row that is not reproduced, or why it does not apply; `owner` names work in
progress elsewhere (issue 15) that will change the row; `checked` says what figure an `evidence:`
test asserts, for rows whose figure no fidelity test records.

Errors name the file, line and field, like scenario and profile files.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tspulab.dpi.yamlload import ScenarioError, pydantic_message, read_yaml

CATALOGUE = Path(__file__).with_name("statements.yaml")
REPO = Path(__file__).resolve().parents[2]

Status = Literal["reproduced", "partly", "not", "n/a"]
Tag = Literal["M", "R", "A", "S", "M/R", "R/M", "R/A", "A/R", "M/A", "M/press", "press", "fact"]

#: Order of statuses from best to worst: a run may only keep or lower a row (never silently).
RANK: dict[str, int] = {"reproduced": 0, "partly": 1, "not": 2, "n/a": 3}

#: How the page names each tag's confidence.
CONFIDENCE: dict[str, str] = {
    "M": "measured",
    "R": "reported",
    "A": "anecdotal",
    "S": "unverified (secondary quote)",
    "M/R": "measured/reported",
    "R/M": "reported/measured",
    "R/A": "reported/anecdotal",
    "A/R": "anecdotal/reported",
    "M/A": "measured/anecdotal",
    "M/press": "measured/press",
    "press": "press (unverified)",
    "fact": "protocol fact",
}


class Statement(BaseModel):
    """One row of the fidelity table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^(s\d+|t\d\d)-[a-z0-9-]+$|^t\d\d$")
    section: str = Field(pattern=r"^§\d+(\.\d+)?$")
    tag: Tag
    text: str = Field(min_length=10)
    published: str | None = None
    source: str
    status: Status
    evidence: tuple[str, ...] = ()
    checked: str | None = None
    why: str | None = None
    owner: str | None = None

    @model_validator(mode="after")
    def _explained(self) -> Statement:
        if self.status != "reproduced" and not self.why:
            raise ValueError(f"status {self.status!r} needs a 'why'")
        return self

    @property
    def major(self) -> int:
        return int(self.section[1:].split(".")[0])

    @property
    def needs_test(self) -> bool:
        """Reproduced and partly reproduced rows must be shown by a test."""
        return self.status in ("reproduced", "partly")


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    statements: tuple[Statement, ...]

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        seen: set[str] = set()
        for s in self.statements:
            if s.id in seen:
                raise ValueError(f"duplicate id {s.id!r}")
            seen.add(s.id)
        return self

    def by_id(self) -> dict[str, Statement]:
        return {s.id: s for s in self.statements}


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    """The catalogue; `ScenarioError` (file:line:col: field: message) on any problem."""
    doc = read_yaml(path, path.name)
    try:
        return Catalogue.model_validate(doc.data)
    except ValidationError as err:
        raise ScenarioError(
            doc.error(err_loc, pydantic_message(e, Catalogue))
            for e in err.errors()
            for err_loc in [tuple(e["loc"])]
        ) from err


def missing_evidence(nodeid: str, repo: Path = REPO) -> str | None:
    """Why `path::[Class::]function` names no test function in the tree, or None if it does."""
    path, _, name = nodeid.partition("::")
    file = repo / path
    if not name or not file.is_file():
        return f"{nodeid}: no such file"
    tree = ast.parse(file.read_text(encoding="utf-8"))
    scope: list[ast.stmt] = tree.body
    *classes, func = name.split("::")
    for cls in classes:
        found = [n for n in scope if isinstance(n, ast.ClassDef) and n.name == cls]
        if not found:
            return f"{nodeid}: no class {cls}"
        scope = found[0].body
    if not any(isinstance(n, ast.FunctionDef) and n.name == func for n in scope):
        return f"{nodeid}: no test function {func}"
    return None
