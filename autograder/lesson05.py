"""Visible checks for lesson 05 (vector-Jacobian products).

Every VJP is checked with ``autograder.checks.check_vjp`` against float64 finite differences of the
check's OWN numpy forward (never the notebook's), with a random upstream gradient and random inputs drawn
inside the op's domain and away from kinks. Shapes are non-square wherever a transposed answer could hide,
and binary operations are tried first on equal shapes and then on broadcasting pairs, so a failure says
whether the derivative or only the broadcasting is wrong. What finite differences cannot judge is tested as
a property: relu'(0) = 0 at inputs that are exactly 0, and how jacobian_from_vjp is built (a numpy array,
f called once, one pullback per row). While student code runs, the notebook's own finite-difference helpers
refuse to work (under every name bound to them), so an answer cannot pass by approximating instead of
applying its derivative. The likelihood exercise (nll) is judged by properties that determine it, never by
computing it here.

Isolation from ``unbroadcast``: the binary-op VJPs call the student's ``unbroadcast`` by name. This
module ships to students, so it holds no implementation of it; the visible check runs the broadcasting
cases only when the student's own ``unbroadcast`` passes its check, and otherwise runs the same-shape cases
with a stand-in that returns g (all unbroadcast does there) and says that it skipped the rest. The hidden
check (instructor only) binds a trusted ``unbroadcast`` in the notebook's namespace for each call of a
binary VJP, so a bug in exercise 2 never costs exercise 3's points.

When a notebook is graded, these checks run in the grader and the student's objects stay in the kernel:
whatever must happen where the student's code lives (looking up the registry by numpy function, refusing
the finite-difference helpers, binding ``unbroadcast``) is done by the probes ``lookup_probe``,
``call_probe`` and ``unbroadcast_probe``, which only report what they saw; every verdict is computed here
from inputs drawn here. Nothing in this module imports the hidden checks.

Every failure ends with the call that reproduces it (the check the student ran, with its seed).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autograder.checks import (
    CheckFailure,
    NotDone,
    as_real,
    call_student,
    check_close,
    check_vjp,
    close,
    in_kernel,
    new_seed,
    passed,
    quiet,
    readonly,
    repeat_line,
    reworded,
    type_name,
)

__all__ = [
    "check_unary_vjps",
    "check_unbroadcast",
    "check_binary_vjps",
    "check_matmul_vjps",
    "check_reduction_vjps",
    "check_shape_vjps",
    "check_softmax_vjps",
    "check_jacobian_from_vjp",
    "check_nll",
]

VJP = Callable[..., Any]


# ---------------------------------------------------------------------------------------------------------
# Random inputs: inside each op's domain, never integer, tied or symmetric
# ---------------------------------------------------------------------------------------------------------


def normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(rng.standard_normal(shape))


def positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in [0.5, 2]: inside log's domain and power's base domain, far from 0."""
    return np.asarray(rng.uniform(0.5, 2.0, shape))


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Both signs, magnitude in [0.2, 2]: away from relu's kink and from division by zero."""
    return np.asarray(rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The activation of the Jacobian checks' test functions (the notebook's exercises do not include it)."""
    return 1.0 / (1.0 + np.exp(-x))


def numerical_vjp(f: Callable[[np.ndarray], Any], x: np.ndarray, g: np.ndarray,
                  h: float = 1e-6) -> np.ndarray:
    """g^T J by central differences of <g, f(x)>: the diagnoses compare with VJPs without writing formulas."""
    x = np.array(x, dtype=np.float64)
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        step = np.zeros(x.shape)
        step[idx] = h
        out[idx] = (np.sum(g * f(x + step)) - np.sum(g * f(x - step))) / (2 * h)
    return out


def labels_for(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Integer class labels with every class present when possible (a repeated label is fine)."""
    labels = rng.permutation(np.arange(n) % classes)
    return labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# Calling student VJPs
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One check's random generator, its seed, and the notebook call that repeats it (None for a hidden
    check, which the student cannot run): every failure ends with ``line()``."""

    rng: np.random.Generator
    seed: int
    call: str | None

    @classmethod
    def start(cls, seed: int | None, call: str | None) -> Run:
        """A fresh seed unless pinned; ``call`` is the check's call with ``{seed}`` where the seed goes."""
        seed = new_seed(seed)
        return cls(np.random.default_rng(seed), seed, None if call is None else call.format(seed=seed))

    def line(self) -> str:
        return repeat_line(self.call) if self.call else f"(seed {self.seed}: the grader's hidden test)"


def visible_run(seed: int | None, call: str) -> Run:
    """A visible check's run: the student repeats a failure by running the same call with the seed."""
    return Run.start(seed, f"checks.{call}")


NUMERICAL_HELPERS = ("numerical_vjp", "numerical_jacobian")


@contextlib.contextmanager
def numerical_helpers_refused(fn: Callable, label: str) -> Iterator[None]:
    """While ``fn`` runs, the notebook's finite-difference helpers (in its globals) refuse to work.

    They are the check's tool, not an answer: a VJP that calls them approximates instead of applying its
    derivative, and a finite-difference check cannot tell the two apart. The names are restored after."""
    space = getattr(fn, "__globals__", None)
    helpers = {n: space[n] for n in NUMERICAL_HELPERS if isinstance(space, dict) and callable(space.get(n))}
    names = {alias: n for alias, value in (space.items() if helpers else ())  # aliases too: f = numerical_vjp
             for n, helper in helpers.items() if value is helper}
    saved = {alias: space[alias] for alias in names}

    def refusing(name: str) -> Callable:
        def refused(*args: Any, **kwargs: Any) -> Any:
            instead = ("build each row from f's pullback: one VJP of a unit vector per output entry."
                       if name == "numerical_jacobian" else
                       "write the formula: g times the local derivative, from g, ans and the inputs.")
            raise CheckFailure(
                f"{label} calls the notebook's {name}: finite differences only approximate a derivative, "
                "at two forward passes per input entry, and are what the check compares your answer WITH."
                f"\n  Hint: {instead}")
        return refused

    try:
        for alias, name in names.items():
            space[alias] = refusing(name)
        yield
    finally:
        for alias in names:
            space[alias] = saved[alias]


class StudentCallFailure(CheckFailure):
    """Student code raised, refused a helper, or returned the wrong shape: the message already carries
    the hint that fits, so no value hint is appended after it."""


@contextlib.contextmanager
def names_bound(fn: Callable, names: dict[str, object] | None) -> Iterator[None]:
    """Bind ``names`` in ``fn``'s module namespace (the notebook's globals) while the block runs; always
    restore, removing a name again where it was not defined. Used to run the binary VJPs with a stand-in
    or a trusted ``unbroadcast`` in place of the student's, so exercise 2 is graded only once."""
    space = getattr(fn, "__globals__", None)
    if not names or not isinstance(space, dict) or space.get("__name__") == __name__:
        yield
        return
    missing = object()
    saved = {name: space.get(name, missing) for name in names}
    try:
        space.update(names)
        yield
    finally:
        for name, original in saved.items():
            if original is missing:
                space.pop(name, None)
            else:
                space[name] = original


