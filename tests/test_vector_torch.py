"""Cross-checks against PyTorch (CPU, float64) when it is installed: forward values and every input
gradient of every Tensor operation, the kink and tie conventions, and whole training trajectories."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")
F = torch.nn.functional

from reference_impl import data, nn, optim  # noqa: E402
from reference_impl import tensor as T  # noqa: E402
from reference_impl.tensor import Tensor  # noqa: E402

RNG = np.random.default_rng(20261121)


def away(shape, low=0.3, high=2.0):
    return RNG.uniform(low, high, shape) * RNG.choice([-1.0, 1.0], shape)


def both(ours, theirs, *arrays, rtol=1e-12):
    """Run the same op in both libraries on the same float64 inputs with the same random upstream
    gradient; compare outputs and every input gradient."""
    mine = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref_out = ours(*mine), theirs(*ref)
    assert out.shape == tuple(ref_out.shape), (out.shape, ref_out.shape)
    np.testing.assert_allclose(out.data, ref_out.detach().numpy(), rtol=rtol, atol=1e-14)
    g = RNG.standard_normal(out.shape)
    out.backward(g)
    ref_out.backward(torch.tensor(g))
    for i, (m, r) in enumerate(zip(mine, ref, strict=True)):
        expected = np.zeros(m.shape) if r.grad is None else r.grad.numpy()
        got = np.zeros(m.shape) if m.grad is None else m.grad
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-13, err_msg=f"gradient of input {i}")


SHAPES = [(), (4,), (3, 4), (1, 4)]
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a.abs() ** b, lambda a, b: a.abs() ** b),
    "maximum": (T.maximum, torch.maximum),
    "minimum": (T.minimum, torch.minimum),
}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("sx", SHAPES, ids=str)
@pytest.mark.parametrize("sy", SHAPES, ids=str)
def test_binary_ops_match_pytorch(op, sx, sy):
    both(*BINARY[op], away(sx), away(sy))


def test_scalar_operands_match_pytorch():
    x = away((3, 4))
    for ours, theirs in [
        (lambda a: 2.5 - a, lambda a: 2.5 - a),
        (lambda a: 3.0 / a, lambda a: 3.0 / a),
        (lambda a: 2.0**a, lambda a: 2.0**a),
        (lambda a: a**3, lambda a: a**3),
    ]:
        both(ours, theirs, x)


UNARY = {
    "neg": (lambda a: -a, lambda a: -a),
    "exp": (lambda a: a.exp(), torch.exp),
    "log": (lambda a: a.abs().log(), lambda a: a.abs().log()),
    "sin": (lambda a: a.sin(), torch.sin),
    "cos": (lambda a: a.cos(), torch.cos),
    "tanh": (lambda a: a.tanh(), torch.tanh),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid),
    "relu": (lambda a: a.relu(), torch.relu),
    "abs": (lambda a: a.abs(), torch.abs),
    "softmax0": (lambda a: a.softmax(axis=0), lambda a: torch.softmax(a, 0)),
    "softmax1": (lambda a: a.softmax(axis=-1), lambda a: torch.softmax(a, -1)),
    "log_softmax0": (lambda a: a.log_softmax(axis=0), lambda a: torch.log_softmax(a, 0)),
    "log_softmax1": (lambda a: a.log_softmax(axis=1), lambda a: torch.log_softmax(a, 1)),
    "logsumexp": (lambda a: a.logsumexp(axis=1), lambda a: torch.logsumexp(a, 1)),
    "logsumexp_keep": (lambda a: a.logsumexp(axis=0, keepdims=True), lambda a: torch.logsumexp(a, 0, True)),
    "T": (lambda a: a.T, lambda a: a.T),
    "transpose": (lambda a: a.transpose(1, 0), lambda a: a.permute(1, 0)),
    "reshape": (lambda a: a.reshape(2, 6), lambda a: a.reshape(2, 6)),
    "broadcast_to": (lambda a: a.broadcast_to((2, 3, 4)), lambda a: torch.broadcast_to(a, (2, 3, 4))),
    "index_int": (lambda a: a[1], lambda a: a[1]),
    "index_slice": (lambda a: a[1:, ::2], lambda a: a[1:, ::2]),
    "index_repeat": (lambda a: a[[0, 2, 0, 0]], lambda a: a[[0, 2, 0, 0]]),
    "index_pairs": (
        lambda a: a[np.array([0, 2, 2]), np.array([1, 1, 3])],
        lambda a: a[torch.tensor([0, 2, 2]), torch.tensor([1, 1, 3])],
    ),
    "index_mask": (lambda a: a[a.data > 0], lambda a: a[a > 0]),
    "where": (lambda a: T.where(a.data > 0, a, a * 3.0), lambda a: torch.where(a > 0, a, a * 3.0)),
    "cat": (lambda a: T.concatenate([a, a.exp()], axis=1), lambda a: torch.cat([a, a.exp()], 1)),
    "stack": (lambda a: T.stack([a, a * a], axis=0), lambda a: torch.stack([a, a * a], 0)),
    "matmul_self": (lambda a: a @ a.T, lambda a: a @ a.T),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_ops_match_pytorch(op):
    both(*UNARY[op], away((3, 4)))


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_match_pytorch(name, axis, keepdims):
    x = RNG.permutation(24).reshape(2, 3, 4) * 0.1

    def theirs(a):
        if name == "max":
            return a.amax(dim=() if axis is None else axis, keepdim=keepdims)
        if axis is None:
            out = getattr(a, name)()
            return out.reshape((1, 1, 1)) if keepdims else out
        return getattr(a, name)(dim=axis, keepdim=keepdims)

    both(lambda a: getattr(a, name)(axis=axis, keepdims=keepdims), theirs, x)


@pytest.mark.parametrize(
    "xs, ys",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((3, 4), (2, 4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (2, 4, 3)),
        ((2, 3, 4), (4,)),
    ],
    ids=str,
)
def test_matmul_matches_pytorch(xs, ys):
    both(lambda a, b: a @ b, lambda a, b: a @ b, RNG.standard_normal(xs), RNG.standard_normal(ys))


@pytest.mark.parametrize("xs", [(5, 4), (2, 5, 4), (4,)], ids=str)
def test_fused_linear_and_transposed_matmul_match_pytorch(xs):
    x, w, b = RNG.standard_normal(xs), RNG.standard_normal((3, 4)), RNG.standard_normal(3)
    both(T.linear, F.linear, x, w, b)
    both(lambda a, m: a @ m.T, lambda a, m: a @ m.T, x, w)  # the layout-aware VJP path


def test_cross_entropy_and_mse_match_pytorch():
    targets = RNG.integers(0, 6, 9)
    both(
        lambda a: T.cross_entropy(a, targets),
        lambda a: F.cross_entropy(a, torch.tensor(targets)),
        3 * RNG.standard_normal((9, 6)),
    )
    target = RNG.standard_normal((5, 2))
    both(
        lambda a: nn.MSELoss()(a, target),
        lambda a: F.mse_loss(a, torch.tensor(target)),
        RNG.standard_normal((5, 2)),
    )


def test_conventions_at_kinks_and_ties_match_pytorch():
    x = np.array([-1.0, 0.0, 2.0, 0.0])
    both(lambda a: a.relu(), torch.relu, x)
    both(lambda a: a.abs(), torch.abs, x)
    y = np.array([-1.0, 0.0, 1.0, 3.0])
    both(T.maximum, torch.maximum, x, y)
    both(T.minimum, torch.minimum, x, y)
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    both(lambda a: a.max(), lambda a: a.max(), ties)  # full reduction: PyTorch splits ties evenly
    both(lambda a: a.max(axis=1), lambda a: a.amax(dim=1), ties)


def test_linear_initialisation_has_pytorch_distribution():
    torch.manual_seed(0)
    theirs = torch.nn.Linear(200, 100)
    ours = nn.Linear(200, 100, seed=0)
    bound = 1 / np.sqrt(200)
    pairs = [
        (ours.weight.data, theirs.weight.detach().numpy()),
        (ours.bias.data, theirs.bias.detach().numpy()),
    ]
    for mine, ref in pairs:
        assert np.abs(ref).max() <= bound and np.abs(mine).max() <= bound
        assert abs(np.abs(mine).max() - np.abs(ref).max()) < 0.02 * bound + 5 * bound / mine.size
    assert abs(ours.weight.data.std() - theirs.weight.detach().numpy().std()) < 0.03 * bound


# ------------------------------------------------------------------------------ training trajectories
def _twin_networks():
    ours = nn.Sequential(
        nn.Linear(64, 32, seed=1), nn.ReLU(), nn.Linear(32, 16, seed=2), nn.Tanh(), nn.Linear(16, 10, seed=3)
    )
    tnn = torch.nn
    theirs = tnn.Sequential(
        tnn.Linear(64, 32), tnn.ReLU(), tnn.Linear(32, 16), tnn.Tanh(), tnn.Linear(16, 10)
    ).double()
    with torch.no_grad():
        for (name, p), (ref_name, r) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
            assert name == ref_name
            r.copy_(torch.tensor(p.data))
    return ours, theirs


@pytest.mark.parametrize(
    "make",
    [
        (
            "sgd+momentum",
            lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        ),
        (
            "sgd+nesterov+wd",
            lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
        ),
        (
            "sgd+dampening",
            lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.5),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.5),
        ),
        ("adam", lambda ps: optim.Adam(ps, lr=1e-2), lambda ps: torch.optim.Adam(ps, lr=1e-2)),
        (
            "adam+wd+betas",
            lambda ps: optim.Adam(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
            lambda ps: torch.optim.Adam(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
        ),
    ],
    ids=lambda m: m[0],
)
def test_twenty_step_training_trajectory_matches_pytorch(make):
    _, make_ours, make_theirs = make
    X_train, _, y_train, _ = data.load_digits(seed=0)
    ours, theirs = _twin_networks()
    opt, ref_opt = make_ours(list(ours.parameters())), make_theirs(theirs.parameters())
    batches = list(data.minibatches(X_train, y_train, 64, np.random.default_rng(0)))[:20]
    assert len(batches) == 20
    for step, (xb, yb) in enumerate(batches):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(ours(Tensor(xb)), yb)
        loss.backward()
        opt.step()
        ref_opt.zero_grad()
        ref_loss = F.cross_entropy(theirs(torch.tensor(xb)), torch.tensor(yb))
        ref_loss.backward()
        ref_opt.step()
        assert abs(loss.item() - ref_loss.item()) <= 1e-10, f"step {step}: {loss.item()} vs {ref_loss.item()}"
    for (name, p), (_, r) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        diff = np.max(np.abs(p.data - r.detach().numpy()))
        assert diff <= 1e-10, f"{name} differs from PyTorch's by {diff:.2e} after 20 steps"
