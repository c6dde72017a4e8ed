"""Visible checks for lesson 01 (finite differences).

Each check draws fresh random test functions, points and steps and compares with the value the answer must
have, known by construction: Taylor series of functions whose every derivative is known, closed forms of
the difference quotients of sines and quadratics, pairs built with a chosen relative error. This module is
shipped to students, so it holds no finite-difference formula and no relative_error of its own. When an
answer is wrong the message names the test case and, where the wrong number matches a recognisable mistake
(a forward difference where a central one was asked, dividing by h instead of 2h, a sign flip, a float32 or
integer copy, ...), says so. A passing check prints one line saying what it compared.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np

from autograder.checks import (
    CheckFailure,
    as_real,
    call_student,
    close,
    new_seed,
    passed,
    raised_by,
    repeatable,
    reworded,
    student_frame,
)

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
        self.arg_types: set[type] = set()  # what the student's code called f with (float32 is named)

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
        self.arg_types.add(type(x))
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
        "forward divided by 2h": forward / 2,
        "backward divided by 2h": backward / 2,
        "forward with the sign flipped": -forward,
        "backward with the sign flipped": -backward,
        "central with the sign flipped": -central,
        "central times h over 2": central * h * h,
        "forward not divided": forward * h,
        "backward not divided": backward * h,
        "central not divided": central * 2 * h,
        "central divided by 2 only": central * h,
        "forward without brackets": fp - f0 / h,
        "backward without brackets": f0 - fm / h,
        "central without brackets": fp - fm / (2 * h),
    }


HINTS = {
    "forward": "your value is the FORWARD difference (f(x+h) - f(x)) / h",
    "backward": "your value is the BACKWARD difference (f(x) - f(x-h)) / h",
    "central": "your value is the CENTRAL difference (f(x+h) - f(x-h)) / (2h)",
    "central divided by h": "your value is (f(x+h) - f(x-h)) / h, twice the central difference: the two "
    "points are 2h apart, so divide by 2h",
    "forward divided by 2h": "your value is (f(x+h) - f(x)) / (2h), half the forward difference: x and x+h "
    "are only h apart, so their difference is divided by h (2h belongs with f(x+h) and f(x-h), 2h apart)",
    "backward divided by 2h": "your value is (f(x) - f(x-h)) / (2h), half the backward difference: x-h and x "
    "are only h apart, so their difference is divided by h (2h belongs with f(x+h) and f(x-h), 2h apart)",
    "forward with the sign flipped": "your value is (f(x) - f(x+h)) / h, the forward difference with its "
    "sign flipped: subtract in the other order",
    "backward with the sign flipped": "your value is (f(x-h) - f(x)) / h, the backward difference with its "
    "sign flipped: subtract in the other order",
    "central with the sign flipped": "your value is (f(x-h) - f(x+h)) / (2h), the central difference with "
    "its sign flipped: subtract in the other order",
    "central times h over 2": "your value is (f(x+h) - f(x-h)) / 2 * h, which Python reads as "
    "((...) / 2) * h: put brackets around the denominator, / (2 * h)",
    "forward without brackets": "your value is f(x+h) - f(x) / h, which Python reads as f(x+h) - (f(x) / h): "
    "put brackets around the numerator",
    "backward without brackets": "your value is f(x) - f(x-h) / h, which Python reads as "
    "f(x) - (f(x-h) / h): put brackets around the numerator",
    "central without brackets": "your value is f(x+h) - f(x-h) / (2h), which Python reads as "
    "f(x+h) - (f(x-h) / (2h)): put brackets around the numerator",
    "forward not divided": "your value is f(x+h) - f(x) itself: you forgot to divide by h",
    "backward not divided": "your value is f(x) - f(x-h) itself: you forgot to divide by h",
    "central not divided": "your value is f(x+h) - f(x-h) itself: you forgot to divide by 2h",
    "central divided by 2 only": "your value is (f(x+h) - f(x-h)) / 2: you divided by 2 but forgot h (the "
    "denominator is 2h)",
}

FORMULAS = {
    "forward": "(f(x + h) - f(x)) / h",
    "backward": "(f(x) - f(x - h)) / h",
    "central": "(f(x + h) - f(x - h)) / (2 * h)",
}


def student_line(error: BaseException | None) -> str:
    """Where in the student's own code an exception was raised, as a sentence ('' if it cannot be told):
    the checker's message replaces the traceback, so the line number must travel in the message."""
    frame = student_frame(error)
    if frame is None:
        return ""
    _, line, text = frame
    return f"it happened at line {line} of your answer cell" + (f": `{text}`" if text else "") + ". "


