"""The checker's own tests: typical bugs are rejected on every seed, correct code accepted on every seed.

A checker is only trustworthy if it is tested both ways: each buggy implementation below must fail on
all of 200 seeds, and each correct one, including alternative valid formulations, must pass on all of 1000.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from autograder import checks
from autograder.checks import (
    CheckFailure,
    GradientCheckError,
    NotDone,
    as_real,
    call_student,
    check_close,
    check_derivative,
    check_gradient,
    check_vjp,
    close,
    demo,
    passed,
    quiet,
    raised_by,
    repeat_line,
    repeatable,
    reworded,
    student_function,
)

BUG_SEEDS = range(200)
GOOD_SEEDS = range(1000)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Case:
    """A forward function, claimed VJPs for its inputs, and how to draw a test point from a seed."""

    f: Callable
    vjps: tuple
    inputs: Callable[[np.random.Generator], tuple]


def _mm_inputs(rng: np.random.Generator) -> tuple:
    return rng.standard_normal((3, 4)), rng.standard_normal((4, 2))


def _bcast_inputs(rng: np.random.Generator) -> tuple:
    return rng.standard_normal((3, 4)), rng.standard_normal(4)


def _vec(rng: np.random.Generator, n: int = 6) -> tuple:
    return (rng.standard_normal(n),)


def _away_from_zero(rng: np.random.Generator) -> tuple:
    x = rng.standard_normal((6, 6))
    return (np.where(np.abs(x) < 0.05, 0.5, x),)


def _wrong_element(g, ans, x):
    out = g * np.cos(x)
    out[417] += 1.0
    return out


BUGGY = {
    "sign flipped": Case(np.sin, (lambda g, ans, x: -g * np.cos(x),), _vec),
    "matmul missing transpose": Case(np.matmul, (None, lambda g, ans, x, w: g.T @ x), _mm_inputs),
    "matmul missing transpose, forced into shape": Case(
        np.matmul, (None, lambda g, ans, x, w: (g.T @ x).reshape(w.shape)), _mm_inputs
    ),
    "forgot to sum over broadcast dimension": Case(
        np.add, (lambda g, ans, x, b: g, lambda g, ans, x, b: g[0]), _bcast_inputs
    ),
    "overwrote instead of accumulated": Case(
        lambda x: x * np.sin(x), (lambda g, ans, x: g * x * np.cos(x),), _vec
    ),
    "used the output where the input was needed": Case(np.tanh, (lambda g, ans, x: g * (1 - x * x),), _vec),
    "off by a factor of 2": Case(lambda x: x**2, (lambda g, ans, x: g * x,), _vec),
    "ignored the upstream gradient": Case(np.exp, (lambda g, ans, x: ans,), _vec),
    "wrong reduction axis": Case(
        lambda x: x.sum(axis=1), (lambda g, ans, x: np.broadcast_to(g[None, :], x.shape),), _away_from_zero
    ),
    "relu mask from the wrong array": Case(
        lambda x: np.maximum(x, 0), (lambda g, ans, x: g * (g > 0),), _away_from_zero
    ),
    "one wrong element in 1000": Case(np.sin, (_wrong_element,), lambda rng: _vec(rng, 1000)),
    "softmax VJP ignoring the upstream gradient": Case(
        _softmax, (lambda g, ans, x: ans * (1 - ans),), lambda rng: (rng.standard_normal((2, 5)),)
    ),
    "matmul missing transpose (square)": Case(
        np.matmul,
        (lambda g, ans, x, w: g @ w, None),
        lambda rng: (rng.standard_normal((3, 3)), rng.standard_normal((3, 3))),
    ),
}


def _softmax_vjp_jacobian(g, ans, x):
    """Build each row's Jacobian explicitly: slower, but a valid alternative formulation."""
    out = np.empty_like(ans)
    for r in range(ans.shape[0]):
        s = ans[r]
        out[r] = (np.diag(s) - np.outer(s, s)).T @ g[r]
    return out


def _unbroadcast_loop(g, shape):
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


