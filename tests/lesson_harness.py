"""What every lesson's notebook tests share: run the notebook as nbgrader would and judge the scores.

Each lesson test file proves the same four things about its notebook (the source earns full marks, the
released version leaks nothing and scores zero, a typical bug loses only its own exercise's points, other
correct styles earn full marks); the assertions live here once so the files keep only what is lesson
specific: their bugs, answers and check-function tests. Storage rules that hold for every notebook
(clean outputs, nbgrader schema) are tested once for all notebooks in test_packaging.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import nbformat
import pytest

from autograder.course import notebooks as course_notebooks
from autograder.course.judge import is_autograded_test, judge, loopback
from autograder.course.notebooks import CellScore, cell_grade_id, nbgrader_meta, regions, without_regions

ROOT = Path(__file__).resolve().parents[1]
Scores = Mapping[str, Any]  # grade_id -> CellScore(score, max_score, error), as notebooks.grade returns

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def notebook_fixtures(path: Path) -> tuple[Callable, Callable]:
    """Module-scoped `notebooks` (the course tooling) and `source_nb` fixtures for one lesson notebook.

    Use as `notebooks, source_nb = notebook_fixtures(NOTEBOOK)`: loading once per module keeps the many
    kernel runs of a lesson from re-reading the file."""

    @pytest.fixture(scope="module")
    def notebooks():
        return course_notebooks

    @pytest.fixture(scope="module")
    def source_nb(notebooks):
        return notebooks.load(path)

    return notebooks, source_nb


def graded_metadata(path: Path) -> dict[str, dict]:
    """grade_id -> nbgrader metadata of every cell that has some, as stored (for required-id checks)."""
    nb = nbformat.read(path, as_version=4)
    graded = [cell for cell in nb.cells if nbgrader_meta(cell)]
    by_id = {cell_grade_id(cell): nbgrader_meta(cell) for cell in graded}
    assert len(by_id) == len(graded), f"duplicate grade_id in {path.name}"
    return by_id


def answer_namespace(path: Path, replace: Mapping[str, str] | None = None) -> dict:
    """The notebook's imports, given cells and answer cells exec'd in order in one namespace, with some
    answers optionally replaced: the lesson's checks can then be called in-process, without a kernel."""
    nb = nbformat.read(path, as_version=4)
    ns: dict = {}
    first_code = True
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = nbgrader_meta(cell)
        gid = cell_grade_id(cell) or ""
        if first_code or gid.startswith("given_") or (meta.get("solution") and not meta.get("grade")):
            exec(compile((replace or {}).get(gid, cell.source), f"<cell {gid or 'imports'}>", "exec"), ns)
            first_code = False
    return ns


def judged_in_process(path: Path, replace: Mapping[str, str] | None = None,
                      only: Iterable[str] | None = None) -> Scores:
    """Every autograded test cell of the source notebook (hidden tests included) judged exactly as grading
    judges it, with the student's objects behind the grading channel, but without a kernel: the answer
    namespace (`answer_namespace`) is served by a thread (`judge.loopback`). Scored by nbgrader's rule.
    ``only`` names the test cells to judge (default: all)."""
    nb = nbformat.read(path, as_version=4)
    scores = {}
    with loopback(answer_namespace(path, replace)) as channel:
        for cell in nb.cells:
            gid = cell_grade_id(cell)
            if is_autograded_test(cell) and (only is None or gid in only):
                outputs = judge(cell.source, channel, f"<test cell {gid}>")
                errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
                points = float(nbgrader_meta(cell).get("points", 0))
                scores[gid] = CellScore(0.0 if errors else points, points, errors[0] if errors else None)
    return scores


def run_and_grade(notebooks: Any, nb: Any) -> Scores:
    """Execute the notebook in a fresh kernel and score it by nbgrader's rule."""
    return notebooks.grade(notebooks.execute(nb))


