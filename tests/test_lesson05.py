"""Lesson 05 (vector-Jacobian products): the checks directly, then the notebook as nbgrader grades it.

The correct answers are read from the notebook itself (its solution cells with the markers removed), and
every typical bug is that answer with one or two lines replaced, so the bugs stay in step with the
notebook. Each bug is used twice: exec'd beside the notebook's given registry and handed to the checks
(fast unit tests), and judged as grading judges it (the test cells run in this process against the answers
behind the grading channel, `judge.loopback`): that exercise must lose its points and every other exercise
keep them. A few representative bugs also go through a real kernel (slow tests).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import lesson_harness as harness
import nbformat
import numpy as np
import pytest

from autograder import lesson05 as visible
from autograder.checks import CheckFailure, NotDone
from autograder.course.notebooks import cell_grade_id, nbgrader_meta, regions, without_regions
from autograder.hidden import lesson05 as hidden

NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "05_vector_vjps" / "vector_vjps.ipynb"

EXERCISES = ["unary_vjps", "unbroadcast", "binary_vjps", "matmul_vjps", "reduction_vjps", "shape_vjps",
             "softmax_vjps", "nll", "jacobian_from_vjp"]
TEST_CELLS = {name: f"test_{name}" for name in EXERCISES}
POINTS = {"unary_vjps": 4, "unbroadcast": 3, "binary_vjps": 5, "matmul_vjps": 3, "reduction_vjps": 4,
          "shape_vjps": 3, "softmax_vjps": 5, "nll": 2, "jacobian_from_vjp": 3}


def cell_sources() -> dict[str, str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return {gid: cell.source for cell in nb.cells if (gid := cell_grade_id(cell))}


CELLS = cell_sources()


def without_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line) + "\n"


SOLUTIONS = {name: without_markers(CELLS[name]) for name in EXERCISES}


def edited(name: str, *replacements: tuple[str, str]) -> str:
    """The notebook's answer to `name` with exact text replaced (each replacement must apply)."""
    source = SOLUTIONS[name]
    for old, new in replacements:
        assert old in source, f"{old!r} is not in the solution of {name}: update the bug"
        source = source.replace(old, new)
    return source


SOFTMAX_VJP = "ans * (g - np.sum(g * ans, axis=axis, keepdims=True))"
LOG_SOFTMAX_TERM = "np.exp(ans) * np.sum(g, axis=axis, keepdims=True)"

def by_finite_differences(name: str, old: str, call: str) -> str:
    """The answer to `name` with one formula replaced by a call of the notebook's finite-difference helper."""
    return edited(name, (old, call))


