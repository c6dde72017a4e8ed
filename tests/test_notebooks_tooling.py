"""autograder.course.notebooks on a tiny notebook: scoring agrees with nbgrader's rule both ways."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.course import notebooks


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: int = 0) -> dict:
    meta = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


@pytest.fixture(scope="module")
def tiny() -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}})
    nb.cells = [
        new_markdown_cell("Write `double`."),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                      metadata=_meta("double", grade=False, solution=True, locked=False)),
        new_code_cell("assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n"
                      "### END HIDDEN TESTS", metadata=_meta("test_double", grade=True, solution=False,
                                                            locked=True, points=2)),
        new_code_cell("import sys\nprint('careful', file=sys.stderr)",
                      metadata=_meta("test_stderr", grade=True, solution=False, locked=True, points=1)),
    ]
    return nb


@pytest.mark.slow
def test_scores_follow_nbgrader(tiny) -> None:
    scores = notebooks.grade(notebooks.execute(tiny))
    assert scores["test_double"] == notebooks.CellScore(2.0, 2.0, None)
    assert scores["test_stderr"].score == 0 and "stderr" in scores["test_stderr"].error


@pytest.mark.slow
def test_student_version_and_bug_injection(tiny) -> None:
    student = notebooks.student_version(tiny)
    text = "\n".join(c.source for c in student.cells)
    assert "return 2 * x" not in text and "double(-3)" not in text and "NotImplementedError" in text
    blank = notebooks.grade(notebooks.execute(student))
    assert blank["test_double"].score == 0 and "NotImplementedError" in blank["test_double"].error

    buggy = notebooks.with_cell_source(tiny, "double", "def double(x):\n    return x + 2")
    scores = notebooks.grade(notebooks.execute(buggy))
    assert scores["test_double"].score == 0 and scores["test_double"].error.startswith("AssertionError")
    assert tiny.cells[1].source.startswith("def double(x):\n    ###"), "the original is left unchanged"


def test_with_cell_source_names_known_cells(tiny) -> None:
    with pytest.raises(KeyError, match="test_double"):
        notebooks.with_cell_source(tiny, "nope", "")


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="ZeroMQ IPC sockets need a POSIX system")
def test_kernels_talk_over_private_ipc_sockets() -> None:
    """Over TCP, kernels started at once by parallel processes can be handed the same port (seen in CI:
    "Address already in use", kernel dead before kernel_info); IPC sockets in a private folder cannot."""
    nb = new_notebook(cells=[new_code_cell("from ipykernel.kernelapp import IPKernelApp\n"
                                           "app = IPKernelApp.instance()\nprint(app.transport, app.ip)")])
    transport, ip = notebooks.execute(nb).cells[0].outputs[0].text.split()
    assert transport == "ipc" and "course-ipc-" in ip, (transport, ip)


def test_grading_kernels_get_their_own_socket_folder() -> None:
    from autograder.course.safe_execute import SafeExecute

    ex = SafeExecute()
    ex.nb, ex.resources = new_notebook(), {}
    try:
        first, second = ex.create_kernel_manager(), ex.create_kernel_manager()
    finally:
        shutil.rmtree(ex._spec_root)
    if os.name == "posix":
        assert first.transport == second.transport == "ipc"
        assert Path(first.ip).parent != Path(second.ip).parent, "a rerun's kernel must not reuse sockets"
    # each (re)started kernel has its own run folder: connection file, sockets, and a fresh working folder
    assert Path(first.connection_file).parent != Path(second.connection_file).parent
    assert Path(ex.resources["metadata"]["path"]) == Path(second.connection_file).parent / "work"


def test_private_connection_keeps_tcp_when_the_socket_path_is_too_long(tmp_path: Path) -> None:
    from autograder.course.sandbox import private_connection

    assert private_connection(tmp_path / ("x" * 120)) == {}
    if os.name == "posix":
        assert private_connection(tmp_path) == {"transport": "ipc", "ip": str(tmp_path / "kernel")}
