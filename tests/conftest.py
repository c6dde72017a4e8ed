"""What every test gets: a recursion limit put back as it was.

The bug tables exec students' wrong answers in the test process, and one of them is a recursive sort that
raises the limit to 100 000 (lesson 03). Left raised, a later wrong answer that recurses without end (a
`Dual.__radd__` that calls itself) overflows the C stack and kills the whole test worker instead of
raising RecursionError.

And one `course release` of the real lessons for the whole run (`real_release`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import autograder.course  # noqa: F401 - spares every test process nbformat's slow optional import (see there)


@pytest.fixture(autouse=True)
def _recursion_limit_restored() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)


# The test files that take longest, longest first (measured one file at a time, under load, after the grader
# stopped waiting on dead kernels: the demo class ~1.5-2.5 min; the student kit 1 min with its venv kept,
# 2-3 min when CI builds it fresh; the others 0.5-1 min). `make test` turns off xdist's reordering by test
# count (--no-loadscope-reorder) so that they start first and the short files fill both workers at the end:
# started last, the demo alone kept one worker busy for minutes after the other had finished.
LONGEST_FIRST = ("test_course_demo.py", "test_student_kit.py", "test_course_workflow.py",
                 "test_course_robustness.py", "test_gradescope.py", "test_attacks.py", "test_lesson03.py",
                 "test_lesson07.py", "test_checks.py", "test_lesson05.py", "test_lesson06.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of LONGEST_FIRST first, in that order; every other file keeps its place after them."""
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def real_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The course folder of one `course release` of all the real lessons, made once per test run: the
    xdist workers share it (test_course_release and test_student_kit read it; neither may change it)."""
    from autograder.course.cli import main

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent                     # the run's folder, above each worker's own
    folder = base / "real_release"
    with open(base / "real_release.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # the first worker releases, the other waits for it
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            lessons = Path(__file__).resolve().parents[1] / "lessons"
            assert main(["--lessons", str(lessons), "--course-dir", str(folder / "course_data"),
                         "release"]) == 0
            (folder / "done").touch()
    return folder / "course_data"
