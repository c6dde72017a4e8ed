"""`course check`: the instructor's CI gate for the lessons themselves.

For every source notebook: executed with its reference solutions, every autograded test cell must get
full marks; its blank student version (what `release` hands out) must execute to the end and get zero on
every autograded test cell. A grader that passes blank work, or fails the reference, is a broken grader.
Uses `notebooks.py` (execute in a fresh kernel, nbgrader's scoring rule) and needs no course folder.
"""

from __future__ import annotations

from .layout import Course


def check_notebook(path, *, timeout: int) -> tuple[str, str, list[str]]:  # noqa: ANN001
    """('solution a/b', 'blank c/b', problems) for one source notebook."""
    from . import notebooks

    problems: list[str] = []
    source = notebooks.load(path)
    try:
        full = notebooks.grade(notebooks.execute(source, timeout=timeout, cwd=path.parent))
    except Exception as exc:  # noqa: BLE001 - any crash is a failed check, reported in one line
        return "crashed", "-", [f"solution run crashed: {type(exc).__name__}: {exc}"]
    if not full:
        problems.append("no autograded test cells")
    problems += [f"solution loses points in {gid}: {s.score:g}/{s.max_score:g}"
                 + (f" ({s.error})" if s.error else "") for gid, s in full.items() if s.score != s.max_score]
    try:
        blank = notebooks.grade(notebooks.execute(notebooks.student_version(source), timeout=timeout,
                                                  cwd=path.parent))
    except Exception as exc:  # noqa: BLE001
        return _total(full), "crashed", problems + [f"blank run crashed: {type(exc).__name__}: {exc}"]
    problems += [f"blank version scores in {gid}: {s.score:g}/{s.max_score:g}"
                 for gid, s in blank.items() if s.score != 0]
    if set(blank) != set(full):
        problems.append(f"test cells differ between runs: {sorted(set(full) ^ set(blank))}")
    return _total(full), _total(blank), problems


def _total(scores: dict) -> str:
    return f"{sum(s.score for s in scores.values()):g}/{sum(s.max_score for s in scores.values()):g}"


def check_lessons(course: Course, lessons: list[str], *, timeout: int = 300) -> int:
    """Print a table per lesson; return 0 when every notebook passes, 1 otherwise."""
    failed = 0
    print(f"{'lesson':28} {'notebook':28} {'solution':>10} {'blank':>10}  result")
    for lesson in lessons:
        for path in course.notebooks(lesson):
            solution, blank, problems = check_notebook(path, timeout=timeout)
            print(f"{lesson:28} {path.stem:28} {solution:>10} {blank:>10}  {'FAIL' if problems else 'ok'}")
            for problem in problems:
                print(f"    - {problem}")
            failed += bool(problems)
    print(f"{failed} notebook(s) failed" if failed else "all notebooks pass: full marks solved, zero blank")
    return 1 if failed else 0
