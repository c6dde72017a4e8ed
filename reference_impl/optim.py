"""SGD (with momentum, dampening, Nesterov, weight decay) and Adam, with PyTorch's update rules.

The formulas follow the algorithm boxes in PyTorch's documentation of ``torch.optim.SGD`` and
``torch.optim.Adam`` (the default, non-"maximize", non-AMSGrad variants), so the same network from the
same initial weights follows the same trajectory. Parameters are updated in place, as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from reference_impl.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Holds the parameters to update; subclasses define step()."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list (did you pass model.parameters() of a "
                             "model without parameters, or an exhausted generator?)")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"parameter {i} is not a Tensor that requires grad")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears more than once in the optimizer's parameter list")

    def zero_grad(self) -> None:
        """Set every gradient to None (PyTorch's default), so the next backward starts afresh."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


def _nonnegative(**values: float) -> None:
    for name, v in values.items():
        if not v >= 0.0:
            raise ValueError(f"{name} must be >= 0, got {v}")


class SGD(Optimizer):
    """p <- p - lr * d, where d is the gradient (plus weight_decay * p), smoothed by momentum:
    b <- momentum * b + (1 - dampening) * g (b = g at the first step); d = b, or g + momentum * b
    with Nesterov."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params)
        _nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.lr, self.momentum, self.dampening = float(lr), float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        self.momentum_buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = self.momentum_buffers[i] = np.array(g, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1.0 - self.dampening) * g if self.dampening else g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g


class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params)
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), (float(b1), float(b2)), float(eps), \
            float(weight_decay)
        self.steps = [0] * len(self.params)
        self.exp_avg: list[np.ndarray | None] = [None] * len(self.params)
        self.exp_avg_sq: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.exp_avg[i] is None:
                self.exp_avg[i], self.exp_avg_sq[i] = np.zeros_like(p.data), np.zeros_like(p.data)
            m, v = self.exp_avg[i], self.exp_avg_sq[i]
            self.steps[i] += 1
            t = self.steps[i]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            step_size = self.lr / (1.0 - b1**t)
            denom = np.sqrt(v) / math.sqrt(1.0 - b2**t) + self.eps
            p.data -= step_size * (m / denom)