def call_probe(fn: Callable, label: str, names: dict[str, object] | None, /, *args: Any,
               **kwargs: Any) -> dict:
    """Probe (runs where the student's code lives): ``fn(*args, **kwargs)`` with the notebook's
    finite-difference helpers refused and ``names`` bound in its globals for the call. Returns
    {"value": result}, or {"refused": message} when the call used a refused helper (or a stand-in refused
    to serve it); anything else the student's code raises propagates as it is."""
    try:
        with numerical_helpers_refused(fn, label), names_bound(fn, names):
            return {"value": fn(*args, **kwargs)}
    except CheckFailure as exc:
        return {"refused": str(exc)}


def guarded(fn: Callable, label: str, hint: str = "", names: dict[str, object] | None = None) -> Callable:
    """Call student code through call_student (a blank answer ends in NotDone, any exception becomes one
    message naming ``label``), with the notebook's finite-difference helpers refused (and ``names`` bound,
    see names_bound), plus ``hint``. When grading, the call runs in the kernel through `call_probe`."""
    def with_hint(exc: CheckFailure) -> str:
        return f"{exc}\n  Hint: {hint}" if hint and "\n  Hint:" not in str(exc) else str(exc)

    def call(*args: Any, **kwargs: Any) -> Any:
        with reworded(with_hint, into=StudentCallFailure):
            try:
                seen = call_student(label, in_kernel, call_probe, fn, label, names, *args, **kwargs)
            except NotDone:
                raise NotDone(exercise_name(label)) from None
            if "refused" in seen:
                raise CheckFailure(str(seen["refused"]))
            return seen["value"]

    return call


def exercise_name(label: str) -> str:
    """What a blank answer's NotDone names: the exercise plainly ("The VJP of np.negative", "`unbroadcast`"),
    without the case the check was trying."""
    if label.startswith("your VJP"):
        return "The VJP" + label.removeprefix("your VJP")
    return f"`{label.removeprefix('your ').split(' ')[0]}`"


def in_sentences(judge: Callable) -> Callable:
    """A judge's failure with 'Your' wherever a line starts with a label ('your VJP of ...', 'your nll'),
    which reads 'your' inside a sentence: a line starts as a sentence does."""
    @functools.wraps(judge)
    def run(*args: Any, **kwargs: Any) -> Any:
        with reworded(lambda exc: re.sub(r"(^|\n)( *)your ", r"\1\2Your ", str(exc))):
            return judge(*args, **kwargs)

    return run


def require_array(out: Any, label: str) -> None:
    """A gradient is a numpy array (a numpy scalar for a 0-d input): a list or a Python number passes finite
    differences but breaks the numpy code that receives it (lesson 6 adds gradients with +=, reads .shape)."""
    if out is not None and not isinstance(out, np.ndarray | np.generic):
        raise StudentCallFailure(
            f"{label} returned a {type_name(out)}, not a numpy array: a gradient is a numpy array "
            "shaped like its input, even when it holds one number.\n  Hint: compute it with numpy "
            "operations on g and the arrays you are given, and return that array (no .tolist(), float() or "
            "list of rows).")


def require_shape(out: Any, want: tuple[int, ...], label: str, hint: str) -> None:
    """A gradient of the wrong shape, reported with the exercise's own hint: the checker's generic shape
    advice (e.g. 'reshape it back') does not know the cause, and would offer a second, wrong fix."""
    try:
        got = np.shape(out) if out is not None else want
    except (TypeError, ValueError):
        got = want  # not array-like: the checker's own message says what it got
    if got != want:
        transposed = " It looks transposed." if len(got) == 2 and got == want[::-1] else ""
        raise StudentCallFailure(f"{label} returned shape {got} for an input of shape {want}: a gradient has "
                                 f"exactly the shape of the input it belongs to.{transposed}"
                                 + (f"\n  Hint: {hint}" if hint else ""))


def student_vjp(vjp: VJP, label: str, *extra_args: Any, hint: str = "", index: int = 0,
                error_hint: str = "", names: dict[str, object] | None = None, **extra_kwargs: Any) -> VJP:
    """Adapt a student VJP for input ``index`` to check_vjp's ``(g, ans, *xs)`` call, passing the forward's
    other arguments. A result of the wrong shape is reported with this exercise's hint (the generic shape
    advice of the checker does not know, e.g., that a transpose needs the inverse permutation); code that
    raises gets ``error_hint`` when given (what usually raises differs from what gives a wrong shape)."""
    safe = guarded(vjp, label, error_hint or hint, names)

    def call(g: np.ndarray, ans: np.ndarray, *xs: np.ndarray) -> Any:
        out = safe(g, ans, *xs, *extra_args, **extra_kwargs)
        require_array(out, label)
        require_shape(out, np.shape(xs[index]), label, hint)
        return out

    call.__name__ = label.replace("your ", "")
    return call


def lookup_probe(vjps_of: Callable, key: object) -> tuple:
    """Probe: the student's registered VJPs of ``key``, looked up where the table lives. A numpy function
    is named ("np.add"): the grader's np.add would reach the kernel as a callback, not as np.add."""
    if isinstance(key, str) and key.startswith("np."):
        key = getattr(np, key[3:])
    return tuple(vjps_of(key))


def vjps_for(vjps_of: Callable, fun: Callable) -> tuple:
    """``vjps_of(fun)`` for numpy's functions and the notebook's own, also when grading (see lookup_probe)."""
    name = getattr(fun, "__name__", "")
    key = f"np.{name}" if isinstance(name, str) and getattr(np, name, None) is fun else fun
    return in_kernel(lookup_probe, vjps_of, key)


def registered(vjps_of: Callable[[Callable], Sequence[VJP | None]], fun: Callable, name: str,
               count: int) -> tuple[VJP, ...]:
    """The student's registered VJPs of ``fun``, with a clear message when they are missing or malformed."""
    try:
        vjps = vjps_for(vjps_of, fun)
    except Exception as exc:  # noqa: BLE001
        detail = "" if isinstance(exc, KeyError) else f" ({type(exc).__name__}: {exc})"
        raise CheckFailure(f"No VJPs found for {name}{detail}: the answer cell that calls "
                           f"defvjp({name}, ...) has not run, or it stopped with an error before reaching "
                           "that line (a syntax error stops the whole cell).\n  Hint: fix that cell until it "
                           "runs without errors, run it, then run this test cell again.") from None
    if len(vjps) < count:
        raise CheckFailure(f"defvjp({name}, ...) registered {len(vjps)} VJP(s); {name} has {count} array "
                           f"argument(s) and needs one VJP for each.")
    for k, v in enumerate(vjps[:count]):
        if not callable(v):
            raise CheckFailure(f"VJP number {k} registered for {name} is {v!r}, not a function.")
    return vjps[:count]


# (what the mistake is, a function (g, ans, *xs) -> the wrong results that mistake produces)
Diagnosis = tuple[str, Callable[..., Iterable[np.ndarray]]]


def diagnose(vjp: VJP, f: Callable[..., Any], xs: Sequence[np.ndarray], diagnoses: Sequence[Diagnosis],
             rng: np.random.Generator) -> str:
    """Name a recognisable mistake: the first (message, wrong_vjp) whose result matches the student's."""
    g = normal(rng, np.shape(f(*xs)))
    ans = np.asarray(f(*xs))
    try:
        with quiet():
            got = np.asarray(vjp(g.copy(), ans.copy(), *[x.copy() for x in xs]), dtype=np.float64)
    except Exception:  # noqa: BLE001 - the check's own message already covers code that raises
        return ""
    for message, wrong in diagnoses:
        for expected in wrong(g, ans, *xs):
            expected = np.asarray(expected, dtype=np.float64)
            if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-6, atol=1e-8):
                return message
    return ""


