"""`course gradescope LESSON`: a Gradescope autograder zip that runs the same pipeline as `course autograde`.

Zip layout (Gradescope unzips it into /autograder/source):
  setup.sh          installs Python 3.11 and this project (nbgrader, the checks, the `course` package)
  run_autograder    runs `python -m autograder.course.gradescope` (this module) on /autograder/submission,
                    and writes a results.json itself if Python cannot even start
  project/          pyproject.toml, autograder/ (with hidden checks), reference_impl/, lessons/LESSON/
  limits.json       the grading limits

Every run writes a valid results.json, because Gradescope shows a student nothing but "autograder failed"
when there is none:
- A bad upload (no .ipynb, a file that is not a readable notebook, one whose nbgrader metadata was
  stripped, another lesson's notebook) is answered before any kernel starts: score 0 and an `output`
  saying exactly which file to upload instead.
- A failure of the grader itself gives score 0 and an `output` that says so, without a traceback; the
  details go to stdout, which only instructors see (`stdout_visibility: hidden`).
Otherwise the runner builds a throw-away course folder, releases the lesson, places the submission,
autogrades it with the same safe settings, sandbox and kernel-death recovery, and reports the test cells
in notebook order. A cell holding hidden tests is two entries: its visible checks (the ones the student
can run) at once, with 0 points as information, and the whole cell, which is what nbgrader scores and
carries all the cell's points, `after_published`. To know whether the visible part passed, the runner's
copy of the source notebook gets, just before the cell's last `### BEGIN HIDDEN TESTS` (after its last
visible check), a line that prints a random token. Test cells are judged in the grader, which writes
their outputs, so student code cannot print it into a test cell.
Written (hand-graded) answers are not tests and are not in the score: the instructor grades them as a
separate, manually graded Gradescope question, and the `output` names them.
All paths can be moved with COURSE_GRADESCOPE_ROOT (default /autograder), so a test can run
`run_autograder` on this machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import autograder

from .config import GradingLimits
from .layout import Course, open_course

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
MARK_PREFIX = "visible checks done: "
IGNORED_DIRS = {"__MACOSX", ".ipynb_checkpoints"}
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
GRADER_FAILED = ("The autograder failed on its own side while grading this submission; this is not a "
                 "verdict on your code. Tell your instructor, who can see the details in the autograder "
                 "log and regrade it; resubmitting the same notebook later may also work.")

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v python3.11 >/dev/null; then
    apt-get update
    apt-get install -y python3.11 python3.11-venv
fi
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet /autograder/source/project
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission; COURSE_GRADESCOPE_ROOT and COURSE_PYTHON allow a local run.
# The Python runner always writes results.json; if Python itself cannot run, this script writes one that
# says the grader failed, so the student never sees a bare "autograder failed".
set -uo pipefail
ROOT="${COURSE_GRADESCOPE_ROOT:-/autograder}"
PY="${COURSE_PYTHON:-/autograder/venv/bin/python}"
RESULTS="$ROOT/results/results.json"
export COURSE_GRADESCOPE_ROOT="$ROOT"
export PYTHONPATH="$ROOT/source/project${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
"$PY" -m autograder.course.gradescope "$@"
status=$?
if [ ! -s "$RESULTS" ]; then
    echo "the grader ($PY) exited with status $status and wrote no results.json"
    cat > "$RESULTS" <<'JSON'
@FALLBACK@
JSON
fi
exit 0
""".replace("@FALLBACK@", json.dumps({"score": 0.0, "execution_time": 0, "output": GRADER_FAILED,
                                     "visibility": "visible", "stdout_visibility": "hidden", "tests": []}))


