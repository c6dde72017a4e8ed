"""Hidden checks for lesson 03 (instructor only): more seeds, edge cases, and the reference engine.

Each hidden check first reruns the visible check with a fresh seed, then adds what the visible one leaves
out: conventions (relu'(0) = 0), extreme inputs (tanh at 1000), more exponents, deeper and wider graphs,
other network shapes, and gradients compared with `reference_impl.scalar` computed at check time. When
those disagree, the recorded graph is replayed node by node to name the first operation whose own gradient
is wrong.
"""

from __future__ import annotations

import contextlib
import io
import math
import types
from collections.abc import Callable

import numpy as np

from autograder import lesson03 as visible
from autograder.checks import CheckFailure
from autograder.hidden.lesson03_trusted import _t_backward, trusted_order
from autograder.lesson03 import Expression, random_expression

__all__ = [
    "check_add",
    "check_mul",
    "check_power",
    "check_exp",
    "check_log",
    "check_tanh",
    "check_relu",
    "check_topological_sort",
    "check_backprop",
    "check_mlp",
    "check_train_step",
]

_METHOD = {"add": "__add__", "mul": "__mul__", "power": "power", "exp": "exp", "log": "log",
           "tanh": "tanh", "relu": "relu"}


def _reference_gradient(expr: Expression, xs: np.ndarray) -> tuple[float, list[float]]:
    """Root value and leaf gradients of `expr` computed by the reference engine."""
    from reference_impl.scalar import Value as Ref

    nodes = [Ref(float(x)) for x in xs]
    leaves = list(nodes)
    for step in expr.steps:
        op, i = step[0], step[1]
        if op == "add":
            nodes.append(nodes[i] + nodes[step[2]])
        elif op == "mul":
            nodes.append(nodes[i] * nodes[step[2]])
        elif op == "power":
            nodes.append(nodes[i] ** step[2])
        else:
            nodes.append(getattr(nodes[i], op)())
    nodes[-1].backward()
    return nodes[-1].data, [leaf.grad for leaf in leaves]


def _against_reference(Value: type, focus: str, label: str, seed: int, run: Callable | None = None,
                       count: int = 4) -> None:
    rng = np.random.default_rng(seed)
    others = tuple(op for op in _METHOD if op != focus)
    for _ in range(count):
        expr, xs = random_expression(rng, focus, others, n_leaves=4, n_steps=14)
        want_value, want_grads = _reference_gradient(expr, xs)
        with visible._recording(Value) as made:
            leaves, root = visible._call(f"{label} (building {expr.text()})", expr.build, Value, xs)
        visible._call(f"{label}: backward", run or (lambda r: r.backward()), root)
        got = [float(leaf.grad) for leaf in leaves]
        if not visible._close(float(root.data), want_value, 1e-9) or not np.allclose(
                got, want_grads, rtol=1e-7, atol=1e-10):
            try:  # name the first operation whose own gradient is wrong, if one is
                visible._replay(made, Value, rng)
                culprit = ""
            except CheckFailure as exc:
                culprit = f" The first wrong operation: {exc}"
            raise CheckFailure(f"{label}: on the expression {expr.text()} at x = {np.round(xs, 6).tolist()} "
                               f"the reference engine gives value {want_value:.8g} and leaf gradients "
                               f"{np.round(want_grads, 6).tolist()}; yours gave {float(root.data):.8g} and "
                               f"{np.round(got, 6).tolist()} (seed {seed}).{culprit}")


def _silently(check: Callable, *args: object) -> None:
    """Run a visible check without its pass line: a test cell prints one line, from the visible check."""
    with contextlib.redirect_stdout(io.StringIO()):
        check(*args)


