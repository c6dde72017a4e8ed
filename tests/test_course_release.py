"""`course release` on the real course: all seven lessons release, and the student kit holds only what
students may have (released notebooks, visible checks, its README and pyproject), with no answer of a
lesson's own or later exercises. Earlier lessons' answers may appear in later lessons as given building
blocks. tests/test_student_kit.py installs that kit and runs every lesson in it."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course.kit import build_kit
from autograder.course.layout import CourseError, open_course

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.name for p in (ROOT / "lessons").iterdir() if p.is_dir())


def test_every_lesson_releases_into_the_kit(real_release: Path) -> None:
    names = zipfile.ZipFile(real_release / "build" / "student_kit.zip").namelist()
    for lesson in LESSONS:
        number = lesson[:2]
        assert any(n.startswith(f"student_kit/notebooks/{lesson}/") and n.endswith(".ipynb") for n in names)
        assert f"student_kit/autograder/lesson{number}.py" in names
    assert not any("hidden" in n or "reference_impl" in n or "/course/" in n for n in names)
    kit_files = {"README.md", "pyproject.toml", "autograder/__init__.py", "autograder/checks.py"}
    assert {f"student_kit/{name}" for name in kit_files} <= set(names)


def test_a_later_lessons_answer_in_an_earlier_release_is_caught(real_release: Path, tmp_path: Path) -> None:
    """Plant a line of lesson 07's solutions into lesson 01's released notebook: the kit must refuse it.
    (In a copy of the course folder: the release is shared with test_student_kit.)"""
    released = shutil.copytree(real_release, tmp_path / "course_data")
    course = open_course(ROOT / "lessons", released)
    from autograder.course.release import secret_lines

    secret = sorted(secret_lines(course.notebooks(LESSONS[-1])[0]))[0]
    target = next((released / "release" / LESSONS[0]).glob("*.ipynb"))
    nb = nbformat.read(target, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(secret))
    nbformat.write(nb, str(target))
    with pytest.raises(CourseError, match="reached the student kit"):
        build_kit(course, LESSONS)


def test_the_lessons_that_give_earlier_answers_are_named(real_release: Path) -> None:
    """Lessons 06 and 07 start from working code of the lessons before them (declared in their metadata,
    since the leak check cannot see code written differently): release names them for the instructor."""
    from autograder.course.release import answers_given

    course = open_course(ROOT / "lessons", real_release)
    given = {lesson: answers_given(course, lesson) for lesson in LESSONS}
    assert given == {**{lesson: [] for lesson in LESSONS[:5]}, "06_autograd_tensor": ["05_vector_vjps"],
                     "07_training_library": ["05_vector_vjps", "06_autograd_tensor"]}


def test_release_prints_the_note_and_refuses_a_declaration_naming_no_earlier_lesson(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autograder.course.cli import main

    lessons = tmp_path / "lessons"
    for name in ("01_first", "02_second"):
        shutil.copytree(ROOT / "lessons" / LESSONS[0], lessons / name)
    notebook = next((lessons / "02_second").glob("*.ipynb"))
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["course"] = {"gives_answers_of": ["03_later"]}
    nbformat.write(nb, str(notebook))
    args = ["--lessons", str(lessons), "--course-dir", str(tmp_path / "course_data"), "release", "02"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "02_second's notebook metadata course.gives_answers_of names 03_later" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "course_data" / "release").exists()
    nb.metadata["course"] = {"gives_answers_of": ["01_first"]}
    nbformat.write(nb, str(notebook))
    assert main(args) == 0
    assert ("note: 02_second gives students the answers of 01_first to build on: hand it out only after "
            "that lesson's deadline") in capsys.readouterr().out
