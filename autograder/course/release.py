"""`course release`: nbgrader generate_assignment for each lesson, a leak check, and the student kit.

The leak check reads the *source* notebook and collects every solution line and every hidden-test line
(long enough to be distinctive, and not also written elsewhere in the lesson), then requires that none
of them, nor any BEGIN/END marker, appears in any released notebook or kit file.
"""

from __future__ import annotations

import json
from pathlib import Path

from .layout import Course, CourseError
from .notebooks import REGION_KINDS, load, regions, without_regions

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def secret_lines(notebook: Path, kinds: tuple[str, ...] = REGION_KINDS) -> set[str]:
    """Distinctive lines of the solution and/or hidden-test regions of a source notebook."""
    secret, public = set(), set()
    for cell in load(notebook).cells:
        for body in regions(cell.source, kinds):
            secret.update(ln.strip() for ln in body.splitlines())
        public.update(ln.strip() for ln in without_regions(cell.source).splitlines())
    return {ln for ln in secret - public if len(ln) >= 12 and not ln.startswith("#")}


def file_text(path: Path) -> str:
    """The text a student sees in a file: a notebook's cell sources and outputs, or the file itself."""
    if path.suffix != ".ipynb":
        return path.read_text(errors="replace")
    parts = []
    for cell in load(path).cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(json.dumps(out))
    return "\n".join(parts)


def find_leaks(texts: dict[str, str], secrets_: set[str]) -> list[str]:
    """'file: line' for each secret line or region marker found in the given texts."""
    leaks = []
    for name, text in texts.items():
        lines = {ln.strip() for ln in text.splitlines()}
        leaks.extend(f"{name}: {m}" for m in MARKERS if m in text)
        leaks.extend(f"{name}: {s}" for s in sorted(secrets_ & lines))
    return leaks


def generate(course: Course, lesson: str) -> None:
    """nbgrader generate_assignment for one lesson (records its cells in the gradebook), leak-checked."""
    from nbgrader.converters import GenerateAssignment

    from .config import nbgrader_config
    from .nbgrader_run import NbgraderFailed, run_converter

    try:
        run_converter(GenerateAssignment, nbgrader_config(course), assignment=lesson,
                      what=f"releasing {lesson} failed")
    except NbgraderFailed as exc:
        hint = ("(if submissions exist, test cells cannot be added or removed: restore them)"
                if course.sub("submitted").exists() else "")
        raise CourseError(f"{exc} {hint}".strip()) from None
    secrets_ = set().union(*(secret_lines(nb) for nb in course.notebooks(lesson)))
    released = {str(p): file_text(p) for p in course.sub("release", lesson).rglob("*.ipynb")}
    leaks = find_leaks(released, secrets_)
    if leaks:
        raise CourseError(f"solution or hidden-test text reached the release of {lesson} ({leaks[0]}): "
                          "put it between ### BEGIN/END SOLUTION or HIDDEN TESTS markers")


def answers_given(course: Course, lesson: str) -> list[str]:
    """The earlier lessons whose answers this lesson gives students to build on (lesson 07 starts from a
    working lesson-06 engine), as its notebooks declare in their metadata ``course.gives_answers_of``: the
    leak check cannot see them (the given code is written differently), so the author says so."""
    given = sorted({str(name) for nb in course.notebooks(lesson)
                    for name in load(nb).metadata.get("course", {}).get("gives_answers_of", [])})
    unknown = [name for name in given if name not in course.lessons() or name >= lesson]
    if unknown:
        raise CourseError(f"{lesson}'s notebook metadata course.gives_answers_of names {unknown[0]}, which "
                          "is not an earlier lesson: list the folder names of earlier lessons")
    return given


def release(course: Course, lessons: list[str]) -> list[Path]:
    """Generate the student version of each lesson, check it for leaks, and rebuild the student kit."""
    from .kit import build_kit

    for lesson in lessons:
        generate(course, lesson)
    released_lessons = sorted(p.name for p in course.sub("release").iterdir() if p.is_dir())
    return build_kit(course, released_lessons)
