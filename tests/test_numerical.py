"""reference_impl.numerical: accuracy of the difference formulas, the step rules, and input handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.numerical import (
    EPS,
    backward_difference,
    central_difference,
    default_step,
    forward_difference,
    numerical_gradient,
    numerical_jacobian,
    relative_error,
)


def test_step_rules() -> None:
    assert default_step(0.0, "forward") == pytest.approx(math.sqrt(EPS))
    assert default_step(0.0, "backward") == pytest.approx(math.sqrt(EPS))
    assert default_step(0.5, "central") == pytest.approx(EPS ** (1 / 3))
    assert default_step(-1e4, "central") == pytest.approx(1e4 * EPS ** (1 / 3))  # scaled by |x| past 1
    with pytest.raises(ValueError, match="scheme"):
        default_step(1.0, "sideways")


@settings(max_examples=60, deadline=None)
@given(st.floats(-20, 20, allow_nan=False))
def test_scalar_differences_reach_their_expected_accuracy(x: float) -> None:
    exact = math.cos(x)
    scale = max(1.0, abs(x))
    # central: O(h^2) truncation + O(eps/h) rounding, both ~eps^(2/3) ~ 4e-11 at the chosen h
    assert abs(central_difference(math.sin, x) - exact) <= 1e-9 * scale
    # one-sided: both error terms ~sqrt(eps) ~ 1.5e-8
    assert abs(forward_difference(math.sin, x) - exact) <= 1e-7 * scale
    assert abs(backward_difference(math.sin, x) - exact) <= 1e-7 * scale


def test_one_sided_differences_have_opposite_first_order_errors() -> None:
    # f = exp: forward overestimates, backward underestimates (error ~ +-h f''/2), central sits between.
    x, h = 0.3, 1e-3
    fwd, bwd, ctr = (d(math.exp, x, h) for d in (forward_difference, backward_difference, central_difference))
    assert bwd < math.exp(x) < fwd
    assert fwd - math.exp(x) == pytest.approx(h / 2 * math.exp(x), rel=1e-2)
    assert abs(ctr - math.exp(x)) < 1e-6 < abs(fwd - math.exp(x))


def test_the_documented_example_from_the_design_note() -> None:
    # f(x1, x2) = log x1 + x1 x2 - sin x2 at (2, 5): central differences in float64 reach ~1e-11.
    def f(x1, x2):
        return np.log(x1) + x1 * x2 - np.sin(x2)

    g1, g2 = numerical_gradient(f, np.array(2.0), np.array(5.0))
    assert g1.shape == () and g2.shape == ()
    assert relative_error(g1, 5.5) < 1e-10
    assert relative_error(g2, 2.0 - math.cos(5.0)) < 1e-10


def test_gradient_of_a_matrix_function_against_the_analytic_gradient() -> None:
    rng = np.random.default_rng(7)
    A = rng.normal(size=(4, 3))
    B = rng.normal(size=(3, 5))
    G = rng.normal(size=(4, 5))

    def f(A, B):
        return float(np.sum(G * np.tanh(A @ B)))

    gA, gB = numerical_gradient(f, A, B)
    upstream = G * (1 - np.tanh(A @ B) ** 2)
    assert gA.shape == A.shape and gB.shape == B.shape
    assert relative_error(gA, upstream @ B.T) < 1e-9
    assert relative_error(gB, A.T @ upstream) < 1e-9


def test_large_inputs_use_a_scaled_step() -> None:
    # At x = 1e8, f = x^2 ~ 1e16 has a rounding error of ~2 per evaluation.  An unscaled step of ~6e-6
    # moves f by only ~2e3, so the quotient is off by ~1e-3; the scaled step (~600) moves it by ~2e11.
    x = np.array([1e8, -3e7])

    def f(v):
        return float(np.sum(v**2))

    (scaled,) = numerical_gradient(f, x)
    (unscaled,) = numerical_gradient(f, x, h=default_step(0.0, "central"))
    assert relative_error(scaled, 2 * x) < 1e-9
    assert relative_error(unscaled, 2 * x) > 1e-6


def test_never_mutates_or_aliases_the_callers_arrays() -> None:
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    before = x.copy()
    seen = []

    def f(v):
        seen.append(v)
        return float(np.sum(np.sin(v)))

    numerical_gradient(f, x)
    numerical_jacobian(lambda v: np.sin(v), x)
    assert np.array_equal(x, before)
    assert all(not np.shares_memory(v, x) for v in seen)


def test_f_cannot_corrupt_later_evaluations_by_writing_into_its_argument() -> None:
    def f(v):
        v[0] = 100.0
        return float(np.sum(v))

    with pytest.raises(ValueError, match="read-only"):
        numerical_gradient(f, np.array([1.0, 2.0]))


def test_integer_and_float32_inputs_are_differentiated_in_float64() -> None:
    (g,) = numerical_gradient(lambda v: float(np.sum(v**3)), np.array([1, 2, 3]))
    assert g.dtype == np.float64
    assert relative_error(g, 3 * np.array([1.0, 4.0, 9.0])) < 1e-9
    x32 = np.array([0.1, 0.7], dtype=np.float32)
    (g,) = numerical_gradient(lambda v: float(np.sum(np.exp(v))), x32)
    assert g.dtype == np.float64
    assert relative_error(g, np.exp(x32.astype(np.float64))) < 1e-9


def test_explicit_step_is_used_as_given() -> None:
    # With h = 0.1 the central difference of x^3 has truncation error exactly h^2 = 0.01.
    (g,) = numerical_gradient(lambda v: float(v[0] ** 3), np.array([0.0]), h=0.1)
    assert g[0] == pytest.approx(0.01, rel=1e-9)
    assert central_difference(lambda t: t**3, 0.0, h=0.1) == pytest.approx(0.01, rel=1e-9)


def test_jacobian_shapes_and_values() -> None:
    rng = np.random.default_rng(3)
    W = rng.normal(size=(3, 4))
    x = rng.normal(size=(4,))
    b = rng.normal(size=(2, 1))
    JW, Jx = numerical_jacobian(lambda W, x: W @ x, W, x)
    assert JW.shape == (3, 12) and Jx.shape == (3, 4)
    assert relative_error(Jx, W) < 1e-9
    g = rng.normal(size=3)
    assert relative_error((g @ JW).reshape(3, 4), np.outer(g, x)) < 1e-9
    (Jb,) = numerical_jacobian(lambda b: np.tanh(b) * 2.0, b)
    assert relative_error(Jb, np.diag(2.0 * (1 - np.tanh(b.ravel()) ** 2))) < 1e-9


def test_relative_error() -> None:
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 0.0], [1.1, 0.0]) == pytest.approx(0.1 / 1.1)
    # scaled by the largest magnitude, so a near-zero entry does not dominate
    assert relative_error([100.0, 1e-12], [100.0, 2e-12]) < 1e-13
    # scale-free: the same relative discrepancy at any magnitude
    assert relative_error([1e-8], [-1e-8]) == relative_error([1e8], [-1e8]) == 2.0
    assert relative_error([np.nan], [1.0]) == math.inf
    assert relative_error([1.0], [np.inf]) == math.inf
    assert relative_error(np.empty(0), np.empty(0)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(np.ones(3), np.ones((3, 1)))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: central_difference(math.sin, float("nan")), ValueError, "finite"),
        (lambda: central_difference(math.sin, float("inf")), ValueError, "finite"),
        (lambda: central_difference(math.sin, "1.0"), TypeError, "real number"),
        (lambda: forward_difference(math.sin, 1.0, h=0.0), ValueError, "positive"),
        (lambda: backward_difference(math.sin, 1.0, h=-1e-3), ValueError, "positive"),
        (lambda: central_difference(math.sin, 1.0, h=float("nan")), ValueError, "positive"),
        (lambda: central_difference(lambda t: np.array([t, t]), 1.0), ValueError, "scalar"),
        (lambda: central_difference(lambda t: "x", 1.0), TypeError, "real number"),
        (lambda: central_difference(lambda t: complex(t, 1), 1.0), TypeError, "real number"),
        (lambda: central_difference(math.log, 0.0), ValueError, "math domain"),
        (lambda: central_difference(lambda t: 1 / t if t > 0 else float("inf"), 0.0), ValueError, "inf"),
        (lambda: numerical_gradient(lambda v: v * 2, np.ones(3)), ValueError, r"shape \(3,\)"),
        (lambda: numerical_gradient(lambda v: 0.0, np.array([1.0, np.nan])), ValueError, r"input 0.*\[1\]"),
        (lambda: numerical_gradient(lambda v: 0.0, np.array([1j])), TypeError, "complex"),
        (lambda: numerical_gradient(lambda v: 0.0, np.array(["a"])), TypeError, "numeric"),
        (lambda: numerical_gradient(lambda: 0.0), TypeError, "at least one"),
        (lambda: numerical_gradient(lambda v: np.nan, np.ones(2)), ValueError, "nan"),
        (lambda: numerical_jacobian(lambda v: np.array(["a"]), np.ones(2)), TypeError, "numeric"),
        (lambda: numerical_jacobian(lambda v: v[v > 1.0], np.array([1.0, 2.0])), ValueError, "size changed"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
