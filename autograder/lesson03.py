"""Visible checks for lesson 03 (scalar backprop), and the graph drawing its notebook uses.

The lesson builds its `Value` class one method at a time, so each check tests ONE piece, in a student's kit
as well as on the grader's machine:

* an operation's check calls its `_backward` closure directly on one-op graphs, then records every node the
  operation makes in random expressions and replays each one alone (value against float math, the gradient
  it sends to each input against finite differences): no backward pass is involved;
* the backprop check builds graphs of its own linear nodes, whose local rules are the check's, so none of the
  student's operations is involved; the topological-sort check needs no other method at all;
* the network and training checks need a whole engine. In a student's kit, which must hold no working
  engine (it would answer the lesson), they use the student's own, say so, and when they fail replay the
  recorded graph node by node to name the first operation whose own gradient is wrong, or the backward pass
  if it fails on a small graph. When graded they use an isolated engine around the code under test (float
  forwards, complex-step slopes, a level-order sweep: none of the lesson's formulas or its search), so one
  bug costs one exercise's points.

When graded, the student's objects live in the grading kernel: each check runs its cases there through a
probe (`run_body`, and the `*_observations` probes the hidden checks use), which returns the pass line or the
failure text as data; a pass is only accepted together with the hidden checks' comparisons, made in the
grader against `reference_impl.scalar` on inputs the grader draws.

Every check draws fresh random inputs, compares values with float math and gradients with float64 finite
differences (`autograder.checks`), names the operation that is wrong, and prints one line when it passes.
"""

from __future__ import annotations

import cmath
import contextlib
import dataclasses
import functools
import gc
import inspect
import io
import math
import re
import sys
from collections.abc import Callable, Iterator

import numpy as np

from autograder.checks import (
    CheckFailure,
    NotDone,
    StudentObject,
    as_real,
    call_student,
    check_gradient,
    close,
    in_kernel,
    new_seed,
    passed,
    quiet,
    repeatable,
    reworded,
    student_function,
)

__all__ = [
    "check_add",
    "check_mul",
    "check_power",
    "check_exp",
    "check_log",
    "check_tanh",
    "check_relu",
    "check_sigmoid",
    "check_topological_sort",
    "check_backprop",
    "check_mlp",
    "check_train_step",
    "draw_graph",
]



# --------------------------------------------------------------------------------------------------
# Isolation: on the grader's machine the other primitives and the backward pass are trusted ones; in a
# student's kit (which must not contain a working engine: it would answer the lesson) they are the
# student's own methods, and a failure message says so.
# --------------------------------------------------------------------------------------------------

_COMPLEX: dict[str, Callable] = {
    "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "exp": cmath.exp, "log": cmath.log,
    "tanh": cmath.tanh, "sigmoid": lambda z: 0.5 * (1.0 + cmath.tanh(0.5 * z)),
}


def _numeric_slopes(op: str, xs: tuple[float, ...], k: float) -> list[float]:
    """The local slopes of one primitive at `xs`, by the complex step f(x + ih).imag / h (exact to rounding
    for these analytic functions, and no derivative formula written out); relu's by the lesson's rule."""
    if op == "relu":
        return [1.0 if xs[0] > 0 else 0.0]
    h, slopes = 1e-30, []
    for i in range(len(xs)):
        z = [complex(x) for x in xs]
        z[i] += 1j * h
        value = z[0] ** k if op == "power" else _COMPLEX[op](*z)
        slopes.append(float(value.imag) / h)
    return slopes


def _numeric_op(op: str) -> Callable:
    """A primitive for the isolated engine: forward with float math, local slopes by the complex step."""

    def method(self, *args: object) -> object:
        k = 0.0
        if op in _BINARY:
            other = args[0] if isinstance(args[0], type(self)) else type(self)(float(args[0]))
            inputs: tuple = (self, other)
            data = self.data + other.data if op == "add" else self.data * other.data
        elif op == "power":
            k, inputs = float(args[0]), (self,)
            data = self.data**k
        else:
            inputs = (self,)
            data = _FORWARD[op](self.data)
        out = type(self)(data, inputs, op)

        def _backward() -> None:
            slopes = _numeric_slopes(op, tuple(float(x.data) for x in inputs), k)
            for x, slope in zip(inputs, slopes, strict=True):
                x.grad += slope * out.grad

        out._backward = _backward
        return out

    method.__name__ = _METHOD_OF[op]
    return method


def _numeric_backward(self) -> None:
    """The isolated engine's backward: forward mode, not the lesson's reverse sweep. Walking the nodes inputs
    first (by distance from a leaf, not the lesson's search), each node's derivative with respect to every
    leaf at once is the sum over its inputs of (its local slope for that input) x (the input's derivative);
    a node's local slopes are what its own _backward adds per unit of out.grad. The root's derivatives
    are then added into the leaves' grads."""
    nodes = _level_order(self)
    leaves = [n for n in nodes if not n.inputs]
    column = {id(leaf): k for k, leaf in enumerate(leaves)}
    tangent: dict[int, np.ndarray] = {}
    for n in nodes:
        t = np.zeros(len(leaves))
        if not n.inputs:
            t[column[id(n)]] = 1.0
        for x, slope in _local_slopes(n):
            t += slope * tangent[id(x)]
        tangent[id(n)] = t
    for leaf, d in zip(leaves, tangent[id(self)], strict=True):
        leaf.grad += float(d)


_PROBE_GRAD = 1.618033988749895


def _local_slopes(node: object) -> list[tuple[object, float]]:
    """(input, what the node's _backward sends it per unit of out.grad) for each distinct input, measured
    with an out.grad other than 1 (a rule that drops out.grad shows); every grad it touches is put back."""
    inputs = [x for k, x in enumerate(node.inputs) if all(x is not w for w in node.inputs[:k])]
    if not inputs:
        return []
    held, out_grad = [x.grad for x in inputs], node.grad
    try:
        for x in inputs:
            x.grad = 0.0
        node.grad = _PROBE_GRAD
        push = node._backward
        push()
        return [(x, float(x.grad) / _PROBE_GRAD) for x in inputs]
    finally:
        for x, g in zip(inputs, held, strict=True):
            x.grad = g
        node.grad = out_grad


class _Isolated:
    """The engine a graded check installs around the exercise under test, so that one wrong method costs
    only its own exercise's points: float forwards, complex-step slopes and a level-order sweep. It lives in
    the kernel with the student's class; the grader judges the numbers it helps produce against its own."""

    @property
    def TRUSTED(self) -> dict[str, Callable]:  # noqa: N802 - the name the checks look the engine up by
        return {**{name: _numeric_op(op) for op, name in _METHOD_OF.items()}, "backward": _numeric_backward}


_NUMERIC = _Isolated()
_trusted: _Isolated | None = None  # set while a graded check runs in the kernel (see run_body)

_OWN_ENGINE_NOTE = ("\n  (This check uses your own versions of the other Value methods and of backward: "
                    "if their checks fail, fix those first.)")

_MISSING = object()


@contextlib.contextmanager
def _engine(Value: type, **under_test: Callable) -> Iterator[None]:
    """Trusted primitives for everything but the methods under test when the grader has them (so one bug
    costs one exercise's points), else the student's own; the class is restored afterwards either way."""
    if not isinstance(Value, type):
        raise CheckFailure(f"pass the Value class itself to the check, got {type(Value).__name__}")
    methods = under_test if _trusted is None else {**_trusted.TRUSTED, **under_test}
    saved = {name: Value.__dict__.get(name, _MISSING) for name in methods}
    try:
        for name, fn in methods.items():
            setattr(Value, name, fn)
        yield
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                delattr(Value, name)
            else:
                setattr(Value, name, old)


def _noting_own_engine(*ops: str) -> Callable[[Callable], Callable]:
    """A check that runs on the student's own engine (in the kit) and builds its graphs with `ops`: when it
    fails, an op that fails its own test is named as the cause instead; else the note above is added."""

    def decorate(check: Callable) -> Callable:
        @functools.wraps(check)
        def run(*args: object, **kwargs: object) -> None:
            with reworded(lambda exc: _own_engine_failure(exc, args[-1], ops)):
                check(*args, **kwargs)

        return run

    return decorate


_EXERCISE = {"add": 2, "mul": 2, "power": 3, "exp": 4, "log": 4, "tanh": 5, "relu": 5, "sigmoid": 5}


def _own_engine_failure(exc: CheckFailure, Value: type, ops: tuple[str, ...]) -> str:
    if _trusted is not None or isinstance(exc, _StoppedElsewhere):
        return str(exc)
    if "likely culprit is not this exercise" in str(exc):
        return str(exc)
    for op in ops:
        broken = _own_test_failure(Value, op)
        if broken:
            return (f"This check builds its graphs with your Value operations, and your {_LABEL[op]} fails "
                    f"its own test (exercise {_EXERCISE[op]}, test_{op}): {broken.splitlines()[0]}\n"
                    f"  Fix `{op}` first, then run this test cell again.")
    return f"{exc}{_OWN_ENGINE_NOTE}"


def _own_test_failure(Value: type, op: str) -> str:
    """The failure of the student's `op` in its own check at a fixed seed, or '' (passed, or not written)."""
    method = Value.__dict__.get(_METHOD_OF[op])
    if not callable(method):
        return ""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _BODIES[op](method, Value, seed=0)
    except NotDone:
        return ""
    except CheckFailure as failure:
        return str(failure)
    return ""


