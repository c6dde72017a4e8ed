"""Run and score one lesson notebook the way nbgrader does, without a course folder or gradebook.

The lesson tests and `course check` need the same three things: execute a notebook in a fresh kernel,
score its autograded test cells by nbgrader's own rule, and produce the student version nbgrader would
release. Doing them in-process with nbgrader's preprocessors and `determine_grade` keeps the verdicts
identical to a real autograde while costing a kernel start instead of a CLI call and a database.
"""

from __future__ import annotations

import copy
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbgrader.preprocessors import (
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)
from nbgrader.utils import determine_grade, is_grade, is_solution
from traitlets.config import Config

from .judge import JudgedCells
from .sandbox import private_connection

_LOG = logging.getLogger("autograder.notebooks")


@dataclass(frozen=True)
class CellScore:
    """One autograded test cell's result; ``error`` says why points were lost (None at full marks)."""

    score: float
    max_score: float
    error: str | None = None


def load(path: str | Path) -> NotebookNode:
    """Read a notebook as nbformat 4."""
    return nbformat.read(str(path), as_version=4)


class _JudgedClient(JudgedCells, NotebookClient):
    """nbclient's runner with test cells judged in this process (`judge`)."""


def execute(nb: NotebookNode, *, timeout: int = 120, cwd: str | Path | None = None) -> NotebookNode:
    """An executed copy of ``nb``: fresh kernel, every cell run even after errors, as nbgrader does."""
    run = copy.deepcopy(nb)
    resources = {"metadata": {"path": str(cwd)}} if cwd is not None else {}
    with tempfile.TemporaryDirectory(prefix="course-ipc-") as sockets:
        config = Config({"KernelManager": private_connection(sockets)})
        client = _JudgedClient(run, timeout=timeout, kernel_name="python3", allow_errors=True,
                               resources=resources, config=config)
        client.probe_folder = sockets
        client.execute()
    return run


def _autograded_tests(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and is_grade(c) and not is_solution(c)]


def _failure_text(cell: NotebookNode) -> str | None:
    """The first error or stderr text of a cell, which is what made nbgrader give it zero."""
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return f"{out.ename}: {out.evalue}"
        if out.output_type == "stream" and out.name == "stderr":
            return f"wrote to stderr: {out.text.strip()[:300]}"
    return None


def grade(executed: NotebookNode) -> dict[str, CellScore]:
    """grade_id -> score for every autograded test cell, by nbgrader's ``determine_grade``."""
    scores = {}
    for cell in _autograded_tests(executed):
        score, max_score = determine_grade(cell, _LOG)
        scores[cell_grade_id(cell)] = CellScore(float(score or 0.0), float(max_score),
                                                               _failure_text(cell))
    return scores


def student_version(nb: NotebookNode) -> NotebookNode:
    """What ``nbgrader generate_assignment`` releases: solutions, hidden tests and outputs removed."""
    release = copy.deepcopy(nb)
    resources: dict = {}
    for step in (ClearSolutions(), ClearOutput(), LockCells(), ClearHiddenTests(), ClearMarkScheme(),
                 ComputeChecksums()):
        release, resources = step.preprocess(release, resources)
    return release


def with_cell_source(nb: NotebookNode, grade_id: str, source: str) -> NotebookNode:
    """A copy of ``nb`` with one nbgrader cell's source replaced, e.g. to inject a typical bug."""
    changed = copy.deepcopy(nb)
    for cell in changed.cells:
        if cell_grade_id(cell) == grade_id:
            cell.source = source
            return changed
    known = sorted(gid for c in nb.cells if (gid := cell_grade_id(c)))
    raise KeyError(f"no cell with grade_id {grade_id!r}; the notebook has {known}")


# ---------------------------------------------------------------- small helpers for every notebook reader

def nbgrader_meta(cell: object) -> dict:
    """A cell's nbgrader metadata, or {} when absent or malformed (a student's file may hold anything)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def cell_grade_id(cell: object) -> str | None:
    """A cell's nbgrader grade_id, or None when it has none (or malformed metadata)."""
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


REGION_KINDS = ("SOLUTION", "HIDDEN TESTS")
# nbgrader's rule: a line that contains "### BEGIN <kind>" opens a region, the next line containing
# "### END <kind>" closes it; both marker lines belong to the region. Groups: indentation, kind, body.
_REGION = re.compile(r"^([ \t]*)[^\n]*### BEGIN (SOLUTION|HIDDEN TESTS)[^\n]*\n(.*?)"
                     r"^[^\n]*### END \2[^\n]*(?:\n|\Z)", re.S | re.M)


def regions(source: str, kinds: tuple[str, ...] = REGION_KINDS) -> list[str]:
    """The bodies (marker lines excluded) of a cell source's ``### BEGIN/END`` regions of these kinds."""
    return [m.group(3) for m in _REGION.finditer(source) if m.group(2) in kinds]


def without_regions(source: str, kinds: tuple[str, ...] = REGION_KINDS, replacement: str = "") -> str:
    """``source`` with its regions of these kinds (marker lines included) removed, or each replaced by the
    line ``replacement`` at the BEGIN line's indentation (``"raise NotImplementedError()"`` gives what
    nbgrader releases for a solution region)."""
    def replace(m: re.Match) -> str:
        if m.group(2) not in kinds:
            return m.group(0)
        return f"{m.group(1)}{replacement}\n" if replacement else ""
    return _REGION.sub(replace, source)
