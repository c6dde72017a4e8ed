"""Grade files that a learning-management system imports: Canvas's gradebook CSV and Moodle's grade CSV.

Both take one row per student and one column per graded item, so each lesson becomes one column holding
the student's total for that lesson (hand-graded answers count once a grader has scored them). What
differs is how a row finds its student:
- Canvas matches a row by its `ID`, `SIS User ID` or `SIS Login ID` column and ignores the name; a second
  row `Points Possible` gives each new column its maximum.
- Moodle asks at import time which column identifies the user ("Map from") and which user field it holds
  ("Map to": username, ID number or email address), then which grade item each other column fills.
The course knows students only by the ids `course collect` gave them (from the LMS's file names), so an
instructor can hand over the LMS's own gradebook export as a roster: each course id is then matched to
that export's row, whose identifying columns are copied into the import file, and a student missing from
the roster is refused by name rather than silently left out.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .layout import CourseError

FORMATS = ("canvas", "moodle")

CANVAS_IDS = ("ID", "SIS User ID", "SIS Login ID")
CANVAS_FIELDS = ("Student", *CANVAS_IDS, "Section")
MOODLE_IDS = ("ID number", "Email address", "Username")


def _key(text: str) -> str:
    """How ids are compared with a roster: case and anything but letters and digits ignored."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def read_roster(path: Path) -> list[dict[str, str]]:
    """The rows of an LMS gradebook export (CSV with a header row), with surrounding blanks stripped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()}
                    for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CourseError(f"cannot read the roster {path}: {exc}; pass the CSV your LMS's gradebook "
                          "export wrote") from None
    rows = [r for r in rows if not any(v == "Points Possible" for v in r.values())]  # Canvas's 2nd row
    if not rows:
        raise CourseError(f"the roster {path} has no student rows: export the LMS gradebook with its "
                          "students")
    return rows


def match_roster(students: Iterable[str], roster: Sequence[Mapping[str, str]],
                 id_columns: Sequence[str], name_columns: Sequence[str] = ()) -> dict[str, Mapping[str, str]]:
    """Each course student id -> the roster row whose id column (or name, letters only) equals it.

    A student matched by no row, or by two, is an error that names them: a grade must never land on the
    wrong student or nowhere."""
    present = [c for c in (*id_columns, *name_columns) if roster and c in roster[0]]
    if not present:
        raise CourseError(f"the roster has none of the columns {', '.join(id_columns)}: pass the LMS's own "
                          "gradebook export")
    matched: dict[str, Mapping[str, str]] = {}
    unmatched, ambiguous = [], []
    for student in students:
        rows = [r for r in roster if any(r.get(c) and _key(r[c]) == _key(student) for c in present)]
        if not rows and "Email address" in present:
            rows = [r for r in roster if _key(r.get("Email address", "").split("@")[0]) == _key(student)]
        if len(rows) == 1:
            matched[student] = rows[0]
        else:
            (ambiguous if rows else unmatched).append(student)
    if unmatched or ambiguous:
        parts = []
        if unmatched:
            parts.append(f"not in the roster: {', '.join(unmatched)}")
        if ambiguous:
            parts.append(f"matching several roster rows: {', '.join(ambiguous)}")
        raise CourseError(f"students {'; '.join(parts)}. Fix their ids (`course collect` took them from the "
                          f"file names) or the roster; it is matched on {', '.join(present)}")
    return matched


SCORED = ("graded", "needs manual grading", "missing")
"""Rows whose score is sent: a missing submission counts 0. Any other status (the grader failed, not
graded yet, the gradebook lost it or disagrees with the record) leaves the cell empty, which both LMSs
read as "no change", so no student is sent a grade the course does not stand behind."""


def lesson_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str], dict, dict[str, float]]:
    """(students, lessons, {(student, lesson): score or None}, {lesson: max_score}) from export's rows."""
    students = sorted({r["student"] for r in rows})
    lessons = sorted({r["lesson"] for r in rows})
    scores = {(r["student"], r["lesson"]): float(r["score"] or 0.0) if r["status"] in SCORED else None
              for r in rows}
    maxima = {r["lesson"]: float(r["max_score"] or 0.0) for r in rows}
    return students, lessons, scores, maxima


def left_empty(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """'student lesson: status' of each grade left out of an LMS file, and of each still missing hand
    grading, for the instructor to see before importing."""
    return [f"{r['student']} {r['lesson']}: {r['status']}" for r in rows
            if r["status"] not in SCORED or r["status"] == "needs manual grading"]


def _number(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}".rstrip("0").rstrip(".")


def write_canvas(rows: Sequence[Mapping[str, Any]], path: Path, roster: Sequence[Mapping[str, str]] | None,
                 ) -> Path:
    """Canvas's gradebook import: identity columns, a Points Possible row, one column per lesson."""
    students, lessons, scores, maxima = lesson_table(rows)
    matched = match_roster(students, roster, CANVAS_IDS, ("Student",)) if roster else {}
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*CANVAS_FIELDS, *lessons])
        writer.writerow(["Points Possible", "", "", "", "", *(_number(maxima[x]) for x in lessons)])
        for s in students:
            row = matched.get(s)
            identity = ([row.get(c, "") for c in CANVAS_FIELDS] if row
                        else [s, "", "", s, ""])  # no roster: the course id is the SIS Login ID
            writer.writerow([*identity, *(_number(scores.get((s, x))) for x in lessons)])
    return path


def write_moodle(rows: Sequence[Mapping[str, Any]], path: Path, roster: Sequence[Mapping[str, str]] | None,
                 ) -> Path:
    """Moodle's grade import: an identifying column per known user field, one column per lesson."""
    students, lessons, scores, _ = lesson_table(rows)
    matched = match_roster(students, roster, MOODLE_IDS) if roster else {}
    ids = [c for c in MOODLE_IDS if roster and c in roster[0]] or ["Username"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*ids, *lessons])
        for s in students:
            identity = [matched[s].get(c, "") for c in ids] if matched else [s]
            writer.writerow([*identity, *(_number(scores.get((s, x))) for x in lessons)])
    return path


def write_lms(fmt: str, rows: Sequence[Mapping[str, Any]], out: Path, roster_path: Path | None) -> Path:
    """Write `out/<fmt>_grades.csv` for the LMS named by `fmt` (one of FORMATS)."""
    roster = read_roster(roster_path) if roster_path else None
    writer = {"canvas": write_canvas, "moodle": write_moodle}[fmt]
    return writer(rows, out / f"{fmt}_grades.csv", roster)
