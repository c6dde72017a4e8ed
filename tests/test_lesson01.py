"""Lesson 01 (finite differences): the check functions directly, then the notebook as nbgrader grades it.

Each wrong solution in BUGS is a mistake students make. In process, it replaces its answer cell in the
notebook's namespace: the visible check must fail naming the cause, the hidden check must fail, and every
other exercise's checks must still pass (it loses only its own points). Every bug and other style is also
judged as grading judges it (`judged_in_process`); two representatives run through a real kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import lesson_harness as harness
import nbformat
import numpy as np
import pytest

from autograder import lesson01 as visible
from autograder.checks import CheckFailure, NotDone
from autograder.course.notebooks import cell_grade_id
from autograder.hidden import lesson01 as hidden

LESSON = Path(__file__).resolve().parents[1] / "lessons" / "01_finite_differences"
NOTEBOOK = LESSON / "finite_differences.ipynb"

HEADER = "import numpy as np\n\n"

SOLUTIONS = {
    "forward_difference": """
def forward_difference(f, x, h):
    return (f(x + h) - f(x)) / h
""",
    "backward_difference": """
def backward_difference(f, x, h):
    return (f(x) - f(x - h)) / h
""",
    "central_difference": """
def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)
""",
    "numerical_gradient": """
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x, dtype=float)
    grad = np.zeros_like(point)
    for index in np.ndindex(point.shape):
        saved = point[index]
        point[index] = saved + h
        f_plus = f(point)
        point[index] = saved - h
        f_minus = f(point)
        point[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad
""",
    "relative_error": """
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"shapes {a.shape} and {b.shape} differ")
    size = max(np.max(np.abs(a)), np.max(np.abs(b)))
    return 0.0 if size == 0 else float(np.max(np.abs(a - b)) / size)
""",
}

CORRECT_GRADIENT = SOLUTIONS["numerical_gradient"]

# Correct solutions written differently from the notebook's: they must get full marks too.
OTHER_STYLES = {
    "forward_difference": """
def forward_difference(f, x, h):
    here = f(x)
    there = f(x + h)
    return (there - here) * (1.0 / h)
""",
    "central_difference": """
def central_difference(f, x, h):
    return 0.5 * (f(x + h) - f(x - h)) / h
""",
    "numerical_gradient": """
def numerical_gradient(f, x, h=1e-5):
    base = np.array(x, dtype=float)
    flat_grad = np.empty(base.size)
    for i in range(base.size):
        step = np.zeros(base.size)
        step[i] = h
        up = (base.ravel() + step).reshape(base.shape)
        down = (base.ravel() - step).reshape(base.shape)
        flat_grad[i] = (f(up) - f(down)) / (2 * h)
    return flat_grad.reshape(base.shape)
""",
    "relative_error": """
def relative_error(a, b):
    if np.shape(a) != np.shape(b):
        raise ValueError("relative_error: a has shape %s but b has shape %s" % (np.shape(a), np.shape(b)))
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    top = np.linalg.norm(a - b, ord=np.inf)
    bottom = max(np.linalg.norm(a, ord=np.inf), np.linalg.norm(b, ord=np.inf))
    return float(top / bottom) if bottom > 0 else 0.0
""",
}

def renamed(name: str, new_name: str) -> str:
    """A correct solution of one exercise handed in as the answer to another."""
    return SOLUTIONS[name].replace(name, new_name)


# grade_id -> {bug name: (source, a fragment the failure message must contain)}
BUGS = {
    "forward_difference": {
        "central_instead": (renamed("central_difference", "forward_difference"),
                            "CENTRAL"),
        "sign_flipped": ("""
def forward_difference(f, x, h):
    return (f(x) - f(x + h)) / h
""", "the forward difference with its sign flipped"),
        "divides_by_2h": ("""
def forward_difference(f, x, h):
    return (f(x + h) - f(x)) / (2 * h)
""", "half the forward difference: x and x+h are only h apart, so their difference is divided by h"),
        "not_divided": ("""
def forward_difference(f, x, h):
    return f(x + h) - f(x)
""", "forgot to divide by h"),
        "returns_string": (SOLUTIONS["forward_difference"].replace("return (f(x + h) - f(x)) / h",
                                                                   "return str((f(x + h) - f(x)) / h)"),
                           "returned the string"),
        "returns_tuple": (SOLUTIONS["forward_difference"].replace(" / h", " / h,"), "trailing comma"),
    },
    "backward_difference": {
        "forward_instead": (renamed("forward_difference", "backward_difference"),
                            "FORWARD"),
        "sign_flipped": ("""
