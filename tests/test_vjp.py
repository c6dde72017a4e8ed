"""The VJP table of reference_impl.vjp against float64 finite differences (autograder.checks.check_vjp).

Inputs are drawn inside each op's domain and away from kinks; the conventions AT kinks and ties are
pinned by exact unit tests instead, because finite differences cannot decide them.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks import CheckFailure, check_vjp
from reference_impl import vjp as V

BROADCAST_SHAPES = [(), (4,), (3, 4), (1, 4)]
BROADCAST_PAIRS = list(itertools.product(BROADCAST_SHAPES, repeat=2))
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=12, deadline=None)


def away_from_zero(rng: np.random.Generator, shape, low: float = 0.3, high: float = 2.0) -> np.ndarray:
    """Values with |v| in [low, high] and random signs: inside every domain we use, never at a kink."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng: np.random.Generator, shape) -> np.ndarray:
    """Values whose pairwise gaps are >= 0.05, so max/maximum never sit on a tie."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 + rng.uniform(0, 0.01)).reshape(shape) - n * 0.025


def with_params(fun, **params):
    """The forward and its first VJP with non-array parameters bound, as check_vjp wants them."""
    vjp = V.vjps_of(fun)[0]
    return (functools.partial(fun, **params),
            lambda g, ans, x: vjp(g, ans, x, **params))


# ------------------------------------------------------------------------------ binary, broadcasting
BINARY_DOMAINS = {
    "add": (away_from_zero, away_from_zero),
    "subtract": (away_from_zero, away_from_zero),
    "multiply": (away_from_zero, away_from_zero),
    "divide": (away_from_zero, away_from_zero),
    "power": (lambda r, s: r.uniform(0.5, 2.0, s), away_from_zero),
}


@pytest.mark.parametrize("name", sorted(BINARY_DOMAINS))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_binary_vjps_under_broadcasting(name, shapes, seed):
    rng = np.random.default_rng(seed)
    make_x, make_y = BINARY_DOMAINS[name]
    fun = getattr(V, name)
    check_vjp(fun, V.vjps_of(fun), make_x(rng, shapes[0]), make_y(rng, shapes[1]), seed=seed)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: a random full shape, each side dropping leading dimensions
    and squeezing some of the rest to 1 independently."""
    full = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))

    def side():
        kept = full[draw(st.integers(0, len(full))):]
        return tuple(1 if draw(st.booleans()) else n for n in kept)

    return side(), side()


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "power"])
@given(shapes=broadcast_pair(), seed=SEEDS)
@settings(max_examples=15, deadline=None)
def test_binary_vjps_on_hypothesis_broadcast_shapes(name, shapes, seed):
    rng = np.random.default_rng(seed)
    make_x, make_y = BINARY_DOMAINS[name]
    fun = getattr(V, name)
    check_vjp(fun, V.vjps_of(fun), make_x(rng, shapes[0]), make_y(rng, shapes[1]), seed=seed)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_maximum_minimum_vjps_away_from_ties(name, shapes, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shapes[0])
    y = rng.uniform(-2.0, 2.0, shapes[1])
    while np.min(np.abs(x - y)) < 0.05:  # a tie (or near-tie) under broadcasting: draw y again
        y = rng.uniform(-2.0, 2.0, shapes[1])
    fun = getattr(V, name)
    check_vjp(fun, V.vjps_of(fun), x, y, seed=seed)


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_where_vjps(shapes, seed):
    rng = np.random.default_rng(seed)
    cond = rng.random((3, 4)) < 0.5  # not differentiable: bound here, since the checker wants floats
    _, vjp_x, vjp_y = V.vjps_of(V.where)
    check_vjp(lambda x, y: V.where(cond, x, y),
              (lambda g, ans, x, y: vjp_x(g, ans, cond, x, y),
               lambda g, ans, x, y: vjp_y(g, ans, cond, x, y)),
              away_from_zero(rng, shapes[0]), away_from_zero(rng, shapes[1]), seed=seed)


