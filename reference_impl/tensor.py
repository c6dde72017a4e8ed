"""A small PyTorch-like autograd Tensor built on the primitive table of `reference_impl.vjp`.

Every operation calls one registered primitive: the forward runs numpy, and if any input requires a
gradient the result records a `Node` (its ``grad_fn``) holding the primitive, what its VJPs need, and
where each input's gradient must go. `Tensor.backward` walks those nodes once each, in reverse
topological order (iteratively, so deep graphs do not hit Python's recursion limit), and calls the VJPs
from the table.

Behaviour copied from PyTorch on purpose, so what students see here transfers:

- Gradients accumulate into leaves (tensors created by the user with ``requires_grad=True``) across
  backward calls until zeroed; ``zero_grad`` sets ``.grad`` to None (PyTorch's default). Non-leaf
  tensors get no ``.grad``.
- After backward the graph drops the arrays it saved for the VJPs unless ``retain_graph=True``. A second
  backward that needs one of them raises a clear error; one that needs none (``c = a + b``) still works,
  because the Tensor only ever keeps what each VJP reads (shapes alone for add, sum, reshape, ...).
- dtype: Python data becomes float64; float32 arrays stay float32. Python scalars and numpy scalars
  never promote (``x32 * np.float64(2)`` stays float32); integer constants take the tensor's float dtype.
  A float64 *array* mixed with a float32 tensor promotes, as in numpy and PyTorch.
- A Tensor built from a numpy array shares its memory (like ``torch.from_numpy``); ``numpy()`` returns the
  underlying array.

The graph has the shape lesson 06 builds by hand: a node's ``name`` is the primitive's short name plus
"Backward" (MulBackward, as lesson 06's OPS["mul"] and PyTorch name it), a leaf's ``accumulator`` is its
AccumulateGrad node, and ``Node.input_grads(g)`` runs a node's VJPs, one gradient per input (None where none
is needed). What still differs from lesson 06's given cells: edges are PyTorch's ``(node, 0)`` pairs,
VJPs unbroadcast themselves (lesson 06's Node does it with the student's sum_to_shape), and the primitives
are the functions of `reference_impl.vjp` rather than ``Primitive`` objects.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from reference_impl import vjp as V

__all__ = ["Tensor", "Node", "AccumulateGrad", "no_grad", "enable_grad", "is_grad_enabled", "cross_entropy",
           "apply", "linear", "where", "maximum", "minimum", "concatenate", "stack", "logsumexp",
           "graph_nodes"]


# ------------------------------------------------------------------------------------ gradient mode
class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    return _GradMode.enabled


class no_grad:
    """Context manager (and decorator): operations inside record no graph, e.g. evaluation or updates."""

    _enabled = False

    def __enter__(self) -> None:
        self._previous = _GradMode.enabled
        _GradMode.enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._previous

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


class enable_grad(no_grad):
    """Turns recording back on inside a `no_grad` block."""

    _enabled = True


# ------------------------------------------------------------------------------------ saved values
# What each primitive's VJPs read: (its array arguments?, its output?). The graph keeps only that, so
# activations the backward pass does not need are freed as soon as Python drops them (PyTorch saves only
# what its backward formulas use, too). Primitives not listed keep both.
_SHAPES_ONLY, _KEEP_ALL = (False, False), (True, True)
_KEEPS: dict[Any, tuple[bool, bool]] = {
    **dict.fromkeys([V.add, V.subtract, V.negative, V.sum, V.mean, V.reshape, V.transpose, V.broadcast_to,
                     V.getitem, V.concatenate, V.stack], _SHAPES_ONLY),
    **dict.fromkeys([V.multiply, V.matmul, V.linear, V.abs, V.log, V.sin, V.cos, V.where, V.cross_entropy],
                    (True, False)),
    **dict.fromkeys([V.exp, V.tanh, V.sigmoid, V.relu, V.softmax, V.log_softmax], (False, True)),
}


class _Dropped:
    """Stands in for an array the graph did not keep: knows its shape and dtype, refuses everything else."""

    __slots__ = ("shape", "dtype", "op", "released")

    def __init__(self, array: np.ndarray, op: str, released: bool = False) -> None:
        self.shape, self.dtype, self.op, self.released = array.shape, array.dtype, op, released

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def _refuse(self, *args: object, **kwargs: object):
        if self.released:
            raise RuntimeError(
                f"Trying to backward through the graph a second time: the {self.op} node needs a value it "
                f"saved, and that value was freed after the first backward. Pass retain_graph=True to the "
                f"first backward() if you need to backpropagate through the same graph again (or recompute "
                f"the forward).")
        raise RuntimeError(
            f"the VJP registered for {self.op} reads the value of an input or output that the Tensor keeps "
            f"only by shape for this primitive (see _KEEPS in reference_impl.tensor): update _KEEPS if "
            f"the VJP really needs it.")

    def __getattr__(self, name: str):
        self._refuse()

    # No __array_function__: np.shape/np.ndim must keep working; any other numpy call goes via __array__.
    __array__ = __array_ufunc__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __pow__ = __rpow__ = __matmul__ = __rmatmul__ = __neg__ = __getitem__ = __gt__ = __lt__ = _refuse
    __ge__ = __le__ = __eq__ = __ne__ = __bool__ = __float__ = __int__ = __len__ = __iter__ = _refuse


def _drop(args: tuple, n: int, op: str, released: bool = False) -> tuple:
    """Replace the first `n` arguments (the arrays) by their shapes; parameters (an index) stay."""
    return tuple([_Dropped(a, op, released) if type(a) is np.ndarray else a for a in args[:n]]) + args[n:]


# ------------------------------------------------------------------------------------------ the graph
_SHORT_NAMES = {"multiply": "mul", "subtract": "sub", "divide": "div", "negative": "neg", "power": "pow"}
"""Primitives whose node is named as in lesson 06 and PyTorch (MulBackward), not after numpy's function."""


