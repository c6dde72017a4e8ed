"""`course autograde`: nbgrader autograde with safe settings, resource limits, parallel workers and resume.

How it is organised, and why:
- One task = one (student, lesson). Tasks run in `--jobs` worker processes; each runs nbgrader's own
  Autograde converter in-process (config from `config.py`, kernels from `sandbox.py`, recovery from
  `safe_execute.py`) against a private *copy* of gradebook.db taken with SQLite's backup API.
- Only the parent process writes the real gradebook: it merges each finished task's scores and comments
  into gradebook.db through nbgrader's Gradebook API, one task at a time. No two processes ever write the
  same SQLite file, so parallel grading does not depend on SQLite's locking (jupyter/nbgrader#174).
- After a task is merged, a record `.graded/<student>--<lesson>.json` stores the digests of the submitted
  notebook, the source notebook and the grading limits, plus the scores and any recovery events (cells
  that killed or hung the kernel, and why). A later run skips tasks whose record still matches, so an
  interrupted run resumes where it stopped, and a re-run grades only new or changed submissions
  (`--force` regrades everything; grades come out the same).
- Exit status: 0 when every submission was graded, whatever the students scored; 1 when the grader failed
  on some submission (its log is kept in `.graded/<student>--<lesson>.log`); 130 when interrupted.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import GradingLimits
from .layout import Course, CourseError

RECORDS = ".graded"


@dataclass(frozen=True)
class Task:
    student: str
    lesson: str

    @property
    def key(self) -> str:
        return f"{self.student}--{self.lesson}"


@dataclass
class TaskResult:
    task: Task
    ok: bool
    score: float = 0.0
    max_score: float = 0.0
    cells: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    skipped: bool = False


def _digest_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def fingerprint(course: Course, task: Task, limits: GradingLimits) -> dict[str, str]:
    """What a recorded grade depends on; a record is reused only while all of it is unchanged."""
    return {
        "submitted": _digest_files(list(course.sub("submitted", task.student, task.lesson).glob("*.ipynb"))),
        "source": _digest_files(course.notebooks(task.lesson)),
        "limits": limits.fingerprint(),
    }


def submissions(course: Course, lessons: list[str]) -> list[Task]:
    root = course.sub("submitted")
    if not root.is_dir():
        return []
    return [Task(s.name, lesson) for lesson in lessons for s in sorted(root.iterdir())
            if (s / lesson).is_dir() and any((s / lesson).glob("*.ipynb"))]


def load_record(course: Course, task: Task) -> dict[str, Any] | None:
    path = course.sub(RECORDS, task.key + ".json")
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------- worker side (runs in a subprocess)

def _init_worker() -> None:
    # the parent decides what an interrupt means; workers are terminated by it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")  # SQLAlchemy warnings about nbgrader's session use are not ours


def grade_task(args: tuple[str, str, Task, GradingLimits]) -> TaskResult:
    """Autograde one submission against a private gradebook copy; never raises."""
    import time

    lessons_dir, course_dir, task, limits = args
    course = Course(Path(lessons_dir), Path(course_dir))
    start = time.monotonic()
    private = course.sub(RECORDS, f"{task.key}.{os.getpid()}.db")
    try:
        from nbgrader.api import Gradebook
        from nbgrader.converters import Autograde

        from .config import nbgrader_config
        from .nbgrader_run import NbgraderFailed, run_converter
        from .safe_execute import SafeExecute

        private.parent.mkdir(exist_ok=True)
        with sqlite3.connect(course.db_path) as src, sqlite3.connect(private) as dst:
            src.backup(dst)
        config = nbgrader_config(course, db_url=f"sqlite:///{private}", limits=limits)
        SafeExecute.events.clear()
        try:
            log = run_converter(Autograde, config, assignment=task.lesson, student=task.student,
                                what=f"autograding {task.student}/{task.lesson} failed")
        except NbgraderFailed as exc:
            course.sub(RECORDS, task.key + ".log").write_text(exc.log)
            return TaskResult(task, ok=False, error=str(exc), seconds=time.monotonic() - start)
        course.sub(RECORDS, task.key + ".log").write_text(log)
        cells = []
        with Gradebook(f"sqlite:///{private}", course.course_id) as gb:
            submission = gb.find_submission(task.lesson, task.student)
            for nb in submission.notebooks:
                for grade in nb.grades:
                    cells.append({"notebook": nb.name, "cell": grade.name, "kind": "grade",
                                  "auto_score": grade.auto_score, "max_score": grade.max_score,
                                  "needs_manual_grade": grade.needs_manual_grade})
                for comment in nb.comments:
                    cells.append({"notebook": nb.name, "cell": comment.name, "kind": "comment",
                                  "auto_comment": comment.auto_comment})
        graded = [c for c in cells if c["kind"] == "grade"]
        return TaskResult(task, ok=True, cells=cells, events=list(SafeExecute.events),
                          score=sum(c["auto_score"] or 0.0 for c in graded),
                          max_score=sum(c["max_score"] for c in graded), seconds=time.monotonic() - start)
    except Exception:  # noqa: BLE001 - any failure of the grader is reported, never lost
        return TaskResult(task, ok=False, error=traceback.format_exc(limit=-3).strip().splitlines()[-1],
                          seconds=time.monotonic() - start)
    finally:
        private.unlink(missing_ok=True)


# ---------------------------------------------------------------- parent side

def merge(course: Course, result: TaskResult, limits: GradingLimits) -> None:
    """Write one task's grades into the real gradebook, then its resume record (in that order)."""
    from nbgrader.api import Gradebook

    task = result.task
    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy warns about nbgrader's own session use
        gb.update_or_create_student(task.student)
        gb.update_or_create_submission(task.lesson, task.student)
        for c in result.cells:
            if c["kind"] == "grade":
                grade = gb.find_grade(c["cell"], c["notebook"], task.lesson, task.student)
                grade.auto_score = c["auto_score"]
                grade.needs_manual_grade = c["needs_manual_grade"]
            else:
                comment = gb.find_comment(c["cell"], c["notebook"], task.lesson, task.student)
                comment.auto_comment = c["auto_comment"]
        gb.db.commit()
    record = {**asdict(result), "fingerprint": fingerprint(course, task, limits)}
    path = course.sub(RECORDS, task.key + ".json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def _result_from_record(task: Task, record: dict[str, Any]) -> TaskResult:
    fields = {k: record[k] for k in ("ok", "score", "max_score", "cells", "events", "error", "seconds")}
    return TaskResult(task, skipped=True, **fields)


def autograde(course: Course, lessons: list[str], *, jobs: int = 1, limits: GradingLimits | None = None,
              force: bool = False, progress: bool = True) -> list[TaskResult]:
    """Grade every submission of `lessons` not already graded; returns one result per submission."""
    from nbgrader.api import Gradebook, MissingEntry
    from tqdm import tqdm

    limits = limits or GradingLimits()
    if not course.db_path.exists():
        raise CourseError(f"no gradebook in {course.course_dir}: run `course release` first")
    with Gradebook(course.db_url, course.course_id) as gb:
        for lesson in lessons:
            try:
                gb.find_assignment(lesson)
            except MissingEntry:
                raise CourseError(f"lesson {lesson} has not been released: run `course release {lesson}` "
                                  "first") from None
    tasks = submissions(course, lessons)
    if not tasks:
        raise CourseError(f"no submissions for {', '.join(lessons)} in {course.sub('submitted')}: run "
                          "`course collect PATH` first")
    results: dict[Task, TaskResult] = {}
    todo = []
    for task in tasks:
        record = load_record(course, task)
        if (not force and record and record.get("ok")
                and record.get("fingerprint") == fingerprint(course, task, limits)):
            results[task] = _result_from_record(task, record)
        else:
            todo.append(task)
    if todo:
        args = [(str(course.lessons_dir), str(course.course_dir), t, limits) for t in todo]
        pool = multiprocessing.get_context("fork").Pool(max(1, min(jobs, len(todo))),
                                                        initializer=_init_worker)
        bar = tqdm(total=len(todo), unit="notebook", desc="autograde", disable=not progress)
        try:
            for result in pool.imap_unordered(grade_task, args):
                if result.ok:
                    merge(course, result, limits)
                results[result.task] = result
                bar.update()
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            bar.close()
            pool.join()
    return [results[t] for t in tasks]


def summary_table(results: list[TaskResult]) -> str:
    """One line per submission: score, time, and what happened (kernel deaths, timeouts, failures)."""
    rows = [("student", "lesson", "score", "time", "notes")]
    for r in results:
        if not r.ok:
            notes = f"GRADER FAILED: {r.error}"
        else:
            notes = "; ".join(f"{e['cell']}: {e['cause']}" for e in r.events)
            if r.skipped:
                notes = ("already graded" + (f"; {notes}" if notes else ""))
        score = f"{r.score:g}/{r.max_score:g}" if r.ok else "-"
        rows.append((r.task.student, r.task.lesson, score, f"{r.seconds:.1f}s", notes))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
                     for row in rows)