CORRECT = {
    "matmul": Case(np.matmul, (lambda g, ans, x, w: g @ w.T, lambda g, ans, x, w: x.T @ g), _mm_inputs),
    "matmul with einsum": Case(
        np.matmul,
        (
            lambda g, ans, x, w: np.einsum("ik,jk->ij", g, w),
            lambda g, ans, x, w: np.einsum("ij,ik->jk", x, g),
        ),
        _mm_inputs,
    ),
    "broadcast add": Case(
        np.add, (lambda g, ans, x, b: g, lambda g, ans, x, b: g.sum(axis=0)), _bcast_inputs
    ),
    "broadcast multiply, loop unbroadcast": Case(
        np.multiply,
        (lambda g, ans, x, b: g * b, lambda g, ans, x, b: _unbroadcast_loop(g * x, b.shape)),
        _bcast_inputs,
    ),
    "tanh from the output": Case(np.tanh, (lambda g, ans, x: g * (1 - ans**2),), _vec),
    "tanh from the input": Case(np.tanh, (lambda g, ans, x: g / np.cosh(x) ** 2,), _vec),
    "sigmoid two ways": Case(lambda x: 1 / (1 + np.exp(-x)), (lambda g, ans, x: g * ans * (1 - ans),), _vec),
    "softmax fast": Case(
        _softmax,
        (lambda g, ans, x: ans * (g - (g * ans).sum(axis=-1, keepdims=True)),),
        lambda rng: (rng.standard_normal((2, 5)),),
    ),
    "softmax via Jacobian": Case(
        _softmax, (_softmax_vjp_jacobian,), lambda rng: (rng.standard_normal((2, 5)),)
    ),
    "relu": Case(lambda x: np.maximum(x, 0), (lambda g, ans, x: g * (x > 0),), _away_from_zero),
    "relu mask from the output": Case(
        lambda x: np.maximum(x, 0), (lambda g, ans, x: g * (ans > 0),), _away_from_zero
    ),
    "mean over an axis": Case(
        lambda x: x.mean(axis=0),
        (lambda g, ans, x: np.broadcast_to(g / x.shape[0], x.shape).copy(),),
        _away_from_zero,
    ),
    "sum keepdims": Case(
        lambda x: x.sum(axis=1, keepdims=True), (lambda g, ans, x: g + np.zeros_like(x),), _away_from_zero
    ),
}


@pytest.mark.parametrize("name", sorted(BUGGY))
def test_buggy_vjp_rejected_on_every_seed(name: str) -> None:
    case = BUGGY[name]
    for seed in BUG_SEEDS:
        xs = case.inputs(np.random.default_rng(1_000_000 + seed))  # never the checker's own stream
        with pytest.raises(GradientCheckError):
            check_vjp(case.f, case.vjps, *xs, seed=seed)


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_vjp_accepted_on_every_seed(name: str) -> None:
    case = CORRECT[name]
    for seed in GOOD_SEEDS:
        xs = case.inputs(np.random.default_rng(10_000 + seed))
        check_vjp(case.f, case.vjps, *xs, seed=seed)


def test_projection_path_catches_one_wrong_element_among_many() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5000)
    for seed in BUG_SEEDS:

        def bad(g, ans, x):
            out = g * np.cos(x)
            out[1234] += 0.5
            return out

        with pytest.raises(GradientCheckError, match="random direction"):
            check_vjp(np.sin, bad, x, seed=seed)


