"""Hidden checks for lesson 05 (instructor only, never shipped to students).

They reuse the visible checks' machinery (``autograder.lesson05``) on more shapes and edge cases: higher
rank, square matrices where a wrong formula still runs, tuple axes, permutations that are not their own
inverse, saturated softmaxes, relu's convention at 0, the number of f and VJP calls behind a Jacobian, and
the negative log-likelihood against the reference value and its gradient softmax - onehot. Every student
call goes through the visible ``guarded``, so the notebook's finite-difference helpers refuse to stand in
for a formula here too.

The binary-op check binds the course's ``reference_impl.vjp.unbroadcast`` in the notebook's namespace for
each call of a binary VJP and restores the student's afterwards, so those VJPs are graded independently of
exercise 2. The lesson's registry has the contract of ``reference_impl.vjp`` (``defvjp(fun, *vjps)``,
``vjps_of(fun)``, each VJP ``vjp(g, ans, *inputs, **params)``), and values a check compares with directly
(relu at 0, cross-entropy at huge logits, the nll's gradient) come from that module's VJPs.

This module also holds the recognisable wrong formulas the checks name ("It looks like ..."): several are
one step from the right VJP, so they are never shipped; the checks here pass this module as ``named``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

import reference_impl.vjp as ref
from autograder import lesson05 as visible
from autograder.checks import check_close, passed
from autograder.lesson05 import Diagnosis, numerical_vjp

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
    "trusted_unbroadcast",
]


def hidden_run(seed: int | None) -> visible.Run:
    """A hidden check's run: students cannot rerun it, so its failures name the seed for the instructor."""
    return visible.Run.start(seed, None)


trusted_unbroadcast = ref.unbroadcast
"""The course's unbroadcast (the VJP of np.broadcast_to), bound in place of the student's for exercise 3."""

NAMED = sys.modules[__name__]
"""This module as the visible checks' ``named`` argument: its *_diagnoses functions name typical mistakes."""


# ---------------------------------------------------------------------------------------------------------
# Recognisable wrong VJPs (named in failure messages; never shipped)
# ---------------------------------------------------------------------------------------------------------


def unary_diagnoses(name: str) -> list[Diagnosis]:
    """Typical wrong elementwise VJPs, each named by the rule it breaks (not by the right formula)."""
    table: dict[str, list[Diagnosis]] = {
        "np.log": [
            ("you used the output ans: log's derivative is a function of its input x.",
             lambda g, ans, x: [g * ans, g / ans]),
            ("you multiplied g by x: the derivative of log x is not x (differentiate log, then multiply).",
             lambda g, ans, x: [g * x]),
        ],
        "np.tanh": [
            ("you used the input x where tanh's derivative needs tanh(x) itself, which ans already holds.",
             lambda g, ans, x: [g * (1.0 - x**2)]),
            ("you squared (1 - ans): recheck which quantity tanh's derivative squares.",
             lambda g, ans, x: [g * (1.0 - ans) ** 2]),
        ],
        "np.exp": [
            ("you multiplied g by x: exp's derivative is not x.", lambda g, ans, x: [g * x]),
        ],
        "relu": [
            ("you applied relu to g: whether gradient flows depends on the sign of x, not of g.",
             lambda g, ans, x: [np.maximum(g, 0.0)]),
        ],
    }
    return table.get(name, [])


def softmax_diagnoses(axis: int) -> list[Diagnosis]:
    """Typical wrong softmax VJPs (ans is the softmax s)."""
    return [
        ("you kept only the diagonal of the Jacobian, g * s * (1 - s). Softmax's Jacobian also has the "
         "off-diagonal terms -s_i s_j, because every output depends on every input along `axis`.",
         lambda g, s, x: [g * s * (1.0 - s)]),
    ]


