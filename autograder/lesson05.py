"""Visible checks for lesson 05 (vector-Jacobian products).

Every VJP is checked with ``autograder.checks.check_vjp`` against float64 finite differences of the
check's OWN numpy forward (never the notebook's), with a random upstream gradient and random inputs drawn
inside the op's domain and away from kinks. Shapes are non-square wherever a transposed answer could hide,
and binary operations are tried first on equal shapes and then on broadcasting pairs, so a failure says
whether the derivative or only the broadcasting is wrong.

Isolation from ``unbroadcast``: the binary-op VJPs call the student's ``unbroadcast`` by name. This
module ships to students, so it holds no implementation of it; the visible check runs the broadcasting
cases only when the student's own ``unbroadcast`` passes its check, and otherwise says that it skipped
them. The hidden check (instructor only) swaps a trusted ``unbroadcast`` into the notebook's namespace for
the duration of the check, so a bug in exercise 2 never costs exercise 3's points.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from autograder.checks import CheckFailure, check_close, check_vjp, new_seed, quiet

__all__ = [
    "check_unary_vjps",
    "check_unbroadcast",
    "check_binary_vjps",
    "check_matmul_vjps",
    "check_reduction_vjps",
    "check_shape_vjps",
    "check_softmax_vjps",
    "check_jacobian_from_vjp",
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


def guarded(fn: Callable, label: str, hint: str = "") -> Callable:
    """Call student code quietly; any exception it raises becomes a CheckFailure naming it and the fix."""
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            with quiet():
                return fn(*args, **kwargs)
        except CheckFailure:
            raise
        except NotImplementedError:
            raise CheckFailure(f"{label} is not implemented yet (it raised NotImplementedError). Replace the "
                               "`raise NotImplementedError()` line with your code.") from None
        except Exception as exc:  # noqa: BLE001 - any error in student code becomes a graded message
            if isinstance(exc, ValueError) and "read-only" in str(exc):
                raise CheckFailure(f"{label} tried to modify one of its arguments in place ({exc}). "
                                   "A VJP must return a new array: the same g is sent to other nodes "
                                   "too.") from None
            msg = f"{label} raised {type(exc).__name__}: {exc}"
            raise CheckFailure(msg + (f"\n  Hint: {hint}" if hint else "")) from None

    return call


def student_vjp(vjp: VJP, label: str, *extra_args: Any, hint: str = "", **extra_kwargs: Any) -> VJP:
    """Adapt a student VJP to check_vjp's ``(g, ans, *xs)`` call, passing the forward's other arguments."""
    safe = guarded(vjp, label, hint)

    def call(g: np.ndarray, ans: np.ndarray, *xs: np.ndarray) -> Any:
        return safe(g, ans, *xs, *extra_args, **extra_kwargs)

    call.__name__ = label.replace("your ", "")
    return call


def registered(vjps_of: Callable[[Callable], Sequence[VJP | None]], fun: Callable, name: str,
               count: int) -> tuple[VJP, ...]:
    """The student's registered VJPs of ``fun``, with a clear message when they are missing or malformed."""
    try:
        vjps = tuple(vjps_of(fun))
    except Exception as exc:  # noqa: BLE001
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CheckFailure(f"no VJPs found for {name} ({detail}).\n  Hint: run the cell that calls "
                           f"defvjp({name}, ...); it must run without errors.") from None
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


def run_case(case: str, f: Callable[..., Any], vjps: Sequence[VJP], *xs: np.ndarray,
             rng: np.random.Generator, hint: str = "", diagnoses: Sequence[Diagnosis] = ()) -> None:
    """check_vjp with a seed from ``rng``; a failure message starts with the case and ends with a hint.

    ``diagnoses`` (for single-input VJPs) recognise typical wrong formulas, so the hint can name the mistake.
    """
    seed = int(rng.integers(2**62))
    try:
        check_vjp(f, list(vjps), *xs, seed=seed)
    except CheckFailure as exc:
        text = f"{case}:\n{exc}"
        found = diagnose(vjps[0], f, xs, diagnoses, rng) if diagnoses else ""
        if found:
            text += f"\n  It looks like {found}"
        if hint and hint not in text:
            text += f"\n  Hint: {hint}"
        raise CheckFailure(text) from None


def _shape(shape: tuple[int, ...]) -> str:
    return "scalar ()" if shape == () else str(shape)


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: unary elementwise VJPs
# ---------------------------------------------------------------------------------------------------------