def build_autograder(course: Course, lesson: str, *, output: Path | None = None,
                     limits: GradingLimits | None = None) -> Path:
    """Write the zip for `lesson`; returns its path."""
    package = Path(autograder.__file__).parent
    repo = package.parent
    out = (output or course.sub("build", f"gradescope_{lesson}.zip")).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    skip = {"__pycache__", ".ipynb_checkpoints"}

    def add_tree(zf: zipfile.ZipFile, src: Path, arc: str) -> None:
        for path in sorted(src.rglob("*")):
            if path.is_file() and not skip & set(path.parts) and path.suffix != ".pyc":
                zf.write(path, f"{arc}/{path.relative_to(src)}")

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            zf.writestr(info, text)
        zf.writestr("limits.json", json.dumps(asdict(limits or GradingLimits())))
        zf.write(repo / "pyproject.toml", "project/pyproject.toml")
        if (repo / "README.md").exists():
            zf.write(repo / "README.md", "project/README.md")
        add_tree(zf, package, "project/autograder")
        if (repo / "reference_impl").is_dir():
            add_tree(zf, repo / "reference_impl", "project/reference_impl")
        add_tree(zf, course.lessons_dir / lesson, f"project/lessons/{lesson}")
    return out


# ---------------------------------------------------------------- what the lesson asks for

@dataclass(frozen=True)
class GradedCell:
    grade_id: str
    points: float
    has_hidden: bool


@dataclass(frozen=True)
class LessonPlan:
    """What the runner needs to know of the lesson, read from the instructor's source notebook."""

    lesson: str
    notebook: str                          # file name students submit, e.g. finite_differences.ipynb
    tests: list[GradedCell]                # autograded test cells, in notebook order
    written: list[tuple[str, float]]       # hand-graded answers (grade_id, points), in notebook order
    answers: frozenset[str]                # grade_ids of every answer cell
    tested_by: dict[str, str] = field(default_factory=dict)   # code answer -> the test cell after it