def backward_difference(f, x, h):
    return (f(x - h) - f(x)) / h
""", "the backward difference with its sign flipped"),
        "divides_by_2h": ("""
def backward_difference(f, x, h):
    return (f(x) - f(x - h)) / (2 * h)
""", "half the backward difference: x-h and x are only h apart, so their difference is divided by h"),
    },
    "central_difference": {
        "forward_instead": (renamed("forward_difference", "central_difference"),
                            "FORWARD"),
        "divides_by_h": ("""
def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / h
""", "divide by 2h"),
        "missing_brackets": ("""
def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / 2 * h
""", "brackets around the denominator"),
        "own_step": ("""
def central_difference(f, x, h):
    return (f(x + 1e-6) - f(x - 1e-6)) / 2e-6
""", "Use the h passed in"),
        "sign_flipped": ("""
def central_difference(f, x, h):
    return (f(x - h) - f(x + h)) / (2 * h)
""", "the central difference with its sign flipped"),
        "not_divided": ("""
def central_difference(f, x, h):
    return f(x + h) - f(x - h)
""", "forgot to divide by 2h"),
        "divided_by_2_only": ("""
def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / 2
""", "forgot h"),
        "float32": ("""
def central_difference(f, x, h):
    x, h = np.float32(x), np.float32(h)
    return (f(x + h) - f(x - h)) / (2 * h)
""", "float32 numbers"),
        "raises_with_its_line": ("""
def central_difference(f, x, h):
    points = [x + h, x - h]
    return (f(points) - f(x - h)) / (2 * h)
""", "at line 5 of your answer cell"),
    },
    "numerical_gradient": {
        "forward_differences": ("""
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x, dtype=float)
    grad = np.zeros_like(point)
    f0 = f(point)
    for index in np.ndindex(point.shape):
        moved = point.copy()
        moved[index] += h
        grad[index] = (f(moved) - f0) / h
    return grad
""", "FORWARD"),
        "changes_x": ("""
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros(np.shape(x))
    for index in np.ndindex(np.shape(x)):
        x[index] += h
        f_plus = f(x)
        x[index] -= 2 * h
        f_minus = f(x)
        x[index] += h
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad
""", "changed x"),
        "shared_perturbed_copy": ("""
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x, dtype=float)
    grad = np.zeros_like(point)
    for index in np.ndindex(point.shape):
        point[index] += h
        f_plus = f(point)
        point[index] -= 2 * h
        grad[index] = (f_plus - f(point)) / (2 * h)
    return grad
""", "perturbed on its own"),
        "integer_copy": (CORRECT_GRADIENT.replace("np.array(x, dtype=float)", "np.copy(x)"),
                         "rounded back to an integer"),
        "integer_copy_float_result": (CORRECT_GRADIENT.replace("np.array(x, dtype=float)", "np.copy(x)")
                                      .replace("np.zeros_like(point)", "np.zeros(point.shape)"),
                                      "rounded back to an integer"),
        "float32_copy": (CORRECT_GRADIENT.replace("dtype=float", "dtype=np.float32"), "float32"),
        "float32_copy_float64_result": (CORRECT_GRADIENT.replace("dtype=float", "dtype=np.float32")
                                        .replace("np.zeros_like(point)", "np.zeros(point.shape)"), "float32"),
        "returns_list": (CORRECT_GRADIENT.replace("return grad", "return grad.tolist()"),
                         "returned a Python list"),
        "sign_flipped": (CORRECT_GRADIENT.replace("(f_plus - f_minus)", "(f_minus - f_plus)"),
                         "negative of the central differences"),
        "not_divided": (CORRECT_GRADIENT.replace("(f_plus - f_minus) / (2 * h)", "f_plus - f_minus"),
                        "forgot to divide by 2h"),
        "own_step": (CORRECT_GRADIENT.replace("    point = ", "    h = 0.05\n    point = "),
                     "0.05 away from x, but the step is h = 0.001"),
        "other_default_step": (CORRECT_GRADIENT.replace("h=1e-5", "h=1e-4"), "the default in the def line"),
        "list_without_conversion": (CORRECT_GRADIENT.replace("np.array(x, dtype=float)", "x.astype(float)"),
                                    "x here is a Python list"),
        "float32_result": (CORRECT_GRADIENT.replace("np.zeros_like(point)",
                                                    "np.zeros(point.shape, np.float32)"),
                           "returned a float32 array"),
        "returns_a_number": (CORRECT_GRADIENT.replace("return grad", "return float(grad[0])"),
                             "returned a float"),
        "aliased_points": ("""
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x, dtype=float)
    grad = np.zeros(point.shape)
    for index in np.ndindex(point.shape):
        xp = point
        xm = point
        xp[index] += h
        xm[index] -= h
        grad[index] = (f(xp) - f(xm)) / (2 * h)
    return grad
