"""Visible checks for lesson 01 (finite differences).

Each check draws fresh random test functions, points and steps and compares with the value the answer must
have, known by construction: Taylor series of functions whose every derivative is known, closed forms of
the difference quotients of sines and quadratics, pairs built with a chosen relative error. This module is
shipped to students, so it holds no finite-difference formula and no relative_error of its own. When an
answer is wrong the message names the test case and, where the wrong number matches a recognisable mistake
(a forward difference where a central one was asked, dividing by h instead of 2h, ...), says so.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np

from autograder.checks import CheckFailure, new_seed, quiet

__all__ = [
    "check_forward_difference",
    "check_backward_difference",
    "check_central_difference",
    "check_numerical_gradient",
    "check_relative_error",
]


# ---------------------------------------------------------------------------------------------------------
# Scalar test functions: smooth, curved everywhere we sample (so a wrong formula shows), with random
# coefficients so that nothing can be memorised. Every derivative of them is known in closed form, so the
# expected value of a difference quotient comes from its Taylor series, not from a difference formula (this
# module is shipped to students and must not contain the answers).
# ---------------------------------------------------------------------------------------------------------


class SmoothFunction:
    """A random sum of terms c*sin(r x), c*cos(r x), c*exp(r x) and c*x**k whose derivatives are exact."""

    def __init__(self, rng: np.random.Generator) -> None:
        a, b, c = rng.uniform(0.5, 2.0, size=3) * rng.choice([-1.0, 1.0], size=3)
        rate = float(rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0]))
        kind = int(rng.integers(3))
        wave = "sin" if kind != 1 else "cos"
        self.terms: list[tuple[str, float, float]] = [(wave, float(a), float(b))]
        self.terms.append(("exp", float(c) / 2, rate) if kind != 0 else ("pow", float(c), 3.0))
        if kind == 2:
            self.terms.append(("pow", float(a * c), 2.0))

    def derivative(self, x: float, order: int) -> float:
        """The order-th derivative at x (order 0 is the value itself)."""
        total = 0.0
        for kind, coef, r in self.terms:
            if kind == "sin":
                total += coef * r**order * math.sin(r * x + order * math.pi / 2)
            elif kind == "cos":
                total += coef * r**order * math.cos(r * x + order * math.pi / 2)
            elif kind == "exp":
                total += coef * r**order * math.exp(r * x)
            elif order <= r:
                total += coef * math.perm(int(r), order) * x ** (int(r) - order)
        return total

    def __call__(self, x: float) -> float:
        return self.derivative(float(x), 0)

    def __str__(self) -> str:
        parts = {
            "sin": "{c:.3g}*sin({r:.3g}*x)",
            "cos": "{c:.3g}*cos({r:.3g}*x)",
            "exp": "{c:.3g}*exp({r:.3g}*x)",
            "pow": "{c:.3g}*x**{r:.0f}",
        }
        return " + ".join(parts[kind].format(c=c, r=r) for kind, c, r in self.terms)

    def slope(self, x: float, step: float, terms: int = 14) -> float:
        """(f(x + step) - f(x)) / step from the Taylor series sum_n f^(n)(x) step^(n-1) / n!.

        With |step| <= 0.05 and rates <= 2 the series is exact to rounding after 14 terms."""
        return sum(self.derivative(x, n) * step ** (n - 1) / math.factorial(n) for n in range(1, terms + 1))


def scalar_candidates(f: SmoothFunction, x: float, h: float) -> dict[str, float]:
    """The value each formula (the asked one and the usual slips) takes, from Taylor series and f's values.

    forward = slope(h), backward = slope(-h), central = their mean: the series stand in for the quotients."""
    forward, backward = f.slope(x, h), f.slope(x, -h)
    central = 0.5 * (forward + backward)
    fp, f0, fm = f(x + h), f(x), f(x - h)
    return {
        "forward": forward,
        "backward": backward,
        "central": central,
        "central divided by h": 2 * central,
        "forward with the sign flipped": -forward,
        "backward with the sign flipped": -backward,
        "central times h over 2": central * h * h,
        "forward without brackets": fp - f0 / h,
        "backward without brackets": f0 - fm / h,
        "central without brackets": fp - fm / (2 * h),
    }


HINTS = {
    "forward": "this is the FORWARD difference (f(x+h) - f(x)) / h",
    "backward": "this is the BACKWARD difference (f(x) - f(x-h)) / h",
    "central": "this is the CENTRAL difference (f(x+h) - f(x-h)) / (2h)",
    "central divided by h": "this is (f(x+h) - f(x-h)) / h: the two points are 2h apart, so divide by 2h",
    "forward with the sign flipped": "this is (f(x) - f(x+h)) / h: subtract in the other order",
    "backward with the sign flipped": "this is (f(x-h) - f(x)) / h: subtract in the other order",
    "central times h over 2": "this is (f(x+h) - f(x-h)) / 2 * h, which Python reads as ((...) / 2) * h: put "
    "brackets around the denominator, / (2 * h)",
    "forward without brackets": "this is f(x+h) - f(x) / h, which Python reads as f(x+h) - (f(x) / h): put "
    "brackets around the numerator",
    "backward without brackets": "this is f(x) - f(x-h) / h, which Python reads as f(x) - (f(x-h) / h): put "
    "brackets around the numerator",
    "central without brackets": "this is f(x+h) - f(x-h) / (2h), which Python reads as "
    "f(x+h) - (f(x-h) / (2h)): put brackets around the numerator",
}

FORMULAS = {
    "forward": "(f(x + h) - f(x)) / h",
    "backward": "(f(x) - f(x - h)) / h",
    "central": "(f(x + h) - f(x - h)) / (2 * h)",
}


def as_real_scalar(value: object, name: str) -> float:
    """Convert a student's return value to float, or fail saying what was returned instead."""
    if value is None:
        raise CheckFailure(f"{name} returned None. Did you forget the `return` statement?")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise CheckFailure(f"{name} returned {value!r}, which is not a number.") from exc
    if arr.ndim != 0:
        raise CheckFailure(f"{name} returned an array of shape {arr.shape}; it should return one number.")
    out = float(arr)
    if not math.isfinite(out):
        raise CheckFailure(f"{name} returned {out}, which is not a finite number.")
    return out