def log_softmax_diagnoses(axis: int) -> list[Diagnosis]:
    """Typical wrong log-softmax VJPs (ans is the log-softmax; the softmax is exp(ans))."""
    return [
        ("you used ans as the softmax: ans is the LOG-softmax, so the softmax is exp(ans).",
         lambda g, ans, x: [g - ans * np.sum(g, axis=axis, keepdims=True)]),
        ("your second term is the softmax alone: it must be the softmax times the sum of g along `axis`.",
         lambda g, ans, x: [g - np.exp(ans)]),
        ("you wrote the softmax's VJP; log-softmax's Jacobian is I - 1 s^T, so g itself is the first term.",
         lambda g, ans, x: [numerical_vjp(lambda v: ref.softmax(v, axis), x, g)]),
    ]


def cross_entropy_diagnoses(labels: np.ndarray) -> list[Diagnosis]:
    """Typical wrong cross-entropy VJPs for the logits."""
    def probs(z):
        return ref.softmax(z, -1)

    def right(g, z):
        return numerical_vjp(lambda v: ref.cross_entropy(v, labels), z, g)

    return [
        ("you left out the one-hot term: only the entries at the labels are wrong.",
         lambda g, ans, z: [g * probs(z) / len(z)]),
        ("you did not divide by the batch size N: the loss is the MEAN over the batch.",
         lambda g, ans, z: [len(z) * right(g, z)]),
        ("you did not multiply by the upstream gradient g (a scalar here, but not 1 in general).",
         lambda g, ans, z: [right(1.0, z)]),
    ]


# ---------------------------------------------------------------------------------------------------------


def check_unary_vjps(vjps_of: Callable, relu: Callable, *, seed: int | None = None) -> None:
    """Higher-rank and single-element shapes, saturated tanh, and relu'(0) = 0 exactly."""
    run = hidden_run(seed)
    count = visible.judge_unary_cases(vjps_of, relu, [(2, 3, 4), (1,)], run, named=NAMED)
    (vjp_tanh,) = visible.registered(vjps_of, np.tanh, "np.tanh", 1)
    visible.run_case("np.tanh on inputs of size 2 to 4", np.tanh,
                     [visible.student_vjp(vjp_tanh, "your VJP of np.tanh")],
                     3.0 * visible.away_from_zero(run.rng, (6,)), run=run,
                     hint=visible.unary_hint("np.tanh"),
                     diagnoses=unary_diagnoses("np.tanh"))
    (vjp_relu,) = visible.registered(vjps_of, relu, "relu", 1)
    x = np.array([[-1.5, 0.0, 2.0], [0.0, 0.7, -0.3]])
    g = visible.normal(run.rng, x.shape)
    got = visible.guarded(vjp_relu, "your VJP of relu")(g.copy(), np.maximum(x, 0.0), x.copy())
    (relu_vjp,) = ref.vjps_of(ref.relu)
    check_close(got, relu_vjp(g, ref.relu(x), x), rtol=1e-12,
                name=f"your VJP of relu at x = {x.tolist()} (seed {run.seed})",
                hint="this course uses relu'(0) = 0, as PyTorch does: no gradient flows where x is exactly 0 "
                     "(use x > 0, not x >= 0).")
    passed("hidden unary checks", f"{count + 2} cases (seed {run.seed})")


def check_unbroadcast(unbroadcast: Callable, *, seed: int | None = None) -> None:
    """Rank-4 and rank-5 targets (up to four added leading axes), length-1 targets, all-ones shapes and the
    no-op scalar case."""
    run = hidden_run(seed)
    cases = [((2, 1, 4), (5, 2, 3, 4)), ((1,), (3,)), ((1, 1), (2, 3, 4)), ((), ()), ((), (5,)),
             ((3, 1), (3, 1)), ((2, 1, 1), (2, 3, 4)), ((3,), (2, 2, 2, 2, 3))]
    count = visible.judge_unbroadcast_cases(unbroadcast, cases, run)
    passed("hidden unbroadcast checks", f"{count} cases (seed {run.seed})")


