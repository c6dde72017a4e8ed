"""Issue 11 §2-§4 on the tiny fixture course of test_course_workflow: submissions that used to crash the
grader or vanish, grades that used to be lost, and LMS layouts that credited the wrong student.

Most cases run in-process without a kernel (reading and rebuilding notebooks, collect, the lock, a damaged
gradebook); one autograde run grades every malformed submission at once, and a few kernel runs cover what
only the real pipeline shows (a lost or damaged gradebook restored, hand grades kept, SIGKILL, feedback)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from test_course_workflow import COURSE, FAST, GOOD, grades, make_course, released

from autograder.course.autograde import LOCK, RECORDS, exclusive
from autograder.course.cli import main
from autograder.course.collect import collect, id_problem
from autograder.course.layout import CourseError, open_course
from autograder.course.notebooks import cell_grade_id
from autograder.course.submission import BOM, UnreadableNotebook, read_notebook, rebuild

SOURCE = "lessons/01_toy/toy.ipynb"


def _answered(nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    for cell in nb.cells:
        gid = cell_grade_id(cell)
        if gid in answers:
            cell.source = answers[gid]
    return nb


def _release_nb(root: Path) -> nbformat.NotebookNode:
    return nbformat.read(released(root), as_version=4)


def _foreign() -> nbformat.NotebookNode:
    """Another lesson's notebook: its own grade_ids, none of the toy lesson's."""
    meta = {"nbgrader": {"schema_version": 3, "grade": False, "solution": True, "locked": False,
                         "grade_id": "chain_rule"}}
    return new_notebook(cells=[new_code_cell("def chain(x):\n    return x", metadata=meta)])


def _stripped(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        cell.metadata = {}
    return nb


def _retyped(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Test cells re-marked grade=false, answer cells grade=true worth 100 points."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta and meta.get("solution"):
            meta.update(grade=True, points=100)
        elif meta and meta.get("grade"):
            meta.update(grade=False, points=0)
    return nb


def _duplicated_markdown(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Markdown cells carrying a duplicate grade_id (a copied cell keeps its metadata)."""
    meta = {"nbgrader": {"schema_version": 3, "grade": False, "solution": False, "locked": True,
                         "grade_id": "notes"}}
    square = next(c for c in nb.cells if cell_grade_id(c) == "square")
    retyped = json.loads(json.dumps(square.metadata))
    nb.cells[1:1] = [new_markdown_cell("my notes", metadata=meta), new_markdown_cell("more", metadata=meta),
                     new_markdown_cell("def square(x): pass", metadata=retyped)]
    return nb


def _v3_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nbformat.convert(nb, 3), version=3)


