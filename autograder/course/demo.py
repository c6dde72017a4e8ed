"""`course demo` (what `make demo` runs): the whole workflow on the demo class, checked against expectations.

The demo class (examples/demo_class/) is a manifest of recipes, not stored notebooks: each recipe takes
the *released* notebook of its lesson, puts named answer sections (answers/<lesson>.txt) into answer
cells, applies a structural tamper (delete or edit a test cell, change its points, cut the JSON short,
send a PDF, hand in another lesson's notebook, strip or retype the nbgrader metadata, duplicate a cell,
add a byte-order mark, save as nbformat 3) and writes the file under the name (and folder) an LMS would
hand over. So the class stays valid when the
lesson text changes, and the broken cases are still real files.

Stages: release -> build the LMS folder -> collect -> autograde (--jobs) -> feedback -> export (csv, json,
Canvas and Moodle) -> class report. The gradebook is then printed beside the expected score of every
graded cell; the exit status is 0 only when every grade matches, every rejected file was reported and
kept, every graded submission has feedback, and the grader itself failed nowhere. The course folder is
left in build/demo_course to browse.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat

import autograder

from .layout import Course, CourseError, open_course
from .notebooks import cell_grade_id, load, nbgrader_meta

REPO = Path(autograder.__file__).resolve().parent.parent
DEMO_DIR = REPO / "examples" / "demo_class"


def load_answers(path: Path) -> dict[str, str]:
    """Sections '# %% name' of an answers file -> their source (leading comment block dropped)."""
    sections: dict[str, str] = {}
    for chunk in re.split(r"^# %% ", path.read_text(), flags=re.M)[1:]:
        name, _, body = chunk.partition("\n")
        sections[name.strip()] = body.strip("\n") + "\n" if body.strip() else ""
    return {k: v.rstrip("\n") for k, v in sections.items()}


def _cell(nb: Any, grade_id: str) -> Any:
    for cell in nb.cells:
        if cell_grade_id(cell) == grade_id:
            return cell
    raise CourseError(f"the demo class refers to cell {grade_id!r}, which the released notebook lacks: "
                      "update examples/demo_class/class.json for the lesson's current cells")


def build_submission(course: Course, recipe: dict[str, Any], answers: dict[str, dict[str, str]],
                     inbox: Path) -> Path:
    """Write one recipe's file into the LMS folder; returns its path."""
    lesson = recipe["lesson"]
    [released] = sorted(course.sub("release", lesson).glob("*.ipynb"))
    nb = nbformat.read(released, as_version=4)
    for grade_id, section in recipe.get("answers", {}).items():
        if section not in answers[lesson]:
            raise CourseError(f"answer section {section!r} is missing from answers/{lesson}.txt")
        _cell(nb, grade_id).source = answers[lesson][section]
    text = None
    for tamper in recipe.get("tamper", []):
        op = tamper["op"]
        if op == "other_lesson":
            [other] = sorted(course.sub("release", tamper["lesson"]).glob("*.ipynb"))
            nb = nbformat.read(other, as_version=4)
        elif op == "strip_metadata":
            for cell in nb.cells:
                cell.metadata = nbformat.NotebookNode()
        elif op == "retype":    # answers become 100-point test cells, tests become ungraded
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("solution"):
                    meta.update(grade=True, points=100)
                elif meta.get("grade"):
                    meta.update(grade=False, points=0)
        elif op == "duplicate":    # as Jupyter's copy and paste: same metadata, a new cell id
            cell = _cell(nb, tamper["cell"])
            twin = copy.deepcopy(cell)
            twin.id = f"{cell.get('id', 'cell')}-copy"
            nb.cells.insert(nb.cells.index(cell) + 1, twin)
        elif op == "bom":
            text = "\ufeff" + (text if text is not None else nbformat.writes(nb))
        elif op == "nbformat3":
            text = nbformat.writes(nbformat.convert(nb, 3), version=3)
        elif op == "delete":
            nb.cells.remove(_cell(nb, tamper["cell"]))
        elif op == "source":
            _cell(nb, tamper["cell"]).source = tamper["source"]
        elif op == "points":
            _cell(nb, tamper["cell"]).metadata.nbgrader.points = tamper["points"]
        elif op == "truncate":
            full = nbformat.writes(nb)
            text = full[: len(full) // 2]
        elif op == "pdf":
            text = "%PDF-1.4\n% a notebook printed to PDF, not the notebook itself\n"
        else:
            raise CourseError(f"unknown tamper {op!r} in examples/demo_class/class.json")
    path = inbox / recipe.get("file", f"{recipe['student']}_{released.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else nbformat.writes(nb), encoding="utf-8")
    return path


def expected_scores(course: Course, recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe's expectations with 'full' turned into the source notebook's points."""
    points = {}
    for path in course.notebooks(recipe["lesson"]):
        for cell in load(path).cells:
            if nbgrader_meta(cell).get("grade"):
                points[cell_grade_id(cell)] = float(nbgrader_meta(cell)["points"])
    missing = set(points) - set(recipe["expected"])
    if missing:
        raise CourseError(f"examples/demo_class/class.json gives no expected score for {sorted(missing)} "
                          f"({recipe['student']}): add them")
    return {cell: points[cell] if exp == "full" else exp for cell, exp in recipe["expected"].items()}


def run_demo(*, jobs: int = 2, output: Path | None = None) -> int:
    from .autograde import autograde, summary_table
    from .collect import collect
    from .config import GradingLimits
    from .export import export, gradebook_rows
    from .feedback import feedback
    from .release import release
    from .report import write_reports

    start = time.monotonic()
    manifest = json.loads((DEMO_DIR / "class.json").read_text())
    lessons_dir = REPO / "lessons"
    course_dir = (output or REPO / "build" / "demo_course").resolve()
    if course_dir.exists():
        if not (course_dir / "course.json").exists():
            raise CourseError(f"{course_dir} exists and is not a course folder: pass another --output")
        shutil.rmtree(course_dir)
    course = open_course(lessons_dir, course_dir, create=True)
    lessons = course.resolve_lessons(manifest["lessons"])
    answers = {lesson: load_answers(DEMO_DIR / "answers" / f"{lesson}.txt") for lesson in lessons}
    problems: list[str] = []

    print(f"== release {', '.join(lessons)}")
    release(course, lessons)
    inbox = course.sub("lms_export")
    inbox.mkdir()
    files = {str(build_submission(course, r, answers, inbox).relative_to(inbox)): r
             for r in manifest["submissions"]}
    print(f"== collect {len(files)} files from {inbox}")
    report = collect(course, inbox)
    reported = dict(report.problems)
    for name, recipe in files.items():
        if "rejected" in recipe:
            if recipe["rejected"] not in reported.get(name, ""):
                problems.append(f"{name}: expected collect to reject it ({recipe['rejected']})")
            elif not course.sub("rejected", *Path(name).parts).exists():
                problems.append(f"{name}: rejected but not kept in rejected/")
        elif name in reported:
            problems.append(f"{name}: collect rejected it: {reported[name]}")
        if recipe.get("warned") and name not in dict(report.warnings):
            problems.append(f"{name}: expected collect to warn about it")
    for name, problem in report.problems:
        print(f"   ! {name}: {problem}")
    for name, warning in report.warnings:
        print(f"   ? {name}: {warning}")

    limits = GradingLimits(**manifest["limits"])
    print(f"== autograde --jobs {jobs} (cell timeout {limits.cell_timeout} s, {limits.memory_mb} MiB, "
          f"{limits.cpu_seconds} s CPU per kernel)")
    results = autograde(course, lessons, jobs=jobs, limits=limits, force=True)
    print(summary_table(results))
    problems += [f"{r.task.student}/{r.task.lesson}: grader failed: {r.error}" for r in results if not r.ok]

    print("== feedback")
    fb = feedback(course, lessons)
    graded = {(r.task.student, r.task.lesson) for r in results if r.ok}
    have = {(p.parent.parent.name, p.parent.name) for p in fb.written}
    problems += [f"{s}/{lesson}: no feedback file" for s, lesson in sorted(graded - have)]
    print(f"   {len(fb.written)} HTML files, none showing hidden tests")

    print("== export")
    for path in [*export(course, fmt="csv"), *export(course, fmt="json"), *export(course, fmt="canvas"),
                 *export(course, fmt="moodle")]:
        print(f"   {path}")

    print("== report")
    for page in write_reports(course, lessons):
        print(f"   {page}")

    rows = {(r["student"], r["lesson"]): r for r in gradebook_rows(course)}
    print("== gradebook vs expected")
    print(f"{'student':8} {'lesson':22} {'cell':28} {'expected':>9} {'got':>9}  case")
    for recipe in manifest["submissions"]:
        if "rejected" in recipe:
            continue
        key = (recipe["student"], recipe["lesson"])
        row = rows.get(key)
        cells = {c["cell"]: c for c in row["cells"]} if row and row["status"] != "missing" else {}
        if "note" in recipe and (not row or recipe["note"] not in row["notes"]):
            problems.append(f"{key[0]}/{key[1]}: the export's notes lack {recipe['note']!r}")
        for cell, exp in expected_scores(course, recipe).items():
            got_cell = cells.get(cell)
            if got_cell is None:
                got = "missing"
            elif got_cell["needs_manual_grade"]:
                got = "manual"
            else:
                got = got_cell["score"]
            ok = got == exp or (isinstance(got, float) and not isinstance(exp, str) and abs(got - exp) < 1e-9)
            mark = "ok" if ok else "MISMATCH"
            print(f"{key[0]:8} {key[1]:22} {cell:28} {exp!s:>9} {got!s:>9}  {mark:8} {recipe['case']}")
            if not ok:
                problems.append(f"{key[0]}/{key[1]} {cell}: expected {exp}, got {got}")
    print(f"== {time.monotonic() - start:.0f} s; course folder: {course_dir}")
    if problems:
        print(f"DEMO FAILED: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("DEMO OK: every grade matches the manifest, nothing was lost")
    return 0