@contextlib.contextmanager
def _creation_log(Value: type) -> Iterator[list]:
    """Record every Value created inside the block, in creation order. A node is always created after its
    inputs, so the log restricted to what the root depends on is a valid order to check against, without
    the checker containing the graph search the students write."""
    log: list = []
    saved = Value.__dict__.get("__init__", _MISSING)
    init = Value.__init__

    def recording_init(self, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)
        log.append(self)

    Value.__init__ = recording_init
    try:
        yield log
    finally:
        if saved is _MISSING:
            delattr(Value, "__init__")
        else:
            Value.__init__ = saved


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a check builds graphs of thousands of Values: each Value
    and its _backward closure form a cycle, and the collector would otherwise rescan them again and again
    (it more than halves the time of the deep-graph checks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _logged_order(root, log: list) -> list:
    """The logged nodes the root depends on (root included), in creation order."""
    needed = {id(root)}
    for node in reversed(log):
        if id(node) in needed:
            needed.update(id(p) for p in node.inputs)
    order = [node for node in log if id(node) in needed]
    if not order or order[-1] is not root:
        raise RuntimeError("the check built a node outside its creation log")  # pragma: no cover
    return order


class _StoppedElsewhere(CheckFailure):
    """Student code stopped inside another exercise's function: the message names that exercise, and no
    hint of the check itself (or note on the student's engine) is added to it."""


def _call(what: str, fn: Callable, *args: object, own: tuple | None = None) -> object:
    """Run student code (autograder.checks.call_student) and add what only this lesson can say: a plain
    number where a Value was expected, and, for a check that runs one exercise on top of others (`own` lists
    the code objects of the exercise itself), which other exercise it stopped in, unfinished or raising."""
    try:
        return call_student(what, fn, *args)
    except NotDone as exc:
        stopped = student_function(exc.__context__) if exc.__context__ is not None else "?"
        if own is not None and stopped != "?" and stopped not in {code.co_name for code in own}:
            raise _StoppedElsewhere(f"{what} stopped in `{stopped}`, which still raises "
                                    "NotImplementedError: complete that exercise first, then run this test "
                                    "cell again.") from None
        raise NotDone(_exercise(what)) from None
    except CheckFailure as exc:
        if any(f"raised AttributeError: '{t}' object" in str(exc) for t in ("int", "float")):
            raise CheckFailure(f"{exc}. A plain number reached code that expects a Value: wrap the other "
                               "operand with as_value(other) before using .data or .grad.") from None
        error = exc.__context__
        stopped = student_function(error) if error is not None else "?"
        if own is not None and stopped in _EXERCISE_FUNCTIONS - {code.co_name for code in own}:
            raise _StoppedElsewhere(f"{what} stopped in `{stopped}`, which raised {type(error).__name__}: "
                                    f"{error}. The likely culprit is not this exercise: fix `{stopped}` "
                                    f"first (its own test cell, test_{stopped}, checks it), then run this "
                                    "test cell again.") from None
        raise


def _exercise(what: str) -> str:
    """The plain name a check's label starts with (`add`, `Neuron`): what a blank answer's NotDone names,
    without the case the check was building."""
    name = re.match(r"`?(\w+)", what)
    return f"`{name.group(1)}`" if name else what


def _codes(*objects: object) -> tuple:
    """The code objects of functions and of every method of classes: an exercise's own code."""
    found = []
    for obj in objects:
        members = vars(obj).values() if isinstance(obj, type) else (obj,)
        found.extend(m.__code__ for m in members if hasattr(m, "__code__"))
    return tuple(found)


# --------------------------------------------------------------------------------------------------
# Random expressions: a straight-line program over a few leaves, evaluated both with float math (the
# trusted forward for finite differences) and with Value methods (what is checked).
# --------------------------------------------------------------------------------------------------

_BINARY = {"add": "__add__", "mul": "__mul__"}

# The plain float math each one-input primitive computes (forward only: the derivatives are the exercise).
_FORWARD: dict[str, Callable[[float], float]] = {
    "exp": math.exp, "log": math.log, "tanh": math.tanh, "relu": lambda x: max(x, 0.0),
    "sigmoid": lambda x: 0.5 * (1.0 + math.tanh(0.5 * x)),
}


@dataclasses.dataclass
class Expression:
    """A random straight-line program: steps ("add", i, j), ("mul", i, j), ("power", i, k), (unary, i)."""

    n_leaves: int
    steps: list[tuple]

    def floats(self, xs: object) -> list[float]:
        vals = [float(x) for x in np.asarray(xs, dtype=float).ravel()]
        for step in self.steps:
            op, i = step[0], step[1]
            if op == "add":
                vals.append(vals[i] + vals[step[2]])
            elif op == "mul":
                vals.append(vals[i] * vals[step[2]])
            elif op == "power":
                vals.append(vals[i] ** step[2])
            else:
                vals.append(_FORWARD[op](vals[i]))
        return vals

    def build(self, Value: type, xs: object) -> tuple[list, object]:
        """Leaves as fresh Values, and the root built with the class's methods."""
        leaves = [Value(float(x)) for x in np.asarray(xs, dtype=float).ravel()]
        nodes = list(leaves)
        for step in self.steps:
            op, i = step[0], step[1]
            if op in _BINARY:
                nodes.append(getattr(nodes[i], _BINARY[op])(nodes[step[2]]))
            elif op == "power":
                nodes.append(nodes[i].power(step[2]))
            else:
                nodes.append(getattr(nodes[i], op)())
        return leaves, nodes[-1]

    def text(self) -> str:
        names = [f"x{k}" for k in range(self.n_leaves)]
        lines = []
        for n, step in enumerate(self.steps):
            op, i = step[0], step[1]
            name = f"t{n}"
            if op == "add":
                rhs = f"{names[i]} + {names[step[2]]}"
            elif op == "mul":
                rhs = f"{names[i]} * {names[step[2]]}"
            elif op == "power":
                rhs = f"{names[i]} ** {step[2]:g}"
            else:
                rhs = f"{names[i]}.{op}()"
            lines.append(f"{name} = {rhs}")
            names.append(name)
        return "; ".join(lines)


def _allowed(op: str, v: float) -> bool:
    """Keep every primitive well inside its domain and away from kinks, so finite differences are exact."""
    if abs(v) > 20:
        return op in ("tanh", "sigmoid", "log") and (op != "log" or v > 0)
    return {
        "log": v > 0.3,
        "exp": v < 3.0,
        "relu": abs(v) > 0.1,
        "power": abs(v) > 0.3,
    }.get(op, True)


def random_expression(rng: np.random.Generator, focus: str, others: tuple[str, ...],
                      n_leaves: int = 3, n_steps: int = 9) -> tuple[Expression, np.ndarray]:
    """A random expression that uses `focus` at least three times, and a point where it is smooth."""
    for _ in range(200):
        xs = rng.uniform(0.4, 1.6, n_leaves) * rng.choice([-1.0, 1.0], n_leaves)
        vals = list(xs)
        steps: list[tuple] = []
        for _ in range(50 * n_steps):
            if len(steps) == n_steps:
                break
            op = focus if (len(steps) % 2 == 0 or rng.random() < 0.3) else str(rng.choice(others))
            candidates = [i for i, v in enumerate(vals) if _allowed(op, v)]
            if not candidates:  # e.g. log with no positive node yet: let another op make one
                op = str(rng.choice(others))
                candidates = [i for i, v in enumerate(vals) if _allowed(op, v)]
                if not candidates:
                    continue
            i = int(rng.choice(candidates))
            if op in _BINARY:
                step: tuple = (op, i, int(rng.integers(len(vals))))
            elif op == "power":
                k = float(rng.choice([2.0, 3.0, -1.0, 0.5, 1.5, -2.0]))
                if k != int(k) and vals[i] <= 0.3:
                    k = 2.0
                step = (op, i, k)
            else:
                step = (op, i)
            new = Expression(len(vals), [step]).floats(vals)[-1]
            if not math.isfinite(new) or abs(new) > 1e3:
                continue
            vals.append(new)
            steps.append(step)
        if len(steps) < n_steps or sum(step[0] == focus for step in steps) < 3:
            continue
        # Combine the last few nodes so that most of the program reaches the root, with + when it is
        # written (in a kit where exercise 2 is still blank, with * or not at all: the focus is tested alone).
        combine = next((op for op in _BINARY if op in (focus, *others)), None)
        last = len(vals) - 1
        for j in range(last - 1, max(n_leaves - 1, last - 4), -1) if combine else ():
            steps.append((combine, j, len(vals) - 1))
            vals.append(Expression(len(vals), [steps[-1]]).floats(vals)[-1])
        expr = Expression(n_leaves, steps)
        if all(math.isfinite(v) for v in expr.floats(xs)):
            return expr, xs
    raise RuntimeError("could not draw a well-conditioned random expression")  # pragma: no cover


OPS = ("add", "mul", "power", "exp", "log", "tanh", "relu", "sigmoid")  # every primitive an exercise writes
_METHOD_OF = {**_BINARY, **{op: op for op in OPS if op not in _BINARY}}
PRIMITIVES = tuple(_METHOD_OF.values())  # the methods the lesson's exercises put on `Value`
_EXERCISE_FUNCTIONS = frozenset({*OPS, "topological_sort", "backprop"})  # what a network check runs on
_LABEL = {"add": "`add` (a + b)", "mul": "`mul` (a * b)", "power": "`power` (a ** k)",
          **{op: f"`{op}` (a.{op}())" for op in _FORWARD}}
_HINT = {
    "add": "Each input gets out.grad times the local derivative of a + b with respect to that input.",
    "mul": "Each input gets out.grad times the local derivative of a * b with respect to that input.",
    "power": "The local derivative of a**k is k * a**(k-1), times out.grad.",
    "exp": "d/da exp(a) = exp(a): multiply out.grad by the OUTPUT value.",
    "log": "d/da log(a) = 1/a, with a the INPUT value (self.data), times out.grad.",
    "tanh": "d/da tanh(a) = 1 - t**2 where t = tanh(a) is the OUTPUT (not 1 - a**2), times out.grad.",
    "sigmoid": "d/da sigmoid(a) = s * (1 - s) where s = sigmoid(a) is the OUTPUT (not a * (1 - a)), times "
               "out.grad.",
    "relu": "relu passes out.grad through where the input a > 0 and sends 0 where a <= 0.",
}


def _works(Value: type, op: str) -> bool:
    """Whether the class's `op` runs on a small example: in a student's kit, random expressions use only the
    methods the student has already written."""
    try:
        with quiet():
            a = Value(0.7)
            if op == "power":
                out = a.power(2.0)
            elif op in _BINARY:
                out = getattr(a, _BINARY[op])(Value(1.3))
            else:
                out = getattr(a, op)()
    except Exception:  # noqa: BLE001 - a missing or unfinished method is simply not used
        return False
    return isinstance(out, Value)


def _usable_ops(Value: type, focus: str) -> tuple[str, ...]:
    others = tuple(op for op in OPS if op != focus)
    if _trusted is None:
        others = tuple(op for op in others if _works(Value, op))
    return others or (focus,)


# --------------------------------------------------------------------------------------------------
# Graph replay: every primitive call made while a check runs is recorded; when a gradient is wrong, each
# recorded node's own _backward is run alone and compared with finite differences of that primitive's
# float forward, so the message names the first operation whose local gradient is wrong.
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Made:
    """One primitive call seen during a check: the op, its result, its operands and their data then."""

    op: str
    out: object
    operands: tuple
    data: tuple[float, ...]
    k: float = 0.0

    def forward(self, data: tuple[float, ...]) -> float:
        if self.op == "add":
            return data[0] + data[1]
        if self.op == "mul":
            return data[0] * data[1]
        if self.op == "power":
            return data[0] ** self.k
        return _FORWARD[self.op](data[0])

    def smooth(self) -> bool:
        """Inside the primitive's domain and away from kinks, where finite differences are exact enough."""
        x = self.data[0]
        if self.op == "relu":
            return abs(x) > 1e-4
        if self.op == "log" or (self.op == "power" and self.k != int(self.k)):
            return x > 1e-3
        if self.op == "power" and self.k < 0:
            return abs(x) > 1e-3
        return self.op != "exp" or x < 700

    def text(self) -> str:
        names = ("a", "b")
        shown = ", ".join(f"{n} = {d:.6g}" for n, d in zip(names, self.data, strict=False))
        return shown + (f", k = {self.k:g}" if self.op == "power" else "")


@contextlib.contextmanager
def _recording(Value: type) -> Iterator[list[Made]]:
    """Record every call of the primitives on the class inside the block (the class is restored after)."""
    made: list[Made] = []
    saved = {name: Value.__dict__.get(name, _MISSING) for name in _METHOD_OF.values()}

    def recorder(op: str, method: Callable) -> Callable:
        @functools.wraps(method)
        def recorded(self, *args: object) -> object:
            out = method(self, *args)
            if isinstance(out, Value) and isinstance(self, Value) and len(args) == (op not in _FORWARD):
                _record(made, Value, op, self, args, out)
            return out

        return recorded

    try:
        for op, name in _METHOD_OF.items():
            if callable(saved[name]):
                setattr(Value, name, recorder(op, saved[name]))
        yield made
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(Value, name)
            else:
                setattr(Value, name, old)


def _record(made: list[Made], Value: type, op: str, a: object, args: tuple, out: object) -> None:
    arg = args[0] if args else None
    try:
        if op in _BINARY:
            # a plain number was wrapped inside the method: find the Value it became among out.inputs
            other = arg if isinstance(arg, Value) else next(
                (p for p in getattr(out, "inputs", ()) if p is not a and isinstance(p, Value)), None)
            operands = (a, other if other is not None else float(arg))
            made.append(Made(op, out, operands, tuple(float(getattr(v, "data", v)) for v in operands)))
        elif op == "power":
            made.append(Made(op, out, (a,), (float(a.data),), float(arg)))
        else:
            made.append(Made(op, out, (a,), (float(a.data),)))
    except (TypeError, ValueError):  # an operand that is no number: other checks say so
        pass


def _local_hint(op: str, got: float, want: float, g: float, swapped: bool = False) -> str:
    """The likely cause of a wrong local gradient, read from the numbers."""
    if want != 0 and not close(g, 1.0, 1e-3) and close(got, want / g, 1e-5):
        return ("You dropped the upstream gradient (out.grad): the input gets out.grad times the local "
                "derivative.")
    if want != 0 and close(got, -want, 1e-5):
        return "The sign is flipped."
    if got == 0 and want != 0:
        return ("Nothing reached this input: its _backward must add into its .grad (`+=`), reading out.grad "
                "when _backward runs (inside the closure), not when the operation is built.")
    if swapped:
        return ("The two inputs' gradients are swapped: each input gets the OTHER input's value times "
                "out.grad.")
    return _HINT[op]


def _replay(made: list[Made], Value: type, rng: np.random.Generator, only: str | None = None) -> int:
    """Run each recorded node's _backward alone with a random out.grad, its inputs holding the data they
    had and grad 0, and compare what reaches each input with finite differences of the op's forward.
    Raise a CheckFailure naming the first wrong op; return how many nodes were replayed."""
    count = 0
    for m in made:
        if (only is not None and m.op != only) or not m.smooth():
            continue
        want_out = m.forward(m.data)
        if not (isinstance(want_out, float) and math.isfinite(want_out)):
            continue
        got_out = as_real(m.out.data, f"your {_LABEL[m.op]}: the result's .data is")
        if not close(got_out, want_out, 1e-9):
            raise CheckFailure(f"your {_LABEL[m.op]} computes the wrong value: for {m.text()} it gave "
                               f"{got_out:.10g}, expected {want_out:.10g}.")
        g = float(rng.normal()) * float(rng.uniform(0.5, 3.0))
        inputs = [v for k, v in enumerate(m.operands)
                  if isinstance(v, Value) and all(v is not w for w in m.operands[:k])]
        got = _push(m, inputs, g)
        want = [g * _slope(m, v) for v in inputs]
        for k, (got_k, want_k) in enumerate(zip(got, want, strict=True)):
            if abs(got_k - want_k) <= 1e-6 * abs(want_k) + 1e-9 * abs(g) * max(1.0, abs(want_out)):
                continue
            if len(inputs) == 1 and len(m.operands) == 2:
                which, name = "input (used as both operands)", "a"
            elif len(inputs) == 1:
                which, name = "input", "a"
            else:
                which, name = ("first input (self)", "a") if k == 0 else ("second input (other)", "b")
            raise CheckFailure(
                f"your {_LABEL[m.op]} gives the wrong gradient for its {which}: with {m.text()} and "
                f"out.grad = {g:.6g}, its _backward added {got_k:.10g} to {name}.grad, but finite "
                f"differences of the forward value give {want_k:.10g}. "
                f"{_local_hint(m.op, got_k, want_k, g, _swapped(got, want))}")
        count += 1
    return count


def _push(m: Made, inputs: list, g: float) -> list[float]:
    """What one node's _backward adds into each input, from inputs holding the node's data and grad 0."""
    before = [(v.data, v.grad) for v in inputs]
    out_grad = m.out.grad
    try:
        for v in inputs:
            v.data = m.data[next(k for k, w in enumerate(m.operands) if w is v)]
            v.grad = 0.0
        m.out.grad = g
        _call(f"your {_LABEL[m.op]}: out._backward()", m.out._backward)
        return [_grad_number(v, "ab"[k], f"your {_LABEL[m.op]}") for k, v in enumerate(inputs)]
    finally:
        for v, (data, grad) in zip(inputs, before, strict=True):
            v.data, v.grad = data, grad
        m.out.grad = out_grad


def _slope(m: Made, v: object) -> float:
    """d forward / d v by a central difference, moving every operand slot that holds v."""
    x = m.data[next(k for k, w in enumerate(m.operands) if w is v)]
    h = 1e-6 * max(1.0, abs(x))
    if m.op in ("log", "power"):
        h = min(h, 1e-4 * abs(x))

    def at(t: float) -> float:
        return m.forward(tuple(t if w is v else d for w, d in zip(m.operands, m.data, strict=True)))

    return (at(x + h) - at(x - h)) / (2 * h)


def _name_culprit(made: list[Made], Value: type, rng: np.random.Generator) -> str:
    """In a student's kit, where a check runs on the student's own engine: the first recorded op whose own
    gradient is wrong, else the backward pass if it fails on a small graph, else '' (the engine is fine)."""
    if _trusted is not None:
        return ""
    try:
        _replay(made, Value, rng)
        _sweep_works(Value)
    except CheckFailure as exc:
        return f"\n  The likely culprit is not this exercise: {exc}"
    return ""


def _gradient_check(f: Callable, grads: Callable, x: np.ndarray, rng: np.random.Generator) -> None:
    """check_gradient at a seed drawn from the lesson check's own: its line on how to repeat it would name
    check_gradient, which the student never called; the lesson check's closing line repeats it instead."""
    check_gradient(f, grads, x, seed=int(rng.integers(2**62)), repeat=False)


def check_expressions(Value: type, focus: str, label: str, seed: int, *, count: int = 3) -> int:
    """Random expressions that use `focus` several times: every node `focus` made is replayed alone (its
    value against float math, its _backward against finite differences), which needs no backward pass, so
    the exercise is tested on its own. On the grader's machine the whole expression's value and leaf
    gradients are also compared, through the trusted backward pass. Returns the number of nodes replayed."""
    rng = np.random.default_rng(seed)
    others = _usable_ops(Value, focus)
    replayed = 0
    for _ in range(count):
        expr, xs = random_expression(rng, focus, others)
        with _recording(Value) as made:
            leaves, root = _call(f"{label} (building {expr.text()})", expr.build, Value, xs)
        with reworded(lambda exc, expr=expr, xs=xs: f"{label}: in the random expression {expr.text()} at x = "
                                                    f"{np.round(xs, 6).tolist()}, {exc}"):
            replayed += _replay(made, Value, rng, only=focus)
        if _trusted is None:
            continue
        want = expr.floats(xs)[-1]
        if not close(as_real(root.data, f"{label}: the result's .data is"), want, 1e-9):
            raise CheckFailure(
                f"{label}: the forward value of a random expression is wrong.\n  Expression: {expr.text()} "
                f"at x = {np.round(xs, 6).tolist()}\n  Expected {want:.10g}, got {root.data:.10g}."
            )

        def f(v: np.ndarray, expr: Expression = expr) -> float:
            return expr.floats(v)[-1]

        def grads(v: np.ndarray, expr: Expression = expr) -> np.ndarray:
            leaves, root = expr.build(Value, v)
            _call(f"{label}: the backward pass", root.backward)
            return np.array([leaf.grad for leaf in leaves], dtype=float)

        grads.__name__ = f"the gradient through {label}"
        with reworded(lambda exc, expr=expr: f"{label}: gradients through a random expression are wrong.\n"
                                             f"  Expression: {expr.text()}\n  {exc}"):
            _gradient_check(f, grads, xs, rng)
    return replayed


# --------------------------------------------------------------------------------------------------
# Checks of one primitive's forward and local backward
# --------------------------------------------------------------------------------------------------


def _check_node(Value: type, out: object, inputs: tuple, label: str) -> None:
    if not isinstance(out, Value):
        raise CheckFailure(f"{label} should return a new Value, got {type(out).__name__}: {out!r}")
    if any(out is x for x in inputs):
        raise CheckFailure(f"{label} returned one of its inputs; build and return a NEW Value.")
    got = tuple(getattr(out, "inputs", ()))
    for x in inputs:
        if not any(x is p for p in got):
            raise CheckFailure(f"{label}: the result's .inputs must contain the Value(s) it was computed "
                               f"from, so backprop can find them; got {got!r}.")
    if out.grad != 0.0:
        raise CheckFailure(f"{label}: a new result should start with grad 0.0, got {out.grad!r}.")


def _local(Value: type, label: str, make: Callable, xs: list[float], g: float,
           start: list[float]) -> tuple[object, list]:
    """Build out = make(*inputs) on fresh leaves holding `start` grads, push g through out._backward(), and
    name the structural slips (inputs changed, the closure never assigned or returning its gradient)."""
    leaves = [Value(x) for x in xs]
    for leaf, s in zip(leaves, start, strict=True):
        leaf.grad = s
    out = _call(label, make, *leaves)
    _check_node(Value, out, tuple(leaves), label)
    _inputs_unchanged(leaves, xs, label)
    if _default_backward(Value, out):
        raise CheckFailure(f"{label}: out._backward is still the default every new Value gets (a leaf's, "
                           "which does nothing): define your _backward closure and assign it to "
                           "out._backward before returning out, as the sin example does.")
    out.grad = g
    returned = _call(f"{label}: out._backward()", out._backward)
    _inputs_unchanged(leaves, xs, label)
    grads = [_grad_number(leaf, name, label) for leaf, name in zip(leaves, "ab", strict=False)]
    if returned is not None and g != 0 and grads == list(start):
        raise CheckFailure(f"{label}: your _backward returned {returned!r} and added nothing to the inputs' "
                           ".grad. Nobody reads what _backward returns: it must add each input's share into "
                           "that input's .grad (+=) and return nothing.")
    return out, leaves


def _inputs_unchanged(leaves: list, xs: list[float], label: str) -> None:
    for leaf, x, name in zip(leaves, xs, "ab", strict=False):
        if leaf.data != x:
            raise CheckFailure(f"{label}: do not modify the inputs: {name}.data changed from {x:.6g} to "
                               f"{leaf.data!r}. Compute the result into a new Value and leave every input's "
                               ".data as it was (other parts of the graph still use it).")


def _default_backward(Value: type, out: object) -> bool:
    """out._backward is still the do-nothing closure that Value.__init__ gives every new Value."""
    code = getattr(getattr(out, "_backward", None), "__code__", None)
    return code is not None and code is getattr(getattr(Value(0.0), "_backward", None), "__code__", None)


def _grad_number(v: object, name: str, label: str) -> float:
    """An input's .grad after a _backward, as a float, or a CheckFailure saying what it became."""
    grad = getattr(v, "grad", None)
    if type(grad).__name__ == "Value":
        raise CheckFailure(f"{label}: after out._backward(), {name}.grad became a Value. .grad must stay a "
                           "plain number: inside _backward use the numbers (.data of the inputs and of "
                           "out, and out.grad), not the Values themselves.")
    return as_real(grad, f"{label}: {name}.grad after out._backward() is")


def _compare_local(op: str, case: str, g: float, got: list[float], want: list[float],
                   hint: str | None = None) -> None:
    """What one _backward added to each input against finite differences of the op's forward value."""
    wrong = [k for k, (a, b) in enumerate(zip(got, want, strict=True)) if not close(a, b, 1e-6)]
    if not wrong:
        return
    head = f"{_LABEL[op]}: with {case} and out.grad = {g:.6g}, your _backward added"
    if _swapped(got, want):
        raise CheckFailure(f"{head} {got[0]:.10g} to a.grad and {got[1]:.10g} to b.grad, but finite "
                           f"differences of the forward value give {want[0]:.10g} and {want[1]:.10g}: you "
                           "swapped the two inputs' derivatives (each input gets out.grad times the "
                           "derivative of the result with respect to THAT input).")
    k = wrong[0]
    name = "ab"[k]
    raise CheckFailure(f"{head} {got[k]:.10g} to {name}.grad, but finite differences of the forward value "
                       f"give {want[k]:.10g}. {hint or _local_hint(op, got[k], want[k], g)}")


def _swapped(got: list[float], want: list[float]) -> bool:
    """Each of two inputs received what the other one should have."""
    return (len(want) == 2 and not close(want[0], want[1], 1e-5) and close(got[0], want[1], 1e-5)
            and close(got[1], want[0], 1e-5))


def check_binary(Value: type, fn: Callable, name: str, symbol: str, f: Callable[[float, float], float],
                 seed: int | None = None) -> None:
    """Forward, local gradients (finite differences), accumulation (+=) and reuse (a op a) of `fn`."""
    seed = new_seed(seed)
    replayed = _binary_cases(Value, fn, name, symbol, f, seed)
    passed(f"check_{name}", f"value and local gradients at 3 random points (random out.grad), += "
                            f"accumulation, a {symbol} a, a plain number, and {replayed} `{name}` nodes of 3 "
                            f"random expressions replayed one by one (seed {seed})")


def _binary_cases(Value: type, fn: Callable, name: str, symbol: str, f: Callable[[float, float], float],
                  seed: int) -> int:
    rng = np.random.default_rng(seed)
    label = _LABEL[name]
    method = _BINARY[name]

    def make(a: object, b: object) -> object:
        return getattr(a, method)(b)

    with _engine(Value, **{method: fn}):
        for _ in range(3):
            x, y = rng.uniform(0.3, 2.0, 2) * rng.choice([-1.0, 1.0], 2)
            out, _ = _local(Value, label, make, [x, y], 0.0, [0.0, 0.0])
            if not close(as_real(out.data, f"{label}: .data is"), f(x, y), 1e-9):
                raise CheckFailure(f"{label}: the forward value is wrong for a = {x:.6g}, b = {y:.6g}: "
                                   f"expected {f(x, y):.10g}, got {out.data:.10g}.")
            c = float(rng.uniform(0.5, 2.0))
            out = _call(f"{label} with a plain number", lambda a, c=c: getattr(a, method)(c), Value(x))
            if not isinstance(out, Value) or not close(float(out.data), f(x, c), 1e-9):
                raise CheckFailure(f"{label}: a {symbol} {c:.3g} with a plain number b should give a Value "
                                   f"holding {f(x, c):.6g}; wrap plain numbers with as_value(b).")
            g = float(rng.normal()) * float(rng.uniform(0.5, 3.0))
            _, (a, b) = _local(Value, label, make, [x, y], g, [0.0, 0.0])
            fresh = [float(a.grad), float(b.grad)]
            h = 1e-6
            want = [g * (f(x + h, y) - f(x - h, y)) / (2 * h), g * (f(x, y + h) - f(x, y - h)) / (2 * h)]
            _compare_local(name, f"a = {x:.6g}, b = {y:.6g}", g, fresh, want)
            # Accumulation: inputs that already hold gradient (they are used elsewhere) must keep it.
            start = list(rng.normal(size=2))
            _, (a, b) = _local(Value, label, make, [x, y], g, start)
            for leaf, s, d, which in ((a, start[0], fresh[0], "a"), (b, start[1], fresh[1], "b")):
                if not close(float(leaf.grad), s + d, 1e-9):
                    hint = ""
                    if close(float(leaf.grad), d, 1e-9):
                        hint = (" Your _backward overwrote it: use `+=`, because a Value used several times "
                                "must collect the gradient from every use.")
                    raise CheckFailure(f"{label}: {which}.grad held {s:.4g} before out._backward() and "
                                       f"should then hold {s + d:.6g}, got {leaf.grad:.6g}.{hint}")
            # Reuse: a op a sends two messages into the same Value.
            leaf = Value(x)
            out = _call(f"{label} with a {symbol} a", lambda a: getattr(a, method)(a), leaf)
            out.grad = g
            _call(f"{label}: out._backward()", out._backward)
            got = _grad_number(leaf, "a", f"{label} with a {symbol} a")
            want = g * (f(x + 1e-6, x + 1e-6) - f(x - 1e-6, x - 1e-6)) / 2e-6
            if not close(got, want, 1e-6):
                raise CheckFailure(f"{label}: for out = a {symbol} a with a = {x:.4g} and out.grad = "
                                   f"{g:.4g}, a.grad should be {want:.6g} (both uses count), got "
                                   f"{got:.6g}. Use `+=` for both inputs so the two contributions add up.")
        return check_expressions(Value, name, label, seed)


def check_unary(Value: type, fn: Callable, name: str, points: Callable[[np.random.Generator], float],
                seed: int | None = None) -> None:
    """Forward value, local derivative (finite differences) and accumulation of a one-input primitive."""
    seed = new_seed(seed)
    replayed = _unary_cases(Value, fn, name, points, seed)
    passed(f"check_{name}", f"value and local gradient at 6 random points (random out.grad), += "
                            f"accumulation{_EXTRA_POINTS.get(name, '')}, and {replayed} "
                            f"`{name}` nodes of 3 random expressions replayed one by one (seed {seed})")


def _unary_cases(Value: type, fn: Callable, name: str, points: Callable[[np.random.Generator], float],
                 seed: int) -> int:
    rng = np.random.default_rng(seed)
    label = _LABEL[name]
    f = _FORWARD[name]

    def make(a: object) -> object:
        return getattr(a, name)()

    with _engine(Value, **{name: fn}):
        for _ in range(6):
            x = float(points(rng))
            out, _ = _local(Value, label, make, [x], 0.0, [0.0])
            if not close(as_real(out.data, f"{label}: .data is"), f(x), 1e-9):
                raise CheckFailure(f"{label}: the forward value at a = {x:.6g} should be {f(x):.10g}, got "
                                   f"{out.data:.10g}.")
            g = float(rng.normal()) * float(rng.uniform(0.5, 3.0))
            _, (a,) = _local(Value, label, make, [x], g, [0.0])
            fresh = float(a.grad)
            _compare_local(name, f"a = {x:.6g}", g, [fresh], [g * (f(x + 1e-6) - f(x - 1e-6)) / 2e-6])
            s = float(rng.normal())
            _, (a,) = _local(Value, label, make, [x], g, [s])
            if not close(float(a.grad), s + fresh, 1e-9):
                raise CheckFailure(f"{label}: a.grad held {s:.4g} before out._backward() and should then "
                                   f"hold {s + fresh:.6g}, got {a.grad:.6g}. Add into a.grad with `+=` "
                                   f"instead of overwriting it.")
        if name == "relu":
            _relu_at_zero(Value, label, rng)
        if name in _SATURATED:
            _saturates(Value, name, label)
        return check_expressions(Value, name, label, seed)


_EXTRA_POINTS = {"relu": ", a = 0 exactly", "tanh": ", a = ±1000", "sigmoid": ", a = ±1000"}


def _relu_at_zero(Value: type, label: str, rng: np.random.Generator) -> None:
    """The kink: finite differences cannot decide relu'(0), the lesson's convention (PyTorch's) does."""
    g = float(rng.uniform(0.5, 2.0))
    out, (a,) = _local(Value, label, lambda a: a.relu(), [0.0], g, [0.0])
    if not (close(float(out.data), 0.0, 1e-9) and float(a.grad) == 0.0):
        raise CheckFailure(f"{label} at a = 0 exactly, with out.grad = {g:.4g}: the lesson's convention "
                           f"(as in PyTorch) is relu(0) = 0 with slope 0 at 0, so a.grad must stay 0; your "
                           f"relu gave "
                           f"{float(out.data):.6g} and a.grad = {float(a.grad):.6g}. Pass the gradient only "
                           "where the input is strictly positive.")


# The squashing primitives far from 0: their value at a = -1000 and a = +1000 (slope 0 at both), and what
# makes them safe there; the notebook's text promises both.
_SATURATED = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
_STABLE = {
    "tanh": "Use math.tanh: formulas with exp overflow or lose all precision far from 0.",
    "sigmoid": "math.exp(-a) overflows for a = -1000: compute sigmoid so that exp only ever gets a number "
               "<= 0 (for a < 0, from e = math.exp(a)), or from math.tanh.",
}


def _saturates(Value: type, op: str, label: str) -> None:
    """The squashing op at a = ±1000: the saturated value with slope 0, and no overflow."""
    for x, want in zip((-1000.0, 1000.0), _SATURATED[op], strict=True):
        with reworded(lambda exc: f"{exc}. {_STABLE[op]}"):
            out, (a,) = _local(Value, f"{label} at a = {x:g}", lambda a: getattr(a, op)(), [x], 1.0, [0.0])
        if not (close(float(out.data), want, 1e-9) and abs(float(a.grad)) < 1e-12):
            raise CheckFailure(f"{label} at a = {x:g} should give {want:g} with a.grad = 0 ({op} is flat out "
                               f"there), got {float(out.data):.6g} and {float(a.grad):.6g}. {_STABLE[op]}")


def _body_add(add: Callable, Value: type, seed: int | None = None) -> None:
    """`add(self, other)`: a + b, with d/da = d/db = 1."""
    check_binary(Value, add, "add", "+", lambda a, b: a + b, seed)


def _body_mul(mul: Callable, Value: type, seed: int | None = None) -> None:
    """`mul(self, other)`: a * b, with d/da = b and d/db = a."""
    check_binary(Value, mul, "mul", "*", lambda a, b: a * b, seed)


def _body_power(power: Callable, Value: type, seed: int | None = None) -> None:
    """`power(self, k)` for a plain number k: d/da a**k = k a**(k-1)."""
    seed = new_seed(seed)
    replayed = _power_cases(Value, power, seed)
    passed("check_power", f"value and local gradient for k = 3, 2, -1, -2, 0.5, 1.5 (random out.grad), += "
                          f"accumulation, and {replayed} `power` nodes of 3 random expressions replayed one "
                          f"by one (seed {seed})")


def _power_cases(Value: type, power: Callable, seed: int) -> int:
    rng = np.random.default_rng(seed)
    label = _LABEL["power"]
    with _engine(Value, power=power):
        for k in (3.0, 2.0, -1.0, -2.0, 0.5, 1.5):  # k = 3 first: for k = 2, (k - 1) and 1 agree
            x = float(rng.uniform(0.4, 2.0)) * (1.0 if k != int(k) else float(rng.choice([-1.0, 1.0])))

            def make(a: object, k: float = k) -> object:
                return a.power(k)

            out, _ = _local(Value, label, make, [x], 0.0, [0.0])
            if not close(as_real(out.data, f"{label}: .data is"), x**k, 1e-9):
                raise CheckFailure(f"{label}: {x:.6g} ** {k:g} should be {x**k:.10g}, got {out.data:.10g}.")
            g = float(rng.normal()) * float(rng.uniform(0.5, 3.0))
            _, (a,) = _local(Value, label, make, [x], g, [0.0])
            fresh = float(a.grad)
            missing = close(fresh, g * x ** (k - 1), 1e-6)
            _compare_local("power", f"a = {x:.6g}, k = {k:g}", g, [fresh],
                           [g * ((x + 1e-6) ** k - (x - 1e-6) ** k) / 2e-6],
                           f"The factor k = {k:g} is missing: the local derivative of a**k is k * a**(k-1)."
                           if missing else None)
            s = float(rng.normal())
            _, (a,) = _local(Value, label, make, [x], g, [s])
            if not close(float(a.grad), s + fresh, 1e-9):
                raise CheckFailure(f"{label}: a.grad should grow from {s:.4g} to {s + fresh:.6g}, got "
                                   f"{a.grad:.6g}; use `+=`.")
        return check_expressions(Value, "power", label, seed)


def _signed(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0]))


