"""The autograd Tensor: gradients of every operator and of random programs against finite differences,
and the PyTorch semantics the lessons rely on (accumulation, no_grad, detach, retain_graph, dtypes)."""

from __future__ import annotations

import gc
import itertools
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks import check_gradient
from reference_impl import tensor as T
from reference_impl.tensor import Tensor, no_grad

SEEDS = st.integers(0, 2**32 - 1)
SHAPES = [(), (4,), (3, 4), (1, 4)]


def grads_of(program, *arrays, dtype=np.float64):
    """Run `program` on fresh leaf tensors and return the loss and the gradient of every input."""
    leaves = [Tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    loss = program(*leaves)
    loss.backward()
    return loss, [leaf.grad for leaf in leaves]


def check_program(program, *arrays, seed):
    """Finite differences of the scalar program against the Tensor's backward, for every input."""
    def f(*xs):
        with no_grad():
            return program(*(Tensor(x) for x in xs)).item()

    def grad_f(*xs):  # an input the program ignores gets no gradient (None), i.e. zero
        return tuple(np.zeros_like(x) if g is None else g for x, g in zip(xs, grads_of(program, *xs)[1],
                                                                           strict=True))

    check_gradient(f, grad_f, *arrays, seed=seed)


def weights_like(rng, shape):
    """A random upstream weighting, so the check never sees the all-ones gradient of a plain .sum()."""
    return Tensor(rng.standard_normal(shape))


# ------------------------------------------------------------------------- every operator, broadcast
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a.abs() ** b,
    "max": lambda a, b: T.maximum(a, b), "min": lambda a, b: T.minimum(a, b),
}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", list(itertools.product(SHAPES, repeat=2)), ids=str)
def test_binary_operators_with_broadcasting(op, shapes):
    rng = np.random.default_rng(abs(hash((op, shapes))) % 2**32)
    x = rng.uniform(0.5, 2.0, shapes[0]) * rng.choice([-1, 1], shapes[0])
    y = rng.uniform(0.5, 2.0, shapes[1]) * rng.choice([-1, 1], shapes[1])
    if op in ("max", "min"):
        y = y + 0.25  # x and y never tie: their magnitudes are >= 0.5 apart or differ in sign
    w = weights_like(rng, np.broadcast_shapes(shapes[0], shapes[1]))
    check_program(lambda a, b: (BINARY[op](a, b) * w).sum(), x, y, seed=int(rng.integers(2**31)))


@pytest.mark.parametrize("scalar", [2.5, -3, np.float64(1.5), np.float32(0.75), np.int64(2)])
def test_python_and_numpy_scalars_on_either_side(scalar):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, (3, 4))
    w = weights_like(rng, (3, 4))
    programs = [lambda a: a + scalar, lambda a: scalar + a, lambda a: a - scalar, lambda a: scalar - a,
                lambda a: a * scalar, lambda a: scalar * a, lambda a: a / scalar, lambda a: scalar / a,
                lambda a: a ** scalar, lambda a: abs(float(scalar)) ** a]
    for p in programs:
        check_program(lambda a, p=p: (p(a) * w).sum(), x, seed=1)