def _unary_extra(Value: type, fn: Callable, name: str, cases: list[tuple[float, float, float]],
                 hint: str) -> None:
    """Exact (value, gradient) pairs at points the visible check avoids; upstream gradient 1.5."""
    label = f"`{name}`"
    with visible._engine(Value, **{name: fn}):
        for x, value, slope in cases:
            a = Value(x)
            out = visible._call(f"{label} at a = {x:g}", getattr(a, name))
            out.grad = 1.5
            visible._call(f"{label}: out._backward() at a = {x:g}", out._backward)
            ok_value = visible._close(float(out.data), value, 1e-12)
            ok_grad = math.isfinite(float(a.grad)) and visible._close(float(a.grad), 1.5 * slope, 1e-9)
            if not (ok_value and ok_grad):
                raise CheckFailure(f"{label} at a = {x:g}: expected value {value:.6g} and a.grad "
                                   f"{1.5 * slope:.6g} (out.grad = 1.5), got {float(out.data):.6g} and "
                                   f"{float(a.grad):.6g}. {hint}")


# The grader's trusted engine (hidden/lesson03_trusted) is importable wherever grading runs, and the checks'
# helpers everywhere: a submission must not be, or call, either. Names any such use would go through:
_CHECKER_NAMES = frozenset({"autograder", "lesson03", "lesson03_trusted", "TRUSTED",
                            "trusted_order", "_t_add", "_t_mul", "_t_power", "_t_unary", "_t_backward",
                            "_TinyModel", "_engine", "_logged_order", "_creation_log"})


def _own_code(fn: object, name: str) -> None:
    """Fail a submission that is, or calls, the checker's own engine or helpers instead of the student's
    code (the engine is not in the students' kit, but a submission is graded where it is)."""
    borrowed = getattr(fn, "__module__", "") or ""
    code = getattr(fn, "__code__", None)
    stack = [code] if isinstance(code, types.CodeType) else []
    while stack and not borrowed.startswith("autograder"):
        c = stack.pop()
        if _CHECKER_NAMES & set(c.co_names):
            borrowed = "autograder"
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    if borrowed.startswith("autograder"):
        raise CheckFailure(f"`{name}` uses the checker's trusted engine or helpers from autograder instead "
                           "of your own code; the points are for your implementation, so write it yourself.")


def _with_reference(check: Callable, fn: Callable, Value: type, name: str, seed: int | None) -> None:
    _own_code(fn, name)
    seed = visible.new_seed(seed)
    _silently(check, fn, Value, seed)
    with visible._engine(Value, **{_METHOD[name]: fn}):
        _against_reference(Value, name, f"`{name}`", seed + 1, run=_t_backward)


def check_add(add: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_add, add, Value, "add", seed)


def check_mul(mul: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_mul, mul, Value, "mul", seed)


def check_power(power: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_power, power, Value, "power", seed)
    with visible._engine(Value, power=power):
        for x, k, value, slope in ((1.7, 0, 1.0, 0.0), (-1.3, 1, -1.3, 1.0), (2.5, -0.5, 2.5**-0.5,
                                                                                -0.5 * 2.5**-1.5)):
            a = Value(x)
            out = visible._call(f"`power` with k = {k}", a.power, k)
            out.grad = 2.0
            visible._call("`power`: out._backward()", out._backward)
            if not (visible._close(float(out.data), value) and visible._close(float(a.grad), 2 * slope)):
                raise CheckFailure(f"`power`: {x} ** {k} should give {value:.6g} and a.grad = "
                                   f"{2 * slope:.6g} with out.grad = 2; got {float(out.data):.6g} and "
                                   f"{float(a.grad):.6g}.")


def check_exp(exp: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_exp, exp, Value, "exp", seed)
    _unary_extra(Value, exp, "exp", [(0.0, 1.0, 1.0), (-30.0, math.exp(-30), math.exp(-30)),
                                     (5.0, math.exp(5), math.exp(5))], "d/da exp(a) = exp(a).")


def check_log(log: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_log, log, Value, "log", seed)
    cases = [(1.0, 0.0, 1.0), (1e-3, math.log(1e-3), 1e3), (50.0, math.log(50), 0.02)]
    _unary_extra(Value, log, "log", cases, "d/da log(a) = 1/a.")


