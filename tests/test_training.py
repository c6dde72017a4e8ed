"""End to end: the library trains a real network. An MLP on scikit-learn's digits reaches >= 95 % test
accuracy in a few seconds of CPU (the budget is a fixed number of epochs, never a timer)."""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl import data, nn, optim
from reference_impl.tensor import Tensor, no_grad


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with no_grad():
        predicted = model(Tensor(X)).data.argmax(axis=1)
    model.train()
    return float(np.mean(predicted == y))


def train_digits(optimizer: str, epochs: int, seed: int) -> tuple[nn.Module, list[float], tuple]:
    X_train, X_test, y_train, y_test = data.load_digits(seed=seed)
    model = nn.Sequential(nn.Linear(64, 128, seed=seed), nn.ReLU(), nn.Linear(128, 10, seed=seed + 1))
    opt = (optim.Adam(model.parameters(), lr=3e-3) if optimizer == "adam"
           else optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for xb, yb in data.minibatches(X_train, y_train, 32, rng):
            opt.zero_grad()
            loss = loss_fn(model(Tensor(xb)), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
        losses.append(total / len(y_train))
    return model, losses, (X_train, X_test, y_train, y_test)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mlp_on_digits_reaches_95_percent(optimizer):
    model, losses, (X_train, X_test, y_train, y_test) = train_digits(optimizer, epochs=15, seed=0)
    assert losses[-1] < 0.25 * losses[0], f"training loss barely fell: {losses}"
    test_acc = accuracy(model, X_test, y_test)
    assert test_acc >= 0.95, f"{optimizer}: test accuracy {test_acc:.3f} < 0.95 (losses {losses})"
    assert accuracy(model, X_train, y_train) >= test_acc - 0.01


@pytest.mark.slow
def test_training_is_reproducible_from_seeds():
    _, first, _ = train_digits("adam", epochs=2, seed=3)
    _, second, _ = train_digits("adam", epochs=2, seed=3)
    assert first == second


@pytest.mark.slow
def test_moons_needs_the_hidden_layer():
    """A linear model cannot separate the moons; one tanh hidden layer can (a non-trivial fit)."""
    X, y = data.make_moons(n_samples=300, noise=0.1, seed=0)
    results = {}
    models = {"linear": nn.Linear(2, 2, seed=0),
              "mlp": nn.Sequential(nn.Linear(2, 32, seed=0), nn.Tanh(), nn.Linear(32, 2, seed=1))}
    for name, model in models.items():
        opt = optim.Adam(model.parameters(), lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(Tensor(X)), y)
            loss.backward()
            opt.step()
        results[name] = accuracy(model, X, y)
    assert results["mlp"] >= 0.98 and results["linear"] < 0.92, results
