"""What feedback shows. On the tiny fixture course with a written answer: before hand grading the page says
the answer is not graded yet (nbgrader's own page shows its empty score as 0.0, read as 0 marks), after it
the page shows the score (one autograde run, one kernel). On every lesson: each test cell, judged as
grading judges it (in-process, no kernel), prints a check's pass line once, not again from the hidden
check's rerun of the visible one."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from lesson_harness import ROOT, answer_namespace
from test_course_robustness import GOOD, _answered, _release_nb, _with_written_answer, _write
from test_course_workflow import FAST, html_text, make_course

from autograder.course.cli import main
from autograder.course.judge import is_autograded_test, judge, loopback
from autograder.course.layout import open_course
from autograder.course.notebooks import cell_grade_id


@pytest.fixture
def graded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy lesson with a 2-point written answer, released, collected and autograded for 'good'."""
    make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    _with_written_answer(tmp_path)
    assert main(["release"]) == 0
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _write(inbox / "good_toy.ipynb", _answered(_release_nb(tmp_path), {**GOOD, "why": "because of Taylor"}))
    assert main(["collect", str(inbox)]) == 0
    assert main(["autograde", *FAST]) == 0
    return tmp_path


def _page(root: Path) -> str:
    assert main(["feedback"]) == 0
    return re.sub(r"\s+", " ", html_text(root / "course_data" / "feedback" / "good" / "01_toy" / "toy.html"))


def test_a_written_answer_waiting_for_hand_grading_is_not_shown_as_zero(graded: Path) -> None:
    from nbgrader.api import Gradebook

    page = _page(graded)
    assert "Written response: why (not graded yet, 2.0 points)" in page
    assert "(Score: 3.0 / 5.0; written answers worth 2.0 points are still to be graded)" in page
    assert "Test cell: square (Score: 2.0 / 2.0)" in page and "Score: 0.0 / 2.0" not in page
    assert "Test cell: cube (Score: 1.0 / 1.0)" in page      # the contents name each cell's exercise
    assert page.count("not graded yet, 2.0 points") == 2          # in the contents and above the answer
    assert "because of Taylor" in page

    course = open_course(Path("lessons"), Path("course_data"))
    with Gradebook(course.db_url, course.course_id) as gb:
        grade = gb.find_grade("why", "toy", "01_toy", "good")
        grade.manual_score = 1.5          # what formgrader does
        grade.needs_manual_grade = False
        gb.db.commit()
    page = _page(graded)
    assert "not graded yet" not in page
    assert "Written response: why (Score: 1.5 / 2.0)" in page and "(Score: 4.5 / 5.0)" in page

    with Gradebook(course.db_url, course.course_id) as gb:   # a changed resubmission: its old score is stale
        grade = gb.find_grade("why", "toy", "01_toy", "good")
        grade.needs_manual_grade = True
        gb.find_comment("why", "toy", "01_toy", "good").manual_comment = "say which error term"
        gb.db.commit()
    page = _page(graded)
    assert "Written response: why (not graded yet, 2.0 points)" in page
    assert "(Score: 3.0 / 5.0; written answers worth 2.0 points are still to be graded)" in page
    assert "say which error term" in page                       # the grader's comment is still shown


@pytest.mark.parametrize("path", sorted(ROOT.glob("lessons/*/*.ipynb")), ids=lambda p: p.parent.name[:2])
def test_each_test_cell_prints_a_pass_line_once(path: Path) -> None:
    """The visible check's line, and at most one of the hidden check's own (named apart, e.g. "(grading)")."""
    repeated = {}
    with loopback(answer_namespace(path)) as channel:
        for cell in nbformat.read(path, as_version=4).cells:
            if not is_autograded_test(cell):
                continue
            outputs = judge(cell.source, channel, f"<test cell {cell_grade_id(cell)}>")
            assert not [o for o in outputs if o.output_type == "error"], cell_grade_id(cell)
            text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
            subjects = [ln.split(": ")[1] for ln in text.splitlines() if ln.startswith("passed: ")]
            if len(subjects) > 2 or max(Counter(subjects).values(), default=1) > 1:
                repeated[cell_grade_id(cell)] = subjects
    assert not repeated, f"pass lines printed more than once per check: {repeated}"