UNARY = {
    "neg": lambda a: -a, "exp": lambda a: a.exp(), "log": lambda a: a.abs().log(), "sin": lambda a: a.sin(),
    "cos": lambda a: a.cos(), "tanh": lambda a: a.tanh(), "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(), "abs": lambda a: a.abs(), "softmax": lambda a: a.softmax(axis=-1),
    "log_softmax": lambda a: a.log_softmax(axis=0), "T": lambda a: a.T,
    "transpose": lambda a: a.transpose(1, 0), "reshape": lambda a: a.reshape(2, 6),
    "reshape_tuple": lambda a: a.reshape((6, 2)), "broadcast_to": lambda a: a.broadcast_to((2, 3, 4)),
    "index_int": lambda a: a[1], "index_slice": lambda a: a[1:, ::2],
    "index_repeat": lambda a: a[[0, 0, 2, 0]],
    "index_pairs": lambda a: a[np.array([0, 2, 2]), np.array([1, 1, 3])],
    "index_tensor": lambda a: a[Tensor(np.array([2, 2, 1]))], "index_mask": lambda a: a[a.data > 0],
    "matmul_left": lambda a: a @ Tensor(np.linspace(-1, 1, 20).reshape(4, 5)),
    "matmul_right": lambda a: Tensor(np.linspace(-1, 1, 6).reshape(2, 3)) @ a,
    "matmul_vec": lambda a: a @ Tensor(np.array([0.5, -1.0, 2.0, 0.25])),
    "matmul_self": lambda a: a @ a.T,
    "logsumexp": lambda a: a.logsumexp(axis=1),
    "logsumexp_fn": lambda a: T.logsumexp(a, axis=0, keepdims=True),
    "where": lambda a: T.where(a.data > 0, a, a * 3.0),
    "concatenate": lambda a: T.concatenate([a, a * 2.0, a[:1]], axis=0),
    "stack": lambda a: T.stack([a, a.exp()], axis=1),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_operators(op):
    rng = np.random.default_rng(abs(hash(op)) % 2**32)
    x = rng.uniform(0.3, 2.0, (3, 4)) * rng.choice([-1, 1], (3, 4))
    out_shape = UNARY[op](Tensor(x)).shape
    w = weights_like(rng, out_shape)
    check_program(lambda a: (UNARY[op](a) * w).sum(), x, seed=int(rng.integers(2**31)))


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_axis_keepdims(name, axis, keepdims):
    rng = np.random.default_rng(5)
    x = rng.permutation(24).reshape(2, 3, 4) * 0.1 + rng.uniform(0, 0.01)  # distinct: no ties in max
    out_shape = getattr(Tensor(x), name)(axis=axis, keepdims=keepdims).shape
    w = weights_like(rng, out_shape)
    check_program(lambda a: (getattr(a, name)(axis=axis, keepdims=keepdims) * w).sum(), x, seed=2)


def test_cross_entropy_functional_and_targets_as_tensor():
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 5, 7)
    check_program(lambda a: T.cross_entropy(a, targets), rng.standard_normal((7, 5)), seed=3)
    loss, (g,) = grads_of(lambda a: T.cross_entropy(a, Tensor(targets)), np.zeros((7, 5)))
    assert loss.item() == pytest.approx(np.log(5))
    np.testing.assert_allclose(g, (np.full((7, 5), 0.2) - np.eye(5)[targets]) / 7)


# -------------------------------------------------------------------------------- random programs
def _random_program(rng: np.random.Generator, depth: int):
    """A random expression over two (3, 4) inputs, drawn from the whole operator set.

    No step centres a value exactly (a - 0.5 * mean, not a - mean): a centred value summed over the same
    axis is identically 0, and a program with an identically-zero gradient has nothing to check."""
    unary = [lambda a: a.tanh(), lambda a: a.sigmoid(), lambda a: a * 0.5, lambda a: -a,
             lambda a: (a * a + 1.0).log(), lambda a: a.sin(), lambda a: a.softmax(axis=1),
             lambda a: a - 0.5 * a.mean(axis=0, keepdims=True), lambda a: a.T.reshape(3, 4),
             lambda a: (a * 0.3).exp()]
    binary = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
              lambda a, b: a / (b * b + 1.0), lambda a, b: a * b.sum(axis=0),
              lambda a, b: (a @ b.T) @ Tensor(np.full((3, 4), 0.1))]
    steps = [(int(rng.integers(2)), int(rng.integers(len(unary))), int(rng.integers(len(binary))))
             for _ in range(depth)]
    w, w2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def program(x, y):
        values = [x, y]
        for kind, u, b in steps:
            if kind == 0:
                values.append(unary[u](values[-1]))
            else:
                values.append(binary[b](values[-1], values[-2]))
        # random weights on the last two values: a plain mean could be constant (a centred value has
        # mean 0), and a gradient that is exactly zero leaves nothing but rounding noise to compare
        return (values[-1] * Tensor(w)).sum() + (values[-2] * Tensor(w2)).sum()

    return program


@given(seed=SEEDS, depth=st.integers(1, 8))
@settings(max_examples=25, deadline=None)
def test_random_programs_match_finite_differences(seed, depth):
    rng = np.random.default_rng(seed)
    program = _random_program(rng, depth)
    check_program(program, rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), seed=seed)


