"""The `course` console script: argparse front end of the instructor's workflow.

Every subcommand works on the repository's lessons/ (`--lessons`) and the course folder (`--course-dir`,
default ./course_data). Problems the instructor can fix are printed as one line `course: error: ...`
naming the problem and the fix, with exit status 2; a grader failure exits 1; an interrupt exits 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import GradingLimits
from .layout import Course, CourseError, open_course


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description="Release, check, collect, autograde, give "
                                "feedback on and export grades for the course's nbgrader lessons.")
    p.add_argument("--lessons", type=Path, default=Path("lessons"),
                   help="the course's lessons folder (default: ./lessons)")
    p.add_argument("--course-dir", type=Path, default=Path("course_data"),
                   help="the instructor's course folder: submissions, gradebook (default: ./course_data)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("release", help="generate student versions and the student kit")
    s.add_argument("lesson", nargs="*", help="lesson ids or numbers (default: all)")

    s = sub.add_parser("check", help="CI check: solutions get full marks, blank versions zero")
    s.add_argument("lesson", nargs="*")
    s.add_argument("--timeout", type=int, default=300, help="per-cell timeout in seconds")

    s = sub.add_parser("collect", help="import submissions from a folder or zip into the course folder")
    s.add_argument("path", type=Path,
                   help="a folder or zip of notebooks named STUDENT_NOTEBOOK.ipynb, or in folders "
                        "STUDENT/NOTEBOOK.ipynb, STUDENT/LESSON/NOTEBOOK.ipynb (nbgrader's layout) or "
                        "LESSON/STUDENT/NOTEBOOK.ipynb")
    s.add_argument("--replace", action="store_true",
                   help="take a new version of an already collected notebook (the old one is kept)")

    s = sub.add_parser("autograde", help="grade submissions safely and in parallel")
    s.add_argument("lesson", nargs="*")
    s.add_argument("--jobs", "-j", type=int, default=1, help="parallel grading processes")
    s.add_argument("--force", action="store_true", help="regrade submissions already graded")
    _limit_args(s)

    s = sub.add_parser("feedback", help="HTML feedback per student and lesson (no hidden tests)")
    s.add_argument("lesson", nargs="*")

    s = sub.add_parser("export", help="grades per student, lesson and test cell, or an LMS import")
    s.add_argument("--format", choices=["csv", "json", "canvas", "moodle"], default="csv",
                   help="csv/json: every grade and cell; canvas/moodle: that LMS's grade-import CSV")
    s.add_argument("--output", type=Path, help="output folder (default: COURSE_DIR/exports)")
    s.add_argument("--roster", type=Path, help="canvas/moodle: the LMS's own gradebook export, to take each "
                   "student's LMS ids from (default: the course ids are used as logins)")

    s = sub.add_parser("report", help="an HTML page per lesson: scores, pass rates, frequent failures")
    s.add_argument("lesson", nargs="*")
    s.add_argument("--output", type=Path, help="output folder (default: COURSE_DIR/reports)")

    s = sub.add_parser("gradescope", help="build a Gradescope autograder zip for one lesson")
    s.add_argument("lesson")
    s.add_argument("--output", type=Path, help="zip path (default: COURSE_DIR/build/gradescope_LESSON.zip)")
    _limit_args(s)

    s = sub.add_parser("demo", help="run the whole workflow on the demo class, compare with expected grades")
    s.add_argument("--jobs", "-j", type=int, default=2, help="parallel grading processes")
    s.add_argument("--output", type=Path, help="demo course folder (default: build/demo_course)")
    return p


def _limit_args(s: argparse.ArgumentParser) -> None:
    d = GradingLimits()
    s.add_argument("--timeout", type=int, default=d.cell_timeout, help="per-cell wall-time limit (s)")
    s.add_argument("--memory-mb", type=int, default=d.memory_mb, help="memory limit per student kernel")
    s.add_argument("--cpu-seconds", type=int, default=d.cpu_seconds, help="CPU-time limit per kernel")


def _limits(args: argparse.Namespace) -> GradingLimits:
    return GradingLimits(cell_timeout=args.timeout, memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds)


def _released(course: Course, names: list[str]) -> list[str]:
    """The named lessons, or by default every lesson released so far (not drafts never handed out)."""
    if names:
        return course.resolve_lessons(names)
    released = [lesson for lesson in course.lessons() if course.sub("release", lesson).is_dir()]
    if not released:
        raise CourseError(f"no lesson has been released in {course.course_dir}: run `course release` first")
    return released


def run(args: argparse.Namespace) -> int:
    creates = args.command == "release"
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(jobs=args.jobs, output=args.output)
    if args.command == "check":
        from .check import check_lessons

        course = Course(args.lessons.resolve(), args.course_dir.resolve())
        return check_lessons(course, course.resolve_lessons(args.lesson), timeout=args.timeout)
    course = open_course(args.lessons, args.course_dir, create=creates)
    if args.command == "release":
        from .release import answers_given, release

        lessons = course.resolve_lessons(args.lesson)
        given = {lesson: answers_given(course, lesson) for lesson in lessons}
        kit = release(course, lessons)
        print(f"released {', '.join(lessons)} into {course.sub('release')}")
        for lesson, earlier in given.items():
            if earlier:
                those = "that lesson's deadline" if len(earlier) == 1 else "those lessons' deadlines"
                print(f"note: {lesson} gives students the answers of {' and '.join(earlier)} to build on: "
                      f"hand it out only after {those}")
        print(f"student kit: {kit[1]}")
        return 0
    if args.command == "collect":
        from .collect import collect

        report = collect(course, args.path, replace=args.replace)
        print(f"imported {len(report.imported)}, replaced {len(report.replaced)}, "
              f"unchanged {len(report.unchanged)}, problems {len(report.problems)}, "
              f"skipped {len(report.skipped)}")
        for label in report.imported + report.replaced:
            print(f"  + {label}")
        for name, warning in report.warnings:
            print(f"  ? {name}: {warning}")
        for name, problem in report.problems:
            print(f"  ! {name}: {problem}")
        for name, why in report.skipped:
            print(f"  - {name}: skipped, {why}")
        return 0
    if args.command == "autograde":
        from .autograde import autograde, summary_table

        results = autograde(course, _released(course, args.lesson), jobs=args.jobs,
                            limits=_limits(args), force=args.force,
                            say=lambda line: print(f"course: {line}", file=sys.stderr))
        from .export import gradebook_rows

        waiting = {(r["student"], r["lesson"]): [c["cell"] for c in r["cells"] if c["needs_manual_grade"]]
                   for r in gradebook_rows(course)}
        print(summary_table(results, waiting))
        failed = [r for r in results if not r.ok]
        if failed:
            print(f"course: the grader failed on {len(failed)} submission(s); logs in "
                  f"{course.sub('.graded')}", file=sys.stderr)
            return 1
        return 0
    if args.command == "feedback":
        from .feedback import feedback

        report = feedback(course, _released(course, args.lesson))
        print(f"wrote {len(report.written)} feedback files under {course.sub('feedback')}")
        for student, lesson, why in report.withheld:
            print(f"  ! feedback for {student}/{lesson} withheld: {why}")
        return 0
    if args.command == "export":
        from .export import export

        if args.roster and args.format not in ("canvas", "moodle"):
            raise CourseError("--roster is for --format canvas or moodle: add one of them, or drop --roster")
        for path in export(course, fmt=args.format, output=args.output, roster=args.roster):
            print(f"wrote {path}")
        if args.format in ("canvas", "moodle"):
            from .export import gradebook_rows
            from .lms import left_empty

            for line in left_empty(gradebook_rows(course)):
                print(f"  ! {line}" + ("" if line.endswith("needs manual grading") else " (left empty)"))
        return 0
    if args.command == "report":
        from .report import write_reports

        for page in write_reports(course, _released(course, args.lesson), output=args.output):
            print(f"wrote {page}")
        return 0
    if args.command == "gradescope":
        from .gradescope import build_autograder, lesson_plan

        lesson = course.resolve_lessons([args.lesson])[0]
        out = build_autograder(course, lesson, output=args.output, limits=_limits(args))
        print(f"wrote {out}")
        written = lesson_plan(course.notebooks(lesson)[0]).written
        if written:
            print("written answers to grade by hand (one manually graded Gradescope question each): "
                  + ", ".join(f"{gid} ({points:g} points)" for gid, points in written))
        return 0
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except CourseError as exc:
        print(f"course: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("course: interrupted; grades recorded so far are kept, run the command again to finish",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