def _backward_name(fun: Any) -> str:
    name = V._name(fun)
    return "".join(part.capitalize() for part in _SHORT_NAMES.get(name, name).split("_")) + "Backward"


class AccumulateGrad:
    """The graph's sink for a leaf tensor, as in PyTorch: ``.variable`` is the leaf it accumulates into."""

    __slots__ = ("variable",)
    name = "AccumulateGrad"
    next_functions: tuple = ()

    def __init__(self, variable: Tensor) -> None:
        self.variable = variable

    def __repr__(self) -> str:
        return f"<AccumulateGrad of leaf {tuple(self.variable.shape)}>"


class Node:
    """One recorded primitive call (a tensor's ``grad_fn``): enough to send its output gradient back."""

    __slots__ = ("fun", "args", "kwargs", "ans", "parents", "released")

    def __init__(self, fun: Any, args: tuple, kwargs: dict, ans: np.ndarray, parents: tuple) -> None:
        self.fun = fun
        keep_args, keep_ans = _KEEPS.get(fun, _KEEP_ALL)
        self.args = args if keep_args else _drop(args, len(parents), fun.__name__)
        self.ans = ans if keep_ans else _Dropped(ans, fun.__name__)
        self.released = not (keep_args or keep_ans)  # nothing left to release
        self.kwargs = kwargs
        self.parents = parents  # per array argument: Node, AccumulateGrad, or None (no gradient needed)

    @property
    def name(self) -> str:
        return _backward_name(self.fun)

    @property
    def next_functions(self) -> tuple[tuple[Node | AccumulateGrad | None, int], ...]:
        """Where this node sends gradients, one ``(function, 0)`` pair per input, like PyTorch's."""
        return tuple((p, 0) for p in self.parents)

    def input_grads(self, g: np.ndarray) -> tuple[np.ndarray | None, ...]:
        """This node's VJPs applied to the gradient `g` of its output: one gradient per input, shaped like it
        (None for an input that needs none), as lesson 06's Node.input_grads; backward does it inline."""
        vjps = _vjps(self)
        return tuple(None if parent is None else np.asarray(vjps[i](g, self.ans, *self.args, **self.kwargs))
                     for i, parent in enumerate(self.parents))

    def release(self) -> None:
        """Forget the saved arrays (keep their shapes), so their memory can be reclaimed."""
        if not self.released:
            name = self.fun.__name__
            self.args = _drop(self.args, len(self.parents), name, released=True)
            if type(self.ans) is np.ndarray:
                self.ans = _Dropped(self.ans, name, released=True)
            self.released = True

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _topological_order(root: Node) -> list[Node]:
    """Nodes reachable from root, each once, every node before the nodes it sends gradients to."""
    order: list[Node] = []
    seen: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for parent in node.parents:
            if type(parent) is Node and parent not in seen:
                stack.append((parent, False))
    order.reverse()
    return order


