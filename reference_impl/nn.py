"""Layers and losses on top of the autograd Tensor, shaped like ``torch.nn`` so the habits transfer.

A `Module` finds its parameters by looking at its attributes: `Parameter`s, other `Module`s, and lists,
tuples or dicts of them, recursively. Nothing needs registering, which is what lets a student write a
network as a plain class.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from reference_impl.tensor import Tensor, cross_entropy, linear

__all__ = ["Parameter", "Module", "Linear", "ReLU", "Tanh", "Sigmoid", "Sequential", "Dropout", "MSELoss",
           "CrossEntropyLoss"]


def _generator(rng: np.random.Generator | None, seed: int | None) -> np.random.Generator:
    """The generator to draw from: the one given, one made from `seed`, or a fresh unseeded one."""
    if rng is not None and seed is not None:
        raise ValueError("give either rng or seed, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(...)), got {type(rng)}")
        return rng
    return np.random.default_rng(seed)


class Parameter(Tensor):
    """A learnable leaf tensor: always requires grad and owns a copy of its data (optimisers update it
    in place, which must never write into the caller's array)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data.data
        array = np.array(data, copy=True)
        if array.dtype.kind != "f":
            array = array.astype(np.float64)
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class: subclasses set attributes in __init__ and define forward()."""

    training: bool = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _members(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for every Parameter or Module reachable through one attribute or container."""
        def walk(name: str, value: Any) -> Iterator[tuple[str, Any]]:
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    yield from walk(f"{name}.{i}", item)
            elif isinstance(value, dict):
                for key, item in value.items():
                    yield from walk(f"{name}.{key}", item)

        for name, value in vars(self).items():
            yield from walk(name, value)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every module inside it, each once, depth first."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._members()
                        if isinstance(m, Module)]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every Parameter once (shared ones under their first name), in attribute order, like PyTorch."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, value in module._members():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{prefix}.{name}" if prefix else name), value

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __repr__(self) -> str:
        inner = [f"  ({n}): {m!r}".replace("\n", "\n  ") for n, m in self._members()
                 if isinstance(m, Module)]
        body = "\n" + "\n".join(inner) + "\n" if inner else self.extra_repr()
        return f"{type(self).__name__}({body})"

    def extra_repr(self) -> str:
        return ""


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), initialised as PyTorch does:
    W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)) (kaiming_uniform with a = sqrt(5))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: np.random.Generator | None = None, seed: int | None = None,
                 dtype: type | np.dtype = np.float64) -> None:
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, "
                             f"out_features={out_features}")
        gen = _generator(rng, seed)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(gen.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(gen.uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) got input of shape {x.shape}; "
                             f"its last dimension must be {self.in_features}")
        return linear(x, self.weight, self.bias)  # one fused node: x @ W.T + b

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Sequential(Module):
    """Modules applied in order; their parameters are named "0.weight", "0.bias", ... as in PyTorch."""

    def __init__(self, *modules: Module) -> None:
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Modules; item {i} is a {type(m).__name__}")
            setattr(self, str(i), m)
        self._count = len(modules)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> Module:
        if not -self._count <= i < self._count:
            raise IndexError(f"Sequential has {self._count} modules, no index {i}")
        return getattr(self, str(i % self._count))

    def __iter__(self) -> Iterator[Module]:
        return (self[i] for i in range(self._count))

    def forward(self, x: Any) -> Any:
        modules = vars(self)
        for i in range(self._count):
            x = modules[str(i)](x)
        return x


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1-p), so the expected
    activation is unchanged and eval() can simply pass inputs through."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None,
                 seed: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = _generator(rng, seed)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = (self.rng.random(x.shape) >= self.p).astype(x.dtype)
        return x * (keep / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MSELoss(Module):
    """Mean of squared differences. Shapes must match exactly: (N, 1) against (N,) would broadcast to an
    (N, N) matrix and silently give a wrong loss, so it is an error here."""

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        target_shape = target.shape if isinstance(target, Tensor) else np.shape(target)
        if tuple(prediction.shape) != tuple(target_shape):
            raise ValueError(f"MSELoss: prediction has shape {prediction.shape} but target has shape "
                             f"{target_shape}; reshape one so they match")
        diff = prediction - target
        return (diff * diff).mean()


class CrossEntropyLoss(Module):
    """Mean cross-entropy of (N, C) logits against (N,) integer class indices (fused, stable)."""

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return cross_entropy(logits, targets)