# --------------------------------------------------------------------------------------- elementwise
UNARY_DOMAINS = {
    "negative": away_from_zero, "exp": away_from_zero, "sin": away_from_zero, "cos": away_from_zero,
    "tanh": away_from_zero, "sigmoid": away_from_zero, "relu": away_from_zero, "abs": away_from_zero,
    "log": lambda r, s: r.uniform(0.2, 3.0, s),
}


@pytest.mark.parametrize("name", sorted(UNARY_DOMAINS))
@given(shape=st.sampled_from(BROADCAST_SHAPES + [(2, 3, 4)]), seed=SEEDS)
@FAST
def test_unary_vjps(name, shape, seed):
    rng = np.random.default_rng(seed)
    fun = getattr(V, name)
    check_vjp(fun, V.vjps_of(fun), UNARY_DOMAINS[name](rng, shape), seed=seed)


# ------------------------------------------------------------------------------------ matrix product
MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                 ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
                 ((2, 3, 4), (2, 4, 5))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_matmul_vjps_1d_2d_batched(shapes, seed):
    rng = np.random.default_rng(seed)
    check_vjp(V.matmul, V.vjps_of(V.matmul), rng.standard_normal(shapes[0]),
              rng.standard_normal(shapes[1]), seed=seed)


@pytest.mark.parametrize("xshape", [(5, 4), (2, 3, 4), (4,)], ids=str)
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_fused_linear_vjps(xshape, seed):
    rng = np.random.default_rng(seed)
    check_vjp(V.linear, V.vjps_of(V.linear), rng.standard_normal(xshape), rng.standard_normal((3, 4)),
              rng.standard_normal(3), seed=seed)


def test_matmul_vjp_catches_a_missing_transpose():
    """A guard that the check is not blind: square, non-symmetric matrices expose g @ y instead of g @ y.T."""
    rng = np.random.default_rng(1)
    wrong = (lambda g, ans, x, y: g @ y, V.vjps_of(V.matmul)[1])
    with pytest.raises(CheckFailure):
        check_vjp(V.matmul, wrong, rng.standard_normal((4, 4)), rng.standard_normal((4, 4)), seed=3)


# ---------------------------------------------------------------------------------------- reductions
AXES = [None, 0, 1, -1, (0, 2), (1, 2), ()]


