"""Where things live: the course repository (lessons/) and the instructor's course folder.

The course folder (default ./course_data, `--course-dir` to change) holds nbgrader's layout:
`submitted/`, `autograded/`, `feedback/`, `release/`, `gradebook.db`, plus our own `rejected/` (files
`collect` could not import, kept as received), `exports/`, `build/` (student kit and Gradescope zips) and
`course.json`, which binds the folder to one course so a gradebook is never mixed with another course's.
It writes its own `.gitignore` so grades never end up in the course's git history.
The nbgrader source directory is the repository's `lessons/` itself: lessons/NN_name/name.ipynb, where
the folder name is the assignment id.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

COURSE_FILE = "course.json"


TEMPLATES = Path(__file__).resolve().parent / "templates"
"""nbconvert templates of the course's own (formgrader pages with MathJax served locally)."""


class CourseError(Exception):
    """A problem the instructor can fix; the CLI prints it as one line (problem, then fix)."""


@dataclass(frozen=True)
class Course:
    """A course repository's lessons plus the instructor's course folder for it."""

    lessons_dir: Path
    course_dir: Path

    @property
    def course_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "-", self.lessons_dir.resolve().parent.name).strip("-") or "course"

    @property
    def db_path(self) -> Path:
        return self.course_dir / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path.resolve()}"

    def sub(self, *parts: str) -> Path:
        return self.course_dir.joinpath(*parts)

    def lessons(self) -> list[str]:
        """Assignment ids: every lessons/NN_name folder that holds a notebook."""
        if not self.lessons_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.lessons_dir.iterdir()
            if p.is_dir() and re.match(r"^\d\d_", p.name) and any(p.glob("*.ipynb"))
        )

    def notebooks(self, lesson: str) -> list[Path]:
        return sorted(p for p in (self.lessons_dir / lesson).glob("*.ipynb"))

    def resolve_lessons(self, names: list[str] | None) -> list[str]:
        """Map user-given names ('01', '1', '01_finite_differences', 'finite_differences') to lesson ids."""
        known = self.lessons()
        if not known:
            raise CourseError(f"no lessons found in {self.lessons_dir}: run `course` from the course "
                              "repository root or pass --lessons PATH")
        if not names:
            return known
        out = []
        for name in names:
            number = f"{int(name):02d}" if name.isascii() and name.isdigit() else None   # '2' means '02'
            matches = [k for k in known if name in (k, k[:2], k[3:]) or number == k[:2]]
            if len(matches) != 1:
                raise CourseError(f"unknown lesson {name!r}: choose one of {', '.join(known)}")
            out.append(matches[0])
        return out


def open_course(lessons_dir: Path, course_dir: Path, *, create: bool = False) -> Course:
    """Check the folder belongs to this course (creating it when `create`), and return the Course."""
    course = Course(lessons_dir.resolve(), course_dir.resolve())
    if not course.lessons_dir.is_dir():
        raise CourseError(f"no lessons folder at {course.lessons_dir}: run `course` from the course "
                          "repository root or pass --lessons PATH")
    marker = course.course_dir / COURSE_FILE
    if not course.course_dir.exists() or not marker.exists():
        if not create:
            raise CourseError(f"course folder {course.course_dir} does not exist or was not made by "
                              "`course`: run `course release` first, or pass --course-dir")
        if course.course_dir.exists() and any(course.course_dir.iterdir()):
            raise CourseError(f"{course.course_dir} is not empty and is not a course folder: pass "
                              "--course-dir with a new or existing course folder")
        course.course_dir.mkdir(parents=True, exist_ok=True)
        (course.course_dir / ".gitignore").write_text("# grades and submissions never go into git\n*\n")
        marker.write_text(json.dumps({"course_id": course.course_id,
                                      "lessons": str(course.lessons_dir)}, indent=2) + "\n")
    recorded = json.loads(marker.read_text())
    if recorded.get("lessons") != str(course.lessons_dir):
        raise CourseError(f"course folder {course.course_dir} belongs to the course at "
                          f"{recorded.get('lessons')}, not {course.lessons_dir}: pass --course-dir "
                          "with this course's folder")
    check_gradebook(course)
    _write_formgrader_config(course)
    return course


def _write_formgrader_config(course: Course) -> None:
    """Let nbgrader's own formgrader (started in the course folder) grade the written answers."""
    path = course.course_dir / "nbgrader_config.py"
    exchange = course.sub("exchange")
    exchange.mkdir(exist_ok=True)
    text = (
        "# Written by `course`: lets `jupyter lab` started in this folder open nbgrader's formgrader on\n"
        "# this course, to grade the written (manually graded) answers. The exchange folder exists only so\n"
        "# that nbgrader's screens do not report a missing one: this course hands out and collects through\n"
        "# `course release`/`course collect`, not through nbgrader's exchange.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course.course_dir)!r}\n"
        f"c.CourseDirectory.source_directory = {str(course.lessons_dir)!r}\n"
        f"c.CourseDirectory.course_id = {course.course_id!r}\n"
        f"c.CourseDirectory.db_url = {course.db_url!r}\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
        "# Formgrader pages load MathJax from this Jupyter server (jupyter-server-mathjax), not a CDN.\n"
        "from nbgrader.server_extensions.formgrader import handlers as _formgrader\n"
        f"c.HTMLExporter.extra_template_basedirs = [{str(TEMPLATES)!r}, _formgrader.template_path]\n"
    )
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _damage(path: Path) -> str | None:
    """Why SQLite finds the file damaged (PRAGMA quick_check), or None when it is sound."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            problems = [r[0] for r in con.execute("PRAGMA quick_check")]
            con.execute("SELECT id FROM course").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if problems == ["ok"] else problems[0]


def set_aside_if_damaged(course: Course) -> Path | None:
    """Move a damaged gradebook.db (and its journal) aside, never deleting it; say so in one line.

    `course autograde` then recreates the gradebook and brings every grade back from the records in
    `.graded/`, regrading what no record covers. Returns where the damaged file went.
    """
    why = _damage(course.db_path)
    if why is None:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = course.db_path.with_name(f"gradebook.db.damaged-{stamp}")
    for n in range(2, 1000):
        if not aside.exists():
            break
        aside = course.db_path.with_name(f"gradebook.db.damaged-{stamp}-{n}")
    course.db_path.rename(aside)
    journal = course.db_path.with_name("gradebook.db-journal")
    if journal.exists():
        journal.rename(aside.with_name(aside.name + "-journal"))
    print(f"course: {course.db_path} is damaged ({why}): moved to {aside.name}; `course autograde` "
          "rebuilds the gradebook from the records in .graded/ (hand-entered scores are only in the "
          "damaged file)", file=sys.stderr)
    return aside


def check_gradebook(course: Course) -> None:
    """Set a damaged gradebook aside; refuse one written for another nbgrader course (its tables say so)."""
    if not course.db_path.exists() or set_aside_if_damaged(course):
        return
    with sqlite3.connect(f"file:{course.db_path}?mode=ro", uri=True) as con:
        courses = {r[0] for r in con.execute("SELECT id FROM course")}
        owners = {r[0] for r in con.execute("SELECT DISTINCT course_id FROM assignment")}
    # nbgrader also adds a 'default_course' row of its own; the assignments say whose gradebook it is
    foreign = sorted(owners - {course.course_id}) or (
        sorted(courses - {"default_course"}) if course.course_id not in courses else [])
    if foreign:
        raise CourseError(f"{course.db_path} is the gradebook of course {foreign[0]!r}, not "
                          f"{course.course_id!r}: pass --course-dir with this course's folder")