def test_projection_path_accepts_correct_relu_on_many_elements() -> None:
    """Near-kink elements are common among 10^5 relu inputs; they must not fail a correct VJP."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100_000)
    for seed in range(30):
        check_vjp(lambda v: np.maximum(v, 0), lambda g, ans, v: g * (v > 0), x, seed=seed)


def test_million_element_check_uses_projections() -> None:
    x = np.random.default_rng(3).standard_normal(1_000_000)
    report = check_vjp(np.tanh, lambda g, ans, v: g * (1 - ans * ans), x)
    assert report.mode == "projection" and report.compared == checks.PROBES


def test_tolerance_is_scale_free() -> None:
    x = np.random.default_rng(4).standard_normal((3, 4))
    with pytest.raises(GradientCheckError, match="opposite sign"):
        check_gradient(lambda v: 1e-8 * np.tanh(v).sum(), lambda v: -1e-8 * (1 - np.tanh(v) ** 2), x)
    check_gradient(lambda v: 1e8 * (v**2).sum(), lambda v: 2e8 * v, x)
    check_gradient(lambda v: 1e-8 * np.tanh(v).sum(), lambda v: 1e-8 * (1 - np.tanh(v) ** 2), x)


def test_points_at_kinks_are_moved_not_counted_against_the_student() -> None:
    x = np.array([0.0, 1.0, -2.0, 0.0, 3.0])
    report = check_vjp(lambda v: np.maximum(v, 0), lambda g, ans, v: g * (v > 0), x)
    assert report.moved_off_kinks >= 2
    check_vjp(np.abs, lambda g, ans, v: g * np.sign(v), x)


def test_failure_message_names_input_element_and_seed() -> None:
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    with pytest.raises(GradientCheckError) as info:
        check_vjp(np.matmul, [None, lambda g, ans, x, w: 2 * (x.T @ g)], x, w, seed=77)
    message = str(info.value)
    for part in ("input 1", "worst at index", "expected", "got", "relative error", "seed=77", "times 2"):
        assert part in message


@pytest.mark.parametrize(
    ("vjp", "needle"),
    [
        (lambda g, ans, x, b: g, "broadcast"),
        (lambda g, ans, x, b: None, "None"),
        (lambda g, ans, x, b: g.sum(axis=0).astype(int), "floating point"),
        (lambda g, ans, x, b: g.sum(axis=0) * np.nan, "non-finite"),
        (lambda g, ans, x, b: g.sum(axis=0)[:, None], "shape"),
    ],
)
def test_shape_dtype_and_finiteness_come_before_values(vjp, needle) -> None:
    x, b = _bcast_inputs(np.random.default_rng(6))
    with pytest.raises(GradientCheckError, match=needle):
        check_vjp(np.add, [None, vjp], x, b)


def test_transposed_shape_hint() -> None:
    x, w = _mm_inputs(np.random.default_rng(7))
    with pytest.raises(GradientCheckError, match="transposed"):
        check_vjp(np.matmul, [lambda g, ans, x, w: (g @ w.T).T, None], x, w)


def test_single_input_accepts_bare_array_and_bare_callable() -> None:
    x = np.random.default_rng(8).standard_normal(4)
    check_gradient(lambda v: (v**3).sum(), lambda v: 3 * v**2, x)
    check_vjp(np.sin, lambda g, ans, v: g * np.cos(v), x)


def test_gradient_count_must_match_inputs() -> None:
    x = np.ones(3)
    with pytest.raises(GradientCheckError, match="one gradient per input"):
        check_gradient(lambda a, b: (a * b).sum(), lambda a, b: b, x, x)


def test_float32_results_are_accepted_and_float32_inputs_kept() -> None:
    x = np.random.default_rng(9).standard_normal((4, 3)).astype(np.float32)
    seen = []

    def vjp(g, ans, v):
        seen.append(v.dtype)
        return (g * (1 - ans * ans)).astype(np.float32)

    check_vjp(np.tanh, vjp, x)
    assert set(seen) == {np.dtype(np.float32)}


def test_mutating_inputs_or_upstream_gradient_fails() -> None:
    x = np.random.default_rng(10).standard_normal(5)

    def writes_g(g, ans, v):
        g *= np.cos(v)
        return g

    def sneaky(g, ans, v):
        v.setflags(write=True)
        v += 1.0
        return g * np.cos(v - 1.0)

    with pytest.raises(GradientCheckError, match="in place"):
        check_vjp(np.sin, writes_g, x)
    with pytest.raises(GradientCheckError, match="modified input 0"):
        check_vjp(np.sin, sneaky, x)
    assert np.all(np.isfinite(x))


def test_lying_ndarray_subclass_cannot_pass() -> None:
    class Liar(np.ndarray):
        def __sub__(self, other):
            return np.zeros(np.shape(other))

        def __eq__(self, other):
            return np.ones(np.shape(other), bool)

        @property
        def dtype(self):
            return np.dtype(np.float64)

    x = np.random.default_rng(11).standard_normal(4)
    with pytest.raises(GradientCheckError):
        check_vjp(np.sin, lambda g, ans, v: np.zeros_like(g).view(Liar), x)
    with pytest.raises(GradientCheckError, match="floating point"):
        check_vjp(np.sin, lambda g, ans, v: np.zeros(g.shape, int).view(Liar), x)


def test_reseeding_or_patching_numpy_does_not_help() -> None:
    x = np.random.default_rng(12).standard_normal(6)
    original = np.allclose

    def cheat(g, ans, v):
        np.random.seed(0)
        np.allclose = lambda *a, **k: True
        return np.zeros_like(g)

    try:
        with pytest.raises(GradientCheckError):
            check_vjp(np.sin, cheat, x)
    finally:
        np.allclose = original


def test_nan_cannot_sneak_through_comparisons() -> None:
    with pytest.raises(GradientCheckError, match="non-finite"):
        check_derivative(np.sin, lambda t: float("nan"), 0.4)


def test_upstream_gradient_is_never_all_ones_and_fresh_per_call() -> None:
    seen = []
    x = np.random.default_rng(13).standard_normal(5)

    def spy(g, ans, v):
        seen.append(np.array(g))
        return g * np.cos(v)

    check_vjp(np.sin, spy, x)
    check_vjp(np.sin, spy, x)
    assert not np.allclose(seen[0], 1.0) and not np.allclose(seen[0], seen[-1])


def test_checks_write_nothing_to_stderr_and_silence_student_warnings(capfd) -> None:
    x = np.array([0.5, 1.5, 2.0])

    def noisy(g, ans, v):
        np.log(np.array([-1.0]))
        warnings.warn("student warning", stacklevel=1)
        return g * np.cos(v)

    check_vjp(np.sin, noisy, x)
    with pytest.raises(GradientCheckError):
        check_vjp(np.sin, lambda g, ans, v: g / 0.0 * 0.0 + g, x)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_derivative_checks() -> None:
    check_derivative(np.sin, np.cos, 0.3)
    check_derivative(lambda t: t**3, lambda t: 3 * t**2, 0.0)
    check_derivative(abs, lambda t: 1.0 if t > 0 else -1.0, 0.0)
    with pytest.raises(GradientCheckError, match="opposite sign"):
        check_derivative(np.sin, lambda t: -np.cos(t), 0.3)
    with pytest.raises(GradientCheckError, match="None"):
        check_derivative(np.sin, lambda t: None, 0.3)


def test_bad_check_arguments_get_clear_errors() -> None:
    with pytest.raises(TypeError, match="2 input"):
        check_vjp(np.add, [None], np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        check_vjp(np.sin, lambda g, a, v: g, np.array([np.nan]))
    with pytest.raises(TypeError, match="real numbers"):
        check_vjp(np.sin, lambda g, a, v: g, np.array(["a"]))


def test_check_close() -> None:
    check_close(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-9], name="y")
    with pytest.raises(CheckFailure, match=r"y is wrong at index \[1\]: expected 2, got 3"):
        check_close([1.0, 3.0], [1.0, 2.0], name="y", hint="look again")
    with pytest.raises(CheckFailure, match="None"):
        check_close(None, 1.0, name="loss")
    with pytest.raises(CheckFailure, match="shape"):
        check_close([1.0], [1.0, 2.0], name="y")


def test_quiet_silences_numpy_and_python_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with quiet():
            np.log(np.zeros(1))
            warnings.warn("hidden", stacklevel=1)


def test_exactly_zero_gradient_accepts_rounding_noise_but_not_more() -> None:
    """An input the output does not depend on: the student's own rounding noise is not a wrong answer."""
    x, y = np.random.default_rng(14).standard_normal((2, 5))

    def f(a, b):
        return np.sin(a) + 0.0 * b

    check_vjp(f, [lambda g, ans, a, b: g * np.cos(a), lambda g, ans, a, b: (g - g * 1.0) + 3.9e-17], x, y)
    with pytest.raises(GradientCheckError):
        check_vjp(f, [None, lambda g, ans, a, b: 1e-3 * g], x, y)


