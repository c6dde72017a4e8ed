"""Numerical checks behind every test cell of the course.

A student's derivative, gradient or VJP is compared with central finite differences of a *trusted*
forward function, always evaluated in float64. The rules:

* small inputs (up to ``FULL_LIMIT`` elements) are compared element by element; larger ones with
  independent Gaussian projection probes ``<u, claimed> ~ d/dt phi(x + t u)``;
* upstream gradients are random Gaussians, never all ones; the seed is fresh for every call and printed
  on failure so the student can reproduce it;
* the tolerance is relative to the size of the numbers compared, widened only by the measured error of
  the finite difference itself (two step sizes, Richardson), so it is scale-free;
* a point where the trusted function has a kink is detected (the one-sided slopes disagree at both step
  sizes) and the point is moved, never counted against the student;
* student code gets read-only copies and its results are copied into plain float64 arrays after their
  shape, dtype kind and finiteness are checked, so in-place mutation, lying ndarray subclasses and NaN
  results cannot pass; randomness comes from a private generator, so reseeding numpy's global one
  changes nothing;
* nothing is ever written to stderr (nbgrader zeroes a cell that writes there), and numpy warnings
  raised inside student code are silenced while it is checked.

One return type: a lesson's ``check_*`` function (what a test cell calls) returns None, prints its one
pass line with `passed` and raises CheckFailure (NotDone for a blank answer) otherwise; the engine checks
here (`check_derivative`, `check_gradient`, `check_vjp`, `check_close`) return a CheckReport for the
lesson's check to report from, and a lesson's ``judge_*`` helpers return what they compared.

This module depends on numpy only: students install it to run the visible tests.
"""

from __future__ import annotations

import contextlib
import linecache
import math
import numbers
import os
import secrets
import sysconfig
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CheckFailure",
    "GradientCheckError",
    "CheckReport",
    "NotDone",
    "as_real",
    "call_student",
    "check_close",
    "close",
    "check_derivative",
    "check_gradient",
    "check_vjp",
    "demo",
    "in_kernel",
    "new_seed",
    "student_frame",
    "StudentObject",
    "type_name",
    "passed",
    "quiet",
    "raised_by",
    "readonly",
    "repeat_line",
    "repeatable",
    "reworded",
    "student_function",
]

FULL_LIMIT = 2048
"""Inputs with at most this many elements are compared element by element."""

PROBES = 3
"""Independent Gaussian probes per input in projection mode (one already catches every global bug)."""

_EPS = float(np.finfo(np.float64).eps)
_H0 = _EPS ** (1.0 / 3.0)  # optimal central-difference step for a function of unit scale
_KINK_RETRIES = 3

# Trusted references taken at import, before any student code runs in the kernel.
_array = np.array
_abs = np.abs
_max = np.max
_sum = np.sum
_isfinite = np.isfinite
_all = np.all
_float64 = np.float64


class CheckFailure(AssertionError):
    """A check failed; the message is written for the student."""


class GradientCheckError(CheckFailure):
    """A claimed derivative, gradient or VJP disagrees with finite differences."""


class NotDone(CheckFailure):
    """The exercise still raises NotImplementedError: every lesson says so in the same words."""

    def __init__(self, what: str):
        super().__init__(f"{what} is not written yet: replace `raise NotImplementedError()` in its answer "
                         "cell with your answer, run that cell, then run this test cell again.")


class StudentObject:
    """Base of the grader's stand-ins for objects that live in a grading kernel (`autograder.course.judge`).

    Checks name a result's type with `type_name`, which sees through the stand-in to the student's class."""

    student_type_name: str

    def run_probe(self, probe: Callable, args: tuple, kwargs: dict) -> object:
        raise NotImplementedError


def in_kernel(probe: Callable, *args: object, **kwargs: object) -> object:
    """``probe(*args, **kwargs)`` where the student's objects live: here in a student's kernel, and in the
    grading kernel when any argument stands for an object there (the grader then gets back what the probe
    returns). A probe is a module-level function of a visible check module that must watch the student's
    code from inside (a recursion depth, the objects it creates); it returns observations, never verdicts."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, StudentObject):
            return value.run_probe(probe, args, kwargs)
    return probe(*args, **kwargs)


def type_name(value: object) -> str:
    """The class name of a student's value, also when the value lives in the grading kernel."""
    return value.student_type_name if isinstance(value, StudentObject) else type(value).__name__


def student_frame(error: BaseException | None) -> tuple[str, int, str] | None:
    """(file, line, text) of the innermost frame of the student's own code in ``error``'s traceback.

    When grading, the student's code raised in the kernel and the grader's copy of the exception carries
    the frame as ``student_frame``; in a student's kernel, it is found in the traceback."""
    if error is None:
        return None
    carried = getattr(error, "student_frame", None)
    if carried is not None:
        return carried
    own = _student_frames(error)
    if not own:
        return None
    frame, line = own[-1]
    name = frame.f_code.co_filename
    return name, line, linecache.getline(name, line).strip()


def student_function(error: BaseException) -> str:
    """The name of the student's function that raised ``error`` ('?' if none): which method is still blank."""
    own = _student_frames(error)
    return own[-1][0].f_code.co_name if own else "?"