def _body_exp(exp: Callable, Value: type, seed: int | None = None) -> None:
    """`exp(self)`: d/da e**a = e**a, which is the output itself."""
    check_unary(Value, exp, "exp", _signed(0.1, 2.5), seed)


def _body_log(log: Callable, Value: type, seed: int | None = None) -> None:
    """`log(self)`: d/da log a = 1/a."""
    check_unary(Value, log, "log", lambda rng: float(rng.uniform(0.2, 4.0)), seed)


def _body_tanh(tanh: Callable, Value: type, seed: int | None = None) -> None:
    """`tanh(self)`: d/da tanh a = 1 - tanh(a)**2, written with the output t = tanh(a)."""
    check_unary(Value, tanh, "tanh", _signed(0.2, 2.0), seed)


def _body_sigmoid(sigmoid: Callable, Value: type, seed: int | None = None) -> None:
    """`sigmoid(self)`: d/da sigmoid(a) = s (1 - s), written with the output s = sigmoid(a)."""
    check_unary(Value, sigmoid, "sigmoid", _signed(0.2, 4.0), seed)


def _body_relu(relu: Callable, Value: type, seed: int | None = None) -> None:
    """`relu(self)`: slope 1 where the input is positive, 0 where it is negative or zero."""
    check_unary(Value, relu, "relu", _signed(0.1, 2.0), seed)


