"""Finite differences: the trusted, slow way to get derivatives, used to check the fast ways.

Step sizes follow the usual error balance.  A difference quotient has a truncation error that shrinks
with the step ``h`` (O(h) one-sided, O(h**2) central) and a rounding error that grows like eps/h, so the
best relative step is about sqrt(eps) ~ 1.5e-8 for forward/backward differences and eps**(1/3) ~ 6e-6
for central differences, scaled by max(1, |x|) so that large inputs get proportionally large steps.
Everything runs in float64: in float32 no step gets much better than 1e-4 relative error.

The step actually used is ``(x + h) - x`` (the representable difference), not the ``h`` asked for, which
removes one source of rounding error.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

__all__ = [
    "EPS",
    "backward_difference",
    "central_difference",
    "default_step",
    "forward_difference",
    "numerical_gradient",
    "numerical_jacobian",
    "relative_error",
]

EPS = float(np.finfo(np.float64).eps)
_RELATIVE_STEP = {"forward": math.sqrt(EPS), "backward": math.sqrt(EPS), "central": EPS ** (1.0 / 3.0)}


def default_step(x: float, scheme: str = "central") -> float:
    """The step the rules above give for a difference of kind ``scheme`` at ``x``."""
    if scheme not in _RELATIVE_STEP:
        raise ValueError(f"scheme must be one of {sorted(_RELATIVE_STEP)}, got {scheme!r}")
    return _RELATIVE_STEP[scheme] * max(1.0, abs(float(x)))


# -- scalar functions -------------------------------------------------------------------------------


def _check_point(x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"x must be a real number, got {type(x).__name__}: {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"x must be finite, got {x}")
    return x


def _step(x: float, h: float | None, scheme: str) -> float:
    if h is None:
        return default_step(x, scheme)
    if isinstance(h, bool) or not isinstance(h, numbers.Real) or not math.isfinite(h) or h <= 0:
        raise ValueError(f"the step h must be a positive finite number, got {h!r}")
    return float(h)


def _as_scalar(value: object, where: str) -> float:
    """f's result as a finite float, or a clear error saying what f returned instead."""
    if isinstance(value, np.ndarray):
        if value.shape != ():
            raise ValueError(
                f"f must return a scalar, but returned an array of shape {value.shape} {where}; "
                "reduce it (e.g. .sum()) or take the element you mean"
            )
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"f must return a real number, but returned {type(value).__name__} {where}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"f returned {value} {where}; finite differences need finite values there")
    return value


def forward_difference(f: Callable[[float], float], x: float, h: float | None = None) -> float:
    """(f(x + h) - f(x)) / h: first-order accurate, one extra evaluation."""
    x = _check_point(x)
    xp = x + _step(x, h, "forward")
    return (_as_scalar(f(xp), f"at x + h = {xp!r}") - _as_scalar(f(x), f"at x = {x!r}")) / (xp - x)


def backward_difference(f: Callable[[float], float], x: float, h: float | None = None) -> float:
    """(f(x) - f(x - h)) / h: first-order accurate; the mirror of the forward difference."""
    x = _check_point(x)
    xm = x - _step(x, h, "backward")
    return (_as_scalar(f(x), f"at x = {x!r}") - _as_scalar(f(xm), f"at x - h = {xm!r}")) / (x - xm)


def central_difference(f: Callable[[float], float], x: float, h: float | None = None) -> float:
    """(f(x + h) - f(x - h)) / 2h: second-order accurate (the even error terms cancel)."""
    x = _check_point(x)
    step = _step(x, h, "central")
    xp, xm = x + step, x - step
    return (_as_scalar(f(xp), f"at x + h = {xp!r}") - _as_scalar(f(xm), f"at x - h = {xm!r}")) / (xp - xm)


# -- functions of arrays ----------------------------------------------------------------------------


def _working_copies(xs: tuple[object, ...]) -> list[np.ndarray]:
    """Private, writable float64 copies of the inputs, so the caller's arrays are never touched."""
    if not xs:
        raise TypeError("give at least one input array")
    copies = []
    for i, x in enumerate(xs):
        arr = np.asarray(x)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"input {i} must be a numeric array, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"input {i} is complex; these finite differences are for real inputs")
        arr = np.array(arr, dtype=np.float64, copy=True, subok=False)
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"input {i} has a non-finite value at index {[int(j) for j in bad[0]]}")
        copies.append(arr)
    return copies