# grade_id -> {bug: (cell source, fragment the visible failure message must contain)}
BUGS: dict[str, dict[str, tuple[str, str]]] = {
    "unary_vjps": {
        "relu_grad_at_zero_is_one": (edited("unary_vjps", ("g * (x > 0)", "g * (x >= 0)")),
                                     "it lets g through where x is exactly 0"),
        "tanh_by_numerical_vjp": (by_finite_differences("unary_vjps", "return g * (1.0 - ans**2)",
                                                        "return numerical_vjp(np.tanh, [x], 0, g)"),
                                  "calls the notebook's numerical_vjp"),
        "exp_by_an_alias_of_the_helper": (edited(
            "unary_vjps", ("def vjp_exp(g, ans, x):", "approx = numerical_vjp\n\n\ndef vjp_exp(g, ans, x):"),
            ("return g * ans", "return approx(np.exp, [x], 0, g)")), "calls the notebook's numerical_vjp"),
        "tanh_uses_x_not_ans": (edited("unary_vjps", ("g * (1.0 - ans**2)", "g * (1.0 - x**2)")), "np.tanh"),
        "relu_of_the_gradient": (edited("unary_vjps", ("g * (x > 0)", "np.maximum(g, 0.0)")), "relu"),
        "exp_ignores_g": (edited("unary_vjps", ("return g * ans", "return ans")), "upstream gradient"),
        "exp_mutates_g": (edited("unary_vjps", ("return g * ans", "g *= ans\n    return g")), "in place"),
        "relu_writes_into_g": (edited("unary_vjps", ("return g * (x > 0)", "g[x <= 0] = 0\n    return g")),
                               "in place"),
        "relu_returns_a_list": (edited("unary_vjps", ("return g * (x > 0)", "return (g * (x > 0)).tolist()")),
                                "not a numpy array"),
        "log_times_x": (edited("unary_vjps", ("return g / x", "return g * x")), "np.log"),
        "tanh_squares_one_minus_ans": (edited("unary_vjps", ("g * (1.0 - ans**2)", "g * (1.0 - ans) ** 2")),
                                       "np.tanh"),
    },
    "unbroadcast": {
        "leading_axes_only": (edited("unbroadcast", ("    if stretched:\n", "    if False:\n")), "stretched"),
        "stretched_without_keepdims": (edited("unbroadcast", ("axis=stretched, keepdims=True)",
                                                              "axis=stretched)")), "keepdims=True"),
        "always_sums_axis_0": ("import numpy as np\n\ndef unbroadcast(g, shape):\n"
                               "    return g.sum(axis=0) if g.shape != tuple(shape) else g\n", "unbroadcast"),
        "by_numerical_vjp": ("import numpy as np\n\ndef unbroadcast(g, shape):\n    return numerical_vjp("
                             "lambda v: np.broadcast_to(v, g.shape), [np.zeros(shape)], 0, g)\n",
                             "calls the notebook's numerical_vjp"),
        "python_float_for_a_scalar": (edited("unbroadcast", ("    shape = tuple(shape)\n",
                                                             "    shape = tuple(shape)\n    if shape == ():\n"
                                                             "        return float(g.sum())\n")),
                                      "not a numpy array"),
        "two_leading_axes_at_most": (edited("unbroadcast", ("g.sum(axis=tuple(range(extra)))",
                                                            "g.sum(axis=tuple(range(min(extra, 2))))")),
                                     "leading"),
    },
    "binary_vjps": {
        "add_forgot_unbroadcast": (edited("binary_vjps", ("return unbroadcast(g, np.shape(x))\n",
                                                          "return g\n"),
                                          ("return unbroadcast(g, np.shape(y))\n", "return g\n")),
                                   "unbroadcast"),
        "power_wrong_exponent": (edited("binary_vjps", ("x ** (y - 1)", "x ** y")), "np.power"),
        "divide_y_sign": (edited("binary_vjps", ("-g * x / y**2", "g * x / y**2")), "np.divide"),
        "multiply_by_numerical_vjp": (by_finite_differences(
            "binary_vjps", "return unbroadcast(g * y, np.shape(x))",
            "return numerical_vjp(np.multiply, [x, y], 0, g)"),
            "calls the notebook's numerical_vjp"),
    },
    "matmul_vjps": {
        "no_transposes": (edited("matmul_vjps", ("g @ b.T", "g @ b"), ("a.T @ g", "a @ g")), "np.matmul"),
        "b_grad_in_wrong_order": (edited("matmul_vjps", ("a.T @ g", "g.T @ a")), "transposed"),
        "by_numerical_vjp": (by_finite_differences("matmul_vjps", "return g @ b.T",
                                                   "return numerical_vjp(np.matmul, [a, b], 0, g)"),
                             "calls the notebook's numerical_vjp"),
    },
    "reduction_vjps": {
        "sum_forgets_expand_dims": (edited("reduction_vjps", ("if axis is not None and not keepdims:",
                                                              "if False:")), "keepdims=False"),
        "mean_missing_1_over_n": (edited("reduction_vjps", (") / n\n", ")\n")), "np.mean"),
        "sum_returns_read_only_view": (edited("reduction_vjps", ("np.broadcast_to(g, np.shape(x)).copy()",
                                                                 "np.broadcast_to(g, np.shape(x))")),
                                       "read-only"),
        "sum_by_numerical_vjp": (by_finite_differences(
            "reduction_vjps", "return np.broadcast_to(g, np.shape(x)).copy()",
            "return numerical_vjp(lambda v: np.sum(v, axis=axis, keepdims=keepdims), [x], 0, g)"),
            "calls the notebook's numerical_vjp"),
        "sum_integer_axes_only": (edited("reduction_vjps", (
            "np.expand_dims(g, axis)", "np.expand_dims(g, axis % np.ndim(x))")), "tuple"),
        "mean_n_from_one_axis": (edited("reduction_vjps", (
            "n = np.size(x) // np.size(ans)", "n = np.size(x) if axis is None else np.shape(x)[axis]")),
            "tuple"),
        "mean_n_of_axis_none": (edited("reduction_vjps", (
            "n = np.size(x) // np.size(ans)", "n = np.shape(x)[axis]")), "for every axis argument"),
        "mean_divides_by_every_entry": (edited("reduction_vjps", (
            "n = np.size(x) // np.size(ans)", "n = np.size(x)")), "averaged into each output"),
        "mean_ignores_g": (edited("reduction_vjps", (
            "return vjp_sum(g, ans, x,", "return vjp_sum(np.ones_like(g), ans, x,")),
            "you ignored the upstream gradient g"),
    },
    "shape_vjps": {
        "transpose_not_inverted": (edited("shape_vjps", ("np.argsort([axis % np.ndim(x) for axis in axes])",
                                                         "axes")), "np.transpose"),
        "reshape_to_output_shape": (edited("shape_vjps", ("np.reshape(g, np.shape(x))",
                                                          "np.reshape(g, np.shape(ans))")), "np.reshape"),
        "reshape_by_transposing": (edited("shape_vjps", ("np.reshape(g, np.shape(x))",
                                                         "np.reshape(np.transpose(g), np.shape(x))")),
                                   "np.reshape"),
        "transpose_by_numerical_vjp": (by_finite_differences(
            "shape_vjps", "return np.transpose(g, np.argsort([axis % np.ndim(x) for axis in axes]))",
            "return numerical_vjp(lambda v: np.transpose(v, axes), [x], 0, g)"), "calls the notebook's"),
        "transpose_ignores_negative_axes": (edited("shape_vjps", (
            "np.argsort([axis % np.ndim(x) for axis in axes])", "np.argsort(axes)")), "negative axes"),
    },
    "softmax_vjps": {
        "softmax_diagonal_only": (edited("softmax_vjps", (SOFTMAX_VJP, "g * ans * (1.0 - ans)")),
                                  "only the diagonal"),
        "softmax_ignores_g": (edited("softmax_vjps", (SOFTMAX_VJP, "ans * (1.0 - ans)")), "softmax"),
        "softmax_sums_the_whole_array": (edited("softmax_vjps", (SOFTMAX_VJP, "ans * (g - np.sum(g * ans))")),
                                         "not one for the whole array"),
        "softmax_sum_without_keepdims": (edited("softmax_vjps", (
            SOFTMAX_VJP, "ans * (g - np.sum(g * ans, axis=axis))")), "kept as a length-1 axis"),
        "softmax_fixed_axis": (edited("softmax_vjps",
                                      (SOFTMAX_VJP, "ans * (g - np.sum(g * ans, axis=-1, keepdims=True))")),
                               "whatever `axis`"),
        "cross_entropy_missing_1_over_n": (edited("softmax_vjps", ("g * probs / n", "g * probs")),
                                           "MEAN over the batch"),
        "cross_entropy_no_onehot": (edited("softmax_vjps", ("probs[np.arange(n), labels] -= 1.0", "pass")),
                                    "one-hot term"),
        "cross_entropy_ignores_g": (edited("softmax_vjps", ("g * probs / n", "probs / n")),
                                    "upstream gradient g"),
        "log_softmax_forgets_sum": (edited("softmax_vjps", (LOG_SOFTMAX_TERM, "np.exp(ans)")),
                                    "softmax alone"),
        "log_softmax_ans_as_softmax": (edited("softmax_vjps", (LOG_SOFTMAX_TERM,
                                                               "ans * np.sum(g, axis=axis, keepdims=True)")),
                                       "LOG-softmax"),
        "softmax_by_numerical_vjp": (edited("softmax_vjps", (
            SOFTMAX_VJP, "numerical_vjp(lambda v: softmax(v, axis), [x], 0, g)")),
                                     "calls the notebook's numerical_vjp"),
        "cross_entropy_labels_not_registered": (edited("softmax_vjps", (
            "defvjp(cross_entropy, vjp_cross_entropy, None)", "defvjp(cross_entropy, vjp_cross_entropy)")),
            "registered nothing for the labels"),
        "cross_entropy_labels_get_a_vjp": (edited("softmax_vjps", (
            "defvjp(cross_entropy, vjp_cross_entropy, None)",
            "defvjp(cross_entropy, vjp_cross_entropy, vjp_cross_entropy)")), "with None"),
    },
    "nll": {
        "no_minus_sign": (edited("nll", ("float(-np.mean(", "float(np.mean(")), "MINUS the log"),
        "sum_not_mean": (edited("nll", ("np.mean(np.log(picked))", "np.sum(np.log(picked))")), "MEAN"),
        "log2": (edited("nll", ("np.log(picked)", "np.log2(picked)")), "natural log"),
        "log10": (edited("nll", ("np.log(picked)", "np.log10(picked)")), "natural log"),
        "mean_over_every_class": (edited("nll", ("np.mean(np.log(picked))", "np.mean(np.log(probs))")),
                                  "NOT the labels"),
        "no_log": (edited("nll", ("float(-np.mean(np.log(picked)))", "float(np.mean(1.0 - picked))")),
                   "not 1 - p"),
        "returns_an_array": (edited("nll", ("float(-np.mean(np.log(picked)))", "-np.log(picked)")),
                             "one finite number"),
        "returns_a_length_1_array": (edited("nll", ("float(-np.mean(np.log(picked)))",
                                                    "np.array([-np.mean(np.log(picked))])")), "shape (1,)"),
        "changes_probs_in_place": (edited("nll", (
            "    picked = probs[", "    probs += 1e-12\n    picked = probs[")), "never change the inputs"),
    },
    "jacobian_from_vjp": {
        "transposed": (edited("jacobian_from_vjp", ("np.zeros((y.size, np.size(x)))",
                                                    "np.zeros((np.size(x), y.size))"),
                              ("J[i, :] =", "J[:, i] =")), "ROW"),
        "fills_columns": (edited("jacobian_from_vjp", ("J[i, :] =", "J[:, i] =")), "rows are VJPs"),
        "unit_vector_not_reshaped": (edited("jacobian_from_vjp", ("pullback(e.reshape(y.shape))",
                                                                  "pullback(e)")), "reshape"),
        "all_ones_upstream": (edited("jacobian_from_vjp", ("pullback(e.reshape(y.shape))",
                                                           "pullback(np.ones(y.shape))")), "unit vector"),
        "integer_jacobian": (edited("jacobian_from_vjp", ("np.zeros((y.size, np.size(x)))",
                                                          "np.zeros((y.size, np.size(x)), dtype=int)")),
                             "integer"),
        "float32_jacobian": (edited("jacobian_from_vjp", ("np.zeros((y.size, np.size(x)))",
                                                          "np.zeros((y.size, x.size), dtype=np.float32)")),
                             "must return a float64 array"),
        "rows_not_flattened": ("""
import numpy as np

def jacobian_from_vjp(f, x):
    y, pullback = f(x)
    rows = []
    for i in range(y.size):
        e = np.zeros(y.shape)
        e.flat[i] = 1.0
        rows.append(pullback(e))
    return np.array(rows)
""", "np.ravel"),
        "returns_a_list": (edited("jacobian_from_vjp", ("    return J\n", "    return J.tolist()\n")),
                           "not a numpy array"),
        "calls_f_for_every_row": ("""
import numpy as np

def jacobian_from_vjp(f, x):
    rows = []
    for i in range(np.size(f(x)[0])):
        y, pullback = f(x)
        e = np.zeros(y.shape)
        e.flat[i] = 1.0
        rows.append(np.ravel(pullback(e)))
    return np.array(rows)
""", "called f"),
        "by_numerical_jacobian": ("import numpy as np\n\ndef jacobian_from_vjp(f, x):\n"
                                  "    return numerical_jacobian(lambda v: f(v)[0], x)\n",
                                  "calls the notebook's numerical_jacobian"),
    },
}