def close(got: float, expected: float, rtol: float = 1e-8) -> bool:
    """Equal up to rounding (written as `not (err > tol)` fails on NaN; this form rejects NaN)."""
    return abs(got - expected) <= rtol * max(1.0, abs(expected))


def check_difference(student: Callable, name: str, wanted: str, seed: int | None, trials: int) -> None:
    """Shared body of the three scalar finite-difference checks."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        f = SmoothFunction(rng)
        x = float(rng.uniform(-1.5, 1.5))
        h = float(10.0 ** rng.uniform(-3, -1.5))
        candidates = scalar_candidates(f, x, h)
        with quiet():
            got = as_real_scalar(student(f, x, h), name)
        expected = candidates[wanted]
        if close(got, expected):
            continue
        matches = [k for k, v in candidates.items() if k != wanted and close(got, v)]
        if matches:
            hint = (
                f"Your value matches another formula: {HINTS[matches[0]]}. The exercise asks for the "
                f"{wanted} difference, {FORMULAS[wanted]}."
            )
        elif abs(got - expected) <= 0.05 * abs(expected):
            hint = (
                f"your value is close to the right one but not equal, as if it were computed with another "
                f"step. Use the h passed in (here h = {h!r}), not a step of your own: {FORMULAS[wanted]}."
            )
        else:
            hint = f"the {wanted} difference is {FORMULAS[wanted]}, with the f, x and h you are given."
        raise CheckFailure(
            f"{name}(f, x={x!r}, h={h!r}) with f(x) = {f} returned {got!r}, expected {expected!r} "
            f"(test {trial + 1} of {trials}, seed {seed}).\nHint: {hint}"
        )


def check_forward_difference(forward_difference: Callable, *, seed: int | None = None) -> None:
    """forward_difference(f, x, h) must equal (f(x+h) - f(x)) / h on random smooth functions."""
    check_difference(forward_difference, "forward_difference", "forward", seed, trials=6)


def check_backward_difference(backward_difference: Callable, *, seed: int | None = None) -> None:
    """backward_difference(f, x, h) must equal (f(x) - f(x-h)) / h on random smooth functions."""
    check_difference(backward_difference, "backward_difference", "backward", seed, trials=6)


def check_central_difference(central_difference: Callable, *, seed: int | None = None) -> None:
    """central_difference(f, x, h) must equal (f(x+h) - f(x-h)) / (2h) on random smooth functions."""
    check_difference(central_difference, "central_difference", "central", seed, trials=6)


# ---------------------------------------------------------------------------------------------------------
# numerical_gradient
# ---------------------------------------------------------------------------------------------------------


class ArrayFunction:
    """A random non-separable f: R^shape -> R that records how it is called.

    f(X) = sum(W * sin X) + 0.5 * sum((X @ B)^2) + 0.5 * (sum(V * X))^2 for 2-D X (1-D X uses X @ B
    too). The coupling terms make every partial derivative depend on every coordinate, so a perturbation
    that is not undone shows up in the next coordinate's derivative.
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.W = rng.normal(size=shape)
        self.V = rng.normal(size=shape) / np.sqrt(max(1, int(np.prod(shape))))
        last = shape[-1] if shape else 1
        self.B = rng.normal(size=(last, 2)) / np.sqrt(last)
        self.calls = 0

    def value(self, X: np.ndarray) -> float:
        """The function itself, in float64 (the trusted forward)."""
        X = np.asarray(X, dtype=float)
        XB = X.reshape(-1, self.B.shape[0]) @ self.B if X.ndim else X * self.B[0]
        return float(np.sum(self.W * np.sin(X)) + 0.5 * np.sum(XB**2) + 0.5 * np.sum(self.V * X) ** 2)

    def __call__(self, X: object) -> float:
        self.calls += 1
        arr = np.asarray(X)
        if arr.shape != self.shape:
            raise CheckFailure(
                f"numerical_gradient called f with an array of shape {arr.shape}, but x has shape "
                f"{self.shape}. Call f with a perturbed copy of x that keeps x's shape (use "
                f"np.ndindex(x.shape) or a flat view of a reshaped copy to visit the entries)."
            )
        return self.value(arr)

    def quadratic_gradient(self, X: np.ndarray) -> np.ndarray:
        """Gradient of the two quadratic terms (exactly what a central difference of them gives)."""
        X = np.asarray(X, dtype=float)
        if X.ndim:
            XB = X.reshape(-1, self.B.shape[0]) @ self.B
            coupled = (XB @ self.B.T).reshape(X.shape)
        else:
            coupled = X * float(np.sum(self.B[0] ** 2))
        return coupled + float(np.sum(self.V * X)) * self.V

    def quadratic_curvature(self) -> np.ndarray:
        """Second derivative of the quadratic terms along each single coordinate."""
        per_column = np.sum(self.B**2, axis=1)
        return (per_column if self.shape else per_column[0]) + self.V**2

    def expected_differences(self, x: np.ndarray, h: float) -> dict[str, np.ndarray]:
        """Central differences (the answer) and the usual slips, from closed forms, not from f's values.

        Along coordinate i the sine term's quotients are exact trigonometric identities, e.g.
        (sin(t + h) - sin(t - h)) / 2h = cos(t) sin(h) / h, and a quadratic's central quotient is its
        gradient. "drift" is the central difference taken where the earlier coordinates were left at x - h.
        """
        x = np.asarray(x, dtype=float)
        central = self.W * np.cos(x) * math.sin(h) / h + self.quadratic_gradient(x)
        forward = (
            self.W * (np.cos(x) * math.sin(h) - np.sin(x) * (1.0 - math.cos(h))) / h
            + self.quadratic_gradient(x)
            + 0.5 * h * self.quadratic_curvature()
        )
        drift = np.zeros_like(x)
        shifted = x.copy()
        for idx in np.ndindex(x.shape):
            drift[idx] = (self.W * np.cos(shifted) * math.sin(h) / h + self.quadratic_gradient(shifted))[idx]
            shifted[idx] = x[idx] - h
        return {"central": central, "forward": forward, "central divided by h": 2 * central, "drift": drift}