def _student_frames(error: BaseException) -> list:
    """(frame, line) of every frame of the student's own code in ``error``'s traceback, outermost first."""
    return [(frame, line) for frame, line in traceback.walk_tb(error.__traceback__)
            if not os.path.abspath(frame.f_code.co_filename).startswith(_NOT_STUDENT)]


_NOT_STUDENT = tuple(os.path.dirname(p) + os.sep for p in (__file__, np.__file__)) + (
    sysconfig.get_paths()["stdlib"] + os.sep,)


def call_student(what: str, fn: Callable, *args: object, **kwargs: object) -> object:
    """Run student code quietly and turn whatever it raises into one CheckFailure naming ``what``.

    A test cell must end in a message the student can act on, never in a traceback through the checker:
    a blank answer becomes NotDone, a deep recursion and an in-place write say what to change, and any
    other exception is named with its own text."""
    try:
        with quiet():
            return fn(*args, **kwargs)
    except CheckFailure:
        raise
    except NotImplementedError as exc:
        if not exc.args:  # the released cell's bare `raise NotImplementedError()`
            raise NotDone(what) from None
        raise CheckFailure(f"{what} raised NotImplementedError: {exc}") from None  # the student's own raise
    except RecursionError:
        raise CheckFailure(
            f"{what} hit Python's recursion limit (RecursionError): about 1000 calls were nested inside each "
            "other. Either a function calls itself without end (check that each recursive call moves on to "
            "a smaller part of the input and that it stops), or the input is deeper than that, which needs "
            "a loop with an explicit stack or list instead of a function that calls itself.") from None
    except ValueError as exc:
        raise CheckFailure(_wrote_in_place(what, exc) or f"{what} raised ValueError: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any error in student code becomes the cell's message
        raise CheckFailure(f"{what} raised {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def reworded(reword: Callable[[CheckFailure], str], into: type[CheckFailure] | None = None) -> Iterator[None]:
    """Give a failure inside the block the message ``reword(failure)`` (the case, the seed, the line that
    repeats it, a note), as an ``into`` or else of its own class. A blank answer keeps the course's one
    NotDone message."""
    try:
        yield
    except NotDone:
        raise
    except CheckFailure as exc:
        raise (into or type(exc))(reword(exc)) from None


@contextlib.contextmanager
def demo(exercises: str, names: str = "") -> Iterator[None]:
    """Run a notebook's demo of the student's answers: a blank one ends the cell with what to complete, a
    wrong one with one line naming the exercises whose test cells say why (a traceback would point into
    the demo, not at the mistake). ``exercises`` reads "exercise 2" or "exercises 1 and 3"."""
    try:
        yield
    except NotImplementedError:
        print(f"Complete {exercises}{f' ({names})' if names else ''}, then run this cell again.")
    except Exception as err:  # noqa: BLE001 - any error of a wrong answer becomes the one line
        print(f"This demo raised {type(err).__name__}: {err}\nRun the test cells of {exercises}: they name "
              "the cause.")


def repeat_line(call: str) -> str:
    """The one closing line of every randomised check's failure, in every lesson: the notebook call (with
    the seed it drew) that repeats exactly that test while the student fixes the code."""
    return f"Run {call} in a cell of your own to repeat this exact test."


def repeatable(call: str) -> contextlib.AbstractContextManager[None]:
    """A failure inside ends with ``repeat_line(call)`` and reaches the student as a CheckFailure (whatever
    internal kind the check raised); a blank exercise's NotDone needs none."""
    return reworded(lambda exc: f"{exc}\n{repeat_line(call)}", into=CheckFailure)


def close(got: float | np.ndarray, want: float | np.ndarray, rtol: float, *, atol: float = 0.0) -> bool:
    """Whether ``got`` equals ``want`` (scalars or arrays, every element) up to
    ``atol + rtol * max(1, |got|, |want|)``: relative for large numbers, ``rtol`` absolute below 1, so an
    answer near zero is not judged on rounding noise. NaN is never close."""
    g, w = _array(got, dtype=_float64), _array(want, dtype=_float64)
    scale = np.maximum(1.0, np.maximum(_abs(g), _abs(w)))
    return bool(_all(_abs(g - w) <= atol + rtol * scale))


def as_real(value: object, what: str, *, python_float: bool = False) -> float:
    """A student's number as a finite float, or one CheckFailure naming what came instead.

    ``what`` is the start of the sentence, subject and verb: "forward_difference(f, x=0.5, h=0.01) returned"
    or "forward[1]['h1'] is". Strings, tuples, lists and arrays of one number are refused although numpy
    would convert them: code doing arithmetic with the value would get something else. ``python_float``
    also refuses numbers that are not Python floats (an exercise that asks for one)."""
    kind = type_name(value)
    if value is None:
        raise CheckFailure(f"{what} None.\nHint: a function that ends without a `return` line gives None: "
                           "end yours with `return` and the value it computed.")
    if isinstance(value, str | bytes):
        raise CheckFailure(f"{what} the string {value!r}.\nHint: give the number itself, not its text: no "
                           "quotes, no str(...) or f-string.")
    if isinstance(value, tuple | list):
        comma = "a trailing comma (`return v,`) makes a tuple; " if isinstance(value, tuple) else ""
        raise CheckFailure(f"{what} the {kind} {value!r}, not one number.\nHint: {comma}give the number "
                           "itself.")
    if isinstance(value, np.ndarray):
        if python_float or value.ndim != 0 or value.dtype.kind not in "fiu":
            raise CheckFailure(f"{what} a numpy array of shape {value.shape}, dtype {value.dtype}.\nHint: "
                               "give one Python float: float(...) of the result.")
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CheckFailure(f"{what} the {kind} {value!r}, not a plain number.\nHint: give the number itself.")
    elif python_float and not isinstance(value, float):
        raise CheckFailure(f"{what} the {kind} {value!r}.\nHint: the exercise asks for a Python float: "
                           "return float(...) (and 0.0, not 0).")
    out = float(value)
    if not math.isfinite(out):
        raise CheckFailure(f"{what} {out}, not a finite number.\nHint: look for a division by zero or an "
                           "overflow.")
    return out


def raised_by(what: str, fn: Callable, *args: object, **kwargs: object) -> Exception | None:
    """What student code raised on a call that must raise (None: it returned), for the check to judge its
    class and text. A blank answer is NotDone, as in `call_student`."""
    def attempt() -> Exception | None:
        try:
            fn(*args, **kwargs)
        except (NotImplementedError, CheckFailure):
            raise
        except Exception as exc:  # noqa: BLE001 - which exception it is, is the check's to judge
            return exc
        return None

    return call_student(what, attempt)


def passed(what: str, detail: str) -> None:
    """Print the one line a passing check shows, so a student sees that something real was compared."""
    print(f"passed: {what}: {detail}")


def _show_check_failure(shell: object, etype: type, evalue: BaseException, tb: object,
                        tb_offset: int | None = None) -> None:
    """IPython handler: a failed check shows its message alone, not a traceback through this module.

    The cell still ends in an error output (nbgrader scores it zero), and nbgrader's feedback shows the
    same short text, because the traceback stored in the notebook is this message."""
    shell._showtraceback(etype, evalue, [f"\x1b[1;31m{etype.__name__}\x1b[0m: {evalue}"])


def _render_failures_briefly() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "set_custom_exc"):
        shell.set_custom_exc((CheckFailure,), _show_check_failure)


_render_failures_briefly()


@dataclass(frozen=True)
class CheckReport:
    """What a passing check compared, so a student can see it was a real test."""

    what: str
    compared: int
    mode: str
    worst_relative_error: float
    seed: int
    moved_off_kinks: int = 0

    def __repr__(self) -> str:
        if self.mode == "full":
            compared = f"{self.compared} number(s) compared one by one"
        else:
            compared = f"{self.compared} random projection(s) compared"
        moved = f", {self.moved_off_kinks} point(s) moved off a kink" if self.moved_off_kinks else ""
        return (
            f"passed: {self.what}: {compared}, worst relative error "
            f"{self.worst_relative_error:.1e}{moved} (seed {self.seed})"
        )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy floating-point warnings and Python warnings: stderr output zeroes a test cell."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------------------------------
# Converting what students return
# --------------------------------------------------------------------------------------------------


def _plain(value: object, what: str, shape: tuple[int, ...], *, allow_int: bool = False) -> np.ndarray:
    """Copy a student's result into a plain float64 array after checking type, shape, kind, finiteness."""
    if value is None:
        raise GradientCheckError(f"{what} returned None. Did you forget a `return` statement?")
    if isinstance(value, tuple | list) and shape != ():
        try:
            value = _array(value)
        except (ValueError, TypeError):
            raise GradientCheckError(f"{what} returned a {type(value).__name__}, expected an array") from None
    base = _array(value, copy=True, subok=False)
    if base.dtype.kind not in "fiu" or (base.dtype.kind in "iu" and not allow_int):
        kind = {"c": "complex", "b": "boolean", "O": "object", "U": "string"}.get(base.dtype.kind, "")
        raise GradientCheckError(
            f"{what} returned {kind or 'non-float'} values (dtype {base.dtype}); gradients of float inputs "
            "must be floating point. If you built the result with np.zeros_like of an integer array, "
            "pass dtype=float."
        )
    if base.shape != shape:
        hint = _shape_hint(base.shape, shape)
        raise GradientCheckError(f"{what} returned shape {base.shape}, expected {shape}. {hint}")
    result = base.astype(_float64)
    bad = ~_isfinite(result)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if result.ndim else ()
        raise GradientCheckError(
            f"{what} returned {int(bad.sum())} non-finite value(s) (first at {list(where)}: "
            f"{result[where]}). "
            "Look for a division by zero, log of a non-positive number, or exp overflow."
        )
    return result


def _shape_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """Name the usual reason for a shape mismatch."""
    if len(got) == 2 and got == want[::-1]:
        return "It looks transposed: check the order of the factors and where the .T goes."
    try:
        if np.broadcast_shapes(got, want) == got and got != want:
            return (
                "The input was broadcast in the forward pass: sum the gradient over the broadcast "
                "dimensions (the leading extra ones and those where the input has size 1, keepdims=True)."
            )
    except ValueError:
        pass
    if sum(got) and np.prod(got) == np.prod(want):
        return "Same number of elements in a different shape: reshape the gradient back to the input's shape."
    if len(got) < len(want):
        return "A dimension is missing: did a reduction drop it (use keepdims=True, or expand it back)?"
    return "A gradient always has exactly the shape of the input it belongs to."


@dataclass(frozen=True)
class _Claim:
    """A student's result as a plain float64 copy, with the precision it was computed in."""

    values: np.ndarray
    dtype: np.dtype


def _claim(value: object, what: str, shape: tuple[int, ...]) -> _Claim:
    plain = _plain(value, what, shape)
    return _Claim(plain, _array(value, subok=False).dtype)


def readonly(x: np.ndarray) -> np.ndarray:
    """A private, read-only copy to hand to student code."""
    c = _array(x, copy=True, subok=False)
    c.setflags(write=False)
    return c


def _wrote_in_place(what: str, exc: ValueError) -> str | None:
    """The message for numpy's refusal to write into a read-only argument the checks handed over."""
    if "read-only" not in str(exc):
        return None
    return (f"{what} tried to modify one of its arguments in place ({exc}).\n  Hint: never change the "
            "inputs or the incoming gradient: build and return a new array instead.")


def _call_student(fn: Callable, args: Sequence[object], what: str) -> object:
    """Call student code inside the gradient checks, whose callers decide what other errors become: only
    an attempt to write into a read-only input is turned into a message here."""
    try:
        return fn(*args)
    except ValueError as exc:
        message = _wrote_in_place(what, exc)
        if message:
            raise GradientCheckError(message) from exc
        raise


def _check_unchanged(originals: Sequence[np.ndarray], handed: Sequence[np.ndarray], names: Sequence[str],
                     what: str) -> None:
    """Fail if student code changed an argument it was given (it may have made it writable first)."""
    for orig, now, name in zip(originals, handed, names, strict=True):
        if not isinstance(now, np.ndarray) or now.shape != orig.shape or not _all(
            (now == orig) | (~_isfinite(orig) & ~_isfinite(now))
        ):
            raise GradientCheckError(
                f"{what} modified {name} in place.\n  Hint: other parts of the graph still need it: compute "
                "a new array instead of writing into the one you were given."
            )


# --------------------------------------------------------------------------------------------------
# Finite differences on the trusted function
# --------------------------------------------------------------------------------------------------


@dataclass
class _Estimate:
    """A finite-difference derivative with its own error estimate, or a flag that a kink is in reach."""

    value: float
    error: float
    kink: bool


Sample = tuple[float, float]


def _five_point(phi: Callable[[float], Sample], h: float, f0m0: Sample | None = None,
                at_h: tuple[Sample, Sample] | None = None) -> _Estimate:
    """d/dt phi(t) at 0 from phi(0), phi(±h) (each passed in when already known) and phi(±h/2).

    phi returns (value, magnitude), magnitude being the sum of absolute terms, for the round-off bound.
    Central differences at h and h/2 give a Richardson value and an error estimate; the curvature terms
    (one-sided slope differences) scale with h for a smooth function but stay put at a kink.
    """
    (f0, m0) = f0m0 or phi(0.0)
    (fp, mp), (fm, mm) = at_h or (phi(h), phi(-h))
    (fp2, mp2), (fm2, mm2) = phi(h / 2), phi(-h / 2)
    values = (f0, fp, fm, fp2, fm2)
    if not all(math.isfinite(v) for v in values):
        return _Estimate(float("nan"), float("inf"), True)
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / h
    roundoff = 8 * _EPS * max(m0, mp, mm, mp2, mm2) / h
    curvature_h = (fp - 2 * f0 + fm) / h
    curvature_h2 = (fp2 - 2 * f0 + fm2) / (h / 2)
    kink_signal = abs(2 * curvature_h2 - curvature_h) - 8 * roundoff
    scale = max(abs(d1), abs(d2))
    value = (4 * d2 - d1) / 3
    error = abs(d2 - d1) + roundoff
    kink = kink_signal > 1e-3 * scale + 1e-12 or error > 1e-2 * scale + 4 * roundoff
    return _Estimate(value, error, bool(kink))


def _phi_along(func: Callable[..., tuple[float, float]], xs: list[np.ndarray], i: int,
               direction: np.ndarray) -> Callable[[float], tuple[float, float]]:
    """t -> func(xs with xs[i] replaced by xs[i] + t * direction)."""
    def phi(t: float) -> tuple[float, float]:
        moved = list(xs)
        moved[i] = xs[i] + t * direction
        return func(*moved)
    return phi


def _step(x: np.ndarray, direction: np.ndarray) -> float:
    """Step size eps^(1/3), scaled by the input's magnitude and, for long probes, by their length."""
    span = float(_max(_abs(direction))) if direction.size else 1.0
    shrink = min(1.0, (FULL_LIMIT / max(direction.size, 1)) ** 0.5)
    return _H0 * max(1.0, float(_max(_abs(x))) if x.size else 1.0) * shrink / max(span, 1e-300)


# --------------------------------------------------------------------------------------------------
# Comparison and hints
# --------------------------------------------------------------------------------------------------


def _rtol_for(dtype: np.dtype) -> float:
    """float64 results must agree to 1e-6; lower precision gets room for its own rounding."""
    eps = float(np.finfo(dtype).eps) if np.dtype(dtype).kind == "f" else _EPS
    return max(1e-6, 1000 * eps)


def _allowed(got: np.ndarray, expected: np.ndarray, fd_error: np.ndarray, rtol: float,
             scale: float) -> np.ndarray:
    """Per-element tolerance: relative to the numbers compared, plus the finite difference's own error.

    ``scale`` is the size of the whole gradient (all inputs): an element that should be exactly zero may
    carry the student's rounding noise at that scale, never more.
    """
    return rtol * np.maximum(_abs(got), _abs(expected)) + 3 * fd_error + 1e-3 * rtol * scale


def _relative(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    scale = max(float(_max(_abs(expected))) if expected.size else 0.0, 1e-300)
    return _abs(got - expected) / np.maximum(np.maximum(_abs(got), _abs(expected)), 1e-6 * scale)


def _pattern_hint(got: np.ndarray, expected: np.ndarray) -> str:
    """Recognise the usual bugs from the relation between the two arrays."""
    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and bool(_all(_abs(a - b) <= 1e-5 * (_abs(a) + _abs(b)) + 1e-12 * (
            float(_max(_abs(b))) if b.size else 0.0)))

    if not got.any() and expected.any():
        return ("Your result is all zeros. Did you forget to return the computed gradient, to multiply "
                "by the upstream gradient, or to accumulate (+=) into it?")
    if close(got, -expected):
        return "Every element has the opposite sign: check the sign of your derivative."
    denom = float(_sum(expected * expected))
    if denom > 0:
        c = float(_sum(got * expected)) / denom
        if abs(c - 1) > 1e-3 and close(got, c * expected):
            hint = f"Your result is the right one times {c:.4g}."
            if abs(c - 2) < 1e-3 or abs(c - 0.5) < 1e-3:
                hint += " A factor of 2: a term counted twice, or a missing 1/2?"
            elif c > 1.5 and abs(c - round(c)) < 1e-3:
                hint += " An integer factor: is a reduction's size or an exponent applied twice or missing?"
            elif 0 < c < 1 and abs(1 / c - round(1 / c)) < 1e-3:
                hint += " Divided by an integer: a mean where a sum was needed, or a 1/n too many?"
            return hint
    if got.ndim == 2 and got.shape[0] == got.shape[1] and close(got, expected.T):
        return "Your result is the transpose of the right one: check where the .T goes."
    return ""


def _pair(expected: float, got: float) -> tuple[str, str]:
    """Both numbers with just enough digits to show that they differ (6 unless they look equal)."""
    for digits in (6, 9, 12, 17):
        a, b = f"{expected:.{digits}g}", f"{got:.{digits}g}"
        if a != b:
            break
    return a, b


def _fail_elements(what: str, got: np.ndarray, expected: np.ndarray, bad: np.ndarray, seed: int,
                   call: str | None, hint: str) -> GradientCheckError:
    """Build the student-facing message for an element-by-element disagreement."""
    rel = _relative(got, expected)
    flat_worst = int(np.argmax(np.where(bad, rel, -1.0)))
    idx = np.unravel_index(flat_worst, got.shape) if got.ndim else ()
    where = f" at index {list(int(i) for i in idx)}" if got.ndim else ""
    want_s, got_s = _pair(expected[idx], got[idx])
    lines = [
        f"{what} is wrong: {int(bad.sum())} of {got.size} element(s) disagree with finite differences.",
        f"  worst{where}: expected {want_s}, got {got_s} (relative error {rel[idx]:.2g})",
    ]
    if hint:
        lines.append(f"  Hint: {hint}")
    lines += _repeat(call, seed)
    return GradientCheckError("\n".join(lines))


def _repeat(call: str | None, seed: int) -> list[str]:
    """The closing line of a gradient check's failure, or none when a lesson's check called it (that check
    ends the message with its own line, which repeats the whole test)."""
    return [f"  {repeat_line(f'{call}(..., seed={seed})')}"] if call else []


# --------------------------------------------------------------------------------------------------
# The core: compare claimed gradients of a scalar function of arrays with finite differences
# --------------------------------------------------------------------------------------------------


def new_seed(seed: int | None = None) -> int:
    """A fresh seed from the OS unless the caller pins one: unpredictable to student code, and printed on
    failure so the student can reproduce it. Every lesson's checks draw their seeds here."""
    return secrets.randbits(62) if seed is None else int(seed)


def _as_inputs(xs: Sequence[object]) -> list[np.ndarray]:
    """The caller's points as arrays; they must be real floating point so finite differences make sense."""
    if not xs:
        raise TypeError("give at least one input point to check at")
    out = []
    for k, x in enumerate(xs):
        a = _array(x, copy=True, subok=False)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"input {k} has dtype {a.dtype}; checks need real numbers")
        if a.dtype.kind != "f":
            a = a.astype(_float64)
        if not _all(_isfinite(a)):
            raise ValueError(f"input {k} contains NaN or inf; check at a finite point")
        out.append(a)
    return out


def _scalar_of(value: object, what: str) -> tuple[float, float]:
    arr = np.asarray(value, dtype=_float64)
    if arr.size != 1:
        raise TypeError(f"{what} must return a single number, got shape {arr.shape}")
    v = float(arr.reshape(()))
    return v, abs(v)


def _full_compare(phi: Callable[..., Sample], xs: list[np.ndarray], i: int, got: np.ndarray | None = None,
                  rtol: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finite-difference every element of xs[i]; returns (expected, error, kink mask).

    An element whose plain central difference already agrees with ``got`` to ``rtol`` is done after two
    evaluations; only the others pay for the second step size and the kink test.
    """
    args = [x.astype(_float64) for x in xs]
    at_x = phi(*args)
    work = args[i].reshape(-1)  # a view: one element at a time is moved and put back
    expected = np.zeros(work.size)
    error = np.zeros(work.size)
    kink = np.zeros(work.size, dtype=bool)
    for j in range(work.size):
        x_j = float(work[j])

        def at(t: float, j: int = j, x_j: float = x_j) -> tuple[float, float]:
            work[j] = x_j + t
            return phi(*args)

        h = _H0 * max(1.0, abs(x_j))
        plus, minus = at(h), at(-h)
        if got is not None:
            d1 = (plus[0] - minus[0]) / (2 * h)
            roundoff = 8 * _EPS * max(at_x[1], plus[1], minus[1]) / h
            if abs(float(got.flat[j]) - d1) <= rtol * max(abs(float(got.flat[j])), abs(d1)) + roundoff:
                work[j] = x_j
                expected[j], error[j] = d1, roundoff
                continue
        est = _five_point(at, h, at_x, (plus, minus))
        work[j] = x_j
        expected[j], error[j], kink[j] = est.value, est.error, est.kink
    shape = xs[i].shape
    return expected.reshape(shape), error.reshape(shape), kink.reshape(shape)


def _check_arrays(
    what: Callable[[int], str],
    call: str | None,
    phi: Callable[..., tuple[float, float]],
    claimed: Callable[[list[np.ndarray]], list[_Claim | None]],
    xs: list[np.ndarray],
    seed: int,
    rng: np.random.Generator,
    other_hint: Callable[[list[np.ndarray], int, np.ndarray], str],
) -> CheckReport:
    """Shared engine of check_gradient and check_vjp.

    phi(*xs) is the scalar function (of all inputs, float64) whose gradient the student claims;
    claimed(xs) calls the student at xs, again whenever the point is moved off a kink.
    """
    total = sum(x.size for x in xs)
    mode = "full" if total <= FULL_LIMIT else "projection"
    moved = 0
    worst = 0.0
    compared = 0
    for _attempt in range(_KINK_RETRIES + 1):
        results = claimed(xs)
        kinks = [np.zeros(x.shape, dtype=bool) for x in xs]
        worst, compared = 0.0, 0
        estimates = {i: _full_compare(phi, xs, i, c.values, _rtol_for(c.dtype))
                     for i, c in enumerate(results) if c is not None and mode == "full"}
        scale = max([float(_max(_abs(e))) for e, _, _ in estimates.values() if e.size] + [0.0]) or 1.0
        for i, claim in enumerate(results):
            if claim is None:
                continue
            got, rtol = claim.values, _rtol_for(claim.dtype)
            if mode == "full":
                expected, error, kink = estimates[i]
                ok = ~kink
                allowed = _allowed(got, expected, error, rtol, scale)
                bad = ok & ~(_abs(got - expected) <= allowed)
                if bad.any():
                    hint = _pattern_hint(np.where(ok, got, expected), expected) or other_hint(xs, i, got)
                    raise _fail_elements(what(i), got, expected, bad, seed, call, hint)
                kinks[i] = kink
                compared += int(ok.sum())
                if ok.any():
                    worst = max(worst, float(_max(_relative(got[ok], expected[ok]))))
            else:
                worst_i, n = _projection_compare(phi, xs, i, got, rtol, rng, what(i), seed, call)
                worst = max(worst, worst_i)
                compared += n
        if mode == "projection" or not any(k.any() for k in kinks):
            break
        moved += sum(int(k.sum()) for k in kinks)
        xs = _move_off_kinks(xs, kinks, rng)
    if compared == 0:
        raise RuntimeError("the check found kinks at every element it tried; test at another point")
    return CheckReport(what(-1), compared, mode, worst, seed, moved)


def _move_off_kinks(xs: list[np.ndarray], kinks: list[np.ndarray],
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Nudge only the elements that sit at a kink, by a few hundred steps, so they land on smooth ground."""
    moved = []
    for x, kink in zip(xs, kinks, strict=True):
        y = x.astype(_float64, copy=True)
        if kink.any():
            scale = np.maximum(1.0, _abs(y[kink]))
            n = int(kink.sum())
            y[kink] += rng.choice([-1.0, 1.0], size=n) * rng.uniform(200, 400, n) * _H0 * scale
        moved.append(y.astype(x.dtype))
    return moved


def _projection_compare(phi: Callable[..., tuple[float, float]], xs: list[np.ndarray], i: int,
                        got: np.ndarray, rtol: float, rng: np.random.Generator, what: str, seed: int,
                        call: str | None) -> tuple[float, int]:
    """Compare <u, got> with the directional derivative along independent Gaussian probes u."""
    worst = 0.0
    checked = 0
    tries = 0
    args = [x.astype(_float64) for x in xs]
    at_x = phi(*args)
    while checked < PROBES:
        tries += 1
        if tries > 4 * PROBES:
            raise RuntimeError("the check kept meeting kinks along its probes; test at another point")
        u = rng.standard_normal(xs[i].shape)
        est = _five_point(_phi_along(phi, args, i, u), _step(args[i], u), at_x)
        if est.kink:
            continue
        claimed = float(_sum(u * got))
        allowed = rtol * max(abs(claimed), abs(est.value)) + 3 * est.error + 1e-3 * rtol * float(
            np.sqrt(_sum(u * u))) * abs(est.value) / max(np.sqrt(u.size), 1.0)
        rel = abs(claimed - est.value) / max(abs(claimed), abs(est.value), 1e-300)
        if not (abs(claimed - est.value) <= allowed):
            hint = _projection_hint(got, u, est.value)
            want_s, got_s = _pair(est.value, claimed)
            lines = [
                f"{what} is wrong: along a random direction u, <u, your result> = {got_s} but finite "
                f"differences give {want_s} (relative error {rel:.2g}). The input is too large to "
                "compare element by element, so no single element can be named.",
            ]
            if hint:
                lines.append(f"  Hint: {hint}")
            lines += _repeat(call, seed)
            raise GradientCheckError("\n".join(lines))
        worst = max(worst, rel)
        checked += 1
    return worst, checked


def _projection_hint(got: np.ndarray, u: np.ndarray, expected_proj: float) -> str:
    if not got.any():
        return ("Your result is all zeros. "
                "Did you forget to return it, or to multiply by the upstream gradient?")
    claimed = float(_sum(u * got))
    if expected_proj and abs(claimed + expected_proj) <= 1e-6 * abs(expected_proj):
        return "The projection has the opposite sign: check the sign of your derivative."
    if expected_proj:
        ratio = claimed / expected_proj
        if abs(ratio - 2) < 1e-4 or abs(ratio - 0.5) < 1e-4:
            return f"Off by a factor of {ratio:g}: a term counted twice, or a missing 1/2?"
    return ""


# --------------------------------------------------------------------------------------------------
# Public checks
# --------------------------------------------------------------------------------------------------


def _fn_name(fn: object) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def check_derivative(f: Callable[[float], float], df: Callable[[float], float], x: float, *,
                     seed: int | None = None) -> CheckReport:
    """Check a claimed derivative ``df`` of a scalar function ``f`` (trusted) at the point ``x``."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    x0 = float(x)
    if not np.isfinite(x0):
        raise ValueError(f"x = {x} is not finite; check the derivative at a finite point")
    name = f"your derivative {_fn_name(df)}"
    with quiet():
        for _ in range(_KINK_RETRIES + 1):
            est = _five_point(lambda t, x0=x0: _scalar_of(f(x0 + t), "f"), _H0 * max(1.0, abs(x0)))
            if not est.kink:
                break
            x0 += rng.choice([-1.0, 1.0]) * rng.uniform(200, 400) * _H0 * max(1.0, abs(x0))
        else:
            raise RuntimeError(f"f has a kink at every point tried near x = {x}; test at another point")
        got = float(_plain(_call_student(df, (x0,), name), name, (), allow_int=True))
    allowed = float(_allowed(np.array(got), np.array(est.value), np.array(est.error), 1e-6,
                             abs(est.value) or 1.0))
    rel = abs(got - est.value) / max(abs(got), abs(est.value), 1e-300)
    if not (abs(got - est.value) <= allowed):
        hint = _pattern_hint(np.array(got), np.array(est.value))
        want_s, got_s = _pair(est.value, got)
        msg = (f"{name} is wrong at x = {x0:.6g}: expected {want_s} (finite differences of f), got "
               f"{got_s} (relative error {rel:.2g}).")
        if hint:
            msg += f"\n  Hint: {hint}"
        raise GradientCheckError(msg)
    return CheckReport(f"derivative {_fn_name(df)}", 1, "full", rel, seed)


def check_gradient(f: Callable[..., float], grad_f: Callable[..., object], *xs: object,
                   seed: int | None = None, repeat: bool = True) -> CheckReport:
    """Check ``grad_f(*xs)`` (one array per input; a bare array for one input) against ``f`` (trusted).
    ``repeat=False`` when a lesson's check calls it: that check's own closing line repeats the test."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    points = _as_inputs(xs)
    gname = _fn_name(grad_f)

    def phi(*a: np.ndarray) -> tuple[float, float]:
        return _scalar_of(f(*a), "f")

    def claimed(pts: list[np.ndarray]) -> list[_Claim | None]:
        handed = [readonly(p) for p in pts]
        out = _call_student(grad_f, handed, gname)
        _check_unchanged(pts, handed, [f"input {k}" for k in range(len(pts))], gname)
        if len(pts) == 1 and not isinstance(out, tuple | list):
            out = (out,)
        if not isinstance(out, tuple | list) or len(out) != len(pts):
            n = len(out) if isinstance(out, tuple | list) else 1
            raise GradientCheckError(
                f"{gname} must return one gradient per input ({len(pts)}), as a tuple; it returned {n}."
            )
        return [_claim(o, f"{gname} (gradient for input {k})", p.shape)
                for k, (o, p) in enumerate(zip(out, pts, strict=True))]

    def what(i: int) -> str:
        return f"the gradient of {gname}" if i < 0 else (
            f"{gname}: the gradient for input {i} (shape {points[i].shape})" if len(points) > 1
            else f"{gname} (shape {points[0].shape})")

    with quiet():
        return _check_arrays(what, "check_gradient" if repeat else None, phi, claimed, points, seed, rng,
                             lambda *a: "")


def check_vjp(f: Callable[..., object], vjps: Callable | Sequence[Callable | None], *xs: object,
              seed: int | None = None, repeat: bool = True) -> CheckReport:
    """Check VJPs ``vjps[i](g, ans, *xs)`` of a trusted forward ``f`` with a random upstream gradient ``g``
    (``repeat`` as for check_gradient).

    The upstream gradient is drawn before the student runs and the probe directions after, so nothing the
    student code does to numpy's random state can predict them.
    """
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    points = _as_inputs(xs)
    if callable(vjps):
        vjps = (vjps,)
    vjps = tuple(vjps)
    if len(vjps) != len(points):
        raise TypeError(f"check_vjp got {len(vjps)} VJP(s) for {len(points)} input(s)")
    with quiet():
        ans0 = np.asarray(f(*[p.copy() for p in points]))
    if ans0.dtype.kind not in "fiu":
        raise TypeError(f"f must return real numbers, got dtype {ans0.dtype}")
    g = rng.standard_normal(ans0.shape).astype(ans0.dtype if ans0.dtype.kind == "f" else _float64)
    if ans0.shape == ():
        g = np.asarray(g)

    def phi_for(upstream: np.ndarray) -> Callable[..., tuple[float, float]]:
        """<upstream, f(*xs)>: its gradient is the VJP, so finite differences of it check the VJP."""
        up = upstream.astype(_float64).ravel()
        up_abs = _abs(up)

        def phi(*a: np.ndarray) -> tuple[float, float]:
            out = np.asarray(f(*a), dtype=_float64)
            if out.shape != upstream.shape:
                raise TypeError(f"f changed its output shape from {upstream.shape} to {out.shape}")
            flat = out.ravel()
            # elementwise products, not a BLAS dot: threaded BLAS stalls badly on a busy grading machine
            return float(_sum(up * flat)), float(_sum(up_abs * _abs(flat)))
        return phi

    def claimed(pts: list[np.ndarray]) -> list[_Claim | None]:
        ans = np.asarray(f(*[p.copy() for p in pts]))
        res: list[_Claim | None] = []
        for k, vjp in enumerate(vjps):
            if vjp is None:
                res.append(None)
                continue
            name = f"The VJP for input {k} ({_fn_name(vjp)})"
            args = [readonly(g), readonly(ans)] + [readonly(p) for p in pts]
            out = _call_student(vjp, args, name)
            _check_unchanged([g, ans, *pts], args, ["the upstream gradient g", "ans"]
                             + [f"input {j}" for j in range(len(pts))], name)
            res.append(_claim(out, name, pts[k].shape))
        return res

    def ignored_upstream(pts: list[np.ndarray], i: int, got: np.ndarray) -> str:
        """Two projections tell whether the result is the VJP of an all-ones upstream gradient."""
        if g.size <= 1:
            return ""
        ones_phi = phi_for(np.ones(g.shape))
        args = [p.astype(_float64) for p in pts]
        for _ in range(2):
            u = rng.standard_normal(got.shape)
            est = _five_point(_phi_along(ones_phi, args, i, u), _step(pts[i], u))
            claimed = float(_sum(u * got))
            tol = 1e-6 * max(abs(claimed), abs(est.value)) + 3 * est.error
            if est.kink or not abs(claimed - est.value) <= tol:
                return ""
        return ("Your VJP gives the answer for an upstream gradient of all ones: multiply by g, the upstream "
                "gradient, instead of ignoring it.")

    def what(i: int) -> str:
        if i < 0:
            return f"VJPs of {_fn_name(f)}"
        return f"The VJP for input {i} ({_fn_name(vjps[i])}, input shape {points[i].shape})"

    with quiet():
        return _check_arrays(what, "check_vjp" if repeat else None, phi_for(g), claimed, points, seed, rng,
                             ignored_upstream)


def check_close(got: object, expected: object, *, name: str, rtol: float = 1e-7, atol: float = 0.0,
                hint: str | None = None) -> CheckReport:
    """Compare a student's value with one computed by the check: shape, kind and finiteness first."""
    want = np.asarray(expected, dtype=_float64)
    if got is None:
        raise CheckFailure(f"{name} is None: a function that ends without `return` gives None, and so does "
                           "an entry left as None. Return the value, or put your number in place of None.")
    try:
        plain = _plain(got, name, want.shape, allow_int=True)
    except GradientCheckError as exc:
        raise CheckFailure(str(exc)) from None
    bad = ~(_abs(plain - want) <= atol + rtol * _abs(want))
    if bad.any():
        idx = np.unravel_index(int(np.argmax(np.where(bad, _abs(plain - want), -1.0))), want.shape) \
            if want.ndim else ()
        where = f" at index {list(int(i) for i in idx)}" if want.ndim else ""
        want_s, got_s = _pair(want[idx], plain[idx])
        msg = f"{name} is wrong{where}: expected {want_s}, got {got_s}"
        if want.ndim:
            msg += f" ({int(bad.sum())} of {want.size} element(s) differ)"
        if hint:
            msg += f".\n  Hint: {hint}"
        raise CheckFailure(msg)
    rel = float(_max(_relative(plain, want))) if want.size else 0.0
    return CheckReport(name, want.size, "full", rel, 0)