# --------------------------------------------------------------------------------------------------
# topological_sort and backprop, on graphs the check builds itself
# --------------------------------------------------------------------------------------------------


def _node(Value: type, data: float, inputs: tuple = (), op: str = ""):
    """A node of a graph the check builds itself (called thousands of times: no warning filters here)."""
    try:
        return Value(data, inputs, op)
    except Exception as exc:  # noqa: BLE001 - only a changed Value class can fail here
        raise CheckFailure(f"Value(data, inputs, op) raised {type(exc).__name__}: {exc}. The checks build "
                           "graphs with the Value class as the notebook gives it: run its cell "
                           "again.") from None


def random_graph(Value: type, rng: np.random.Generator, n_leaves: int = 4, n_inner: int = 12) -> tuple:
    """A random DAG with shared nodes, repeated inputs (a op a) and nodes the root does NOT depend on."""
    nodes = [_node(Value, float(rng.normal())) for _ in range(n_leaves)]
    for _ in range(n_inner):
        i, j = (int(v) for v in rng.integers(len(nodes), size=2))
        inputs = (nodes[i],) if rng.random() < 0.3 else (nodes[i], nodes[j])
        nodes.append(_node(Value, float(rng.normal()), inputs, "op"))
    return nodes, nodes[-1]


def chain(Value: type, depth: int):
    """x0 -> x1 -> ... -> x_depth, each node made from the one before."""
    node = _node(Value, 1.0)
    for _ in range(depth):
        node = _node(Value, node.data + 1.0, (node,), "+1")
    return node


def _validate_order(got: object, root, label: str, want: list) -> None:
    """`got` against the rules of a topological order; `want` lists the nodes root depends on (any order)."""
    if not isinstance(got, list | tuple):
        raise CheckFailure(f"{label} should return a list of Values, got {type(got).__name__}")
    position: dict[int, int] = {}
    for k, node in enumerate(got):
        if id(node) in position:
            raise CheckFailure(f"{label}: {node!r} appears more than once in your order. Keep a set of "
                               "visited nodes so each node is added exactly once (otherwise its backward "
                               "would run twice).")
        position[id(node)] = k
    reachable = {id(n) for n in want}
    extra = [n for n in got if id(n) not in reachable]
    if extra:
        raise CheckFailure(f"{label}: your order contains {len(extra)} node(s) the root does not depend on "
                           "(or that are not Values of the graph); follow .inputs from the root only.")
    if len(got) != len(want):
        kept = {float(n.data) for n in got}
        twin = any(id(n) not in position and float(n.data) in kept for n in want)
        raise CheckFailure(f"{label}: the graph has {len(want)} node(s) (the root and everything it depends "
                           f"on) but your order has {len(got)}. Every node reachable through .inputs "
                           "must appear once." + (" A missing node holds the same number as one in your "
                           "list: two different nodes may hold equal .data, so remember the nodes "
                           "themselves as seen, not their numbers." if twin else ""))
    if got and got[0] is root and len(got) > 1:
        raise CheckFailure(f"{label}: your list starts with the root. The order must put each node AFTER "
                           "the nodes it was computed from (leaves first, root last); backprop then walks "
                           "it in reverse.")
    for node in got:
        for parent in node.inputs:
            if position[id(parent)] > position[id(node)]:
                raise CheckFailure(
                    f"{label}: the node at position {position[id(node)]} of your list (op {node.op!r}, "
                    f"{node!r}) comes before its own input at position {position[id(parent)]} ({parent!r}). "
                    "Append a node only after ALL its inputs are in the list: a node is finished when its "
                    "inputs are, however it was reached (mark it seen when you pop it, not when you push "
                    "it; a breadth-first or distance-from-the-root order breaks when one input is reached by "
                    "a short and a long path).")