# Correct answers written differently from the notebook's: full marks too.
OTHER_STYLES = {
    "unary_vjps": """
def vjp_negative(g, ans, x):
    return np.negative(g)

def vjp_exp(g, ans, x):
    return np.exp(x) * g

def vjp_log(g, ans, x):
    return g * (1.0 / x)

def vjp_tanh(g, ans, x):
    return g / np.cosh(x) ** 2

def vjp_relu(g, ans, x):
    return np.where(ans > 0, g, 0.0)

for fun, vjp in [(np.negative, vjp_negative), (np.exp, vjp_exp), (np.log, vjp_log), (np.tanh, vjp_tanh),
                 (relu, vjp_relu)]:
    defvjp(fun, vjp)
""",
    "unbroadcast": """
def unbroadcast(g, shape):
    while np.ndim(g) > len(shape):
        g = np.sum(g, axis=0)
    for axis in range(len(shape)):
        if shape[axis] == 1:
            g = np.sum(g, axis=axis, keepdims=True)
    return g
""",
    "binary_vjps": """
defvjp(np.add, lambda g, ans, x, y: unbroadcast(g, x.shape), lambda g, ans, x, y: unbroadcast(g, y.shape))
defvjp(np.subtract, lambda g, ans, x, y: unbroadcast(g, x.shape),
       lambda g, ans, x, y: unbroadcast(np.negative(g), y.shape))
defvjp(np.multiply, lambda g, ans, x, y: unbroadcast(y * g, x.shape),
       lambda g, ans, x, y: unbroadcast(x * g, y.shape))
defvjp(np.divide, lambda g, ans, x, y: unbroadcast(g / y, x.shape),
       lambda g, ans, x, y: unbroadcast(-g * ans / y, y.shape))
defvjp(np.power, lambda g, ans, x, y: unbroadcast(g * y * ans / x, x.shape),
       lambda g, ans, x, y: unbroadcast(g * ans * np.log(x), y.shape))
""",
    "matmul_vjps": """
defvjp(np.matmul,
       lambda g, ans, a, b: np.einsum("ij,kj->ik", g, b),
       lambda g, ans, a, b: np.dot(np.transpose(a), g))
""",
    "reduction_vjps": """
def vjp_sum(g, ans, x, axis=None, keepdims=False):
    if axis is None:
        axes = tuple(range(np.ndim(x)))
    else:
        axes = tuple(a % np.ndim(x) for a in np.atleast_1d(axis))
    kept = tuple(1 if i in axes else n for i, n in enumerate(np.shape(x)))
    return np.zeros(np.shape(x)) + np.reshape(g, kept)

def vjp_mean(g, ans, x, axis=None, keepdims=False):
    grad = vjp_sum(g, ans, x, axis, keepdims)
    return grad * (np.size(ans) / np.size(x))

defvjp(np.sum, vjp_sum)
defvjp(np.mean, vjp_mean)
""",
    "shape_vjps": """
def vjp_reshape(g, ans, x, shape):
    return g.reshape(x.shape)

def vjp_transpose(g, ans, x, axes=None):
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    inverse = [0] * len(axes)
    for out_axis, in_axis in enumerate(axes):
        inverse[in_axis] = out_axis
    return g.transpose(inverse)

defvjp(np.reshape, vjp_reshape)
defvjp(np.transpose, vjp_transpose)
""",
    "softmax_vjps": """
def vjp_softmax(g, ans, x, axis=-1):
    g_moved, s_moved = np.moveaxis(g, axis, -1), np.moveaxis(ans, axis, -1)
    out = np.empty_like(s_moved)
    for idx in np.ndindex(s_moved.shape[:-1]):
        s = s_moved[idx]
        out[idx] = g_moved[idx] @ (np.diag(s) - np.outer(s, s))
    return np.moveaxis(out, -1, axis)

def vjp_log_softmax(g, ans, x, axis=-1):
    return g - softmax(x, axis=axis) * g.sum(axis=axis, keepdims=True)

def vjp_cross_entropy(g, ans, logits, labels):
    onehot = np.eye(logits.shape[1])[labels]
    return (softmax(logits) - onehot) * (g / len(labels))

defvjp(softmax, vjp_softmax)
defvjp(log_softmax, vjp_log_softmax)
defvjp(cross_entropy, vjp_cross_entropy, None)
""",
    "nll": """
def nll(probs, labels):
    onehot = np.eye(probs.shape[1])[labels]
    return -np.sum(onehot * np.log(probs)) / len(labels)
""",
    "jacobian_from_vjp": """
def jacobian_from_vjp(f, x):
    y, vjp = f(x)
    basis = np.eye(np.size(y))
    return np.stack([np.reshape(vjp(row.reshape(np.shape(y))), -1) for row in basis])
""",
}