TRY_IT = {
    "forward_difference": "forward_difference(np.sin, 0.5, 1e-3)",
    "backward_difference": "backward_difference(np.sin, 0.5, 1e-3)",
    "central_difference": "central_difference(np.sin, 0.5, 1e-3)",
    "numerical_gradient": "numerical_gradient(lambda v: np.sum(v ** 2), np.ones((2, 3)))",
    "relative_error": "relative_error(np.ones(3), np.arange(3.0))",
}
"""A call of each exercise a student can run in a cell of their own to see where their code raises."""


def run_student(call: str, seed: int, name: str, fn: Callable, *args: object) -> object:
    """call_student, with the failing case, the seed and the line of the student's code that raised put into
    any message but the blank one."""
    def reword(exc: CheckFailure) -> str:
        if exc.__context__ is None:  # the check's own failure (f called wrongly): no traceback to see
            return f"{call} (seed {seed}): {exc}"
        return (f"{call} (seed {seed}): {exc}\nHint: {student_line(exc.__context__)}To see the whole "
                f"traceback, call it yourself in a cell of your own, e.g. {TRY_IT[name]}.")

    with reworded(reword, into=CheckFailure):
        return call_student(name, fn, *args)


RTOL = 1e-8
"""Difference quotients computed from the closed forms agree with the student's to rounding."""


