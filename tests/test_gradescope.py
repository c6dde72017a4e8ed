"""The Gradescope route: the real `run_autograder` script on lesson 01, and every results.json it writes
checked against Gradescope's specification.

Bad uploads and grader failures are answered before any kernel starts, so they run through the script in
about a second each; three uploads are graded for real (correct, blank, and one that kills its kernel and
has an answer that passes its visible checks but not its hidden ones), marked slow. The pieces the runner
is built from are tested in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course import notebooks
from autograder.course.gradescope import (
    GRADER_FAILED,
    MARK_PREFIX,
    VISIBILITIES,
    BadUpload,
    GradedCell,
    LessonPlan,
    build_autograder,
    choose_submission,
    lesson_plan,
    mark_visible_parts,
    results,
    visible_passed,
)
from autograder.course.layout import Course

REPO = Path(__file__).resolve().parents[1]
LESSON = "01_finite_differences"
SOURCE = REPO / "lessons" / LESSON / "finite_differences.ipynb"
OTHER_LESSON = REPO / "lessons" / "02_chain_rule" / "chain_rule.ipynb"
TESTS = ["test_forward_difference", "test_backward_difference", "test_central_difference",
         "test_numerical_gradient", "test_relative_error"]   # lesson 01's test cells, in notebook order
POINTS = {"test_forward_difference": 1, "test_backward_difference": 1, "test_central_difference": 1,
          "test_numerical_gradient": 3, "test_relative_error": 2}

# Passes lesson 01's visible relative_error checks, fails the hidden ones (Python lists are not converted).
LIST_BLIND_RELATIVE_ERROR = """import numpy as np

def relative_error(a, b):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shapes {np.shape(a)} and {np.shape(b)} differ")
    size = max(np.max(np.abs(a)), np.max(np.abs(b)))
    return 0.0 if size == 0 else float(np.max(np.abs(a - b)) / size)
"""


def assert_valid(res: dict) -> None:
    """results.json as Gradescope's autograder specification describes it, and honest sums."""
    assert isinstance(res["score"], float) and res["score"] >= 0
    assert isinstance(res["execution_time"], int)
    assert isinstance(res["output"], str) and res["output"]
    assert res["visibility"] in VISIBILITIES and res["stdout_visibility"] in VISIBILITIES
    assert isinstance(res["tests"], list)
    for t in res["tests"]:
        assert set(t) == {"name", "score", "max_score", "status", "output", "visibility"}, t
        assert isinstance(t["name"], str) and isinstance(t["output"], str)
        assert isinstance(t["score"], float) and isinstance(t["max_score"], float)
        assert 0 <= t["score"] <= t["max_score"], t
        assert t["status"] in {"passed", "failed"} and t["visibility"] in VISIBILITIES, t
    assert sum(t["score"] for t in res["tests"]) == res["score"]
    assert len({t["name"] for t in res["tests"]}) == len(res["tests"])
    text = json.dumps(res)
    assert "Traceback" not in text and "autograder.hidden" not in text and "HIDDEN TESTS" not in text
    assert MARK_PREFIX not in text


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gradescope")
    return build_autograder(Course(REPO / "lessons", folder / "course"), LESSON, output=folder / "gs.zip")


def run_script(archive: Path, root: Path, upload: dict[str, bytes], *, python: str = sys.executable,
               broken_limits: bool = False) -> tuple[dict, str]:
    """Unzip the autograder as Gradescope does, place the upload, run `run_autograder`; results and stdout."""
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root / "source")
    if broken_limits:
        (root / "source" / "limits.json").write_text("{")
    (root / "submission").mkdir()
    for name, data in upload.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_bytes(data)
    env = {**os.environ, "COURSE_GRADESCOPE_ROOT": str(root), "COURSE_PYTHON": python}
    run = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    res = json.loads((root / "results" / "results.json").read_text())
    assert_valid(res)
    return res, run.stdout + run.stderr


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    return nbformat.writes(nb).encode()