# ------------------------------------------------------------------------------------ semantics
def test_gradients_accumulate_until_zeroed_like_pytorch():
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(3.0, requires_grad=True)
    c = a + b
    seen = []
    for i in range(3):
        if i == 2:
            a.zero_grad()
        c.backward()
        seen.append(a.grad.item())
    assert seen == [1.0, 2.0, 1.0]
    assert b.grad.item() == 3.0


def test_shared_subexpressions_and_diamonds():
    a = Tensor(1.5, requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad.item() == 4.0
    x = Tensor(0.7, requires_grad=True)
    y = x
    for _ in range(60):  # 2^60 paths: a backward that recursed per path would never finish
        y = y * 0.5 + y * 0.5
    assert len(list(T.graph_nodes(y))) == 60 * 3
    y.backward()
    assert x.grad.item() == pytest.approx(1.0)


def test_deep_graph_has_no_recursion_limit():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**20_000)


def test_non_scalar_backward_needs_a_gradient():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="scalar output.*shape \\(2, 3\\)"):
        y.backward()
    with pytest.raises(ValueError, match="gradient has shape"):
        y.backward(np.ones(3))
    g = np.arange(6.0).reshape(2, 3)
    g.setflags(write=False)  # the upstream gradient must not be modified
    y.backward(g)
    np.testing.assert_array_equal(x.grad, 2 * g)
    np.testing.assert_array_equal(g, np.arange(6.0).reshape(2, 3))


def test_leaf_gradients_never_alias_the_callers_gradient():
    x = Tensor(np.zeros(3), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    (x + 0.0).backward(g)
    x.backward(g)
    x.grad += 1  # a user modifying .grad in place must not change g
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
    a, b = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    (a + b).backward(g)
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)


def test_backward_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor(1.0) * 2.0).backward()


def test_inputs_without_requires_grad_get_no_gradient():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.full(3, 2.0))
    (a * b).sum().backward()
    assert b.grad is None and not b.requires_grad
    np.testing.assert_array_equal(a.grad, [2.0, 2.0, 2.0])
    c = b * 3.0
    assert not c.requires_grad and c.grad_fn is None and c.is_leaf


def test_non_leaf_tensors_have_no_grad():
    a = Tensor(np.ones(3), requires_grad=True)
    h = a * 2.0
    h.sum().backward()
    assert h.grad is None and not h.is_leaf and a.is_leaf


def test_no_grad_records_nothing_and_restores():
    a = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        b = a * 2.0
        with T.enable_grad():
            c = a * 2.0
    assert not b.requires_grad and b.grad_fn is None
    assert c.requires_grad and T.is_grad_enabled()

    @no_grad()
    def evaluate(t):
        return t * 3.0

    assert not evaluate(a).requires_grad and T.is_grad_enabled()


