"""The attack catalogue (trusted-grading.md, "How to test it"): one submission per attack on lesson 01.

Every attack submission carries wrong answers (so it deserves 0) plus one trick that tries to earn the
points anyway: from inside the kernel (patch the checks, numpy or builtins, fake modules, import hooks,
input transformers, exception handlers, a forged grading channel) or out of band (read the solutions or
the hidden checks, import reference_impl, leave a process behind to edit the gradebook). All of them and a
few honest students are graded in ONE run of the real `course collect` -> `autograde` -> `export` ->
`feedback`. Each must end with the score its answers deserve, the honest students with theirs, the lessons
folder unchanged, and no feedback page may show hidden test text, a solution or another student's id.

Add a submission here whenever a new attack is imagined.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest

import autograder
from autograder.course.cli import main
from autograder.course.notebooks import cell_grade_id

pytestmark = pytest.mark.slow

REPO = Path(autograder.__file__).resolve().parent.parent
LESSON = "01_finite_differences"
NOTEBOOK = "finite_differences"
ANSWERS = ("forward_difference", "backward_difference", "central_difference", "numerical_gradient",
           "relative_error")
FAST = ["--timeout", "15", "--memory-mb", "1024", "--cpu-seconds", "60"]

WRONG = {
    "forward_difference": "def forward_difference(f, x, h):\n    return 0.0",
    "backward_difference": "def backward_difference(f, x, h):\n    return 0.0",
    "central_difference": "def central_difference(f, x, h):\n    return 0.0",
    "numerical_gradient": "def numerical_gradient(f, x, h=1e-5):\n    return np.zeros(np.shape(x))",
    "relative_error": "def relative_error(a, b):\n    return 0.0",
}

# Placeholders filled in per run: COURSE (course folder), LESSONS (lessons folder), HIDDEN (the hidden
# checks' file), REFERENCE (reference_impl's folder).
ATTACKS: dict[str, str] = {
    # replace the visible and hidden checks (and the pass report) by functions that never fail
    "patch-checks": """
import autograder.checks as c
import autograder.lesson01 as m
for name in dir(m):
    if name.startswith(("check_", "report_", "run_", "close", "as_real")):
        setattr(m, name, lambda *a, **k: None)
c.passed = c.call_student = lambda *a, **k: None
try:
    import autograder.hidden.lesson01 as hm
    for name in dir(hm):
        if name.startswith("check_"):
            setattr(hm, name, lambda *a, **k: None)
except ImportError:
    pass
""",
    # modules that accept everything, in place of the checks
    "fake-modules": """
import sys, types
class Anything(types.ModuleType):
    __path__ = []
    def __getattr__(self, name):
        return lambda *a, **k: None
for name in ("autograder", "autograder.checks", "autograder.lesson01", "autograder.hidden",
             "autograder.hidden.lesson01"):
    sys.modules[name] = Anything(name)
""",
    # an import hook that hands out the same fakes for anything under autograder
    "import-hook": """