@pytest.mark.parametrize("name", ["sum", "mean", "max", "logsumexp"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@given(seed=SEEDS)
@settings(max_examples=2, deadline=None)
def test_reduction_vjps_axis_keepdims_sweep(name, axis, keepdims, seed):
    rng = np.random.default_rng(seed)
    x = distinct(rng, (2, 3, 4))
    f, vjp = with_params(getattr(V, name), axis=axis, keepdims=keepdims)
    check_vjp(f, vjp, x, seed=seed)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@given(seed=SEEDS)
@settings(max_examples=4, deadline=None)
def test_softmax_family_vjps(name, axis, seed):
    rng = np.random.default_rng(seed)
    f, vjp = with_params(getattr(V, name), axis=axis)
    check_vjp(f, vjp, 2 * rng.standard_normal((3, 4, 5)), seed=seed)


@given(n=st.integers(1, 6), c=st.integers(2, 5), seed=SEEDS)
@FAST
def test_cross_entropy_vjp(n, c, seed):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c, n)
    vjp = V.vjps_of(V.cross_entropy)[0]
    check_vjp(lambda x: V.cross_entropy(x, targets), lambda g, ans, x: vjp(g, ans, x, targets),
              3 * rng.standard_normal((n, c)), seed=seed)


# ---------------------------------------------------------------------------------------- reshaping
SHAPE_OP_CASES = [
    (V.reshape, (3, 4), ((2, 6),)), (V.reshape, (3, 4), ((12,),)), (V.reshape, (2, 3, 4), ((4, -1),)),
    (V.transpose, (3, 4), ()), (V.transpose, (2, 3, 4), ((2, 0, 1),)),
    (V.transpose, (2, 3, 4), ((-1, 0, 1),)),
    (V.broadcast_to, (4,), ((3, 4),)), (V.broadcast_to, (1, 4), ((2, 3, 4),)),
    (V.broadcast_to, (), ((2, 2),)), (V.broadcast_to, (3, 1), ((3, 5),)),
    (V.getitem, (5, 4), (1,)), (V.getitem, (5, 4), ((slice(1, 4), slice(None, None, 2)),)),
    (V.getitem, (5, 4), ((np.array([0, 3, 3, 1, 0]),),)),
    (V.getitem, (5, 4), ((np.array([0, 0]), np.array([1, 1])),)),
    (V.getitem, (5, 4), ((Ellipsis, None, -1),)),
    (V.getitem, (5, 4), ((np.array([True, False, True, True, False]),),)),
    (V.getitem, (5, 4), ([2, 2, 2],)),
]


@pytest.mark.parametrize("case", SHAPE_OP_CASES, ids=lambda c: f"{c[0].__name__}{c[1]}{c[2]!r}"[:60])
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_shape_op_vjps(case, seed):
    fun, shape, params = case
    rng = np.random.default_rng(seed)
    vjp = V.vjps_of(fun)[0]
    check_vjp(lambda x: fun(x, *params), lambda g, ans, x: vjp(g, ans, x, *params),
              rng.standard_normal(shape), seed=seed)


@pytest.mark.parametrize("fun", [V.concatenate, V.stack], ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [0, 1, -1])
@given(seed=SEEDS)
@settings(max_examples=3, deadline=None)
def test_variadic_vjps(fun, axis, seed):
    rng = np.random.default_rng(seed)
    if fun is V.concatenate:
        sizes = rng.integers(1, 4, 3)
        arrays = [rng.standard_normal(tuple(int(s) if d == axis % 2 else 3 for d in range(2))) for s in sizes]
    else:
        arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    vjps = tuple(functools.partial(v, axis=axis) for v in V.vjps_of(fun, nargs=3))
    check_vjp(lambda *xs: fun(*xs, axis=axis), vjps, *arrays, seed=seed)


# ----------------------------------------------------------------------------- conventions at kinks
def test_relu_and_abs_derivative_at_zero_is_zero():
    x = np.array([-1.0, 0.0, -0.0, 2.0])
    g = np.array([3.0, 5.0, 7.0, 11.0])
    np.testing.assert_array_equal(V.vjps_of(V.relu)[0](g, V.relu(x), x), [0.0, 0.0, 0.0, 11.0])
    np.testing.assert_array_equal(V.vjps_of(V.abs)[0](g, V.abs(x), x), [-3.0, 0.0, 0.0, 11.0])


@pytest.mark.parametrize("fun", [V.maximum, V.minimum], ids=lambda f: f.__name__)
def test_maximum_minimum_split_ties_in_half(fun):
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([2.0, 2.0, 1.0])
    g = np.array([4.0, 6.0, 8.0])
    ans = fun(x, y)
    gx, gy = (v(g, ans, x, y) for v in V.vjps_of(fun))
    win_x = [0.0, 3.0, 8.0] if fun is V.maximum else [4.0, 3.0, 0.0]
    np.testing.assert_array_equal(gx, win_x)
    np.testing.assert_array_equal(gy, g - np.array(win_x))


def test_max_reduction_splits_the_gradient_evenly_among_ties():
    x = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]])
    vjp = V.vjps_of(V.max)[0]
    full = vjp(np.array(6.0), V.max(x), x)
    np.testing.assert_array_equal(full, [[0, 0, 0, 0], [2.0, 2.0, 2.0, 0]])
    rows = vjp(np.array([2.0, 9.0]), V.max(x, axis=1), x, axis=1)
    np.testing.assert_array_equal(rows, [[0, 1.0, 1.0, 0], [3.0, 3.0, 3.0, 0]])
    kept = vjp(np.array([[2.0], [9.0]]), V.max(x, axis=1, keepdims=True), x, axis=1, keepdims=True)
    np.testing.assert_array_equal(kept, rows)