# -------------------------------------------------------------- reading and rebuilding (no kernel)


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture course with lessons only (no release: collect and rebuild need no nbgrader run)."""
    make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_read_notebook_bom_v3_and_refusals(toy: Path) -> None:
    nb = nbformat.read(SOURCE, as_version=4)
    path = toy / "sub.ipynb"
    path.write_bytes(BOM + nbformat.writes(nb).encode())
    assert read_notebook(path).cells[1].source == nb.cells[1].source
    path.write_text(_v3_text(nb))
    upgraded = read_notebook(path)
    assert upgraded.nbformat == 4 and upgraded.cells[1].metadata.nbgrader.grade_id == "square"
    path.write_text(json.dumps({"nbformat": 2, "worksheets": []}))
    with pytest.raises(UnreadableNotebook, match="re-save it in current Jupyter"):
        read_notebook(path)
    path.write_text('{"cells": [')
    with pytest.raises(UnreadableNotebook, match="invalid JSON"):
        read_notebook(path)


@pytest.mark.parametrize("tamper, taken, note", [
    (lambda nb: _foreign(), set(), "no answer cell of this lesson was recognised"),
    (_stripped, set(), "no answer cell of this lesson was recognised"),
    (_retyped, {"square", "cube"}, None),
    (_duplicated_markdown, {"square", "cube"}, None),
])
def test_rebuild_takes_only_matching_answer_sources(toy: Path, tamper, taken: set[str],
                                                    note: str | None) -> None:
    release = nbformat.read(SOURCE, as_version=4)
    submitted = tamper(_answered(nbformat.read(SOURCE, as_version=4), {**GOOD, "test_cube": "pass"}))
    rebuilt, notes = rebuild(release, submitted)
    by_id = {c.metadata.nbgrader.grade_id: c for c in rebuilt.cells if "nbgrader" in c.metadata}
    assert {g for g in ("square", "cube") if by_id[g].source == GOOD[g]} == taken
    # tests, points and metadata always come from the release
    assert by_id["test_cube"].source == release.cells[4].source
    assert [c.metadata for c in rebuilt.cells] == [c.metadata for c in release.cells]
    assert (note in notes[0]) if note else notes == []


def test_rebuild_duplicate_answer_ids_take_the_edited_one() -> None:
    release = nbformat.read(Path(__file__).parent.parent / "lessons/01_finite_differences/"
                            "finite_differences.ipynb", as_version=4)
    written = next(c for c in release.cells if c.cell_type == "markdown"
                   and c.metadata.get("nbgrader", {}).get("solution"))
    gid = written.metadata.nbgrader.grade_id
    submitted = json.loads(json.dumps(release))
    copy = json.loads(json.dumps(written))
    copy["source"] = "my own explanation"
    index = next(i for i, c in enumerate(submitted["cells"]) if cell_grade_id(c) == gid)
    submitted["cells"].insert(index + 1, copy)
    rebuilt, notes = rebuild(release, nbformat.from_dict(submitted))
    assert [c.source for c in rebuilt.cells if cell_grade_id(c) == gid] == [
        "my own explanation"]
    assert len(rebuilt.cells) == len(release.cells) and f"{gid}: 2 cells carry" in notes[0]


# -------------------------------------------------------------- collect (no kernel)


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_collect_credits_the_folder_holding_the_file_or_its_name(toy: Path) -> None:
    course = open_course(Path("lessons"), Path("course_data"), create=True)
    good = nbformat.writes(_answered(nbformat.read(SOURCE, as_version=4), GOOD)).encode()
    blank = Path(SOURCE).read_bytes()
    archive = _zip(toy / "lms.zip", {
        "export_2024/alice/toy.ipynb": good,               # wrapper folder, then the student's folder
        "export_2024/bob/toy.ipynb": blank,
        "export_2024/flat/carol_toy.ipynb": good,          # a wrapper holding named files
        "export_2024/flat/dave_toy.ipynb": blank,
        "../../../tmp/x/toy.ipynb": good,                  # path traversal
        "..\\..\\eve_toy.ipynb": good,                     # the same, made on Windows
        "/abs/frank_toy.ipynb": good,
        ".hidden_toy.ipynb": good,                         # dotfiles are listed, never dropped silently
        "__MACOSX/export_2024/._alice_toy.ipynb": b"\0",
        "export_2024/.ipynb_checkpoints/toy-checkpoint.ipynb": good,
        "mixed/toy.ipynb": good,                           # the folder's own file beside another student's
        "mixed/gina_toy.ipynb": blank,
        "Hal Smith/toy.ipynb": good,                       # an id with a space
        "twice/ivan_toy.ipynb": good,                      # two files for one student and lesson
        "ivan/toy.ipynb": blank,
        "BOM_toy.ipynb": BOM + good,                       # read as the grader reads it: accepted
        "old_toy.ipynb": _v3_text(nbformat.read(SOURCE, as_version=4)).encode(),
        "ancient_toy.ipynb": json.dumps({"nbformat": 2, "worksheets": []}).encode(),
        "other_toy.ipynb": nbformat.writes(_foreign()).encode(),   # matched by name, none of its cells
        "bare_toy.ipynb": nbformat.writes(_stripped(nbformat.read(SOURCE, as_version=4))).encode(),
    })
    report = collect(course, archive)
    imported = sorted(label.split("/")[0] for label in report.imported)
    assert imported == ["BOM", "alice", "bare", "bob", "carol", "dave", "old", "other"]
    sub = toy / "course_data" / "submitted"
    assert (sub / "alice" / "01_toy" / "toy.ipynb").read_bytes() == good
    assert (sub / "bob" / "01_toy" / "toy.ipynb").read_bytes() == blank
    assert not (sub / "tmp").exists() and not (sub / "export_2024").exists() and not (sub / "x").exists()
    problems = dict(report.problems)
    for entry in ("../../../tmp/x/toy.ipynb", "..\\..\\eve_toy.ipynb", "/abs/frank_toy.ipynb"):
        assert "leaves the archive" in problems[entry]
    assert len(list((toy / "course_data" / "rejected" / "unsafe_zip_paths").iterdir())) == 3
    assert "holds files named for other students (gina)" in problems["mixed/toy.ipynb"]
    assert "holds files named for other students (gina)" in problems["mixed/gina_toy.ipynb"]
    assert "contains ' ' (U+0020)" in problems["Hal Smith/toy.ipynb"]
    assert "2 files in this export would be ivan/01_toy" in problems["twice/ivan_toy.ipynb"]
    assert "2 files in this export would be ivan/01_toy" in problems["ivan/toy.ipynb"]
    assert "re-save it in current Jupyter" in problems["ancient_toy.ipynb"]
    skipped = dict(report.skipped)
    assert set(skipped) == {".hidden_toy.ipynb", "__MACOSX/export_2024/._alice_toy.ipynb",
                            "export_2024/.ipynb_checkpoints/toy-checkpoint.ipynb"}
    warned = dict(report.warnings)
    assert set(warned) == {"other_toy.ipynb", "bare_toy.ipynb"} and "will score 0" in warned["bare_toy.ipynb"]


def test_invalid_ids_name_the_character() -> None:
    assert id_problem("alice") is None and id_problem("a.b@x+1") is None
    assert "'/'" in id_problem("a/b") and "'é'" in id_problem("josé")
    assert "starts with '_'" in id_problem("_x")


# -------------------------------------------------------------- lock and damaged gradebook (no kernel)


def test_second_autograde_refused_while_the_first_holds_the_lock(toy: Path) -> None:
    course = open_course(Path("lessons"), Path("course_data"), create=True)
    with exclusive(course):
        assert (toy / "course_data" / RECORDS / LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(CourseError, match=f"PID {os.getpid()}.*wait for it"):
            with exclusive(course):
                pass
    # a lock left behind by a dead run is simply taken over
    fd = os.open(toy / "course_data" / RECORDS / LOCK, os.O_RDWR)
    assert fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) is None
    os.close(fd)
    with exclusive(course):
        pass


@pytest.fixture
def course(toy: Path) -> Path:
    assert main(["release"]) == 0
    return toy


def test_damaged_gradebook_is_set_aside_never_deleted(course: Path, capsys) -> None:
    db = course / "course_data" / "gradebook.db"
    data = bytearray(db.read_bytes())
    data[4096:8192] = os.urandom(4096)   # random bytes over a page
    db.write_bytes(bytes(data))
    open_course(Path("lessons"), Path("course_data"))
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is damaged" in err and "course autograde" in err
    [aside] = list(db.parent.glob("gradebook.db.damaged-*"))
    assert aside.read_bytes() == bytes(data) and not db.exists()
    db.write_bytes(b"SQLite format 3\0" + b"\0" * 100)   # truncated
    open_course(Path("lessons"), Path("course_data"))
    assert "is damaged" in capsys.readouterr().err and not db.exists()


# -------------------------------------------------------------- through the real grader (kernels)


def _write(path: Path, nb: nbformat.NotebookNode, *, prefix: bytes = b"") -> None:
    path.write_bytes(prefix + nbformat.writes(nb).encode())


def test_malformed_submissions_are_graded_exported_and_get_feedback(course: Path, capsys) -> None:
    inbox = course / "inbox"
    inbox.mkdir()
    good = _answered(_release_nb(course), GOOD)
    leak = {**GOOD, "cube": GOOD["cube"] + "\nprint('### BEGIN HIDDEN TESTS')\nprint('autograder.hidden')"}
    _write(inbox / "sly_toy.ipynb", _answered(_release_nb(course), leak))
    _write(inbox / "foreign_toy.ipynb", _foreign())
    _write(inbox / "stripped_toy.ipynb", _stripped(_answered(_release_nb(course), GOOD)))
    _write(inbox / "retyped_toy.ipynb", _retyped(_answered(_release_nb(course), GOOD)))
    _write(inbox / "dupmd_toy.ipynb", _duplicated_markdown(_answered(_release_nb(course), GOOD)))
    _write(inbox / "bom_toy.ipynb", good, prefix=BOM)
    (inbox / "v3_toy.ipynb").write_text(_v3_text(good))
    assert main(["collect", str(inbox)]) == 0
    assert main(["autograde", "--jobs", "2", *FAST]) == 0
    out = capsys.readouterr().out
    assert "GRADER FAILED" not in out and out.count("no answer cell of this lesson was recognised") == 2
    full = {"test_square": 2.0, "test_cube": 1.0}
    expected = {"foreign": dict.fromkeys(full, 0.0), "stripped": dict.fromkeys(full, 0.0), "retyped": full,
                "dupmd": full, "bom": full, "v3": full, "sly": full}
    assert grades(course) == {(s, c): v for s, cells in expected.items() for c, v in cells.items()}
    rows = json.loads((course / "course_data" / "exports" / "grades.json").read_text())["grades"]
    status = {r["student"]: (r["status"], r["notes"]) for r in rows}
    assert status["foreign"][0] == "graded" and "graded as blank" in status["foreign"][1]
    # every collected student is in the export, also one the grader never graded
    (course / "course_data" / "submitted" / "late" / "01_toy").mkdir(parents=True)
    _write(course / "course_data" / "submitted" / "late" / "01_toy" / "toy.ipynb", good)
    assert main(["export", "--format", "json"]) == 0
    rows = json.loads((course / "course_data" / "exports" / "grades.json").read_text())["grades"]
    late = next(r for r in rows if r["student"] == "late")
    assert late["status"] == "not graded" and "course autograde" in late["notes"]

    # one student's output with hidden-test markers withholds only that student's feedback
    capsys.readouterr()
    assert main(["feedback"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {len(expected) - 1} feedback files" in out and "feedback for sly/01_toy withheld" in out
    data = course / "course_data"
    assert (data / "feedback" / "bom" / "01_toy" / "toy.html").exists()
    assert not (data / "feedback" / "sly" / "01_toy" / "toy.html").exists()
    assert (data / "feedback_withheld" / "sly" / "01_toy" / "toy.html").exists()


def test_grader_failure_is_in_the_export_with_its_cause(course: Path, monkeypatch) -> None:
    from autograder.course import autograde as module

    inbox = course / "inbox"
    inbox.mkdir()
    _write(inbox / "good_toy.ipynb", _answered(_release_nb(course), GOOD))
    assert main(["collect", str(inbox)]) == 0

    def broken(course, task, folder):  # noqa: ANN001, ANN202 - stands in for any failure of the grader
        raise RuntimeError("disk full")

    monkeypatch.setattr(module, "rebuild_submission", broken)
    assert main(["autograde", *FAST]) == 1
    assert main(["export", "--format", "json"]) == 0
    [row] = json.loads((course / "course_data" / "exports" / "grades.json").read_text())["grades"]
    assert row["student"] == "good" and row["status"] == "grader failed" and "disk full" in row["notes"]


def test_lost_or_damaged_gradebook_comes_back_from_the_records(course: Path, capsys) -> None:
    inbox = course / "inbox"
    inbox.mkdir()
    _write(inbox / "half_toy.ipynb", _answered(_release_nb(course), {"cube": GOOD["cube"]}))
    assert main(["collect", str(inbox)]) == 0
    assert main(["autograde", *FAST]) == 0
    expected = grades(course)
    assert expected == {("half", "test_square"): 0.0, ("half", "test_cube"): 1.0}
    db = course / "course_data" / "gradebook.db"
    records = {p.name: p.read_text() for p in (course / "course_data" / RECORDS).glob("*.json")}

    # deleted, then release, autograde, export: restored from the records without regrading
    db.unlink()
    assert main(["release"]) == 0
    capsys.readouterr()
    assert main(["autograde", *FAST]) == 0
    assert capsys.readouterr().out.count("restored from its record") == 1
    assert grades(course) == expected

    # random bytes over the gradebook: set aside, rebuilt from the records by autograde alone
    data = bytearray(db.read_bytes())
    data[1024:6144] = os.urandom(5120)
    db.write_bytes(bytes(data))
    assert main(["autograde", *FAST]) == 0
    captured = capsys.readouterr()
    assert "is damaged" in captured.err and "recreating it" in captured.err
    assert captured.out.count("restored from its record") == 1
    assert list(db.parent.glob("gradebook.db.damaged-*")) and grades(course) == expected

    # a gradebook edited behind the grader's back: export flags it, autograde regrades it
    with sqlite3.connect(db) as con:
        con.execute("UPDATE grade SET auto_score = 0")
    assert main(["export", "--format", "json"]) == 0
    rows = json.loads((course / "course_data" / "exports" / "grades.json").read_text())["grades"]
    [half] = rows
    assert half["status"] == "gradebook disagrees with record" and "test_cube differ" in half["notes"]
    capsys.readouterr()
    assert main(["autograde", *FAST]) == 0
    assert capsys.readouterr().out.count("already graded") == 0
    assert grades(course) == expected
    assert {p.name for p in (course / "course_data" / RECORDS).glob("*.json")} == set(records)


def _with_written_answer(root: Path) -> None:
    """Add a hand-graded written answer (2 points) to the fixture lesson."""
    path = root / SOURCE
    nb = nbformat.read(path, as_version=4)
    meta = {"nbgrader": {"schema_version": 3, "grade": True, "solution": True, "locked": False,
                         "grade_id": "why", "points": 2}}
    nb.cells.append(new_markdown_cell("Why does it work?"))
    nb.cells.append(new_markdown_cell("YOUR ANSWER HERE", metadata=meta))
    nbformat.write(nb, path)


def test_force_keeps_hand_grades(toy: Path) -> None:
    from nbgrader.api import Gradebook

    _with_written_answer(toy)
    assert main(["release"]) == 0
    inbox = toy / "inbox"
    inbox.mkdir()
    nb = _answered(_release_nb(toy), {**GOOD, "why": "because of Taylor"})
    _write(inbox / "good_toy.ipynb", nb)
    assert main(["collect", str(inbox)]) == 0
    assert main(["autograde", *FAST]) == 0
    course = open_course(Path("lessons"), Path("course_data"))
    with Gradebook(course.db_url, course.course_id) as gb:
        grade = gb.find_grade("why", "toy", "01_toy", "good")
        assert grade.needs_manual_grade
        grade.manual_score = 1.5          # what formgrader does
        grade.needs_manual_grade = False
        gb.db.commit()
    assert main(["autograde", "--force", *FAST]) == 0
    with Gradebook(course.db_url, course.course_id) as gb:
        grade = gb.find_grade("why", "toy", "01_toy", "good")
        assert (grade.manual_score, grade.needs_manual_grade) == (1.5, False)
    # a changed answer is flagged for hand grading again
    _write(inbox / "good_toy.ipynb", _answered(nb, {"why": "because of limits"}))
    assert main(["collect", str(inbox), "--replace"]) == 0
    assert main(["autograde", *FAST]) == 0
    with Gradebook(course.db_url, course.course_id) as gb:
        assert gb.find_grade("why", "toy", "01_toy", "good").needs_manual_grade


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkill_leaves_no_workers_or_kernels_and_a_second_run_waits(course: Path) -> None:
    inbox = course / "inbox"
    inbox.mkdir()
    loop = {**GOOD, "square": "while True:\n    pass"}
    for student in ("spin1", "spin2"):
        _write(inbox / f"{student}_toy.ipynb", _answered(_release_nb(course), loop))
    assert main(["collect", str(inbox)]) == 0
    proc = subprocess.Popen([COURSE, "autograde", "--jobs", "2", "--timeout", "300"], cwd=course,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_descendants(proc.pid)) < 4:   # 2 workers + 2 kernels
        time.sleep(0.3)
    family = _descendants(proc.pid)
    assert len(family) >= 4
    second = subprocess.run([COURSE, "autograde", *FAST], cwd=course, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 2 and f"PID {proc.pid}" in second.stderr
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in family):
        time.sleep(0.3)
    assert not [p for p in family if _alive(p)]