def _body_topological_sort(topological_sort: Callable, Value: type, seed: int | None = None) -> None:
    """Random DAGs, a + a, a diamond, heavy sharing, and deep chains sorted without recursion (judged by how
    deep the calls nest, so raising the recursion limit does not pass it)."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    label = "`topological_sort`"
    with _creation_log(Value) as log, gc_paused():
        try:
            deepest = _check_orders(topological_sort, Value, rng, label, log)
        except NotDone:
            raise NotDone(label) from None
    passed("check_topological_sort", f"orders of a leaf, b = a + a; c = b + b, a diamond, 16 doublings, 4 "
                                     f"random graphs and chains {RECURSION_PROBE:,} and 10,000 deep, calls "
                                     f"nested at most {deepest} deep (seed {seed})")


def _shared_input_graphs(Value: type) -> list[tuple[str, object]]:
    """Graphs where the root uses a node directly and again through a longer path (r = a + 3 * a with
    a = tanh(c)), in both input orders, and distinct nodes holding equal numbers: fixed cases that a sort
    marking nodes seen when pushed, a reversed breadth-first order, an order by distance from the root, or
    one that tells nodes apart by .data gets wrong every time."""
    graphs = []
    for flip in (False, True):
        c = _node(Value, 0.5)
        a = _node(Value, math.tanh(0.5), (c,), "tanh")
        b = _node(Value, 3 * a.data, (a, _node(Value, 3.0)), "*")
        r = _node(Value, a.data + b.data, (b, a) if flip else (a, b), "+")
        graphs.append((f"r = {'3 * a + a' if flip else 'a + 3 * a'} with a = tanh(c)", r))
        x = _node(Value, 0.2)
        d1 = _node(Value, 1.2, (x,), "+1")
        d2 = _node(Value, 2.2, (d1,), "+1")
        d3 = _node(Value, 3.2, (d2,), "+1")
        r = _node(Value, 3.4, (d3, x) if flip else (x, d3), "+")
        graphs.append((f"r = {'d3 + x' if flip else 'x + d3'} where d3 is x after three steps", r))
    p, q = _node(Value, 1.0), _node(Value, 1.0)
    s, t = _node(Value, 2.0, (p,), "*2"), _node(Value, 2.0, (q,), "*2")
    graphs.append(("r = 2p + 2q with p and q distinct leaves both holding 1.0 (and 2p, 2q both 2.0)",
                   _node(Value, 4.0, (s, t), "+")))
    return graphs


RECURSION_PROBE = 3_000  # chain depth for the recursion probe: beyond Python's default limit of 1 000 frames
MAX_NESTING = 50  # nested calls an iterative sort may make (a helper, a generator); recursion makes thousands


def _nesting(fn: Callable, *args: object) -> tuple[object, int]:
    """fn(*args), and how deeply the Python calls it makes nest: counted by a profile hook, so a recursion
    limit raised with sys.setrecursionlimit changes nothing."""
    depth = deepest = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal depth, deepest
        if event == "call":
            depth += 1
            deepest = max(deepest, depth)
        elif event == "return":
            depth -= 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(previous)
    return result, deepest


def judge_nesting(deepest: int, what: str) -> None:
    """A sort whose calls nested deeper than MAX_NESTING recursed (a number the grader judges too)."""
    if deepest > MAX_NESTING:
        raise CheckFailure(f"{what} nested {deepest:,} Python calls inside each other: it calls itself once "
                           "per level (recursion), and the exercise asks for a sort without recursion. "
                           "Raising the limit with sys.setrecursionlimit only moves the crash: deep enough, "
                           "Python's own stack overflows and the kernel dies. Use a loop with your own stack "
                           "(a list), as described above the exercise.")


def _check_orders(topological_sort: Callable, Value: type, rng: np.random.Generator, label: str,
                  log: list) -> int:
    def validate(root, what: str) -> None:
        _validate_order(_call(what, topological_sort, root), root, what, _logged_order(root, log))

    leaf = _node(Value, 2.0)
    validate(leaf, f"{label} on a single leaf")
    a = _node(Value, 1.0)
    b = _node(Value, 2.0, (a, a), "+")
    c = _node(Value, 4.0, (b, b), "+")
    validate(c, f"{label} on b = a + a; c = b + b")
    x = _node(Value, 1.0)
    left, right = _node(Value, 2.0, (x,), "f"), _node(Value, 3.0, (x,), "g")
    top = _node(Value, 5.0, (left, right), "+")
    validate(top, f"{label} on a diamond")
    node = _node(Value, 1.0)
    for _ in range(16):  # 16 levels of x_{k+1} = x_k + x_k: 2**16 paths, 17 nodes
        node = _node(Value, 2 * node.data, (node, node), "+")
    validate(node, f"{label} on a chain of 16 doublings")
    for what, root in _shared_input_graphs(Value):
        validate(root, f"{label} on {what}")
    for _ in range(4):
        _, root = random_graph(Value, rng)
        validate(root, f"{label} on a random graph")
    what = f"{label} on a chain {RECURSION_PROBE:,} nodes deep"
    deep = chain(Value, RECURSION_PROBE)
    order, deepest = _call(what, _nesting, topological_sort, deep)
    judge_nesting(deepest, what)
    _validate_order(order, deep, what, _logged_order(deep, log))
    deep = chain(Value, 10_000)
    validate(deep, f"{label} on a chain 10,000 nodes deep")
    return deepest


# Backprop is checked on graphs of the check's own linear nodes, out = sum of c_i * input_i, whose _backward
# the check writes itself: no primitive of the student's is involved, so backprop is tested on its own.


def _linear(Value: type, inputs: tuple, coefs: tuple[float, ...]):
    out = _node(Value, sum(c * x.data for c, x in zip(coefs, inputs, strict=True)), inputs, "lin")

    def push() -> None:
        for x, c in zip(inputs, coefs, strict=True):
            x.grad += c * out.grad

    out._backward = push
    return out


@dataclasses.dataclass
class LinearGraph:
    """A DAG of linear nodes over some leaves, evaluated in floats too, so that leaf gradients come from
    finite differences (exact for a linear function) instead of a backward pass written in the checker."""

    leaves: list
    nodes: list = dataclasses.field(default_factory=list)
    spec: list = dataclasses.field(default_factory=list)  # per node: positions of its inputs, coefficients

    def add(self, Value: type, positions: tuple[int, ...], coefs: tuple[float, ...]):
        every = self.leaves + self.nodes
        node = _linear(Value, tuple(every[p] for p in positions), tuple(float(c) for c in coefs))
        self.nodes.append(node)
        self.spec.append((tuple(positions), tuple(float(c) for c in coefs)))
        return node

    @property
    def root(self):
        return self.nodes[-1]

    def value(self, xs: np.ndarray) -> float:
        vals = [float(x) for x in xs]
        for positions, coefs in self.spec:
            vals.append(sum(c * vals[p] for p, c in zip(positions, coefs, strict=True)))
        return vals[-1]

    def gradient(self) -> np.ndarray:
        xs = np.array([float(leaf.data) for leaf in self.leaves])
        eye = np.eye(len(xs))
        return np.array([(self.value(xs + e) - self.value(xs - e)) / 2 for e in eye])

    def copy(self, Value: type) -> LinearGraph:
        """The same graph on fresh Values."""
        twin = LinearGraph([_node(Value, float(leaf.data)) for leaf in self.leaves])
        for positions, coefs in self.spec:
            twin.add(Value, positions, coefs)
        return twin


def random_linear_graph(Value: type, rng: np.random.Generator, n_leaves: int = 4,
                        n_inner: int = 14) -> LinearGraph:
    """Shared nodes, inputs used twice (a op a), and nodes the root does not depend on."""
    graph = LinearGraph([_node(Value, float(rng.normal())) for _ in range(n_leaves)])
    for _ in range(n_inner):
        n = n_leaves + len(graph.nodes)
        positions = tuple(int(p) for p in rng.integers(n, size=1 if rng.random() < 0.3 else 2))
        graph.add(Value, positions, tuple(rng.uniform(0.3, 1.0, len(positions)) * rng.choice([-1, 1])))
    n = n_leaves + len(graph.nodes)
    graph.add(Value, (n - 1, n - 2, n - 4), (0.7, -0.9, 0.5))
    return graph


def _body_backprop(backprop: Callable, Value: type, seed: int | None = None) -> None:
    """`backprop(root, order)`: the seed, the reverse sweep, a + a, PyTorch's accumulation rule, deep chains.
    The graphs are made of the check's own linear nodes, so only backprop is tested."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    with _creation_log(Value) as log, gc_paused():
        _check_sweeps(backprop, Value, rng, "`backprop`", log)
    passed("check_backprop", f"b = a + a; c = b + b, a diamond, 3 random graphs, PyTorch's accumulation rule "
                             f"and a chain 10,000 deep, on nodes whose local rules are the check's own "
                             f"(seed {seed})")


def _check_sweeps(backprop: Callable, Value: type, rng: np.random.Generator, label: str,
                  log: list) -> None:
    def run(root) -> None:
        order = _logged_order(root, log)
        given = list(order)
        _call(label, backprop, root, order)
        judge_order_kept(len(order) == len(given) and all(x is y for x, y in zip(order, given, strict=False)),
                         label)

    graph = LinearGraph([_node(Value, float(rng.uniform(0.5, 2.0)))])
    graph.add(Value, (0, 0), (1.0, 1.0))
    graph.add(Value, (1, 1), (1.0, 1.0))
    (a,), c = graph.leaves, graph.root
    run(c)
    _judge_first_sweep(float(a.grad), float(c.grad), label)

    x = _node(Value, float(rng.uniform(0.5, 2.0)))
    diamond = LinearGraph([x])
    k = rng.uniform(0.5, 2.0, 4)
    diamond.add(Value, (0,), (k[0],))
    diamond.add(Value, (0,), (k[1],))
    diamond.add(Value, (1, 2), (k[2], k[3]))
    run(diamond.root)
    want = float(diamond.gradient()[0])
    if not close(float(x.grad), want, 1e-9):
        raise CheckFailure(f"{label}: in a diamond (x feeds two nodes that meet again in the root) x.grad "
                           f"should be {want:.6g}, the sum over both branches, got {x.grad!r}.")
    for _ in range(3):
        graph = random_linear_graph(Value, rng)
        run(graph.root)
        got, want = np.array([float(v.grad) for v in graph.leaves]), graph.gradient()
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(want))))):
            raise CheckFailure(f"{label}: on a random graph of {len(graph.nodes) + len(graph.leaves)} nodes "
                               f"(shared nodes, inputs used twice, nodes the root does not depend on) the "
                               f"leaves' gradients should be {np.round(want, 6).tolist()}, got "
                               f"{np.round(got, 6).tolist()}.")
    graph = random_linear_graph(Value, rng)
    twin = graph.copy(Value)
    run(graph.root)
    once = [float(leaf.grad) for leaf in graph.leaves]
    run(graph.root)
    twice = [float(leaf.grad) for leaf in graph.leaves]
    start = [float(s) for s in rng.normal(size=len(twin.leaves))]
    for leaf, s in zip(twin.leaves, start, strict=True):
        leaf.grad = s
    run(twin.root)
    judge_accumulation(once, twice, start, [float(leaf.grad) for leaf in twin.leaves], label)
    leaf = _node(Value, 0.3)
    held = float(rng.uniform(0.5, 2.0))
    leaf.grad = held
    run(leaf)
    judge_leaf_root(held, float(leaf.grad), label)

    x = _node(Value, 0.5)
    node, d = x, 1.0
    for _ in range(10_000):
        k = 1.0001 if rng.random() < 0.5 else 0.9999
        node, d = _linear(Value, (node,), (k,)), d * k
    run(node)
    if not close(float(x.grad), d, 1e-9):
        raise CheckFailure(f"{label}: on a chain 10,000 nodes deep x.grad should be {d:.8g}, got {x.grad!r}.")


def _judge_first_sweep(a_grad: float, c_grad: float, label: str) -> None:
    """b = a + a; c = b + b: the smallest graph that shows a missing seed, a wrong direction or a node sent
    on twice."""
    if c_grad == 0.0:
        raise CheckFailure(
            f"{label}: after backprop on b = a + a; c = b + b the root c has grad 0 (and a.grad = "
            f"{a_grad:.6g}): the root's gradient was never seeded. Add d root / d root = 1 to root.grad "
            "after the non-leaf nodes are reset: the root has inputs, so a seed set before the reset is "
            "erased by it.")
    if not close(c_grad, 1.0, 1e-9):
        raise CheckFailure(f"{label}: after backprop the root's grad should be 1 (d root / d root), got "
                           f"{c_grad!r}. Seed the root with gradient 1 before the sweep.")
    if not close(a_grad, 4.0, 1e-9):
        cause = ""
        if a_grad == 0.0:
            cause = (" No gradient reached a: the sweep must walk the order in reverse, from the root back "
                     "to the leaves, so that each node passes on its gradient after it has received it.")
        elif a_grad > 4.0:
            cause = " a received too much: a node passed its gradient on more than once."
        raise CheckFailure(
            f"{label}: for b = a + a; c = b + b, dc/da is 4, but a.grad = {a_grad!r}.{cause} Walk the given "
            "order in reverse and call each node's _backward exactly once: a node may send its gradient on "
            "only after every use of it has sent its share back.")


def judge_order_kept(kept: bool, label: str) -> None:
    """backprop must leave the caller's `order` as it was."""
    if not kept:
        raise CheckFailure(f"{label} changed the list `order` it was given (reversed or reordered it in "
                           "place, e.g. with order.reverse()): the caller's list is not yours to change, "
                           "and a second call would then walk it the wrong way. Walk it backwards "
                           "without modifying it (a reversed view or copy).")


def judge_leaf_root(held: float, got: float, label: str) -> None:
    """backprop(leaf, [leaf]) on a leaf holding `held` must leave held + 1."""
    if not close(got, held + 1.0, 1e-9):
        raise CheckFailure(f"{label}: with a leaf as the root, holding grad {held:.4g} from an earlier call, "
                           f"backprop(leaf, [leaf]) should leave {held + 1:.6g} (what it held plus 1), got "
                           f"{got:.6g}. Add 1 to root.grad, do not set it to 1: a leaf keeps what earlier "
                           "calls left there.")


def judge_accumulation(once: list[float], twice: list[float], start: list[float], after: list[float],
                       label: str) -> None:
    """PyTorch's rule, from the leaves' grads: after one call (`once`) and a second one (`twice`) on the same
    graph, and on a fresh copy whose leaves held `start` before one call (`after`). Leaves accumulate across
    calls, non-leaves are recomputed on every call."""
    if any(o != 0.0 for o in once) and all(close(t, o, 1e-12) for o, t in zip(once, twice, strict=True)):
        raise CheckFailure(
            f"{label}: calling backprop twice on the same graph should exactly double every leaf's grad "
            f"(PyTorch's rule), but the second call left them unchanged ({np.round(once, 4).tolist()}). "
            "You reset the leaves too: set to 0 only the nodes that have inputs, and let the leaves add "
            "this call's gradient to what they already hold.")
    if not all(close(t, 2 * o, 1e-7) for o, t in zip(once, twice, strict=True)):
        raise CheckFailure(
            f"{label}: calling backprop twice on the same graph should exactly double every leaf's grad "
            f"(PyTorch's rule); got {np.round(once, 4).tolist()} after one call and "
            f"{np.round(twice, 4).tolist()} after two. Leaves keep accumulating, but every non-leaf node "
            "(one with inputs) must be reset to 0 before the sweep, or last call's gradient flows again.")
    for s, o, a in zip(start, once, after, strict=True):
        if not close(a, s + o, 1e-7):
            raise CheckFailure(
                f"{label}: a leaf whose grad was {s:.4g} before the call should end with {s + o:.6g} "
                f"(its old grad plus this call's), got {a:.6g}. Do not zero the leaves in "
                "backprop: they accumulate until the user zeroes them (PyTorch's rule).")