def namespace(cells: dict[str, str]) -> dict:
    """Run the notebook's given registry, then the answer cells in notebook order, in a fresh namespace."""
    ns: dict = {}
    exec("import numpy as np\n" + CELLS["given_numerical"] + "\n" + CELLS["given_registry"], ns)
    for name in EXERCISES:
        if name in cells:
            exec("import numpy as np\n" + cells[name], ns)
    return ns


def run_check(module, name: str, ns: dict, seed: int | None = None) -> str:
    """Call the check of exercise `name` from `module` as its test cell does; return what it printed."""
    calls: dict[str, Callable] = {
        "unary_vjps": lambda: module.check_unary_vjps(ns["vjps_of"], ns["relu"], seed=seed),
        "unbroadcast": lambda: module.check_unbroadcast(ns["unbroadcast"], seed=seed),
        "binary_vjps": lambda: module.check_binary_vjps(ns["vjps_of"], seed=seed),
        "matmul_vjps": lambda: module.check_matmul_vjps(ns["vjps_of"], seed=seed),
        "reduction_vjps": lambda: module.check_reduction_vjps(ns["vjps_of"], seed=seed),
        "shape_vjps": lambda: module.check_shape_vjps(ns["vjps_of"], seed=seed),
        "softmax_vjps": lambda: module.check_softmax_vjps(ns["vjps_of"], ns["softmax"], ns["log_softmax"],
                                                          ns["cross_entropy"], seed=seed),
        "nll": lambda: module.check_nll(ns["nll"], seed=seed),
        "jacobian_from_vjp": lambda: module.check_jacobian_from_vjp(ns["jacobian_from_vjp"], seed=seed),
    }
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        calls[name]()
    return out.getvalue()


def with_answer(name: str, source: str) -> dict:
    cells = dict(SOLUTIONS)
    cells[name] = source
    return namespace(cells)


# ---------------------------------------------------------------------------------------------------------
# The check functions, without notebooks
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXERCISES)
def test_the_notebook_solution_passes_visible_and_hidden_checks_on_many_seeds(name):
    ns = namespace(SOLUTIONS)
    for seed in range(3):
        run_check(visible, name, ns, seed)
        run_check(hidden, name, ns, seed)


@pytest.mark.parametrize("name", sorted(OTHER_STYLES))
def test_other_correct_styles_pass(name):
    ns = with_answer(name, OTHER_STYLES[name])
    for seed in range(3):
        run_check(visible, name, ns, seed)
        run_check(hidden, name, ns, seed)


BUG_CASES = [(name, bug) for name, bugs in BUGS.items() for bug in bugs]