def judge_difference(student: Callable, name: str, wanted: str, seed: int | None, trials: int) -> float:
    """Shared body of the three scalar finite-difference checks; returns the worst relative error."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for trial in range(trials):
        f = SmoothFunction(rng)
        x = float(rng.uniform(-1.5, 1.5))
        h = float(10.0 ** rng.uniform(-3, -1.5))
        candidates = scalar_candidates(f, x, h)
        call = f"{name}(f, x={x!r}, h={h!r}) with f(x) = {f}"
        raw = run_student(call, seed, name, student, f, x, h)
        got = as_real(raw, f"{call} (seed {seed}) returned")
        expected = candidates[wanted]
        if close(got, expected, RTOL):
            worst = max(worst, abs(got - expected) / max(abs(expected), 1e-300))
            continue
        matches = [k for k, v in candidates.items()
                   if k != wanted and close(got, v, RTOL)
                   and not close(v, expected, RTOL)]  # only slips that change the value
        low = sorted(t.__name__ for t in f.arg_types | {type(raw)} if t in (np.float32, np.float16))
        if low:
            hint = (f"your code works in {low[0]} (f was called with {low[0]} numbers, or your result is "
                    f"{low[0]}), which keeps only about 7 significant digits, so f(x + h) and f(x - h) lose "
                    f"most of them when subtracted (section 3 of this lesson). Compute in float64: use x, h "
                    f"and f's values as they are, without converting them to {low[0]}.")
        elif matches:
            hint = (f"{HINTS[matches[0]]}. The exercise asks for the {wanted} difference, "
                    f"{FORMULAS[wanted]}.")
        elif abs(got - expected) <= 0.05 * abs(expected):
            hint = (
                f"your value is close to the right one but not equal, as if it were computed with another "
                f"step. Use the h passed in (here h = {h!r}), not a step of your own: {FORMULAS[wanted]}."
            )
        else:
            hint = f"the {wanted} difference is {FORMULAS[wanted]}, with the f, x and h you are given."
        raise CheckFailure(
            f"{call} returned {got!r}, expected {expected!r} (test {trial + 1} of {trials}, seed {seed}).\n"
            f"Hint: {hint}"
        )
    return worst


def report_difference(student: Callable, name: str, wanted: str, seed: int | None) -> None:
    """The visible check of one scalar formula: six random cases, then the one-line pass report."""
    seed = new_seed(seed)
    with repeatable(f"checks.check_{name}({name}, seed={seed})"):
        worst = judge_difference(student, name, wanted, seed, trials=6)
    passed(name, f"6 random smooth functions and steps, worst relative error {worst:.1e} (seed {seed})")


def check_forward_difference(forward_difference: Callable, *, seed: int | None = None) -> None:
    """forward_difference(f, x, h) must equal (f(x+h) - f(x)) / h on random smooth functions."""
    report_difference(forward_difference, "forward_difference", "forward", seed)


def check_backward_difference(backward_difference: Callable, *, seed: int | None = None) -> None:
    """backward_difference(f, x, h) must equal (f(x) - f(x-h)) / h on random smooth functions."""
    report_difference(backward_difference, "backward_difference", "backward", seed)


def check_central_difference(central_difference: Callable, *, seed: int | None = None) -> None:
    """central_difference(f, x, h) must equal (f(x+h) - f(x-h)) / (2h) on random smooth functions."""
    report_difference(central_difference, "central_difference", "central", seed)


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
        self.dtypes: set[np.dtype] = set()
        self.points: list[np.ndarray] = []

    def value(self, X: np.ndarray) -> float:
        """The function itself, in float64 (the trusted forward)."""
        X = np.asarray(X, dtype=float)
        XB = X.reshape(-1, self.B.shape[0]) @ self.B if X.ndim else X * self.B[0]
        return float(np.sum(self.W * np.sin(X)) + 0.5 * np.sum(XB**2) + 0.5 * np.sum(self.V * X) ** 2)

    def __call__(self, X: object) -> float:
        self.calls += 1
        arr = np.asarray(X)
        self.dtypes.add(arr.dtype)
        if arr.shape != self.shape:
            raise CheckFailure(
                f"numerical_gradient called f with an array of shape {arr.shape}, but x has shape "
                f"{self.shape}.\nHint: call f with a perturbed copy of x that keeps x's shape (use "
                f"np.ndindex(x.shape) or a flat view of a reshaped copy to visit the entries)."
            )
        if len(self.points) < 200:
            self.points.append(np.array(arr, dtype=float))
        return self.value(arr)

    def typical_step(self, x: np.ndarray) -> float | None:
        """How far from x the points f was called at lay (the median of max|point - x|, x itself left out):
        what the student's code actually used as its step, whatever it was named."""
        moved = [float(np.max(np.abs(p - x))) if p.size else 0.0 for p in self.points]
        moved = [m for m in moved if m > 0]
        return float(np.median(moved)) if moved else None

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
    "negative": "your gradient is the negative of the central differences: you computed "
    "(f(x-h e_i) - f(x+h e_i)) / (2h). Subtract in the other order.",
    "not divided": "your gradient is f(x+h e_i) - f(x-h e_i) itself: you forgot to divide by 2h.",
    "divided by 2 only": "your gradient is (f(x+h e_i) - f(x-h e_i)) / 2: you divided by 2 but forgot h (the "
    "denominator is 2h).",
    "drift": "the first entry is right but later ones are off: each coordinate must be perturbed on its own. "
    "Restore x[i] (or start again from a fresh copy of x) before moving to the next coordinate.",
}


def call_dtype_hint(f: ArrayFunction) -> str:
    """Why the values are off when f was called with arrays of too little precision, or '' if it was not."""
    kinds = sorted(str(d) for d in f.dtypes if d != np.float64)
    if not kinds:
        return ""
    if any(np.dtype(d).kind in "iub" for d in kinds):
        return (f"f was called with {kinds[0]} arrays: the array you perturb has x's integer dtype, so "
                f"x[i] + h is rounded back to an integer (np.copy(x) and np.array(x) keep the dtype). "
                f"Perturb a float copy: np.array(x, dtype=float).")
    return (f"f was called with {kinds[0]} arrays: the array you perturb is {kinds[0]}, which keeps only "
            f"about 7 significant digits, so f(x + h e_i) - f(x - h e_i) loses most of them (section 3 of "
            f"this lesson). Perturb a float64 copy: np.array(x, dtype=float).")