# --------------------------------------------------------------------------------------------------------
# What every lesson's test cells share: one blank-exercise message, one wrapper around student code, one
# pass line, and a failed check that shows as its message alone in a kernel and in nbgrader's feedback
# --------------------------------------------------------------------------------------------------------


def test_a_blank_exercise_has_one_message_naming_it() -> None:
    message = str(NotDone("numerical_gradient"))
    assert isinstance(NotDone("x"), CheckFailure)
    assert message.startswith("numerical_gradient is not written yet")
    assert "raise NotImplementedError()" in message and "run this test cell again" in message


def test_call_student_returns_the_result_quietly(capfd) -> None:
    def noisy(a: float, *, b: float) -> float:
        warnings.warn("student warning", stacklevel=1)
        return float(np.log(np.array(a)) + b)

    assert call_student("f", noisy, 0.0, b=1.0) == -np.inf
    assert capfd.readouterr().err == ""


def _raiser(exc: BaseException):
    def student(*args: object) -> None:
        raise exc
    return student


@pytest.mark.parametrize(("exc", "expected"), [
    (NotImplementedError(), str(NotDone("relu"))),
    (NotImplementedError("no rule for Cos"), "relu raised NotImplementedError: no rule for Cos"),
    (RecursionError("maximum recursion depth exceeded"),
     "relu hit Python's recursion limit (RecursionError): about 1000 calls were nested inside each other. "
     "Either a function calls itself without end"),
    (ValueError("assignment destination is read-only"), "relu tried to modify one of its arguments in place"),
    (ValueError("operands could not broadcast"), "relu raised ValueError: operands could not broadcast"),
    (TypeError("unsupported operand"), "relu raised TypeError: unsupported operand"),
    (ZeroDivisionError("division by zero"), "relu raised ZeroDivisionError: division by zero"),
])
def test_call_student_turns_every_exception_into_one_message(exc: Exception, expected: str) -> None:
    with pytest.raises(CheckFailure) as info:
        call_student("relu", _raiser(exc), 1.0)
    assert str(info.value).startswith(expected), str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__, "the student's traceback stays"
    assert isinstance(info.value, NotDone) == (isinstance(exc, NotImplementedError) and not exc.args)


