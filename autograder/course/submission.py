"""How a submitted notebook is read and what of it is graded: one reader for `collect` and `autograde`.

A student's file is not trusted for anything but the text of their answers. Its nbgrader metadata can be
stripped (some editors and "clear metadata" extensions do it), copied (a duplicated cell keeps its
grade_id), retyped (a test cell re-marked as an answer worth 100 points) or from another lesson; any of
these made nbgrader fail on the whole submission. So the grader never runs the submitted file: it
rebuilds the notebook from the *released* one, taking from the submission only the source of each
answer cell whose grade_id and cell type match the release. Tests, points, metadata, extra cells and
outputs all come from the release. The same `read_notebook` is used by `collect` (to refuse what the
grader could not read) and by the grader, so the two never disagree about a file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .notebooks import cell_grade_id, nbgrader_meta

BOM = b"\xef\xbb\xbf"


class UnreadableNotebook(Exception):
    """The file is not a notebook the grader can read; the message says why and what the student does."""


def read_notebook(path: Path) -> NotebookNode:
    """Read a submission as nbformat 4: a UTF-8 byte-order mark is ignored, nbformat 3 is upgraded."""
    data = path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM):]
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UnreadableNotebook(f"not UTF-8 text ({exc.reason} at byte {exc.start}): ask the student to "
                                 "re-download the notebook from Jupyter and resubmit it") from None
    except json.JSONDecodeError as exc:
        raise UnreadableNotebook(f"invalid JSON ({exc}): ask the student to re-download and resubmit "
                                 "it") from None
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise UnreadableNotebook("not a Jupyter notebook (no nbformat version)")
    version = raw.get("nbformat")
    if not isinstance(version, int) or version < 3 or version > 4:
        raise UnreadableNotebook(f"notebook format {version!r} is not supported: ask the student to open "
                                 "it and re-save it in current Jupyter (format 4)")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many types for malformed notebooks
        raise UnreadableNotebook(f"not a readable notebook ({type(exc).__name__}: {exc}): ask the student "
                                 "to re-save it in current Jupyter and resubmit it") from None
    if not isinstance(nb.get("cells"), list):
        raise UnreadableNotebook("not a Jupyter notebook (no list of cells): ask the student to re-save "
                                 "it in current Jupyter")
    return nb


def grade_ids(nb: dict) -> set[str]:
    """Every grade_id in a notebook's cells."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    return {gid for c in (cells if isinstance(cells, list) else []) if (gid := cell_grade_id(c))}


def answer_ids(release: NotebookNode) -> list[str]:
    """The grade_ids of the release's answer cells (autograded and written), in notebook order."""
    return [cell_grade_id(c) for c in release.cells if nbgrader_meta(c).get("solution")]


def rebuild(release: NotebookNode, submitted: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The released notebook with the student's answers in it, and notes on what could not be taken.

    For each answer cell of the release, the submission's cells with the same grade_id and cell type
    are candidates; the first one that differs from the released text is the answer (a copied cell left
    as handed out is not), else the first. Everything else of the submission is ignored.
    """
    rebuilt = copy.deepcopy(release)
    wanted = answer_ids(release)
    found: dict[str, list[tuple[str, str]]] = {gid: [] for gid in wanted}
    for cell in submitted.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in found and isinstance(cell.get("source"), str):
            found[gid].append((cell.get("cell_type"), cell.source))
    notes = []
    taken = set()
    for cell in rebuilt.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        same_type = [src for kind, src in found.get(gid, []) if kind == cell.cell_type]
        if not same_type:
            continue
        changed = [src for src in same_type if src != cell.source]
        cell.source = (changed or same_type)[0]
        taken.add(gid)
        if len(same_type) > 1:
            notes.append(f"{gid}: {len(same_type)} cells carry this answer's id; graded the first one "
                         "the student edited")
    if not taken:
        notes.insert(0, "no answer cell of this lesson was recognised in the submission (another "
                        "lesson's notebook, or its cell metadata stripped): graded as blank, so it scores "
                        "0; ask the student to resubmit the lesson's own notebook")
    elif missing := [gid for gid in wanted if gid not in taken]:
        notes.append(f"answer cell(s) {', '.join(missing)} not found in the submission: graded as blank")
    return rebuilt, notes
