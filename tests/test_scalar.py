"""reference_impl.scalar: every op's forward and gradient, the graph semantics, and the clear errors."""

from __future__ import annotations

import decimal
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks import check_derivative, check_gradient
from reference_impl.numerical import numerical_gradient
from reference_impl.scalar import Op, Value, topological_order, zero_grad

SETTINGS = settings(max_examples=40, deadline=None)


def floats(lo: float, hi: float, *, away_from: float | None = None) -> st.SearchStrategy[float]:
    s = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if away_from is not None:
        s = s.filter(lambda x: abs(x - away_from) >= 1e-3)
    return s


def grads(fn, *xs: float) -> tuple[float, list[float]]:
    """Forward value and the gradient of fn(*Values) with respect to each input."""
    leaves = [Value(x) for x in xs]
    out = fn(*leaves)
    out.backward()
    return out.data, [v.grad for v in leaves]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# name -> (Value op, float reference, input strategy); the strategies keep inputs inside each op's domain
UNARY = {
    "neg": (lambda a: -a, lambda x: -x, floats(-1e3, 1e3)),
    "exp": (lambda a: a.exp(), math.exp, floats(-50, 50)),
    "log": (lambda a: a.log(), math.log, floats(1e-3, 1e3)),
    "sin": (lambda a: a.sin(), math.sin, floats(-100, 100)),
    "cos": (lambda a: a.cos(), math.cos, floats(-100, 100)),
    "tanh": (lambda a: a.tanh(), math.tanh, floats(-20, 20)),
    "sigmoid": (lambda a: a.sigmoid(), _sigmoid, floats(-30, 30)),
    "relu": (lambda a: a.relu(), lambda x: max(x, 0.0), floats(-10, 10, away_from=0.0)),
    "square": (lambda a: a**2, lambda x: x**2, floats(-100, 100)),
    "cube": (lambda a: a**3, lambda x: x**3, floats(-20, 20)),
    "reciprocal": (lambda a: a**-1, lambda x: 1.0 / x, floats(0.05, 50) | floats(-50, -0.05)),
    "sqrt": (lambda a: a**0.5, math.sqrt, floats(1e-2, 1e3)),
    "pow_1.7": (lambda a: a**1.7, lambda x: x**1.7, floats(1e-2, 50)),
    "radd": (lambda a: 2.5 + a, lambda x: 2.5 + x, floats(-1e3, 1e3)),
    "rsub": (lambda a: 2.5 - a, lambda x: 2.5 - x, floats(-1e3, 1e3)),
    "rmul": (lambda a: 2.5 * a, lambda x: 2.5 * x, floats(-1e3, 1e3)),
    "rdiv": (lambda a: 2.5 / a, lambda x: 2.5 / x, floats(0.05, 50) | floats(-50, -0.05)),
    "rpow": (lambda a: 2.5**a, lambda x: 2.5**x, floats(-20, 20)),
    "add_number": (lambda a: a + 1.5, lambda x: x + 1.5, floats(-1e3, 1e3)),
    "sub_number": (lambda a: a - 1.5, lambda x: x - 1.5, floats(-1e3, 1e3)),
    "mul_number": (lambda a: a * -1.5, lambda x: x * -1.5, floats(-1e3, 1e3)),
    "div_number": (lambda a: a / -1.5, lambda x: x / -1.5, floats(-1e3, 1e3)),
}

