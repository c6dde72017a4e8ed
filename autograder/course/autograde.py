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
- The submitted file is never run: each notebook is rebuilt from the released one with only the student's
  answer cells taken from it (`submission.py`), so stripped, copied, retyped or foreign nbgrader metadata,
  a byte-order mark or nbformat 3 cannot fail the grader; what could not be taken is noted.
- The gradebook is trusted over no record: a record is reused only while the gradebook holds the same
  scores; a submission the gradebook lacks (gradebook deleted or restored from an older backup) is merged
  back from its record, and one whose scores differ is regraded. A gradebook missing or set aside as
  damaged (`layout.check_gradebook`) is rebuilt from the released lessons and the records.
- One run at a time per course folder (an flock on `.graded/autograde.lock`, which holds the PID and is
  released by the kernel when its holder dies, so a stale lock is simply taken over); pool workers, and
  through them their kernels, are killed when the parent dies (PR_SET_PDEATHSIG).
- Exit status: 0 when every submission was graded, whatever the students scored; 1 when the grader failed
  on some submission (its log is kept in `.graded/<student>--<lesson>.log`); 130 when interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import GradingLimits
from .layout import Course, CourseError

RECORDS = ".graded"
LOCK = "autograde.lock"


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
    notes: list[str] = field(default_factory=list)   # what the rebuild could not take from the file
    resumed: str = ""                                 # how a skipped task's grades were kept


def _digest_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def submitted_digest(course: Course, task: Task) -> str:
    """Digest of the task's collected files, to tell whether they changed since they were graded."""
    return _digest_files(list(course.sub("submitted", task.student, task.lesson).glob("*.ipynb")))