def gradient_result(raw: object, call: str, shape: tuple[int, ...], seed: int,
                    f: ArrayFunction) -> np.ndarray:
    """The student's gradient as a plain float64 array, once it is known to be a float array of x's shape."""
    if raw is None:
        raise CheckFailure(f"{call} returned None (seed {seed}). Did you forget the `return` statement?")
    if isinstance(raw, list | tuple):
        raise CheckFailure(
            f"{call} returned a Python {type(raw).__name__} (seed {seed}).\nHint: return a numpy array of "
            f"floats with x's shape: fill in np.zeros(np.shape(x)) and return that array itself."
        )
    if not isinstance(raw, np.ndarray):
        raise CheckFailure(
            f"{call} returned a {type(raw).__name__} ({raw!r}), not a numpy array (seed {seed}).\nHint: the "
            f"gradient has one entry per entry of x: fill in np.zeros(np.shape(x)) and return that array.")
    arr = np.array(raw, subok=False, copy=True)
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 8:
        digits = 3 if arr.itemsize == 2 else 7
        cause = call_dtype_hint(f) or (f"a {arr.dtype} array keeps only about {digits} "
                                       f"significant digits; build the gradient with np.zeros(np.shape(x)), "
                                       f"which is float64.")
        raise CheckFailure(f"{call} returned a {arr.dtype} array; the gradient must be float64 (seed {seed})."
                           f"\nHint: {cause}")
    if arr.dtype.kind != "f":
        cause = call_dtype_hint(f) or ("np.zeros_like(x) of an integer x is an integer array: use "
                                       "np.zeros(np.shape(x)).")
        raise CheckFailure(
            f"{call} returned an array of dtype {arr.dtype}; a gradient holds fractions, so it must be a "
            f"float array (seed {seed}).\nHint: {cause}"
        )
    if arr.shape != shape:
        raise CheckFailure(
            f"{call} returned an array of shape {arr.shape}, but x has shape {shape} (seed {seed}). The "
            f"gradient has one entry per entry of x: start from np.zeros(np.shape(x))."
        )
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise CheckFailure(f"{call} returned non-finite values: {out} (seed {seed}).")
    return out