@pytest.mark.parametrize(("name", "bug"), BUG_CASES)
def test_each_bug_fails_visible_and_hidden_checks_with_a_useful_message(name, bug):
    source, fragment = BUGS[name][bug]
    ns = with_answer(name, source)
    messages: dict = {}
    for seed in range(2):
        for module in (visible, hidden):
            with pytest.raises(CheckFailure) as info:
                run_check(module, name, ns, seed)
            message = str(info.value)
            messages[module] = message
            if module is visible:
                assert "Hint" in message, message
                hints = [line.strip() for line in message.splitlines() if line.strip().startswith("Hint:")]
                assert len(hints) == 1, f"one hint per message:\n{message}"
            assert not re.search(r"(^|\n) *your ", message), f"a line starts in lower case:\n{message}"
            closing = message.splitlines()[-1]
            if module is visible:
                assert closing.startswith("Run checks.check_") and closing.endswith(
                    f", seed={seed}) in a cell of your own to repeat this exact test."), message
            else:
                assert closing == f"(seed {seed}: the grader's hidden test)", message
            assert "The VJP for input" not in message and len(message) < 1000, message
        # a mistake only the grader's hidden module can name (it is one step from the answer) is named there
        assert fragment in messages[visible] or fragment in messages[hidden], messages


# ---------------------------------------------------------------------------------------------------------
# The grading path: test cells judged in this process, the answers behind the grading channel
# ---------------------------------------------------------------------------------------------------------

GRADED_SOURCES = {cell_grade_id(cell): cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells
                  if (meta := nbgrader_meta(cell)).get("grade") and not meta.get("solution")}


def judged(ns: dict, grade_ids: list[str], *, hidden_only: bool = False) -> dict[str, str | None]:
    """grade_id -> the first error of that test cell judged as grading judges it (None: full marks), with
    ``ns`` (the answers) served over the real channel. ``hidden_only`` judges only the hidden tests."""
    from autograder.course.judge import judge, loopback

    errors: dict[str, str | None] = {}
    with loopback(ns) as channel:
        for grade_id in grade_ids:
            source = GRADED_SOURCES[grade_id]
            if hidden_only:
                source = "".join(regions(source, ("HIDDEN TESTS",)))
            outputs = judge(source, channel, f"<test cell {grade_id}>")
            found = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
            errors[grade_id] = found[0] if found else None
    return errors


def test_the_solutions_earn_full_marks_when_judged():
    assert judged(namespace(SOLUTIONS), list(TEST_CELLS.values())) == dict.fromkeys(TEST_CELLS.values())


def test_the_lessons_registry_has_the_contract_of_reference_impl_vjp():
    """The notebook's defvjp/vjps_of table and reference_impl.vjp's agree: one VJP per array argument,
    called vjp(g, ans, *inputs, **params), None for the labels; the notebook's solutions give the reference's
    values (the table is keyed by numpy's functions there, by the reference's own primitives here)."""
    import reference_impl.vjp as ref

    ns = namespace(SOLUTIONS)
    rng = np.random.default_rng(3)
    labels = np.array([2, 0, 1])
    pos = rng.uniform(0.5, 2.0, (3, 4))
    # (notebook key, reference primitive, array inputs, extra positional arguments, keyword parameters)
    cases = [(np.negative, ref.negative, [rng.standard_normal((3, 4))], (), {}),
             (np.exp, ref.exp, [rng.standard_normal((3, 4))], (), {}),
             (np.log, ref.log, [pos], (), {}),
             (np.tanh, ref.tanh, [rng.standard_normal((3, 4))], (), {}),
             (ns["relu"], ref.relu, [rng.standard_normal((3, 4))], (), {}),
             (np.add, ref.add, [rng.standard_normal((3, 4)), rng.standard_normal((4,))], (), {}),
             (np.subtract, ref.subtract, [rng.standard_normal(()), rng.standard_normal((3, 4))], (), {}),
             (np.multiply, ref.multiply, [rng.standard_normal((3, 1)), rng.standard_normal((1, 4))], (), {}),
             (np.divide, ref.divide, [rng.standard_normal((3, 4)), pos], (), {}),
             (np.power, ref.power, [pos, rng.standard_normal((4,))], (), {}),
             (np.matmul, ref.matmul, [rng.standard_normal((3, 5)), rng.standard_normal((5, 2))], (), {}),
             (np.sum, ref.sum, [rng.standard_normal((2, 3, 4))], (), {"axis": (0, 2)}),
             (np.mean, ref.mean, [rng.standard_normal((2, 3, 4))], (), {"axis": -1, "keepdims": True}),
             (np.reshape, ref.reshape, [rng.standard_normal((3, 4))], ((2, 6),), {}),
             (np.transpose, ref.transpose, [rng.standard_normal((2, 3, 4))], ((2, 0, 1),), {}),
             (ns["softmax"], ref.softmax, [rng.standard_normal((3, 4))], (), {"axis": 0}),
             (ns["log_softmax"], ref.log_softmax, [rng.standard_normal((3, 4))], (), {"axis": -1}),
             (ns["cross_entropy"], ref.cross_entropy, [rng.standard_normal((3, 4))], (labels,), {})]
    for key, primitive, xs, extra, params in cases:
        ans = np.asarray(primitive(*xs, *extra, **params))
        assert np.allclose(ans, key(*xs, *extra, **params))
        g = rng.standard_normal(ans.shape)
        mine, theirs = ns["vjps_of"](key), ref.vjps_of(primitive)
        assert len(mine) == len(theirs), primitive.__name__
        for v, w in zip(mine, theirs, strict=True):
            assert (v is None) == (w is None), primitive.__name__
            if v is not None:
                assert np.allclose(v(g, ans, *xs, *extra, **params), w(g, ans, *xs, *extra, **params),
                                   rtol=1e-12, atol=1e-14), primitive.__name__


def test_other_correct_styles_earn_full_marks_when_judged():
    cells = dict(SOLUTIONS)
    cells.update(OTHER_STYLES)
    assert judged(namespace(cells), list(TEST_CELLS.values())) == dict.fromkeys(TEST_CELLS.values())


# exercises whose test cells a bug elsewhere could reach: the binary VJPs call the notebook's unbroadcast
REACHES = {"unbroadcast": ["binary_vjps"]}


