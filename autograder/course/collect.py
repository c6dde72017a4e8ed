"""`course collect PATH`: import submissions as an LMS hands them over into nbgrader's layout.

Accepted input: a folder (searched recursively) or a zip of `.ipynb` files named `<student>_<notebook>.ipynb`,
`<student>/<notebook>.ipynb`, or nbgrader's own `<student>/<lesson>/<notebook>.ipynb` (e.g.
`s1/02_chain_rule/chain_rule.ipynb`; the lesson folder may also be named as `course` names lessons on its
command line: `02`, `2` or `chain_rule`), at any depth (LMS
exports often wrap everything in one folder). A file whose name does not end with a lesson's notebook name
(students rename files: "finite_differences (2).ipynb") is matched to its lesson by the nbgrader grade_ids
in its cells.

Whose file it is comes only from the file's own name or the folder holding it: a name `<student>_<notebook>`
says it, else the holding folder does; a holding folder named for a lesson is never a student id, the folder
above it is. A file in a lesson's folder (holding it, or holding its student's folder:
`02_chain_rule/<student>/`) must be that lesson's notebook, by its name and by its cells: one that is
another lesson's is refused with the reason. A folder that holds both files named for other
students and files that only its own name could credit is ambiguous, and two files crediting the same
student and lesson in one export are too: both are refused with the reason rather than guessed.

Nothing is lost or overwritten silently: every file not imported is listed with the reason. Unreadable
files (read exactly as the grader reads them: invalid JSON, not a notebook, a format older than 3, no
lesson recognised, no student id) are copied unchanged to `rejected/`; zip entries whose path leaves the
archive (`..`, absolute) are refused and kept in `rejected/` under a flattened name; hidden files and
macOS resource forks are listed as skipped. A file that differs from an already collected one is reported
as a conflict and kept in `rejected/` unless `--replace` is given, in which case the old one is moved to
`replaced/`. A file matched by name that holds none of its lesson's cells is imported with a warning (it
will score 0). Re-running on the same input changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .layout import Course, CourseError
from .submission import UnreadableNotebook, answer_ids, grade_ids, read_notebook

ID_CHARS = re.compile(r"[A-Za-z0-9_.@+-]")
UNSAFE = "unsafe_zip_paths"


@dataclass
class CollectReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)   # (file name, what is wrong + fix)
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (file name, why it was not looked at)
    warnings: list[tuple[str, str]] = field(default_factory=list)   # (file name, imported but suspicious)


@dataclass(frozen=True)
class _Lesson:
    lesson: str
    notebook: str          # file stem
    grade_ids: frozenset[str]
    answer_ids: frozenset[str]    # what the grader takes from a submission


@dataclass(frozen=True)
class _Claim:
    """Who a file is credited to and how that was decided (the name, or the folder holding it)."""

    lesson: _Lesson | None
    from_name: str | None      # student id written in the file name
    renamed: bool              # lesson recognised by the cells, not the name


@dataclass(frozen=True)
class _Owner:
    """The student a file is credited to (None: nobody can be) and what says so, or why nobody can be."""

    student: str | None
    how: str                   # FILE_NAME, "the folder <path>/", or why no student can be credited
    lesson: str | None         # the lesson the file's folder (or the one above it) is named for, if any


FILE_NAME = "the file name"


def _lesson_index(course: Course) -> list[_Lesson]:
    out = []
    for lesson in course.lessons():
        for nb_path in course.notebooks(lesson):
            nb = read_notebook(nb_path)
            out.append(_Lesson(lesson, nb_path.stem, frozenset(grade_ids(nb)), frozenset(answer_ids(nb))))
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def id_problem(student: str) -> str | None:
    """Why `student` cannot be a student id (naming the offending character), or None if it can."""
    if not student:
        return "it is empty"
    bad = next((ch for ch in student if not ID_CHARS.fullmatch(ch)), None)
    if bad is not None:
        return f"it contains {bad!r} (U+{ord(bad):04X}); ids may hold letters, digits and _ . @ + -"
    if not student[0].isalnum():
        return f"it starts with {student[0]!r}; ids start with a letter or digit"
    return None


def _unpack(source: Path, root: Path, course: Course, report: CollectReport) -> None:
    """Extract a zip into root; entries whose path would leave it are refused and kept flattened."""
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename.replace("\\", "/")   # zips made on Windows may use backslashes
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
                flat = "__".join("up" if p == ".." else p.replace(":", "") for p in parts if p != "/")
                kept = course.sub("rejected", UNSAFE, flat)
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_bytes(zf.read(info))
                report.problems.append((info.filename, "its path leaves the archive ('..' or absolute), so "
                                        "no student or folder can be read from it; refused and kept as "
                                        f"{kept.relative_to(course.course_dir)}: rename it "
                                        "<student>_<notebook>.ipynb and collect it alone"))
                continue
            target = root.joinpath(*[p for p in parts if p not in ("", ".")])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))


def _skip_reason(rel: Path) -> str | None:
    if "__MACOSX" in rel.parts or rel.name.startswith("._"):
        return "macOS resource data (__MACOSX/ or ._ file), not a submission"
    if ".ipynb_checkpoints" in rel.parts:
        return "a Jupyter autosave checkpoint, not the submission"
    if any(part.startswith(".") for part in rel.parts):
        return "a hidden file or folder (name starts with '.'): rename it if it is a submission"
    return None


def collect(course: Course, source: Path, *, replace: bool = False) -> CollectReport:
    """Import every submission under `source` (folder or zip); see the module docstring for the rules."""
    if not source.exists():
        raise CourseError(f"{source} does not exist: pass the folder or zip your LMS exported")
    index = _lesson_index(course)
    if not index:
        raise CourseError(f"no lessons found in {course.lessons_dir}: nothing to collect submissions for")
    report = CollectReport()
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise CourseError(f"{source} is neither a folder nor a zip file: pass the LMS export")
            root = Path(tmp)
            _unpack(source, root, course, report)
        else:
            root = source
        files = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            why = _skip_reason(rel)
            if why:
                report.skipped.append((str(rel), why))
            else:
                files.append(path)
        claims = {path: _claim(index, path) for path in files}
        owners = _owners(course, root, claims)
        by_key: dict[tuple[str, str], list[str]] = {}
        for path in files:
            if claims[path].lesson and owners[path].student:
                key = (owners[path].student, claims[path].lesson.lesson)
                by_key.setdefault(key, []).append(str(path.relative_to(root)))
        for path in files:
            key = (owners[path].student, claims[path].lesson.lesson if claims[path].lesson else "")
            twins = [n for n in by_key.get(key, []) if n != str(path.relative_to(root))]
            _collect_one(course, root, index, path, claims[path], owners[path], twins, replace, report)
    return report


def _by_cells(index: list[_Lesson], nb: dict) -> _Lesson | None:
    """The one lesson most of the notebook's grade_ids belong to, or None when none or a tie."""
    ids = grade_ids(nb)
    ranked = sorted(index, key=lambda e: len(e.grade_ids & ids), reverse=True)
    top = len(ranked[0].grade_ids & ids)
    if not top or (len(ranked) > 1 and len(ranked[1].grade_ids & ids) == top):
        return None
    return ranked[0]


