"""Primitive operations and their vector-Jacobian products (VJPs).

Every primitive here is a plain numpy function. Beside each one, `defvjp` records how to push an upstream
gradient ``g`` (shaped like the primitive's output) back to each of its array arguments without ever
forming a Jacobian::

    vjp(g, ans, *args, **params) -> array shaped like that argument (or None: "no gradient")

``ans`` is the primitive's output, so VJPs such as exp's can reuse it instead of recomputing.

Calling convention (shared by the Tensor in `reference_impl.tensor`):

- The first ``len(vjps_of(fun))`` positional arguments are the differentiable "array" arguments, one
  registered VJP each. A ``None`` entry marks an array argument that has no gradient (the condition of
  `where`, the integer targets of `cross_entropy`).
- Any further positional arguments and all keyword arguments are non-array parameters (axis, keepdims,
  shape, axes, index). They get no VJP; they are passed unchanged to every VJP after the arrays.
- `concatenate(*arrays, axis=0)` and `stack(*arrays, axis=0)` take any number of arrays; ask for their VJPs
  with ``vjps_of(concatenate, nargs=3)``.
- VJPs never modify ``g`` (nor any argument) in place; they may return ``g`` itself or a view of it, so a
  caller that wants to modify a returned gradient in place must copy it first.
- VJPs keep the gradient's dtype: float32 in, float32 out (Python scalars never promote; reduction
  counts are Python ints for the same reason).

Beyond the primitives a course derives by hand there is one fused primitive, `linear` (x @ w.T + b), which
`reference_impl.nn.Linear` uses so a layer costs one graph node instead of three.

Forward mode is here too, so the cost contrast between the two constructions of a Jacobian can be shown:
`defjvp` records, per argument, ``jvp(t, ans, *args, **params)`` -> the output's tangent for a tangent
``t`` of that argument. `jacobian_from_vjp(f, x)` builds a Jacobian from one VJP per output element
(m calls); `jacobian_from_jvp(f, x)` from one JVP per input element (n calls). There `f` is a primitive of
this table applied to its first array argument (bind parameters with ``functools.partial(sum, axis=0)``),
and both return the (f(x).size, x.size) matrix. The JVP rules are written independently of the VJPs, so
the two constructions agreeing is a real check of both.

Conventions at kinks and ties (finite differences cannot decide these, so they are chosen and tested):

- relu'(0) = 0 and abs'(0) = 0 (PyTorch's choice).
- maximum/minimum: at x == y each argument receives half of the gradient (PyTorch's choice).
- max reductions: the gradient is split evenly among all elements equal to the maximum, as PyTorch's
  full reduction ``x.max()`` and ``torch.amax`` do (``torch.max(x, dim)`` instead sends it all to one index).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

ArrayLike = Any
VJP = Callable[..., Any]

_VJPS: dict[Callable, tuple[VJP | None, ...]] = {}
_VARIADIC_VJP: dict[Callable, VJP] = {}
_JVPS: dict[Callable, tuple[VJP | None, ...]] = {}
_VARIADIC_JVP: dict[Callable, VJP] = {}


# --------------------------------------------------------------------------------------------- registry
def defvjp(fun: Callable, *vjps: VJP | None) -> None:
    """Register one VJP per leading positional (array) argument of `fun`; None means "no gradient"."""
    if not callable(fun):
        raise TypeError(f"defvjp needs a function as its first argument, got {type(fun).__name__}")
    for i, v in enumerate(vjps):
        if v is not None and not callable(v):
            raise TypeError(f"VJP number {i} for {fun.__name__} must be callable or None, got {v!r}")
    _VJPS[fun] = tuple(vjps)


def defvjp_argnum(fun: Callable, vjp_argnum: VJP) -> None:
    """Register a VJP for a function taking any number of arrays: ``vjp_argnum(i, g, ans, *args)``."""
    _VARIADIC_VJP[fun] = vjp_argnum


def vjps_of(fun: Callable, nargs: int | None = None) -> tuple[VJP | None, ...]:
    """The registered VJPs of `fun`, one per array argument (give `nargs` for concatenate/stack)."""
    if fun in _VJPS:
        vjps = _VJPS[fun]
        if nargs is not None and nargs != len(vjps):
            raise ValueError(f"{_name(fun)} takes {len(vjps)} array argument(s), not {nargs}")
        return vjps
    if fun in _VARIADIC_VJP:
        if nargs is None:
            raise TypeError(f"{_name(fun)} takes any number of arrays: call vjps_of({_name(fun)}, nargs=...)")
        return tuple(functools.partial(_VARIADIC_VJP[fun], i) for i in range(nargs))
    raise KeyError(f"no VJP registered for {_name(fun)}; register one with defvjp({_name(fun)}, ...)")


def defjvp(fun: Callable, *jvps: VJP | None) -> None:
    """Register one JVP per array argument: ``jvp(t, ans, *args)`` -> tangent of the output."""
    _JVPS[fun] = tuple(jvps)


def defjvp_argnum(fun: Callable, jvp_argnum: VJP) -> None:
    """Register a JVP for a function taking any number of arrays: ``jvp_argnum(i, t, ans, *args)``."""
    _VARIADIC_JVP[fun] = jvp_argnum


def jvps_of(fun: Callable, nargs: int | None = None) -> tuple[VJP | None, ...]:
    """The registered JVPs of `fun`, one per array argument (give `nargs` for concatenate/stack)."""
    if fun in _JVPS:
        return _JVPS[fun]
    if fun in _VARIADIC_JVP:
        if nargs is None:
            raise TypeError(f"{_name(fun)} takes any number of arrays: call jvps_of({_name(fun)}, nargs=...)")
        return tuple(functools.partial(_VARIADIC_JVP[fun], i) for i in range(nargs))
    raise KeyError(f"no JVP registered for {_name(fun)}")


def _name(fun: Callable) -> str:
    return getattr(fun, "__name__", repr(fun))


# ------------------------------------------------------------------------------------------- helpers
def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `g` over the dimensions that broadcasting added or stretched, so it gets `shape` back.

    A value used at many positions (a bias broadcast over a batch) receives the sum of the gradients
    flowing back from all of them.
    """
    shape = tuple(shape)
    gshape = np.shape(g)
    if gshape == shape:
        return g
    extra = len(gshape) - len(shape)
    if extra > 0 and gshape[extra:] == shape:  # the common case: only leading dimensions were added
        return np.add.reduce(g, axis=tuple(range(extra)))
    if extra < 0 or any(n != 1 and n != m for n, m in zip(shape, gshape[extra:], strict=True)):
        raise ValueError(f"cannot unbroadcast a gradient of shape {gshape} to shape {shape}: "
                         f"{shape} does not broadcast to {gshape}")
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and gshape[extra + i] != 1)
    if not stretched:  # only leading dimensions were added (a bias over a batch): one plain sum
        return np.add.reduce(g, axis=tuple(range(extra)))
    return np.add.reduce(g, axis=tuple(range(extra)) + stretched, keepdims=True).reshape(shape)


