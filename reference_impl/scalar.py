"""Scalar reverse-mode automatic differentiation: the `Value` engine.

A `Value` wraps one float.  Every arithmetic operation on Values builds a new Value that remembers its
inputs (`inputs`) and the primitive that made it (`op`).  `backward()` then walks that graph once, from
the output back to the leaves, applying the chain rule.

The course's one contract: a primitive knows its forward and, for each input, its vector-Jacobian
product ``vjp(g, ans, *inputs)`` -- ``g`` is the upstream gradient d(root)/d(ans), ``ans`` the primitive's
output and ``inputs`` the input values (plain floats here).  Each `Op` below sits right beside the method
that computes its forward.  A node stores a reference to its shared `Op`, not a closure, and its one
or two inputs in two slots rather than a ``_prev`` tuple.  Both were measured while designing this on a
10^5-node graph: a closure per node (a function object and cells, plus a reference cycle for the
garbage collector) made building the graph several times slower, and the tuple cost 23 % more memory
and a slower backward pass.  bench/bench_scalar.py measures the result against micrograd.

Gradient semantics (PyTorch's rule):

* leaves (Values made by the user, with no inputs) ACCUMULATE: each ``backward()`` sums its own
  gradient from zero and then adds it into ``leaf.grad`` once, until `zero_grad` resets it, so calling
  ``backward()`` twice gives exactly (bit for bit) twice the leaf gradients;
* non-leaf grads are NOT accumulated: each ``backward()`` first resets every non-leaf node it reaches to
  0 and recomputes it, so after the call ``node.grad`` holds d(root)/d(node) for that call only;
* each node's local backward runs exactly once per call (an iterative topological sort, so graphs of
  any depth work), and contributions from several consumers add up.

Conventions: relu'(0) = 0 (as PyTorch); ``a ** b`` with a Value exponent needs a >= 0 (a clear
ValueError otherwise, never a silent NaN), because d/db a**b = a**b log(a) is not real for a < 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from types import NotImplementedType

__all__ = ["Op", "Value", "topological_order", "zero_grad"]

Vjp = Callable[..., float]


class Op:
    """The backward half of a primitive: its name and one ``vjp(g, ans, *inputs)`` per input.

    A ``None`` VJP marks an input the primitive is not differentiable in (a constant exponent).
    """

    __slots__ = ("name", "vjps")

    def __init__(self, name: str, *vjps: Vjp | None) -> None:
        self.name = name
        self.vjps = vjps

    def __repr__(self) -> str:
        return f"Op({self.name!r})"


def _lift(x: object) -> Value | NotImplementedType:
    """Wrap a plain real number as a constant leaf; anything else is not ours to combine with."""
    if isinstance(x, Value):
        return x
    if isinstance(x, numbers.Real):
        return Value(x)
    return NotImplemented


def _leaf_float(data: object) -> float:
    if isinstance(data, Value):
        raise TypeError("Value(...) got a Value; use it directly instead of wrapping it again")
    if isinstance(data, bool) or not isinstance(data, numbers.Real):
        raise TypeError(f"Value needs a real number, got {type(data).__name__}: {data!r}")
    return float(data)


def _sech2(a: float) -> float:
    e = math.exp(-2.0 * abs(a))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _sigmoid_slope(a: float) -> float:
    e = math.exp(-abs(a))
    return e / ((1.0 + e) * (1.0 + e))


def _pow_vjp_base(g: float, ans: float, a: float, b: float) -> float:
    # d/da a**b = b * a**(b-1); written without ans/a so that a == 0 works.
    if b == 0.0:
        return 0.0
    if a == 0.0 and b < 1.0:
        raise ZeroDivisionError(f"the derivative of a**{b} is infinite at a = 0; move the input away from 0")
    return g * b * a ** (b - 1.0)


def _pow_vjp_exponent(g: float, ans: float, a: float, b: float) -> float:
    # d/db a**b = a**b * log(a).  At a == 0 (only reachable with b > 0) a**b is constant 0: gradient 0.
    if a == 0.0:
        return 0.0
    return g * ans * math.log(a)


class Value:
    """One float in a computation graph and its gradient (``grad``; accumulation rules above)."""

    # _a, _b: the inputs of the op that made this node (_b is None for one-input ops, both None for leaves).
    __slots__ = ("data", "grad", "_a", "_b", "_op")
    # Make numpy hand `ndarray * Value` back to us (and then fail clearly) instead of building object arrays.
    __array_ufunc__ = None

    def __init__(
        self, data: float, _a: Value | None = None, _b: Value | None = None, _op: Op | None = None
    ) -> None:
        if _op is None:
            # A leaf made by a user: validate.  Nodes made by the ops below are trusted.
            if type(data) is not float:
                data = _leaf_float(data)
            if not math.isfinite(data):
                raise ValueError(f"Value needs a finite number, got {data}")
        self.data = data
        self.grad = 0.0
        self._a = _a
        self._b = _b
        self._op = _op

    def __repr__(self) -> str:
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    @property
    def is_leaf(self) -> bool:
        """True for Values made by the user (and wrapped constants): their grads accumulate."""
        return self._op is None

    @property
    def inputs(self) -> tuple[Value, ...]:
        """The Values this one was computed from (empty for a leaf)."""
        if self._a is None:
            return ()
        if self._b is None:
            return (self._a,)
        return (self._a, self._b)

    @property
    def op(self) -> str:
        """The name of the primitive that made this Value ('' for a leaf); used when drawing graphs."""
        return "" if self._op is None else self._op.name

    # -- addition: d(a+b)/da = 1, d(a+b)/db = 1 ---------------------------------------------------
    _add = Op("+", lambda g, ans, a, b: g, lambda g, ans, a, b: g)

    def __add__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return Value(self.data + other.data, self, other, Value._add)

    def __radd__(self, other: float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return Value(other.data + self.data, other, self, Value._add)

    # -- subtraction: d(a-b)/da = 1, d(a-b)/db = -1 -----------------------------------------------
    _sub = Op("-", lambda g, ans, a, b: g, lambda g, ans, a, b: -g)

    def __sub__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return Value(self.data - other.data, self, other, Value._sub)

    def __rsub__(self, other: float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return Value(other.data - self.data, other, self, Value._sub)

    # -- multiplication: d(ab)/da = b, d(ab)/db = a -----------------------------------------------
    _mul = Op("*", lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a)

    def __mul__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return Value(self.data * other.data, self, other, Value._mul)

    def __rmul__(self, other: float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return Value(other.data * self.data, other, self, Value._mul)

    # -- division: d(a/b)/da = 1/b, d(a/b)/db = -a/b**2 = -ans/b ----------------------------------
    _div = Op("/", lambda g, ans, a, b: g / b, lambda g, ans, a, b: -g * ans / b)

    def __truediv__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return _divide(self, other)

    def __rtruediv__(self, other: float) -> Value:
        if not isinstance(other, Value):
            other = _lift(other)
            if other is NotImplemented:
                return NotImplemented
        return _divide(other, self)

    # -- power: d(a**b)/da = b a**(b-1); d(a**b)/db = a**b log a (only for a Value exponent) --------
    _pow = Op("**", _pow_vjp_base, _pow_vjp_exponent)
    _pow_const = Op("**", _pow_vjp_base, None)

    def __pow__(self, exponent: Value | float) -> Value:
        exponent_is_value = isinstance(exponent, Value)
        exponent = _lift(exponent)
        if exponent is NotImplemented:
            return NotImplemented
        return _power(self, exponent, exponent_is_value)

    def __rpow__(self, base: float) -> Value:
        base = _lift(base)
        if base is NotImplemented:
            return NotImplemented
        return _power(base, self, True)

    def power(self, k: float) -> Value:
        """``self ** k`` for a plain number k: the name lesson 03's Value uses for it."""
        if isinstance(k, Value):
            raise TypeError("power(k) takes a plain number; use a ** b for a Value exponent")
        return self ** k

    # -- negation: d(-a)/da = -1 ------------------------------------------------------------------
    _neg = Op("neg", lambda g, ans, a: -g)

    def __neg__(self) -> Value:
        return Value(-self.data, self, None, Value._neg)

    # -- exp: d exp(a)/da = exp(a) = ans -----------------------------------------------------------
    _exp = Op("exp", lambda g, ans, a: g * ans)

    def exp(self) -> Value:
        try:
            out = math.exp(self.data)
        except OverflowError:
            raise OverflowError(
                f"exp({self.data}) overflows float64 (the largest finite result is at about 709.78)"
            ) from None
        return Value(out, self, None, Value._exp)

    # -- log: d log(a)/da = 1/a --------------------------------------------------------------------
    _log = Op("log", lambda g, ans, a: g / a)

    def log(self) -> Value:
        if self.data <= 0.0:
            raise ValueError(f"log is only defined for positive numbers, got {self.data}")
        return Value(math.log(self.data), self, None, Value._log)

    # -- sin, cos: d sin(a)/da = cos(a), d cos(a)/da = -sin(a) -------------------------------------
    _sin = Op("sin", lambda g, ans, a: g * math.cos(a))
    _cos = Op("cos", lambda g, ans, a: -g * math.sin(a))

    def sin(self) -> Value:
        return Value(math.sin(self.data), self, None, Value._sin)

    def cos(self) -> Value:
        return Value(math.cos(self.data), self, None, Value._cos)

    # -- tanh: d tanh(a)/da = 1 - tanh(a)**2 = 4 e / (1 + e)**2 with e = exp(-2|a|) ------------------
    # The second form keeps full relative precision where 1 - ans**2 cancels (|a| > ~5) and never
    # overflows; math.tanh itself saturates cleanly to +-1.
    _tanh = Op("tanh", lambda g, ans, a: g * _sech2(a))

    def tanh(self) -> Value:
        return Value(math.tanh(self.data), self, None, Value._tanh)

    # -- sigmoid: s(a) = 1/(1+exp(-a)), s'(a) = s(1-s) = e / (1 + e)**2 with e = exp(-|a|) ----------
    # exp only ever of a non-positive number, so nothing overflows; the e-form of s' avoids the
    # cancellation in 1 - s for large a.
    _sigmoid = Op("sigmoid", lambda g, ans, a: g * _sigmoid_slope(a))

    def sigmoid(self) -> Value:
        a = self.data
        if a >= 0.0:
            out = 1.0 / (1.0 + math.exp(-a))
        else:
            e = math.exp(a)
            out = e / (1.0 + e)
        return Value(out, self, None, Value._sigmoid)

    # -- relu: relu'(a) = 1 if a > 0 else 0 (so relu'(0) = 0, as in PyTorch) -----------------------
    _relu = Op("relu", lambda g, ans, a: g if a > 0.0 else 0.0)

    def relu(self) -> Value:
        a = self.data
        return Value(a if a > 0.0 else 0.0, self, None, Value._relu)

    # -- the backward pass -------------------------------------------------------------------------
    def backward(self, grad: float = 1.0) -> None:
        """Add ``grad`` times d(self)/d(leaf) into every leaf's ``.grad``; recompute non-leaf grads.

        ``grad`` is the upstream gradient seeded at this node (1.0 for an ordinary loss).
        """
        if isinstance(grad, bool) or not isinstance(grad, numbers.Real) or not math.isfinite(grad):
            raise ValueError(f"backward(grad) needs a finite real number, got {grad!r}")
        order = topological_order(self)
        # This call's gradients are summed from zero everywhere; leaves then get their old grad added
        # back once at the end (as PyTorch's AccumulateGrad does), so two calls give exactly 2x.
        leaves = []
        held = []
        for node in order:
            if node._op is None:
                leaves.append(node)
                held.append(node.grad)
            node.grad = 0.0
        self.grad = float(grad)
        for node in reversed(order):
            op = node._op
            if op is None:
                continue
            g = node.grad
            ans = node.data
            a = node._a
            b = node._b
            if b is not None:
                x = a.data
                y = b.data
                vjp_a, vjp_b = op.vjps
                a.grad += vjp_a(g, ans, x, y)
                if vjp_b is not None:
                    b.grad += vjp_b(g, ans, x, y)
            else:
                a.grad += op.vjps[0](g, ans, a.data)
        for leaf, old in zip(leaves, held, strict=True):
            leaf.grad += old


