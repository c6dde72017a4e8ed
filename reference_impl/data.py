"""Small datasets that ship with scikit-learn (nothing is downloaded), a seeded split and minibatches."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = ["load_digits", "make_moons", "train_test_split", "minibatches"]


def train_test_split(X: np.ndarray, y: np.ndarray, test_size: float | int = 0.25,
                     seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with `seed` and split into (X_train, X_test, y_train, y_test).

    test_size is a fraction in (0, 1) (rounded up to whole samples, as scikit-learn does) or a count.
    """
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}")
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif 0.0 < test_size < 1.0:
        n_test = math.ceil(test_size * n)
    else:
        raise ValueError(f"test_size must be a fraction in (0, 1) or a number of samples, got {test_size}")
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves an empty train or test set for {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def load_digits(test_size: float = 0.25, seed: int = 0,
                scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digit images as 64 float64 features, labels 0-9 as int64.

    scale=True divides the pixel intensities (0..16) by 16, into [0, 1], which keeps the first layer's
    pre-activations at the scale PyTorch's default initialisation expects.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    X = bunch.data.astype(np.float64)
    if scale:
        X /= 16.0
    return train_test_split(X, bunch.target.astype(np.int64), test_size=test_size, seed=seed)


def make_moons(n_samples: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles in 2-D (float64) with labels 0/1 (int64): a small non-linear task."""
    from sklearn.datasets import make_moons as sklearn_moons

    X, y = sklearn_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator | int | None = None,
                shuffle: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (X_batch, y_batch) covering every sample once; the last batch may be smaller.

    rng: a numpy Generator (advanced by each shuffle, so epochs differ) or an int seed.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if shuffle:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        order = gen.permutation(len(X))
    else:
        order = np.arange(len(X))
    for start in range(0, len(X), int(batch_size)):
        idx = order[start:start + int(batch_size)]
        yield X[idx], y[idx]