def _axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    return tuple(int(a) % ndim if ndim else int(a) for a in axis)


def _kept(g: np.ndarray, shape: tuple[int, ...], axis, keepdims: bool) -> np.ndarray:
    """Reshape a reduction's output (or its gradient) so it broadcasts against the input again."""
    if keepdims:
        return g
    reduced = _axes(axis, len(shape))
    return np.reshape(g, tuple(1 if i in reduced else n for i, n in enumerate(shape)))


def _count(shape: tuple[int, ...], axis) -> int:
    """Number of elements each reduced output averages over (a Python int: it must not promote)."""
    return math.prod(shape[i] for i in _axes(axis, len(shape)))


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


# --------------------------------------------------------------------------- elementwise arithmetic
def add(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.add(x, y)


def subtract(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.subtract(x, y)


def multiply(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.multiply(x, y)


def divide(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.divide(x, y)


def negative(x: ArrayLike) -> np.ndarray:
    return np.negative(x)


def power(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.power(x, y)


def _log_base(x: ArrayLike) -> np.ndarray:
    """log x with log 0 replaced by 0: d(x**y)/dy = x**y log x is 0 at x = 0 (for y > 0), as in PyTorch.

    For x < 0 the derivative with respect to the exponent is undefined; numpy returns nan and warns.
    """
    return np.log(np.where(np.equal(x, 0), 1, x))


defvjp(add, lambda g, ans, x, y: unbroadcast(g, np.shape(x)),
       lambda g, ans, x, y: unbroadcast(g, np.shape(y)))
defvjp(subtract, lambda g, ans, x, y: unbroadcast(g, np.shape(x)),
       lambda g, ans, x, y: unbroadcast(-g, np.shape(y)))
defvjp(multiply, lambda g, ans, x, y: unbroadcast(g * y, np.shape(x)),
       lambda g, ans, x, y: unbroadcast(g * x, np.shape(y)))
defvjp(divide, lambda g, ans, x, y: unbroadcast(g / y, np.shape(x)),
       lambda g, ans, x, y: unbroadcast(-g * ans / y, np.shape(y)))
defvjp(negative, lambda g, ans, x: -g)
defvjp(power, lambda g, ans, x, y: unbroadcast(g * y * np.power(x, y - 1), np.shape(x)),
       lambda g, ans, x, y: unbroadcast(g * ans * _log_base(x), np.shape(y)))

defjvp(add, lambda t, ans, x, y: np.broadcast_to(t, ans.shape),
       lambda t, ans, x, y: np.broadcast_to(t, ans.shape))
defjvp(subtract, lambda t, ans, x, y: np.broadcast_to(t, ans.shape),
       lambda t, ans, x, y: np.broadcast_to(-t, ans.shape))
defjvp(multiply, lambda t, ans, x, y: t * y * np.ones_like(ans),
       lambda t, ans, x, y: x * t * np.ones_like(ans))
defjvp(divide, lambda t, ans, x, y: t / y * np.ones_like(ans), lambda t, ans, x, y: -t * ans / y)
defjvp(negative, lambda t, ans, x: -t)
defjvp(power, lambda t, ans, x, y: t * y * np.power(x, y - 1) * np.ones_like(ans),
       lambda t, ans, x, y: t * ans * _log_base(x))


# ---------------------------------------------------------------------------- elementwise functions
def exp(x: ArrayLike) -> np.ndarray:
    return np.exp(x)


def log(x: ArrayLike) -> np.ndarray:
    return np.log(x)


def sin(x: ArrayLike) -> np.ndarray:
    return np.sin(x)


def cos(x: ArrayLike) -> np.ndarray:
    return np.cos(x)


def tanh(x: ArrayLike) -> np.ndarray:
    return np.tanh(x)


def sigmoid(x: ArrayLike) -> np.ndarray:
    """1 / (1 + e^-x), computed from e^-|x| so it neither overflows nor loses the tiny values for x << 0."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def relu(x: ArrayLike) -> np.ndarray:
    return np.maximum(x, 0)


def abs(x: ArrayLike) -> np.ndarray:  # noqa: A001 - the primitive is named like numpy's
    return np.abs(x)


def maximum(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.maximum(x, y)


def minimum(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.minimum(x, y)


def where(condition: ArrayLike, x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.where(condition, x, y)


def _pick(g, ans, mine, other):
    """Gradient share of one argument of maximum/minimum: all where it won, half where it tied."""
    won = np.equal(ans, mine) & np.not_equal(mine, other)
    tied = np.equal(mine, other)
    return g * won + (g * 0.5) * tied


defvjp(exp, lambda g, ans, x: g * ans)
defvjp(log, lambda g, ans, x: g / x)
defvjp(sin, lambda g, ans, x: g * np.cos(x))
defvjp(cos, lambda g, ans, x: -g * np.sin(x))
defvjp(tanh, lambda g, ans, x: g * (1 - ans * ans))
defvjp(sigmoid, lambda g, ans, x: g * (ans * (1 - ans)))
defvjp(relu, lambda g, ans, x: g * (ans > 0))  # relu(x) > 0 exactly where x > 0: needs only the output
defvjp(abs, lambda g, ans, x: g * np.sign(x))
defvjp(maximum, lambda g, ans, x, y: unbroadcast(_pick(g, ans, x, y), np.shape(x)),
       lambda g, ans, x, y: unbroadcast(_pick(g, ans, y, x), np.shape(y)))
defvjp(minimum, lambda g, ans, x, y: unbroadcast(_pick(g, ans, x, y), np.shape(x)),
       lambda g, ans, x, y: unbroadcast(_pick(g, ans, y, x), np.shape(y)))
defvjp(where, None,
       lambda g, ans, c, x, y: unbroadcast(np.where(c, g, np.zeros_like(g)), np.shape(x)),
       lambda g, ans, c, x, y: unbroadcast(np.where(c, np.zeros_like(g), g), np.shape(y)))

defjvp(exp, lambda t, ans, x: t * ans)
defjvp(log, lambda t, ans, x: t / x)
defjvp(sin, lambda t, ans, x: t * np.cos(x))
defjvp(cos, lambda t, ans, x: -t * np.sin(x))
defjvp(tanh, lambda t, ans, x: t * (1 - ans * ans))
defjvp(sigmoid, lambda t, ans, x: t * (ans * (1 - ans)))
defjvp(relu, lambda t, ans, x: t * (np.asarray(x) > 0))
defjvp(abs, lambda t, ans, x: t * np.sign(x))
defjvp(maximum, lambda t, ans, x, y: _pick(t, ans, x, y), lambda t, ans, x, y: _pick(t, ans, y, x))
defjvp(minimum, lambda t, ans, x, y: _pick(t, ans, x, y), lambda t, ans, x, y: _pick(t, ans, y, x))
defjvp(where, None, lambda t, ans, c, x, y: np.where(c, t, np.zeros_like(ans)),
       lambda t, ans, c, x, y: np.where(c, np.zeros_like(ans), t))


# ------------------------------------------------------------------------------------ matrix product
def matmul(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    return np.matmul(x, y)


def _matmul_vjp_x(g, ans, x, y):
    """d<x @ y, G>/dx = G @ y^T, with 1-D operands treated as a row (x) or a column (y) vector."""
    xd, yd = len(np.shape(x)), y.ndim
    if xd == 2 and yd == 2:
        return g @ y.T
    if yd == 1:
        if xd == 1:
            return g * y
        return g[..., None] * y
    if xd == 1:
        return unbroadcast((y @ g[..., None])[..., 0], np.shape(x))
    return unbroadcast(g @ _swap(y), np.shape(x))


def _matmul_vjp_y(g, ans, x, y):
    """d<x @ y, G>/dy = x^T @ G, summed over batch dimensions that y was broadcast along."""
    xd, yd = x.ndim, len(np.shape(y))
    if xd == 2 and yd == 2:
        if y.flags.f_contiguous and not y.flags.c_contiguous:
            # y is a transposed view (x @ W.T): build the gradient in W's layout, so the transposed
            # gradient handed to W is contiguous and never needs a transposing copy.
            return (g.T @ x).T
        return x.T @ g
    if xd == 1:
        if yd == 1:
            return g * x
        return g[..., None, :] * x[:, None]
    if yd == 1:
        return unbroadcast((_swap(x) @ g[..., None])[..., 0], np.shape(y))
    return unbroadcast(_swap(x) @ g, np.shape(y))


defvjp(matmul, _matmul_vjp_x, _matmul_vjp_y)
defjvp(matmul, lambda t, ans, x, y: np.matmul(t, y), lambda t, ans, x, y: np.matmul(x, t))


def linear(x: ArrayLike, w: ArrayLike, b: ArrayLike) -> np.ndarray:
    """x @ w.T + b for x (..., in), w (out, in), b (out,): a dense layer as ONE primitive.

    Not needed for expressiveness (matmul, transpose and add compose to it); it exists because a layer
    recorded as one node instead of three costs a third of the bookkeeping, and its weight gradient comes
    out contiguous in w's own layout. PyTorch's nn.Linear is a fused op (addmm) for the same reasons.
    """
    out = np.matmul(x, np.transpose(w))
    if out.dtype == np.result_type(out, b):
        out += b  # the product is a fresh array: add the bias in place, no second allocation
        return out
    return out + b


def _linear_vjp_w(g, ans, x, w, b):
    if np.ndim(x) == 2:
        return g.T @ x
    return np.reshape(g, (-1, g.shape[-1])).T @ np.reshape(x, (-1, np.shape(x)[-1]))


defvjp(linear, lambda g, ans, x, w, b: g @ w, _linear_vjp_w,
       lambda g, ans, x, w, b: unbroadcast(g, np.shape(b)))
defjvp(linear, lambda t, ans, x, w, b: t @ np.transpose(w), lambda t, ans, x, w, b: x @ np.transpose(t),
       lambda t, ans, x, w, b: np.broadcast_to(t, ans.shape))


# ---------------------------------------------------------------------------------------- reductions
def sum(x: ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    return np.sum(x, axis=axis, keepdims=keepdims)


def mean(x: ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.mean(x, axis=axis, keepdims=keepdims)


def max(x: ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    return np.max(x, axis=axis, keepdims=keepdims)


def _max_vjp(g, ans, x, axis=None, keepdims=False):
    """Ties share the gradient evenly (PyTorch's full-reduction max and amax do the same)."""
    shape = np.shape(x)
    hit = np.equal(x, _kept(ans, shape, axis, keepdims))
    count = np.sum(hit, axis=axis, keepdims=True)
    share = _kept(g, shape, axis, keepdims) / count.astype(np.result_type(g))
    return hit * share


def _max_jvp(t, ans, x, axis=None, keepdims=False):
    shape = np.shape(x)
    hit = np.equal(x, _kept(ans, shape, axis, keepdims))
    share = np.sum(hit * t, axis=axis, keepdims=keepdims)
    return share / np.sum(hit, axis=axis, keepdims=keepdims).astype(np.result_type(t))


defvjp(sum, lambda g, ans, x, axis=None, keepdims=False:
       np.broadcast_to(_kept(g, np.shape(x), axis, keepdims), np.shape(x)))
defvjp(mean, lambda g, ans, x, axis=None, keepdims=False:
       np.broadcast_to(_kept(g, np.shape(x), axis, keepdims) / _count(np.shape(x), axis), np.shape(x)))
defvjp(max, _max_vjp)
defjvp(sum, lambda t, ans, x, axis=None, keepdims=False: np.sum(t, axis=axis, keepdims=keepdims))
defjvp(mean, lambda t, ans, x, axis=None, keepdims=False: np.mean(t, axis=axis, keepdims=keepdims))
defjvp(max, _max_jvp)


# ---------------------------------------------------------------------------------------- reshaping
def reshape(x: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    return np.reshape(x, shape)


def transpose(x: ArrayLike, axes: tuple[int, ...] | None = None) -> np.ndarray:
    return np.transpose(x, axes)


def broadcast_to(x: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(x, shape)


def getitem(x: ArrayLike, index: Any) -> np.ndarray:
    return np.asarray(x)[index]


def _inverse_axes(axes, ndim):
    return None if axes is None else tuple(np.argsort([a % ndim for a in axes]))


def _is_basic(index) -> bool:
    """True for indices made of ints, slices, None and Ellipsis only: they select each element once."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


def _getitem_vjp(g, ans, x, index):
    """Scatter g back; repeated integer-array indices add up (np.add.at), basic indices just assign."""
    out = np.zeros(np.shape(x), dtype=np.result_type(g))
    if _is_basic(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


defvjp(reshape, lambda g, ans, x, shape: np.reshape(g, np.shape(x)))
defvjp(transpose, lambda g, ans, x, axes=None: np.transpose(g, _inverse_axes(axes, np.ndim(x))))
defvjp(broadcast_to, lambda g, ans, x, shape: unbroadcast(g, np.shape(x)))
defvjp(getitem, _getitem_vjp)
defjvp(reshape, lambda t, ans, x, shape: np.reshape(t, ans.shape))
defjvp(transpose, lambda t, ans, x, axes=None: np.transpose(t, axes))
defjvp(broadcast_to, lambda t, ans, x, shape: np.broadcast_to(t, shape))
defjvp(getitem, lambda t, ans, x, index: np.asarray(t)[index])


def concatenate(*arrays: ArrayLike, axis: int = 0) -> np.ndarray:
    if not arrays:
        raise ValueError("concatenate needs at least one array")
    return np.concatenate(arrays, axis=axis)


def stack(*arrays: ArrayLike, axis: int = 0) -> np.ndarray:
    if not arrays:
        raise ValueError("stack needs at least one array")
    return np.stack(arrays, axis=axis)


def _concatenate_slice(i, arrays, axis, ndim):
    axis = axis % ndim
    start = int(np.sum([np.shape(a)[axis] for a in arrays[:i]], dtype=int))
    index = [slice(None)] * ndim
    index[axis] = slice(start, start + np.shape(arrays[i])[axis])
    return tuple(index)


def _concatenate_vjp(i, g, ans, *arrays, axis=0):
    return g[_concatenate_slice(i, arrays, axis, g.ndim)]


def _concatenate_jvp(i, t, ans, *arrays, axis=0):
    out = np.zeros(ans.shape, dtype=np.result_type(t))
    out[_concatenate_slice(i, arrays, axis, ans.ndim)] = t
    return out


def _stack_vjp(i, g, ans, *arrays, axis=0):
    return np.take(g, i, axis=axis % g.ndim)


def _stack_jvp(i, t, ans, *arrays, axis=0):
    out = np.zeros(ans.shape, dtype=np.result_type(t))
    index = [slice(None)] * ans.ndim
    index[axis % ans.ndim] = i
    out[tuple(index)] = t
    return out


defvjp_argnum(concatenate, _concatenate_vjp)
defvjp_argnum(stack, _stack_vjp)
defjvp_argnum(concatenate, _concatenate_jvp)
defjvp_argnum(stack, _stack_jvp)


# ---------------------------------------------------------------------- softmax and its relatives
def logsumexp(x: ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) shifted by the maximum, so large inputs do not overflow."""
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    x = np.asarray(x)
    e = np.exp(x - np.maximum.reduce(x, axis=axis, keepdims=True))
    e /= np.add.reduce(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    x = np.asarray(x)
    return x - logsumexp(x, axis=axis, keepdims=True)


def cross_entropy(logits: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Mean over the batch of -log softmax(logits)[n, targets[n]], fused so it never takes log of 0.

    logits: (N, C) scores; targets: (N,) integer class indices in [0, C).
    """
    logits = np.asarray(logits)
    targets = _check_targets(logits, targets)
    n = logits.shape[0]
    shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    per_sample = np.log(np.add.reduce(np.exp(shifted), axis=1)) - shifted[np.arange(n), targets]
    return np.add.reduce(per_sample) / n


def _check_targets(logits: np.ndarray, targets: ArrayLike) -> np.ndarray:
    targets = np.asarray(targets)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy needs logits of shape (N, C), got shape {logits.shape}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"cross_entropy needs targets of shape ({logits.shape[0]},) to match logits "
                         f"{logits.shape}, got shape {targets.shape}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy targets must be integer class indices, got dtype {targets.dtype}")
    if logits.shape[0] == 0:
        raise ValueError("cross_entropy of an empty batch is undefined (N = 0)")
    if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy targets must lie in [0, {logits.shape[1]}), "
                         f"got values from {targets.min()} to {targets.max()}")
    return targets


def _cross_entropy_vjp(g, ans, logits, targets):
    """(softmax(logits) - onehot(targets)) * g / N: the whole fused VJP, never an explicit log."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = p.shape[0]
    p[np.arange(n), targets] -= 1
    p *= g / n
    return p


def _cross_entropy_jvp(t, ans, logits, targets):
    p = softmax(logits, axis=1)
    n = p.shape[0]
    p[np.arange(n), targets] -= 1
    return np.sum(p * t) / n


def _softmax_vjp(g, ans, x, axis=-1):
    return ans * (g - np.add.reduce(g * ans, axis=axis, keepdims=True))


def _log_softmax_vjp(g, ans, x, axis=-1):
    return g - np.exp(ans) * np.sum(g, axis=axis, keepdims=True)


def _logsumexp_vjp(g, ans, x, axis=None, keepdims=False):
    shape = np.shape(x)
    return _kept(g, shape, axis, keepdims) * np.exp(x - _kept(ans, shape, axis, keepdims))


def _logsumexp_jvp(t, ans, x, axis=None, keepdims=False):
    shape = np.shape(x)
    return np.sum(t * np.exp(x - _kept(ans, shape, axis, keepdims)), axis=axis, keepdims=keepdims)


defvjp(softmax, _softmax_vjp)
defvjp(log_softmax, _log_softmax_vjp)
defvjp(logsumexp, _logsumexp_vjp)
defvjp(cross_entropy, _cross_entropy_vjp, None)
defjvp(softmax, lambda t, ans, x, axis=-1: ans * (t - np.sum(t * ans, axis=axis, keepdims=True)))
defjvp(log_softmax, lambda t, ans, x, axis=-1: t - np.sum(np.exp(ans) * t, axis=axis, keepdims=True))
defjvp(logsumexp, _logsumexp_jvp)
defjvp(cross_entropy, _cross_entropy_jvp, None)


# ----------------------------------------------------------------------------------------- Jacobians
def _table_entry(f: Callable, table: dict, variadic: dict, what: str) -> tuple[Callable, Callable, dict]:
    """(forward, first-argument derivative function, bound keyword parameters) for `f` or a partial of it."""
    kwargs: dict = {}
    if isinstance(f, functools.partial) and not f.args:
        kwargs, f = dict(f.keywords), f.func
    if f in table and table[f] and table[f][0] is not None:
        return f, table[f][0], kwargs
    if f in variadic:
        return f, functools.partial(variadic[f], 0), kwargs
    raise TypeError(f"{_name(f)} has no registered {what} for its first argument; build the Jacobian of a "
                    f"primitive of reference_impl.vjp (or functools.partial(primitive, **params))")


def jacobian_from_vjp(f: Callable, x: ArrayLike) -> np.ndarray:
    """Jacobian of a registered primitive at x, one VJP per OUTPUT element (row by row).

    Returns a matrix of shape (f(x).size, x.size): row i is the VJP of the i-th basis vector of the
    output. Cost: m = f(x).size VJP calls, so reverse mode wins when outputs are few (a scalar loss: 1).
    """
    fun, vjp, kwargs = _table_entry(f, _VJPS, _VARIADIC_VJP, "VJP")
    x = np.asarray(x, dtype=float) if np.asarray(x).dtype.kind not in "fc" else np.asarray(x)
    ans = np.asarray(fun(x, **kwargs))
    jac = np.zeros((ans.size, x.size), dtype=np.result_type(ans, x))
    for i in range(ans.size):
        e = np.zeros(ans.size, dtype=ans.dtype)
        e[i] = 1
        jac[i] = np.reshape(vjp(e.reshape(ans.shape), ans, x, **kwargs), -1)
    return jac


def jacobian_from_jvp(f: Callable, x: ArrayLike) -> np.ndarray:
    """Jacobian of a registered primitive at x, one JVP per INPUT element (column by column).

    Uses the forward-mode rules registered with `defjvp` (written independently of the VJPs, so agreement
    between the two constructions is a real check). Cost: n = x.size JVP calls.
    """
    fun, jvp, kwargs = _table_entry(f, _JVPS, _VARIADIC_JVP, "JVP")
    x = np.asarray(x, dtype=float) if np.asarray(x).dtype.kind not in "fc" else np.asarray(x)
    ans = np.asarray(fun(x, **kwargs))
    jac = np.zeros((ans.size, x.size), dtype=np.result_type(ans, x))
    for j in range(x.size):
        e = np.zeros(x.size, dtype=x.dtype)
        e[j] = 1
        tangent = np.broadcast_to(jvp(e.reshape(x.shape), ans, x, **kwargs), ans.shape)
        jac[:, j] = np.reshape(tangent, -1)
    return jac