def _sweep_works(Value: type) -> None:
    """Value.backward (the student's backprop on the student's topological_sort) on a small graph of linear
    nodes, two of which hold the same number (a sort must tell nodes apart by identity): a CheckFailure
    naming it when it is wrong."""
    a = _node(Value, 0.5)
    graph = LinearGraph([a])
    graph.add(Value, (0, 0), (1.5, 1.5))
    graph.add(Value, (0,), (3.0,))
    graph.add(Value, (1, 1, 2, 0), (-0.8, 0.6, 0.5, 2.0))
    _call("loss.backward()", graph.root.backward, own=())
    want = float(graph.gradient()[0])
    if not close(float(a.grad), want, 1e-9):
        raise CheckFailure(f"loss.backward() (your backprop on your topological_sort) gives a wrong gradient "
                           f"on the graph b = 1.5 a + 1.5 a; e = 3 a; c = -0.8 b + 0.6 b + 0.5 e + 2 a at "
                           f"a = 0.5 (b and e hold the same number): a.grad = {float(a.grad):.6g}, expected "
                           f"{want:.6g}. Fix those exercises first (their test cells say how).")


# --------------------------------------------------------------------------------------------------
# Neuron, Layer, MLP and train_step
# --------------------------------------------------------------------------------------------------

_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "linear": lambda z: z,
}


def _params(obj: object, what: str) -> list:
    params = _call(f"{what}.parameters()", obj.parameters)
    if not isinstance(params, list | tuple):
        raise CheckFailure(f"{what}.parameters() should return a list of Values, got {type(params).__name__}")
    return list(params)


def _neuron_parts(neuron: object, what: str) -> tuple[list, object]:
    w, b = getattr(neuron, "w", None), getattr(neuron, "b", None)
    if not isinstance(w, list | tuple) or b is None:
        raise CheckFailure(f"{what} needs attributes .w (a list of weight Values) and .b (the bias Value).")
    return list(w), b


def _layer_parts(layer: object, what: str) -> list[tuple[list, object]]:
    neurons = getattr(layer, "neurons", None)
    if not isinstance(neurons, list | tuple):
        raise CheckFailure(f"{what} needs an attribute .neurons: the list of its Neuron objects.")
    return [_neuron_parts(n, f"{what}, neuron {k}") for k, n in enumerate(neurons)]


def _require_values(structure: list, Value: type) -> list:
    for layer in structure:
        for w, b in layer:
            if not all(isinstance(v, Value) for v in (*w, b)):
                raise CheckFailure("every weight and bias must be a Value (so gradients can reach it), "
                                   "not a plain float.")
    return structure


def _structure(mlp: object, Value: type, n_in: int, what: str) -> list[list[tuple[list, object]]]:
    layers = getattr(mlp, "layers", None)
    if not isinstance(layers, list | tuple):
        raise CheckFailure("MLP needs an attribute .layers: the list of its Layer objects.")
    structure = [_layer_parts(layer, f"layer {li}") for li, layer in enumerate(layers)]
    _check_wiring(structure, n_in, what)
    return _require_values(structure, Value)


def _check_wiring(structure: list, n_in: int, what: str) -> None:
    """Each neuron has one weight per input its layer receives: the network's inputs for the first layer,
    the previous layer's outputs after that."""
    for li, layer in enumerate(structure):
        width = n_in if li == 0 else len(structure[li - 1])
        source = f"the {n_in} network inputs" if li == 0 else f"the {width} outputs of layer {li - 1}"
        for ni, (w, _) in enumerate(layer):
            if len(w) != width:
                raise CheckFailure(f"{what}: neuron {ni} of layer {li} has {len(w)} weight(s), but layer "
                                   f"{li} receives {source}: every neuron needs one weight per input it "
                                   "receives (build each layer with as many inputs as the layer before it "
                                   "has neurons).")


def _check_params(params: list, structure: list, what: str) -> None:
    flat = [v for layer in structure for w, b in layer for v in (*w, b)]
    judge_params(_positions(params, flat), len(flat), sum(len(layer) for layer in structure), what)


def _positions(got: list, nodes: list) -> list[int]:
    """Where each object of `got` is in `nodes` (-1 for one that is not there): identity, not equality."""
    where = {id(n): k for k, n in enumerate(nodes)}
    return [where.get(id(x), -1) for x in got]


def judge_params(positions: list[int], n_params: int, n_bias: int, what: str) -> None:
    """parameters() must list every weight and bias of the model once: `positions` says where each Value it
    returned sits among the model's weights and biases (-1: not one of them)."""
    if len(positions) != n_params:
        hint = ""
        if len(positions) == n_params - n_bias:
            hint = (" That is exactly the number of weights: did you leave out the "
                    f"{'bias' if n_bias == 1 else 'biases'}?")
        model = ("neuron" if what.startswith("Neuron") else "layer" if what.startswith("Layer") else
                 "network")
        raise CheckFailure(f"{what}.parameters() returned {len(positions)} Values; the {model} has "
                           f"{n_params} (every weight and every bias, each once).{hint}")
    if sorted(positions) != list(range(n_params)):
        raise CheckFailure(f"{what}.parameters() must list each weight and bias Value of the model exactly "
                           "once (the very objects the model computes with, not copies).")


def _numpy_forward(structure: list, acts: list[str], theta: np.ndarray, x: np.ndarray,
                   bias_outside: bool = False) -> np.ndarray:
    h, k = np.asarray(x, dtype=float), 0
    for layer, act in zip(structure, acts, strict=True):
        z, b = [], []
        for w, _ in layer:
            n = len(w)
            z.append(float(theta[k:k + n] @ h) + (0.0 if bias_outside else float(theta[k + n])))
            b.append(float(theta[k + n]) if bias_outside else 0.0)
            k += n + 1
        h = _ACT[act](np.array(z)) + np.array(b)
    return h


def _forward_slips(structure: list, acts: list[str], theta: np.ndarray, x: np.ndarray,
                   what: str) -> Iterator[tuple[str, np.ndarray]]:
    """(hint, the output it would give) for the usual wiring slips of Neuron, Layer and MLP."""
    if any(act != "linear" for act in acts):
        yield (" The bias is added after the activation; it belongs inside: activation(w . x + b).",
               _numpy_forward(structure, acts, theta, x, bias_outside=True))
    if len(acts) == 1 and what.startswith("Layer"):
        for other in _ACT:
            if other != acts[0]:
                yield (f" Your Layer applied {other}, not {acts[0]}: pass the Layer's activation on to every "
                       "Neuron it builds.", _numpy_forward(structure, [other], theta, x))
    if len(acts) > 1:
        yield (" Your last layer applies tanh; the output layer must be linear.",
               _numpy_forward(structure, acts[:-1] + ["tanh"], theta, x))
        by_size = ["linear" if len(layer) == 1 else "tanh" for layer in structure]
        if by_size != acts:
            yield (" A layer's activation follows from its position (every layer tanh, the last one "
                   "linear), not from how many neurons it has.", _numpy_forward(structure, by_size, theta, x))


@dataclasses.dataclass
class Model:
    """A model under test: the object, its structure, activations, and what the check may blame."""

    obj: object
    structure: list
    acts: list[str]
    what: str
    single: bool  # returns one Value (a Neuron, an MLP with one output) rather than a list
    own: tuple  # code of the exercise itself (its NotImplementedError is a blank answer)
    made: list  # primitive calls recorded while the check ran (for naming a wrong op)


def _check_model(model: Model, Value: type, n_in: int, rng: np.random.Generator) -> None:
    """Forward values against numpy and parameter gradients against finite differences; in a student's kit
    a failure also names the likely culprit in the student's engine."""
    try:
        _compare_model(model, Value, n_in, rng)
    except (NotDone, _StoppedElsewhere):
        raise
    except CheckFailure as exc:
        culprit = _name_culprit(model.made, Value, rng)
        if culprit:  # the exercise's own hints would point the wrong way: keep only what failed
            raise CheckFailure(f"{str(exc).splitlines()[0]}{culprit}") from None
        raise


def _redraw(structure: list, acts: list[str], what: str, rng: np.random.Generator) -> None:
    """After checking that the student's initial weights differ, give every weight and bias a value drawn
    from the check's seed, so that the seed alone repeats the test (the student's own draws would not)."""
    weights = np.array([float(v.data) for layer in structure for w, _ in layer for v in w])
    if weights.size > 1 and np.ptp(weights) == 0:
        raise CheckFailure(f"{what}: the initial weights are all equal; draw them at random so the "
                           "neurons can learn different things (equal weights stay equal forever).")
    for w, b in (pair for layer in structure for pair in layer):
        for v in w:
            v.data = float(rng.uniform(-1.0, 1.0))
        b.data = float(rng.uniform(0.2, 0.6) * rng.choice([-1.0, 1.0]))  # never 0: it shows where b is added
    if acts == ["relu"]:  # a positive bias: the input usually lands on the side of the kink that passes
        structure[0][0][1].data = 0.3


def _compare_model(model: Model, Value: type, n_in: int, rng: np.random.Generator) -> None:
    structure, acts, what = model.structure, model.acts, model.what
    _redraw(structure, acts, what, rng)
    params = [v for layer in structure for w, b in layer for v in (*w, b)]
    theta = np.array([float(p.data) for p in params])
    x = rng.normal(size=n_in)

    def outputs(what_call: str) -> list:
        out = _call(what_call, model.obj, [float(v) for v in x], own=model.own)
        if model.single:
            if not isinstance(out, Value):
                rule = ("a Neuron returns one Value, computed from its weight Values with Value operations"
                        if what.startswith("Neuron") else
                        "an MLP whose last layer has one neuron returns that one Value")
                raise CheckFailure(f"{what}(x) returned {type(out).__name__} {out!r}: {rule}.")
            return [out]
        n = len(structure[-1])
        if not isinstance(out, list | tuple) or not all(isinstance(v, Value) for v in out):
            rule = ("a Layer always returns a list, even of one Value (only MLP unwraps a single output)"
                    if what.startswith("Layer") else
                    f"its last layer has {n} neurons, so it returns the list of their {n} outputs")
            raise CheckFailure(f"{what}(x) returned {type(out).__name__} {out!r}: {rule}.")
        return list(out)

    got = np.array([float(v.data) for v in outputs(f"{what}(x)")])
    want = _numpy_forward(structure, acts, theta, x)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-12):
        # every slip these numbers fit is named (at an input where two slips agree, both are)
        hint = "".join(h for h, other in _forward_slips(structure, acts, theta, x, what)
                       if other.shape == got.shape and np.allclose(got, other, rtol=1e-9, atol=1e-12))
        raise CheckFailure(f"{what}(x) computed {np.round(got, 6).tolist()}, expected "
                           f"{np.round(want, 6).tolist()} = activation(w . x + b) layer by layer.{hint}")
    g = rng.normal(size=want.shape)

    def loss(t: np.ndarray) -> float:
        return float(g @ _numpy_forward(structure, acts, t, x))

    def grads(t: np.ndarray) -> np.ndarray:
        last.clear()  # stays empty when the student's code stops: that failure is not about gradients
        for p, v in zip(params, t, strict=True):
            p.data, p.grad = float(v), 0.0
        outs = outputs(f"{what}(x)")
        total = outs[0] * float(g[0])
        for o, gk in zip(outs[1:], g[1:], strict=True):
            total = total + o * float(gk)
        _call("loss.backward()", total.backward, own=())
        last[:] = [float(p.grad) for p in params]
        return np.array(last)

    last: list[float] = []
    weights = [k for k, p in enumerate(params) if not any(p is b for layer in structure for _, b in layer)]
    grads.__name__ = f"the gradient of {what}'s parameters"
    try:
        with reworded(lambda exc: _parameter_gradient_failure(what, str(exc), [last[k] for k in weights])
                      if last else str(exc)):
            _gradient_check(loss, grads, theta, rng)
    finally:
        for p, v in zip(params, theta, strict=True):
            p.data, p.grad = float(v), 0.0


def _parameter_gradient_failure(what: str, failure: str, weight_grads: list[float]) -> str:
    """check_gradient's message about a model's parameters, in the lesson's words: one sentence per line,
    the parameters as the list they are, and one hint (w.data when no gradient reached any weight)."""
    lines = [line.strip() for line in failure.splitlines()]
    hints = [line for line in lines if line.startswith("Hint:")]
    if weight_grads and not any(weight_grads):
        hints = ["Hint: no gradient reached any weight: compute with the weight Values themselves (w * x), "
                 "never w.data."]
    found = re.sub(r" \(shape \((\d+),\)\)", r" (a list of \1)", lines[0])
    rest = [line for line in lines[1:] if not line.startswith("Hint:")]
    return "\n  ".join([f"{what}: gradients do not reach the parameters correctly.",
                        found[:1].upper() + found[1:], *(line[:1].upper() + line[1:] for line in rest),
                        *hints[:1]])