def ignores_g(vjp: VJP, f: Callable[..., Any], xs: Sequence[np.ndarray], rng: np.random.Generator) -> bool:
    """True when the VJP returns the same nonzero result for two different upstream gradients: it never
    multiplied by g (the checker's own ratio hint cannot say so when g is a single number)."""
    ans = np.asarray(f(*xs))
    try:
        with quiet():
            one, two = (np.asarray(vjp(g, ans.copy(), *[x.copy() for x in xs]), dtype=np.float64)
                        for g in (normal(rng, ans.shape) + 3.0, normal(rng, ans.shape) - 3.0))
    except Exception:  # noqa: BLE001 - only a diagnosis: the check's message stands on its own
        return False
    return one.shape == two.shape and bool(np.any(one)) and np.allclose(one, two, rtol=1e-9, atol=0.0)


IGNORED_G = ("your VJP returns the same result whatever g is: you ignored the upstream gradient g.\n  Hint: "
             "a VJP is g times the local derivative, so its result changes with g (a result ignoring g is "
             "the right one times 1/g).")

_CHECK_VJP_NAME = re.compile(r"The VJP for input \d+ \((.+?)(?:, input shape \([^)]*\))?\)")
_RATIO = re.compile(r"\n( *)Hint: (Your result is the right one times \S+?\.)(?=\s|$)[^\n]*")


def in_student_terms(text: str) -> str:
    """check_vjp's message in the words of the exercise: 'your VJP of np.power for x', not 'the VJP for input
    0 (...)' (the case line above it already gives the shapes)."""
    return _CHECK_VJP_NAME.sub(lambda m: f"Your {m.group(1)}", text)


def run_case(case: str, f: Callable[..., Any], vjps: Sequence[VJP], *xs: np.ndarray, run: Run,
             hint: str = "", diagnoses: Sequence[Diagnosis] = ()) -> None:
    """check_vjp with a seed from the run; a failure message starts with the case, ends with a hint and
    with the call that reproduces it (the check the student ran, not check_vjp's inner call).

    ``diagnoses`` (for single-input VJPs) recognise typical wrong formulas, so the hint can name the mistake.
    """
    try:
        check_vjp(f, list(vjps), *xs, seed=int(run.rng.integers(2**62)), repeat=False)
    except NotDone:
        raise
    except CheckFailure as exc:
        text = f"{case}:\n{in_student_terms(str(exc))}"
        said = "upstream gradient of all ones" in text  # the checker names it itself when g has many entries
        ignored = not isinstance(exc, StudentCallFailure) and not said and all(
            ignores_g(v, f, xs, run.rng) for v in vjps)
        if ignored:  # the ratio to the right result is 1/g, a number that only puzzles
            text = re.sub(r"\n *(Hint: )?Your result is the right one times [^\n]*", "", text)
            found = IGNORED_G
        else:
            found = diagnose(vjps[0], f, xs, diagnoses, run.rng) if diagnoses else ""
        has_hint = re.search(r"\n *Hint: ", _RATIO.sub("", text))  # the checker named the cause itself
        cause = f"It looks like {found}" if found else (
            f"Hint: {hint}" if hint and hint not in text and not has_hint
            and not isinstance(exc, StudentCallFailure) else "")
        if cause:  # one cause per message: the ratio stays a fact, the checker's generic question goes
            text = _RATIO.sub(r"\n\1\2", text) + f"\n  {cause}"
        raise CheckFailure(f"{text}\n{run.line()}") from None


def _shape(shape: tuple[int, ...]) -> str:
    return "scalar ()" if shape == () else str(shape)


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: unary elementwise VJPs
# ---------------------------------------------------------------------------------------------------------

UNARY_SHAPES = [(3, 4), (5,), ()]


def unary_hint(name: str) -> str:
    """The rule every elementwise VJP follows; the mistake itself is named only when it is recognised."""
    return (f"{name} acts entry by entry, so its Jacobian is diagonal and its VJP is g times {name}'s "
            "derivative at each entry. Differentiate it on paper, then compare your VJP with numerical_vjp "
            "at one random input in a scratch cell.")


def unary_cases(relu: Callable) -> list[tuple[str, Callable, Callable, Callable, str]]:
    """(name, key in the registry, trusted forward, input sampler, hint) for each unary primitive."""
    return [
        ("np.negative", np.negative, np.negative, normal, unary_hint("np.negative")),
        ("np.exp", np.exp, np.exp, normal, unary_hint("np.exp")),
        ("np.log", np.log, np.log, positive, unary_hint("np.log")),
        ("np.tanh", np.tanh, np.tanh, normal, unary_hint("np.tanh")),
        ("relu", relu, lambda x: np.where(x > 0, x, 0.0), away_from_zero,
         unary_hint("relu") + " relu's derivative is 0 or 1 depending on the sign of x."),
    ]


def check_relu_at_zero(vjp: VJP, run: Run) -> None:
    """relu'(0) = 0 exactly, the convention the notebook states: finite differences cannot decide it (they
    give 0.5 at the kink), so this is a property test at inputs that are exactly 0."""
    x = away_from_zero(run.rng, (2, 4))
    x.flat[run.rng.permutation(x.size)[:3]] = 0.0
    g = away_from_zero(run.rng, x.shape)
    out = guarded(vjp, "your VJP of relu")(g.copy(), np.where(x > 0, x, 0.0), x.copy())
    try:
        got = np.array(out, dtype=np.float64)
    except (TypeError, ValueError):
        got = np.zeros(0)
    if got.shape != x.shape:
        raise CheckFailure(f"your VJP of relu returned {type_name(out)} of shape {np.shape(out)} for an "
                           f"input of shape {x.shape}.\n{run.line()}")
    zero = x == 0
    if np.any(got[zero] != 0):
        raise CheckFailure(
            f"Your VJP of relu at inputs that are exactly 0 gives {got[zero].round(4).tolist()} (with g = "
            f"{g[zero].round(4).tolist()} there): it lets g through where x is exactly 0.\n  Hint: "
            "this course uses relu'(0) = 0, as PyTorch does, so an input that is exactly 0 gets no gradient "
            "at all.\n" + run.line())


@in_sentences
def judge_unary_cases(vjps_of: Callable, relu: Callable, shapes: Iterable[tuple[int, ...]], run: Run,
                      named: Any = None) -> int:
    """Every unary VJP on each shape against finite differences, then relu's convention at 0. ``named``
    (the grader's module of recognisable mistakes, never shipped) lets a failure name the mistake."""
    count = 0
    for name, key, forward, sample, hint in unary_cases(relu):
        (vjp,) = registered(vjps_of, key, name, 1)
        for shape in shapes:
            run_case(f"{name} on an input of shape {_shape(shape)}", forward,
                     [student_vjp(vjp, f"your VJP of {name}", hint=hint)], sample(run.rng, shape), run=run,
                     hint=hint, diagnoses=named.unary_diagnoses(name) if named else ())
            count += 1
    check_relu_at_zero(registered(vjps_of, relu, "relu", 1)[0], run)
    return count + 1


