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