def _divide(a: Value, b: Value) -> Value:
    if b.data == 0.0:
        raise ZeroDivisionError(f"division of Value({a.data}) by zero")
    return Value(a.data / b.data, a, b, Value._div)


def _power(base: Value, exponent: Value, exponent_is_value: bool) -> Value:
    a, b = base.data, exponent.data
    if exponent_is_value and a < 0.0:
        raise ValueError(
            f"Value ** Value needs a non-negative base, got {a}: the gradient with respect to the exponent, "
            "a**b * log(a), is not a real number for a < 0. Use a plain number as the exponent if you "
            "do not need that gradient."
        )
    if a < 0.0 and not b.is_integer():
        raise ValueError(f"{a} ** {b} is not a real number (negative base, non-integer exponent)")
    if a == 0.0 and b < 0.0:
        raise ZeroDivisionError(f"0 ** {b} is infinite (zero raised to a negative power)")
    try:
        out = a**b
    except OverflowError:
        raise OverflowError(f"{a} ** {b} overflows float64") from None
    return Value(out, base, exponent, Value._pow if exponent_is_value else Value._pow_const)


def topological_order(root: Value) -> list[Value]:
    """Every node reachable from ``root``, each input before the nodes that use it (root last).

    Iterative depth-first search, so a graph 100 000 nodes deep needs no recursion.
    """
    if not isinstance(root, Value):
        raise TypeError(f"expected a Value, got {type(root).__name__}")
    order: list[Value] = []
    seen: set[Value] = set()
    stack: list[Value | None] = [root]
    while stack:
        node = stack.pop()
        if node is None:
            # Marker: every input of the node below it has been placed in `order`.
            order.append(stack.pop())
            continue
        if node in seen:
            # Pushed twice, already expanded.  (Marking nodes only when they are expanded, not when they
            # are pushed, is what guarantees inputs come first: see tests/test_scalar.py.)
            continue
        seen.add(node)
        stack.append(node)
        stack.append(None)
        a = node._a
        if a is not None:
            if a not in seen:
                stack.append(a)
            b = node._b
            if b is not None and b not in seen:
                stack.append(b)
    return order


def zero_grad(roots: Value | Iterable[Value]) -> None:
    """Set ``.grad`` to 0 on every node of the graph(s) ending at ``roots`` (leaves included)."""
    if isinstance(roots, Value):
        roots = (roots,)
    for root in roots:
        for node in topological_order(root):
            node.grad = 0.0