def test_call_student_keeps_a_checks_own_failure_and_never_swallows_an_interrupt() -> None:
    own = CheckFailure("f was called with the wrong shape")
    with pytest.raises(CheckFailure) as info:
        call_student("relu", _raiser(own))
    assert info.value is own
    with pytest.raises(KeyboardInterrupt):
        call_student("relu", _raiser(KeyboardInterrupt()))


def test_close_is_relative_above_one_absolute_below_and_never_true_for_nan() -> None:
    assert close(1e6 + 0.5, 1e6, 1e-6) and not close(1e6 + 2.0, 1e6, 1e-6)
    assert close(1e-9, 0.0, 1e-8) and not close(1e-7, 0.0, 1e-8)
    assert close(1.0, 1.05, 1e-8, atol=0.1)
    assert close(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-12], 1e-9)
    assert not close(np.array([1.0, 2.0]), [1.0, 2.1], 1e-9)
    assert not close(math.nan, math.nan, 1.0) and not close(np.array([math.nan]), [0.0], 1.0)


@pytest.mark.parametrize(("value", "fragment"), [
    (None, "returned None"),
    ("0.5", "returned the string '0.5'"),
    ((0.5,), "a trailing comma"),
    ([0.5], "the list [0.5], not one number"),
    (np.ones(2), "a numpy array of shape (2,)"),
    (True, "the bool True, not a plain number"),
    (1 + 2j, "not a plain number"),
    (math.inf, "returned inf, not a finite number"),
])
def test_as_real_refuses_what_is_not_one_real_number(value: object, fragment: str) -> None:
    with pytest.raises(CheckFailure) as info:
        as_real(value, "f(1) returned")
    assert fragment in str(info.value), str(info.value)
    assert str(info.value).count("Hint:") == 1


def test_as_real_accepts_numbers_and_python_float_refuses_the_rest() -> None:
    assert [as_real(v, "v is") for v in (2, 0.5, np.float32(0.25), np.array(1.5))] == [2.0, 0.5, 0.25, 1.5]
    assert as_real(0.5, "v is", python_float=True) == 0.5
    for value in (1, np.float32(0.5), np.array(0.5)):
        with pytest.raises(CheckFailure, match="Python float|numpy array"):
            as_real(value, "relative_error(a, b) returned", python_float=True)


def test_reworded_keeps_the_class_or_changes_it_and_never_touches_notdone() -> None:
    with pytest.raises(GradientCheckError, match="^inner \\(seed 3\\)$"), reworded(lambda e: f"{e} (seed 3)"):
        raise GradientCheckError("inner")
    with pytest.raises(CheckFailure) as info, reworded(lambda e: f"{e}!", into=CheckFailure):
        raise GradientCheckError("inner")
    assert type(info.value) is CheckFailure and str(info.value) == "inner!"
    blank = NotDone("relu")
    with pytest.raises(NotDone) as done, reworded(lambda e: "never"):
        raise blank
    assert done.value is blank


