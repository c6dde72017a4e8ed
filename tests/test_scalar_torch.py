"""reference_impl.scalar against PyTorch in float64: every op's forward and gradients, and the graph rules."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reference_impl.scalar import Value, zero_grad  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None)


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def nonzero(lo: float, hi: float) -> st.SearchStrategy[float]:
    return floats(lo, hi) | floats(-hi, -lo)


# The same expression works on a Value and on a torch tensor: both spell the methods alike.
UNARY = {
    "neg": (lambda a: -a, floats(-1e3, 1e3)),
    "exp": (lambda a: a.exp(), floats(-50, 50)),
    "log": (lambda a: a.log(), floats(1e-3, 1e3)),
    "sin": (lambda a: a.sin(), floats(-100, 100)),
    "cos": (lambda a: a.cos(), floats(-100, 100)),
    "tanh": (lambda a: a.tanh(), floats(-1000, 1000)),
    "sigmoid": (lambda a: a.sigmoid(), floats(-1000, 1000)),
    "relu": (lambda a: a.relu(), floats(-10, 10) | st.just(0.0)),
    "square": (lambda a: a**2, floats(-100, 100)),
    "cube": (lambda a: a**3, floats(-20, 20)),
    "reciprocal": (lambda a: a**-1, nonzero(0.05, 50)),
    "sqrt": (lambda a: a**0.5, floats(1e-2, 1e3)),
    "pow_1.7": (lambda a: a**1.7, floats(0.0, 50)),
    "radd": (lambda a: 2.5 + a, floats(-1e3, 1e3)),
    "rsub": (lambda a: 2.5 - a, floats(-1e3, 1e3)),
    "rmul": (lambda a: 2.5 * a, floats(-1e3, 1e3)),
    "rdiv": (lambda a: 2.5 / a, nonzero(0.05, 50)),
    "rpow": (lambda a: 2.5**a, floats(-20, 20)),
    "sub_number": (lambda a: a - 1.5, floats(-1e3, 1e3)),
    "div_number": (lambda a: a / -1.5, floats(-1e3, 1e3)),
}

BINARY = {
    "add": (lambda a, b: a + b, floats(-1e3, 1e3), floats(-1e3, 1e3)),
    "sub": (lambda a, b: a - b, floats(-1e3, 1e3), floats(-1e3, 1e3)),
    "mul": (lambda a, b: a * b, floats(-100, 100), floats(-100, 100)),
    "div": (lambda a, b: a / b, floats(-100, 100), nonzero(0.1, 100)),
    "pow": (lambda a, b: a**b, floats(0.05, 20), floats(-3, 3)),
    "pow_zero_base": (lambda a, b: a**b, st.just(0.0), floats(1.0, 3)),
}


def ours(fn, *xs: float) -> tuple[float, list[float]]:
    leaves = [Value(x) for x in xs]
    out = fn(*leaves)
    out.backward()
    return out.data, [v.grad for v in leaves]


def theirs(fn, *xs: float) -> tuple[float, list[float]]:
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = fn(*leaves)
    out.backward()
    return out.item(), [t.grad.item() for t in leaves]


def assert_same(got: tuple[float, list[float]], expected: tuple[float, list[float]], what: str) -> None:
    assert got[0] == pytest.approx(expected[0], rel=1e-13, abs=1e-300), f"{what}: forward"
    # abs: PyTorch computes tanh' and sigmoid' as 1 - y*y and y*(1 - y), exact only to ~eps in absolute
    # terms where those cancel; the engine's forms keep full relative precision (see test_scalar.py).
    assert got[1] == pytest.approx(expected[1], rel=1e-12, abs=1e-15), f"{what}: gradients"


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_matches_pytorch(name: str) -> None:
    fn, inputs = UNARY[name]

    @SETTINGS
    @given(inputs)
    def check(x: float) -> None:
        assert_same(ours(fn, x), theirs(fn, x), f"{name}({x})")

    check()


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_matches_pytorch(name: str) -> None:
    fn, xs, ys = BINARY[name]

    @SETTINGS
    @given(xs, ys)
    def check(x: float, y: float) -> None:
        assert_same(ours(fn, x, y), theirs(fn, x, y), f"{name}({x}, {y})")

    check()


def test_composite_with_reuse_and_diamonds_matches_pytorch() -> None:
    def f(x, y, z):
        h = (x * y).tanh()
        u = h * h + h.sigmoid() * z  # h reused: a diamond
        v = (z**2 + 1.0).log() * y.sin() - (x / (y * y + 1.0)).exp()
        w = u * v + u  # u reused again
        return (w - x.cos()).relu() + w * 0.5

    for point in [(0.7, -1.3, 2.1), (1.9, 0.4, -0.8), (-0.2, 2.5, 0.3)]:
        assert_same(ours(f, *point), theirs(f, *point), f"composite at {point}")


def test_backward_twice_and_zeroing_follow_pytorch() -> None:
    def f(a, b):
        m = a * b + a.tanh()
        return m * m + b.exp() * a

    a, b = Value(0.37), Value(-1.21)
    out = f(a, b)
    ta = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-1.21, dtype=torch.float64, requires_grad=True)
    tout = f(ta, tb)
    for _ in range(2):
        out.backward()
        tout.backward(retain_graph=True)
        assert [a.grad, b.grad] == pytest.approx([ta.grad.item(), tb.grad.item()], rel=1e-13)
    zero_grad(out)
    ta.grad = None
    tb.grad = None
    out.backward(-0.75)
    tout.backward(torch.tensor(-0.75, dtype=torch.float64))
    assert [a.grad, b.grad] == pytest.approx([ta.grad.item(), tb.grad.item()], rel=1e-13)


def test_relu_at_zero_uses_pytorchs_convention() -> None:
    assert ours(lambda a: a.relu(), 0.0) == theirs(lambda a: a.relu(), 0.0) == (0.0, [0.0])