def gradient_case(
    numerical_gradient: Callable, f: ArrayFunction, x: object, h: float | None, seed: int, what: str = ""
) -> float:
    """Run the student's numerical_gradient on one case and compare with central differences.

    x may be a float array, an int array or a list; `what` says which. Returns the worst relative error.
    """
    x_before = copy.deepcopy(x)
    shape = np.shape(x)
    step = 1e-5 if h is None else h
    args = "f, x" if h is None else f"f, x, h={h:.3g}"
    call = f"numerical_gradient({args}) with {what or 'x'} of shape {shape}"
    extra = () if h is None else (h,)
    also = ("\nAlso: x here is a Python list, which has no array methods and no arithmetic of its own; "
            "np.array(x, dtype=float) turns a list, an integer or a float array alike into a float copy to "
            "work on." if isinstance(x_before, list) else "")
    with reworded(lambda exc: f"{exc}{also}"):
        raw = run_student(call, seed, "numerical_gradient", numerical_gradient, f, x, *extra)
    if type(x) is not type(x_before) or np.shape(x) != shape or not np.array_equal(x, x_before):
        changed = int(np.sum(np.asarray(x) != np.asarray(x_before))) if np.shape(x) == shape else np.size(x)
        raise CheckFailure(
            f"{call} changed x: {changed} of its {np.size(x)} entries differ after the call (seed {seed}).\n"
            f"Hint: work on a copy (xp = np.array(x, dtype=float)), or put the original value back with "
            f"xp[i] = old. Note that x[i] += h followed by x[i] -= h does NOT always give back x[i] exactly."
        )
    got = gradient_result(raw, call, shape, seed, f)
    if isinstance(raw, np.ndarray) and isinstance(x, np.ndarray) and np.shares_memory(raw, x):
        raise CheckFailure(
            f"{call} returned an array that shares memory with x. Return a new array (np.zeros(x.shape)) so "
            f"that writing the gradient never overwrites the point it was computed at (seed {seed})."
        )
    cands = f.expected_differences(np.asarray(x_before, dtype=float), step)
    expected = cands["central"]
    scale = max(1.0, float(np.max(np.abs(expected))))
    err = np.abs(got - expected)
    used = f.typical_step(np.asarray(x_before, dtype=float))
    step_hint = "" if used is None or abs(used - step) <= 0.01 * step else (
        f"f was called at points {used:.3g} away from x, but the step is h = {step:.3g}"
        f"{' (the default in the def line)' if h is None else ''}: move each entry by exactly h, not by a "
        f"step of your own.")
    if np.all(err <= 1e-7 * scale):
        if f.calls < 2 * np.size(x):
            raise CheckFailure(
                f"{call} called f only {f.calls} times; central differences need two calls per entry "
                f"({2 * np.size(x)}). Is the gradient computed from f, or from something else? (seed {seed})"
            )
        if step_hint:
            raise CheckFailure(f"{call}: the values are close, but not with the step asked for "
                               f"(seed {seed}).\nHint: {step_hint}")
        return float(np.max(err) / scale) if err.size else 0.0
    cands |= {"negative": -expected, "not divided": 2 * step * expected, "divided by 2 only": step * expected}
    worst = np.unravel_index(int(np.argmax(err)), shape)
    def near(v: np.ndarray, w: np.ndarray) -> bool:
        return bool(np.all(np.abs(v - w) <= 1e-7 * max(1.0, float(np.max(np.abs(w))))))

    # a slip is named only where it changes the answer (e.g. "drift" of a one-entry x is the answer itself)
    matches = [k for k, v in cands.items() if k != "central" and near(got, v) and not near(v, expected)]
    if call_dtype_hint(f):
        hint = call_dtype_hint(f)
    elif not np.any(got) and np.any(expected):
        hint = (
            "every entry is 0.0: f(x + h e_i) and f(x - h e_i) came out equal, so both calls saw the same "
            "point. xp = x (or xm = xp) does not copy: both names are one array, so moving one moves the "
            "other too. Make a real copy for each point (x.copy(), np.array(x, dtype=float)) or put the old "
            "value back between the two calls."
        )
    elif matches:
        hint = GRADIENT_HINTS[matches[0]]
    elif step_hint:
        hint = step_hint
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
    """Central differences on 1-D and 2-D float arrays (given and default step), an integer array, a list."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    worst, entries = 0.0, 0
    with repeatable(f"checks.check_numerical_gradient(numerical_gradient, seed={seed})"):
        for shape, h in [((5,), 1e-3), ((3, 4), 1e-3), ((4,), None)]:
            x = rng.uniform(-1.0, 1.0, size=shape) * rng.uniform(0.5, 2.0)
            worst = max(worst, gradient_case(numerical_gradient, ArrayFunction(rng, shape), x, h, seed))
            entries += x.size
        ints = rng.integers(-3, 4, size=5)
        worst = max(worst, gradient_case(numerical_gradient, ArrayFunction(rng, (5,)), ints, 1e-3, seed,
                                         what="an integer array"))
        as_list = [float(v) for v in rng.uniform(-1.0, 1.0, size=4)]
        worst = max(worst, gradient_case(numerical_gradient, ArrayFunction(rng, (4,)), as_list, 1e-3, seed,
                                         what="a Python list"))
    passed("numerical_gradient", f"{entries + 9} entries of 5 inputs (float arrays of shapes (5,) and (3, 4) "
           f"with h = 1e-3, of shape (4,) with the default h; an integer array and a list with h = 1e-3), "
           f"worst relative error {worst:.1e} (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# relative_error
# ---------------------------------------------------------------------------------------------------------


ZERO_HINT = "when a and b are both zero they are equal: return 0.0 instead of dividing 0 by 0."


def relative_error_case(
    relative_error: Callable,
    a: object,
    b: object,
    expected: float,
    seed: int,
    *,
    over_a: float | None = None,
    over_b: float | None = None,
    entrywise: float | None = None,
) -> int:
    """Compare the student's relative_error(a, b) with `expected`, the value the pair was built to have.

    over_a, over_b and entrywise, when the pair's construction knows them, are the values of the usual
    slips: max|a - b| / max|a|, max|a - b| / max|b|, and the largest of the entries' own relative errors.
    Returns 1, the number of pairs compared, so callers can count them.
    """
    call = f"relative_error({a!r}, {b!r})"
    before = copy.deepcopy((a, b))
    also = f"\nHint: {ZERO_HINT}" if expected == 0.0 else ""
    with reworded(lambda exc: f"{exc}{also}"):
        raw = run_student(call, seed, "relative_error", relative_error, a, b)
    for label, now, then in zip("ab", (a, b), before, strict=True):
        if not np.array_equal(now, then):
            raise CheckFailure(
                f"{call} changed its argument {label}: after the call it is {now!r} (seed {seed}).\nHint: "
                f"np.asarray does not copy an array that is already float, so np.abs({label}, out={label}) "
                f"or {label} -= ... writes into the caller's array (the gradient you are checking). Compute "
                f"into new arrays: np.abs(a - b), np.max(np.abs(a)).")
    got = as_real(raw, f"{call} (seed {seed}) returned", python_float=True)
    if close(got, expected, 1e-9):
        return 1
    an, bn = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    hint = "relative_error(a, b) = max|a - b| / max(max|a|, max|b|)."
    norms = max(np.linalg.norm(an), np.linalg.norm(bn))

    def slip(value: float | None) -> bool:
        """got matches this slip's value, and the slip does not happen to give the right answer here."""
        return value is not None and close(got, value, RTOL) and not close(value, expected, RTOL)

    if slip(over_a):
        hint = "you divide by |a| only. Divide by the LARGER of the two sizes, so the error is symmetric."
    elif slip(over_b):
        hint = "you divide by |b| only. Divide by the LARGER of the two sizes, so the error is symmetric."
    elif abs(got - expected) <= 1e-5 * abs(expected):
        hint = (
            f"your value is off by a relative {abs(got - expected) / abs(expected):.1e}, as if a small "
            f"number (such as 1e-8) were added to the denominator. Divide by exactly the larger size; the "
            f"case where both are all zero is handled on its own (return 0.0)."
        )
    elif slip(entrywise):
        hint = (
            "you computed a relative error for each entry (its difference over its own size) and took the "
            "largest. Here a tiny entry changed a lot while the large ones agree, which is a small error for "
            "the array as a whole: divide the largest difference by the largest size, once."
        )
    elif got < 0:
        hint = (
            "a relative error cannot be negative: take absolute values, max|a - b| on top and max|a|, max|b| "
            "below."
        )
    elif norms > 0 and close(got, float(np.linalg.norm(an - bn)) / norms, RTOL):
        hint = (
            "you used norms (square root of the sum of squares). This exercise measures the largest entry: "
            "np.max(np.abs(...)) on top and below."
        )
    raise CheckFailure(f"{call} returned {got!r}, expected {expected!r} (seed {seed}).\nHint: {hint}")