@pytest.mark.parametrize(("name", "bug"), BUG_CASES)
def test_each_bug_loses_its_exercise_when_judged(name, bug):
    """Graded as grading does: the bug's test cell fails naming the cause (the visible message, or the hidden
    one for a mistake only the grader names), and the cells it could reach keep their points."""
    source, fragment = BUGS[name][bug]
    own = TEST_CELLS[name]
    errors = judged(with_answer(name, source), [own] + [TEST_CELLS[other] for other in REACHES.get(name, [])])
    assert errors[own] is not None and errors[own].startswith("CheckFailure"), errors[own]
    assert {k: v for k, v in errors.items() if k != own} == dict.fromkeys(set(errors) - {own})
    assert "Hint" in errors[own], errors[own]
    if fragment not in errors[own]:
        hidden_error = judged(with_answer(name, source), [own], hidden_only=True)[own]
        assert hidden_error is not None and fragment in hidden_error, (errors[own], hidden_error)


@pytest.mark.parametrize("name", sorted(BUGS))
def test_a_bug_costs_no_other_exercise_its_points_when_judged(name):
    """Every test cell judged, with each exercise's first bug in place: only that exercise loses points
    (all bugs of every exercise are checked against their own cell above, and the cells they reach)."""
    errors = judged(with_answer(name, next(iter(BUGS[name].values()))[0]), list(TEST_CELLS.values()))
    assert {k for k, v in errors.items() if v is not None} == {TEST_CELLS[name]}, errors


def test_messages_name_the_call_the_student_ran_and_only_relevant_hints():
    def message(name: str, bug: str) -> str:
        with pytest.raises(CheckFailure) as info:
            run_check(visible, name, with_answer(name, BUGS[name][bug][0]), seed=7)
        return str(info.value)

    text = message("matmul_vjps", "no_transposes")
    assert text.endswith("\nRun checks.check_matmul_vjps(vjps_of, seed=7) in a cell of your own to repeat "
                         "this exact test.") and "check_vjp(" not in text, text
    text = message("shape_vjps", "transpose_not_inverted")
    assert "INVERSE permutation" in text and "reshape the gradient back" not in text, text
    text = message("reduction_vjps", "mean_missing_1_over_n")
    assert "expand_dims" not in text and "divides by n" in text, text
    text = message("softmax_vjps", "softmax_ignores_g")
    assert "whatever `axis`" not in text, text


def test_a_stub_unbroadcast_is_named_and_not_blamed_on_the_binary_vjps():
    ns = namespace(SOLUTIONS)
    exec("def unbroadcast(g, shape):\n    raise NotImplementedError()\n", ns)
    printed = run_check(visible, "binary_vjps", ns, seed=4)
    assert "unbroadcast is not written yet (exercise 2)" in printed and "SKIPPED" in printed, printed
    assert len(printed.splitlines()) == 1 and printed.startswith("NOT FULLY CHECKED: ")
    run_check(hidden, "binary_vjps", ns, seed=4)
    with pytest.raises(NotDone):
        run_check(visible, "unbroadcast", ns, seed=4)


def test_an_undefined_unbroadcast_says_run_exercise_2_first_and_is_not_left_behind():
    """After a kernel restart the binary VJPs' cell may run before exercise 2's: no NameError, no lost
    points."""
    ns = namespace({name: SOLUTIONS[name] for name in EXERCISES if name != "unbroadcast"})
    assert "unbroadcast" not in ns
    printed = run_check(visible, "binary_vjps", ns, seed=4)
    assert printed.startswith("NOT FULLY CHECKED: ") and "run Exercise 2's cell first" in printed, printed
    assert "NameError" not in printed
    run_check(hidden, "binary_vjps", ns, seed=4)
    assert "unbroadcast" not in ns


def test_hints_fit_the_mistake_and_hand_over_no_formula():
    """The visible checks (no named mistakes): a hint names the rule, never a formula that answers the
    exercise, and never a mistake the student did not make."""
    def message(name: str, bug: str) -> str:
        with pytest.raises(CheckFailure) as info:
            run_check(visible, name, with_answer(name, BUGS[name][bug][0]), seed=5)
        return str(info.value)

    assert "not the output" not in message("unary_vjps", "log_times_x")
    assert "OUTPUT" not in message("unary_vjps", "tanh_squares_one_minus_ans")
    text = message("softmax_vjps", "cross_entropy_ignores_g")
    assert "ignored the upstream gradient g" in text and "right one times -" not in text, text
    text = message("reduction_vjps", "mean_n_of_axis_none")
    assert "averaged into each output" in text and "broadcast" not in text, text
    text = message("shape_vjps", "transpose_ignores_negative_axes")
    assert "negative axes" in text and "argsort" not in text, text
    text = message("unbroadcast", "stretched_without_keepdims")  # keepdims is the fix, not a reshape
    assert "keepdims=True" in text and "reshape" not in text, text
    for bug in ("mean_missing_1_over_n", "mean_divides_by_every_entry"):  # the ratio is a fact, n the cause
        text = message("reduction_vjps", bug)
        assert text.count("Hint:") == 1 and "An integer factor" not in text and "divides by n" in text, text
    text = message("softmax_vjps", "softmax_fixed_axis")
    assert text.count("Hint:") == 1 and "whatever `axis`" in text and "diag(s)" not in text, text
    formulas = ["1 - tanh(x)**2", "1/x", "x ** (y - 1)", "-x/y**2", "s (g - <g, s>)", "onehot(labels))",
                "np.argsort(axes)", "np.expand_dims(g, axis)", "x.size // ans.size", "np.broadcast_to(g"]
    for name, bug in BUG_CASES:
        text = message(name, bug)
        assert not [f for f in formulas if f in text], text


