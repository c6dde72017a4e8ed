"""Autograding speed: `course autograde --jobs 2` against plain sequential `nbgrader autograde`, one run.

Both grade the same demo-class submissions with the same grading settings (per-cell timeout, no
iopub-timeout failure, missing tests re-added, warnings ignored, output limited, one BLAS thread per
kernel), each from its own copy of the same collected course folder. Prints wall times, the speed-up
(target >= 2.4x on 2 cores), the per-notebook overhead of our machinery (sandboxed kernel, private
gradebook copy and merge, resume records) measured with `--jobs 1` against plain nbgrader, and checks
that all three runs give identical per-cell grades (exit 1 if not). For each notebook graded with
`--jobs 1` it also prints the probe round trips: how many requests the grader sent to the kernel while
judging the test cells (`probe_requests` of the SafeExecute instance) and the time judging took
(`probe_seconds`), against the time the whole notebook took to execute.

Submissions plain nbgrader cannot survive are left out (UNSURVIVABLE): one that kills or hangs its
kernel loses the whole submission (or waits out every remaining cell), one that allocates without bound
fills the machine's memory (plain nbgrader sets no limit), and malformed metadata makes nbgrader itself
fail; there is no like-for-like time to compare. The demo and the tests cover them. Part of the
per-notebook difference is nbgrader's graceful kernel shutdown (about 1 s per
notebook here), which our sandboxed runs replace by an immediate one.
Run: .venv/bin/python bench/bench_autograde.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nbgrader.utils import is_grade, is_solution

from autograder.course.autograde import autograde
from autograder.course.collect import collect
from autograder.course.config import WARNING_PATTERN, GradingLimits
from autograder.course.demo import DEMO_DIR, REPO, build_submission, load_answers
from autograder.course.export import gradebook_rows
from autograder.course.layout import open_course
from autograder.course.release import release
from autograder.course.safe_execute import SafeExecute

PROBE_LOG = "COURSE_BENCH_PROBE_LOG"


def _count_probes() -> None:
    """Make every SafeExecute append its notebook's probe counters to the file named by PROBE_LOG.

    The grading workers are forked from this process, so the wrapper is theirs too; each appends one
    line (a write of a few bytes with O_APPEND, atomic between the two workers)."""
    preprocess = SafeExecute.preprocess

    def counted(self, nb, resources=None, km=None):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        try:
            return preprocess(self, nb, resources, km)
        finally:
            info = (resources or {}).get("nbgrader", {})
            line = json.dumps({"student": info.get("student"), "lesson": info.get("assignment"),
                               "seconds": time.perf_counter() - start, "probe_seconds": self.probe_seconds,
                               "probe_requests": self.probe_requests,
                               "test_cells": sum(1 for c in nb.cells if _is_test(c))})
            with open(os.environ[PROBE_LOG], "a") as log:
                log.write(line + "\n")

    SafeExecute.preprocess = counted


def _is_test(cell) -> bool:  # noqa: ANN001
    return cell.get("cell_type") == "code" and is_grade(cell) and not is_solution(cell)

# Submissions plain nbgrader cannot survive (see module docstring), left out of every run:
UNSURVIVABLE = {
    "erin": "hangs", "fay": "ignores interrupts", "gus": "kills its kernel", "ivy": "segfaults",
    # no memory limit in plain nbgrader: the kernel fills the machine and the system's OOM killer,
    # which may take other processes with it, ends the run
    "oli": "allocates without bound",
    # nbgrader itself fails on these (KeyError, MissingEntry); course autograde rebuilds them
    "pia": "another lesson's notebook", "quinn": "metadata stripped", "rita": "metadata retyped",
    "uma": "nbformat 3 with a byte-order mark",
}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "MPLBACKEND": "Agg"}

NBGRADER_CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = {source!r}
c.CourseDirectory.course_id = {course_id!r}
c.Execute.timeout = {timeout}
c.Execute.raise_on_iopub_timeout = False
c.OverwriteCells.add_missing_cells = True
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = {pattern!r}
c.LimitOutput.max_lines = {max_lines}
"""


def build_class(base: Path) -> tuple[list[str], int]:
    manifest = json.loads((DEMO_DIR / "class.json").read_text())
    course = open_course(REPO / "lessons", base, create=True)
    lessons = course.resolve_lessons(manifest["lessons"])
    release(course, lessons)
    answers = {lesson: load_answers(DEMO_DIR / "answers" / f"{lesson}.txt") for lesson in lessons}
    inbox = base / "lms_export"
    inbox.mkdir()
    for recipe in manifest["submissions"]:
        if recipe["student"] not in UNSURVIVABLE and "rejected" not in recipe:
            build_submission(course, recipe, answers, inbox)
    report = collect(course, inbox)
    return lessons, len(report.imported)