# ----------------------------------------------------------------- no mutation, dtype preservation
def _every_vjp_call(rng: np.random.Generator, dtype):
    """(name, vjp, g, ans, args, params) for one call of every registered VJP on small valid inputs."""
    def arr(shape, positive=False):
        a = rng.uniform(0.5, 2.0, shape) if positive else away_from_zero(rng, shape)
        return a.astype(dtype)

    cases = [(n, (arr((3, 4)), arr((4,))), {}) for n in ["add", "subtract", "multiply", "divide"]]
    cases += [("power", (arr((3, 4), True), arr((4,))), {}), ("maximum", (arr((3, 4)), arr((4,))), {}),
              ("minimum", (arr((3, 4)), arr((4,))), {}),
              ("where", (arr((3, 4)) > 0, arr((3, 4)), arr((4,))), {})]
    cases += [(n, (arr((3, 4), n == "log"),), {}) for n in UNARY_DOMAINS]
    cases += [(n, (arr((3, 4)),), {}) for n in ["softmax", "log_softmax"]]
    cases += [("matmul", (arr((3, 4)), arr((4, 5))), {}), ("matmul", (arr((2, 3, 4)), arr((4,))), {}),
              ("matmul", (arr((3, 4)), arr((5, 4)).T), {}),
              ("linear", (arr((3, 4)), arr((5, 4)), arr((5,))), {})]
    cases += [(n, (arr((3, 4)),), {"axis": 0}) for n in ["sum", "mean", "max", "logsumexp"]]
    cases += [(n, (arr((3, 4)),), {}) for n in ["sum", "mean", "max", "logsumexp"]]
    cases += [("reshape", (arr((3, 4)), (2, 6)), {}), ("transpose", (arr((3, 4)),), {}),
              ("broadcast_to", (arr((4,)), (3, 4)), {}), ("getitem", (arr((3, 4)), ([0, 0, 2],)), {}),
              ("getitem", (arr((3, 4)), (slice(1, None),)), {}),
              ("cross_entropy", (arr((3, 4)), np.array([0, 3, 3])), {})]
    for name, args, params in cases:
        fun = getattr(V, name)
        ans = np.asarray(fun(*args, **params))
        for i, vjp in enumerate(V.vjps_of(fun)):
            if vjp is not None:
                yield f"{name}[{i}]", vjp, rng.standard_normal(ans.shape).astype(dtype), ans, args, params
    for fun in (V.concatenate, V.stack):
        args = (arr((2, 3)), arr((2, 3)))
        ans = fun(*args)
        for i, vjp in enumerate(V.vjps_of(fun, nargs=2)):
            yield f"{fun.__name__}[{i}]", vjp, rng.standard_normal(ans.shape).astype(dtype), ans, args, {}


