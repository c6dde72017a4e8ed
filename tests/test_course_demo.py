"""End to end on the demo class (examples/demo_class): `course demo` must reproduce every expected grade,
and its outputs are checked here independently: feedback without hidden-test source, the exports, the
class report, the LMS files, math in feedback read in a real browser, and no submitted file lost. Takes a
few minutes."""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course.demo import DEMO_DIR, REPO, expected_scores
from autograder.course.feedback import hidden_lines
from autograder.course.layout import open_course

pytestmark = pytest.mark.slow
MANIFEST = json.loads((DEMO_DIR / "class.json").read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "course"
    run = subprocess.run([str(Path(sys.executable).parent / "course"), "demo", "--jobs", "2", "--output",
                          str(out)], cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "DEMO OK" in run.stdout
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_grade_matches_the_manifest(demo: Path) -> None:
    course = open_course(REPO / "lessons", demo)
    rows = json.loads((demo / "exports" / "grades.json").read_text())["grades"]
    got = {(r["student"], r["lesson"]): r for r in rows}
    for recipe in MANIFEST["submissions"]:
        key = (recipe["student"], recipe["lesson"])
        if "rejected" in recipe:  # nothing was collected, so the gradebook never saw this submission
            assert key not in got or got[key]["status"] == "missing", key
            continue
        cells = {c["cell"]: ("manual" if c["needs_manual_grade"] else c["score"]) for c in got[key]["cells"]}
        assert cells == expected_scores(course, recipe), key


def test_feedback_never_shows_hidden_tests(demo: Path) -> None:
    course = open_course(REPO / "lessons", demo)
    pages = sorted((demo / "feedback").rglob("*.html"))
    graded = [r for r in MANIFEST["submissions"] if "rejected" not in r]
    assert len(pages) == len(graded)
    for page in pages:
        lesson = page.parent.name
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        lines = {ln.strip() for ln in text.splitlines()}
        assert not hidden_lines(course, lesson) & lines, page
        assert "autograder.hidden" not in text and "HIDDEN TESTS" not in text, page


def test_exports_have_lessons_and_cells(demo: Path) -> None:
    with (demo / "exports" / "grades.csv").open() as f:
        lessons = list(csv.DictReader(f))
    with (demo / "exports" / "grades_by_cell.csv").open() as f:
        cells = list(csv.DictReader(f))
    students = {r["student"] for r in MANIFEST["submissions"] if "rejected" not in r}
    assert {r["student"] for r in lessons} == students
    assert len(lessons) == len(students) * len(MANIFEST["lessons"])
    for row in lessons:
        mine = [c for c in cells if (c["student"], c["lesson"]) == (row["student"], row["lesson"])]
        auto = sum(float(c["score"]) for c in mine if c["kind"] == "autograded")
        assert abs(auto - float(row["score"])) < 1e-9 or row["status"] == "needs manual grading"
    gus = next(r for r in lessons if (r["student"], r["lesson"]) == ("gus", "01_finite_differences"))
    assert "kernel process exited with status 1" in gus["notes"]


def test_nothing_lost(demo: Path) -> None:
    lms = demo / "lms_export"
    kept = {_digest(p) for p in (demo / "submitted").rglob("*.ipynb")}
    kept |= {_digest(p) for p in (demo / "rejected").rglob("*") if p.is_file()}
    for path in (p for p in lms.rglob("*") if p.is_file()):
        assert _digest(path) in kept, f"{path.name} was neither collected nor kept"


def test_broken_metadata_is_graded_with_a_note(demo: Path) -> None:
    rows = json.loads((demo / "exports" / "grades.json").read_text())["grades"]
    got = {(r["student"], r["lesson"]): r for r in rows}
    for recipe in MANIFEST["submissions"]:
        if "note" in recipe:
            row = got[(recipe["student"], recipe["lesson"])]
            assert row["status"] in ("graded", "needs manual grading") and recipe["note"] in row["notes"]


def test_feedback_math_renders_offline_in_a_real_browser(demo: Path) -> None:
    """Every formula of a feedback page is laid out as MathML by Chromium; no raw `$` is left in its prose
    and nothing is requested from outside the file."""
    from browser import look_at

    page = next((demo / "feedback").glob("alice/01_finite_differences/*.html"))
    seen = look_at(page)
    assert seen.formulas > 50 and seen.empty_formulas == 0
    assert "$" not in seen.prose_text, [ln for ln in seen.prose_text.splitlines() if "$" in ln][:3]
    assert [u for u in seen.requests if not u.startswith(("file:", "data:"))] == []


def test_class_report_shows_the_class(demo: Path) -> None:
    """The report of each lesson: both figures, every test cell in notebook order, the counted failure
    messages, the written answers waiting for hand grading and the grader problems of the demo class."""
    from autograder.course.report import test_cell_order

    course = open_course(REPO / "lessons", demo)
    for lesson in MANIFEST["lessons"]:
        folder = demo / "reports" / lesson
        page = (folder / "report.html").read_text()
        for png in ("score_distribution.png", "pass_rates.png"):
            assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert page.count("data:image/png;base64,") == 2
        order = test_cell_order(course, lesson)
        failing = [c for c in order if f"<h3>{c}: " in page]
        assert failing == sorted(failing, key=order.index) and failing, lesson
        assert "NotDone" in page  # the blank student's cells, counted as one message per cell
    page01 = (demo / "reports" / "01_finite_differences" / "report.html").read_text()
    assert "written_central_vs_forward" in page01  # alice's written answers wait for a grader
    assert "segmentation fault" in page01 or "killed" in page01  # a kernel death is a grader problem


def test_lms_files_name_every_graded_student(demo: Path) -> None:
    graded = {r["student"] for r in MANIFEST["submissions"] if "rejected" not in r}
    with (demo / "exports" / "canvas_grades.csv").open(newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible"
    assert graded <= {row[3] for row in canvas[2:]}
    with (demo / "exports" / "moodle_grades.csv").open(newline="") as f:
        moodle = list(csv.reader(f))
    assert moodle[0][0] == "Username" and graded <= {row[0] for row in moodle[1:]}
