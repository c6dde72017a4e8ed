"""A complete trusted Value engine for lesson 03's checks (instructor only, never shipped).

The visible checks install these on the student's class (all but the method under test) when this module is
importable, so a bug in `mul` costs only the `mul` points. It answers every exercise of the lesson, which is
why a student's kit lacks it: there the visible checks use the student's own other methods instead.
Written against the container the notebook gives: Value(data, inputs, op) with .data, .grad, .inputs and a
._backward closure.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _wrap(self: object, other: object) -> object:
    return other if isinstance(other, type(self)) else type(self)(other)


def _t_add(self, other):
    other = _wrap(self, other)
    out = type(self)(self.data + other.data, (self, other), "+")

    def _backward() -> None:
        self.grad += out.grad
        other.grad += out.grad

    out._backward = _backward
    return out


def _t_mul(self, other):
    other = _wrap(self, other)
    out = type(self)(self.data * other.data, (self, other), "*")

    def _backward() -> None:
        self.grad += other.data * out.grad
        other.grad += self.data * out.grad

    out._backward = _backward
    return out


def _t_power(self, k):
    out = type(self)(self.data**k, (self,), f"**{k:g}")

    def _backward() -> None:
        self.grad += k * self.data ** (k - 1) * out.grad

    out._backward = _backward
    return out


def _t_unary(op: str, f: Callable[[float], float], df: Callable[[float, float], float]) -> Callable:
    def method(self):
        y = f(self.data)
        out = type(self)(y, (self,), op)

        def _backward() -> None:
            self.grad += df(self.data, y) * out.grad

        out._backward = _backward
        return out

    method.__name__ = op
    return method


_UNARY: dict[str, tuple[Callable[[float], float], Callable[[float, float], float]]] = {
    "exp": (math.exp, lambda x, y: y),
    "log": (math.log, lambda x, y: 1.0 / x),
    "tanh": (math.tanh, lambda x, y: 1.0 - y * y),
    "relu": (lambda x: x if x > 0 else 0.0, lambda x, y: 1.0 if x > 0 else 0.0),
}


def trusted_order(root) -> list:
    """Every node reachable from root, each after its inputs (iterative, so any depth works)."""
    order, seen, stack = [], {id(root)}, [(root, iter(root.inputs))]
    while stack:
        node, pending = stack[-1]
        for parent in pending:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, iter(parent.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def _t_backward(self) -> None:
    order = trusted_order(self)
    for node in order:
        if node.inputs:
            node.grad = 0.0
    self.grad += 1.0
    for node in reversed(order):
        node._backward()


TRUSTED: dict[str, Callable] = {
    "__add__": _t_add,
    "__mul__": _t_mul,
    "power": _t_power,
    **{name: _t_unary(name, f, df) for name, (f, df) in _UNARY.items()},
    "backward": _t_backward,
}

def logistic_loss_and_gradient(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean log(1 + exp(-y s)) of the 2-3-1 tanh model of check_train_step and its exact gradient (a
    hand-written backward pass of a small network, which later lessons ask for)."""
    w1, b1, w2, b2 = theta[:6].reshape(3, 2), theta[6:9], theta[9:12], theta[12]
    h = np.tanh(X @ w1.T + b1)
    s = h @ w2 + b2
    m = -y * s
    loss = float(np.mean(np.log1p(np.exp(m))))
    ds = -y / (1.0 + np.exp(-m)) / len(y)
    dh = np.outer(ds, w2) * (1 - h**2)
    grad = np.concatenate([(dh.T @ X).ravel(), dh.sum(0), h.T @ ds, [ds.sum()]])
    return loss, grad
