"""The student kit: released notebooks plus the *visible* checks the notebooks' test cells import.

Layout of build/student_kit/ (and build/student_kit.zip): notebooks/<lesson>/..., autograder/__init__.py,
autograder/checks.py, autograder/lessonNN.py for each released lesson, a pyproject.toml so students run
`pip install .` inside it (in a virtual environment), and README.md, the students' guide.
`autograder.hidden`, `autograder.course` and `reference_impl` are never copied, and the kit's Python files
are scanned for imports of them and for solution or hidden-test lines.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import autograder

from .layout import Course, CourseError

KIT_NAME = "backprop-course-kit"
"""The kit's package name: fixed, so it never carries the name of the instructor's folder."""

KIT_DEPENDENCIES = ("numpy>=1.26", "matplotlib>=3.8", "jupyterlab>=4.0", "scikit-learn>=1.4")
"""Everything a lesson notebook imports (jupyterlab brings the kernel); PyTorch stays optional."""

TORCH = "torch==2.13.0"
"""The one PyTorch version the course's optional cross-checks are tested against."""

KIT_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "1.0"
description = "Notebooks and visible checks of the backpropagation course"
requires-python = ">=3.11"
dependencies = [{dependencies}]

[project.optional-dependencies]
torch = ["{torch}"]

[tool.setuptools]
packages = ["autograder"]
"""

KIT_README = """\
# Backprop from the ground up: student kit

This folder holds the course notebooks (`notebooks/`) and the checks their test cells run
(`autograder/`). You need Python 3.11 or newer.

## Install (once)

Make a virtual environment first: many systems refuse a bare `pip install .` into their own Python
("externally-managed-environment"). In this folder run

    python3 -m venv .venv
    . .venv/bin/activate
    pip install .

On Windows the first two lines are `py -m venv .venv` and `.venv\\Scripts\\activate`.

This installs numpy, matplotlib, scikit-learn, JupyterLab and the checks. PyTorch is optional (a few
cells compare with it and say so when it is missing); to add it, install the CPU build of exactly the
version the course is tested with:
`pip install {torch} --index-url https://download.pytorch.org/whl/cpu`.

## Work

In a new terminal, activate the environment again (`. .venv/bin/activate`; Windows:
`.venv\\Scripts\\activate`) and run `jupyter lab notebooks`. Do the lessons in
this order; each builds on the ones before:

{lessons}

Write your answer where a cell says `raise NotImplementedError()` (replace that line), run the cell,
then run the test cell below it:

- a passing test prints one line that starts with `passed:` and says what was compared;
- a failing test shows one message: the exercise, the input that went wrong, what was expected against
  what your code returned, and a hint for the usual mistake (the seed it names lets you repeat the
  same test);
- an exercise you have not written yet says so and nothing else.

The tests here are the visible ones. When your work is graded, more tests run on fresh inputs, and each
exercise is graded on its own, so a mistake costs only that exercise's points.

## Submit

Hand in each notebook under its original file name (for example `{example}`), the file itself
(not a zip, PDF or export). Editing or deleting test cells changes nothing: the grader runs its own copies.
"""


def kit_readme(lessons: list[str], notebooks: dict[str, list[str]]) -> str:
    """The kit's README, listing the released lessons in order with the notebook each one holds."""
    lines = [f"{n}. `notebooks/{lesson}/{name}`" for n, lesson in enumerate(lessons, 1)
             for name in notebooks[lesson]]
    example = next((name for lesson in lessons for name in notebooks[lesson]), "finite_differences.ipynb")
    return KIT_README.format(torch=TORCH, lessons="\n".join(lines), example=example)


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
    dependencies = ", ".join(f'"{d}"' for d in KIT_DEPENDENCIES)
    (kit / "pyproject.toml").write_text(KIT_PYPROJECT.format(name=KIT_NAME, dependencies=dependencies,
                                                             torch=TORCH))
    notebooks = {lesson: sorted(p.name for p in (kit / "notebooks" / lesson).glob("*.ipynb"))
                 for lesson in lessons}
    (kit / "README.md").write_text(kit_readme(lessons, notebooks))

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
