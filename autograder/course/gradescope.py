"""`course gradescope LESSON`: a Gradescope autograder zip that runs the same pipeline as `course autograde`.

Zip layout (Gradescope unzips it into /autograder/source):
  setup.sh          installs Python 3.11 and this project (nbgrader, the checks, the `course` package)
  run_autograder    runs `python -m autograder.course.gradescope` (this module) on /autograder/submission
  project/          pyproject.toml, autograder/ (with hidden checks), reference_impl/, lessons/LESSON/
  limits.json       the grading limits
Inside the container the runner builds a throw-away course folder, releases the lesson, places the
submission, autogrades it with the same safe settings, sandbox and kernel-death recovery, and writes
results.json: one test per test cell, cells holding hidden tests `after_published`, each failing cell's
output reduced to its one-line message. All paths can be moved with COURSE_GRADESCOPE_ROOT (default
/autograder) so a test can run `run_autograder` on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import autograder

from .config import GradingLimits
from .layout import Course, open_course

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
set -euo pipefail
ROOT="${COURSE_GRADESCOPE_ROOT:-/autograder}"
PY="${COURSE_PYTHON:-/autograder/venv/bin/python}"
export COURSE_GRADESCOPE_ROOT="$ROOT"
export PYTHONPATH="$ROOT/source/project${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
exec "$PY" -m autograder.course.gradescope "$@"
"""


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


def _find_submission(submission_dir: Path, notebook: str, grade_ids: set[str]) -> tuple[Path | None, str]:
    """The submitted notebook: by its name, else by its cells (students rename files), read as the grader
    reads it (a byte-order mark or nbformat 3 is fine)."""
    from .submission import UnreadableNotebook, read_notebook
    from .submission import grade_ids as ids_of

    candidates = sorted(submission_dir.rglob("*.ipynb"))
    for path in candidates:
        if path.stem == notebook:
            return path, ""
    for path in candidates:
        try:
            ids = ids_of(read_notebook(path))
        except UnreadableNotebook:
            continue
        if ids & grade_ids:
            return path, f"(graded {path.name} as {notebook}.ipynb, recognised by its cells) "
    names = ", ".join(p.name for p in candidates) or "no .ipynb file"
    return None, f"No readable {notebook}.ipynb in the submission ({names}). Resubmit the notebook."


def _cell_messages(notebook: Path) -> dict[str, str]:
    """grade_id -> one-line error message of each test cell that failed in the autograded notebook."""
    import nbformat

    from .feedback import hide_hidden_tests

    nb = hide_hidden_tests(nbformat.read(notebook, as_version=4))
    out = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        stderr = [o for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"]
        if gid and errors:
            out[gid] = f"{errors[-1].ename}: {errors[-1].evalue}"
        elif gid and stderr:
            out[gid] = "The test wrote to stderr, which fails it: " + stderr[-1].text.strip()[:300]
    return out


def run(root: Path) -> dict:
    """Grade the submission under `root` and return the results.json content."""
    from .autograde import autograde
    from .export import gradebook_rows
    from .feedback import HIDDEN
    from .release import generate

    start = time.monotonic()
    project = root / "source" / "project"
    limits = GradingLimits(**json.loads((root / "source" / "limits.json").read_text()))
    lessons_dir = project / "lessons"
    lesson = sorted(p.name for p in lessons_dir.iterdir() if p.is_dir())[0]
    source_nb = sorted((lessons_dir / lesson).glob("*.ipynb"))[0]
    source_cells = json.loads(source_nb.read_text())["cells"]
    meta = {c["metadata"]["nbgrader"]["grade_id"]: c for c in source_cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
    with tempfile.TemporaryDirectory() as tmp:
        course = open_course(lessons_dir, Path(tmp) / "course", create=True)
        generate(course, lesson)
        found, note = _find_submission(root / "submission", source_nb.stem, set(meta))
        if found is None:
            return {"score": 0.0, "execution_time": time.monotonic() - start, "output": note,
                    "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
        dest = course.sub("submitted", "student", lesson, source_nb.name)
        dest.parent.mkdir(parents=True)
        shutil.copy(found, dest)
        [result] = autograde(course, [lesson], jobs=1, limits=limits, progress=False)
        if not result.ok:
            raise RuntimeError(f"the grader failed: {result.error}")
        messages = _cell_messages(course.sub("autograded", "student", lesson, source_nb.name))
        [row] = [r for r in gradebook_rows(course) if r["lesson"] == lesson]
    tests = []
    for cell in row["cells"]:
        src = meta[cell["cell"]]["source"]
        src = "".join(src) if isinstance(src, list) else src
        hidden = bool(HIDDEN.search(src))
        passed = cell["score"] == cell["max_score"]
        tests.append({
            "name": cell["cell"], "score": cell["score"], "max_score": cell["max_score"],
            "status": "passed" if passed else "failed",
            "output": "" if passed else messages.get(cell["cell"], "needs manual grading"
                                                     if cell["needs_manual_grade"] else "failed"),
            "visibility": "after_published" if hidden else "visible",
        })
    notes = "; ".join(result.notes + [f"{e['cell']}: {e['cause']}" for e in result.events])
    return {"score": row["score"], "execution_time": round(time.monotonic() - start, 1),
            "output": (note + notes).strip() or "Graded.", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def main() -> None:
    root = Path(os.environ.get("COURSE_GRADESCOPE_ROOT", "/autograder"))
    results = run(root)
    path = root / "results" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"score {results['score']} written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