def scaled_pair(rng: np.random.Generator, seed: int, relative_error: Callable) -> int:
    """Scalars a and b = k a (k > 1, so |b| > |a|), then -b and -a: the relative error is (k - 1) / k.

    The first pair catches dividing by |a| only, and one of the two (both share a sign) a missing abs."""
    a = float(rng.uniform(0.5, 2.0) * rng.choice([-1, 1]))
    k = float(rng.uniform(1.5, 3.0))
    expected = (k - 1.0) / k
    first = relative_error_case(relative_error, a, a * k, expected, seed, over_a=k - 1.0, over_b=expected)
    return first + relative_error_case(relative_error, -a * k, -a, expected, seed, over_a=expected,
                                       over_b=k - 1.0)


def spiked_pair(rng: np.random.Generator, seed: int, relative_error: Callable) -> int:
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
    entrywise = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))))
    return relative_error_case(relative_error, a, b, (1.0 + m) / m, seed, over_a=(1.0 + m) * u,
                               over_b=(1.0 + m) / m, entrywise=entrywise)


def small_entry_pair(rng: np.random.Generator, seed: int, relative_error: Callable) -> int:
    """Arrays equal except a tiny entry b[j] = k a[j] (|a[j]| = s <= 0.05, k in [1.5, 3]), while the largest
    entry, M >= 0.5, is shared: the relative error is (k - 1) s / M, but entry by entry it is (k - 1) / k."""
    a = rng.uniform(0.5, 1.0, size=5) * rng.choice([-1.0, 1.0], size=5)
    j = int(rng.integers(5))
    s = float(rng.uniform(0.01, 0.05))
    a[j] = s * rng.choice([-1.0, 1.0])
    k = float(rng.uniform(1.5, 3.0))
    b = a.copy()
    b[j] = k * a[j]
    big = float(np.max(np.abs(np.delete(a, j))))
    expected = (k - 1.0) * s / big
    return relative_error_case(relative_error, a, b, expected, seed, over_a=expected, over_b=expected,
                               entrywise=(k - 1.0) / k)