def lesson_plan(source: Path) -> LessonPlan:
    """Read the test cells, written answers and answer ids of a lesson's source notebook."""
    from .submission import nbgrader_meta, read_notebook

    nb = read_notebook(source)
    tests, written, answers, untested, tested_by = [], [], set(), [], {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if not gid:
            continue
        if meta.get("solution"):
            answers.add(gid)
            if meta.get("grade"):
                written.append((gid, float(meta.get("points", 0))))
            elif cell.cell_type == "code":
                untested.append(gid)
        elif meta.get("grade"):
            tests.append(GradedCell(gid, float(meta.get("points", 0)), BEGIN_HIDDEN in cell.source))
            tested_by.update((answer, gid) for answer in untested)
            untested.clear()
    return LessonPlan(source.parent.name, source.name, tests, written, frozenset(answers), tested_by)


# ---------------------------------------------------------------- which file to grade

class BadUpload(Exception):
    """The upload cannot be graded; the message tells the student exactly what to upload instead."""


def _problem(path: Path, plan: LessonPlan) -> str | None:
    """Why this file cannot be graded as the lesson's notebook, or None when it can."""
    from .submission import UnreadableNotebook, grade_ids, read_notebook

    try:
        nb = read_notebook(path)
    except UnreadableNotebook as exc:
        reason = str(exc).split(": ask the student")[0].split("; ask the student")[0]
        return (f"{path.name} is not a notebook the grader can read ({reason}). Open your notebook in "
                f"Jupyter, save it, download it (File > Download) and upload that {plan.notebook}.")
    ids = grade_ids(nb)
    if not ids:
        return (f"{path.name} has lost the cell information (nbgrader metadata) by which the grader finds "
                "your answers; some editors and 'clear metadata' tools remove it. Download a fresh copy "
                f"of {plan.notebook} from your course, paste your answers into its answer cells, and "
                "upload that file.")
    if not ids & plan.answers:
        return (f"{path.name} is not the notebook of lesson {plan.lesson}: none of its answer cells "
                f"belongs to this lesson (another lesson's notebook?). Upload your {plan.notebook} of "
                f"lesson {plan.lesson}.")
    return None


def choose_submission(folder: Path, plan: LessonPlan) -> tuple[Path, str]:
    """The uploaded notebook to grade and a note for the student ('' when it has the expected name).

    A file with the lesson's notebook name comes first; a renamed one is recognised by its cells. Raises
    BadUpload, naming every file and what is wrong with it, when none can be graded.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not IGNORED_DIRS & set(p.parts))
    notebooks = sorted((p for p in files if p.suffix == ".ipynb"), key=lambda p: p.name != plan.notebook)
    if not notebooks:
        held = f" (it holds {', '.join(p.name for p in files[:5])})" if files else ""
        raise BadUpload(f"No Jupyter notebook (.ipynb file) was found in your upload{held}. Upload "
                        f"{plan.notebook} itself, as Jupyter downloads it (File > Download), not a PDF, "
                        "HTML page or screenshot of it.")
    problems = []
    for path in notebooks:
        problem = _problem(path, plan)
        if problem is None:
            renamed = path.name != plan.notebook
            return path, (f"Graded {path.name} as {plan.notebook} (recognised by its cells)." if renamed
                          else "")
        problems.append(problem)
    raise BadUpload(" ".join(problems))


# ---------------------------------------------------------------- observing the visible part

def mark_visible_parts(notebook: Path, token: str) -> int:
    """Insert, in each test cell with hidden tests, a line printing `token` just before its last hidden
    block (same indentation), so the graded notebook shows which cells ran their visible checks to the
    end. Edits the runner's throw-away copy of the source; returns how many cells were marked."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    marked = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or BEGIN_HIDDEN not in cell.source:
            continue
        lines = cell.source.split("\n")
        at = max(i for i, line in enumerate(lines) if BEGIN_HIDDEN in line)
        indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
        lines.insert(at, f'{indent}print("{MARK_PREFIX}{token}")')
        cell.source = "\n".join(lines)
        marked += 1
    nbformat.write(nb, notebook)
    return marked


def visible_passed(graded: Any, token: str) -> set[str]:
    """grade_ids of the graded notebook's cells whose outputs show the token (visible checks all ran)."""
    from .submission import nbgrader_meta

    seen = set()
    for cell in graded.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and f"{MARK_PREFIX}{token}" in out.get("text", ""):
                seen.add(nbgrader_meta(cell).get("grade_id"))
    return seen


def cell_messages(graded: Any) -> dict[str, str]:
    """grade_id -> one-line message of each test cell that failed in the graded notebook (hidden-test
    source and tracebacks removed, as in the feedback)."""
    from .feedback import hide_hidden_tests
    from .submission import nbgrader_meta

    out = {}
    for cell in hide_hidden_tests(graded).cells:
        gid = nbgrader_meta(cell).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        stderr = [o for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"]
        if gid and errors:
            out[gid] = f"{errors[-1].ename}: {errors[-1].evalue}"
        elif gid and stderr:
            out[gid] = "The test wrote to stderr, which fails it: " + stderr[-1].text.strip()[:300]
    return out


def blame_skipped_answers(plan: LessonPlan, events: list[dict], messages: dict[str, str]) -> dict[str, str]:
    """The test cells' messages, where an answer cell before a test killed or hung the kernel saying so
    first: the test itself only sees that answer undefined, which alone would mislead."""
    out = dict(messages)
    for event in events:
        test = plan.tested_by.get(event["cell"])
        if test:
            then = f" This test then failed with {out[test]}" if out.get(test) else ""
            out[test] = (f"Your cell {event['cell']} was skipped so the rest of the notebook could be "
                         f"graded: {event['cause']}.{then}")
    return out


# ---------------------------------------------------------------- results.json

def _test(name: str, score: float, max_score: float, passed: bool, output: str, visibility: str) -> dict:
    return {"name": name, "score": float(score), "max_score": float(max_score),
            "status": "passed" if passed else "failed", "output": output, "visibility": visibility}


def results(plan: LessonPlan, scores: dict[str, float], visible_ok: set[str], messages: dict[str, str],
            notes: list[str], seconds: float) -> dict:
    """results.json for a graded submission: test cells in notebook order, hidden parts after publication.

    The top-level output never states the score: it is visible at once and would give away the hidden
    checks' verdicts before grades are published.
    """
    tests = []
    for cell in plan.tests:
        score = scores.get(cell.grade_id, 0.0)
        whole = score >= cell.points
        failure = messages.get(cell.grade_id, "did not earn its points")
        if not cell.has_hidden:
            tests.append(_test(cell.grade_id, score, cell.points, whole, "" if whole else failure, "visible"))
            continue
        seen = whole or cell.grade_id in visible_ok
        tests.append(_test(
            f"{cell.grade_id}: visible checks", 0.0, 0.0, seen,
            (f"The checks you can run in your notebook pass. This exercise's {cell.points:g} point(s) "
             "also depend on hidden checks, shown when grades are published." if seen else failure),
            "visible"))
        tests.append(_test(
            f"{cell.grade_id}: all checks (hidden ones included)", score, cell.points, whole,
            "All checks pass." if whole else failure, "after_published"))
    lines = [n for n in notes if n]
    if plan.written:
        listed = ", ".join(f"{gid} ({points:g} point(s))" for gid, points in plan.written)
        lines.append(f"Written answers are graded by hand, separately, and are not part of this "
                     f"autograder's score: {listed}.")
    lines.append("Each exercise's visible checks are reported now; its points come from all its checks, "
                 "hidden ones included, reported when grades are published.")
    return {"score": float(sum(t["score"] for t in tests)), "execution_time": round(seconds),
            "output": "\n".join(lines), "visibility": "visible", "stdout_visibility": "hidden",
            "tests": tests}


def failure(output: str, seconds: float) -> dict:
    """results.json for a submission that was not graded: score 0 and what to do, no tests."""
    return {"score": 0.0, "execution_time": round(seconds), "output": output, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": []}


class GraderFailed(Exception):
    """The grader itself failed on a submission (not the student's code)."""


def run(root: Path) -> dict:
    """Grade the submission under `root` and return the results.json content."""
    import nbformat

    from .autograde import autograde
    from .release import generate

    start = time.monotonic()
    project = root / "source" / "project"
    limits = GradingLimits(**json.loads((root / "source" / "limits.json").read_text()))
    lesson = sorted(p.name for p in (project / "lessons").iterdir() if p.is_dir())[0]
    source = sorted((project / "lessons" / lesson).glob("*.ipynb"))[0]
    plan = lesson_plan(source)
    try:
        found, note = choose_submission(root / "submission", plan)
    except BadUpload as exc:
        print(f"bad upload, not graded: {exc}")
        return failure(str(exc), time.monotonic() - start)
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        lessons = Path(tmp, "lessons")
        shutil.copytree(source.parent, lessons / lesson)
        mark_visible_parts(lessons / lesson / source.name, token)
        course = open_course(lessons, Path(tmp, "course"), create=True)
        generate(course, lesson)
        dest = course.sub("submitted", "student", lesson, source.name)
        dest.parent.mkdir(parents=True)
        shutil.copy(found, dest)
        [result] = autograde(course, [lesson], jobs=1, limits=limits, progress=False)
        if not result.ok:
            raise GraderFailed(result.error)
        graded = nbformat.read(course.sub("autograded", "student", lesson, source.name), as_version=4)
    scores = {c["cell"]: float(c["auto_score"] or 0.0) for c in result.cells if c["kind"] == "grade"}
    notes = [note, *result.notes, *(f"{e['cell']}: {e['cause']}" for e in result.events)]
    seen = visible_passed(graded, token)
    print("visible checks ran to the end in: "
          + ", ".join(c.grade_id for c in plan.tests if c.grade_id in seen))
    messages = blame_skipped_answers(plan, result.events, cell_messages(graded))
    return results(plan, scores, seen, messages, notes, time.monotonic() - start)


def main() -> None:
    """Write results.json whatever happens; the details of a grader failure go to stdout only."""
    root = Path(os.environ.get("COURSE_GRADESCOPE_ROOT", "/autograder"))
    start = time.monotonic()
    try:
        results_ = run(root)
    except Exception:  # noqa: BLE001 - any failure of the grader must still produce a results.json
        print("the grader failed:", file=sys.stdout)
        traceback.print_exc(file=sys.stdout)
        results_ = failure(GRADER_FAILED, time.monotonic() - start)
    path = root / "results" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results_, indent=1))
    tmp.replace(path)
    print(f"score {results_['score']:g} written to {path}")


if __name__ == "__main__":
    main()