UNKNOWN_ACTIVATION = "Neuron(2, activation='sigmoid-ish')"


def unknown_activation_observations(Neuron: type) -> dict:
    """Probe: what Neuron(2, 'sigmoid-ish')([0.5, -0.25]) raised: the exception's class name ('' if none),
    whether it is a ValueError, and its text."""
    try:
        with quiet():
            Neuron(2, "sigmoid-ish")([0.5, -0.25])
    except Exception as exc:  # noqa: BLE001 - the student's error type is what is observed
        return {"raised": type(exc).__name__, "value_error": isinstance(exc, ValueError), "text": str(exc)}
    return {"raised": "", "value_error": False, "text": ""}


def judge_unknown_activation(seen: dict) -> None:
    """An unknown activation name must raise ValueError (when the neuron is built or first called)."""
    if seen["value_error"]:
        return
    if seen["raised"]:
        raise CheckFailure(f"{UNKNOWN_ACTIVATION} should raise ValueError naming the bad activation, got "
                           f"{seen['raised']}: {seen['text']}")
    raise CheckFailure(f"{UNKNOWN_ACTIVATION} was built and computed an output without an error: an unknown "
                       "activation must raise ValueError (the exercise asks for it), not silently become "
                       "linear. Check the name in __init__ and raise ValueError for anything but 'tanh', "
                       "'relu' and 'linear'.")


@_noting_own_engine("add", "mul", "tanh", "relu")
def _body_mlp(Neuron: type, Layer: type, MLP: type, Value: type, seed: int | None = None) -> None:
    """Neuron(n_in, activation), Layer(n_in, n_out, activation), MLP(n_in, sizes): structure and math."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    own = _codes(Neuron, Layer, MLP)
    with _engine(Value), _recording(Value) as made:
        for act in ("tanh", "relu", "linear"):
            n_in = int(rng.integers(2, 5))
            neuron = _call(f"Neuron({n_in}, activation={act!r})", Neuron, n_in, act, own=own)
            structure = [[_neuron_parts(neuron, "a Neuron")]]
            if len(structure[0][0][0]) != n_in:
                raise CheckFailure(f"Neuron({n_in}) should have {n_in} weights, got "
                                   f"{len(structure[0][0][0])}.")
            _check_params(_params(neuron, "Neuron"), _require_values(structure, Value), "Neuron")
            model = Model(neuron, structure, [act], f"Neuron(activation={act!r})", True, own, made)
            _check_model(model, Value, n_in, rng)
        n_in = 3
        for n_out, act in ((4, "tanh"), (1, "tanh"), (2, "linear")):
            what = f"Layer({n_in}, {n_out}, activation={act!r})"
            layer = _call(what, Layer, n_in, n_out, act, own=own)
            structure = [_layer_parts(layer, what)]
            if len(structure[0]) != n_out:
                raise CheckFailure(f"{what} should hold {n_out} neurons, got {len(structure[0])}.")
            _check_wiring(structure, n_in, what)
            _check_params(_params(layer, what), _require_values(structure, Value), what)
            _check_model(Model(layer, structure, [act], what, False, own, made), Value, n_in, rng)
        for n_in, sizes in ((2, [4, 3, 1]), (3, [1, 2])):
            check_mlp_shape(MLP, Value, n_in, sizes, rng, own, made)
        judge_unknown_activation(unknown_activation_observations(Neuron))
    passed("check_mlp", f"structure, parameters, forward values and parameter gradients of Neurons (tanh, "
                        f"relu, linear), Layers of 4 tanh, 1 tanh and 2 linear neurons, MLP(2, [4, 3, 1]) "
                        f"and MLP(3, [1, 2]), and ValueError for an unknown activation (seed {seed})")


def check_mlp_shape(MLP: type, Value: type, n_in: int, sizes: list[int], rng: np.random.Generator,
                    own: tuple, made: list) -> None:
    """MLP(n_in, sizes): its layers, parameters, values and gradients (tanh layers, linear output)."""
    what = f"MLP({n_in}, {sizes})"
    mlp = _call(what, MLP, n_in, sizes, own=own)
    structure = _structure(mlp, Value, n_in, what)
    if [len(layer) for layer in structure] != sizes:
        raise CheckFailure(f"{what} should have layers of {sizes} neurons, got "
                           f"{[len(layer) for layer in structure]}.")
    _check_params(_params(mlp, "MLP"), structure, "MLP")
    acts = ["tanh"] * (len(sizes) - 1) + ["linear"]
    _check_model(Model(mlp, structure, acts, what, sizes[-1] == 1, own, made), Value, n_in, rng)


class _TinyModel:
    """A 2-3-1 tanh network made of the student's Value objects (ops are trusted during the check)."""

    def __init__(self, Value: type, theta: np.ndarray) -> None:
        self.w1 = [[Value(float(v)) for v in row] for row in theta[:6].reshape(3, 2)]
        self.b1 = [Value(float(v)) for v in theta[6:9]]
        self.w2 = [Value(float(v)) for v in theta[9:12]]
        self.b2 = Value(float(theta[12]))

    def parameters(self) -> list:
        return [v for row in self.w1 for v in row] + self.b1 + self.w2 + [self.b2]

    def __call__(self, x: list) -> object:
        h = []
        for row, b in zip(self.w1, self.b1, strict=True):
            z = b
            for w, xi in zip(row, x, strict=True):
                z = z + w * xi
            h.append(z.tanh())
        out = self.b2
        for w, hi in zip(self.w2, h, strict=True):
            out = out + w * hi
        return out


def _call_on_model(label: str, train_step: Callable, model: _TinyModel, *args: object) -> object:
    """train_step on the check's model, which has only __call__ and parameters(), as the text promises."""
    try:
        return _call(label, train_step, model, *args, own=_codes(train_step))
    except NotDone:
        raise
    except CheckFailure as exc:
        if f"'{type(model).__name__}' object has no attribute" in str(exc):
            raise CheckFailure(f"{exc}.\n  The model passed to {label} may be any model: count only on "
                               "model(x) and model.parameters() (not .layers or other attributes of your "
                               "MLP); use model.parameters() to reach every weight and bias.") from None
        raise


def _mean_logistic_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Mean log(1 + exp(-y s)) of the tiny model, in float64 numpy (the forward pass only)."""
    w1, b1, w2, b2 = theta[:6].reshape(3, 2), theta[6:9], theta[9:12], theta[12]
    s = np.tanh(X @ w1.T + b1) @ w2 + b2
    return float(np.mean(np.log1p(np.exp(-y * s))))


def _loss_and_gradient(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """A five-point finite difference of the loss (accurate to about 1e-10 here, and no backward pass
    written out); the hidden check compares with the reference engine in the grader."""
    h, grad = 1e-3, np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        f = [_mean_logistic_loss(theta + m * e, X, y) for m in (-2, -1, 1, 2)]
        grad[k] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    return _mean_logistic_loss(theta, X, y), grad


@_noting_own_engine("add", "mul", "tanh", "exp", "log", "power")
def _body_train_step(train_step: Callable, Value: type, seed: int | None = None) -> None:
    """Two calls of train_step(model, X, y, lr) must equal two steps of gradient descent on the mean loss."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    label = "`train_step`"
    theta0 = rng.normal(size=13) * 0.8
    X = rng.normal(size=(int(rng.integers(4, 7)), 2))
    y = rng.choice([-1.0, 1.0], size=len(X))
    y[:2] = (-1.0, 1.0)
    lr = float(rng.uniform(0.2, 0.6))
    rtol, atol = 1e-6, 1e-8  # against finite differences of the loss
    with _engine(Value), _recording(Value) as made:
        model = _TinyModel(Value, theta0)
        for p in model.parameters():  # as after an earlier step or an evaluation: train_step must zero them
            p.grad = float(rng.normal())
        theta = theta0.copy()
        for step in (1, 2):
            want_loss, g = _loss_and_gradient(theta, X, y)
            held = np.array([float(p.grad) for p in model.parameters()])
            loss = _call_on_model(label, train_step, model, X.tolist(), y.tolist(), lr)
            if isinstance(loss, Value):
                raise CheckFailure(f"{label} returned a Value; return the loss as a plain float (loss.data), "
                                   "so that a training loop can store and plot it without keeping the graph.")
            got_loss = as_real(loss, f"{label}'s returned loss is")
            theta = theta - lr * g
            got = np.array([float(p.data) for p in model.parameters()])
            if not np.allclose(got, theta, rtol=rtol, atol=atol):
                wrong = (f"{label}: after step {step} the parameters are not one gradient-descent step "
                         f"(lr = {lr:.3g}) on the mean logistic loss. Largest difference "
                         f"{np.max(np.abs(got - theta)):.3g}.")
                culprit = _name_culprit(made, Value, rng)
                if culprit:
                    raise CheckFailure(f"{wrong}{culprit}")
                before = theta + lr * g
                zeroed = all(float(p.grad) == 0.0 for p in model.parameters())
                candidates = {
                    "You moved the parameters UP the gradient: the update is p.data -= lr * p.grad.":
                        before + lr * g,
                    "The parameters came in holding gradients from before this call, and your update used "
                    "them too: zero every parameter's grad FIRST (zero_grad), before loss.backward(); "
                    "zeroing at the end is too late, the caller may have left gradients there.":
                        before - lr * (held + g),
                    "You used the SUM of the per-example losses; the loss is their MEAN.":
                        before - lr * len(X) * g,
                    "The step was lr * lr * p.grad: multiply the gradient by lr once.": before - lr * lr * g,
                    ("The parameters did not change because p.grad was 0 when you updated: you zeroed the "
                     "gradients between loss.backward() and the update. Zero them first, then backward, then "
                     "update." if zeroed else
                     "The parameters did not change: after loss.backward(), update p.data for every p in "
                     "model.parameters()."): before,
                }
                hint = next((h for h, c in candidates.items()
                             if np.allclose(got, c, rtol=10 * rtol, atol=atol)),
                            "Check the loss itself: L = mean over the batch of log(1 + exp(-y_i * s_i)) with "
                            "s_i = model(x_i), then one step p.data -= lr * p.grad for every parameter.")
                raise CheckFailure(f"{wrong} {hint}")
            if not close(got_loss, want_loss, 1e-8):
                raise CheckFailure(f"{label} returned loss {got_loss:.8g} at step {step}; the mean logistic "
                                   f"loss before the update is {want_loss:.8g}. Return loss.data computed "
                                   f"before changing the parameters.")
    passed("check_train_step", f"two steps on a 2-3-1 tanh network with a batch of {len(X)}: parameters "
                               f"and returned losses against gradient descent on the mean logistic loss "
                               f"(seed {seed})")


# --------------------------------------------------------------------------------------------------
# Drawing (matplotlib only: no Graphviz binary to install)
# --------------------------------------------------------------------------------------------------


MAX_DRAWN = 40  # more boxes than this are unreadable in a notebook figure


def _drawing_order(root) -> list:
    """The small graph's nodes, inputs first (see _level_order), refusing graphs too large to draw."""
    return _level_order(root, MAX_DRAWN)


def _level_order(root, limit: int | None = None) -> list:
    """The graph's nodes, inputs first: gathered breadth-first, then sorted by their longest distance from
    a leaf, found by relaxing every edge until nothing changes (fine for the few hundred nodes a drawing or
    a network check has, and not the depth-first search the lesson asks students to write)."""
    nodes, known, k = [root], {id(root)}, 0
    while k < len(nodes):
        for parent in nodes[k].inputs:
            if id(parent) not in known:
                known.add(id(parent))
                nodes.append(parent)
                if limit is not None and len(nodes) > limit:
                    raise ValueError(f"draw_graph draws graphs of at most {limit} Values; this one is "
                                     "larger (draw a smaller example)")
        k += 1
    level = {id(n): 0 for n in nodes}
    changed = True
    while changed:
        changed = False
        for n in reversed(nodes):
            deepest = 1 + max((level[id(p)] for p in n.inputs), default=-1)
            if deepest > level[id(n)]:
                level[id(n)], changed = deepest, True
    return sorted(nodes, key=lambda n: level[id(n)])