def _lesson_of(course: Course, root: Path, folder: Path) -> str | None:
    """The lesson a folder under root is named for, read as the command line reads a lesson's name
    ('02_chain_rule', '02', '2', 'chain_rule'): students and LMS exports spell the folder every way."""
    if folder == root:
        return None
    try:
        (lesson,) = course.resolve_lessons([folder.name])
    except CourseError:  # no lesson's name
        return None
    return lesson


def _claim(index: list[_Lesson], path: Path) -> _Claim:
    """The lesson a file belongs to and the student id its name gives, if any."""
    if path.suffix.lower() != ".ipynb":
        return _Claim(None, None, renamed=False)
    stem = path.stem
    for entry in sorted(index, key=lambda e: -len(e.notebook)):
        if stem == entry.notebook:
            return _Claim(entry, None, renamed=False)
        if stem.endswith(entry.notebook) and stem[: -len(entry.notebook)].endswith(("_", "-")):
            return _Claim(entry, stem[: -len(entry.notebook)].rstrip("_-"), renamed=False)
    try:
        best = _by_cells(index, read_notebook(path))
    except UnreadableNotebook:
        best = None
    prefix = stem.split("_", 1)[0] if "_" in stem else None
    return _Claim(best, prefix, renamed=True)


def _owners(course: Course, root: Path, claims: dict[Path, _Claim]) -> dict[Path, _Owner]:
    """Who every file is credited to; ambiguity is a student of None with the reason."""
    by_folder: dict[Path, list[Path]] = {}
    for path in claims:
        by_folder.setdefault(path.parent, []).append(path)
    named_for = {folder: _lesson_of(course, root, folder) for folder in by_folder}
    out: dict[Path, _Owner] = {}
    for folder, paths in by_folder.items():
        # nbgrader's <student>/<lesson>/ layout: a lesson-named folder whose neighbours are lesson-named too.
        # Beside a folder named for no lesson (export/2/ and export/17/) it is a student called "2".
        lesson = named_for[folder] if all(named_for[f] for f in by_folder if f.parent == folder.parent) \
            else None
        holder = folder.parent if lesson else folder
        lesson = lesson or (_lesson_of(course, root, folder.parent) if folder != root else None)
        folder_id = None if holder == root else holder.name
        named = {claims[p].from_name for p in paths if claims[p].from_name and not claims[p].renamed}
        unnamed = [p for p in paths if claims[p].lesson and not claims[p].from_name]
        wrapper = folder_id is None or bool(named - {folder_id})
        for path in paths:
            if wrapper and folder_id and unnamed:
                why = (f"its folder {folder.relative_to(root)}/ holds files named for other students ("
                       f"{', '.join(sorted(named - {folder_id}))}) beside files only the folder's name could "
                       "credit, so whose each file is cannot be told: put each student's files in their own "
                       "folder or name them <student>_<notebook>.ipynb")
                out[path] = _Owner(None, why, lesson)
            elif wrapper:
                out[path] = _Owner(claims[path].from_name, FILE_NAME, lesson)
            else:
                out[path] = _Owner(folder_id, f"the folder {holder.relative_to(root)}/", lesson)
    return out


