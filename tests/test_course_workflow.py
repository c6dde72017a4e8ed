"""The `course` command on a tiny fixture course: errors, collect, autograde robustness, resume, feedback,
export and the Gradescope runner. The fixture has one lesson with two exercises so each run takes seconds;
the demo class on the real lessons is tested in test_course_demo.py."""

from __future__ import annotations

import html
import json
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.course.cli import main
from autograder.course.notebooks import cell_grade_id

pytestmark = pytest.mark.slow
COURSE = str(Path(sys.executable).parent / "course")
FAST = ["--timeout", "5", "--memory-mb", "1024", "--cpu-seconds", "60"]


def _meta(gid: str, *, grade: bool = False, solution: bool = False, points: int | None = None) -> dict:
    m = {"schema_version": 3, "grade": grade, "solution": solution, "locked": grade, "grade_id": gid}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def make_course(root: Path) -> None:
    """lessons/01_toy/toy.ipynb: square (test 2 points, with a hidden part) and cube (test 1 point)."""
    lesson = root / "lessons" / "01_toy"
    lesson.mkdir(parents=True)
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Toy lesson"),
            new_code_cell(
                "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                metadata=_meta("square", solution=True),
            ),
            new_code_cell(
                "assert square(3) == 9, 'square(3) should be 9'\n### BEGIN HIDDEN TESTS\n"
                "assert square(-4) == 16, 'square of a negative number'\n### END HIDDEN TESTS",
                metadata=_meta("test_square", grade=True, points=2),
            ),
            new_code_cell(
                "def cube(x):\n    ### BEGIN SOLUTION\n    return x ** 3\n    ### END SOLUTION",
                metadata=_meta("cube", solution=True),
            ),
            new_code_cell(
                "assert cube(2) == 8, 'cube(2) should be 8'",
                metadata=_meta("test_cube", grade=True, points=1),
            ),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lesson / "toy.ipynb")


GOOD = {"square": "def square(x):\n    return x ** 2", "cube": "def cube(x):\n    return x * x * x"}
CASES = {  # student -> (answers, tamper, expected {test cell: score})
    "good": (GOOD, None, {"test_square": 2, "test_cube": 1}),
    "blank": ({}, None, {"test_square": 0, "test_cube": 0}),
    "exits": ({**GOOD, "square": "import os\nos._exit(3)"}, None, {"test_square": 0, "test_cube": 1}),
    "segv": (
        {**GOOD, "cube": "import ctypes\ndef cube(x):\n    ctypes.string_at(0)"},
        None,
        {"test_square": 2, "test_cube": 0},
    ),
    "stubborn": (
        {
            **GOOD,
            "square": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        },
        None,
        {"test_square": 0, "test_cube": 1},
    ),
    "warns": (
        {
            **GOOD,
            "square": "import warnings\ndef square(x):\n"
            "    warnings.showwarning('big', RuntimeWarning, 'sq.py', 2)\n    return x * x",
        },
        None,
        {"test_square": 2, "test_cube": 1},
    ),
    "stderr": (
        {
            **GOOD,
            "square": "import sys\ndef square(x):\n    print('oops', file=sys.stderr)\n    return x * x",
        },
        None,
        # a right answer that also writes to stderr keeps its points: the test cell is judged in the grader
        # and the student's output while it is probed is not the cell's output
        {"test_square": 2, "test_cube": 1},
    ),
    "hog": (
        {
            **GOOD,
            "cube": "def cube(x):\n    keep = []\n    while True:\n        keep.append(bytearray(2**26))",
        },
        None,
        {"test_square": 2, "test_cube": 0},
    ),
    "deleter": (
        {**GOOD, "square": "def square(x):\n    return x * abs(x)"},  # fails the hidden test only
        "delete",
        {"test_square": 0, "test_cube": 1},
    ),
    "editor": (
        {**GOOD, "square": "def square(x):\n    return 0"},
        "edit",
        {"test_square": 0, "test_cube": 1},
    ),
}


def write_submission(release: Path, inbox: Path, student: str, name: str | None = None) -> Path:
    answers, tamper, _ = CASES[student]
    nb = nbformat.read(release, as_version=4)
    for cell in list(nb.cells):
        gid = cell_grade_id(cell)
        if gid in answers:
            cell.source = answers[gid]
        if gid == "test_square" and tamper == "delete":
            nb.cells.remove(cell)
        if gid == "test_square" and tamper == "edit":
            cell.source = "pass"
            cell.metadata.nbgrader.points = 50
    path = inbox / (name or f"{student}_toy.ipynb")
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["release"]) == 0
    return tmp_path


def released(root: Path) -> Path:
    return root / "course_data" / "release" / "01_toy" / "toy.ipynb"