def cell_grades(course_dir: Path) -> dict[tuple[str, str, str], float | None]:
    course = open_course(REPO / "lessons", course_dir)
    return {(r["student"], r["lesson"], c["cell"]): c["score"]
            for r in gradebook_rows(course) for c in r["cells"]}


def main() -> int:
    limits = GradingLimits(**json.loads((DEMO_DIR / "class.json").read_text())["limits"])
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        lessons, n = build_class(base)
        runs = {name: Path(tmp) / name for name in ("nbgrader", "jobs1", "jobs2")}
        for path in runs.values():
            shutil.copytree(base, path)
        print(f"{n} submissions over {', '.join(lessons)}; cell timeout {limits.cell_timeout} s; "
              f"load average before: {os.getloadavg()[0]:.1f} (other processes slow every run)")

        course_id = open_course(REPO / "lessons", base).course_id
        plain = runs["nbgrader"]
        (plain / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(
            root=str(plain), source=str(REPO / "lessons"), course_id=course_id, timeout=limits.cell_timeout,
            pattern=WARNING_PATTERN, max_lines=limits.max_output_lines))
        env = {**os.environ, **ONE_THREAD,
               "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
        times = {}
        start = time.perf_counter()
        for lesson in lessons:
            subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", lesson, "--force"],
                           cwd=plain, env=env, check=True, capture_output=True)
        times["nbgrader"] = time.perf_counter() - start
        _count_probes()
        probes = {}
        for name, jobs in (("jobs1", 1), ("jobs2", 2)):
            course = open_course(REPO / "lessons", runs[name])
            os.environ[PROBE_LOG] = str(Path(tmp) / f"probes-{name}.jsonl")
            start = time.perf_counter()
            results = autograde(course, lessons, jobs=jobs, limits=limits, force=True, progress=False)
            times[name] = time.perf_counter() - start
            assert all(r.ok for r in results), [r.error for r in results if not r.ok]
            lines = Path(os.environ.pop(PROBE_LOG)).read_text().splitlines()
            probes[name] = [json.loads(line) for line in lines]

        grades = {name: cell_grades(path) for name, path in runs.items()}
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    labels = {"nbgrader": "plain nbgrader autograde, sequential", "jobs1": "course autograde --jobs 1",
              "jobs2": "course autograde --jobs 2"}
    for name, label in labels.items():
        print(f"{label:37}: {times[name]:7.1f} s  ({times[name] / n:.2f} s per notebook)")
    speedup = times["nbgrader"] / times["jobs2"]
    print(f"speed-up of --jobs 2 over plain nbgrader: {speedup:.2f}x (target >= 2.4x) "
          f"{'MET' if speedup >= 2.4 else 'NOT MET'}")
    print(f"per-notebook overhead of course autograde (--jobs 1 vs nbgrader): "
          f"{(times['jobs1'] - times['nbgrader']) / n:+.2f} s")
    print("probe round trips per notebook (--jobs 1): time the grader spent judging test cells over the "
          "socket, requests it sent, whole-notebook execution time")
    for p in sorted(probes["jobs1"], key=lambda p: (p["lesson"], p["student"])):
        per = 1000 * p["probe_seconds"] / max(1, p["probe_requests"])
        print(f"  {p['lesson']:<18} {p['student']:<8} {p['test_cells']:3} test cells  "
              f"{p['probe_requests']:6} requests  {p['probe_seconds']:6.2f} s judging "
              f"({per:.2f} ms/request)  of {p['seconds']:6.2f} s executing")
    for name in ("jobs1", "jobs2"):
        judging = sum(p["probe_seconds"] for p in probes[name])
        executing = sum(p["seconds"] for p in probes[name])
        print(f"  {name}: judging {judging:.1f} s of {executing:.1f} s executing notebooks "
              f"({judging / max(1, len(probes[name])):.2f} s per notebook, "
              f"{sum(p['probe_requests'] for p in probes[name])} requests)")
    same = grades["nbgrader"] == grades["jobs1"] == grades["jobs2"]
    print(f"identical per-cell grades in all three runs ({len(grades['jobs2'])} cells): {same}")
    if not same:
        for key in sorted(set(grades["nbgrader"]) | set(grades["jobs2"])):
            a, b = grades["nbgrader"].get(key), grades["jobs2"].get(key)
            if a != b:
                print(f"  {key}: nbgrader {a}, course {b}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