def check_tanh(tanh: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_tanh, tanh, Value, "tanh", seed)
    _unary_extra(Value, tanh, "tanh", [(0.0, 0.0, 1.0), (1000.0, 1.0, 0.0), (-1000.0, -1.0, 0.0)],
                 "Use math.tanh (it cannot overflow) and 1 - t**2 with the output t.")


def check_relu(relu: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_relu, relu, Value, "relu", seed)
    _unary_extra(Value, relu, "relu", [(0.0, 0.0, 0.0), (3.0, 3.0, 1.0), (-3.0, 0.0, 0.0), (1e-9, 1e-9, 1.0)],
                 "relu'(a) is 1 for a > 0 and 0 for a <= 0 (the course uses 0 at a = 0, like PyTorch).")


def check_topological_sort(topological_sort: Callable, Value: type, seed: int | None = None) -> None:
    """The visible cases, plus a 15 000-deep chain, a 3 000-wide fan-in and larger random graphs."""
    _own_code(topological_sort, "topological_sort")
    seed = visible.new_seed(seed)
    _silently(visible.check_topological_sort, topological_sort, Value, seed)
    with visible.gc_paused():
        _large_orders(topological_sort, Value, seed)


def _large_orders(topological_sort: Callable, Value: type, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    label = "`topological_sort`"
    deep = visible.chain(Value, 15_000)
    visible._validate_order(visible._call(f"{label} on a 15 000-deep chain", topological_sort, deep), deep,
                            f"{label} on a 15 000-deep chain", trusted_order(deep))
    leaves = [Value(float(v)) for v in rng.normal(size=3000)]
    total = leaves[0]
    for leaf in leaves[1:]:
        total = Value(total.data + leaf.data, (total, leaf), "+")
    visible._validate_order(visible._call(label, topological_sort, total), total,
                            f"{label} on a 3 000-term sum", trusted_order(total))
    for _ in range(5):
        _, root = visible.random_graph(Value, rng, n_leaves=10, n_inner=200)
        visible._validate_order(visible._call(label, topological_sort, root), root,
                                f"{label} on a random graph of 210 nodes (seed {seed})", trusted_order(root))


def check_backprop(backprop: Callable, Value: type, seed: int | None = None) -> None:
    """The visible cases, plus the reference engine on long random expressions."""
    _own_code(backprop, "backprop")
    seed = visible.new_seed(seed)
    _silently(visible.check_backprop, backprop, Value, seed)

    def run(root: object) -> None:
        visible._call("`backprop`", backprop, root, trusted_order(root))

    with visible._engine(Value):
        for k, focus in enumerate(("mul", "tanh", "power")):
            _against_reference(Value, focus, "`backprop`", seed + 1 + k, run=run, count=2)


def check_mlp(Neuron: type, Layer: type, MLP: type, Value: type, seed: int | None = None) -> None:
    """The visible cases, plus an MLP with several outputs and a one-layer (linear) MLP."""
    seed = visible.new_seed(seed)
    _silently(visible.check_mlp, Neuron, Layer, MLP, Value, seed)
    rng = np.random.default_rng(seed + 1)
    own = visible._codes(Neuron, Layer, MLP)
    with visible._engine(Value):
        for n_in, sizes in ((3, [5, 2]), (4, [1]), (2, [3, 3, 3])):
            visible.check_mlp_shape(MLP, Value, n_in, sizes, rng, own, [])


def check_train_step(train_step: Callable, Value: type, seed: int | None = None) -> None:
    """Two more independent runs of the visible check (other batches, rates and weights)."""
    _own_code(train_step, "train_step")
    seed = visible.new_seed(seed)
    _silently(visible.check_train_step, train_step, Value, seed)
    _silently(visible.check_train_step, train_step, Value, seed + 1)
