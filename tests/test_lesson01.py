"""Lesson 01 (finite differences): the check functions directly, then the notebook as nbgrader grades it.

Each wrong solution below is a mistake students make; it is used twice: exec'd and handed to the check
functions (fast unit tests), and injected into the notebook in place of the solution (slow tests: that
exercise must lose its points and every other exercise keep them).
"""

from __future__ import annotations

import re
from pathlib import Path

import lesson_harness as harness
import numpy as np
import pytest

from autograder import lesson01 as visible
from autograder.checks import CheckFailure
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
""", "other order"),
    },
    "backward_difference": {
        "forward_instead": (renamed("forward_difference", "backward_difference"),
                            "FORWARD"),
        "sign_flipped": ("""
def backward_difference(f, x, h):
    return (f(x - h) - f(x)) / h
""", "other order"),
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
    },
}

CHECKS = {name: (getattr(visible, f"check_{name}"), getattr(hidden, f"check_{name}")) for name in SOLUTIONS}


def define(source: str, name: str):
    """Execute one solution's source and return the function it defines."""
    namespace: dict = {}
    exec(HEADER + source, namespace)
    return namespace[name]


# ---------------------------------------------------------------------------------------------------------
# The check functions, without notebooks
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_correct_solution_passes_visible_and_hidden_checks_on_many_seeds(name):
    fn = define(SOLUTIONS[name], name)
    check_visible, check_hidden = CHECKS[name]
    for seed in range(25):
        check_visible(fn, seed=seed)
        check_hidden(fn, seed=seed)


@pytest.mark.parametrize("name", sorted(OTHER_STYLES))
def test_other_correct_styles_pass(name):
    fn = define(OTHER_STYLES[name], name)
    check_visible, check_hidden = CHECKS[name]
    for seed in range(25):
        check_visible(fn, seed=seed)
        check_hidden(fn, seed=seed)


@pytest.mark.parametrize(
    ("name", "bug"), [(name, bug) for name, bugs in BUGS.items() for bug in bugs]
)
def test_each_bug_fails_the_visible_check_with_a_useful_message(name, bug):
    source, fragment = BUGS[name][bug]
    fn = define(source, name)
    check_visible, _ = CHECKS[name]
    for seed in range(10):
        with pytest.raises(CheckFailure) as info:
            check_visible(fn, seed=seed)
        assert fragment in str(info.value), str(info.value)
        assert "Hint" in str(info.value) or "ValueError" in str(info.value)
        assert f"seed {seed}" in str(info.value) or bug in {"no_shape_check", "assert_for_shapes"}


def test_gradient_messages_name_a_wrong_step_and_row_indexing():
    header = "def numerical_gradient(f, x, h=1e-5):"
    own_step = define(SOLUTIONS["numerical_gradient"].replace(header, header + "\n    h = 0.05"),
                      "numerical_gradient")
    rows = define("""
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x, dtype=float)
    grad = np.zeros_like(point)
    for i in range(len(point)):
        up, down = point.copy(), point.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad
""", "numerical_gradient")
    for seed in range(5):
        with pytest.raises(CheckFailure, match="Use the h passed in"):
            visible.check_numerical_gradient(own_step, seed=seed)
        with pytest.raises(CheckFailure, match="np.ndindex"):
            visible.check_numerical_gradient(rows, seed=seed)


def test_integer_input_bug_is_caught_by_the_hidden_check():
    fn = define("""
def numerical_gradient(f, x, h=1e-5):
    point = np.array(x)
    grad = np.zeros(point.shape)
    for index in np.ndindex(point.shape):
        saved = point[index]
        point[index] = saved + h
        f_plus = f(point)
        point[index] = saved - h
        f_minus = f(point)
        point[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad
""", "numerical_gradient")
    visible.check_numerical_gradient(fn, seed=1)  # float inputs: fine
    with pytest.raises(CheckFailure, match="integers"):
        hidden.check_numerical_gradient(fn, seed=1)


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
def test_source_notebook_earns_full_marks(notebooks, source_nb):
    harness.assert_full_marks(harness.run_and_grade(notebooks, source_nb), TEST_CELLS.values())


@pytest.mark.slow
def test_student_version_has_no_solutions_or_hidden_tests_and_scores_zero(notebooks, source_nb):
    harness.assert_release_is_safe_and_blank(notebooks, source_nb, TEST_CELLS.values(), at_least=10)


# In the notebook (each case costs a kernel run): two bugs per exercise, all three for numerical_gradient;
# the unit tests above run every bug against the checks.
BUG_CASES = [
    (name, bug)
    for name, bugs in BUGS.items()
    for bug in (bugs if name == "numerical_gradient" else list(bugs)[:2])
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "bug"), BUG_CASES)
def test_a_typical_bug_loses_only_its_own_points(notebooks, source_nb, name, bug):
    nb = notebooks.with_cell_source(source_nb, name, harness.answer_cell(BUGS[name][bug][0], HEADER))
    harness.assert_only_cells_lose_points(harness.run_and_grade(notebooks, nb), [TEST_CELLS[name]],
                                          what=f"{bug} in {name}")


@pytest.mark.slow
def test_correct_solutions_in_another_style_earn_full_marks(notebooks, source_nb):
    answers = {name: harness.answer_cell(body, HEADER) for name, body in OTHER_STYLES.items()}
    harness.assert_answers_earn_full_marks(notebooks, source_nb, answers)


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

def test_visible_module_holds_no_solution_line(source_nb):
    harness.assert_module_holds_no_solution_line(Path(visible.__file__), source_nb, at_least=11)


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules(source_nb):
    harness.run_in_student_kit(harness.visible_cells_script(source_nb), LESSON)