def shape_names(shape: tuple[int, ...]) -> tuple[str, ...]:
    """How a message may write a shape: (3, 1), [3, 1] or 3x1 (compared without spaces)."""
    spelled = str(tuple(shape)).replace(" ", "")
    crossed = "x".join(map(str, shape)) if len(shape) > 1 else spelled
    return spelled, str(list(shape)).replace(" ", ""), crossed


def check_shape_error(relative_error: Callable, a: np.ndarray, b: np.ndarray, seed: int) -> None:
    """relative_error(a, b) with different shapes must raise ValueError whose message names both shapes."""
    call = f"relative_error(np.ones({a.shape}), np.ones({b.shape}))"

    error = raised_by("relative_error", relative_error, a, b)
    if error is None:
        raise CheckFailure(
            f"{call} did not raise ValueError (seed {seed}). Arrays of different shapes cannot be compared "
            f"entry by entry (numpy would silently broadcast them): check np.shape(a) == np.shape(b) first "
            f"and raise ValueError naming both shapes."
        )
    if not isinstance(error, ValueError):
        raise CheckFailure(
            f"{call} raised {type(error).__name__}, not ValueError (seed {seed}). Use "
            f"`raise ValueError(...)` (an assert raises AssertionError) with a message naming both shapes."
        )
    message = str(error).replace(" ", "")
    missing = [shape for shape in (a.shape, b.shape) if not any(n in message for n in shape_names(shape))]
    if missing:
        raise CheckFailure(
            f"{call} raised ValueError({str(error)!r}), which does not name the shape {missing[0]}: when "
            f"you read it after a failed call, you cannot tell which argument has the wrong shape (seed "
            f"{seed}). Put both shapes in the message, e.g. with an f-string of np.shape(a) and np.shape(b)."
        )


def check_relative_error(relative_error: Callable, *, seed: int | None = None) -> None:
    """Scalars of both signs and orders, arrays, the all-zero case, and a clear error on mismatched shapes."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    with repeatable(f"checks.check_relative_error(relative_error, seed={seed})"):
        pairs = sum(scaled_pair(rng, seed, relative_error) for _ in range(3))
        pairs += spiked_pair(rng, seed, relative_error) + small_entry_pair(rng, seed, relative_error)
        pairs += relative_error_case(relative_error, np.zeros(3), np.zeros(3), 0.0, seed)
        check_shape_error(relative_error, np.ones(3), np.ones((3, 1)), seed)
    passed("relative_error", f"{pairs} pairs (scalars of both signs, arrays, all zeros) compared to 1e-9, "
           f"and a ValueError naming the shapes (3,) and (3, 1) (seed {seed})")