def test_detach_shares_data_and_stops_gradients():
    a = Tensor(np.ones(3), requires_grad=True)
    d = (a * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    y = (a * d).sum()
    y.backward()
    np.testing.assert_array_equal(a.grad, [2.0, 2.0, 2.0])
    base = a * 1.0
    assert np.shares_memory(base.detach().data, base.data)


def test_retain_graph_and_released_values():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    prod = (a * b).sum()
    prod.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        prod.backward()
    kept = (a * b).sum()
    a.zero_grad()
    kept.backward(retain_graph=True)
    kept.backward()
    np.testing.assert_array_equal(a.grad, 2 * b.data)
    total = (a + b).sum()  # add and sum read only shapes: a second backward needs nothing released
    a.zero_grad()
    total.backward()
    total.backward()
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_backward_frees_saved_activations():
    x = Tensor(np.random.default_rng(0).standard_normal((50, 50)), requires_grad=True)
    h = (x * 2.0).exp()
    saved = weakref.ref(h.grad_fn.ans)
    loss = h.sum()
    del h
    gc.collect()
    assert saved() is not None  # the exp node keeps its output for its VJP...
    loss.backward()
    gc.collect()
    assert saved() is None  # ...until backward has used it


def test_shape_only_ops_keep_no_arrays():
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    m = x * 2.0
    intermediate = weakref.ref(m.data)
    y = m + 1.0  # add's VJPs read only shapes, and multiply's read its inputs, not its output
    s = y.sum()
    del m
    gc.collect()
    assert intermediate() is None
    assert all(not isinstance(a, np.ndarray) for a in s.grad_fn.args + y.grad_fn.args)
    s.backward()
    np.testing.assert_array_equal(x.grad, np.full((100, 100), 2.0))


def test_float32_is_preserved_everywhere():
    rng = np.random.default_rng(0)
    x = Tensor(rng.uniform(0.5, 1.0, (3, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 2)).astype(np.float32), requires_grad=True)
    h = (x * 2 + np.float64(1.5) - 3.0 / x + x ** 2 - np.int64(2) * x + np.arange(4)) @ w
    h = h.tanh().sigmoid().relu() + h.exp().log() + h.softmax() + h.log_softmax() + h.abs()
    out = h.sum(axis=0).mean() + h.max() + h.T.reshape(6)[::2].sum() + T.cross_entropy(h, [0, 1, 1])
    assert out.dtype == np.float32, out.dtype
    out.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_dtype_rules_of_the_constructor():
    assert Tensor([1, 2, 3]).dtype == np.float64
    assert Tensor(3).dtype == np.float64
    assert Tensor(np.arange(3)).dtype == np.int64
    assert Tensor(np.ones(2, np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="real numbers"):
        Tensor(np.array(["a"]))


def test_graph_introspection_like_pytorch():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    c = Tensor(np.ones(3))
    loss = ((a * b + c).tanh()).sum()
    assert loss.grad_fn.name == "SumBackward"
    (tanh_fn, _), = loss.grad_fn.next_functions
    assert tanh_fn.name == "TanhBackward"
    (add_fn, _), = tanh_fn.next_functions
    (mul_fn, _), (none, _) = add_fn.next_functions
    assert add_fn.name == "AddBackward" and mul_fn.name == "MulBackward" and none is None  # lesson 06's names
    (acc_a, _), (acc_b, _) = mul_fn.next_functions
    assert acc_a.name == "AccumulateGrad" and acc_a.variable is a and acc_b.variable is b
    assert acc_a is (a * 2.0).grad_fn.next_functions[0][0]  # one sink per leaf, as in PyTorch
    assert acc_a is a.accumulator and acc_b is b.accumulator  # lesson 06's name for it
    g = np.arange(3.0)
    ga, gb = mul_fn.input_grads(g)  # lesson 06's Node.input_grads: one gradient per input
    np.testing.assert_array_equal(ga, g * b.data)
    np.testing.assert_array_equal(gb, g * a.data)
    assert add_fn.input_grads(g)[1] is None  # the constant c needs none
    assert "grad_fn=<SumBackward>" in repr(loss) and "requires_grad=True" in repr(a)


def test_item_numpy_and_len():
    t = Tensor(np.array([[1.5, 2.0]]))
    assert t.numpy() is t.data and len(t) == 1 and t.shape == (1, 2) and t.ndim == 2 and t.size == 2
    assert Tensor(2.5).item() == 2.5
    assert (np.ones(2) + Tensor(np.ones(2), requires_grad=True)).requires_grad  # ndarray defers to Tensor


def test_new_primitives_join_through_apply_and_bad_vjps_are_named():
    from reference_impl import vjp as V

    def cube(x):
        return x**3

    V.defvjp(cube, lambda g, ans, x: 3 * g * x**2)
    w = Tensor(np.array([1.0, -2.0]))
    check_program(lambda a: (T.apply(cube, a) * w).sum(), np.array([0.5, 1.5]), seed=0)
    assert T.apply(V.sum, Tensor(np.ones((2, 3)), requires_grad=True), axis=0).shape == (3,)

    def bad(x):
        return x * 2

    V.defvjp(bad, lambda g, ans, x: g.sum(axis=0))  # forgot that x was (2, 3)
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match="VJP of bad for argument 0 returned a gradient of shape \\(3,\\)"):
        T.apply(bad, x).sum().backward()
    with pytest.raises(RuntimeError, match="shape \\(3,\\)"):
        T.apply(bad, x * 1.0).sum().backward()


def test_a_vjp_reading_an_unkept_value_gets_a_clear_error(monkeypatch):
    from reference_impl import vjp as V

    monkeypatch.setitem(V._VJPS, V.add, (lambda g, ans, x, y: g * x, lambda g, ans, x, y: g * y))
    a = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="keeps only by shape"):
        (a + a).sum().backward()