UNARY_SHAPES = [(3, 4), (5,), ()]


def unary_cases(relu: Callable) -> list[tuple[str, Callable, Callable, Callable, str]]:
    """(name, key in the registry, trusted forward, input sampler, hint) for each unary primitive."""
    return [
        ("np.negative", np.negative, np.negative, normal, "the derivative of -x is -1 everywhere."),
        ("np.exp", np.exp, np.exp, normal, "d/dx exp(x) = exp(x), which is `ans`; multiply it by g."),
        ("np.log", np.log, np.log, positive, "d/dx log(x) = 1/x; use the input x, not the output."),
        ("np.tanh", np.tanh, np.tanh, normal,
         "d/dx tanh(x) = 1 - tanh(x)**2: square the OUTPUT ans, not the input x."),
        ("relu", relu, lambda x: np.where(x > 0, x, 0.0), away_from_zero,
         "relu passes g through where x > 0 and blocks it elsewhere: g times a 0/1 mask, not the mask "
         "alone and not relu of g."),
    ]


def check_unary_vjps(vjps_of: Callable, relu: Callable, *, seed: int | None = None,
                     shapes: Iterable[tuple[int, ...]] = UNARY_SHAPES) -> None:
    """VJPs of np.negative, np.exp, np.log, np.tanh and relu on random shapes and upstream gradients."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    shapes = list(shapes)
    for name, key, forward, sample, hint in unary_cases(relu):
        (vjp,) = registered(vjps_of, key, name, 1)
        for shape in shapes:
            x = sample(rng, shape)
            run_case(f"{name} on an input of shape {_shape(shape)} (check seed {seed})", forward,
                     [student_vjp(vjp, f"your VJP of {name}", hint=hint)], x, rng=rng, hint=hint)
    print(f"unary VJPs: all {len(shapes) * 5} cases passed (seed {seed})")


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


def check_unbroadcast_cases(unbroadcast: Callable, cases: Iterable[tuple[tuple[int, ...], tuple[int, ...]]],
                            rng: np.random.Generator, seed: int) -> None:
    """unbroadcast(g, shape) is the VJP of np.broadcast_to(x, out_shape): check it as one, case by case."""
    for shape, out_shape in cases:
        hint = unbroadcast_hint(shape, out_shape)
        safe = guarded(unbroadcast, "your unbroadcast", hint)

        def vjp(g, ans, x, _safe=safe):
            return _safe(g, np.shape(x))

        vjp.__name__ = "unbroadcast"

        def broadcast(x, _out=out_shape):
            return np.broadcast_to(x, _out).copy()

        run_case(f"unbroadcast(g of shape {out_shape}, shape={_shape(shape)}) (check seed {seed})", broadcast,
                 [vjp], normal(rng, shape), rng=rng, hint=hint)


def check_unbroadcast(unbroadcast: Callable, *, seed: int | None = None) -> None:
    """unbroadcast on the broadcasting pairs scalar, (4,), (3, 4), (1, 4), (3, 1) and leading axes."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    check_unbroadcast_cases(unbroadcast, UNBROADCAST_CASES, rng, seed)
    print(f"unbroadcast: all {len(UNBROADCAST_CASES)} cases passed (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: binary operations with broadcasting
# ---------------------------------------------------------------------------------------------------------

SAME_SHAPES = ((3, 4), (3, 4))
BROADCAST_PAIRS = [((3, 4), (4,)), ((4,), (3, 4)), ((), (3, 4)), ((3, 4), ()), ((1, 4), (3, 4)),
                   ((3, 1), (1, 4))]


def binary_cases() -> list[tuple[str, Callable, Callable, Callable, str]]:
    """(name, registry key, trusted forward, sampler of (x, y), derivative hint) for each binary op."""
    def pair(sx, sy):
        return lambda rng, a, b: (sx(rng, a), sy(rng, b))

    return [
        ("np.add", np.add, np.add, pair(normal, normal), "both partial derivatives of x + y are 1."),
        ("np.subtract", np.subtract, np.subtract, pair(normal, normal),
         "d(x - y)/dy = -1: y's gradient is -g."),
        ("np.multiply", np.multiply, np.multiply, pair(normal, normal),
         "d(x*y)/dx = y and d(x*y)/dy = x: each input's gradient uses the OTHER input."),
        ("np.divide", np.divide, np.divide, pair(normal, away_from_zero),
         "d(x/y)/dx = 1/y and d(x/y)/dy = -x/y**2 (mind the sign and the square)."),
        ("np.power", np.power, np.power, pair(positive, normal),
         "d(x**y)/dx = y * x**(y - 1) and d(x**y)/dy = x**y * log(x)."),
    ]


def check_binary_cases(vjps_of: Callable, pairs: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
                       rng: np.random.Generator, seed: int) -> int:
    """Check every binary op on ``pairs``; the first pair must be non-broadcasting. Returns the count."""
    count = 0
    for name, key, forward, sample, hint in binary_cases():
        vx, vy = registered(vjps_of, key, name, 2)
        for sx, sy in pairs:
            x, y = sample(rng, sx, sy)
            broadcasting = sx != sy
            if broadcasting:
                case = (f"{name} with broadcasting: x of shape {_shape(sx)} and y of shape {_shape(sy)} "
                        f"(check seed {seed})")
                case_hint = ("your VJPs are right when nothing is broadcast but not here: pass each "
                             "gradient through unbroadcast(..., np.shape(x)) (or y) so it gets its input's "
                             "shape back.")
            else:
                case = f"{name} with x and y of the same shape {_shape(sx)} (check seed {seed})"
                case_hint = hint
            vjps = [student_vjp(vx, f"your VJP of {name} for x", hint=case_hint),
                    student_vjp(vy, f"your VJP of {name} for y", hint=case_hint)]
            run_case(case, forward, vjps, x, y, rng=rng, hint=case_hint)
            count += 1
    return count


def unbroadcast_in(vjps: Iterable[VJP]) -> list[dict]:
    """The distinct module namespaces (notebook globals) in which these VJPs look up ``unbroadcast``."""
    spaces: dict[int, dict] = {}
    for v in vjps:
        space = getattr(v, "__globals__", None)
        if isinstance(space, dict) and "unbroadcast" in space:
            spaces[id(space)] = space
    return list(spaces.values())


def binary_vjp_functions(vjps_of: Callable) -> list[VJP]:
    out: list[VJP] = []
    for _name, key, *_ in binary_cases():
        try:
            out.extend(v for v in vjps_of(key) if callable(v))
        except Exception:  # noqa: BLE001 - a missing registration is reported by the check itself
            continue
    return out


def check_binary_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Binary-op VJPs on equal shapes and, when the notebook's unbroadcast works, on broadcasting pairs."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    count = check_binary_cases(vjps_of, [SAME_SHAPES], rng, seed)
    spaces = unbroadcast_in(binary_vjp_functions(vjps_of))
    unbroadcasts = [space["unbroadcast"] for space in spaces]
    try:
        if not unbroadcasts:
            raise CheckFailure("no unbroadcast")
        for ub in unbroadcasts:
            check_unbroadcast_cases(ub, UNBROADCAST_CASES, rng, seed)
    except CheckFailure:
        print("binary VJPs: the broadcasting cases were SKIPPED because your unbroadcast does not pass its "
              "own check yet. Fix exercise 2 and run this cell again. (When graded, these cases run with a "
              "correct unbroadcast in place of yours, so exercise 2 is graded only once.)")
    else:
        count += check_binary_cases(vjps_of, BROADCAST_PAIRS, rng, seed)
    print(f"binary VJPs: all {count} cases passed (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 4: matmul
# ---------------------------------------------------------------------------------------------------------

MATMUL_SHAPES = [((3, 5), (5, 2)), ((1, 4), (4, 3)), ((4, 2), (2, 6))]
MATMUL_HINT = ("with C = A @ B and G = g, A-bar must have A's shape (m, k) and B-bar B's shape (k, n); "
               "G is (m, n), so the shapes only fit with the transposes of section 5's derivation.")


def check_matmul_cases(vjps_of: Callable, shapes: Iterable[tuple[tuple[int, int], tuple[int, int]]],
                       rng: np.random.Generator, seed: int) -> int:
    va, vb = registered(vjps_of, np.matmul, "np.matmul", 2)
    count = 0
    for sa, sb in shapes:
        a, b = normal(rng, sa), normal(rng, sb)
        vjps = [student_vjp(va, "your VJP of np.matmul for a", hint=MATMUL_HINT),
                student_vjp(vb, "your VJP of np.matmul for b", hint=MATMUL_HINT)]
        run_case(f"np.matmul of a {sa} and b {sb} (check seed {seed})", np.matmul, vjps, a, b, rng=rng,
                 hint=MATMUL_HINT)
        count += 1
    return count


def check_matmul_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Both matmul VJPs on non-square, non-symmetric matrices."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    count = check_matmul_cases(vjps_of, MATMUL_SHAPES, rng, seed)
    print(f"matmul VJPs: all {count} cases passed (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 5: sum and mean
# ---------------------------------------------------------------------------------------------------------

REDUCTION_CASES = [((3, 4), axis, keepdims) for axis in (None, 0, 1, -1) for keepdims in (False, True)]


def reduction_hint(name: str, axis: Any, keepdims: bool) -> str:
    parts = []
    if keepdims and axis is not None:
        parts.append("with keepdims=True g still has the reduced axis (with length 1), so it already lines "
                     "up with x: broadcast it to x's shape directly, without adding an axis.")
    elif not keepdims and axis is not None:
        parts.append("with keepdims=False the reduced axis is missing from g: put it back with "
                     "np.expand_dims(g, axis) before broadcasting g to x's shape.")
    else:
        parts.append("every entry of x gets the gradient of the output it was summed into: g copied back "
                     "to x's shape (np.broadcast_to(...).copy()).")
    if name == "np.mean":
        parts.append("mean divides by n = the number of entries averaged into each output (x.size // "
                     "ans.size), and so must its VJP.")
    return " ".join(parts)


def check_reduction_cases(vjps_of: Callable, cases: Iterable[tuple[tuple[int, ...], Any, bool]],
                          rng: np.random.Generator, seed: int) -> int:
    count = 0
    for name, key, forward in (("np.sum", np.sum, np.sum), ("np.mean", np.mean, np.mean)):
        (vjp,) = registered(vjps_of, key, name, 1)
        for shape, axis, keepdims in cases:
            hint = reduction_hint(name, axis, keepdims)

            def f(x, _fw=forward, _axis=axis, _keep=keepdims):
                return _fw(x, axis=_axis, keepdims=_keep)

            wrapped = student_vjp(vjp, f"your VJP of {name}", hint=hint, axis=axis, keepdims=keepdims)
            case = f"{name}(x of shape {shape}, axis={axis}, keepdims={keepdims}) (check seed {seed})"
            x = normal(rng, shape)
            run_case(case, f, [wrapped], x, rng=rng, hint=hint)
            out = wrapped(normal(rng, np.shape(f(x))), f(x), x)
            if isinstance(out, np.ndarray) and not out.flags.writeable:
                raise CheckFailure(f"{case}:\nyour VJP of {name} returned a read-only array (a view made by "
                                   "np.broadcast_to?). Its values are right, but whoever receives it may add "
                                   "to it in place.\n  Hint: return a copy: np.broadcast_to(...).copy().")
            count += 1
    return count


def check_reduction_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """np.sum and np.mean VJPs for axis None/0/1/-1, keepdims False and True."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    count = check_reduction_cases(vjps_of, REDUCTION_CASES, rng, seed)
    print(f"reduction VJPs: all {count} cases passed (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Exercise 6: reshape and transpose
# ---------------------------------------------------------------------------------------------------------

RESHAPE_CASES = [((3, 4), (2, 6)), ((3, 4), (12,)), ((4, 3), (3, 4))]
TRANSPOSE_CASES = [((3, 4), None), ((2, 3, 4), (1, 2, 0))]
RESHAPE_HINT = ("reshape only relabels positions: reshape g back to x's shape (a transpose puts entries in "
                "other places even when the shape matches).")
TRANSPOSE_HINT = ("output axis i is input axis axes[i]; send g back with the INVERSE permutation, "
                  "np.argsort(axes) (axes=None reverses all axes, which is its own inverse).")


def check_shape_cases(vjps_of: Callable, reshapes: Iterable, transposes: Iterable,
                      rng: np.random.Generator, seed: int) -> int:
    (v_reshape,) = registered(vjps_of, np.reshape, "np.reshape", 1)
    (v_transpose,) = registered(vjps_of, np.transpose, "np.transpose", 1)
    count = 0
    for shape, new_shape in reshapes:
        def f(x, _s=new_shape):
            return np.reshape(x, _s).copy()

        run_case(f"np.reshape(x of shape {shape}, {new_shape}) (check seed {seed})", f,
                 [student_vjp(v_reshape, "your VJP of np.reshape", new_shape, hint=RESHAPE_HINT)],
                 normal(rng, shape), rng=rng, hint=RESHAPE_HINT)
        count += 1
    for shape, axes in transposes:
        def f(x, _a=axes):
            return np.transpose(x, _a).copy()

        run_case(f"np.transpose(x of shape {shape}, axes={axes}) (check seed {seed})", f,
                 [student_vjp(v_transpose, "your VJP of np.transpose", axes, hint=TRANSPOSE_HINT)],
                 normal(rng, shape), rng=rng, hint=TRANSPOSE_HINT)
        count += 1
    return count


def check_shape_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """np.reshape and np.transpose VJPs, including a reshape that looks like a transpose."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    count = check_shape_cases(vjps_of, RESHAPE_CASES, TRANSPOSE_CASES, rng, seed)
    print(f"shape VJPs: all {count} cases passed (seed {seed})")


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
SOFTMAX_HINT = ("the softmax Jacobian is diag(s) - s s^T (section 8), not diagonal: x-bar = s (g - <g, s>), "
                "where <g, s> is ONE number per slice along `axis`, kept as a length-1 axis so it "
                "broadcasts back against g.")
LOG_SOFTMAX_HINT = ("the log-softmax Jacobian is I - 1 s^T per slice along `axis` (section 8), with s the "
                    "softmax, which is exp(ans): multiply g into it; the sum it produces is one number per "
                    "slice, kept as a length-1 axis.")
CROSS_ENTROPY_HINT = ("the VJP of the mean cross-entropy is (g / N) (softmax(logits) - onehot(labels)), with "
                      "g the scalar upstream gradient and N the batch size.")


def ignores_axis(vjp: VJP, forward: Callable, x: np.ndarray, axis: int, rng: np.random.Generator) -> bool:
    """True when the student's VJP returns the same result whatever ``axis`` it is given."""
    if x.ndim < 2:
        return False
    other = 0 if axis % x.ndim != 0 else x.ndim - 1
    g = normal(rng, x.shape)
    try:
        with quiet():
            here = np.asarray(vjp(g.copy(), forward(x, axis=axis), x.copy(), axis=axis), dtype=np.float64)
            there = np.asarray(vjp(g.copy(), forward(x, axis=axis), x.copy(), axis=other), dtype=np.float64)
    except Exception:  # noqa: BLE001 - only a diagnosis: the check's message stands on its own
        return False
    return here.shape == there.shape and np.array_equal(here, there)


def _diagnoses_for(name: str, axis: int) -> list[Diagnosis]:
    """The grader's named mistakes for softmax or log_softmax, or none in a student's kit."""
    if _trusted is None:
        return []
    return _trusted.softmax_diagnoses(axis) if name == "softmax" else _trusted.log_softmax_diagnoses(axis)


def check_softmax_cases(vjps_of: Callable, softmax: Callable, log_softmax: Callable, cross_entropy: Callable,
                        softmax_cases: Iterable, ce_cases: Iterable, rng: np.random.Generator, seed: int,
                        scale: float = 1.0) -> int:
    (v_sm,) = registered(vjps_of, softmax, "softmax", 1)
    (v_lsm,) = registered(vjps_of, log_softmax, "log_softmax", 1)
    v_ce = registered(vjps_of, cross_entropy, "cross_entropy", 1)[0]
    count = 0
    for shape, axis in softmax_cases:
        for name, vjp, forward, hint in (("softmax", v_sm, trusted_softmax, SOFTMAX_HINT),
                                         ("log_softmax", v_lsm, trusted_log_softmax, LOG_SOFTMAX_HINT)):
            def f(x, _fw=forward, _axis=axis):
                return _fw(x, axis=_axis)

            diagnoses = _diagnoses_for(name, axis)
            x = scale * normal(rng, shape)
            try:
                run_case(f"{name}(x of shape {shape}, axis={axis}) (check seed {seed})", f,
                         [student_vjp(vjp, f"your VJP of {name}", hint=hint, axis=axis)],
                         x, rng=rng, hint=hint, diagnoses=diagnoses)
            except CheckFailure as exc:
                if "It looks like" not in str(exc) and ignores_axis(vjp, forward, x, axis, rng):
                    raise CheckFailure(f"{exc}\n  Your VJP returns the same result whatever `axis` it "
                                       "is given: sum along the `axis` argument, not a fixed axis.") from None
                raise
            count += 1
    for n, classes in ce_cases:
        labels = labels_for(rng, n, classes)

        def f(logits, _labels=labels):
            return trusted_cross_entropy(logits, _labels)

        run_case(f"cross_entropy(logits of shape {(n, classes)}, labels {labels.tolist()}) "
                 f"(check seed {seed})", f,
                 [student_vjp(v_ce, "your VJP of cross_entropy", labels.copy(), hint=CROSS_ENTROPY_HINT)],
                 scale * normal(rng, (n, classes)), rng=rng, hint=CROSS_ENTROPY_HINT,
                 diagnoses=_trusted.cross_entropy_diagnoses(labels) if _trusted else ())
        count += 1
    return count


def check_softmax_vjps(vjps_of: Callable, softmax: Callable, log_softmax: Callable, cross_entropy: Callable,
                       *, seed: int | None = None) -> None:
    """softmax and log_softmax VJPs along either axis, and the fused cross-entropy VJP."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    count = check_softmax_cases(vjps_of, softmax, log_softmax, cross_entropy, SOFTMAX_CASES,
                                CROSS_ENTROPY_CASES, rng, seed)
    print(f"softmax-family VJPs: all {count} cases passed (seed {seed})")


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


def check_jacobian_case(jacobian_from_vjp: Callable, fun: CountingFunction, x: np.ndarray, seed: int,
                        *, count_calls: bool = False) -> None:
    expected = fun.numerical_jacobian(x)
    m, n = expected.shape
    try:
        got = guarded(jacobian_from_vjp, f"jacobian_from_vjp (for {fun.description})")(fun, x.copy())
    except CheckFailure as exc:
        raise CheckFailure(f"{exc}\n  (check seed {seed})") from None
    got_arr = np.asarray(got) if got is not None else None
    if got_arr is not None and got_arr.dtype.kind in "iub":
        raise CheckFailure(
            f"jacobian_from_vjp returned an array of dtype {got_arr.dtype} for {fun.description}: values "
            f"assigned into an integer array are truncated (check seed {seed}).\n"
            "  Hint: create J as a float array, e.g. np.zeros((m, n)) without an integer dtype.")
    if got_arr is not None and got_arr.ndim != 2 and got_arr.size == m * n:
        raise CheckFailure(
            f"jacobian_from_vjp returned shape {got_arr.shape} for {fun.description}; a Jacobian is a 2-D "
            f"array of shape {(m, n)} (check seed {seed}).\n"
            "  Hint: each pullback result is shaped like x: flatten it (np.ravel) before it becomes a row.")
    if got_arr is not None and got_arr.shape == (n, m) and m != n:
        raise CheckFailure(
            f"jacobian_from_vjp returned shape {(n, m)} for {fun.description}; the Jacobian has one ROW per "
            f"output entry and one column per input entry: shape {(m, n)} (check seed {seed}).\n"
            f"  Hint: the VJP with the unit vector e_i is row i of the Jacobian, not column i.")
    check_close(got, expected, name=f"jacobian_from_vjp for {fun.description} (check seed {seed})",
                rtol=1e-6, atol=1e-8 * max(1.0, float(np.max(np.abs(expected)))),
                hint="row i must be the pullback of the unit vector e_i (reshaped to y's shape), flattened; "
                     "a fresh e_i for every row, with a single 1 in it.")
    if count_calls and fun.pullback_calls != m:
        raise CheckFailure(
            f"jacobian_from_vjp called the pullback {fun.pullback_calls} times for {fun.description}; "
            f"reverse mode needs exactly one VJP per output entry, m = {m} (check seed {seed}).")


def check_jacobian_from_vjp(jacobian_from_vjp: Callable, *, seed: int | None = None) -> None:
    """Jacobians of a non-square vector layer and of a matrix-valued function, against finite differences."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    check_jacobian_case(jacobian_from_vjp, layer_function(rng, 5, 3), normal(rng, (5,)), seed)
    check_jacobian_case(jacobian_from_vjp, matrix_function(rng, 2, 3, 4), normal(rng, (2, 3)), seed)
    print(f"jacobian_from_vjp: both cases passed (seed {seed})")


try:  # the grader's named mistakes for softmax; students' kits lack them (some are one step from the answer)
    _trusted = importlib.import_module("autograder.hidden.lesson05_trusted")
except ImportError:
    _trusted = None
