"""Run a lab page's commands and check its teacher page's expected observations.

The pages are the test (docs/labs/README.md, "How the labs are tested"): a student page's fenced
blocks are parsed out of the Markdown and run as written, so a page whose commands stop working
fails the suite.

- ```` ```console ```` blocks: each `$ ` line is a command run from the repository root (other
  lines are sample output and are not run). A `tspulab shell ...` command reads the `tspulab`
  blocks that follow it, up to the next `console` block, as what the student types.
- ```` ```tspulab ```` blocks: commands typed at the `tspulab>` prompt.
- A teacher page's ```` ```expect ```` blocks, under the same `### Step N` heading as the student
  page's step, hold one check a line, matched against that step's output (commands echoed as
  `tspulab> ...`): a Python regular expression that must be found; `not REGEX`, which must not;
  `range REGEX LOW..HIGH`, whose one group must be a number in that range (the figures a correct
  run shows, with the spread this machine gives).

Runs go to the test's folder: `--runs-dir` is added to `tspulab run` and `tspulab shell`, and
`--out` to `tspulab strategies`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LABS = ROOT / "docs" / "labs"
BIN = Path(sys.executable).parent
STEP = re.compile(r"^#{2,4}\s+Step\s+(\d+)\b", re.M)
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MARK = "# step "
#: No lab page may hang the suite.
COMMAND_TIMEOUT_S = 400.0


@dataclass
class Block:
    step: str
    kind: str
    lines: list[str]


@dataclass
class Check:
    step: str
    text: str
    pattern: re.Pattern[str]
    negate: bool = False
    low: float | None = None
    high: float | None = None

    def failure(self, output: str) -> str | None:
        """Why `output` does not show what this check expects, or None."""
        found = self.pattern.search(output)
        if self.negate:
            return f"step {self.step}: found {found.group(0)!r} ({self.text})" if found else None
        if found is None:
            return f"step {self.step}: nothing matches {self.text!r}"
        if self.low is not None and self.high is not None:
            value = float(found.group(1).replace(",", ""))
            if not self.low <= value <= self.high:
                return (
                    f"step {self.step}: {value:g} not in {self.low:g}..{self.high:g} ({self.text})"
                )
        return None


@dataclass
class PageRun:
    outputs: dict[str, str] = field(default_factory=dict)
    codes: list[tuple[str, str, int]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, step: str, text: str) -> None:
        self.outputs[step] = self.outputs.get(step, "") + text

    @property
    def transcript(self) -> str:
        return "\n".join(f"=== step {k}\n{v}" for k, v in sorted(self.outputs.items()))


def _sections(text: str) -> list[tuple[str, str]]:
    """(step number, text) of each `### Step N` section; text before the first is step 0."""
    marks = list(STEP.finditer(text))
    out = [("0", text[: marks[0].start()] if marks else text)]
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((m.group(1), text[m.end() : end]))
    return out


def blocks(page: Path) -> list[Block]:
    found = []
    for step, text in _sections(page.read_text(encoding="utf-8")):
        for m in FENCE.finditer(text):
            if m.group(1) in ("console", "tspulab"):
                found.append(Block(step, m.group(1), m.group(2).splitlines()))
    return found


def checks(teacher_page: Path) -> list[Check]:
    found = []
    for step, text in _sections(teacher_page.read_text(encoding="utf-8")):
        for m in FENCE.finditer(text):
            if m.group(1) != "expect":
                continue
            for line in m.group(2).splitlines():
                line = line.strip()
                if not line:
                    continue
                if line.startswith("not "):
                    found.append(Check(step, line, re.compile(line[4:], re.M), negate=True))
                elif line.startswith("range "):
                    body, _, bounds = line[6:].rpartition(" ")
                    low, high = (float(x) for x in bounds.split(".."))
                    found.append(Check(step, line, re.compile(body, re.M), low=low, high=high))
                else:
                    found.append(Check(step, line, re.compile(line, re.M)))
    return found


def _command(command: str, work: Path, n: int) -> str:
    """The page's command with the test's output folders added (see the module's notes)."""
    words = shlex.split(command)
    if words[:1] == ["tspulab"] and words[1] in ("run", "shell"):
        return f"{command} --runs-dir {shlex.quote(str(work / 'runs'))}"
    if words[:2] == ["tspulab", "strategies"] and "--out" not in words:
        return f"{command} --out {shlex.quote(str(work / f'strategies-{n}'))}"
    return command


def _run(command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`command` with bash from the repository root, `tspulab` being the venv's."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, input=stdin, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S, env=env,
    )  # fmt: skip


def run_page(page: Path, work: Path) -> PageRun:
    """Run every command of a student page in order; each step's output, as a user sees it."""
    run = PageRun()
    start = time.monotonic()
    todo = blocks(page)
    n = 0
    while todo:
        block = todo.pop(0)
        if block.kind == "tspulab":
            raise AssertionError(
                f"{page.name} step {block.step}: a tspulab block outside a session"
            )
        for line in block.lines:
            if not line.startswith("$ "):
                continue
            command, n = line[2:].strip(), n + 1
            run.add(block.step, f"$ {command}\n")
            if shlex.split(command)[:2] != ["tspulab", "shell"]:
                done = _run(_command(command, work, n))
                run.add(block.step, done.stdout + done.stderr)
            else:
                session = []
                while todo and todo[0].kind == "tspulab":
                    typed = todo.pop(0)
                    session += [f"{MARK}{typed.step}", *typed.lines]
                done = _run(_command(command, work, n), "\n".join([*session, "exit", ""]))
                _split_session(run, block.step, done.stdout + done.stderr)
            run.codes.append((block.step, command, done.returncode))
            if done.returncode:
                run.add(block.step, f"[exit {done.returncode}]\n")
    run.seconds = time.monotonic() - start
    return run


def _split_session(run: PageRun, step: str, output: str) -> None:
    """A session's output, cut at the step markers the runner typed."""
    current = step
    for line in output.splitlines(keepends=True):
        if line.startswith(f"tspulab> {MARK}"):
            current = line.removeprefix(f"tspulab> {MARK}").strip()
            continue
        run.add(current, line)


def failures(run: PageRun, teacher_page: Path) -> list[str]:
    """What the run shows that the teacher page does not expect. A command that exits non-zero
    fails the page unless its step expects that (a check naming `[exit N]`)."""
    expected = checks(teacher_page)
    allowed = {(c.step, c.text) for c in expected if "[exit" in c.text.replace("\\[", "[")}
    bad = [
        f"step {step}: exit {code}: {cmd}"
        for step, cmd, code in run.codes
        if code and not any(s == step for s, _ in allowed)
    ]
    for check in expected:
        why = check.failure(run.outputs.get(check.step, ""))
        if why:
            bad.append(why)
    return bad