import sys, importlib.abc, importlib.machinery
class Fakes(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "autograder":
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.__getattr__ = lambda name: (lambda *a, **k: None)
sys.meta_path.insert(0, Fakes())
for name in [n for n in sys.modules if n.split(".")[0] == "autograder"]:
    del sys.modules[name]
""",
    # every later cell (the test cells among them) becomes `pass`
    "transformer-post": "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
    "transformer-cleanup": "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])",
    # comparisons that always agree
    "patch-numpy": """
import builtins
import numpy as np
builtins.abs = lambda x: 0.0
np.abs = np.absolute = np.max = np.amax = lambda *a, **k: 0.0
np.all = np.any = np.isclose = np.allclose = np.array_equal = lambda *a, **k: True
np.isfinite = lambda *a, **k: True
for name in ("less", "greater", "less_equal", "greater_equal", "equal", "not_equal"):
    setattr(np, name, lambda *a, **k: True)
for name in [n for n in dir(np.testing) if n.startswith("assert")]:
    setattr(np.testing, name, lambda *a, **k: None)
""",
    # run the instructor's solution cells, read from the lessons folder
    "solution-cells": """
import json
def steal(gid):
    for path in ["LESSONS/01_finite_differences/finite_differences.ipynb",
                 "../../lessons/01_finite_differences/finite_differences.ipynb",
                 "../lessons/01_finite_differences/finite_differences.ipynb"]:
        try:
            cells = json.load(open(path))["cells"]
        except Exception:
            continue
        for cell in cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid:
                exec("".join(cell["source"]), globals())
""",
    # a handler that swallows every exception of every cell
    "custom-exc": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
    # a post_run_cell hook that clears the cell's error
    "post-run-cell": """
def clear(result):
    result.error_in_exec = None
    result.error_before_exec = None
get_ipython().events.register("post_run_cell", clear)
""",
    "excepthook": """
import sys
sys.excepthook = lambda *a: None
get_ipython().showtraceback = lambda *a, **k: None
""",
    # AssertionError (and the checks' failures) made harmless
    "assertion-error": """
import builtins
import autograder.checks as c
class Harmless(Exception):
    pass
builtins.AssertionError = Harmless
c.CheckFailure = c.NotDone = Harmless
""",
    # the kernel's end of the channel replaced by one that answers every request with "ok: True"
    "fake-serve": """
import socket
import autograder.probe as probe
import autograder.wire as wire
def serve(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        while wire.receive(s).get("op") != "bye":
            wire.send(s, {"ok": True})
probe.serve = serve
""",
    # the grader is sent a 2 GB message (the header of one: the grader must refuse it, not read it). The
    # kernel stays busy a moment after sending: one that returns at once makes every test cell wait for
    # its time limit (reported to the lead; the score is right either way, the wait is not)
    "huge-message": """
import socket, struct, time
import autograder.probe as probe
def serve(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.recv(1 << 16)
        s.sendall(struct.pack("!I", 2**31) + b"{" * 65536)
        time.sleep(2)
probe.serve = serve
""",
    # a thread that deletes the grader's sockets as soon as they appear
    "delete-socket": """
import glob, os, threading
def sweep():
    while True:
        for path in glob.glob(os.path.join(os.path.dirname(os.getcwd()), "*.sock")):
            try:
                os.unlink(path)
            except OSError:
                pass
threading.Thread(target=sweep, daemon=True).start()
""",
    # a thread and a detached process left running to edit the gradebook, the lessons and the results
    "background": """
import os, threading, time
def vandal():
    for _ in range(400):
        for path in ("COURSE/gradebook.db", "LESSONS/01_finite_differences/finite_differences.ipynb"):
            try:
                with open(path, "ab") as out:
                    out.write(b"pwned")
            except OSError:
                pass
        for path in ("COURSE/pwned.txt", "LESSONS/pwned.txt", "COURSE/autograded/pwned.txt"):
            try:
                open(path, "w").write("pwned")
            except OSError:
                pass
        time.sleep(0.05)
if os.fork() == 0:
    os.setsid()
    vandal()
    os._exit(0)
threading.Thread(target=vandal, daemon=True).start()
""",
    # output that looks like passing checks and like nbgrader's own records
    "fake-output": """
for name in ("forward_difference", "backward_difference", "central_difference", "numerical_gradient",
             "relative_error"):
    print(f"{name}: passed (6 random smooth functions and steps, worst relative error 1.1e-16)")
print('{"score": 8.0, "max_score": 8.0, "auto_score": 8.0, "cell": "test_forward_difference"}')
""",
    # the __main__ module and the displayed namespace swapped under the kernel
    "main-module": """
import sys, types
sys.modules["__main__"] = types.ModuleType("__main__")
get_ipython().user_module = sys.modules["__main__"]
""",
    # answers that agree with everything: every operator, comparison and conversion says "equal"
    "magic-answers": """
class Magic:
    def __sub__(self, other):
        return 0.0
    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __sub__
    def __abs__(self):
        return 0.0
    def __eq__(self, other):
        return True
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __ne__(self, other):
        return False
    def __bool__(self):
        return True
    def __float__(self):
        return 0.0
    def __hash__(self):
        return 0
MAGIC = Magic()
""",
}

# Item 1 of the brief: the kernel must not reach the hidden checks, reference_impl, the grader or the
# lessons. The answers are right only if one of these succeeded, so a leak shows as points; the outcome of
# each attempt is printed in the answer cell's output, which the test reads from the autograded notebook.
PEEK = """
import json, os
def attempt(label, fn):
    try:
        fn()
        return [label, "ok"]
    except BaseException as exc:
        return [label, type(exc).__name__]
SEEN = [
    attempt("import reference_impl", lambda: __import__("reference_impl.numerical")),
    attempt("import hidden", lambda: __import__("autograder.hidden.lesson01")),
    attempt("import course", lambda: __import__("autograder.course.judge")),
    attempt("list lessons", lambda: os.listdir("LESSONS/01_finite_differences") or 1 / 0),
    attempt("read source", lambda: open("LESSONS/01_finite_differences/finite_differences.ipynb").read()),
    attempt("read hidden", lambda: open("HIDDEN").read()),
    attempt("list reference", lambda: os.listdir("REFERENCE") or 1 / 0),
]
LEAKED = any(outcome == "ok" for _, outcome in SEEN)
print("PEEK " + json.dumps(SEEN))
def forward_difference(f, x, h):
    return (f(x + h) - f(x)) / h if LEAKED else 0.0
"""

# Which answers each attack changes beyond WRONG (the attack's code goes first in the first answer cell).
SPECIAL = {
    "solution-cells": {gid: f"{WRONG[gid]}\nsteal({gid!r})" for gid in ANSWERS},
    "magic-answers": {
        "forward_difference": "def forward_difference(f, x, h):\n    return MAGIC",
        "backward_difference": "def backward_difference(f, x, h):\n    return MAGIC",
        "central_difference": "def central_difference(f, x, h):\n    return MAGIC",
        "numerical_gradient": "def numerical_gradient(f, x, h=1e-5):\n    return MAGIC",
        "relative_error": "def relative_error(a, b):\n    return MAGIC",
    },
}


def _hidden_lines(source: nbformat.NotebookNode) -> list[str]:
    """The lines of the source notebook's hidden-test blocks (markers included)."""
    lines, inside = [], False
    for cell in source.cells:
        for line in cell.source.splitlines():
            inside = inside or "### BEGIN HIDDEN TESTS" in line
            if inside and line.strip():
                lines.append(line.strip())
            inside = inside and "### END HIDDEN TESTS" not in line
    return lines


def _solutions(source: nbformat.NotebookNode) -> dict[str, str]:
    """The instructor's answers, as an honest student who solved everything would write them."""
    return {cell_grade_id(c): "\n".join(line for line in c.source.splitlines() if "### " not in line)
            for c in source.cells if cell_grade_id(c) in ANSWERS}


def _submissions(source: nbformat.NotebookNode, fill: dict[str, str]) -> dict[str, tuple[dict, dict]]:
    """student -> (answers by grade_id, deserved score by test cell)."""
    solved = _solutions(source)
    zero = {f"test_{gid}": 0.0 for gid in ANSWERS}
    points = {cell_grade_id(c): float(c.metadata.nbgrader.points) for c in source.cells
              if cell_grade_id(c) in zero}
    students = {
        "honest-good": (solved, points),
        "honest-blank": ({}, zero),
        "honest-half": ({**WRONG, "forward_difference": solved["forward_difference"],
                         "relative_error": solved["relative_error"]},
                        {**zero, "test_forward_difference": points["test_forward_difference"],
                         "test_relative_error": points["test_relative_error"]}),
        "attack-peek": ({**WRONG, "forward_difference": _fill(PEEK, fill)}, zero),
    }
    for name, code in ATTACKS.items():
        answers = {**WRONG, **SPECIAL.get(name, {})}
        answers["forward_difference"] = _fill(code, fill) + "\n\n" + answers["forward_difference"]
        students[f"attack-{name}"] = (answers, zero)
    return students


def _fill(code: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        code = code.replace(key, value)
    return code


def _only_graded_cells(path: Path) -> None:
    """Drop the lesson's demonstrations (plots, timings): every cell nbgrader knows stays as it is, so the
    answers and test cells are the lesson's, and each of the many notebooks grades in a few seconds."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if cell_grade_id(c)]
    nbformat.write(nb, path)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_attack_scores_what_its_answers_deserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys) -> None:
    lessons, course = tmp_path / "lessons", tmp_path / "course_data"
    shutil.copytree(REPO / "lessons" / LESSON, lessons / LESSON)
    _only_graded_cells(lessons / LESSON / f"{NOTEBOOK}.ipynb")
    monkeypatch.chdir(tmp_path)
    assert main(["release", LESSON]) == 0
    source = nbformat.read(lessons / LESSON / f"{NOTEBOOK}.ipynb", as_version=4)
    fill = {"COURSE": str(course), "LESSONS": str(lessons),
            "HIDDEN": str(REPO / "autograder" / "hidden" / "lesson01.py"),
            "REFERENCE": str(REPO / "reference_impl")}
    students = _submissions(source, fill)
    released = nbformat.read(course / "release" / LESSON / f"{NOTEBOOK}.ipynb", as_version=4)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for student, (answers, _) in students.items():
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        for cell in nb.cells:
            if cell_grade_id(cell) in answers:
                cell.source = answers[cell_grade_id(cell)]
        nbformat.write(nb, inbox / f"{student}_{NOTEBOOK}.ipynb")
    lessons_before = _digest(lessons)

    assert main(["collect", str(inbox)]) == 0
    assert main(["autograde", "--jobs", "4", *FAST]) == 0
    assert main(["export", "--format", "json"]) == 0
    assert main(["feedback"]) == 0
    capsys.readouterr()

    data = json.loads((course / "exports" / "grades.json").read_text())
    got = {row["student"]: {c["cell"]: c["score"] for c in row["cells"] if c["cell"].startswith("test_")}
           for row in data["grades"]}
    wrong = {s: (got.get(s), deserved) for s, (_, deserved) in students.items() if got.get(s) != deserved}
    assert not wrong, f"scores that differ from what the answers deserve: {wrong}"

    assert _digest(lessons) == lessons_before, "the lessons folder changed"
    assert not list(tmp_path.rglob("pwned*")), "a process left by a notebook wrote after grading"

    # the kernel reached none of the hidden checks, reference_impl, the grader or the lessons
    peek = nbformat.read(course / "autograded" / "attack-peek" / LESSON / f"{NOTEBOOK}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in peek.cells if cell_grade_id(c) == "forward_difference"
                      for o in c.outputs)
    seen = dict(json.loads(printed.split("PEEK ", 1)[1].splitlines()[0]))
    assert seen and all(outcome != "ok" for outcome in seen.values()), seen

    # feedback: never a hidden test, a solution (but the student's own) or another student's id
    hidden = _hidden_lines(source)
    assert any("hidden.check_" in line for line in hidden)
    solution_lines = [line.strip() for c in source.cells if cell_grade_id(c) in ANSWERS
                      for line in c.source.splitlines() if line.strip().startswith("return")]
    pages = {p.parts[-3]: p.read_text() for p in (course / "feedback").rglob("*.html")}
    # a page that shows a hidden module's name (here: the attacker's own code) is withheld, never handed out
    withheld = {p.parts[-3] for p in (course / "feedback_withheld").rglob("*.html")}
    assert set(pages) | withheld == set(students) and not set(pages) & withheld, (sorted(pages), withheld)
    assert all(student.startswith("attack-") for student in withheld), withheld
    for student, page in pages.items():
        assert not [line for line in hidden if line in page], student
        if student != "honest-good":
            assert not [line for line in solution_lines if line in page], student
        assert not [other for other in students if other != student and other in page], student