def _read_only(arr: np.ndarray) -> np.ndarray:
    """A view f can read but not write, so f cannot corrupt the evaluations that follow."""
    view = arr.view()
    view.flags.writeable = False
    return view


def _steps(arr: np.ndarray, h: float | None) -> np.ndarray:
    if h is None:
        return _RELATIVE_STEP["central"] * np.maximum(1.0, np.abs(arr))
    return np.full(arr.shape, _step(0.0, h, "central"))


def _central_columns(
    f: Callable[..., object],
    xs: tuple[object, ...],
    h: float | None,
    evaluate: Callable[[object, str], object],
) -> list[list[object]]:
    """For every input i and element j (C order): (f(.. x_j + h ..) - f(.. x_j - h ..)) / 2h.

    Each perturbed element is restored exactly before the next one is moved.
    """
    work = _working_copies(xs)
    args = [_read_only(arr) for arr in work]
    columns = []
    for i, arr in enumerate(work):
        steps = _steps(arr, h).reshape(-1)
        flat = arr.reshape(-1)  # a view: writing into it moves arr, and so what f sees
        cols = []
        for j in range(flat.size):
            original = flat[j]
            xp, xm = original + steps[j], original - steps[j]
            where = f"input {i} element {[int(k) for k in np.unravel_index(j, arr.shape)]}"
            flat[j] = xp
            up = evaluate(f(*args), f"with {where} moved up to {float(xp)!r}")
            flat[j] = xm
            down = evaluate(f(*args), f"with {where} moved down to {float(xm)!r}")
            flat[j] = original
            cols.append((up - down) / (xp - xm))
        columns.append(cols)
    return columns


def numerical_gradient(
    f: Callable[..., float], *xs: np.ndarray, h: float | None = None
) -> tuple[np.ndarray, ...]:
    """Central-difference gradient of a scalar function ``f(*xs)``: one float64 array per input.

    Always returns a tuple (``(gx,) = numerical_gradient(f, x)`` for one input).  ``h`` is an absolute
    step; by default each element gets eps**(1/3) * max(1, |x_j|).  Costs 2 * (total size) calls of f.
    """
    arrays = [np.asarray(x) for x in xs]
    columns = _central_columns(f, xs, h, _as_scalar)
    return tuple(
        np.array(cols, dtype=np.float64).reshape(a.shape) for cols, a in zip(columns, arrays, strict=True)
    )


def _as_array(value: object, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise TypeError(f"f must return a real numeric array, but returned dtype {arr.dtype} {where}")
    arr = np.array(arr, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"f returned a non-finite value {where}; finite differences need finite values")
    return arr.reshape(-1)


def numerical_jacobian(
    f: Callable[..., np.ndarray], *xs: np.ndarray, h: float | None = None
) -> tuple[np.ndarray, ...]:
    """Central-difference Jacobians of an array function ``f(*xs)``: one per input.

    ``J[k][i, j]`` = d f(...).flat[i] / d xs[k].flat[j], so each Jacobian has shape
    ``(f(*xs).size, xs[k].size)`` and a VJP is ``g.ravel() @ J[k]``.
    """
    out_size = _as_array(f(*[_read_only(a) for a in _working_copies(xs)]), "at the given inputs").size
    columns = _central_columns(f, xs, h, _as_array)
    jacobians = []
    for k, cols in enumerate(columns):
        for col in cols:
            if col.size != out_size:
                raise ValueError(
                    f"f's output size changed from {out_size} to {col.size} when input {k} moved"
                )
        jacobians.append(np.stack(cols, axis=1) if cols else np.zeros((out_size, 0), dtype=np.float64))
    return tuple(jacobians)


def relative_error(got: object, expected: object) -> float:
    """max|got - expected| / max(max|got|, max|expected|): one number, scaled to the data.

    Normalising by the overall scale (not element by element) keeps entries that happen to be near
    zero from blowing the error up.  0.0 when both are all zeros; ``inf`` when either holds a NaN or an
    infinity (so ``err <= tol`` is False for them).  Shapes must match exactly: no broadcasting.
    """
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: got {a.shape}, expected {b.shape}")
    if a.size == 0:
        return 0.0
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.inf
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - b))) / scale