def fingerprint(course: Course, task: Task, limits: GradingLimits) -> dict[str, str]:
    """What a recorded grade depends on; a record is reused only while all of it is unchanged."""
    return {
        "submitted": submitted_digest(course, task),
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
    """The task's record in .graded/, or None when there is none or it cannot be read."""
    path = course.sub(RECORDS, task.key + ".json")
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def write_record(course: Course, result: TaskResult, limits: GradingLimits) -> None:
    """Store a task's outcome (grades, or the grader's failure and its cause) atomically."""
    record = {**asdict(result), "fingerprint": fingerprint(course, result.task, limits)}
    record.pop("task")
    record.pop("skipped")
    record.pop("resumed")
    path = course.sub(RECORDS, result.task.key + ".json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def auto_scores(cells: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(notebook, cell) -> autograded score of a record's or the gradebook's grade cells."""
    return {(c["notebook"], c["cell"]): float(c["auto_score"] or 0.0) for c in cells if c["kind"] == "grade"}


def gradebook_cells(gb: Any, task: Task) -> list[dict[str, Any]] | None:
    """The task's grade cells as the gradebook holds them, or None when it has no such submission."""
    from nbgrader.api import MissingEntry

    try:
        submission = gb.find_submission(task.lesson, task.student)
    except MissingEntry:
        return None
    return [{"notebook": nb.name, "cell": g.name, "kind": "grade", "auto_score": g.auto_score}
            for nb in submission.notebooks for g in nb.grades]


@contextlib.contextmanager
def exclusive(course: Course) -> Iterator[None]:
    """Hold the course folder's autograde lock, or refuse naming the PID that holds it.

    flock is released by the kernel when its holder dies however it dies, so a lock left by a killed run
    is taken over without a stale-lock heuristic; forked pool workers share it until they exit.
    """
    path = course.sub(RECORDS, LOCK)
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise CourseError(f"another `course autograde` (PID {holder}) is grading {course.course_dir}: "
                              "wait for it to finish, or stop it, then run this again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- worker side (runs in a subprocess)

def _init_worker(parent: int) -> None:
    # the parent decides what an interrupt means; workers are terminated by it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")  # SQLAlchemy warnings about nbgrader's session use are not ours
    # die with the parent even on SIGKILL (the kernels die with their worker the same way)
    from .sandbox import _die_with_parent

    _die_with_parent()
    if os.getppid() != parent:   # the parent died before the line above took effect
        os._exit(1)


def rebuild_submission(course: Course, task: Task, folder: Path) -> list[str]:
    """Write what is graded of the task's notebooks into folder/STUDENT/LESSON; returns notes for it.

    Each submitted notebook is rebuilt from the released one with only the student's answers taken from
    it (see `submission.rebuild`); one the grader cannot read at all is graded as the blank release.
    """
    import nbformat

    from .submission import UnreadableNotebook, read_notebook, rebuild

    dest = folder / task.student / task.lesson
    dest.mkdir(parents=True)
    notes = []
    for source in course.notebooks(task.lesson):
        submitted = course.sub("submitted", task.student, task.lesson, source.name)
        if not submitted.exists():
            continue   # nbgrader scores a missing notebook 0
        released_path = course.sub("release", task.lesson, source.name)
        if not released_path.exists():
            raise CourseError(f"{released_path} is missing: run `course release {task.lesson}`")
        released = nbformat.read(released_path, as_version=4)
        try:
            nb, why = rebuild(released, read_notebook(submitted))
        except UnreadableNotebook as exc:
            nb, why = released, [f"could not read the submission ({exc}); graded as blank"]
        nbformat.write(nb, dest / source.name)
        notes += why
    return notes


def grade_task(args: tuple[str, str, Task, GradingLimits]) -> TaskResult:
    """Autograde one submission against a private gradebook copy; never raises."""
    import time

    lessons_dir, course_dir, task, limits = args
    course = Course(Path(lessons_dir), Path(course_dir))
    start = time.monotonic()
    private = course.sub(RECORDS, f"{task.key}.{os.getpid()}.db")
    rebuilt = Path(tempfile.mkdtemp(prefix="course-rebuilt-"))
    try:
        from nbgrader.api import Gradebook
        from nbgrader.converters import Autograde

        from .config import nbgrader_config
        from .nbgrader_run import NbgraderFailed, run_converter
        from .safe_execute import SafeExecute

        notes = rebuild_submission(course, task, rebuilt)
        private.parent.mkdir(exist_ok=True)
        with sqlite3.connect(course.db_path) as src, sqlite3.connect(private) as dst:
            src.backup(dst)
        config = nbgrader_config(course, db_url=f"sqlite:///{private}", limits=limits)
        config.CourseDirectory.submitted_directory = str(rebuilt)   # the rebuilt notebooks, not the files
        SafeExecute.events.clear()
        try:
            log = run_converter(Autograde, config, assignment=task.lesson, student=task.student,
                                what=f"autograding {task.student}/{task.lesson} failed")
        except NbgraderFailed as exc:
            course.sub(RECORDS, task.key + ".log").write_text(exc.log)
            return TaskResult(task, ok=False, error=str(exc), notes=notes, seconds=time.monotonic() - start)
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
        return TaskResult(task, ok=True, cells=cells, events=list(SafeExecute.events), notes=notes,
                          score=sum(c["auto_score"] or 0.0 for c in graded),
                          max_score=sum(c["max_score"] for c in graded), seconds=time.monotonic() - start)
    except CourseError as exc:
        return TaskResult(task, ok=False, error=str(exc), seconds=time.monotonic() - start)
    except Exception:  # noqa: BLE001 - any failure of the grader is reported, never lost
        return TaskResult(task, ok=False, error=traceback.format_exc(limit=-3).strip().splitlines()[-1],
                          seconds=time.monotonic() - start)
    finally:
        private.unlink(missing_ok=True)
        shutil.rmtree(rebuilt, ignore_errors=True)


# ---------------------------------------------------------------- parent side

def merge(course: Course, result: TaskResult, limits: GradingLimits, *, answers_changed: bool = True) -> None:
    """Write one task's grades into the real gradebook, then its resume record (in that order).

    A written answer a grader has already scored by hand keeps its score and stays graded unless the
    submission changed since (`answers_changed`), so `--force` never undoes hand grading.
    """
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
                hand_graded = grade.manual_score is not None and not answers_changed
                grade.needs_manual_grade = c["needs_manual_grade"] and not hand_graded
            else:
                comment = gb.find_comment(c["cell"], c["notebook"], task.lesson, task.student)
                comment.auto_comment = c["auto_comment"]
        gb.db.commit()
    write_record(course, result, limits)


def _result_from_record(task: Task, record: dict[str, Any], resumed: str) -> TaskResult:
    fields = {k: record[k] for k in ("ok", "score", "max_score", "cells", "events", "error", "seconds")}
    return TaskResult(task, skipped=True, resumed=resumed, notes=record.get("notes", []), **fields)


def _ensure_gradebook(course: Course, say: Callable[[str], None]) -> None:
    """Recreate a missing gradebook (deleted, or set aside as damaged) with every released lesson."""
    from .release import generate

    if course.db_path.exists():
        return
    released = [lesson for lesson in course.lessons() if course.sub("release", lesson).is_dir()]
    if not released:
        raise CourseError(f"no gradebook in {course.course_dir}: run `course release` first")
    say(f"no gradebook.db in {course.course_dir}: recreating it from the released lessons "
        f"({', '.join(released)}); grades come back from the records in {RECORDS}/ or are regraded")
    for lesson in released:
        generate(course, lesson)


def plan(course: Course, tasks: list[Task], limits: GradingLimits, force: bool
         ) -> tuple[dict[Task, TaskResult], list[Task]]:
    """Split tasks into kept results and tasks to grade, trusting a record only as far as the gradebook.

    A record that still matches its submission is reused when the gradebook holds the same autograded
    scores; merged back when the gradebook lacks the submission; and regraded when they disagree.
    """
    from nbgrader.api import Gradebook

    kept: dict[Task, TaskResult] = {}
    todo = []
    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
        warnings.simplefilter("ignore")
        current = {task: gradebook_cells(gb, task) for task in tasks}
    for task in tasks:
        record = load_record(course, task)
        if (force or not record or not record.get("ok")
                or record.get("fingerprint") != fingerprint(course, task, limits)):
            todo.append(task)
        elif current[task] is None:
            result = _result_from_record(task, record, "restored from its record (the gradebook lacked it)")
            merge(course, result, limits, answers_changed=False)
            kept[task] = result
        elif auto_scores(current[task]) == auto_scores(record["cells"]):
            kept[task] = _result_from_record(task, record, "already graded")
        else:
            todo.append(task)
    return kept, todo


def autograde(course: Course, lessons: list[str], *, jobs: int = 1, limits: GradingLimits | None = None,
              force: bool = False, progress: bool = True,
              say: Callable[[str], None] = print) -> list[TaskResult]:
    """Grade every submission of `lessons` not already graded; returns one result per submission.

    `say` gets the notices of this run, once each: what is not isolated on this machine, a gradebook
    recreated.
    """
    from nbgrader.api import Gradebook, MissingEntry
    from tqdm import tqdm

    from .sandbox import isolation_warning

    limits = limits or GradingLimits()
    with exclusive(course):
        if warning := isolation_warning():
            say(warning)
        _ensure_gradebook(course, say)
        with Gradebook(course.db_url, course.course_id) as gb:
            for lesson in lessons:
                try:
                    gb.find_assignment(lesson)
                except MissingEntry:
                    raise CourseError(f"lesson {lesson} has not been released: run `course release "
                                      f"{lesson}` first") from None
        tasks = submissions(course, lessons)
        if not tasks:
            raise CourseError(f"no submissions for {', '.join(lessons)} in {course.sub('submitted')}: run "
                              "`course collect PATH` first")
        results, todo = plan(course, tasks, limits, force)
        if todo:
            changed = {t: (load_record(course, t) or {}).get("fingerprint", {}).get("submitted")
                       != submitted_digest(course, t) for t in todo}
            args = [(str(course.lessons_dir), str(course.course_dir), t, limits) for t in todo]
            pool = multiprocessing.get_context("fork").Pool(max(1, min(jobs, len(todo))),
                                                            initializer=_init_worker, initargs=(os.getpid(),))
            bar = tqdm(total=len(todo), unit="notebook", desc="autograde", disable=not progress)
            try:
                for result in pool.imap_unordered(grade_task, args):
                    if result.ok:
                        merge(course, result, limits, answers_changed=changed[result.task])
                    else:
                        write_record(course, result, limits)
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


def summary_table(results: list[TaskResult], waiting: dict[tuple[str, str], list[str]] | None = None) -> str:
    """One line per submission: score, time, and what happened (kernel deaths, timeouts, failures, and
    the written answers in `waiting`, by (student, lesson), that still need a grader's hand)."""
    rows = [("student", "lesson", "score", "time", "notes")]
    for r in results:
        notes = r.notes + [f"{e['cell']}: {e['cause']}" for e in r.events]
        hand = (waiting or {}).get((r.task.student, r.task.lesson))
        if hand:
            notes.append(f"waits for hand grading: {', '.join(hand)}")
        if not r.ok:
            notes.insert(0, f"GRADER FAILED: {r.error}")
        elif r.skipped:
            notes.insert(0, r.resumed)
        score = f"{r.score:g}/{r.max_score:g}" if r.ok else "-"
        rows.append((r.task.student, r.task.lesson, score, f"{r.seconds:.1f}s", "; ".join(notes)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
                     for row in rows)
