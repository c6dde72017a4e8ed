"""reference_impl.nn, .optim and .data without PyTorch: discovery, initialisation, layer gradients,
optimiser update rules worked out independently in scalar Python, and the data helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autograder.checks import check_gradient
from reference_impl import data, nn, optim
from reference_impl.tensor import Tensor, no_grad


# ------------------------------------------------------------------------------------------ Module
class Block(nn.Module):
    def __init__(self):
        self.first = nn.Linear(3, 4, seed=0)
        self.layers = [nn.Linear(4, 4, seed=1), nn.Tanh()]
        self.heads = {"a": nn.Linear(4, 2, seed=2), "b": nn.Linear(4, 2, bias=False, seed=3)}
        self.scale = nn.Parameter(np.array(2.0))
        self.shared = self.first  # the same module twice: its parameters count once
        self.not_a_param = Tensor(np.ones(3), requires_grad=True)

    def forward(self, x):
        h = self.layers[1](self.layers[0](self.first(x)))
        return (self.heads["a"](h) + self.heads["b"](h)) * self.scale


def test_parameters_are_found_through_attributes_lists_dicts_and_nesting():
    names = [n for n, _ in Block().named_parameters()]
    # a module's own parameters first, then its submodules' in attribute order (PyTorch's order too)
    assert names == ["scale", "first.weight", "first.bias", "layers.0.weight", "layers.0.bias",
                     "heads.a.weight", "heads.a.bias", "heads.b.weight"]
    outer = nn.Sequential(Block(), nn.ReLU())
    assert [n for n, _ in outer.named_parameters()][:2] == ["0.scale", "0.first.weight"]
    assert len(list(outer.parameters())) == 8


def test_zero_grad_train_eval_and_call():
    block = Block()
    out = block(np.ones((5, 3))).sum()
    out.backward()
    assert all(p.grad is not None for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())
    assert block.eval() is block and not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())
    with pytest.raises(NotImplementedError, match="must define forward"):
        nn.Module()(1)


def test_parameter_copies_and_requires_grad():
    source = np.ones(3)
    p = nn.Parameter(source)
    p.data -= 1.0
    assert source[0] == 1.0 and p.requires_grad and p.is_leaf
    assert nn.Parameter([1, 2]).dtype == np.float64
    assert nn.Parameter(np.ones(2, np.float32)).dtype == np.float32


# ------------------------------------------------------------------------------------------ Linear
def test_linear_initialisation_matches_pytorch_rule_and_is_reproducible():
    layer = nn.Linear(50, 30, seed=4)
    assert layer.weight.shape == (30, 50) and layer.bias.shape == (30,)
    bound = 1 / math.sqrt(50)
    for p in (layer.weight.data, layer.bias.data):
        assert np.all(np.abs(p) <= bound)
    # U(-b, b) has standard deviation b / sqrt(3): 1500 draws pin it to a few percent
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.08)
    np.testing.assert_array_equal(nn.Linear(50, 30, seed=4).weight.data, layer.weight.data)
    assert not np.array_equal(nn.Linear(50, 30, seed=5).weight.data, layer.weight.data)
    rng = np.random.default_rng(9)
    a, b = nn.Linear(4, 4, rng=rng), nn.Linear(4, 4, rng=rng)
    assert not np.array_equal(a.weight.data, b.weight.data)
    assert nn.Linear(4, 2, dtype=np.float32, seed=0).weight.dtype == np.float32
    with pytest.raises(ValueError, match="either rng or seed"):
        nn.Linear(2, 2, rng=rng, seed=1)


def test_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    x, w_up = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))

    def loss(W, b, X):
        layer = nn.Linear(4, 3, seed=0)
        layer.weight.data, layer.bias.data = W, b
        return (layer(Tensor(X, requires_grad=True)) * Tensor(w_up)).sum(), layer

    def f(W, b, X):
        with no_grad():
            return loss(W, b, X)[0].item()

    def grad_f(W, b, X):
        layer = nn.Linear(4, 3, seed=0)
        layer.weight.data, layer.bias.data = W.copy(), b.copy()
        xt = Tensor(X, requires_grad=True)
        (layer(xt) * Tensor(w_up)).sum().backward()
        return layer.weight.grad, layer.bias.grad, xt.grad

    check_gradient(f, grad_f, rng.standard_normal((3, 4)), rng.standard_normal(3), x, seed=1)


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="last dimension must be 4"):
        nn.Linear(4, 2, seed=0)(np.ones((3, 5)))


# ---------------------------------------------------------------------------- activations, dropout
def test_activation_modules():
    x = Tensor(np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(nn.ReLU()(x).data, [0.0, 0.0, 3.0])
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh(x.data))
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x.data)))


def test_dropout_scales_in_training_and_passes_through_in_eval():
    drop = nn.Dropout(0.25, seed=0)
    x = Tensor(np.ones((200, 200)), requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        nn.Dropout(1.5)


# ---------------------------------------------------------------------------------------- losses
def test_losses():
    pred = Tensor(np.array([[1.0], [2.0]]), requires_grad=True)
    loss = nn.MSELoss()(pred, np.array([[0.0], [4.0]]))
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    np.testing.assert_allclose(pred.grad, [[1.0], [-2.0]])
    with pytest.raises(ValueError, match="shape"):
        nn.MSELoss()(pred, np.array([0.0, 4.0]))  # (2, 1) vs (2,) would broadcast to (2, 2)
    logits = Tensor(np.log(np.array([[0.2, 0.8], [0.5, 0.5]])))
    expected = -(np.log(0.8) + np.log(0.5)) / 2
    assert nn.CrossEntropyLoss()(logits, np.array([1, 0])).item() == pytest.approx(expected)


# --------------------------------------------------------------------------- optimisers, by hand
def _scalar_run(opt_factory, grads):
    """Apply `grads` (one per step) to a single scalar parameter starting at 1.0; return its path."""
    p = nn.Parameter(np.array(1.0))
    opt = opt_factory([p])
    path = []
    for g in grads:
        p.grad = np.array(g)
        opt.step()
        path.append(float(p.data))
    return path


GRADS = [0.5, -1.25, 2.0, 0.75]


@pytest.mark.parametrize("momentum, dampening, nesterov, wd", [
    (0.0, 0.0, False, 0.0), (0.9, 0.0, False, 0.0), (0.9, 0.3, False, 0.0), (0.8, 0.0, True, 0.0),
    (0.9, 0.0, False, 0.1), (0.0, 0.0, False, 0.05)])
def test_sgd_follows_the_documented_update(momentum, dampening, nesterov, wd):
    lr = 0.1
    p, buf, expected = 1.0, None, []
    for g in GRADS:
        g = g + wd * p
        if momentum:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        expected.append(p)
    got = _scalar_run(lambda ps: optim.SGD(ps, lr=lr, momentum=momentum, dampening=dampening,
                                           weight_decay=wd, nesterov=nesterov), GRADS)
    np.testing.assert_allclose(got, expected, rtol=1e-15)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_follows_the_documented_update(wd):
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    p, m, v, expected = 1.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        expected.append(p)
    got = _scalar_run(lambda ps: optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), GRADS)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_optimisers_skip_missing_gradients_zero_grad_and_keep_float32():
    a = nn.Parameter(np.ones(2, np.float32))
    b = nn.Parameter(np.ones(2, np.float32))
    for opt in (optim.SGD([a, b], lr=0.5, momentum=0.9, weight_decay=0.01), optim.Adam([a, b], lr=0.5)):
        a.grad, b.grad = np.full(2, 0.5, np.float32), None
        before = b.data.copy()
        opt.step()
        np.testing.assert_array_equal(b.data, before)
        assert a.dtype == np.float32
        opt.zero_grad()
        assert a.grad is None


def test_optimiser_arguments_are_validated():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="more than once"):
        optim.Adam([p, p])
    with pytest.raises(TypeError, match="requires grad"):
        optim.SGD([Tensor(np.ones(2))], lr=0.1)


# ------------------------------------------------------------------------------------------- data
def test_load_digits_split_is_seeded_scaled_and_complete():
    X_train, X_test, y_train, y_test = data.load_digits()
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert X_train.dtype == np.float64 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))
    again = data.load_digits()
    np.testing.assert_array_equal(again[1], X_test)
    assert not np.array_equal(data.load_digits(seed=1)[1], X_test)
    assert data.load_digits(scale=False)[0].max() == 16.0


def test_train_test_split_partitions_the_samples():
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.25, seed=3)
    assert len(y_test) == 3 and len(y_train) == 7  # ceil(2.5), as scikit-learn rounds
    assert sorted(np.concatenate([y_train, y_test])) == list(range(10))
    np.testing.assert_array_equal(X_test[:, 0] // 2, y_test)
    assert len(data.train_test_split(X, y, test_size=4)[1]) == 4
    with pytest.raises(ValueError, match="test_size"):
        data.train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="samples"):
        data.train_test_split(X, y[:5])


def test_make_moons():
    X, y = data.make_moons(n_samples=100, noise=0.05, seed=1)
    assert X.shape == (100, 2) and set(np.unique(y)) == {0, 1} and X.dtype == np.float64
    np.testing.assert_array_equal(data.make_moons(n_samples=100, noise=0.05, seed=1)[0], X)


def test_minibatches_cover_every_sample_once_and_reshuffle():
    X, y = np.arange(23).reshape(23, 1), np.arange(23)
    rng = np.random.default_rng(0)
    epoch1 = list(data.minibatches(X, y, 5, rng))
    epoch2 = list(data.minibatches(X, y, 5, rng))
    assert [len(b[1]) for b in epoch1] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate([b[1] for b in epoch1])) == list(range(23))
    assert all(np.array_equal(xb[:, 0], yb) for xb, yb in epoch1)
    assert not np.array_equal(np.concatenate([b[1] for b in epoch1]), np.concatenate([b[1] for b in epoch2]))
    ordered = list(data.minibatches(X, y, 10, None, shuffle=False))
    np.testing.assert_array_equal(ordered[0][1], np.arange(10))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.minibatches(X, y, 0, rng))