""", "does not copy"),
        "calls_f_flattened": (CORRECT_GRADIENT.replace("np.array(x, dtype=float)",
                                                       "np.array(x, dtype=float).ravel()")
                              .replace("return grad", "return grad.reshape(np.shape(x))"),
                              "but x has shape"),
        "rows_not_entries": ("""
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x, dtype=float)
    grad = np.zeros_like(point)
    for i in range(len(point)):
        up, down = point.copy(), point.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad
""", "np.ndindex"),
    },
    "relative_error": {
        "divides_by_a_only": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("shapes differ")
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
""", "|a| only"),
        "no_abs_in_denominator": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("shapes differ")
    size = max(np.max(a), np.max(b))
    return 0.0 if size == 0 else float(np.max(np.abs(a - b)) / size)
""", "cannot be negative"),
        "no_shape_check": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    size = max(np.max(np.abs(a)), np.max(np.abs(b)))
    return 0.0 if size == 0 else float(np.max(np.abs(a - b)) / size)
""", "ValueError"),
        "zero_division": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("shapes differ")
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
""", "return 0.0 instead of dividing 0 by 0"),
        "assert_for_shapes": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert a.shape == b.shape
    size = max(np.max(np.abs(a)), np.max(np.abs(b)))
    return 0.0 if size == 0 else float(np.max(np.abs(a - b)) / size)
""", "raised AssertionError, not ValueError"),
        "norms": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("shapes differ")
    size = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if size == 0 else float(np.linalg.norm(a - b) / size)
""", "norms"),
        "entry_by_entry": ("""
def relative_error(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"shapes {a.shape} and {b.shape} differ")
    sizes = np.maximum(np.abs(a), np.abs(b))
    if not sizes.any():
        return 0.0
    return float(np.max(np.abs(a - b)[sizes > 0] / sizes[sizes > 0]))
""", "for each entry"),
        "changes_its_arguments": (SOLUTIONS["relative_error"].replace(
            "    size = max(np.max(np.abs(a)), np.max(np.abs(b)))",
            "    top = np.max(np.abs(a - b))\n    np.abs(a, out=a)\n    np.abs(b, out=b)\n"
            "    size = max(np.max(a), np.max(b))").replace("np.max(np.abs(a - b)) / size", "top / size"),
                                  "changed its argument"),
        "returns_string": (SOLUTIONS["relative_error"].replace("return 0.0 if size == 0 else float(",
                                                               "return '0' if size == 0 else str("),
                           "returned the string"),
        "returns_0d_array": (SOLUTIONS["relative_error"].replace("else float(", "else np.array("),
                             "numpy array of shape ()"),
        "tiny_offset_in_denominator": (SOLUTIONS["relative_error"].replace(
            "return 0.0 if size == 0 else float(np.max(np.abs(a - b)) / size)",
            "return float(np.max(np.abs(a - b)) / (size + 1e-8))"), "added to the denominator"),
        "value_error_names_no_shapes": (SOLUTIONS["relative_error"].replace(
            'f"shapes {a.shape} and {b.shape} differ"', '"the shapes differ"'),
            "does not name the shape (3,): when you read it after a failed call, you cannot tell which "
            "argument has the wrong shape"),
    },
}

CHECKS = {name: (getattr(visible, f"check_{name}"), getattr(hidden, f"check_{name}")) for name in SOLUTIONS}
BLANK = """
def {name}(*args, **kwargs):
    raise NotImplementedError()
"""


def define(source: str, name: str):
    """Execute one solution's source and return the function it defines."""
    namespace: dict = {}
    exec(HEADER + source, namespace)
    return namespace[name]


# ---------------------------------------------------------------------------------------------------------
# The check functions, without notebooks
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_correct_solution_passes_visible_and_hidden_checks_on_many_seeds(name, capsys):
    fn = define(SOLUTIONS[name], name)
    check_visible, check_hidden = CHECKS[name]
    for seed in range(25):
        check_visible(fn, seed=seed)
        check_hidden(fn, seed=seed)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 25, "the visible check prints one line per pass, the hidden check none"
    assert all(line.startswith(f"passed: {name}: ") and "(seed " in line for line in lines), lines[0]