def test_the_text_hands_over_no_solution_line():
    """No line of an answer (return values included) appears in the notebook's text or given code; the one
    exception is exercise 8's interface, y, pullback = f(x), which the exercise states."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    given = [cell.source for cell in nb.cells if not nbgrader_meta(cell).get("solution")]
    lines = {line.strip().removeprefix("return ").strip() for name in EXERCISES
             for block in regions(CELLS[name], ("SOLUTION",))
             for line in block.splitlines()}
    leaks = {line for line in lines if len(line) >= 10 and line != "y, pullback = f(x)"
             and any(line in text for text in given)}
    assert leaks == set()


def test_the_numerical_helpers_are_restored_after_a_refusal():
    ns = with_answer("unary_vjps", BUGS["unary_vjps"]["tanh_by_numerical_vjp"][0])
    helper = ns["numerical_vjp"]
    with pytest.raises(CheckFailure):
        run_check(visible, "unary_vjps", ns, seed=1)
    assert ns["numerical_vjp"] is helper


def test_matmul_is_checked_on_a_square_product_too():
    assert any(a[0] == a[1] == b[0] == b[1] for a, b in visible.MATMUL_SHAPES)


def test_a_wrong_unbroadcast_costs_no_binary_points_and_is_restored_afterwards():
    """Isolation: visible skips the broadcasting cases (and says so), hidden swaps a trusted one in."""
    broken = BUGS["unbroadcast"]["leading_axes_only"][0]
    ns = with_answer("unbroadcast", broken)
    students = ns["unbroadcast"]
    printed = run_check(visible, "binary_vjps", ns, seed=1)
    assert "SKIPPED" in printed and "exercise 2" in printed
    run_check(hidden, "binary_vjps", ns, seed=1)
    assert ns["unbroadcast"] is students
    with pytest.raises(CheckFailure):
        run_check(visible, "unbroadcast", ns, seed=1)


def test_forgetting_unbroadcast_fails_the_hidden_check_even_when_unbroadcast_is_also_broken():
    ns = with_answer("binary_vjps", BUGS["binary_vjps"]["add_forgot_unbroadcast"][0])
    exec("def unbroadcast(g, shape):\n    raise NotImplementedError()\n", ns)
    with pytest.raises(CheckFailure, match="broadcasting"):
        run_check(hidden, "binary_vjps", ns, seed=2)
    assert "def unbroadcast" not in str(ns["unbroadcast"])  # the student's name is back in place
    assert ns["unbroadcast"].__name__ == "unbroadcast" and ns["unbroadcast"] is not hidden.trusted_unbroadcast


def test_trusted_unbroadcast_is_the_vjp_of_broadcast_to():
    rng = np.random.default_rng(0)
    for shape, out in visible.UNBROADCAST_CASES + [((2, 1, 4), (5, 2, 3, 4)), ((), ())]:
        g = rng.standard_normal(out)
        expected = np.broadcast_to(g, out)
        for _ in range(len(out) - len(shape)):
            expected = expected.sum(axis=0)
        expected = np.array(expected)
        for axis, size in enumerate(shape):
            if size == 1:
                expected = expected.sum(axis=axis, keepdims=True)
        assert np.allclose(hidden.trusted_unbroadcast(g, shape), expected)
        assert hidden.trusted_unbroadcast(g, shape).shape == shape
    with pytest.raises(ValueError):
        hidden.trusted_unbroadcast(np.zeros((3, 4)), (2, 4))


def test_unimplemented_exercises_fail_with_the_course_wide_message():
    ns = namespace({"unbroadcast": "def unbroadcast(g, shape):\n    raise NotImplementedError()\n"})
    with pytest.raises(NotDone, match="^`unbroadcast` is not written yet"):
        run_check(visible, "unbroadcast", ns)
    blank = namespace({name: without_regions(CELLS[name], ("SOLUTION",), "raise NotImplementedError()")
                       for name in EXERCISES})
    plain = {"unary_vjps": "The VJP of np.negative", "binary_vjps": "The VJP of np.add for x",
             "matmul_vjps": "The VJP of np.matmul for a", "reduction_vjps": "The VJP of np.sum",
             "shape_vjps": "The VJP of np.reshape", "softmax_vjps": "The VJP of softmax"}
    for name in EXERCISES:
        for module in (visible, hidden):
            with pytest.raises(NotDone) as info:
                run_check(module, name, blank, seed=3)
            named = plain.get(name, f"`{name}`")
            assert str(info.value).startswith(f"{named} is not written yet"), info.value
    with pytest.raises(CheckFailure, match=r"defvjp\(np.negative, \.\.\.\) has not run, or it stopped "
                                           r"with an error"):
        run_check(visible, "unary_vjps", ns)


def test_a_demo_cell_after_a_wrong_answer_prints_one_line_naming_the_exercise(capsys):
    """The matmul demo with b's VJP of the wrong shape: a's line, then one line naming exercise 4's test
    instead of a traceback."""
    ns = with_answer("matmul_vjps", BUGS["matmul_vjps"]["b_grad_in_wrong_order"][0])
    demo = next(cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells
                if cell.cell_type == "code" and "with demo(" in cell.source
                and "vjps_of(np.matmul))" in cell.source)
    exec("from autograder.checks import demo\nrng = np.random.default_rng(0)\n" + demo, ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].startswith("This demo raised ValueError"), lines
    assert lines[2] == "Run the test cells of exercise 4: they name the cause.", lines


def test_the_notebook_vjps_agree_with_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: finite-difference checks still run")
    ns = namespace(SOLUTIONS)
    rng = np.random.default_rng(5)

    def arr(shape, low=None):
        return rng.uniform(low, 2.0, shape) if low else rng.standard_normal(shape)

    labels = np.array([2, 0, 1, 2, 2])
    tf = torch.nn.functional
    # (primitive, array inputs, extra forward arguments, forward keywords, the same computation in torch)
    cases = [
        (np.add, [arr((3, 4)), arr((4,))], (), {}, torch.add),
        (np.subtract, [arr(()), arr((3, 4))], (), {}, torch.sub),
        (np.multiply, [arr((1, 4)), arr((3, 4))], (), {}, torch.mul),
        (np.divide, [arr((3, 1)), arr((1, 4), 0.5)], (), {}, torch.div),
        (np.power, [arr((3, 4), 0.5), arr((4,))], (), {}, torch.pow),
        (np.negative, [arr((2, 3))], (), {}, torch.neg),
        (np.exp, [arr((2, 3))], (), {}, torch.exp),
        (np.log, [arr((2, 3), 0.5)], (), {}, torch.log),
        (np.tanh, [arr((2, 3))], (), {}, torch.tanh),
        (ns["relu"], [arr((2, 3))], (), {}, torch.relu),
        (np.matmul, [arr((3, 5)), arr((5, 2))], (), {}, torch.matmul),
        (np.sum, [arr((3, 4))], (), {"axis": 1}, lambda x: torch.sum(x, dim=1)),
        (np.mean, [arr((2, 3, 4))], (), {"axis": (0, 2), "keepdims": True},
         lambda x: torch.mean(x, dim=(0, 2), keepdim=True)),
        (np.reshape, [arr((3, 4))], ((2, 6),), {}, lambda x: torch.reshape(x, (2, 6))),
        (np.transpose, [arr((2, 3, 4))], ((1, 2, 0),), {}, lambda x: x.permute(1, 2, 0)),
        (ns["softmax"], [arr((4, 5))], (), {"axis": 0}, lambda x: torch.softmax(x, dim=0)),
        (ns["log_softmax"], [arr((4, 5))], (), {"axis": -1}, lambda x: torch.log_softmax(x, dim=-1)),
        (ns["cross_entropy"], [arr((5, 3))], (labels,), {},
         lambda z: tf.cross_entropy(z, torch.tensor(labels))),
    ]
    for fun, xs, extra, kwargs, torch_fn in cases:
        ans = np.asarray(fun(*xs, *extra, **kwargs))
        g = rng.standard_normal(ans.shape)
        tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
        torch_fn(*tensors).backward(torch.tensor(g))
        for vjp, t in zip(ns["vjps_of"](fun), tensors, strict=False):
            got = vjp(g, ans, *xs, *extra, **kwargs)
            assert np.allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12), getattr(fun, "__name__", fun)


def test_checks_draw_fresh_randomness_and_report_the_seed():
    ns = with_answer("matmul_vjps", BUGS["matmul_vjps"]["b_grad_in_wrong_order"][0])
    messages = set()
    for _ in range(3):
        with pytest.raises(CheckFailure) as info:
            run_check(visible, "matmul_vjps", ns)
        assert re.search(r"Run checks.check_matmul_vjps\(vjps_of, seed=\d+\)", str(info.value))
        messages.add(str(info.value))
    assert len(messages) == 3


def test_checks_do_not_touch_the_global_random_state():
    state = np.random.get_state()[1].copy()
    run_check(visible, "softmax_vjps", namespace(SOLUTIONS))
    assert np.array_equal(np.random.get_state()[1], state)


# ---------------------------------------------------------------------------------------------------------
# The notebook
# ---------------------------------------------------------------------------------------------------------


def test_notebook_has_every_exercise_with_its_points():
    metas = harness.graded_metadata(NOTEBOOK)
    assert set(EXERCISES) | set(TEST_CELLS.values()) | {"written_activations"} <= set(metas)
    assert {TEST_CELLS[name]: p for name, p in POINTS.items()} == {
        k: m["points"] for k, m in metas.items() if m["grade"] and k.startswith("test_")}


def test_the_visible_checks_ship_no_solution_line():
    release = pytest.importorskip("autograder.course.release", reason="course tooling not available")
    secrets = release.secret_lines(NOTEBOOK)
    assert len(secrets) > 20
    assert release.find_leaks({"lesson05.py": release.file_text(Path(visible.__file__))}, secrets) == []


def test_the_notebook_computes_the_sizes_it_quotes():
    given = CELLS["given_jacobian_sizes"] + "\n" + CELLS["given_matmul_jacobian_size"]
    assert "2**40" not in CELLS["given_matmul_jacobian_size"].split("print")[0]  # computed, not typed
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec("import numpy as np\n" + given, ns)
    assert ns["entries"] == 2**40 and ns["bytes_float32"] == 4 * 2**40
    assert ns["n_params"] == 50 and ns["total"] > 1000 * ns["n_params"]


notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)


def answer_cell(source: str) -> str:
    return source if source.startswith("import numpy") else source.strip() + "\n"


@pytest.mark.slow
def test_source_notebook_earns_full_marks(notebooks, source_nb):
    harness.assert_full_marks(harness.run_and_grade(notebooks, source_nb), TEST_CELLS.values())


@pytest.mark.slow
def test_student_version_has_no_solutions_or_hidden_tests_and_scores_zero(notebooks, source_nb):
    harness.assert_release_is_safe_and_blank(notebooks, source_nb, TEST_CELLS.values(), at_least=20,
                                             min_length=12, unless_outside="never", whole_lines=True)


# Two representative bugs go through a real kernel (every bug is judged through the grading channel above):
# a broken unbroadcast (the trusted one is bound in the kernel for the binary VJPs) and a finite-difference
# shortcut (the helpers are refused in the kernel too).
NOTEBOOK_BUGS = [("unbroadcast", "leading_axes_only"), ("unary_vjps", "tanh_by_numerical_vjp")]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "bug"), NOTEBOOK_BUGS)
def test_a_typical_bug_loses_only_its_own_points(notebooks, source_nb, name, bug):
    nb = notebooks.with_cell_source(source_nb, name, answer_cell(BUGS[name][bug][0]))
    harness.assert_only_cells_lose_points(harness.run_and_grade(notebooks, nb), [TEST_CELLS[name]],
                                          what=f"{bug} in {name}")


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules(source_nb):
    harness.run_in_student_kit(harness.visible_cells_script(source_nb), NOTEBOOK.parent)


def test_visible_checks_work_without_the_named_mistakes():
    """The visible checks never name the grader's mistakes (some are one step from the answer): correct
    solutions pass, and every typical bug fails with the exercise's hint."""
    assert "autograder.hidden" not in Path(visible.__file__).read_text()
    for name, bug in BUG_CASES:
        if name == "softmax_vjps":
            with pytest.raises(CheckFailure, match="Hint") as info:
                run_check(visible, name, with_answer(name, BUGS[name][bug][0]), seed=2)
            text = str(info.value)
            assert "It looks like" not in text or "ignored the upstream gradient" in text, text
