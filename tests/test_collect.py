"""`course collect` on the real lessons with nbgrader's own `<student>/<lesson>/<notebook>.ipynb` layout, and
lesson names as the commands take them. No kernel runs: collect only reads notebooks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autograder.course.collect import collect
from autograder.course.layout import Course, CourseError, open_course

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
CHAIN = LESSONS / "02_chain_rule" / "chain_rule.ipynb"
FINITE = LESSONS / "01_finite_differences" / "finite_differences.ipynb"


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return open_course(LESSONS, tmp_path / "course_data", create=True)


def _put(source: Path, target: Path, note: str = "") -> Path:
    """Copy a lesson notebook to target, with an extra markdown cell so two students' files differ."""
    nb = json.loads(source.read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "collect-note", "metadata": {}, "source": note})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb))
    return target


def test_nbgrader_layout_credits_the_folder_above_the_lesson_folder(course: Course, tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    _put(CHAIN, subs / "s1" / "02_chain_rule" / "chain_rule.ipynb", "s1")
    _put(CHAIN, subs / "s2" / "02_chain_rule" / "chain_rule.ipynb", "s2")
    _put(CHAIN, subs / "s4" / "02" / "chain_rule.ipynb", "s4")               # the lesson's number only
    _put(FINITE, subs / "s5" / "01_finite_differences" / "finite_differences.ipynb", "s5")
    _put(FINITE, subs / "s3" / "02_chain_rule" / "finite_differences.ipynb", "s3")    # lesson 01's file
    _put(FINITE, subs / "s6" / "02_chain_rule" / "chain_rule.ipynb", "s6")    # named 02, lesson 01's cells
    _put(CHAIN, subs / "02_chain_rule" / "chain_rule.ipynb", "nobody")       # no student folder above it
    _put(CHAIN, subs / "02_chain_rule" / "s8" / "chain_rule.ipynb", "s8")    # an LMS's per-lesson folder
    _put(FINITE, subs / "02_chain_rule" / "s9" / "finite_differences.ipynb", "s9")
    report = collect(course, subs)
    assert sorted(report.imported) == ["s1/02_chain_rule", "s2/02_chain_rule", "s4/02_chain_rule",
                                       "s5/01_finite_differences", "s8/02_chain_rule"]
    problems = dict(report.problems)
    assert set(problems) == {"s3/02_chain_rule/finite_differences.ipynb", "s6/02_chain_rule/chain_rule.ipynb",
                             "02_chain_rule/chain_rule.ipynb", "02_chain_rule/s9/finite_differences.ipynb"}
    under = "filed under lesson 02_chain_rule"
    assert (f"{under} (s3/02_chain_rule/), but its name makes it 01_finite_differences's notebook"
            in problems["s3/02_chain_rule/finite_differences.ipynb"])
    assert (f"{under} (s6/02_chain_rule/), but its cells are 01_finite_differences's notebook"
            in problems["s6/02_chain_rule/chain_rule.ipynb"])
    assert "cannot tell the student id" in problems["02_chain_rule/chain_rule.ipynb"]
    assert f"{under} (02_chain_rule/s9/)" in problems["02_chain_rule/s9/finite_differences.ipynb"]
    rejected = course.sub("rejected")
    assert (rejected / "s3" / "02_chain_rule" / "finite_differences.ipynb").exists()   # nothing lost
    assert (rejected / "s6" / "02_chain_rule" / "chain_rule.ipynb").exists()
    submitted = course.sub("submitted")
    assert sorted(p.name for p in submitted.iterdir()) == ["s1", "s2", "s4", "s5", "s8"]
    assert "s2" in json.loads((submitted / "s2" / "02_chain_rule" / "chain_rule.ipynb").read_text()
                              )["cells"][-1]["source"]

    # a second student's file collected later is theirs, not "unchanged"
    later = tmp_path / "later"
    _put(CHAIN, later / "s7" / "02_chain_rule" / "chain_rule.ipynb", "s7")
    shutil.copytree(subs / "s1", later / "s1")
    again = collect(course, later)
    assert again.imported == ["s7/02_chain_rule"] and again.unchanged == ["s1/02_chain_rule"]


@pytest.mark.parametrize("folder", ["2", "002", "chain_rule"])
def test_a_lesson_folder_named_as_the_commands_name_a_lesson_credits_the_folder_above(
        course: Course, tmp_path: Path, folder: str) -> None:
    """erin/2/chain_rule.ipynb is erin's lesson 02, not student '2''s."""
    _put(CHAIN, tmp_path / "subs" / "erin" / folder / "chain_rule.ipynb", "erin")
    report = collect(course, tmp_path / "subs")
    assert report.imported == ["erin/02_chain_rule"] and not report.problems, report


def test_a_student_whose_id_is_a_lesson_number_keeps_the_file_beside_other_students(
        course: Course, tmp_path: Path) -> None:
    """export/2/ beside export/17/: "2" is a student there (a lesson folder's neighbours are lessons too)."""
    for student in ("2", "17"):
        _put(CHAIN, tmp_path / "inbox" / "export" / student / "chain_rule.ipynb", student)
    report = collect(course, tmp_path / "inbox")
    assert sorted(report.imported) == ["17/02_chain_rule", "2/02_chain_rule"] and not report.problems, report


@pytest.mark.parametrize("name", ["2", "02", "002", "02_chain_rule", "chain_rule"])
def test_a_lesson_is_named_by_its_id_its_name_or_its_number(course: Course, name: str) -> None:
    assert course.resolve_lessons([name]) == ["02_chain_rule"]


def test_an_unknown_lesson_number_lists_the_lessons(course: Course) -> None:
    with pytest.raises(CourseError, match="unknown lesson '9': choose one of 01_finite_differences"):
        course.resolve_lessons(["9"])
