"""`course collect PATH`: import submissions as an LMS hands them over into nbgrader's layout.

Accepted input: a folder (searched recursively) or a zip of `.ipynb` files named `<student>_<notebook>.ipynb`,
or `<student>/<notebook>.ipynb`. A file whose name does not end with a lesson's notebook name (students
rename files: "finite_differences (2).ipynb") is matched to its lesson by the nbgrader grade_ids in its
cells, with the student id taken from its folder or from the text before the first underscore.

Nothing is lost or overwritten silently: unreadable files (invalid JSON, not a notebook, no lesson
recognised, no student id) are copied unchanged to `rejected/` and reported by name; a file that differs
from an already collected one is reported as a conflict and kept in `rejected/` unless `--replace` is
given, in which case the old one is moved to `replaced/`. Re-running on the same input changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .layout import Course, CourseError

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")


@dataclass
class CollectReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)   # (file name, what is wrong + fix)


@dataclass(frozen=True)
class _Lesson:
    lesson: str
    notebook: str          # file stem
    grade_ids: frozenset[str]


def _lesson_index(course: Course) -> list[_Lesson]:
    out = []
    for lesson in course.lessons():
        for nb_path in course.notebooks(lesson):
            out.append(_Lesson(lesson, nb_path.stem, frozenset(_grade_ids(json.loads(nb_path.read_text())))))
    return out


def _grade_ids(nb: dict) -> set[str]:
    ids = set()
    for cell in nb.get("cells", []):
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") if isinstance(cell, dict) else None
        if gid:
            ids.add(gid)
    return ids


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def collect(course: Course, source: Path, *, replace: bool = False) -> CollectReport:
    """Import every submission under `source` (folder or zip); see the module docstring for the rules."""
    if not source.exists():
        raise CourseError(f"{source} does not exist: pass the folder or zip your LMS exported")
    index = _lesson_index(course)
    if not index:
        raise CourseError(f"no lessons found in {course.lessons_dir}: nothing to collect submissions for")
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise CourseError(f"{source} is neither a folder nor a zip file: pass the LMS export")
            root = Path(tmp)
            with zipfile.ZipFile(source) as zf:
                for info in zf.infolist():
                    parts = [p for p in Path(info.filename).parts if p not in ("..", "/", "")]
                    if info.is_dir() or not parts:
                        continue
                    target = root.joinpath(*parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))
        else:
            root = source
        report = CollectReport()
        files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
            part.startswith(".") or part == "__MACOSX" for part in p.relative_to(root).parts))
        for path in files:
            _collect_one(course, index, root, path, replace, report)
    return report


def _collect_one(course: Course, index: list[_Lesson], root: Path, path: Path, replace: bool,
                 report: CollectReport) -> None:
    rel = path.relative_to(root)
    name = str(rel)

    def reject(reason: str) -> None:
        kept = course.sub("rejected", *rel.parts)
        if not (kept.exists() and _digest(kept) == _digest(path)):
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, kept)
        report.problems.append((name, f"{reason}; kept as {kept.relative_to(course.course_dir)}"))

    if path.suffix.lower() != ".ipynb":
        return reject("not a notebook (.ipynb)")
    try:
        nb = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return reject(f"invalid JSON ({exc}): ask the student to re-download and resubmit it")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        return reject("not a Jupyter notebook (format 4)")

    folder_student = rel.parts[0] if len(rel.parts) > 1 else None
    stem = path.stem
    match = None
    for entry in sorted(index, key=lambda e: -len(e.notebook)):
        rest = stem[: -len(entry.notebook)] if stem.endswith(entry.notebook) else None
        if rest is not None and (rest == "" and folder_student or rest.endswith(("_", "-"))):
            match, student = entry, (rest.rstrip("_-") or folder_student)
            break
    how = ""
    if match is None:   # renamed file: recognise the lesson by its cells
        ids = _grade_ids(nb)
        overlap = max(index, key=lambda e: len(e.grade_ids & ids))
        if not overlap.grade_ids & ids:
            return reject("no lesson notebook recognised by name or by its cells")
        match = overlap
        student = folder_student or (stem.split("_", 1)[0] if "_" in stem else "")
        how = f" (renamed file, recognised as {match.notebook}.ipynb by its cells)"
    if not student or not STUDENT_ID.match(student):
        return reject(f"cannot tell the student id from {name!r}: name it <student>_{match.notebook}.ipynb")

    dest = course.sub("submitted", student, match.lesson, f"{match.notebook}.ipynb")
    label = f"{student}/{match.lesson}"
    if dest.exists():
        if _digest(dest) == _digest(path):
            report.unchanged.append(label)
            return
        if not replace:
            return reject(f"differs from the already collected {label}; nothing overwritten: pass "
                          "--replace to take the new file (the old one is kept in replaced/)")
        backup = course.sub("replaced", time.strftime("%Y%m%d-%H%M%S"), student, match.lesson, dest.name)
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(dest, backup)
        report.replaced.append(label + how)
    else:
        report.imported.append(label + how)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, dest)