def graded_cells_only(nb: Any, prelude: str = "") -> Any:
    """The notebook without its ungraded demo cells (training, plots): they cannot change any grade, and
    dropping them keeps the many bug-injection runs fast. ``prelude`` is a code cell put first, for the
    imports the graded cells need from an ungraded cell."""
    out = nbformat.from_dict(nb)
    out.cells = [c for c in nb.cells if c.cell_type == "markdown" or "nbgrader" in c.metadata]
    if prelude:
        out.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    return out


def answer_cell(body: str, header: str = "") -> str:
    """An answer cell's full source: the tests replace the whole cell, as a student would edit it."""
    return header + body.strip() + "\n"


# ---------------------------------------------------------------------------------------------------------
# What the released notebook must not contain
# ---------------------------------------------------------------------------------------------------------

Outside = Literal["line", "text", "never"]


def marked_lines(nb: Any, kind: str, *, min_length: int = 15, unless_outside: Outside = "line") -> list[str]:
    """Stripped lines of the notebook's ``### BEGIN/END <kind>`` regions, at least min_length long, that
    finding elsewhere would be a leak.

    unless_outside says which lines are not secret because the notebook shows them outside the markers
    too: "line" drops a line that is also a whole line outside (given code repeats it), "text" also drops
    one quoted inside other text (an update rule in the instructions), "never" keeps every line."""
    inside_lines = [line.strip() for cell in nb.cells for body in regions(cell.source, (kind,))
                    for line in body.splitlines()]
    outside_lines = [line for cell in nb.cells for line in without_regions(cell.source, (kind,)).splitlines()]
    long_lines = [line for line in inside_lines if len(line) >= min_length]
    if unless_outside == "never":
        return long_lines
    if unless_outside == "text":
        outside_text = "\n".join(outside_lines)
        return [line for line in long_lines if line not in outside_text]
    outside_set = {line.strip() for line in outside_lines}
    return [line for line in long_lines if line not in outside_set]


def solution_lines(nb: Any, *, min_length: int = 15, unless_outside: Outside = "line") -> list[str]:
    """Lines of the solutions that the released notebook must not contain (see marked_lines)."""
    return marked_lines(nb, "SOLUTION", min_length=min_length, unless_outside=unless_outside)


def hidden_test_lines(nb: Any, *, min_length: int = 15) -> list[str]:
    """Lines of the hidden tests that the released notebook must not contain (see marked_lines)."""
    return marked_lines(nb, "HIDDEN TESTS", min_length=min_length)


def released_text(student_nb: Any) -> str:
    return "\n".join(cell.source for cell in student_nb.cells)


def assert_no_hidden_tests(student_nb: Any, source_nb: Any | None = None) -> None:
    """No hidden-test marker or import survives the release (nor, given the source, any hidden line)."""
    text = released_text(student_nb)
    assert "HIDDEN" not in text and "autograder.hidden" not in text
    for line in hidden_test_lines(source_nb) if source_nb is not None else []:
        assert line not in text, f"hidden test line shipped to students: {line!r}"


def assert_no_leaks(source_nb: Any, student_nb: Any, *, at_least: int, min_length: int = 15,
                    unless_outside: Outside = "line", whole_lines: bool = False) -> None:
    """The released notebook contains no solution line and no hidden test.

    at_least guards the check itself: if the markers moved and few lines were found, it would pass
    vacuously. whole_lines compares against whole released lines instead of any substring (for short
    min_length, where a substring match would hit unrelated code)."""
    text = released_text(student_nb)
    shipped: Iterable[str] | str = {line.strip() for line in text.splitlines()} if whole_lines else text
    lines = solution_lines(source_nb, min_length=min_length, unless_outside=unless_outside)
    assert len(lines) > at_least
    for line in lines:
        assert line not in shipped, f"solution line shipped to students: {line!r}"
    assert_no_hidden_tests(student_nb, source_nb)