def _vjps(node: Node) -> tuple:
    return V._VJPS.get(node.fun) or V.vjps_of(node.fun, len(node.parents))


# ------------------------------------------------------------------------------------------ operands
def _constant(value: Any, like: np.ndarray | None = None) -> Any:
    """A non-Tensor operand: scalars stay weak (never promote). In arithmetic (`like` given) integer
    arrays take the tensor's float dtype, as PyTorch's type promotion does; elsewhere (targets,
    conditions, indices) they are left alone."""
    if isinstance(value, np.generic) or (type(value) is np.ndarray and value.ndim == 0):
        return value.item()  # np.float64 is a subclass of float, yet numpy treats it as strongly typed
    if isinstance(value, (bool, int, float)):
        return value
    array = np.asarray(value)
    if like is not None and array.dtype.kind in "iu" and like.dtype.kind == "f":
        return array.astype(like.dtype)
    return array


def _apply(fun: Any, arrays: Sequence[Any], *params: Any, **kwargs: Any) -> Tensor:
    """Run primitive `fun` on `arrays` (Tensors or constants) and record it if a gradient is needed."""
    args = tuple([a.data if isinstance(a, Tensor) else _constant(a) for a in arrays])
    ans = fun(*args, *params, **kwargs)
    if type(ans) is not np.ndarray:
        ans = np.asarray(ans)
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._sink = ans, None, None
    edges = tuple([_edge(a) for a in arrays]) if _GradMode.enabled else ()
    if any(edges):
        out.requires_grad = True
        out.grad_fn = Node(fun, args + params, kwargs, ans, edges)
    else:
        out.requires_grad, out.grad_fn = False, None
    return out


def _unary(fun: Any, x: Tensor, *params: Any, **kwargs: Any) -> Tensor:
    """`_apply` for one Tensor operand (elementwise functions, reductions, reshapes)."""
    xd = x.data
    ans = fun(xd, *params, **kwargs)
    if type(ans) is not np.ndarray:
        ans = np.asarray(ans)
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._sink = ans, None, None
    if x.requires_grad and _GradMode.enabled:
        out.requires_grad = True
        out.grad_fn = Node(fun, (xd, *params), kwargs, ans, (_edge(x),))
    else:
        out.requires_grad, out.grad_fn = False, None
    return out


def _binary(fun: Any, x: Any, y: Any) -> Tensor:
    """`_apply` for two operands, written out because arithmetic is the hottest path in training."""
    if isinstance(x, Tensor):
        xd = x.data
        yd = y.data if isinstance(y, Tensor) else _constant(y, xd)
    else:
        yd = y.data
        xd = _constant(x, yd)
    ans = fun(xd, yd)
    if type(ans) is not np.ndarray:
        ans = np.asarray(ans)
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._sink = ans, None, None
    xg = isinstance(x, Tensor) and x.requires_grad
    yg = isinstance(y, Tensor) and y.requires_grad
    if (xg or yg) and _GradMode.enabled:
        out.requires_grad = True
        out.grad_fn = Node(fun, (xd, yd), {}, ans, (_edge(x) if xg else None, _edge(y) if yg else None))
    else:
        out.requires_grad, out.grad_fn = False, None
    return out


def _edge(t: Any) -> Node | AccumulateGrad | None:
    """Where gradients for operand `t` go: its grad_fn, its leaf sink, or nowhere."""
    if not isinstance(t, Tensor) or not t.requires_grad:
        return None
    if t.grad_fn is not None:
        return t.grad_fn
    if t._sink is None:
        t._sink = AccumulateGrad(t)
    return t._sink


def _exclusive(gi: np.ndarray, incoming: np.ndarray) -> bool:
    """True when nothing but `gi` can see its memory, so a leaf may keep it without copying.

    A VJP may return its incoming gradient or a view of it (reshape, transpose, broadcast), which other
    branches of the graph also hold. A fresh result, or a writable view of a fresh temporary that no one
    else references, is safe to keep (PyTorch's AccumulateGrad steals uniquely referenced gradients too).
    """
    if gi is incoming or not gi.flags.writeable:
        return False
    if gi.flags.owndata:
        return True
    base = gi.base
    return type(base) is np.ndarray and base.flags.owndata and sys.getrefcount(base) <= 3


