"""The student kit: released notebooks plus the *visible* checks the notebooks' test cells import.

Layout of build/student_kit/ (and build/student_kit.zip): notebooks/<lesson>/..., autograder/__init__.py,
autograder/checks.py, autograder/lessonNN.py for each released lesson, and a pyproject.toml so students run
`pip install .` inside it. `autograder.hidden`, `autograder.course` and `reference_impl` are never copied,
and the kit's Python files are scanned for imports of them and for solution or hidden-test lines.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import autograder

from .layout import Course, CourseError

KIT_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{course_id}-student-kit"
version = "1.0"
description = "Visible checks for the course notebooks"
requires-python = ">=3.10"
dependencies = ["numpy>=1.26", "matplotlib>=3.8", "jupyterlab>=4.0"]

[tool.setuptools]
packages = ["autograder"]
"""

KIT_README = """\
Student kit
===========
1. In this folder run:  pip install .
2. Open the notebooks in notebooks/ with Jupyter (jupyter lab) and work through them in order.
3. Each test cell runs the visible checks; the instructor's grading also runs hidden ones.
Submit each notebook under its original file name.
"""

FORBIDDEN_IMPORT = re.compile(r"^\s*(from|import)\s+(reference_impl|autograder\.(hidden|course))\b", re.M)


def build_kit(course: Course, lessons: list[str]) -> list[Path]:
    """(Re)build the kit folder and zip for the released lessons; returns [folder, zip]."""
    from .release import file_text, find_leaks, secret_lines

    package = Path(autograder.__file__).parent
    kit = course.sub("build", "student_kit")
    if kit.exists():
        shutil.rmtree(kit)
    (kit / "autograder").mkdir(parents=True)
    modules = ["__init__.py", "checks.py"] + [f"lesson{lesson[:2]}.py" for lesson in lessons]
    for name in modules:
        if (package / name).exists():
            shutil.copy2(package / name, kit / "autograder" / name)
    for lesson in lessons:
        shutil.copytree(course.sub("release", lesson), kit / "notebooks" / lesson,
                        ignore=shutil.ignore_patterns(".*", "__pycache__"))
    (kit / "pyproject.toml").write_text(KIT_PYPROJECT.format(course_id=course.course_id))
    (kit / "README.txt").write_text(KIT_README)

    for py in (kit / "autograder").glob("*.py"):
        bad = FORBIDDEN_IMPORT.search(py.read_text())
        if bad:
            raise CourseError(f"{py.name} imports {bad.group(2)}, which students do not get: move that "
                              "check to autograder/hidden/ or make it self-contained")
    # The visible checks may share ordinary lines with a solution (they compute expected values), so
    # the checks are held to the hidden-test lines. A lesson's notebook is held to the solution and
    # hidden lines of its own and every later lesson: earlier lessons' answers may be given to build on.
    sources = {lesson: course.notebooks(lesson) for lesson in lessons}
    hidden = set().union(*(secret_lines(nb, ("HIDDEN TESTS",)) for nbs in sources.values() for nb in nbs))
    leaks = find_leaks({str(p.relative_to(kit)): file_text(p) for p in kit.rglob("*.py")}, hidden)
    for lesson in lessons:
        later = set().union(*(secret_lines(nb) for other in lessons if other >= lesson
                              for nb in sources[other]))
        released = (kit / "notebooks" / lesson).rglob("*.ipynb")
        leaks += find_leaks({str(p.relative_to(kit)): file_text(p) for p in released}, later)
    if leaks:
        raise CourseError(f"solution or hidden-test text reached the student kit ({leaks[0]}): remove it "
                          "from the visible checks")
    archive = course.sub("build", "student_kit.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(kit.rglob("*")):
            if path.is_file():
                zf.write(path, Path("student_kit") / path.relative_to(kit))
    return [kit, archive]