def check_binary_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Every binary op on equal shapes and on many broadcasting pairs, with a trusted unbroadcast."""
    run = hidden_run(seed)
    pairs = [visible.SAME_SHAPES, *visible.BROADCAST_PAIRS, ((2, 3, 4), (3, 1)), ((4,), ()),
             ((2, 1, 4), (3, 1)), ((1,), (3, 4)), ((3, 1), (3, 4)), ((2, 3), (2, 3))]
    count = visible.judge_binary_cases(vjps_of, pairs, run, unbroadcast=trusted_unbroadcast)
    passed("hidden binary checks", f"{count} cases with a trusted unbroadcast (seed {run.seed})")


def check_matmul_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Square (non-symmetric), column-vector-shaped and row-vector-shaped products."""
    run = hidden_run(seed)
    shapes = [((2, 6), (6, 6)), ((4, 3), (3, 1)), ((5, 5), (5, 5)), ((1, 1), (1, 3))]
    count = visible.judge_matmul_cases(vjps_of, shapes, run)
    passed("hidden matmul checks", f"{count} cases (seed {run.seed})")


def check_reduction_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Rank 3 with tuple and negative axes, a square input (where a missing expand_dims runs silently)."""
    run = hidden_run(seed)
    cases = [((2, 3, 4), axis, keepdims) for axis in ((0, 2), 1, -2, None) for keepdims in (False, True)]
    cases += [((4, 4), 1, False), ((4, 4), -1, False), ((5,), 0, False), ((5,), None, True)]
    count = visible.judge_reduction_cases(vjps_of, cases, run)
    passed("hidden reduction checks", f"{count} cases (seed {run.seed})")


def check_shape_vjps(vjps_of: Callable, *, seed: int | None = None) -> None:
    """Inferred reshape sizes, rank changes, permutations that are not their own inverse, negative axes."""
    run = hidden_run(seed)
    reshapes = [((2, 3, 4), (4, -1)), ((6,), (1, 2, 3)), ((2, 6), (3, 2, 2)), ((), (1, 1))]
    transposes = [((2, 3, 4), (2, 0, 1)), ((2, 3, 4), None), ((2, 3, 4, 5), (3, 1, 0, 2)), ((4, 4), (1, 0)),
                  ((2, 3, 4), (-2, -1, 0)), ((2, 3, 4, 5), (1, -1, 0, -2))]
    count = visible.judge_shape_cases(vjps_of, reshapes, transposes, run)
    passed("hidden shape checks", f"{count} cases (seed {run.seed})")


def check_softmax_vjps(vjps_of: Callable, softmax: Callable, log_softmax: Callable, cross_entropy: Callable,
                       *, seed: int | None = None) -> None:
    """A middle axis, large logits, a batch of one, and cross-entropy at logits where exp overflows."""
    run = hidden_run(seed)
    count = visible.judge_softmax_cases(vjps_of, softmax, log_softmax, cross_entropy,
                                        [((2, 3, 4), 1), ((3, 3), -1)], [(1, 3), (8, 2)], run,
                                        named=NAMED)
    count += visible.judge_softmax_cases(vjps_of, softmax, log_softmax, cross_entropy, [((3, 4), -1)],
                                         [(4, 3)], run, scale=8.0, named=NAMED)
    v_ce = visible.registered(vjps_of, cross_entropy, "cross_entropy", 1)[0]
    logits = 1000.0 * visible.normal(run.rng, (4, 3))
    labels = visible.labels_for(run.rng, 4, 3)
    g = float(run.rng.uniform(0.5, 2.0))
    ans = np.asarray(ref.cross_entropy(logits, labels))
    got = visible.guarded(v_ce, "your VJP of cross_entropy")(np.asarray(g), ans, logits.copy(), labels.copy())
    expected = ref.vjps_of(ref.cross_entropy)[0](np.asarray(g), ans, logits, labels)
    check_close(got, expected, name=f"your VJP of cross_entropy at logits of size ~1000 (seed {run.seed})",
                rtol=1e-9, atol=1e-12,
                hint="compute softmax with the max subtracted first (the given softmax does), or exp "
                     "overflows.")
    passed("hidden softmax-family checks", f"{count + 1} cases (seed {run.seed})")


def check_jacobian_from_vjp(jacobian_from_vjp: Callable, *, seed: int | None = None) -> None:
    """A square non-symmetric Jacobian, a scalar output (m = 1), a rank-3 input, a tall layer; every case
    also counts the calls of f (once) and of the pullback (once per output entry)."""
    run = hidden_run(seed)
    rng = run.rng
    a = visible.normal(rng, (4, 4))
    square = visible.CountingFunction(lambda x: a @ x, lambda g, y, x: a.T @ g,
                                      "y = A @ x with a square, non-symmetric A (4, 4)")
    c = visible.positive(rng, (6,))
    scalar = visible.CountingFunction(lambda x: np.asarray(np.sum(c * x**2)), lambda g, y, x: 2.0 * g * c * x,
                                      "the scalar y = sum(c * x**2) with x of shape (6,)")
    b = visible.normal(rng, (3, 8))

    def rank3_backward(g: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ((b.T @ g) * (1.0 - np.tanh(x.reshape(-1)) ** 2)).reshape(x.shape)

    rank3 = visible.CountingFunction(lambda x: b @ np.tanh(x.reshape(-1)), rank3_backward,
                                     "y = B @ tanh(x.ravel()) with x of shape (2, 2, 2)")
    cases = [(square, visible.normal(rng, (4,))), (scalar, visible.normal(rng, (6,))),
             (rank3, visible.normal(rng, (2, 2, 2))),
             (visible.layer_function(rng, 3, 7), visible.normal(rng, (3,)))]
    count = visible.judge_jacobian_cases(jacobian_from_vjp, cases, run)
    passed("hidden jacobian_from_vjp checks", f"{count} Jacobians (seed {run.seed})")


def check_nll(nll: Callable, *, seed: int | None = None) -> None:
    """The visible properties on other batch sizes, then the value against the reference and the gradient
    of nll(softmax(z)) against (softmax(z) - onehot) / N by central differences."""
    run = hidden_run(seed)
    count = visible.judge_nll_cases(nll, run, batches=((7, 5), (2, 6), (1, 3)))
    for n, classes in ((6, 4), (1, 2)):
        probs = visible.probabilities(run.rng, n, classes)
        labels = visible.labels_for(run.rng, n, classes)
        got = visible.nll_value(nll, probs, labels, "random probabilities", run)
        check_close(got, -np.mean(np.log(probs[np.arange(n), labels])),
                    name=f"your nll on a batch of {n} with {classes} classes (seed {run.seed})", rtol=1e-9,
                    hint="the mean over the batch of -log probs[n, labels[n]].")
        z = visible.normal(run.rng, (n, classes))
        grad = np.zeros_like(z)
        h = 1e-5
        for idx in np.ndindex(z.shape):
            step = np.zeros_like(z)
            step[idx] = h
            plus, minus = (visible.nll_value(nll, ref.softmax(z + s), labels, "softmax(z)", run)
                           for s in (step, -step))
            grad[idx] = (plus - minus) / (2 * h)
        check_close(grad, ref.vjps_of(ref.cross_entropy)[0](np.asarray(1.0), ref.cross_entropy(z, labels), z,
                                                            labels),
                    name=f"the gradient of your nll(softmax(z)) by central differences (seed {run.seed})",
                    rtol=1e-5, atol=1e-8, hint="nll(softmax(z)) is the cross-entropy of the logits z, so "
                    "its gradient is the cross-entropy's: take -log of the label's probability only, and "
                    "average over the batch.")
        count += 2
    passed("hidden nll checks", f"{count} properties and comparisons (seed {run.seed})")