@pytest.mark.parametrize("name", sorted(OTHER_STYLES))
def test_other_correct_styles_pass(name):
    fn = define(OTHER_STYLES[name], name)
    check_visible, check_hidden = CHECKS[name]
    for seed in range(25):
        check_visible(fn, seed=seed)
        check_hidden(fn, seed=seed)


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_a_blank_exercise_says_it_is_not_written_yet_in_both_checks(name):
    fn = define(BLANK.format(name=name), name)
    for check in CHECKS[name]:
        with pytest.raises(NotDone) as info:
            check(fn, seed=0)
        assert str(info.value) == str(NotDone(name))


@pytest.mark.parametrize(("name", "bug"), [(name, bug) for name, bugs in BUGS.items() for bug in bugs])
def test_each_bug_fails_its_own_checks_with_its_cause_and_no_other(name, bug):
    """The bug in the notebook's own namespace: the visible check names the cause on every seed and the
    hidden check fails (that every other exercise keeps its points is judged below, as grading does)."""
    source, fragment = BUGS[name][bug]
    ns = harness.answer_namespace(NOTEBOOK, replace={name: harness.answer_cell(source, HEADER)})
    check_visible, check_hidden = CHECKS[name]
    for seed in range(8):
        with pytest.raises(CheckFailure) as info:
            check_visible(ns[name], seed=seed)
        message = str(info.value)
        assert fragment in message, message
        assert "Hint" in message or "ValueError" in message, message
        assert f"seed {seed}" in message, message
        assert message.endswith(f"checks.check_{name}({name}, seed={seed}) in a cell of your own to repeat "
                                f"this exact test."), message
    with pytest.raises(CheckFailure) as again:
        check_visible(ns[name], seed=seed)
    assert str(again.value) == message, "the call named at the end repeats exactly the same test"
    for seed in range(3):
        with pytest.raises(CheckFailure):
            check_hidden(ns[name], seed=seed)


def test_checks_draw_fresh_randomness_and_report_the_seed():
    bad = define(BUGS["central_difference"]["forward_instead"][0], "central_difference")
    messages = set()
    for _ in range(3):
        with pytest.raises(CheckFailure) as info:
            visible.check_central_difference(bad)
        messages.add(str(info.value))
        assert re.search(r"seed \d+", str(info.value))
    assert len(messages) == 3


def test_checks_do_not_touch_the_global_random_state():
    state = np.random.get_state()[1].copy()
    visible.check_numerical_gradient(define(SOLUTIONS["numerical_gradient"], "numerical_gradient"))
    assert np.array_equal(np.random.get_state()[1], state)


def test_a_shape_error_may_spell_the_shapes_in_any_usual_way():
    for message in ('f"{np.shape(a)} vs {np.shape(b)}"', 'f"{list(np.shape(a))} != {list(np.shape(b))}"'):
        fn = define(SOLUTIONS["relative_error"].replace('f"shapes {a.shape} and {b.shape} differ"', message),
                    "relative_error")
        visible.check_relative_error(fn, seed=0)
        hidden.check_relative_error(fn, seed=0)


# ---------------------------------------------------------------------------------------------------------
# The notebook
# ---------------------------------------------------------------------------------------------------------

TEST_CELLS = {name: f"test_{name}" for name in SOLUTIONS}

notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)


def test_notebook_has_every_exercise_and_written_answer():
    ids = set(harness.graded_metadata(NOTEBOOK))
    assert set(SOLUTIONS) | set(TEST_CELLS.values()) <= ids
    assert {"written_central_vs_forward", "written_float32_small_h"} <= ids


@pytest.mark.slow
def test_source_notebook_earns_full_marks_and_every_test_prints_one_pass_line(notebooks, source_nb):
    executed = notebooks.execute(source_nb)
    harness.assert_full_marks(notebooks.grade(executed), TEST_CELLS.values())
    harness.assert_no_error_outputs(executed)
    for cell in executed.cells:
        if cell_grade_id(cell) in TEST_CELLS.values():
            text = "".join(out.get("text", "") for out in cell.outputs)
            assert text.count("\n") == 1 and text.startswith("passed: "), text