def _lesson_mismatch(index: list[_Lesson], nb: dict, claim: _Claim, folder_lesson: str) -> str | None:
    """Why a file in a folder named for `folder_lesson` is another lesson's (by name or cells), or None."""
    cells = _by_cells(index, nb)
    if claim.lesson and claim.lesson.lesson != folder_lesson:
        by = "its cells are" if claim.renamed else "its name makes it"
        return f"{by} {claim.lesson.lesson}'s notebook"
    if cells and cells.lesson != folder_lesson:
        return f"its cells are {cells.lesson}'s notebook"
    return None
def _collect_one(course: Course, root: Path, index: list[_Lesson], path: Path, claim: _Claim, owner: _Owner,
                 twins: list[str], replace: bool, report: CollectReport) -> None:
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
        nb = read_notebook(path)   # exactly as the grader will read it
    except UnreadableNotebook as exc:
        return reject(str(exc))
    match = claim.lesson
    if match is None:
        return reject("no lesson notebook recognised by name or by its cells")
    student = owner.student
    if student is None and owner.how == FILE_NAME:
        return reject(f"cannot tell the student id from {name!r}: name it <student>_{match.notebook}.ipynb "
                      "or put it in a folder named for the student")
    if student is None:
        return reject(owner.how)
    problem = id_problem(student)
    if problem:
        return reject(f"the student id {student!r} taken from {owner.how} is not valid: {problem}; name the "
                      f"file <student>_{match.notebook}.ipynb")
    other = owner.lesson and _lesson_mismatch(index, nb, claim, owner.lesson)
    if other:
        return reject(f"it is filed under lesson {owner.lesson} ({rel.parent}/), but {other}: which "
                      f"lesson {student} meant it for cannot be told; ask them, then collect it alone as "
                      "<student>_<notebook>.ipynb of that lesson")
    if twins:
        return reject(f"{len(twins) + 1} files in this export would be {student}/{match.lesson} ("
                      f"{', '.join([name, *twins])}); which one counts cannot be told: collect the right "
                      "one alone")
    how = f" (renamed file, recognised as {match.notebook}.ipynb by its cells)" if claim.renamed else ""
    if not claim.renamed and not grade_ids(nb) & match.answer_ids:
        report.warnings.append((name, f"holds none of {match.lesson}'s answer cells (another lesson's "
                                "notebook, or its cell metadata stripped): collected, but it will score "
                                f"0; ask the student to resubmit {match.notebook}.ipynb"))

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