GRADIENT_HINTS = {
    "forward": "your gradient matches FORWARD differences; use (f(x+h e_i) - f(x-h e_i)) / (2h) instead.",
    "central divided by h": "your gradient is twice the right one: the two points are 2h apart, so divide "
    "by 2h.",
    "integer": "x holds integers, so x[i] += h is rounded back to an integer. Work on a float copy: "
    "xp = np.array(x, dtype=float).",
    "drift": "the first entry is right but later ones are off: each coordinate must be perturbed on its own. "
    "Restore x[i] (or start again from a fresh copy of x) before moving to the next coordinate.",
}


def as_float_array(value: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Copy a student's result to a plain float64 array, checking type, shape and finiteness."""
    if value is None:
        raise CheckFailure(f"{name} returned None. Did you forget the `return` statement?")
    try:
        arr = np.array(value, dtype=float, subok=False, copy=True)
    except (TypeError, ValueError) as exc:
        raise CheckFailure(f"{name} returned a {type(value).__name__}, not an array of numbers.") from exc
    if arr.shape != shape:
        raise CheckFailure(
            f"{name} returned an array of shape {arr.shape}, but x has shape {shape}. The gradient has one "
            f"entry per entry of x: start from np.zeros(x.shape) (or np.zeros_like of a float copy)."
        )
    if not np.all(np.isfinite(arr)):
        raise CheckFailure(f"{name} returned non-finite values: {arr}.")
    return arr


def gradient_case(
    numerical_gradient: Callable, f: ArrayFunction, x: object, h: float | None, seed: int, what: str = ""
) -> None:
    """Run the student's numerical_gradient on one case and compare with central differences.

    x may be a float array, an int array or a list (the hidden checks use all three); `what` says which.
    """
    name = "numerical_gradient"
    x_before = copy.deepcopy(x)
    shape = np.shape(x)
    step = 1e-5 if h is None else h
    args = "f, x" if h is None else f"f, x, h={h:.3g}"
    call = f"numerical_gradient({args}) with {what or 'x'} of shape {shape}"
    with quiet():
        raw = numerical_gradient(f, x) if h is None else numerical_gradient(f, x, h)
    if type(x) is not type(x_before) or np.shape(x) != shape or not np.array_equal(x, x_before):
        changed = int(np.sum(np.asarray(x) != np.asarray(x_before))) if np.shape(x) == shape else np.size(x)
        raise CheckFailure(
            f"{call} changed x: {changed} of its {np.size(x)} entries differ after the call (seed {seed}).\n"
            f"Hint: work on a copy (xp = x.astype(float).copy()), or put the original value back with "
            f"xp[i] = old. Note that x[i] += h followed by x[i] -= h does NOT always give back x[i] exactly."
        )
    got = as_float_array(raw, name, shape)
    if isinstance(raw, np.ndarray) and isinstance(x, np.ndarray) and np.shares_memory(raw, x):
        raise CheckFailure(
            f"{call} returned an array that shares memory with x. Return a new array (np.zeros(x.shape)) so "
            f"that writing the gradient never overwrites the point it was computed at (seed {seed})."
        )
    cands = f.expected_differences(np.asarray(x_before, dtype=float), step)
    expected = cands["central"]
    scale = max(1.0, float(np.max(np.abs(expected))))
    err = np.abs(got - expected)
    if np.all(err <= 1e-7 * scale):
        if f.calls < 2 * np.size(x):
            raise CheckFailure(
                f"{call} called f only {f.calls} times; central differences need two calls per entry "
                f"({2 * np.size(x)}). Is the gradient computed from f, or from something else? (seed {seed})"
            )
        return
    worst = np.unravel_index(int(np.argmax(err)), shape)
    matches = [
        k
        for k, v in cands.items()
        if k != "central" and np.all(np.abs(got - v) <= 1e-7 * max(1.0, float(np.max(np.abs(v)))))
    ]
    if np.asarray(x_before).dtype.kind in "iub":
        matches = ["integer"]
    if matches:
        hint = GRADIENT_HINTS[matches[0]]
    elif np.all(err <= 1e-2 * scale):
        hint = (
            f"every entry is close to the right value but not equal, as if computed with another step. Use "
            f"the h passed in (here h = {step:.3g}), not a step of your own."
        )
    else:
        hint = (
            "entry i of the gradient is (f(x + h e_i) - f(x - h e_i)) / (2h), where e_i is all zeros except "
            "a 1 at position i; compute it for every index i of x."
        )
        if len(shape) > 1:
            hint += (
                f" x has {len(shape)} dimensions, so x[i] is a whole row, not one entry: loop over "
                f"np.ndindex(x.shape) to visit single entries."
            )
    raise CheckFailure(
        f"{call}: entry {tuple(int(i) for i in worst)} is {float(got[worst])!r}, expected "
        f"{float(expected[worst])!r} "
        f"({int(np.sum(err > 1e-7 * scale))} of {np.size(x)} entries wrong, seed {seed}).\nHint: {hint}"
    )


def check_numerical_gradient(numerical_gradient: Callable, *, seed: int | None = None) -> None:
    """Central differences on 1-D and 2-D inputs, with a given step and with the default step."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for shape, h in [((5,), 1e-3), ((3, 4), 1e-3), ((4,), None)]:
        x = rng.uniform(-1.0, 1.0, size=shape) * rng.uniform(0.5, 2.0)
        gradient_case(numerical_gradient, ArrayFunction(rng, shape), x, h, seed)


# ---------------------------------------------------------------------------------------------------------
# relative_error
# ---------------------------------------------------------------------------------------------------------


def relative_error_case(
    relative_error: Callable,
    a: object,
    b: object,
    expected: float,
    seed: int,
    *,
    over_a: float | None = None,
    over_b: float | None = None,
) -> None:
    """Compare the student's relative_error(a, b) with `expected`, the value the pair was built to have.

    over_a and over_b, when the pair's construction knows them, are max|a - b| / max|a| and
    max|a - b| / max|b|: the values of dividing by one side only.
    """
    try:
        with quiet():
            raw = relative_error(a, b)
    except ZeroDivisionError:
        if expected != 0.0:
            raise
        raise CheckFailure(
            f"relative_error({a!r}, {b!r}) raised ZeroDivisionError (seed {seed}).\nHint: when a and b are "
            f"both zero they are equal: return 0.0 instead of dividing 0 by 0."
        ) from None
    try:
        got = as_real_scalar(raw, "relative_error")
    except CheckFailure as exc:
        if expected != 0.0:
            raise
        raise CheckFailure(
            f"relative_error({a!r}, {b!r}): {exc}\nHint: when a and b are both zero they are equal: return "
            f"0.0 instead of dividing 0 by 0."
        ) from None
    if close(got, expected, rtol=1e-9):
        return
    an, bn = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    hint = "relative_error(a, b) = max|a - b| / max(max|a|, max|b|)."
    norms = max(np.linalg.norm(an), np.linalg.norm(bn))
    if over_a is not None and close(got, over_a):
        hint = "you divide by |a| only. Divide by the LARGER of the two sizes, so the error is symmetric."
    elif over_b is not None and close(got, over_b):
        hint = "you divide by |b| only. Divide by the LARGER of the two sizes, so the error is symmetric."
    elif got < 0:
        hint = (
            "a relative error cannot be negative: take absolute values, max|a - b| on top and max|a|, max|b| "
            "below."
        )
    elif norms > 0 and close(got, float(np.linalg.norm(an - bn)) / norms):
        hint = (
            "you used norms (square root of the sum of squares). This exercise measures the largest entry: "
            "np.max(np.abs(...)) on top and below."
        )
    raise CheckFailure(
        f"relative_error({a!r}, {b!r}) returned {got!r}, expected {expected!r} (seed {seed}).\nHint: {hint}"
    )


def scaled_pair(rng: np.random.Generator, seed: int, relative_error: Callable) -> None:
    """Scalars a and b = k a (k > 1, so |b| > |a|), then -b and -a: the relative error is (k - 1) / k.

    The first pair catches dividing by |a| only, and one of the two (both share a sign) a missing abs."""
    a = float(rng.uniform(0.5, 2.0) * rng.choice([-1, 1]))
    k = float(rng.uniform(1.5, 3.0))
    expected = (k - 1.0) / k
    relative_error_case(relative_error, a, a * k, expected, seed, over_a=k - 1.0, over_b=expected)
    relative_error_case(relative_error, -a * k, -a, expected, seed, over_a=expected, over_b=k - 1.0)


def spiked_pair(rng: np.random.Generator, seed: int, relative_error: Callable) -> None:
    """Arrays that agree to 1e-3 except one entry b[j] = -m a[j], built so that the largest entry of a is 1
    (at another index) and the largest of b is m u > 1 (at j), with u = |a[j]|: the relative error is
    (1 + m) u / (m u) = (1 + m) / m, and dividing by |a| only gives (1 + m) u."""
    a = rng.uniform(-0.45, 0.45, size=4)
    k, j = rng.choice(4, size=2, replace=False)
    a[k] = rng.choice([-1.0, 1.0])
    u = float(rng.uniform(0.5, 0.6))
    a[j] = u * rng.choice([-1.0, 1.0])
    m = float(rng.uniform(2.5, 4.0))
    b = a + rng.uniform(-1e-3, 1e-3, size=4)
    b[k] = a[k]
    b[j] = -m * a[j]
    relative_error_case(relative_error, a, b, (1.0 + m) / m, seed, over_a=(1.0 + m) * u, over_b=(1.0 + m) / m)


def check_relative_error(relative_error: Callable, *, seed: int | None = None) -> None:
    """Scalars of both signs and orders, arrays, the all-zero case, and a clear error on mismatched shapes."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        scaled_pair(rng, seed, relative_error)
    spiked_pair(rng, seed, relative_error)
    relative_error_case(relative_error, np.zeros(3), np.zeros(3), 0.0, seed)
    try:
        with quiet():
            relative_error(np.ones(3), np.ones((3, 1)))
    except ValueError:
        return
    except Exception as exc:  # noqa: BLE001 - any other exception is the student's and gets named
        raise CheckFailure(
            f"relative_error(np.ones(3), np.ones((3, 1))) raised {type(exc).__name__}, not ValueError. Use "
            f"`raise ValueError(...)` (an assert raises AssertionError) with a message naming both shapes."
        ) from None
    raise CheckFailure(
        "relative_error(np.ones(3), np.ones((3, 1))) did not raise ValueError. Arrays of different shapes "
        "cannot be compared entry by entry (numpy would silently broadcast them to 3 x 3): check "
        "np.shape(a) == np.shape(b) first and raise ValueError naming both shapes."
    )