@pytest.mark.slow
def test_blank_release_scores_zero_with_one_message_per_exercise(notebooks, source_nb):
    """Blank, every test cell ends in the one NotDone message (no traceback through the checker), and every
    given cell that needs an exercise prints one line saying which to complete, and draws nothing."""
    student_nb = notebooks.student_version(source_nb)
    harness.assert_no_leaks(source_nb, student_nb, at_least=10)
    executed = notebooks.execute(student_nb)
    harness.assert_zero_everywhere(notebooks.grade(executed), TEST_CELLS.values())
    waiting = 0
    for cell in executed.cells:
        grade_id = cell_grade_id(cell) or ""
        if grade_id in TEST_CELLS.values():
            (error,) = [out for out in cell.outputs if out.output_type == "error"]
            assert error.ename == "NotDone"
            assert "\n".join(error.traceback).endswith(str(NotDone(grade_id.removeprefix("test_"))))
            assert len(error.traceback) == 1 and "lesson01.py" not in error.traceback[0]
        elif "with demo(" in cell.source:
            waiting += 1
            # one print may arrive as several stdout messages, so their texts are joined
            assert {out.get("name") for out in cell.outputs} == {"stdout"}, cell.source[:80]
            text = "".join(out.text for out in cell.outputs)
            assert re.fullmatch(r"Complete exercises? [0-9, and]+( \(\w+\))?, then run this cell again\.\n",
                                text), text
    assert waiting == 5


def test_a_demo_cell_after_a_wrong_answer_prints_one_line_naming_the_exercise(capsys):
    """forward_difference without `return` breaks the error table: one line naming exercises 1-3' tests,
    not a traceback pointing into the demo."""
    no_return = SOLUTIONS["forward_difference"].replace("return (f(x + h)", "(f(x + h)")
    ns = harness.answer_namespace(NOTEBOOK, {"forward_difference": harness.answer_cell(no_return, HEADER)})
    table = next(cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells
                 if cell.cell_type == "code" and "with demo(" in cell.source and "fwd ratio" in cell.source)
    exec(table, ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("This demo raised TypeError"), lines
    assert lines[1] == "Run the test cells of exercises 1, 2 and 3: they name the cause.", lines


# Judged as grading judges it: the test cells run in the grader's process, the answers are served over the
# grading channel (Remote functions, grader-side test functions as callbacks, arrays written back).


def test_judged_the_solved_notebook_earns_full_marks():
    harness.assert_full_marks(harness.judged_in_process(NOTEBOOK), TEST_CELLS.values())


@pytest.mark.parametrize(("name", "bug"), [(name, bug) for name, bugs in BUGS.items() for bug in bugs])
def test_judged_each_bug_loses_only_its_own_points_and_names_its_cause(name, bug):
    source, fragment = BUGS[name][bug]
    scores = harness.judged_in_process(NOTEBOOK, {name: harness.answer_cell(source, HEADER)})
    harness.assert_only_cells_lose_points(scores, [TEST_CELLS[name]], what=f"{bug} in {name}")
    assert fragment in scores[TEST_CELLS[name]].error, scores[TEST_CELLS[name]].error


def test_judged_correct_solutions_in_another_style_earn_full_marks():
    answers = {name: harness.answer_cell(body, HEADER) for name, body in OTHER_STYLES.items()}
    harness.assert_full_marks(harness.judged_in_process(NOTEBOOK, answers), TEST_CELLS.values())


# Through a real kernel and nbgrader's scoring, representatives only (in one run: each is in its own
# exercise): the judged tests above run every bug through the grading channel. One changes x in place (the
# kernel's write-back of a mutated argument).
BUG_CASES = [("central_difference", "divides_by_h"), ("numerical_gradient", "changes_x")]


@pytest.mark.slow
def test_typical_bugs_lose_only_their_own_points(notebooks, source_nb):
    nb = source_nb
    for name, bug in BUG_CASES:
        nb = notebooks.with_cell_source(nb, name, harness.answer_cell(BUGS[name][bug][0], HEADER))
    scores = harness.run_and_grade(notebooks, nb)
    harness.assert_only_cells_lose_points(scores, [TEST_CELLS[name] for name, _ in BUG_CASES],
                                          what=" and ".join(bug for _, bug in BUG_CASES))
    for name, bug in BUG_CASES:
        assert BUGS[name][bug][1] in scores[TEST_CELLS[name]].error, scores[TEST_CELLS[name]].error


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer (tests/test_student_kit.py runs
# the notebook against the real installed kit)
# ---------------------------------------------------------------------------------------------------------

def test_visible_module_holds_no_solution_line(source_nb):
    harness.assert_module_holds_no_solution_line(Path(visible.__file__), source_nb, at_least=11)