def html_text(path: Path) -> str:
    """What a reader sees in an HTML page: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def grades(root: Path) -> dict[tuple[str, str], float]:
    assert main(["export", "--format", "json"]) == 0
    data = json.loads((root / "course_data" / "exports" / "grades.json").read_text())
    return {(row["student"], c["cell"]): c["score"] for row in data["grades"] for c in row["cells"]}


# ------------------------------------------------------------------------------------------ errors


def test_errors_are_one_line_with_a_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["autograde"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no lessons folder" in err and "--lessons" in err
    make_course(tmp_path)
    assert main(["autograde"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err and "course release" in err
    assert main(["release", "07"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown lesson '07'" in err and "01_toy" in err and "Traceback" not in err


def test_gradebook_of_another_course_is_refused(course: Path, tmp_path_factory, capsys) -> None:
    other = tmp_path_factory.mktemp("other")
    make_course(other)
    assert main(["--lessons", str(other / "lessons"), "--course-dir", str(other / "cd"), "release"]) == 0
    # the other course's gradebook copied into this course's folder
    (course / "course_data" / "gradebook.db").write_bytes((other / "cd" / "gradebook.db").read_bytes())
    capsys.readouterr()
    assert main(["autograde"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is the gradebook of course" in err and "--course-dir" in err and err.count("\n") == 0


def test_export_and_report_before_any_grading_say_so(course: Path, capsys) -> None:
    for command in (["export"], ["export", "--format", "canvas"], ["report"]):
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "course autograde" in err, err
    exports = course / "course_data" / "exports"
    assert not exports.exists() or not any(exports.iterdir())
    assert main(["export", "--roster", "x.csv"]) == 2
    assert "--format canvas or moodle" in capsys.readouterr().err


def test_formgrader_pages_load_mathjax_from_the_server_not_a_cdn(course: Path) -> None:
    """nbgrader's formgrader renders a submission with nbconvert's 'formgrade' template, configured by the
    course folder's nbgrader_config.py: its MathJax must come from jupyter-server-mathjax's static path."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course / "course_data")).load_config()
    config.HTMLExporter.template_name = "formgrade"
    page, _ = HTMLExporter(config=config).from_notebook_node(
        nbformat.read(released(course), as_version=4), resources={"base_url": "", "index": 0, "total": 1,
                                                                    "assignment_id": "01_toy"})
    assert "cdnjs" not in page and "/static/jupyter_server_mathjax/MathJax.js" in page
    assert (course / "course_data" / "exchange").is_dir()  # nbgrader's screens find an exchange folder
    assert handlers.template_path in config.HTMLExporter.extra_template_basedirs


def test_release_has_no_solution_or_hidden_test(course: Path) -> None:
    text = released(course).read_text()
    assert "x * x" not in text and "x ** 3" not in text and "square(-4)" not in text
    assert "HIDDEN" not in text and "BEGIN SOLUTION" not in text
    with zipfile.ZipFile(course / "course_data" / "build" / "student_kit.zip") as zf:
        names = zf.namelist()
    assert "student_kit/notebooks/01_toy/toy.ipynb" in names and "student_kit/autograder/checks.py" in names
    assert not [n for n in names if "hidden" in n or "reference_impl" in n or "/course/" in n]


# ------------------------------------------------------------------------------------------ collect


def test_collect_keeps_bad_files_and_never_overwrites(course: Path, capsys) -> None:
    inbox = course / "inbox"
    inbox.mkdir()
    write_submission(released(course), inbox, "good")
    write_submission(released(course), inbox, "blank", name="blank_toy (2).ipynb")  # renamed file
    (inbox / "broken_toy.ipynb").write_text('{"cells": [')
    (inbox / "essay_toy.pdf").write_bytes(b"%PDF-1.4")
    assert main(["collect", str(inbox)]) == 0
    out = capsys.readouterr().out
    assert "broken_toy.ipynb: invalid JSON" in out and "essay_toy.pdf: not a notebook" in out
    submitted = course / "course_data" / "submitted"
    assert (submitted / "good" / "01_toy" / "toy.ipynb").exists()
    assert (submitted / "blank" / "01_toy" / "toy.ipynb").exists()  # recognised by its cells
    rejected = course / "course_data" / "rejected"
    assert (rejected / "broken_toy.ipynb").read_text() == '{"cells": ['  # kept byte for byte
    assert (rejected / "essay_toy.pdf").exists()

    # re-running changes nothing
    before = (submitted / "good" / "01_toy" / "toy.ipynb").read_bytes()
    assert main(["collect", str(inbox)]) == 0
    assert "imported 0, replaced 0, unchanged 2" in capsys.readouterr().out

    # a different version is not taken silently...
    second = course / "inbox2"
    second.mkdir()
    write_submission(released(course), second, "blank", name="good_toy.ipynb")
    assert main(["collect", str(second)]) == 0
    assert "differs from the already collected good/01_toy" in capsys.readouterr().out
    assert (submitted / "good" / "01_toy" / "toy.ipynb").read_bytes() == before
    # ...but with --replace, and the old one is kept
    assert main(["collect", str(second), "--replace"]) == 0
    assert (submitted / "good" / "01_toy" / "toy.ipynb").read_bytes() != before
    assert [p.read_bytes() for p in (course / "course_data" / "replaced").rglob("toy.ipynb")] == [before]

    # a zip from the LMS works the same way
    archive = course / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(inbox / "good_toy.ipynb", "lms/good_toy.ipynb")
    assert main(["collect", str(archive)]) == 0
    assert "differs from the already collected good/01_toy" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ autograde