def test_repeatable_ends_a_failure_with_the_one_repeat_line_and_leaves_notdone_alone() -> None:
    call = "checks.check_relu(relu, seed=7)"
    with pytest.raises(CheckFailure) as info, repeatable(call):
        raise GradientCheckError("relu(-1.0) returned -1.0")
    assert str(info.value) == f"relu(-1.0) returned -1.0\n{repeat_line(call)}"
    assert type(info.value) is CheckFailure      # the student sees one kind of failure
    assert repeat_line(call) == f"Run {call} in a cell of your own to repeat this exact test."
    blank = NotDone("relu")
    with pytest.raises(NotDone) as done, repeatable(call):
        raise blank
    assert done.value is blank


def test_demo_says_what_to_complete_or_names_the_exercises_in_one_line(capsys: pytest.CaptureFixture[str]
                                                                       ) -> None:
    with demo("exercises 2 and 5", "add, tanh"):
        raise NotImplementedError()
    assert capsys.readouterr().out == "Complete exercises 2 and 5 (add, tanh), then run this cell again.\n"
    with demo("exercise 4"):
        raise ValueError("shapes (3,) and (4,) not aligned")
    assert capsys.readouterr().out == ("This demo raised ValueError: shapes (3,) and (4,) not aligned\n"
                                       "Run the test cells of exercise 4: they name the cause.\n")
    with demo("exercise 4"):
        print("ran")
    assert capsys.readouterr().out == "ran\n"


def test_raised_by_returns_the_students_exception_or_none() -> None:
    error = raised_by("relu", _raiser(ValueError("shapes (3,) and (3, 1)")))
    assert isinstance(error, ValueError) and "(3, 1)" in str(error)
    assert raised_by("relu", lambda: 1.0) is None
    with pytest.raises(NotDone):
        raised_by("relu", _raiser(NotImplementedError()))
    with pytest.raises(KeyboardInterrupt):
        raised_by("relu", _raiser(KeyboardInterrupt()))


def test_student_function_names_the_students_innermost_function() -> None:
    namespace: dict = {}
    exec(compile("def __add__(self, other):\n    raise NotImplementedError()\n", "<answer cell>", "exec"),
         namespace)
    try:
        namespace["__add__"](None, None)
    except NotImplementedError as exc:
        assert student_function(exc) == "__add__"
    assert student_function(ValueError()) == "?"


def test_passed_prints_exactly_one_line(capsys) -> None:
    passed("relu", "12 numbers, worst relative error 1e-12 (seed 7)")
    assert capsys.readouterr().out == "passed: relu: 12 numbers, worst relative error 1e-12 (seed 7)\n"


FAILING_CELLS = [
    # a lesson check with a wrong answer, a generic check, and an ordinary error for contrast
    "from autograder import lesson01\n\n"
    "def central_difference(f, x, h):\n    return (f(x + h) - f(x - h)) / h\n\n"
    "lesson01.check_central_difference(central_difference, seed=3)",
    "import numpy as np\nfrom autograder.checks import check_derivative\n"
    "check_derivative(np.sin, lambda t: -np.cos(t), 0.3, seed=1)",
    "def helper():\n    raise ValueError('an ordinary error')\n\nhelper()",
]


@pytest.mark.slow
def test_a_failed_check_shows_its_message_alone_in_a_kernel_and_in_the_html() -> None:
    """In a real kernel the error output's traceback is the message, nothing of the checker's source; the
    HTML that nbconvert (and so nbgrader's feedback) renders from it shows the message and no source line.
    An ordinary exception keeps its full traceback."""
    import nbformat
    from nbconvert import HTMLExporter

    from autograder.course import notebooks

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in FAILING_CELLS])
    executed = notebooks.execute(nb)
    errors = [[out for out in cell.outputs if out.output_type == "error"] for cell in executed.cells]
    assert [len(e) for e in errors] == [1, 1, 1]
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    for (error,), ename, needle in zip(errors[:2], ["CheckFailure", "GradientCheckError"],
                                       ["central_difference(f, x=", "your derivative <lambda> is wrong"],
                                       strict=True):
        assert error.ename == ename and needle in error.evalue
        assert [ansi.sub("", line) for line in error.traceback] == [f"{ename}: {error.evalue}"]
    assert len(errors[2][0].traceback) > 1, "an ordinary error lost its traceback"
    html, _ = HTMLExporter().from_notebook_node(executed)
    text = ansi.sub("", html)
    assert "Hint: your value is (f(x+h) - f(x-h)) / h, twice the central difference" in text
    assert "your derivative &lt;lambda&gt; is wrong at x = 0.3" in text
    for source_line in ("lesson01.py", "checks.py", "def judge_difference", "raise CheckFailure("):
        assert source_line not in text, source_line