def assert_release_is_safe_and_blank(notebooks: Any, source_nb: Any, expected_ids: Iterable[str],
                                     **leak_options: Any) -> None:
    """The student version leaks no solution or hidden test (assert_no_leaks with leak_options), and run
    blank it scores zero on every test cell without crashing the grader."""
    student_nb = notebooks.student_version(source_nb)
    assert_no_leaks(source_nb, student_nb, **leak_options)
    assert_zero_everywhere(run_and_grade(notebooks, student_nb), expected_ids)


# ---------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------


def assert_full_marks(scores: Scores, expected_ids: Iterable[str] = ()) -> None:
    """Every autograded cell earned its maximum, and the expected test cells were graded at all."""
    assert set(expected_ids) <= set(scores)
    for grade_id, score in scores.items():
        assert score.score == score.max_score, (grade_id, score.error)


def assert_zero_everywhere(scores: Scores, expected_ids: Iterable[str] = ()) -> None:
    """A blank (released) notebook earns nothing anywhere: no test passes without an answer."""
    assert set(expected_ids) <= set(scores)
    for grade_id, score in scores.items():
        assert score.score == 0, grade_id


def assert_only_cells_lose_points(scores: Scores, losing: Iterable[str], *, what: str,
                                  expected_ids: Iterable[str] = ()) -> None:
    """The test cells in `losing` score zero and every other cell full marks, so a bug costs only its own
    exercise's points; `what` names the injected bug in the failure messages."""
    losing = set(losing)
    assert set(expected_ids) <= set(scores)
    for grade_id, score in scores.items():
        if grade_id in losing:
            assert score.score == 0, f"{what} kept the points of {grade_id}"
        else:
            assert score.score == score.max_score, f"{what} cost {grade_id}: {score.error}"


def assert_answers_earn_full_marks(notebooks: Any, nb: Any, answers: Mapping[str, str]) -> None:
    """With these answer cells (grade_id -> full source, e.g. correct solutions in another style) swapped
    in, the notebook earns full marks everywhere: the checks accept every valid design."""
    for grade_id, source in answers.items():
        nb = notebooks.with_cell_source(nb, grade_id, source)
    assert_full_marks(run_and_grade(notebooks, nb))


def assert_no_error_outputs(executed_nb: Any) -> None:
    """No cell of an executed notebook ended in an error (demos included, which grades do not see)."""
    errors = [out for c in executed_nb.cells for out in c.get("outputs", []) if out.output_type == "error"]
    assert not errors, errors[0]


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible modules are shipped, so they hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

KIT_BLOCKER = '''
import importlib.abc
import sys


class NotInTheKit(importlib.abc.MetaPathFinder):
    """What a student's kit lacks: the hidden checks and the reference implementation."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "reference_impl" or name.startswith("autograder.hidden"):
            raise ImportError(f"{name} is not in the student kit")
        return None


sys.meta_path.insert(0, NotInTheKit())
try:
    import autograder.hidden  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the blocker let autograder.hidden through")
'''


def visible_cells_script(nb: Any, prelude: str = "") -> str:
    """The notebook's graded cells with their solutions, test cells cut before the hidden tests: what a
    student with correct answers runs from the kit."""
    cells = [without_regions(c.source, ("HIDDEN TESTS",)) for c in graded_cells_only(nb, prelude).cells
             if c.cell_type == "code"]
    return "\n\n".join(cells)


def run_in_student_kit(script: str, cwd: Path, *, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh Python that, like a student's kit, has neither the hidden checks nor
    reference_impl; it must exit cleanly."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KIT_BLOCKER + "\n" + script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_module_holds_no_solution_line(module_path: Path, source_nb: Any, *, at_least: int = 10,
                                         **options: Any) -> None:
    """A shipped check module must not contain a line of its lesson's solutions."""
    text = Path(module_path).read_text()
    lines = solution_lines(source_nb, **options)
    assert len(lines) >= at_least, f"only {len(lines)} distinctive solution lines: is the notebook complete?"
    name = Path(module_path).name
    for line in lines:
        assert line not in text, f"{name} (shipped to students) contains a solution line: {line!r}"