def stripped_of_metadata() -> bytes:
    nb = notebooks.load(SOURCE)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    return notebook_bytes(nb)


# ------------------------------------------------------------------ bad uploads: no kernel, score 0

BAD_UPLOADS = {  # case -> (files uploaded, what the output must say)
    "nothing": ({}, ["No Jupyter notebook", "finite_differences.ipynb"]),
    "a pdf": ({"finite_differences.pdf": b"%PDF-1.4"}, ["No Jupyter notebook", "finite_differences.pdf",
                                                        "not a PDF"]),
    "invalid json": ({"finite_differences.ipynb": b'{"cells": [}'},
                     ["finite_differences.ipynb is not a notebook the grader can read", "invalid JSON",
                      "File > Download"]),
    "another lesson": ({"finite_differences.ipynb": OTHER_LESSON.read_bytes()},
                       ["not the notebook of lesson 01_finite_differences",
                        "Upload your finite_differences"]),
    "metadata stripped": ({"finite_differences.ipynb": stripped_of_metadata()},
                          ["lost the cell information (nbgrader metadata)", "Download a fresh copy"]),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_a_bad_upload_scores_zero_and_says_what_to_upload(archive: Path, tmp_path: Path, case: str) -> None:
    upload, says = BAD_UPLOADS[case]
    res, stdout = run_script(archive, tmp_path, upload)
    assert res["score"] == 0.0 and res["tests"] == []
    for phrase in says:
        assert phrase in res["output"], (phrase, res["output"])
    assert "ask the student" not in res["output"]
    assert "bad upload, not graded" in stdout   # answered before release and kernel
    assert not (tmp_path / "results" / "results.tmp").exists()


def test_a_grader_crash_is_reported_without_a_traceback(archive: Path, tmp_path: Path) -> None:
    res, stdout = run_script(archive, tmp_path, {"finite_differences.ipynb": SOURCE.read_bytes()},
                             broken_limits=True)
    assert res == {"score": 0.0, "execution_time": res["execution_time"], "output": GRADER_FAILED,
                   "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
    assert "Traceback" in stdout and "JSONDecodeError" in stdout   # the details, for the instructor only


def test_a_python_that_cannot_start_still_gives_results(archive: Path, tmp_path: Path) -> None:
    res, stdout = run_script(archive, tmp_path, {"finite_differences.ipynb": SOURCE.read_bytes()},
                             python="/bin/false")
    assert res["output"] == GRADER_FAILED and res["score"] == 0.0
    assert "exited with status 1 and wrote no results.json" in stdout


# ------------------------------------------------------------------ real grading runs (kernels)

def _by_name(res: dict) -> dict[str, dict]:
    return {t["name"]: t for t in res["tests"]}


def _assert_shape(res: dict) -> None:
    """Two entries per lesson-01 test cell (all hold hidden tests), in notebook order; no written answer."""
    names = [t["name"] for t in res["tests"]]
    assert names == [f"{gid}: {part}" for gid in TESTS
                     for part in ("visible checks", "all checks (hidden ones included)")]
    for gid in TESTS:
        visible, whole = _by_name(res)[f"{gid}: visible checks"], _by_name(res)[f"{gid}: all checks "
                                                                               "(hidden ones included)"]
        assert (visible["visibility"], visible["max_score"]) == ("visible", 0.0)
        assert (whole["visibility"], whole["max_score"]) == ("after_published", float(POINTS[gid]))
    assert "written_central_vs_forward (2 point(s))" in res["output"]
    assert "graded by hand" in res["output"]
    assert str(res["score"]) not in res["output"]


@pytest.mark.slow
def test_a_correct_notebook_earns_every_autograded_point(archive: Path, tmp_path: Path) -> None:
    res, stdout = run_script(archive, tmp_path, {"finite_differences.ipynb": SOURCE.read_bytes()})
    _assert_shape(res)
    assert res["score"] == 8.0   # the 4 points of written answers are not the autograder's
    assert all(t["status"] == "passed" for t in res["tests"])
    assert f"visible checks ran to the end in: {', '.join(TESTS)}" in stdout


@pytest.mark.slow
def test_a_blank_notebook_earns_zero(archive: Path, tmp_path: Path) -> None:
    blank = notebooks.student_version(notebooks.load(SOURCE))
    res, _ = run_script(archive, tmp_path, {"finite_differences.ipynb": notebook_bytes(blank)})
    _assert_shape(res)
    assert res["score"] == 0.0
    assert all(t["status"] == "failed" for t in res["tests"])
    visible = _by_name(res)["test_forward_difference: visible checks"]
    assert "forward_difference" in visible["output"] and "Error" in visible["output"]


@pytest.mark.slow
def test_a_kernel_killing_answer_costs_only_its_exercise(archive: Path, tmp_path: Path) -> None:
    nb = notebooks.with_cell_source(notebooks.load(SOURCE), "forward_difference", "import os\nos._exit(1)")
    nb = notebooks.with_cell_source(nb, "relative_error", LIST_BLIND_RELATIVE_ERROR)
    res, stdout = run_script(archive, tmp_path, {"my_work.ipynb": notebook_bytes(nb)})   # renamed too
    _assert_shape(res)
    tests = _by_name(res)
    assert res["score"] == 5.0   # backward, central, numerical gradient
    dead = tests["test_forward_difference: visible checks"]
    assert dead["status"] == "failed" and dead["output"].startswith(
        "Your cell forward_difference was skipped so the rest of the notebook could be graded: the kernel")
    assert "forward_difference: the kernel process exited with status 1" in res["output"]
    assert "Graded my_work.ipynb as finite_differences.ipynb" in res["output"]
    visible, whole = tests["test_relative_error: visible checks"], tests[
        "test_relative_error: all checks (hidden ones included)"]
    assert visible["status"] == "passed" and "hidden checks" in visible["output"]
    assert (whole["status"], whole["score"]) == ("failed", 0.0) and "TypeError" in whole["output"]


# ------------------------------------------------------------------ the pieces, in-process

def test_the_plan_lists_test_cells_in_notebook_order_and_written_answers_apart() -> None:
    plan = lesson_plan(SOURCE)
    assert [c.grade_id for c in plan.tests] == TESTS
    assert all(c.has_hidden for c in plan.tests)
    assert {c.grade_id: c.points for c in plan.tests} == POINTS
    assert plan.written == [("written_central_vs_forward", 2.0), ("written_float32_small_h", 2.0)]
    assert {"forward_difference", "relative_error", "written_float32_small_h"} <= plan.answers
    assert plan.tested_by["forward_difference"] == "test_forward_difference"
    assert plan.tested_by["relative_error"] == "test_relative_error"
    assert "written_float32_small_h" not in plan.tested_by


def test_a_renamed_notebook_is_found_by_its_cells_and_checkpoints_are_ignored(tmp_path: Path) -> None:
    plan = lesson_plan(SOURCE)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "finite_differences.ipynb").write_bytes(b"{")
    (tmp_path / "notes.ipynb").write_bytes(OTHER_LESSON.read_bytes())
    (tmp_path / "copy of lesson.ipynb").write_bytes(SOURCE.read_bytes())
    path, note = choose_submission(tmp_path, plan)
    assert path.name == "copy of lesson.ipynb" and "recognised by its cells" in note
    (tmp_path / "copy of lesson.ipynb").unlink()
    with pytest.raises(BadUpload, match="notes.ipynb is not the notebook of lesson"):
        choose_submission(tmp_path, plan)


def test_the_marker_goes_just_before_the_last_hidden_block_with_its_indentation(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("check(f)\n### BEGIN HIDDEN TESTS\nhidden(f)\n### END HIDDEN TESTS"),
        nbformat.v4.new_code_cell("for k in range(2):\n    check(k)\n    ### BEGIN HIDDEN TESTS\n"
                                  "    hidden(k)\n    ### END HIDDEN TESTS"),
        nbformat.v4.new_code_cell("check(g)"),
        nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nimport hidden\n### END HIDDEN TESTS\ncheck(h)\n"
                                  "### BEGIN HIDDEN TESTS\nhidden.check(h)\n### END HIDDEN TESTS"),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert mark_visible_parts(path, "tok") == 3
    cells = nbformat.read(path, as_version=4).cells
    first, second = cells[0].source.split("\n"), cells[1].source.split("\n")
    assert first[0] == "check(f)" and "tok" in first[1] and first[2] == "### BEGIN HIDDEN TESTS"
    assert second[2].startswith("    print(") and "tok" in second[2]
    assert cells[2].source == "check(g)"
    compile(cells[1].source, "cell", "exec")
    last = cells[3].source.split("\n")  # a hidden block before the visible check: marked after the check
    assert last[3] == "check(h)" and "tok" in last[4] and last[5] == "### BEGIN HIDDEN TESTS"


def test_the_token_is_read_from_the_graders_printed_output_only() -> None:
    def cell(gid: str, outputs: list) -> nbformat.NotebookNode:
        c = nbformat.v4.new_code_cell("", metadata={"nbgrader": {"grade_id": gid}})
        c.outputs = outputs
        return c

    shown = nbformat.v4.new_output("stream", name="stdout", text=f"passed: x\n{MARK_PREFIX}tok\n")
    forged = nbformat.v4.new_output("stream", name="stdout", text=f"{MARK_PREFIX}guess\n")
    printed = nbformat.v4.new_output("display_data", data={"text/plain": f"{MARK_PREFIX}tok"})
    nb = nbformat.v4.new_notebook(cells=[cell("a", [shown]), cell("b", [forged]), cell("c", [printed])])
    assert visible_passed(nb, "tok") == {"a"}


def test_results_split_points_honestly() -> None:
    plan = lesson_plan(SOURCE)
    scores = {"test_forward_difference": 1.0, "test_numerical_gradient": 0.0, "test_relative_error": 0.0}
    res = results(plan, scores, {"test_numerical_gradient"}, {"test_relative_error": "CheckFailure: no"},
                  ["a note"], 3.2)
    assert_valid(res)
    tests = _by_name(res)
    assert res["score"] == 1.0 and res["execution_time"] == 3
    assert tests["test_numerical_gradient: visible checks"]["status"] == "passed"
    assert tests["test_numerical_gradient: all checks (hidden ones included)"]["status"] == "failed"
    assert tests["test_forward_difference: visible checks"]["status"] == "passed"   # whole cell passed
    assert tests["test_relative_error: visible checks"]["output"] == "CheckFailure: no"
    assert res["output"].startswith("a note\n")
    assert not any(t["name"].startswith("written") for t in res["tests"])


def test_a_cell_without_hidden_tests_is_one_visible_entry_with_its_points() -> None:
    cells = [GradedCell("test_square", 2.0, True), GradedCell("test_cube", 1.0, False)]
    plan = LessonPlan("01_toy", "toy.ipynb", cells, [("written_why", 3.0)],
                      frozenset({"square", "cube", "written_why"}))
    res = results(plan, {"test_square": 0.0, "test_cube": 1.0}, set(), {"test_square": "AssertionError: no"},
                  [""], 1.0)
    assert_valid(res)
    assert [(t["name"], t["score"], t["max_score"], t["visibility"]) for t in res["tests"]] == [
        ("test_square: visible checks", 0.0, 0.0, "visible"),
        ("test_square: all checks (hidden ones included)", 0.0, 2.0, "after_published"),
        ("test_cube", 1.0, 1.0, "visible")]
    assert res["score"] == 1.0 and "written_why (3 point(s))" in res["output"]
    assert not res["output"].startswith("\n")