BINARY = {
    "add": (lambda a, b: a + b, lambda x, y: x + y, floats(-1e3, 1e3), floats(-1e3, 1e3)),
    "sub": (lambda a, b: a - b, lambda x, y: x - y, floats(-1e3, 1e3), floats(-1e3, 1e3)),
    "mul": (lambda a, b: a * b, lambda x, y: x * y, floats(-100, 100), floats(-100, 100)),
    "div": (lambda a, b: a / b, lambda x, y: x / y, floats(-100, 100), floats(0.1, 100) | floats(-100, -0.1)),
    "pow": (lambda a, b: a**b, lambda x, y: x**y, floats(0.05, 20), floats(-3, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_forward_and_gradient(name: str) -> None:
    op, ref, inputs = UNARY[name]

    @SETTINGS
    @given(inputs)
    def check(x: float) -> None:
        value, _ = grads(op, x)
        assert value == pytest.approx(ref(x), rel=1e-14, abs=1e-300), f"{name}({x}) forward"
        check_derivative(ref, lambda t: grads(op, t)[1][0], x)

    check()


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_forward_and_gradient(name: str) -> None:
    op, ref, xs, ys = BINARY[name]

    @SETTINGS
    @given(xs, ys)
    def check(x: float, y: float) -> None:
        value, _ = grads(op, x, y)
        assert value == pytest.approx(ref(x, y), rel=1e-14, abs=1e-300), f"{name}({x}, {y}) forward"

        def claimed(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return tuple(np.array(g) for g in grads(op, float(a), float(b))[1])

        check_gradient(lambda a, b: ref(float(a), float(b)), claimed, np.array(x), np.array(y))

    check()


def test_gradient_of_a_composite_expression_matches_finite_differences() -> None:
    def f(x, y, z):
        return (
            (x * y).tanh() + (z / (y * y + 1.0)).sigmoid() * x.exp() - (z**2 + 1.0).log() * y.sin()
        ).relu()

    def f_float(x, y, z):
        return max(
            math.tanh(x * y) + _sigmoid(z / (y * y + 1.0)) * math.exp(x) - math.log(z**2 + 1.0) * math.sin(y),
            0.0,
        )

    point = (0.7, -1.3, 2.1)
    value, got = grads(f, *point)
    assert value > 0.0  # away from relu's kink, so finite differences apply
    expected = numerical_gradient(lambda *a: f_float(*map(float, a)), *map(np.array, point))
    np.testing.assert_allclose(got, [float(e) for e in expected], rtol=1e-8)


# --- graph semantics ----------------------------------------------------------------------------------


def test_reuse_of_one_input_adds_the_contributions() -> None:
    a = Value(3.0)
    (a + a).backward()
    assert a.grad == 2.0
    b = Value(-1.5)
    (b * b).backward()
    assert b.grad == -3.0


def test_b_equals_a_plus_a_then_c_equals_b_plus_b() -> None:
    a = Value(1.25)
    b = a + a
    c = b + b
    c.backward()
    assert c.data == 5.0
    assert b.grad == 2.0
    assert a.grad == 4.0


def test_diamond_sums_both_paths() -> None:
    x = Value(0.4)
    u = x * 2.0
    v = x.exp()
    w = u * v  # w = 2 x e^x, dw/dx = 2 e^x (1 + x)
    w.backward()
    assert x.grad == pytest.approx(2.0 * math.exp(0.4) * 1.4, rel=1e-15)
    assert u.grad == pytest.approx(math.exp(0.4), rel=1e-15)
    assert v.grad == pytest.approx(0.8, rel=1e-15)


def test_shared_node_reached_first_through_the_root_comes_before_its_user() -> None:
    # p is an input of the root AND of b.  A sort that marks nodes when it first pushes them can place b
    # after p in the backward sweep, so p's vjp runs before b has sent p its contribution.
    p = Value(0.3)
    q = p.sin()
    b = q * 3.0
    root = q + b  # d root / dp = 4 cos(0.3)
    root.backward()
    assert p.grad == pytest.approx(4.0 * math.cos(0.3), rel=1e-15)
    order = topological_order(root)
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for parent in node.inputs:
            assert position[id(parent)] < position[id(node)]
    assert order[-1] is root


def test_random_dags_with_shared_nodes_match_finite_differences() -> None:
    rng = np.random.default_rng(20261121)
    for _trial in range(30):
        n_leaves = 3
        leaf_values = rng.uniform(0.5, 1.5, size=n_leaves)
        plan = []  # (kind, i, j): node k = op(node i, node j) over earlier nodes, so shared reuse is common
        for k in range(n_leaves, n_leaves + 25):
            plan.append(
                (rng.choice(["add", "mul", "tanh", "sin", "sub"]), rng.integers(0, k), rng.integers(0, k))
            )

        def run(values, plan=plan):
            nodes = list(values)
            for kind, i, j in plan:
                a, b = nodes[i], nodes[j]
                if kind == "add":
                    nodes.append((a + b) * 0.5)
                elif kind == "sub":
                    nodes.append(a - b)
                elif kind == "mul":
                    nodes.append(a * b * 0.5)
                elif kind == "tanh":
                    nodes.append(a.tanh() if isinstance(a, Value) else math.tanh(a))
                else:
                    nodes.append(a.sin() if isinstance(a, Value) else math.sin(a))
            total = nodes[-1]
            for extra in nodes[-6:-1]:
                total = total + extra
            return total

        leaves = [Value(float(v)) for v in leaf_values]
        out = run(leaves)
        out.backward()
        expected = numerical_gradient(lambda *a: run([float(t) for t in a]), *map(np.array, leaf_values))
        got = [leaf.grad for leaf in leaves]
        scale = max(1.0, max(abs(float(e)) for e in expected))
        np.testing.assert_allclose(got, [float(e) for e in expected], rtol=1e-6, atol=1e-7 * scale)


def test_deep_chain_of_100000_nodes_needs_no_recursion() -> None:
    limit = sys.getrecursionlimit()
    x = Value(0.5)
    y = x
    for _ in range(100_000):
        y = y.sin()
    y.backward()
    # The same derivative by the chain rule in plain floats: prod cos(s_k) over the chain's inputs.
    s, expected = 0.5, 1.0
    for _ in range(100_000):
        expected *= math.cos(s)
        s = math.sin(s)
    assert y.data == s
    assert x.grad == pytest.approx(expected, rel=1e-12)
    assert sys.getrecursionlimit() == limit
    assert len(topological_order(y)) == 100_001


def test_backward_twice_gives_exactly_twice_the_leaf_gradients() -> None:
    a, b = Value(0.37), Value(-1.21)
    m = a * b + a.tanh()  # a feeds m twice, so a.grad is a sum of two contributions
    out = m * m + b.exp() * a
    out.backward()
    first = (a.grad, b.grad, m.grad, out.grad)
    out.backward()
    assert a.grad == 2.0 * first[0]  # exact: each call sums from zero, then adds once
    assert b.grad == 2.0 * first[1]
    # Non-leaf grads are this call's d(out)/d(node) only, never accumulated.
    assert (m.grad, out.grad) == (first[2], first[3]) == (first[2], 1.0)


def test_backward_on_a_second_root_adds_into_shared_leaves() -> None:
    x = Value(1.5)
    y1 = x * x
    y2 = x.sin()
    y1.backward()
    y2.backward()
    assert x.grad == pytest.approx(2 * 1.5 + math.cos(1.5), rel=1e-15)


def test_zero_grad_resets_every_node_and_backward_starts_fresh() -> None:
    a, b = Value(0.8), Value(2.0)
    h = a * b
    out = h.tanh() + a
    out.backward()
    first = (a.grad, b.grad)
    out.backward()
    zero_grad(out)
    assert all(node.grad == 0.0 for node in topological_order(out))
    out.backward()
    assert (a.grad, b.grad) == first


def test_zero_grad_accepts_several_roots() -> None:
    a = Value(1.0)
    r1, r2 = a * 3.0, a + 1.0
    r1.backward()
    r2.backward()
    zero_grad([r1, r2])
    assert a.grad == 0.0 and r1.grad == 0.0 and r2.grad == 0.0


def test_backward_seed_scales_every_gradient() -> None:
    a = Value(0.6)
    out = a.exp() * a
    out.backward(-2.5)
    assert a.grad == pytest.approx(-2.5 * math.exp(0.6) * 1.6, rel=1e-15)


def test_backward_on_a_leaf_accumulates_like_pytorch() -> None:
    a = Value(3.0)
    a.backward()
    a.backward()
    assert a.grad == 2.0


def test_each_local_backward_runs_exactly_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"mul": 0, "add": 0}

    def counted(kind: str, vjp):
        def wrapper(*args):
            calls[kind] += 1
            return vjp(*args)

        return wrapper

    monkeypatch.setattr(Value._mul, "vjps", tuple(counted("mul", v) for v in Value._mul.vjps))
    monkeypatch.setattr(Value._add, "vjps", tuple(counted("add", v) for v in Value._add.vjps))
    x = Value(1.0001)
    y = x
    for _ in range(40):  # each level uses the previous one three times: 3**40 paths from x to the root
        y = y * y + y
    y.backward()
    assert calls == {"mul": 80, "add": 80}  # 40 nodes of each kind, two inputs each, once per call
    y.backward()
    assert calls == {"mul": 160, "add": 160}


# --- conventions, stability, edge cases ------------------------------------------------------------------


def test_relu_derivative_at_zero_is_zero() -> None:
    for x in (0.0, -0.0):
        a = Value(x)
        out = a.relu()
        out.backward()
        assert out.data == 0.0 and a.grad == 0.0
    a = Value(1e-300)
    a.relu().backward()
    assert a.grad == 1.0


@pytest.mark.parametrize("x", [1000.0, -1000.0, 800.0, -800.0])
def test_tanh_and_sigmoid_are_stable_at_large_inputs(x: float) -> None:
    a = Value(x)
    t = a.tanh()
    t.backward()
    assert t.data == math.copysign(1.0, x) and a.grad == 0.0
    b = Value(x)
    s = b.sigmoid()
    s.backward()
    assert s.data == (1.0 if x > 0 else pytest.approx(0.0, abs=1e-300))
    assert math.isfinite(s.data) and b.grad == pytest.approx(0.0, abs=1e-300)


def _exact_slopes(x: float) -> tuple[float, float]:
    """tanh'(x) and sigmoid'(x) to 50 significant digits (decimal), rounded to float at the end."""
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        e = (-abs(decimal.Decimal(x))).exp()
        sigmoid_slope = e / (1 + e) ** 2
        e2 = e * e
        tanh_slope = 4 * e2 / (1 + e2) ** 2
    return float(tanh_slope), float(sigmoid_slope)


@SETTINGS
@given(floats(-700, 700))
def test_tanh_and_sigmoid_slopes_keep_full_relative_precision(x: float) -> None:
    # 1 - tanh(x)**2 and s(1 - s) cancel catastrophically for large |x| (tanh'(7) loses ~5 digits);
    # the engine's forms do not.
    tanh_slope, sigmoid_slope = _exact_slopes(x)
    assert grads(lambda a: a.tanh(), x)[1][0] == pytest.approx(tanh_slope, rel=1e-14, abs=1e-300)
    assert grads(lambda a: a.sigmoid(), x)[1][0] == pytest.approx(sigmoid_slope, rel=1e-14, abs=1e-300)


def test_power_edge_cases() -> None:
    a = Value(0.0)
    (a**0).backward()
    assert a.grad == 0.0
    a = Value(0.0)
    (a**2).backward()
    assert a.grad == 0.0
    a, b = Value(0.0), Value(2.0)
    (a**b).backward()  # 0**b is constant 0 for b > 0: no gradient through the exponent
    assert (a.grad, b.grad) == (0.0, 0.0)
    a = Value(-2.0)
    out = a**3
    out.backward()
    assert (out.data, a.grad) == (-8.0, 12.0)


def test_numpy_scalars_combine_and_arrays_are_refused() -> None:
    a = Value(2.0)
    out = np.float64(3.0) * a
    assert isinstance(out, Value) and out.data == 6.0
    with pytest.raises(TypeError):
        np.ones(3) * a
    with pytest.raises(TypeError):
        a * np.ones(3)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Value("3"), TypeError, "real number"),
        (lambda: Value(2 + 1j), TypeError, "real number"),
        (lambda: Value(True), TypeError, "real number"),
        (lambda: Value(Value(1.0)), TypeError, "already|directly"),
        (lambda: Value(float("nan")), ValueError, "finite"),
        (lambda: Value(float("inf")), ValueError, "finite"),
        (lambda: Value(0.0).log(), ValueError, "positive"),
        (lambda: Value(-1.0).log(), ValueError, "positive"),
        (lambda: Value(-2.0) ** Value(2.0), ValueError, "exponent"),
        (lambda: (-2.0) ** Value(3.0), ValueError, "exponent"),
        (lambda: Value(-8.0) ** (1 / 3), ValueError, "not a real number"),
        (lambda: Value(0.0) ** -1, ZeroDivisionError, "negative power"),
        (lambda: Value(1.0) / 0.0, ZeroDivisionError, "by zero"),
        (lambda: 1.0 / Value(0.0), ZeroDivisionError, "by zero"),
        (lambda: Value(1000.0).exp(), OverflowError, "overflows"),
        (lambda: Value(10.0) ** 400, OverflowError, "overflows"),
        (lambda: Value(1.0) + "a", TypeError, "unsupported operand"),
        (lambda: Value(1.0).backward(float("nan")), ValueError, "finite"),
        (lambda: topological_order(1.0), TypeError, "expected a Value"),
    ],
)
def test_bad_input_raises_a_clear_error(make, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_infinite_derivative_at_zero_is_reported_not_returned() -> None:
    a = Value(0.0)
    out = a**0.5
    assert out.data == 0.0
    with pytest.raises(ZeroDivisionError, match="infinite"):
        out.backward()


def test_value_is_small_and_has_no_instance_dict() -> None:
    a = Value(1.0)
    assert not hasattr(a, "__dict__")
    assert sys.getsizeof(a) <= 80


def test_graph_introspection() -> None:
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c.tanh()
    assert a.is_leaf and not c.is_leaf
    assert c.inputs == (a, b) and d.inputs == (c,) and a.inputs == ()
    assert (a.op, c.op, d.op) == ("", "*", "tanh")
    assert isinstance(Value._mul, Op) and len(Value._mul.vjps) == 2
    assert repr(a) == "Value(data=1.0, grad=0.0)"


def test_power_is_the_lesson_03_name_for_a_constant_exponent() -> None:
    a = Value(1.5)
    out = a.power(3.0)
    out.backward()
    assert out.data == 1.5**3 and a.grad == 3 * 1.5**2
    with pytest.raises(TypeError):
        a.power(Value(2.0))