def test_autograde_survives_every_failure_mode(course: Path, capsys) -> None:
    inbox = course / "inbox"
    inbox.mkdir()
    for student in CASES:
        write_submission(released(course), inbox, student)
    assert main(["collect", str(inbox)]) == 0
    assert main(["autograde", "--jobs", "2", *FAST]) == 0  # students failing is not a grader failure
    out = capsys.readouterr().out
    assert "status 3" in out and "segmentation fault" in out and "5 s time limit" in out
    got = grades(course)
    expected = {(s, cell): score for s, (_, _, exp) in CASES.items() for cell, score in exp.items()}
    assert got == expected

    # feedback: never the hidden test, and a hidden failure shows only its message
    assert main(["feedback"]) == 0
    pages = list((course / "course_data" / "feedback").rglob("*.html"))
    assert len(pages) == len(CASES)
    for page in pages:
        text = page.read_text()
        assert "square(-4)" not in text and "HIDDEN" not in text
    page = html_text(course / "course_data" / "feedback" / "deleter" / "01_toy" / "toy.html")
    assert "AssertionError: square of a negative number" in page
    assert "most recent call last" not in page and "---->" not in page

    # export: per lesson and per cell
    assert main(["export"]) == 0
    by_cell = (course / "course_data" / "exports" / "grades_by_cell.csv").read_text().splitlines()
    assert by_cell[0] == "student,lesson,notebook,cell,kind,score,max_score,needs_manual_grade"
    assert len(by_cell) == 1 + 2 * len(CASES)
    by_lesson = (course / "course_data" / "exports" / "grades.csv").read_text()
    assert "exits,01_toy,1.0,3.0,graded,square: the kernel process exited with status 3" in by_lesson

    # grading again keeps everything; --force regrades to the same grades
    assert main(["autograde", *FAST]) == 0
    assert capsys.readouterr().out.count("already graded") == len(CASES)
    assert main(["autograde", "--force", "--jobs", "2", *FAST]) == 0
    assert grades(course) == expected


def test_out_of_reruns_still_grades_what_ran(course: Path) -> None:
    from autograder.course.autograde import autograde
    from autograder.course.config import GradingLimits
    from autograder.course.layout import open_course

    inbox = course / "inbox"
    inbox.mkdir()
    write_submission(released(course), inbox, "segv")     # cube's test kills the kernel
    assert main(["collect", str(inbox)]) == 0
    limits = GradingLimits(cell_timeout=5, memory_mb=1024, cpu_seconds=60, max_attempts=0)
    [result] = autograde(open_course(Path("lessons"), Path("course_data")), ["01_toy"], limits=limits,
                         progress=False)
    assert result.ok                                      # the student's crash is not a grader failure
    assert [e["cell"] for e in result.events] == ["test_cube", "rest of notebook"]
    assert grades(course) == {("segv", "test_square"): 2.0, ("segv", "test_cube"): 0.0}


def test_interrupted_autograde_resumes(course: Path) -> None:
    inbox = course / "inbox"
    inbox.mkdir()
    students = ["good", "blank", "deleter", "editor"]
    for student in students:
        write_submission(released(course), inbox, student)
    assert main(["collect", str(inbox)]) == 0
    records = course / "course_data" / ".graded"
    proc = subprocess.Popen(
        [COURSE, "autograde", "--jobs", "1", *FAST],
        cwd=course,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(records.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the command again to finish" in err
    done = {p.name: p.read_text() for p in records.glob("*.json")}
    assert 1 <= len(done) < len(students)

    result = subprocess.run(
        [COURSE, "autograde", "--jobs", "2", *FAST], cwd=course, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already graded") == len(done)
    assert {p.name: p.read_text() for p in records.glob("*.json") if p.name in done} == done
    got = grades(course)
    assert got == {(s, cell): score for s in students for cell, score in CASES[s][2].items()}


# ------------------------------------------------------------------------------------------ gradescope


def test_check_passes_a_good_lesson_and_fails_a_broken_one(tmp_path: Path, monkeypatch, capsys) -> None:
    make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "01_toy" in out and "3/3" in out and "0/3" in out and "all notebooks pass" in out
    source = tmp_path / "lessons" / "01_toy" / "toy.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("x * x", "x + x")     # a wrong reference solution
    nb.cells[4].source = "pass"                                            # a test that cannot fail
    nbformat.write(nb, source)
    assert main(["check", "01"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "blank version scores in test_cube" in out
    assert "solution loses points in test_square: 0/2" in out
