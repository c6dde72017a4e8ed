"""`course export`: grades per student and lesson AND per test cell, from nbgrader's gradebook.

nbgrader's own export has one row per student and assignment. Here `--format csv` writes
`grades.csv` (student, lesson, score, max_score, status, notes) and `grades_by_cell.csv` (one row per
graded cell: autograded test cells and manually graded answers); `--format json` writes both views
nested in `grades.json`; `--format canvas|moodle` writes the grade-import file of that LMS (lms.py).
A student with no submission for a lesson gets status `missing` and score 0;
`notes` carries what autograde recorded (cells that killed or hung the kernel, and why; what could not be
taken from the submitted file).

Every collected student appears, even one the gradebook never saw: `grader failed` with the cause,
`not graded` (collected after the last autograde, or changed since), or `not in gradebook` (graded, but
the gradebook lacks it: deleted or restored from an older backup). Where the gradebook and the record of
the last autograde disagree on a score, the row says `gradebook disagrees with record` and names the cells,
so nothing edited behind the grader's back goes unnoticed.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

from .layout import Course, CourseError

LESSON_FIELDS = ["student", "lesson", "score", "max_score", "status", "notes"]
CELL_FIELDS = ["student", "lesson", "notebook", "cell", "kind", "score", "max_score", "needs_manual_grade"]


def _record_notes(record: dict[str, Any]) -> list[str]:
    return record.get("notes", []) + [f"{e['cell']}: {e['cause']}" for e in record.get("events", [])]


def _status(course: Course, student: str, lesson: str, cells: list[dict[str, Any]] | None
            ) -> tuple[str, list[str]]:
    """Status and notes of one (student, lesson) from the gradebook's cells and autograde's record."""
    from .autograde import Task, auto_scores, load_record, submitted_digest

    task = Task(student, lesson)
    record = load_record(course, task) or {}
    collected = any(course.sub("submitted", student, lesson).glob("*.ipynb"))
    graded_digest = record.get("fingerprint", {}).get("submitted")
    if collected and record and graded_digest != submitted_digest(course, task):
        return "not graded", ["the submission changed since it was graded: run `course autograde`"]
    if record and not record.get("ok"):
        cause = f"{record.get('error')} (log: .graded/{task.key}.log)"
        return "grader failed", [cause, *_record_notes(record)]
    if cells is None:
        if record:
            return "not in gradebook", [f"graded {record['score']:g}/{record['max_score']:g}, but the "
                                        "gradebook lacks it: run `course autograde` to restore it"]
        if collected:
            return "not graded", ["collected, not graded yet: run `course autograde`"]
        return "missing", ["no submission collected"]
    notes = _record_notes(record)
    if record:
        recorded = auto_scores(record["cells"])
        held = auto_scores([{**c, "kind": "grade"} for c in cells])
        differ = sorted(cell for (nb, cell), score in held.items() if recorded.get((nb, cell)) != score)
        if differ:
            return "gradebook disagrees with record", [
                f"autograded scores of {', '.join(differ)} differ from autograde's record: run "
                f"`course autograde {lesson} --force` to regrade", *notes]
    pending = any(c["needs_manual_grade"] for c in cells)
    return ("needs manual grading" if pending else "graded"), notes


def gradebook_rows(course: Course) -> list[dict[str, Any]]:
    """One dict per (student, lesson), each with its per-cell rows under 'cells'."""
    from nbgrader.api import Gradebook, MissingEntry

    if not course.db_path.exists():
        raise CourseError(f"no gradebook in {course.course_dir}: run `course release` and "
                          "`course autograde` first (autograde rebuilds a lost one from .graded/)")
    rows = []
    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
        warnings.simplefilter("ignore")
        lessons = sorted(a.name for a in gb.assignments)
        submitted = course.sub("submitted")
        collected = {p.name for p in submitted.iterdir() if p.is_dir()} if submitted.is_dir() else set()
        for student in sorted({s.id for s in gb.students} | collected):
            for lesson in lessons:
                row: dict[str, Any] = {"student": student, "lesson": lesson, "cells": []}
                try:
                    submission = gb.find_submission(lesson, student)
                except MissingEntry:
                    status, notes = _status(course, student, lesson, None)
                    row.update(score=0.0, max_score=gb.find_assignment(lesson).max_score, status=status,
                               notes="; ".join(notes))
                    rows.append(row)
                    continue
                for nb in sorted(submission.notebooks, key=lambda n: n.name):
                    manual = {c.name for c in nb.notebook.solution_cells}
                    for g in sorted(nb.grades, key=lambda g: g.name):
                        row["cells"].append({
                            "notebook": nb.name, "cell": g.name,
                            "kind": "manual" if g.name in manual else "autograded",
                            "score": g.score, "max_score": g.max_score,
                            "needs_manual_grade": bool(g.needs_manual_grade), "auto_score": g.auto_score})
                status, notes = _status(course, student, lesson, row["cells"])
                for cell in row["cells"]:
                    del cell["auto_score"]
                row.update(score=submission.score, max_score=submission.max_score, status=status,
                           notes="; ".join(notes))
                rows.append(row)
    return rows


GRADED = ("graded", "needs manual grading", "gradebook disagrees with record")
"""Statuses whose score the gradebook holds."""
NOT_YET = ("missing", "not graded")
"""Statuses of a submission no autograde has tried yet: an export of only these would be empty."""


def nothing_graded(rows: list[dict[str, Any]]) -> bool:
    """True before any autograde ran on anything collected (a grader failure counts as a run)."""
    return all(r["status"] in NOT_YET for r in rows)


def export(course: Course, *, fmt: str = "csv", output: Path | None = None,
           roster: Path | None = None) -> list[Path]:
    """Write the export files; returns their paths. Refuses before anything has been graded."""
    rows = gradebook_rows(course)
    if nothing_graded(rows):
        raise CourseError(f"nothing has been graded in {course.course_dir} yet, so there is nothing to "
                          "export: run `course autograde` first")
    out = (output or course.sub("exports")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if fmt in ("canvas", "moodle"):
        from .lms import write_lms

        return [write_lms(fmt, rows, out, roster)]
    if fmt == "json":
        path = out / "grades.json"
        path.write_text(json.dumps({"course": course.course_id, "grades": rows}, indent=1) + "\n")
        return [path]
    lesson_path, cell_path = out / "grades.csv", out / "grades_by_cell.csv"
    with lesson_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, LESSON_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with cell_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CELL_FIELDS)
        writer.writeheader()
        for row in rows:
            for cell in row["cells"]:
                writer.writerow({"student": row["student"], "lesson": row["lesson"], **cell})
    return [lesson_path, cell_path]