def check_unary_vjps(vjps_of: Callable, relu: Callable, *, seed: int | None = None) -> None:
    """VJPs of np.negative, np.exp, np.log, np.tanh and relu on random shapes and upstream gradients."""
    run = visible_run(seed, "check_unary_vjps(vjps_of, relu, seed={seed})")
    count = judge_unary_cases(vjps_of, relu, UNARY_SHAPES, run)
    passed("unary VJPs", f"{count} cases (5 ops on 3 shapes against finite differences, relu at 0) "
                         f"(seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 2: unbroadcast
# ---------------------------------------------------------------------------------------------------------

UNBROADCAST_CASES = [
    ((3, 4), (3, 4)),
    ((4,), (3, 4)),
    ((), (3, 4)),
    ((1, 4), (3, 4)),
    ((3, 1), (3, 4)),
    ((4,), (2, 3, 4)),
    ((3, 1), (2, 3, 4)),
    ((4,), (2, 2, 3, 4)),
]


def unbroadcast_hint(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
    if shape == out_shape:
        return "nothing was broadcast here: return g unchanged (with the same shape)."
    if len(shape) < len(out_shape) and 1 in shape:
        return ("this case needs both rules: sum away the leading axes broadcasting added, then sum the "
                "stretched length-1 axes with keepdims=True.")
    if len(shape) < len(out_shape):
        return f"broadcasting added {len(out_shape) - len(shape)} leading axis/axes: sum g over them."
    return "a length-1 axis was stretched: sum g over it with keepdims=True so its length goes back to 1."


@in_sentences
def judge_unbroadcast_cases(unbroadcast: Callable, cases: Iterable[tuple[tuple[int, ...], tuple[int, ...]]],
                            run: Run) -> int:
    """unbroadcast(g, shape) is the VJP of np.broadcast_to(x, out_shape): check it as one, case by case."""
    count = 0
    for shape, out_shape in cases:
        hint = unbroadcast_hint(shape, out_shape)
        safe = guarded(unbroadcast, "your unbroadcast", hint)

        def vjp(g, ans, x, _safe=safe, _hint=hint):
            out = _safe(g, np.shape(x))
            require_array(out, "your unbroadcast")
            require_shape(out, np.shape(x), "your unbroadcast", _hint)
            return out

        vjp.__name__ = "unbroadcast"

        def broadcast(x, _out=out_shape):
            return np.broadcast_to(x, _out).copy()

        run_case(f"unbroadcast(g of shape {out_shape}, shape={_shape(shape)})", broadcast,
                 [vjp], normal(run.rng, shape), run=run, hint=hint)
        count += 1
    return count


def check_unbroadcast(unbroadcast: Callable, *, seed: int | None = None) -> None:
    """unbroadcast on the broadcasting pairs scalar, (4,), (3, 4), (1, 4), (3, 1) and 1 to 3 leading axes."""
    run = visible_run(seed, "check_unbroadcast(unbroadcast, seed={seed})")
    count = judge_unbroadcast_cases(unbroadcast, UNBROADCAST_CASES, run)
    passed("unbroadcast", f"{count} broadcasting cases, each as the VJP of np.broadcast_to, against finite "
                          f"differences (seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: binary operations with broadcasting
# ---------------------------------------------------------------------------------------------------------

SAME_SHAPES = ((3, 4), (3, 4))
BROADCAST_PAIRS = [((3, 4), (4,)), ((4,), (3, 4)), ((), (3, 4)), ((3, 4), ()), ((1, 4), (3, 4)),
                   ((3, 1), (1, 4))]


BINARY_RULE = ("differentiate with respect to one input while holding the other fixed, then multiply by g "
               "entry by entry; compare with numerical_vjp at one point in a scratch cell.")


def binary_cases() -> list[tuple[str, Callable, Callable, Callable, str]]:
    """(name, registry key, trusted forward, sampler of (x, y), derivative hint) for each binary op."""
    def pair(sx, sy):
        return lambda rng, a, b: (sx(rng, a), sy(rng, b))

    return [
        ("np.add", np.add, np.add, pair(normal, normal), BINARY_RULE),
        ("np.subtract", np.subtract, np.subtract, pair(normal, normal),
         BINARY_RULE + " Mind the sign of the derivative for y."),
        ("np.multiply", np.multiply, np.multiply, pair(normal, normal), BINARY_RULE),
        ("np.divide", np.divide, np.divide, pair(normal, away_from_zero),
         BINARY_RULE + " For y, write x / y as x * y**-1 and use the power rule."),
        ("np.power", np.power, np.power, pair(positive, normal),
         BINARY_RULE + " For x the exponent y is a constant (power rule); for y the base x is a constant "
         "(x**y = exp(y log x))."),
    ]


@in_sentences
def judge_binary_cases(vjps_of: Callable, pairs: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
                       run: Run, unbroadcast: Callable | None = None) -> int:
    """Check every binary op on ``pairs``; the first pair must be non-broadcasting. Returns the count.
    With ``unbroadcast`` given, the VJPs run with it bound in place of the notebook's (see names_bound)."""
    names = None if unbroadcast is None else {"unbroadcast": unbroadcast}
    count = 0
    for name, key, forward, sample, hint in binary_cases():
        vx, vy = registered(vjps_of, key, name, 2)
        for sx, sy in pairs:
            x, y = sample(run.rng, sx, sy)
            broadcasting = sx != sy
            if broadcasting:
                case = f"{name} with broadcasting: x of shape {_shape(sx)} and y of shape {_shape(sy)}"
                case_hint = ("your VJPs are right when nothing is broadcast but not here: pass each "
                             "gradient through unbroadcast(..., np.shape(x)) (or y) so it gets its input's "
                             "shape back.")
            else:
                case = f"{name} with x and y of the same shape {_shape(sx)}"
                case_hint = hint
            vjps = [student_vjp(vx, f"your VJP of {name} for x", hint=case_hint, names=names),
                    student_vjp(vy, f"your VJP of {name} for y", hint=case_hint, index=1, names=names)]
            run_case(case, forward, vjps, x, y, run=run, hint=case_hint)
            count += 1
    return count


def unbroadcast_probe(vjps_of: Callable, keys: Sequence[str]) -> list:
    """Probe: for each distinct module namespace (notebook globals) in which the registered VJPs of
    ``keys`` look up ``unbroadcast``, what that name is bound to there (None where it is not defined yet:
    a restarted kernel where exercise 2's cell has not run)."""
    found: dict[int, object] = {}
    for key in keys:
        try:
            vjps = lookup_probe(vjps_of, key)
        except Exception:  # noqa: BLE001 - a missing registration is reported by the check itself
            continue
        for v in vjps:
            space = getattr(v, "__globals__", None)
            if isinstance(space, dict) and space.get("__name__") != __name__:
                found[id(space)] = space.get("unbroadcast")
    return list(found.values())


def notebook_unbroadcasts(vjps_of: Callable) -> list:
    """The notebook's unbroadcast as the binary VJPs see it, per namespace (see unbroadcast_probe)."""
    return in_kernel(unbroadcast_probe, vjps_of, [f"np.{key.__name__}" for _n, key, *_ in binary_cases()])


def same_shape_unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """What unbroadcast does when nothing was broadcast: return g. Stands in for a student's unfinished
    unbroadcast in the same-shape cases only (it is no answer to exercise 2, which is all about the rest)."""
    if np.shape(g) != tuple(shape):
        raise CheckFailure("the stand-in unbroadcast only serves cases where nothing is broadcast")
    return g


def unbroadcast_problem(unbroadcasts: list, run: Run) -> str:
    """Why the binary VJPs cannot use the notebook's unbroadcast yet ('' when it passes its check)."""
    if not unbroadcasts or any(u is None for u in unbroadcasts):
        return "is not defined: run Exercise 2's cell first (after a kernel restart, run every cell above)"
    for unbroadcast in unbroadcasts:
        try:
            judge_unbroadcast_cases(unbroadcast, UNBROADCAST_CASES, run)
        except NotDone:
            return "is not written yet"
        except CheckFailure:
            return "does not pass its own check yet"
    return ""


def check_binary_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Binary-op VJPs on equal shapes and, when the notebook's unbroadcast works, on broadcasting pairs.

    While unbroadcast is unfinished the same-shape cases run with a stand-in that returns g unchanged (all
    unbroadcast does there), so a stub in exercise 2 is never blamed on these VJPs."""
    run = visible_run(seed, "check_binary_vjps(vjps_of, seed={seed})")
    problem = unbroadcast_problem(notebook_unbroadcasts(vjps_of), run)
    if problem:
        count = judge_binary_cases(vjps_of, [SAME_SHAPES], run, unbroadcast=same_shape_unbroadcast)
        print(f"NOT FULLY CHECKED: binary VJPs: {count} same-shape cases agree with finite differences "
              f"(seed {run.seed}), but the broadcasting cases were SKIPPED because your unbroadcast "
              f"{problem} (exercise 2). Finish it and run this cell again. When graded, they run with a "
              "correct unbroadcast in place of yours, so exercise 2 is graded only once.")
        return
    count = judge_binary_cases(vjps_of, [SAME_SHAPES, *BROADCAST_PAIRS], run)
    passed("binary VJPs", f"{count} cases, same shapes and broadcasting pairs, against finite differences "
                          f"(seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 4: matmul
# ---------------------------------------------------------------------------------------------------------

MATMUL_SHAPES = [((3, 5), (5, 2)), ((1, 4), (4, 3)), ((4, 2), (2, 6)), ((4, 4), (4, 4))]
MATMUL_HINT = ("with C = A @ B and G = g, A-bar must have A's shape (m, k) and B-bar B's shape (k, n); "
               "G is (m, n), so the shapes only fit with the transposes of section 5's derivation.")


@in_sentences
def judge_matmul_cases(vjps_of: Callable, shapes: Iterable[tuple[tuple[int, int], tuple[int, int]]],
                       run: Run) -> int:
    va, vb = registered(vjps_of, np.matmul, "np.matmul", 2)
    count = 0
    for sa, sb in shapes:
        a, b = normal(run.rng, sa), normal(run.rng, sb)
        vjps = [student_vjp(va, "your VJP of np.matmul for a", hint=MATMUL_HINT),
                student_vjp(vb, "your VJP of np.matmul for b", hint=MATMUL_HINT, index=1)]
        square = " (square: a forgotten transpose still runs here, so only the values can tell)" \
            if sa[0] == sa[1] == sb[1] else ""
        run_case(f"np.matmul of a {sa} and b {sb}{square}", np.matmul, vjps, a, b, run=run, hint=MATMUL_HINT)
        count += 1
    return count


def check_matmul_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Both matmul VJPs on non-square and square (non-symmetric) matrices."""
    run = visible_run(seed, "check_matmul_vjps(vjps_of, seed={seed})")
    count = judge_matmul_cases(vjps_of, MATMUL_SHAPES, run)
    passed("matmul VJPs", f"{count} products, non-square and square, against finite differences "
                          f"(seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 5: sum and mean
# ---------------------------------------------------------------------------------------------------------

REDUCTION_CASES = [((3, 4), axis, keepdims) for axis in (None, 0, 1, -1) for keepdims in (False, True)]
REDUCTION_CASES += [((2, 3, 4), (0, 2), keepdims) for keepdims in (False, True)]


MEAN_N = ("mean divides by n, the number of entries of x averaged into each output, and so must its VJP; "
          "n must come out right for every axis argument: None, an integer, a negative integer, a tuple.")


def reduction_hints(name: str, axis: Any, keepdims: bool) -> tuple[str, str, str]:
    """(hint for a result of the wrong shape, for code that raises, for wrong values): each names only what
    can cause that kind of failure in this case, so no irrelevant advice is appended."""
    if axis is None:
        shape_hint = ("axis=None reduces everything to one number: g is a single number, and every entry of "
                      "x gets it (a new array of x's shape).")
    elif keepdims:
        shape_hint = ("with keepdims=True g still has the reduced axes (with length 1), so it already lines "
                      "up with x: broadcast it to x's shape directly, without adding an axis.")
    else:
        shape_hint = ("with keepdims=False the reduced axes are missing from g: put them back as length-1 "
                      "axes at their places before broadcasting g to x's shape.")
    error_hint = shape_hint
    if isinstance(axis, tuple):
        error_hint = (f"axis is the tuple {axis} here: the exercise asks for tuples of axes too, so handle "
                      "axis as a whole (numpy's axis arguments accept tuples) instead of indexing or doing "
                      "arithmetic with it as one integer.")
    if name == "np.mean":
        return shape_hint, (error_hint if isinstance(axis, tuple) else MEAN_N), MEAN_N
    value_hint = "every entry of x gets the gradient of the output it was summed into: g copied back."
    if not keepdims and axis is not None:
        value_hint += (" With keepdims=False, a g broadcast without putting the reduced axes back lines up "
                       "with the LAST axes, which is wrong (silently so when the lengths happen to match).")
    return shape_hint, error_hint, value_hint


@in_sentences
def judge_reduction_cases(vjps_of: Callable, cases: Iterable[tuple[tuple[int, ...], Any, bool]],
                          run: Run) -> int:
    count = 0
    for name, key, forward in (("np.sum", np.sum, np.sum), ("np.mean", np.mean, np.mean)):
        (vjp,) = registered(vjps_of, key, name, 1)
        for shape, axis, keepdims in cases:
            shape_hint, error_hint, value_hint = reduction_hints(name, axis, keepdims)

            def f(x, _fw=forward, _axis=axis, _keep=keepdims):
                return _fw(x, axis=_axis, keepdims=_keep)

            wrapped = student_vjp(vjp, f"your VJP of {name}", hint=shape_hint, error_hint=error_hint,
                                  axis=axis, keepdims=keepdims)
            case = f"{name}(x of shape {shape}, axis={axis}, keepdims={keepdims})"
            x = normal(run.rng, shape)
            run_case(case, f, [wrapped], x, run=run, hint=value_hint)
            out = wrapped(normal(run.rng, np.shape(f(x))), f(x), x)
            if isinstance(out, np.ndarray) and not out.flags.writeable:
                raise CheckFailure(f"{case}:\nyour VJP of {name} returned a read-only array (a view made by "
                                   "np.broadcast_to?). Its values are right, but whoever receives it may add "
                                   "to it in place.\n  Hint: return a new array: copy the view.\n"
                                   + run.line())
            count += 1
    return count


def check_reduction_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """np.sum and np.mean VJPs for axis None/0/1/-1 and a tuple of axes, keepdims False and True."""
    run = visible_run(seed, "check_reduction_vjps(vjps_of, seed={seed})")
    count = judge_reduction_cases(vjps_of, REDUCTION_CASES, run)
    passed("reduction VJPs", f"{count} cases (sum and mean, every axis and a tuple of axes, keepdims both "
                             "ways) against finite "
                             f"differences (seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 6: reshape and transpose
# ---------------------------------------------------------------------------------------------------------

RESHAPE_CASES = [((3, 4), (2, 6)), ((3, 4), (12,)), ((4, 3), (3, 4))]
TRANSPOSE_CASES = [((3, 4), None), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (-1, 0, 1))]
RESHAPE_HINT = ("reshape only relabels positions, keeping the entries in the same order: undo it so g gets "
                "x's layout back (a transpose puts entries in other places even when the shape matches).")
TRANSPOSE_HINT = ("output axis i is input axis axes[i]; sending g back needs the INVERSE permutation, the "
                  "one that undoes axes (for axes (1, 2, 0) it is not (1, 2, 0) again). np.transpose also "
                  "accepts negative axes: count them from the end. axes=None reverses all axes.")


@in_sentences
def judge_shape_cases(vjps_of: Callable, reshapes: Iterable, transposes: Iterable, run: Run) -> int:
    (v_reshape,) = registered(vjps_of, np.reshape, "np.reshape", 1)
    (v_transpose,) = registered(vjps_of, np.transpose, "np.transpose", 1)
    count = 0
    for shape, new_shape in reshapes:
        def f(x, _s=new_shape):
            return np.reshape(x, _s).copy()

        run_case(f"np.reshape(x of shape {shape}, {new_shape})", f,
                 [student_vjp(v_reshape, "your VJP of np.reshape", new_shape, hint=RESHAPE_HINT)],
                 normal(run.rng, shape), run=run, hint=RESHAPE_HINT)
        count += 1
    for shape, axes in transposes:
        def f(x, _a=axes):
            return np.transpose(x, _a).copy()

        run_case(f"np.transpose(x of shape {shape}, axes={axes})", f,
                 [student_vjp(v_transpose, "your VJP of np.transpose", axes, hint=TRANSPOSE_HINT)],
                 normal(run.rng, shape), run=run, hint=TRANSPOSE_HINT)
        count += 1
    return count


def check_shape_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """np.reshape and np.transpose VJPs, including a reshape that looks like a transpose and negative axes."""
    run = visible_run(seed, "check_shape_vjps(vjps_of, seed={seed})")
    count = judge_shape_cases(vjps_of, RESHAPE_CASES, TRANSPOSE_CASES, run)
    passed("shape VJPs", f"{count} reshapes and transposes against finite differences (seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 7: softmax, log_softmax, cross_entropy (trusted forwards written here, not the notebook's)
# ---------------------------------------------------------------------------------------------------------


def trusted_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def trusted_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.exp(trusted_log_softmax(x, axis))


def trusted_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return -np.mean(trusted_log_softmax(logits, -1)[np.arange(len(labels)), labels])


SOFTMAX_CASES = [((4, 5), -1), ((5,), -1), ((4, 5), 0)]
CROSS_ENTROPY_CASES = [(6, 4), (3, 5)]
SOFTMAX_HINT = ("softmax's Jacobian is diag(s) - s s^T per slice along `axis` (section 8): multiply g^T into "
                "it by hand and simplify. What remains needs the inner product <g, s>: ONE number per slice "
                "along `axis` (not one for the whole array), kept as a length-1 axis so it broadcasts back "
                "against g.")
LOG_SOFTMAX_HINT = ("the log-softmax Jacobian is I - 1 s^T per slice along `axis` (section 8), with s the "
                    "softmax, which is exp(ans): multiply g into it; the sum it produces is one number per "
                    "slice, kept as a length-1 axis.")
CROSS_ENTROPY_HINT = ("chain the two VJPs of section 8: 'pick entry labels[n] of row n and average' (it "
                      "sends -g/N to each picked entry, 0 elsewhere), then log_softmax's along the last "
                      "axis; g is the scalar upstream gradient and N the batch size.")


def fixed_axis(vjp: VJP, forward: Callable, x: np.ndarray, axis: int, run: Run) -> bool:
    """True when the student's VJP ignores its ``axis`` argument AND is right along another axis: then the
    bug is a hard-coded axis (and not some other mistake that happens not to depend on the axis)."""
    if x.ndim < 2:
        return False
    other = 0 if axis % x.ndim != 0 else x.ndim - 1
    g = normal(run.rng, x.shape)
    try:
        with quiet():
            here = np.asarray(vjp(g.copy(), forward(x, axis=axis), x.copy(), axis=axis), dtype=np.float64)
            there = np.asarray(vjp(g.copy(), forward(x, axis=axis), x.copy(), axis=other), dtype=np.float64)
            if here.shape != there.shape or not np.array_equal(here, there):
                return False
            check_vjp(lambda v: forward(v, axis=other), [lambda g, ans, v: vjp(g, ans, v, axis=other)], x,
                      seed=int(run.rng.integers(2**62)))
    except Exception:  # noqa: BLE001 - only a diagnosis: the check's message stands on its own
        return False
    return True


def _diagnoses_for(named: Any, name: str, axis: int) -> list[Diagnosis]:
    """The grader's named mistakes for softmax or log_softmax (``named``: the hidden module), or none."""
    if named is None:
        return []
    return named.softmax_diagnoses(axis) if name == "softmax" else named.log_softmax_diagnoses(axis)


@in_sentences
def judge_softmax_cases(vjps_of: Callable, softmax: Callable, log_softmax: Callable, cross_entropy: Callable,
                        softmax_cases: Iterable, ce_cases: Iterable, run: Run, scale: float = 1.0,
                        named: Any = None) -> int:
    (v_sm,) = registered(vjps_of, softmax, "softmax", 1)
    (v_lsm,) = registered(vjps_of, log_softmax, "log_softmax", 1)
    v_ce = registered(vjps_of, cross_entropy, "cross_entropy", 1)[0]
    labels_vjp = vjps_for(vjps_of, cross_entropy)[1:]
    if labels_vjp != (None,):
        got = "nothing" if not labels_vjp else ", ".join(
            "None" if v is None else getattr(v, "__name__", type_name(v)) for v in labels_vjp)
        raise CheckFailure(
            f"defvjp(cross_entropy, ...) registered {got} for the labels (its second argument): integer "
            "class labels get no gradient, and the registry says so with None.\n  Hint: register exactly "
            "one VJP for the logits followed by None, as exercise 7 says.\n" + run.line())
    count = 0
    for shape, axis in softmax_cases:
        for name, vjp, forward, hint in (("softmax", v_sm, trusted_softmax, SOFTMAX_HINT),
                                         ("log_softmax", v_lsm, trusted_log_softmax, LOG_SOFTMAX_HINT)):
            def f(x, _fw=forward, _axis=axis):
                return _fw(x, axis=_axis)

            diagnoses = _diagnoses_for(named, name, axis)
            x = scale * normal(run.rng, shape)
            try:
                run_case(f"{name}(x of shape {shape}, axis={axis})", f,
                         [student_vjp(vjp, f"your VJP of {name}", hint=hint, axis=axis)],
                         x, run=run, hint=hint, diagnoses=diagnoses)
            except NotDone:
                raise
            except CheckFailure as exc:
                if "It looks like" not in str(exc) and fixed_axis(vjp, forward, x, axis, run):
                    message = str(exc).removesuffix(f"\n{run.line()}").replace(f"\n  Hint: {hint}", "")
                    other = 0 if axis % x.ndim else -1
                    raise CheckFailure(f"{message}\n  Hint: your VJP is right along axis {other} and "
                                       "returns the same result whatever `axis` it is given: sum along the "
                                       f"`axis` argument, not a fixed axis.\n{run.line()}") from None
                raise
            count += 1
    for n, classes in ce_cases:
        labels = labels_for(run.rng, n, classes)

        def f(logits, _labels=labels):
            return trusted_cross_entropy(logits, _labels)

        run_case(f"cross_entropy(logits of shape {(n, classes)}, labels {labels.tolist()})", f,
                 [student_vjp(v_ce, "your VJP of cross_entropy", labels.copy(), hint=CROSS_ENTROPY_HINT)],
                 scale * normal(run.rng, (n, classes)), run=run, hint=CROSS_ENTROPY_HINT,
                 diagnoses=named.cross_entropy_diagnoses(labels) if named else ())
        count += 1
    return count


def check_softmax_vjps(vjps_of: Callable, softmax: Callable, log_softmax: Callable, cross_entropy: Callable,
                       *, seed: int | None = None) -> None:
    """softmax and log_softmax VJPs along either axis, and the fused cross-entropy VJP."""
    run = visible_run(seed, "check_softmax_vjps(vjps_of, softmax, log_softmax, cross_entropy, seed={seed})")
    count = judge_softmax_cases(vjps_of, softmax, log_softmax, cross_entropy, SOFTMAX_CASES,
                                CROSS_ENTROPY_CASES, run)
    passed("softmax-family VJPs", f"{count} cases (softmax and log_softmax along either axis, cross-entropy) "
                                  f"against finite differences (seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 8: jacobian_from_vjp
# ---------------------------------------------------------------------------------------------------------


class CountingFunction:
    """A trusted f(x) -> (y, pullback) whose pullback validates g and counts its calls."""

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray],
                 backward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], description: str):
        self.forward, self.backward, self.description = forward, backward, description
        self.forward_calls = 0
        self.pullback_calls = 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        self.forward_calls += 1
        x = np.array(x, dtype=np.float64)
        y = self.forward(x)

        def pullback(g: np.ndarray) -> np.ndarray:
            self.pullback_calls += 1
            if np.shape(g) != y.shape:
                raise CheckFailure(
                    f"jacobian_from_vjp called the pullback with g of shape {np.shape(g)}, but the output y "
                    f"has shape {y.shape}.\n  Hint: reshape each unit vector e_i to y.shape before pulling "
                    "it back.")
            return self.backward(np.array(g, dtype=np.float64), y, x)

        return y.copy(), pullback

    def numerical_jacobian(self, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
        """Central differences, one column per input entry, in float64 (independent of any pullback)."""
        x = np.array(x, dtype=np.float64)
        y_size = self.forward(x).size
        jac = np.zeros((y_size, x.size))
        for j in range(x.size):
            step = np.zeros(x.size)
            step[j] = h
            step = step.reshape(x.shape)
            jac[:, j] = (np.ravel(self.forward(x + step)) - np.ravel(self.forward(x - step))) / (2 * h)
        return jac


def layer_function(rng: np.random.Generator, n_in: int, n_out: int) -> CountingFunction:
    """y = A @ sigmoid(x), A (n_out, n_in) random: a non-square Jacobian A diag(sigmoid'(x))."""
    a = normal(rng, (n_out, n_in))
    return CountingFunction(lambda x: a @ sigmoid(x),
                            lambda g, y, x: (g @ a) * sigmoid(x) * (1.0 - sigmoid(x)),
                            f"y = A @ sigmoid(x) with x of shape ({n_in},) and y of shape ({n_out},)")


def matrix_function(rng: np.random.Generator, rows: int, n_in: int, n_out: int) -> CountingFunction:
    """y = sigmoid(x @ B) for x (rows, n_in): matrix-shaped input and output."""
    b = normal(rng, (n_in, n_out)) / np.sqrt(n_in)
    return CountingFunction(lambda x: sigmoid(x @ b),
                            lambda g, y, x: np.einsum("rk,nk->rn", g * y * (1.0 - y), b),
                            f"y = sigmoid(x @ B) with x of shape ({rows}, {n_in}) and y of shape "
                            f"({rows}, {n_out})")


def check_jacobian_case(jacobian_from_vjp: Callable, fun: CountingFunction, x: np.ndarray,
                        run: Run) -> None:
    """One Jacobian against finite differences, then what the exercise demands of how it is built: a 2-D
    float numpy array, f called once, one pullback per output entry."""
    expected = fun.numerical_jacobian(x)
    m, n = expected.shape
    where = f"for {fun.description}"
    with reworded(lambda exc: f"{exc}\n{run.line()}", into=CheckFailure):
        got = guarded(jacobian_from_vjp, f"jacobian_from_vjp ({where})",
                      hint=f"rows are VJPs: J has shape (y.size, x.size) = {(m, n)}, and row i is the "
                           "pullback of the unit vector e_i, flattened to x.size entries.")(fun, x.copy())

    def fail(problem: str, hint: str) -> None:
        raise CheckFailure(f"jacobian_from_vjp {problem} {where}.\n  Hint: {hint}\n{run.line()}")

    if got is not None and not isinstance(got, np.ndarray):
        fail(f"returned a {type_name(got)}, not a numpy array,",
             "the exercise asks for a float64 array of shape (y.size, x.size): fill np.zeros((m, n)) row by "
             "row, or turn your rows into one array with np.array(rows).")
    got_arr = got
    if got_arr is not None and got_arr.dtype.kind in "iub":
        fail(f"returned an array of dtype {got_arr.dtype}: values assigned into an integer array are "
             "truncated,",
             "create J as a float array, e.g. np.zeros((m, n)) without an integer dtype.")
    if got_arr is not None and got_arr.dtype != np.float64:
        fail(f"must return a float64 array, as the exercise says (a narrower type rounds away digits of the "
             f"VJPs), and returned dtype {got_arr.dtype}",
             "create J with np.zeros((m, n)), whose default dtype is float64, and give it no other dtype.")
    if got_arr is not None and got_arr.ndim != 2 and got_arr.size == m * n:
        fail(f"returned shape {got_arr.shape}; a Jacobian is a 2-D array of shape {(m, n)}",
             "each pullback result is shaped like x: flatten it (np.ravel) before it becomes a row.")
    if got_arr is not None and got_arr.shape == (n, m) and m != n:
        fail(f"returned shape {(n, m)}; the Jacobian has one ROW per output entry and one column per input "
             f"entry: shape {(m, n)}",
             "the VJP with the unit vector e_i is row i of the Jacobian, not column i.")
    with reworded(lambda exc: f"{exc}\n{run.line()}", into=CheckFailure):
        check_close(got, expected, name=f"jacobian_from_vjp {where}",
                    rtol=1e-6, atol=1e-8 * max(1.0, float(np.max(np.abs(expected)))),
                    hint="row i must be the pullback of the unit vector e_i (reshaped to y's shape), "
                         "flattened; a fresh e_i for every row, with a single 1 in it.")
    if fun.forward_calls != 1:
        fail(f"called f {fun.forward_calls} times", "call f once, before the loop: its one pullback serves "
             "every row (each call of f is a whole forward pass).")
    if fun.pullback_calls != m:
        fail(f"called the pullback {fun.pullback_calls} times; reverse mode needs exactly one VJP per output "
             f"entry, m = {m},", "one pullback call per row i, with the unit vector e_i.")


@in_sentences
def judge_jacobian_cases(jacobian_from_vjp: Callable, cases: Iterable[tuple[CountingFunction, np.ndarray]],
                         run: Run) -> int:
    count = 0
    for fun, x in cases:
        check_jacobian_case(jacobian_from_vjp, fun, x, run)
        count += 1
    return count


def check_jacobian_from_vjp(jacobian_from_vjp: Callable, *, seed: int | None = None) -> None:
    """Jacobians of a non-square vector layer and of a matrix-valued function, against finite differences."""
    run = visible_run(seed, "check_jacobian_from_vjp(jacobian_from_vjp, seed={seed})")
    rng = run.rng
    cases = [(layer_function(rng, 5, 3), normal(rng, (5,))),
             (matrix_function(rng, 2, 3, 4), normal(rng, (2, 3)))]
    count = judge_jacobian_cases(jacobian_from_vjp, cases, run)
    passed("jacobian_from_vjp", f"{count} Jacobians against finite differences, f called once and one "
                                f"pullback per row (seed {run.seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 7b: the negative log-likelihood of labels under predicted class probabilities
# ---------------------------------------------------------------------------------------------------------


def probabilities(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Random rows of class probabilities, every entry in (0, 1) and away from 0 and 1."""
    p = rng.uniform(0.2, 1.0, (n, classes))
    return p / p.sum(axis=1, keepdims=True)


def nll_value(nll: Callable, probs: np.ndarray, labels: np.ndarray, case: str, run: Run) -> float:
    """The student's nll on read-only copies, as one float, or a message saying what came back."""
    p, y = readonly(probs), readonly(labels)

    def with_hint(exc: CheckFailure) -> str:
        said, _, hint = str(exc).partition("\n  Hint: ")  # an in-place write names its own fix
        hint = hint or ("probs is an (N, C) array of probabilities and labels an (N,) array of integer "
                        "classes: pick one probability per row.")
        return f"{said} (for {case})\n  Hint: {hint}\n{run.line()}"

    with reworded(with_hint, into=CheckFailure):
        out = guarded(nll, "your nll")(p, y)
    if isinstance(out, np.ndarray) and out.ndim != 0:
        raise CheckFailure(f"your nll returned {out!r} of shape {out.shape} for {case}: it must return "
                           "one finite number (a float), not an array, not even one of length 1.\n  Hint: "
                           "the loss is the mean over the batch: reduce the N terms to a single number.\n"
                           + run.line())
    with reworded(lambda exc: f"{exc}\n{run.line()}"):
        return as_real(out, f"your nll, for {case}, returned")


NLL_RTOL = 1e-9
"""Properties of a log-likelihood that hold to rounding."""


def uniform_hint(got: float, n: int, classes: int) -> str:
    """The usual reason a uniform batch does not give log C."""
    log_c = float(np.log(classes))
    if close(got, -log_c, NLL_RTOL):
        return "the negative log-likelihood is MINUS the log, positive for probabilities below 1."
    if close(got, n * log_c, NLL_RTOL):
        return "the loss is the MEAN over the batch, not the sum."
    if any(close(got, float(log(classes)), NLL_RTOL) for log in (np.log2, np.log10)):
        return "use the natural log, np.log: your value is log C in another base."
    if close(got, 1.0 - 1.0 / classes, NLL_RTOL):
        return "take the log: a label's negative log-likelihood is -log p, not 1 - p."
    return "every label has probability 1/C here, so every example contributes -log(1/C) = log C."


def nll_properties(nll: Callable, n: int, classes: int, run: Run) -> int:
    """Four properties that together pin down the mean negative log-likelihood on one random batch."""
    rng = run.rng
    labels = labels_for(rng, n, classes)

    def fail(problem: str, hint: str) -> None:
        raise CheckFailure(f"your nll {problem} (batch of {n}, {classes} classes, labels "
                           f"{labels.tolist()}).\n  Hint: {hint}\n{run.line()}")

    uniform = nll_value(nll, np.full((n, classes), 1.0 / classes), labels, "uniform probabilities", run)
    if not close(uniform, float(np.log(classes)), NLL_RTOL):
        fail(f"gives {uniform:.6g} when every class has probability 1/{classes}; each label's likelihood "
             f"is then 1/{classes}, whose negative log is log {classes} = {np.log(classes):.6g}",
             uniform_hint(uniform, n, classes))
    probs = probabilities(rng, n, classes)
    base = nll_value(nll, probs, labels, "random probabilities", run)
    moved_mass = probs.copy()
    for row, label in enumerate(labels):
        others = [c for c in range(classes) if c != label]
        weights = rng.uniform(0.1, 1.0, len(others))
        moved_mass[row, others] = probs[row, others].sum() * weights / weights.sum()
    moved = nll_value(nll, moved_mass, labels, "random probabilities", run)
    if not close(moved, base, NLL_RTOL):
        fail(f"changed from {base:.6g} to {moved:.6g} when only probability mass among classes that are NOT "
             "the labels was moved",
             "the likelihood of a label is the probability the model gave to THAT class, "
             "probs[n, labels[n]]; the other entries do not enter the loss.")
    label = int(labels[0])
    lowered = probs[:1].copy()
    lowered[0, label] /= np.e
    others = [c for c in range(classes) if c != label]
    lowered[0, others] *= (1.0 - lowered[0, label]) / lowered[0, others].sum()
    one, other = (nll_value(nll, p, labels[:1], "one example", run) for p in (probs[:1], lowered))
    if not close(other - one, 1.0, NLL_RTOL):
        fail(f"went from {one:.6g} to {other:.6g} for one example whose label's probability was divided by "
             "e; the negative log-likelihood must rise by exactly 1 (-log(p/e) = -log p + 1)",
             "take -np.log of the label's probability (not of the logits, nor of 1 - p).")
    if n < 2:
        return 3
    split = max(1, n // 2 - 1)
    parts = [nll_value(nll, probs[s], labels[s], "part of the batch", run)
             for s in (slice(0, split), slice(split, n))]
    if not close(base, (split * parts[0] + (n - split) * parts[1]) / n, NLL_RTOL):
        fail(f"of the whole batch, {base:.6g}, is not the size-weighted mean of your nll on its first "
             f"{split} and last {n - split} examples ({parts[0]:.6g} and {parts[1]:.6g})",
             "average -log probs[n, labels[n]] over the N examples: np.mean, not np.sum.")
    return 4


@in_sentences
def judge_nll_cases(nll: Callable, run: Run, batches: Iterable[tuple[int, int]] = ((5, 4), (3, 3))) -> int:
    return sum(nll_properties(nll, n, classes, run) for n, classes in batches)


def check_nll(nll: Callable, *, seed: int | None = None) -> None:
    """nll(probs, labels), the mean negative log-likelihood, judged by properties that determine it: log C
    for uniform probabilities, blind to the non-label classes, +1 when the label's probability is divided
    by e, and a mean over the batch."""
    run = visible_run(seed, "check_nll(nll, seed={seed})")
    count = judge_nll_cases(nll, run)
    passed("nll", f"{count} properties of a mean negative log-likelihood on random probabilities "
                  f"(seed {run.seed})")