def _wrong_shape(node: Node, i: int, got: tuple, want: tuple) -> None:
    raise RuntimeError(f"the VJP of {V._name(node.fun)} for argument {i} returned a gradient of shape {got}, "
                       f"but that argument has shape {want}: a VJP must return an array shaped like its "
                       f"argument (did it forget to unbroadcast?)")


# ---------------------------------------------------------------------------------------- the Tensor
class Tensor:
    """An n-dimensional array that records the operations applied to it, for reverse-mode gradients."""

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_sink", "__weakref__")
    __array_ufunc__ = None  # make ndarray (+) Tensor defer to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, (np.ndarray, np.generic)):
            array = np.asarray(data)
            if array.dtype.kind not in "fiub":
                raise TypeError(f"Tensor supports real numbers, got a numpy array of dtype {array.dtype}")
        else:
            array = np.asarray(data, dtype=np.float64)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients; this one has dtype "
                            f"{array.dtype} (convert with .astype(np.float64) first)")
        self.data: np.ndarray = array
        self.grad: np.ndarray | None = None
        self.requires_grad: bool = bool(requires_grad)
        self.grad_fn: Node | None = None
        self._sink: AccumulateGrad | None = None

    # ---------------------------------------------------------------- properties and conversions
    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def accumulator(self) -> AccumulateGrad:
        """This leaf's AccumulateGrad node (one per leaf, made when first asked for), as in lesson 06."""
        if self._sink is None:
            self._sink = AccumulateGrad(self)
        return self._sink

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        """The same values (shared memory), cut off from the graph."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = f", grad_fn=<{self.grad_fn.name}>" if self.grad_fn is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        dtype = "" if self.data.dtype == np.float64 else f", dtype={self.data.dtype}"
        return f"Tensor({body}{dtype}{extra})"

    # ------------------------------------------------------------------------------ backward
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf), contracted with `gradient`, into every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad: no input of the "
                               "computation had requires_grad=True (or it ran under no_grad()).")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient only works for a scalar output; this "
                                   f"tensor has shape {self.shape}. Pass gradient=<array of shape "
                                   f"{self.shape}> (the upstream gradient), or reduce to a scalar first, "
                                   f"e.g. .sum().")
            g = np.ones_like(self.data)
        else:
            g = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient, dtype=self.data.dtype)
            if g.shape != self.shape:
                raise ValueError(f"gradient has shape {g.shape} but the tensor has shape {self.shape}; "
                                 f"they must match")
        if self.grad_fn is None:
            self._accumulate(g, g)
            return
        grads: dict[Node, np.ndarray] = {self.grad_fn: g}
        table = V._VJPS
        for node in _topological_order(self.grad_fn):
            g = grads.pop(node)
            vjps = table.get(node.fun) or _vjps(node)
            for i, parent in enumerate(node.parents):
                if parent is None:
                    continue
                gi = vjps[i](g, node.ans, *node.args, **node.kwargs)
                if type(gi) is not np.ndarray:
                    gi = np.asarray(gi)
                if type(parent) is Node:
                    if gi.shape != parent.ans.shape:
                        _wrong_shape(node, i, gi.shape, parent.ans.shape)
                    previous = grads.get(parent)
                    grads[parent] = gi if previous is None else previous + gi
                else:
                    if gi.shape != parent.variable.data.shape:
                        _wrong_shape(node, i, gi.shape, parent.variable.data.shape)
                    parent.variable._accumulate(gi, g)
            if not (retain_graph or node.released):
                node.release()

    def _accumulate(self, gi: np.ndarray, incoming: np.ndarray) -> None:
        """Add a gradient into this leaf; copy it first when it may alias an array someone else holds."""
        if gi.dtype != self.data.dtype:
            gi = gi.astype(self.data.dtype)
        elif self.grad is None and not _exclusive(gi, incoming):
            gi = gi.copy()
        self.grad = gi if self.grad is None else self.grad + gi

    # ----------------------------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> Tensor:
        return _binary(V.add, self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _binary(V.add, other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _binary(V.subtract, self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _binary(V.subtract, other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _binary(V.multiply, self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _binary(V.multiply, other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _binary(V.divide, self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _binary(V.divide, other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _binary(V.power, self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _binary(V.power, other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _binary(V.matmul, self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _binary(V.matmul, other, self)

    def __neg__(self) -> Tensor:
        return _unary(V.negative, self)

    # ---------------------------------------------------------------------------- reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _unary(V.sum, self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _unary(V.mean, self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; ties share the gradient evenly (see reference_impl.vjp)."""
        return _unary(V.max, self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _unary(V.logsumexp, self, axis=axis, keepdims=keepdims)

    # ------------------------------------------------------------------------------- shaping
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return _unary(V.reshape, self, tuple(shape))

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])
        return _unary(V.transpose, self, tuple(axes) if axes else None)

    @property
    def T(self) -> Tensor:
        return _unary(V.transpose, self, None)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return _unary(V.broadcast_to, self, tuple(shape))

    def __getitem__(self, index: Any) -> Tensor:
        return _unary(V.getitem, self, _plain_index(index))

    # --------------------------------------------------------------------------- elementwise
    def exp(self) -> Tensor:
        return _unary(V.exp, self)

    def log(self) -> Tensor:
        return _unary(V.log, self)

    def sin(self) -> Tensor:
        return _unary(V.sin, self)

    def cos(self) -> Tensor:
        return _unary(V.cos, self)

    def tanh(self) -> Tensor:
        return _unary(V.tanh, self)

    def sigmoid(self) -> Tensor:
        return _unary(V.sigmoid, self)

    def relu(self) -> Tensor:
        """max(x, 0); its derivative at 0 is taken as 0, as in PyTorch."""
        return _unary(V.relu, self)

    def abs(self) -> Tensor:
        return _unary(V.abs, self)

    def softmax(self, axis: int = -1) -> Tensor:
        return _unary(V.softmax, self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _unary(V.log_softmax, self, axis=axis)


def _plain_index(index: Any) -> Any:
    """Indices may contain Tensors (e.g. integer targets); the primitive wants numpy values."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


# ------------------------------------------------------------------------------------- functional
def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean cross-entropy of (N, C) logits against (N,) integer class indices, fused and stable."""
    targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    return _apply(V.cross_entropy, (logits, targets))


def apply(fun: Any, *args: Any, **kwargs: Any) -> Tensor:
    """Call a primitive registered with `reference_impl.vjp.defvjp` on Tensors and record it: how a new
    operation joins the Tensor. Its leading array arguments (one per registered VJP) may be Tensors;
    further positional and keyword arguments are passed through as parameters."""
    n = len(V.vjps_of(fun)) if fun in V._VJPS else len(args)  # concatenate/stack: every positional
    return _apply(fun, args[:n], *args[n:], **kwargs)


def linear(x: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, recorded as one node (the fused `linear` primitive of reference_impl.vjp)."""
    if bias is None:
        return x @ weight.T if isinstance(x, Tensor) else Tensor(x) @ weight.T
    return _apply(V.linear, (x, weight, bias))


def where(condition: Any, x: Any, y: Any) -> Tensor:
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    return _apply(V.where, (condition, x, y))


def maximum(x: Any, y: Any) -> Tensor:
    """Elementwise maximum; at ties each input receives half of the gradient (as in PyTorch)."""
    return _binary(V.maximum, x, y)


def minimum(x: Any, y: Any) -> Tensor:
    return _binary(V.minimum, x, y)


def concatenate(tensors: Iterable[Any], axis: int = 0) -> Tensor:
    return _apply(V.concatenate, tuple(tensors), axis=axis)


def stack(tensors: Iterable[Any], axis: int = 0) -> Tensor:
    return _apply(V.stack, tuple(tensors), axis=axis)


def logsumexp(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    return _unary(V.logsumexp, x, axis=axis, keepdims=keepdims)


def graph_nodes(t: Tensor) -> Iterator[Node]:
    """Every node of the graph that produced `t`, outputs before inputs (handy for printing a graph)."""
    return iter(_topological_order(t.grad_fn)) if t.grad_fn is not None else iter(())