def draw_graph(root, ax=None, title: str | None = None):
    """Draw the graph that produced `root`: one box per Value with its label or op, data and grad."""
    import matplotlib.pyplot as plt

    drawn = _drawing_order(root)
    depth: dict[int, int] = {}
    for node in drawn:
        depth[id(node)] = 1 + max((depth[id(p)] for p in node.inputs), default=-1)
    # A leaf sits just left of its first user, so its edge is short and crosses no other box.
    first_use: dict[int, int] = {}
    for node in drawn:
        for parent in node.inputs:
            first_use[id(parent)] = min(first_use.get(id(parent), depth[id(node)]), depth[id(node)])
    for node in drawn:
        if not node.inputs and id(node) in first_use:
            depth[id(node)] = first_use[id(node)] - 1
    columns: dict[int, list] = {}
    for node in drawn:
        columns.setdefault(depth[id(node)], []).append(node)
    if ax is None:
        width = 2.3 * (max(columns) + 1)
        height = 1.2 * max(len(c) for c in columns.values()) + 0.8
        _, ax = plt.subplots(figsize=(max(width, 4), max(height, 2)))
    where = {}
    for d, nodes in columns.items():
        for k, node in enumerate(nodes):
            where[id(node)] = (d, (len(nodes) - 1) / 2 - k)
    for node in drawn:
        x1, y1 = where[id(node)]
        for parent in set(node.inputs):
            x0, y0 = where[id(parent)]
            ax.annotate("", xy=(x1 - 0.33, y1), xytext=(x0 + 0.33, y0),
                        arrowprops={"arrowstyle": "->", "color": "0.45",
                                    "connectionstyle": "arc3,rad=0.0", "shrinkA": 0, "shrinkB": 0})
            uses = sum(p is parent for p in node.inputs)
            if uses > 1:  # e.g. x * x: one arrow, but two messages in the backward pass
                ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, f"×{uses}", ha="center", fontsize=8, color="C3")
    for node in drawn:
        x, y = where[id(node)]
        name = getattr(node, "label", "") or ("" if not node.inputs else node.op)
        text = f"{name}\ndata {node.data:.3g}\ngrad {node.grad:.3g}"
        color = "#dbe9f6" if not node.inputs else "#fde8c8"
        ax.text(x, y, text, ha="center", va="center", fontsize=8, family="monospace",
                bbox={"boxstyle": "round,pad=0.35", "fc": color, "ec": "0.3"})
    ax.set_xlim(-0.6, max(columns) + 0.6)
    ys = [p[1] for p in where.values()]
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------------------------------
# The checks as test cells call them. Each runs its cases where the student's class lives (in a
# student's kernel: right here; when graded: in the grading kernel, through `checks.in_kernel`), and
# gets back what happened as data: the pass line, or the failure message (a failure can only cost the
# student points). When graded, the other primitives and the backward pass are the isolated engine's,
# and the hidden checks compare the student's numbers with the reference engine in the grader.
# --------------------------------------------------------------------------------------------------


def run_body(name: str, seed: int, isolated: bool, *objects: object) -> dict:
    """Probe: run one check's cases on the student's objects; the outcome as data."""
    global _trusted
    saved, _trusted = _trusted, (_NUMERIC if isolated else _trusted)
    shown = io.StringIO()
    try:
        with contextlib.redirect_stdout(shown), repeatable(repeat_call(name, seed)):
            _BODIES[name](*objects, seed=seed)
    except NotDone as exc:
        return {"notdone": str(exc)}
    except CheckFailure as exc:
        return {"failure": str(exc)}
    finally:
        _trusted = saved
    return {"passed": shown.getvalue()}


def repeat_call(name: str, seed: int) -> str:
    """The notebook call that repeats check `name` exactly: the same arguments, and the seed that fixes every
    case, point and weight the check draws."""
    params = [p for p in inspect.signature(_BODIES[name]).parameters if p != "seed"]
    return f"checks.check_{name}({', '.join(params)}, seed={seed})"


def outcome(result: object) -> None:
    """Raise the failure a probe reported, or print its pass line."""
    if not isinstance(result, dict):
        raise CheckFailure(f"the check's cases did not report an outcome (got {type(result).__name__})")
    if "notdone" in result:
        error = NotDone("")
        error.args = (str(result["notdone"]),)
        raise error
    if "failure" in result:
        raise CheckFailure(str(result["failure"]))
    print(str(result.get("passed", "")), end="")


def graded(*objects: object) -> bool:
    """The student's objects live in a grading kernel (the grader is judging)."""
    return any(isinstance(obj, StudentObject) for obj in objects)


_BODIES: dict[str, Callable] = {}


def _judged(name: str) -> Callable:
    body = globals()[f"_body_{name}"]
    _BODIES[name] = body
    signature = inspect.signature(body)
    params = [p for p in signature.parameters if p != "seed"]

    def check(*args: object, **kwargs: object) -> None:
        bound = signature.bind(*args, **kwargs)
        seed = new_seed(bound.arguments.get("seed"))
        objects = [bound.arguments[p] for p in params]
        outcome(in_kernel(run_body, name, seed, graded(*objects), *objects))

    check.__name__ = check.__qualname__ = f"check_{name}"
    check.__doc__ = body.__doc__
    check.__signature__ = signature  # type: ignore[attr-defined]
    return check


check_add = _judged("add")
check_mul = _judged("mul")
check_power = _judged("power")
check_exp = _judged("exp")
check_log = _judged("log")
check_tanh = _judged("tanh")
check_relu = _judged("relu")
check_sigmoid = _judged("sigmoid")
check_topological_sort = _judged("topological_sort")
check_backprop = _judged("backprop")
check_mlp = _judged("mlp")
check_train_step = _judged("train_step")


# --------------------------------------------------------------------------------------------------
# Probes for the hidden checks: each runs a scenario the grader chose on the student's objects and
# returns what it observed (numbers, positions, the failure text); the grader judges.
# --------------------------------------------------------------------------------------------------


def _observed(run: Callable[[], dict]) -> dict:
    """A probe's observations, or the failure the student's code ran into, as data."""
    try:
        with quiet():
            return run()
    except NotDone as exc:
        return {"notdone": str(exc)}
    except CheckFailure as exc:
        return {"failure": str(exc)}


def code_names(fn: object) -> dict:
    """Probe: the module of `fn` and every global name its code (and nested code) reads."""
    names: set[str] = set()
    code = getattr(fn, "__code__", None)
    stack = [code] if code is not None and hasattr(code, "co_names") else []
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    return {"module": str(getattr(fn, "__module__", "") or ""), "names": sorted(names)}


def op_observations(Value: type, fn: Callable, op: str, cases: list, plain: bool = False) -> dict:
    """Probe: for each [a, arg, g] (arg: b for add/mul, k for power, None otherwise) the result's data and
    what out._backward() adds to a.grad (and b.grad) from 0 with out.grad = g, with `fn` as the op; with
    `plain`, b is passed as a plain number (and only a.grad is reported)."""
    label = _LABEL[op]

    def run() -> dict:
        rows = []
        with _engine(Value, **{_METHOD_OF[op]: fn}):
            for a, arg, g in cases:
                leaves = [Value(float(a))] + ([Value(float(arg))] if op in _BINARY and not plain else [])
                if op in _BINARY:
                    other = float(arg) if plain else leaves[1]
                    out = _call(label, getattr(leaves[0], _METHOD_OF[op]), other)
                elif op == "power":
                    out = _call(label, leaves[0].power, arg)
                else:
                    out = _call(label, getattr(leaves[0], op))
                if not isinstance(out, Value):
                    raise CheckFailure(f"{label} should return a new Value, got {type(out).__name__}")
                out.grad = float(g)
                _call(f"{label}: out._backward()", out._backward)
                rows.append([as_real(out.data, f"{label}: .data is"),
                             *[_grad_number(v, n, label) for v, n in zip(leaves, "ab", strict=False)]])
        return {"rows": rows}

    return _observed(run)


def expression_observations(Value: type, fn: Callable | None, op: str, n_leaves: int, steps: list,
                            xs: list, backprop: Callable | None = None) -> dict:
    """Probe: build the grader's expression with the isolated engine around `fn` (the op under test) or
    around nothing (backprop under test), run the backward pass (`root.backward()`, or `backprop(root,
    order)`), and return the root's value, the leaves' gradients and the first recorded node whose own
    gradient is wrong, if any (a hint for the message)."""
    expr = Expression(int(n_leaves), [tuple(step) for step in steps])
    label = f"`{op}`"
    global _trusted
    saved, _trusted = _trusted, _NUMERIC

    def run() -> dict:
        under_test = {} if fn is None else {_METHOD_OF[op]: fn}
        with _engine(Value, **under_test), _recording(Value) as made:
            leaves, root = _call(f"{label} (building {expr.text()})", expr.build, Value, xs)
            if backprop is None:
                _call(f"{label}: backward", root.backward)
            else:
                _call(label, backprop, root, _level_order(root))
            culprit = ""
            try:
                _replay(made, Value, np.random.default_rng(0))
            except CheckFailure as exc:
                culprit = str(exc)
            return {"value": as_real(root.data, f"{label}: the result's .data is"),
                    "grads": [_grad_number(leaf, f"x{k}", label) for k, leaf in enumerate(leaves)],
                    "culprit": culprit}

    try:
        return _observed(run)
    finally:
        _trusted = saved


def order_observations(topological_sort: Callable, Value: type, data: list, parents: list) -> dict:
    """Probe: the grader's graph (node k holds data[k] and has inputs parents[k]), sorted from its last
    node; the order as positions in the graph (-1 for an object that is not one of its nodes), and how
    deeply the sort's calls nested."""
    label = "`topological_sort`"

    def run() -> dict:
        with gc_paused():
            nodes: list = []
            for x, ps in zip(data, parents, strict=True):
                nodes.append(_node(Value, float(x), tuple(nodes[p] for p in ps), "op" if ps else ""))
            got, deepest = _call(label, _nesting, topological_sort, nodes[-1])
            if not isinstance(got, list | tuple):
                raise CheckFailure(f"{label} should return a list of Values, got {type(got).__name__}")
            where = {id(n): k for k, n in enumerate(nodes)}
            return {"order": [where.get(id(n), -1) for n in got], "deepest": deepest}

    return _observed(run)


def sweep_observations(backprop: Callable, Value: type, leaves: list, spec: list, start: list,
                       calls: int) -> dict:
    """Probe: the grader's graph of linear nodes (the leaves' data, then per node the positions of its inputs
    and their coefficients), the leaves holding `start` grads, swept by `calls` calls of backprop(root,
    order), `order` being the nodes the last one depends on in creation order; after each call every node's
    grad, and the list `order` as positions in the graph (-1 for an object that is not one of its nodes)."""
    label = "`backprop`"

    def run() -> dict:
        with gc_paused():
            graph = LinearGraph([_node(Value, float(x)) for x in leaves])
            for positions, coefs in spec:
                graph.add(Value, tuple(int(p) for p in positions), tuple(float(c) for c in coefs))
            nodes = graph.leaves + graph.nodes
            for leaf, s in zip(graph.leaves, start, strict=True):
                leaf.grad = float(s)
            where = {id(n): k for k, n in enumerate(nodes)}
            order = _logged_order(nodes[-1], nodes)
            grads, orders = [], []
            for _ in range(int(calls)):
                _call(label, backprop, nodes[-1], order)
                grads.append([as_real(n.grad, f"{label}: a node's .grad is") for n in nodes])
                orders.append([where.get(id(n), -1) for n in order])
            return {"grads": grads, "orders": orders}

    return _observed(run)


def train_observations(train_step: Callable, Value: type, theta: list, held: list, X: list, y: list,
                       lr: float) -> dict:
    """Probe: two calls of train_step on the 2-3-1 tanh model holding `theta` (its grads holding `held`),
    with the isolated engine; the parameters after each call and the returned losses."""
    global _trusted
    saved, _trusted = _trusted, _NUMERIC
    label = "`train_step`"

    def run() -> dict:
        thetas, losses = [], []
        with _engine(Value):
            model = _TinyModel(Value, np.asarray(theta, dtype=float))
            for p, g in zip(model.parameters(), held, strict=True):
                p.grad = float(g)
            for _ in range(2):
                loss = _call_on_model(label, train_step, model, X, y, lr)
                returned = f"{label}'s returned loss is"
                losses.append(None if isinstance(loss, Value) else as_real(loss, returned))
                thetas.append([float(p.data) for p in model.parameters()])
        return {"thetas": thetas, "losses": losses}

    try:
        return _observed(run)
    finally:
        _trusted = saved


def network_observations(MLP: type, Value: type, n_in: int, sizes: list, x: list, g: list) -> dict:
    """Probe: MLP(n_in, sizes) with the isolated engine; each neuron's weights and bias (layer by layer),
    the outputs at x, every weight's and bias's grad after backward of sum_k g[k] * output[k], and where
    each Value of mlp.parameters() sits among those weights and biases."""
    global _trusted
    saved, _trusted = _trusted, _NUMERIC
    what = f"MLP({n_in}, {sizes})"

    def run() -> dict:
        with _engine(Value):
            mlp = _call(what, MLP, int(n_in), [int(s) for s in sizes], own=_codes(MLP))
            structure = _structure(mlp, Value, int(n_in), what)
            out = _call(f"{what}(x)", mlp, [float(v) for v in x], own=_codes(MLP))
            outs = list(out) if isinstance(out, list | tuple) else [out]
            if not all(isinstance(o, Value) for o in outs) or len(outs) != len(g):
                raise CheckFailure(f"{what}(x) should give {len(g)} Value(s), got {out!r}")
            total = outs[0] * float(g[0])
            for o, gk in zip(outs[1:], g[1:], strict=True):
                total = total + o * float(gk)
            listed = _params(mlp, what)
            for v in listed:
                v.grad = 0.0
            _call("loss.backward()", total.backward, own=())
            flat = [v for layer in structure for w, b in layer for v in (*w, b)]
            return {"params": _positions(listed, flat),
                    "layers": [[[[float(v.data) for v in w], float(b.data)] for w, b in layer]
                               for layer in structure],
                    "grads": [[[[float(v.grad) for v in w], float(b.grad)] for w, b in layer]
                              for layer in structure],
                    "outputs": [as_real(o.data, f"{what}(x) is") for o in outs]}

    try:
        return _observed(run)
    finally:
        _trusted = saved