def test_no_vjp_mutates_its_gradient_or_arguments():
    rng = np.random.default_rng(0)
    for name, vjp, g, ans, args, params in _every_vjp_call(rng, np.float64):
        frozen = [g, ans] + [a for a in args if isinstance(a, np.ndarray)]
        before = [a.copy() for a in frozen]
        for a in frozen:
            a.setflags(write=False)
        vjp(g, ans, *args, **params)  # a write to any of them raises ValueError: read-only
        for a, b in zip(frozen, before, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_vjps_keep_float32():
    rng = np.random.default_rng(0)
    for name, vjp, g, ans, args, params in _every_vjp_call(rng, np.float32):
        out = vjp(g, ans, *args, **params)
        assert np.result_type(out) == np.float32, f"{name} returned {np.result_type(out)} for float32 inputs"


# ------------------------------------------------------------------------------------------ helpers
def test_unbroadcast_sums_added_and_stretched_dimensions():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(V.unbroadcast(g, (3, 4)), g.sum(axis=0))
    np.testing.assert_array_equal(V.unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(V.unbroadcast(g, (1, 4)), g.sum(axis=(0, 1))[None])
    assert V.unbroadcast(g, ()).shape == () and V.unbroadcast(g, ()) == g.sum()
    assert V.unbroadcast(g, (2, 3, 4)) is g
    with pytest.raises(ValueError, match="cannot unbroadcast"):
        V.unbroadcast(g, (2, 4))
    with pytest.raises(ValueError, match="cannot unbroadcast"):
        V.unbroadcast(g, (5, 2, 3, 4))


def test_registry_roundtrip_and_errors():
    def cube(x):
        return x**3

    V.defvjp(cube, lambda g, ans, x: 3 * g * x**2)
    check_vjp(cube, V.vjps_of(cube), np.array([0.5, -1.5]), seed=0)
    assert V.vjps_of(V.where)[0] is None and V.vjps_of(V.cross_entropy)[1] is None
    with pytest.raises(KeyError, match="no VJP registered"):
        V.vjps_of(np.cosh)
    with pytest.raises(TypeError, match="nargs"):
        V.vjps_of(V.concatenate)
    with pytest.raises(TypeError, match="callable"):
        V.defvjp(cube, 3)


@pytest.mark.parametrize("f", [V.exp, V.tanh, V.sigmoid, V.softmax, V.log_softmax, V.log, V.relu,
                               functools.partial(V.sum, axis=0), functools.partial(V.mean, axis=1),
                               functools.partial(V.max, axis=1), functools.partial(V.logsumexp, axis=1),
                               functools.partial(V.reshape, shape=(4, 3)), V.transpose,
                               functools.partial(V.power, y=3.0)],
                         ids=lambda f: getattr(f, "__name__", None) or f.func.__name__)
def test_jacobians_reverse_and_forward_agree_with_finite_differences(f):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.2, 2.0, (3, 4))
    jr, jf = V.jacobian_from_vjp(f, x), V.jacobian_from_jvp(f, x)
    ans = np.asarray(f(x))
    assert jr.shape == jf.shape == (ans.size, x.size)
    h = 1e-6
    numeric = np.empty_like(jr)
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h
        step = e.reshape(x.shape)
        numeric[:, j] = ((np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * h)).ravel()
    np.testing.assert_allclose(jr, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-14)


def test_jacobian_of_an_unregistered_function_is_a_clear_error():
    with pytest.raises(TypeError, match="registered"):
        V.jacobian_from_vjp(lambda x: x * 2, np.ones(3))


# ------------------------------------------------------------------------------- numerical stability
def test_stable_forms_do_not_overflow():
    x = np.array([[1000.0, -1000.0, 0.0], [-800.0, -900.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the right answer
        assert np.all(np.isfinite(V.softmax(x))) and np.all(np.isfinite(V.log_softmax(x)))
        np.testing.assert_allclose(V.logsumexp(x, axis=1), [1000.0, -800.0 + np.log1p(np.exp(-100.0))])
        s = V.sigmoid(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0]))
    np.testing.assert_allclose(s[1], 1 / (1 + np.exp(30.0)), rtol=1e-15)
    np.testing.assert_array_equal(s[[0, 2, 4]], [0.0, 0.5, 1.0])
    loss = V.cross_entropy(x, np.array([1, 2]))
    np.testing.assert_allclose(loss, (2000.0 + 200.0 - np.log1p(np.exp(-100.0) + np.exp(-200.0))) / 2)


def test_cross_entropy_vjp_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(3)
    x, t, g = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0]), np.array(1.7)
    expected = (V.softmax(x, axis=1) - np.eye(3)[t]) / 5 * 1.7
    np.testing.assert_allclose(V.vjps_of(V.cross_entropy)[0](g, V.cross_entropy(x, t), x, t), expected,
                               rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("logits, targets, match", [
    (np.zeros((3,)), np.array([0, 1, 2]), "shape \\(N, C\\)"),
    (np.zeros((3, 2)), np.array([0, 1]), "targets of shape"),
    (np.zeros((3, 2)), np.array([0.0, 1.0, 1.0]), "integer class indices"),
    (np.zeros((3, 2)), np.array([0, 2, 1]), "lie in \\[0, 2\\)"),
    (np.zeros((3, 2)), np.array([0, -1, 1]), "lie in"),
    (np.zeros((0, 2)), np.array([], dtype=int), "empty batch"),
])
def test_cross_entropy_rejects_bad_input_clearly(logits, targets, match):
    with pytest.raises((ValueError, TypeError), match=match):
        V.cross_entropy(logits, targets)
