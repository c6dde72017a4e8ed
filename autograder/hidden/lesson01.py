"""Hidden checks for lesson 01 (instructor only, never shipped).

They reuse the visible machinery with more and harder cases: wider steps and points, 0-d, 1-element and
3-D inputs, lists and integer arrays, and relative errors of arrays of several shapes; then they compare
with the course's reference implementation (`reference_impl.numerical`, imported at the top, so a grader
without it fails loudly). They print nothing when they pass: the visible check's line already says what a
student can know was compared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autograder import lesson01 as visible
from autograder.checks import CheckFailure, as_real, call_student, close, new_seed
from autograder.lesson01 import (
    ArrayFunction,
    call_dtype_hint,
    check_shape_error,
    gradient_case,
    gradient_result,
    judge_difference,
)
from reference_impl.numerical import numerical_gradient as reference_gradient
from reference_impl.numerical import relative_error as reference_relative_error

__all__ = [
    "check_forward_difference",
    "check_backward_difference",
    "check_central_difference",
    "check_numerical_gradient",
    "check_relative_error",
]


def check_forward_difference(forward_difference: Callable, *, seed: int | None = None) -> None:
    """Twenty fresh random cases."""
    judge_difference(forward_difference, "forward_difference", "forward", seed, trials=20)


def check_backward_difference(backward_difference: Callable, *, seed: int | None = None) -> None:
    """Twenty fresh random cases."""
    judge_difference(backward_difference, "backward_difference", "backward", seed, trials=20)


def check_central_difference(central_difference: Callable, *, seed: int | None = None) -> None:
    """Twenty fresh random cases, then an exact cubic where central and forward differences disagree by h."""
    judge_difference(central_difference, "central_difference", "central", seed, trials=20)
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    c, x = float(rng.uniform(1.0, 2.0)), float(rng.uniform(1.0, 3.0))
    h = 0.25  # exact in binary: (f(x+h) - f(x-h)) / 2h = 3c x^2 + c h^2 up to rounding of x
    call = f"central_difference(f, {x!r}, {h}) with f(t) = {c!r}*t**3"
    got = as_real(call_student("central_difference", central_difference, lambda t: c * t**3, x, h),
                  f"{call} (seed {seed}) returned")
    expected = 3 * c * x**2 + c * h**2
    if not close(got, expected, 1e-9):  # expected >= 3: relative
        raise CheckFailure(
            f"central_difference(f, {x!r}, {h}) with f(t) = {c!r}*t**3 returned {got!r}; the central "
            f"difference of a cubic is exactly 3*c*x**2 + c*h**2 = {expected!r} (seed {seed}).\n"
            f"Hint: use (f(x + h) - f(x - h)) / (2 * h) with the h you are given."
        )


def check_numerical_gradient(numerical_gradient: Callable, *, seed: int | None = None) -> None:
    """Other shapes and input types; the step must be the one passed in."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for shape, h in [((), 1e-3), ((1,), 1e-2), ((2, 3, 2), 1e-3), ((6,), 3e-2), ((3,), None)]:
        x = np.asarray(rng.uniform(-1.0, 1.0, size=shape) * rng.uniform(0.5, 2.0))
        gradient_case(numerical_gradient, ArrayFunction(rng, shape), x, h, seed)
    as_list = [float(v) for v in rng.uniform(-1.0, 1.0, size=4)]
    gradient_case(numerical_gradient, ArrayFunction(rng, (4,)), as_list, 1e-3, seed, what="a Python list")
    ints = rng.integers(-3, 4, size=5)
    gradient_case(numerical_gradient, ArrayFunction(rng, (5,)), ints, 1e-3, seed, what="an integer array")
    f = ArrayFunction(rng, (3, 2))
    x = rng.normal(size=(3, 2))
    call = "numerical_gradient(f, x, h=0.0001) with x of shape (3, 2)"
    raw = call_student("numerical_gradient", numerical_gradient, f, x.copy(), 1e-4)
    got = gradient_result(raw, call, x.shape, seed, f)
    (expected,) = reference_gradient(f.value, x, h=1e-4)
    if not np.max(np.abs(got - expected)) <= 1e-6 * max(1.0, float(np.max(np.abs(expected)))):
        hint = call_dtype_hint(f) or "compare your loop with the formula of exercise 4, entry by entry."
        raise CheckFailure(
            f"{call} disagrees with the course's reference implementation: got {got.tolist()}, expected "
            f"{expected.tolist()} (seed {seed}).\nHint: {hint}"
        )


def expected_relative_error(a: object, b: object) -> float:
    """max|a - b| / max(max|a|, max|b|), and 0 when both are all zero (kept here: it is the answer)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    denom = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    return 0.0 if denom == 0.0 else float(np.max(np.abs(a - b))) / denom


def relative_error_case(relative_error: Callable, a: object, b: object, seed: int) -> None:
    """The visible comparison on any pair, with the expected values computed from the definition."""
    an, bn = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    top, size_a, size_b = (float(np.max(np.abs(v))) for v in (an - bn, an, bn))
    sizes = np.maximum(np.abs(an), np.abs(bn))
    own = np.divide(np.abs(an - bn), sizes, out=np.zeros_like(sizes), where=sizes > 0)
    visible.relative_error_case(
        relative_error,
        a,
        b,
        expected_relative_error(a, b),
        seed,
        over_a=top / size_a if size_a > 0 else None,
        over_b=top / size_b if size_b > 0 else None,
        entrywise=float(np.max(own)),
    )


def check_relative_error(relative_error: Callable, *, seed: int | None = None) -> None:
    """Python numbers, lists, 2-D arrays, one side zero, and mismatched shapes of equal size."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    relative_error_case(relative_error, 3, 1, seed)
    relative_error_case(relative_error, 0.0, float(rng.uniform(0.5, 2.0)), seed)
    a = [float(v) for v in rng.normal(size=3)]
    relative_error_case(relative_error, a, [v * 1.01 for v in a], seed)
    m = rng.normal(size=(3, 4)) * 1e3
    relative_error_case(relative_error, m, m + rng.normal(size=(3, 4)), seed)
    relative_error_case(relative_error, -m, m, seed)
    for _ in range(5):
        a, b = rng.normal(size=(2, 3)) * 10.0 ** rng.uniform(-3, 3), rng.normal(size=(2, 3))
        expected = reference_relative_error(a, b)
        got = as_real(call_student("relative_error", relative_error, a, b),
                      f"relative_error(a, b) with arrays of shape (2, 3) (seed {seed}) returned",
                      python_float=True)
        if not close(got, expected, 1e-12):
            raise CheckFailure(
                f"relative_error disagrees with the course's reference implementation on arrays of shape "
                f"(2, 3): got {got!r}, expected {expected!r} (seed {seed})."
            )
    check_shape_error(relative_error, np.ones((1, 4)), np.ones((4, 1)), seed)  # equal sizes, broadcastable
