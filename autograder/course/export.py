"""`course export`: grades per student and lesson AND per test cell, from nbgrader's gradebook.

nbgrader's own export has one row per student and assignment. Here `--format csv` writes
`grades.csv` (student, lesson, score, max_score, status, notes) and `grades_by_cell.csv` (one row per
graded cell: autograded test cells and manually graded answers); `--format json` writes both views
nested in `grades.json`. A student with no submission for a lesson gets status `missing` and score 0;
`notes` carries what autograde recorded (cells that killed or hung the kernel, and why).
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


def gradebook_rows(course: Course) -> list[dict[str, Any]]:
    """One dict per (student, lesson), each with its per-cell rows under 'cells'."""
    from nbgrader.api import Gradebook, MissingEntry

    from .autograde import RECORDS

    if not course.db_path.exists():
        raise CourseError(f"no gradebook in {course.course_dir}: run `course release` and "
                          "`course autograde` first")
    rows = []
    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
        warnings.simplefilter("ignore")
        lessons = sorted(a.name for a in gb.assignments)
        for student in sorted(s.id for s in gb.students):
            for lesson in lessons:
                row: dict[str, Any] = {"student": student, "lesson": lesson, "cells": []}
                try:
                    submission = gb.find_submission(lesson, student)
                except MissingEntry:
                    row.update(score=0.0, max_score=gb.find_assignment(lesson).max_score, status="missing",
                               notes="no submission collected")
                    rows.append(row)
                    continue
                for nb in sorted(submission.notebooks, key=lambda n: n.name):
                    manual = {c.name for c in nb.notebook.solution_cells}
                    for g in sorted(nb.grades, key=lambda g: g.name):
                        row["cells"].append({
                            "notebook": nb.name, "cell": g.name,
                            "kind": "manual" if g.name in manual else "autograded",
                            "score": g.score, "max_score": g.max_score,
                            "needs_manual_grade": bool(g.needs_manual_grade)})
                record_path = course.sub(RECORDS, f"{student}--{lesson}.json")
                record = json.loads(record_path.read_text()) if record_path.exists() else {}
                pending = any(c["needs_manual_grade"] for c in row["cells"])
                row.update(score=submission.score, max_score=submission.max_score,
                           status="needs manual grading" if pending else "graded",
                           notes="; ".join(f"{e['cell']}: {e['cause']}" for e in record.get("events", [])))
                rows.append(row)
    return rows


def export(course: Course, *, fmt: str = "csv", output: Path | None = None) -> list[Path]:
    """Write the export files; returns their paths."""
    rows = gradebook_rows(course)
    out = (output or course.sub("exports")).resolve()
    out.mkdir(parents=True, exist_ok=True)
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
