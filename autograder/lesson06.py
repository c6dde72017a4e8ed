"""Visible checks for lesson 06 (an autograd Tensor).

The notebook's given cells define the data structure (``Tensor``, ``Node``, the primitive table ``OPS``
and ``GradMode``); each check receives those plus the ONE student function it grades. When grading,
the graphs a check needs are recorded by the grader's own code (the hidden module installs it with
`install_grader_recording` when the test cell imports it, before the visible check runs), never with the
student's other exercises, so a bug in one exercise costs only that exercise's points. This module never
imports hidden code; it is shipped to students and holds no answer: in their kit the graphs are built with
their own apply_op (through the Tensor's operators), and a failure says so when the fault is in what
apply_op recorded.

When grading, the student's objects live in the grading kernel and the checks here run in the grader
(`autograder.course.judge`). What must watch the student's code from inside (a leaf that logs when its
.grad is written, a node that logs its VJP calls, a recursion limit, `with no_grad():`) is a probe: a
``probe_*`` function below, run in the kernel with `checks.in_kernel`, which returns observations only.
Every verdict is computed here from inputs drawn here.

Correct gradients always come from float64 finite differences of a forward pass the check computes with
its own numpy code (``autograder.checks``), never from the notebook; where PyTorch is installed the same
random program is also differentiated by PyTorch and compared. When a whole graph's gradient is wrong, the
graph is replayed node by node (``Graph.diagnose``) to name the first node, edge or leaf that went wrong.
Each ``check_*`` prints one line when it passes; the ``judge_*`` functions behind them return that line's
detail, so the hidden checks can run them with more cases without printing twice.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np

from autograder.checks import (
    CheckFailure,
    GradientCheckError,
    NotDone,
    call_student,
    check_close,
    check_gradient,
    check_vjp,
    in_kernel,
    new_seed,
    passed,
    quiet,
    raised_by,
    repeatable,
    reworded,
    type_name,
)

__all__ = [
    "check_apply_op",
    "check_format_graph",
    "check_backward",
    "check_backward_semantics",
    "check_sum_to_shape",
    "check_no_grad",
    "Graph",
    "Program",
    "random_program",
    "graph_op",
    "operator_op",
]


# ---------------------------------------------------------------------------------------------------------
# The check's own numpy forward of every primitive (independent of the notebook's table)
# ---------------------------------------------------------------------------------------------------------

NUMPY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "neg": np.negative,
    "pow": np.power,
    "exp": np.exp,
    "log": np.log,
    "tanh": np.tanh,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "matmul": np.matmul,
    "sum": lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, axes=None: np.transpose(x, axes),
}


def _torch_ops(torch):  # noqa: ANN001, ANN202 - torch is optional, imported by the caller
    return {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "neg": torch.neg,
        "pow": torch.pow,
        "exp": torch.exp,
        "log": torch.log,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "matmul": torch.matmul,
        "sum": lambda x, axis=None, keepdims=False: (
            x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)
        ),
        "mean": lambda x, axis=None, keepdims=False: (
            x.mean() if axis is None else x.mean(dim=axis, keepdim=keepdims)
        ),
        "reshape": lambda x, shape: x.reshape(shape),
        "transpose": lambda x, axes=None: x.permute(
            *(axes if axes is not None else range(x.ndim - 1, -1, -1))
        ),
    }


_recording_op: Callable[..., Callable[..., object]] | None = None
"""The grader's own graph recorder, recording_op(Tensor, Node, OPS) -> op(name, *tensors, **params); None in
a student's kit (it would be apply_op's answer)."""


def install_grader_recording(recording_op: Callable[..., Callable[..., object]] | None) -> None:
    """Build the checks' graphs with `recording_op` instead of the student's apply_op (the hidden module
    calls this when it is imported; None restores the kit's behaviour)."""
    global _recording_op
    _recording_op = recording_op

KIT_NOTE = (
    "(In your kit this check builds its graphs with YOUR apply_op, through the Tensor's operators; the "
    "grader uses a trusted one. The fault above is in what apply_op recorded: fix apply_op first, with "
    "exercise 1's test cell.)"
)



_BINARY_METHODS = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "truediv", "pow": "pow", "matmul": "matmul"
}


def operator_op(name: str, *args: object, **params: object) -> object:
    """Evaluate a program step with the Tensor's own operators, which call the notebook's apply_op."""
    a = args[0]
    if name in _BINARY_METHODS:
        method, b = _BINARY_METHODS[name], args[1]
        if hasattr(a, "grad_fn"):
            return getattr(a, f"__{method}__")(b)
        return getattr(b, f"__r{method}__")(a)  # a Python number on the left: the reflected operator
    if name == "neg":
        return -a
    if name in ("exp", "log", "tanh", "relu"):
        return getattr(a, name)()
    if name in ("sum", "mean"):
        return getattr(a, name)(**params)
    if name == "reshape":
        return a.reshape(params["shape"])
    if name == "transpose":
        return a.transpose(*(params.get("axes") or ()))
    raise KeyError(name)


def graph_op(Tensor: type, Node: type, OPS: dict) -> Callable[..., object]:
    """op(name, *tensors, **params) that records a graph for checks of exercises other than apply_op.

    With the grader's trusted stand-in the graph does not depend on the student's apply_op; in a student's
    kit it is built with the student's own apply_op (a blank one is reported as such)."""
    if _recording_op is not None:
        return _recording_op(Tensor, Node, OPS)

    def op(name: str, *args: object, **params: object) -> object:
        try:
            with quiet():
                out = operator_op(name, *args, **params)
        except NotImplementedError:
            raise CheckFailure(
                "this check builds its graphs with your apply_op (the grader uses a trusted one), and "
                "apply_op is not written yet: complete exercise 1 (apply_op) first."
            ) from None
        except Exception as exc:  # noqa: BLE001 - the student's apply_op crashed while the check built a graph
            problem = f"it raised {type(exc).__name__}: {exc}"
        else:
            needs = any(isinstance(a, Tensor) and a.requires_grad for a in args)
            if not isinstance(out, Tensor):
                problem = f"it returned a {type_name(out)}, not a Tensor"
            elif needs and (not out.requires_grad or out.grad_fn is None):
                problem = (f"its output has requires_grad={out.requires_grad} and grad_fn={out.grad_fn!r} "
                           "although an input requires grad")
            else:
                return out
        raise CheckFailure(
            f"this check builds its graphs with your apply_op (the grader uses a trusted one), and apply_op("
            f"{name}) went wrong: {problem}. Fix apply_op first, with exercise 1's test cell; this check "
            "cannot judge your code before that.")

    return op


# ---------------------------------------------------------------------------------------------------------
# Replaying a graph node by node: which op, edge or leaf first went wrong
# ---------------------------------------------------------------------------------------------------------

_ORDINAL = ("first", "second", "third")


@dataclass
class _Step:
    """One op of a graph the check built: what it was called with and what came back."""

    label: str
    name: str
    args: list
    params: dict
    out: object


@dataclass
class _Call:
    """One run of a node's VJPs during a backward pass: the gradient it got and what it sent on."""

    node: object
    g: np.ndarray
    sent: list | None = None
    error: str | None = None  # what the VJPs raised, if they did


class Graph:
    """An op(name, *args, **params) that records every step and logs every node's VJP call.

    After a backward pass, `diagnose` replays the graph node by node, judging each node by the student's
    own numbers: did it run once, after all its consumers; is what it received the sum of what they sent;
    is what it sent on the op's vector-Jacobian product (finite differences of the op alone); did every
    leaf receive the sum of its contributions. The first node that fails is the cause to name.
    """

    def __init__(self, op: Callable[..., object], Tensor: type) -> None:
        self.op, self.Tensor = op, Tensor
        self.steps: list[_Step] = []
        self.calls: list[_Call] = []
        self.names: dict[int, str] = {}
        self.leaves: list = []
        self.writes: list[tuple[int, int]] = []  # (id of leaf, VJP calls started) at each write of .grad
        self.log = in_kernel(probe_new_log, Tensor)  # where the student's objects live

    def leaf(self, data: np.ndarray) -> object:
        """A new leaf Tensor that requires grad, named x0, x1, ... in messages; it logs when its .grad is
        written, so the replay sees WHEN its AccumulateGrad node ran."""
        t = in_kernel(probe_logged_leaf, self.log, self.Tensor, np.array(data, dtype=float))
        self.names[id(t)] = f"x{len(self.leaves)}"
        self.leaves.append(t)
        return t

    def _arg_name(self, a: object) -> str:
        if id(a) in self.names:
            return self.names[id(a)]
        value = np.asarray(a.data if isinstance(a, self.Tensor) else a)
        return f"{float(value):g}" if value.size == 1 else "const"

    def __call__(self, name: str, *args: object, **params: object) -> object:
        out = self.op(name, *args, **params)
        var = f"v{len(self.leaves) + len(self.steps)}"
        extra = "".join(f", {k}={v}" for k, v in params.items())
        label = f"{var} = {name}({', '.join(self._arg_name(a) for a in args)}{extra})"
        self.names[id(out)] = var
        self.steps.append(_Step(label, name, list(args), dict(params), out))
        node = getattr(out, "grad_fn", None)
        if node is not None:
            in_kernel(probe_log_node, self.log, node)
        return out

    def pull(self) -> None:
        """Fetch what the kernel logged: every VJP call of the graph's nodes and every write of a leaf's
        .grad, in order (plain arrays, and the nodes and leaves themselves)."""
        calls, writes = in_kernel(probe_read_log, self.log)
        self.calls = [_Call(node, g, sent, error) for node, g, sent, error in calls]
        self.writes = [(id(leaf), started) for leaf, started in writes]

    # -- what each step should be, from the check's own numpy forward -------------------------------------

    def _arrays(self, step: _Step) -> list[np.ndarray]:
        return [np.asarray(a.data if isinstance(a, self.Tensor) else a, dtype=float) for a in step.args]

    def _edge(self, a: object) -> object:
        """The node an edge to input `a` must point at (what PyTorch's next_functions holds)."""
        if not isinstance(a, self.Tensor):
            return None
        if a.grad_fn is not None:
            return a.grad_fn
        return a.accumulator if a.requires_grad else None

    def structure_error(self) -> str | None:
        """The first step whose output or recorded node is not what a correct apply_op makes."""
        for step in self.steps:
            out, arrays = step.out, self._arrays(step)
            if not isinstance(out, self.Tensor):
                return f"{step.label} returned {type_name(out)}, not a Tensor"
            with quiet():
                want = NUMPY_OPS[step.name](*arrays, **step.params)
            data = np.asarray(out.data)
            if data.shape != np.shape(want) or not np.allclose(data, want, rtol=1e-10, atol=1e-12):
                return f"{step.label} computed the wrong forward values (shape {data.shape})"
            needs = any(isinstance(a, self.Tensor) and a.requires_grad for a in step.args)
            node = out.grad_fn
            if needs != bool(out.requires_grad) or needs != (node is not None):
                return (f"{step.label} has requires_grad={out.requires_grad} and grad_fn={node!r}, although "
                        f"{'an' if needs else 'no'} input requires grad")
            if node is None:
                continue
            edges = [self._edge(a) for a in step.args]
            got = list(getattr(node, "next_functions", ()))
            if len(got) != len(edges) or any(x is not y for x, y in zip(got, edges, strict=False)):
                return f"{step.label}: its node's next_functions are {got}, they should be {edges}"
            recorded = getattr(node, "params", step.params)
            if any(k not in recorded or recorded[k] != v for k, v in step.params.items()):
                return f"{step.label}: its node was recorded with params {recorded}, not {step.params}"
        return None

    # -- the replay ---------------------------------------------------------------------------------------

    def diagnose(self, loss: object, start: np.ndarray, rng: np.random.Generator, *,
                 crashed: bool = False) -> tuple[str, str] | None:
        """(cause, message) for the first node, from the loss down, whose own behaviour is wrong.

        cause is "apply_op" (the graph was recorded wrongly), "vjp" (a node's local gradient is wrong) or
        "backward" (order, accumulation or a skipped node). After a backward pass that `crashed`, nodes it
        never reached and leaves it never wrote prove nothing, so only what did run is judged."""
        structure = self.structure_error()
        if structure is not None:
            return "apply_op", f"apply_op recorded the graph wrongly: {structure}."
        self.pull()
        runs: dict[int, list[int]] = {}
        for i, call in enumerate(self.calls):
            runs.setdefault(id(call.node), []).append(i)
        again = next((call for call in self.calls if len(runs[id(call.node)]) > 1), None)
        if again is not None:  # first, as it may have stopped the pass (freed saved arrays) before the rest
            step = next(s for s in self.steps if s.out.grad_fn is again.node)
            return "backward", (
                f"backward ran the VJPs of {self._where(step, again.node)} {len(runs[id(again.node)])} times "
                "in one backward pass (once a run has released the node, the next finds its saved arrays "
                "freed: that is the engine's 'Pass retain_graph=True' error, and retaining the graph is not "
                "the fix). Each node must run "
                "exactly once, with the sum of everything its consumers send: build a topological order "
                "(a post-order depth-first search, visiting each node once) and walk it in reverse, "
                "instead of queueing a node again for every path that reaches it.")
        received: dict[int, list[tuple[int, _Step, int, np.ndarray]]] = {}
        for step in self.steps:
            node = step.out.grad_fn
            for i in runs.get(id(node), []) if node is not None else []:
                sent = self.calls[i].sent
                for k, a in enumerate(step.args):
                    target = self._edge(a)
                    if target is not None and sent is not None and k < len(sent) and sent[k] is not None:
                        received.setdefault(id(target), []).append((i, step, k, sent[k]))
        for step in reversed(self.steps):
            node = step.out.grad_fn
            if node is None:
                continue
            parts = received.get(id(node), [])
            if step.out is loss:
                expected = np.asarray(start, dtype=float)
            elif parts:
                expected = _total([p[3] for p in parts])
            else:
                continue
            if crashed and id(node) not in runs:
                continue
            problem = self._judge_node(step, node, parts, expected, runs.get(id(node), []), rng)
            if problem is not None:
                return problem
        for leaf in [] if crashed else self.leaves:
            parts = received.get(id(leaf.accumulator), []) if leaf.requires_grad else []
            if parts:
                problem = self._judge_leaf(leaf, parts)
                if problem is not None:
                    return "backward", problem
        return None

    def _where(self, step: _Step, node: object) -> str:
        return f"{getattr(node, 'name', type_name(node))} ({step.label})"

    def _sender(self, part: tuple[int, _Step, int, np.ndarray]) -> str:
        _, step, k, _ = part
        return f"{self._where(step, step.out.grad_fn)} (through entry {k + 1} of its next_functions)"

    def _judge_node(self, step: _Step, node: object, parts: list, expected: np.ndarray, runs: list[int],
                    rng: np.random.Generator) -> tuple[str, str] | None:
        where = self._where(step, node)
        if not runs:
            via = f", although {self._sender(parts[0])} sent it a gradient" if parts else ""
            return "backward", (
                f"backward never ran the VJPs of {where}{via}. Either the node is missing from your order "
                "(the depth-first search must push EVERY entry of next_functions that is not None: skip a "
                "None and carry on with the next entry), or your loop met it before that consumer had run "
                "and skipped it (walk the post-order list in REVERSE, so each node comes after all its "
                "consumers).")
        first = runs[0]
        late = [p for p in parts if p[0] > first]
        if late:
            return "backward", (
                f"backward ran the VJPs of {where} before {self._sender(late[0])} had sent its share, so it "
                "passed on only part of its gradient. A node may run only after ALL its consumers: walk the "
                "nodes in reverse topological order (a post-order depth-first search, reversed), not "
                "breadth-first from the loss.")
        got = self.calls[first].g
        if got.shape != expected.shape or not _close(got, expected, parts):
            if len(parts) > 1 and any(p[3].shape == got.shape and _close(got, p[3]) for p in parts):
                return "backward", (
                    f"{where} received only one of the {len(parts)} gradients its consumers sent: it is "
                    "used more than once, and its gradient is the SUM of what every use sends. Add each "
                    "contribution into the dictionary entry, do not overwrite it.")
            what = "the starting gradient" if not parts else "the sum of what its consumers sent"
            return "backward", (
                f"{where} received a gradient that is not {what}: {_differ(got, expected)}. Pass each node "
                "exactly the total its consumers sent (the given gradient, or ones, for the loss itself).")
        error = self.calls[first].error
        if error is not None and "freed" in error:
            return "backward", (
                f"the VJPs of {where} ran after its saved arrays had been released ({error.split(',')[0]}). "
                "Call node.release() only AFTER node.input_grads(g) has used them (and not at all with "
                "retain_graph=True).")
        sent = self.calls[first].sent
        arrays = self._arrays(step)
        for k, a in enumerate(step.args):
            if not (isinstance(a, self.Tensor) and a.requires_grad):
                continue
            gk = None if sent is None or k >= len(sent) else sent[k]
            ordinal = _ORDINAL[k] if k < len(_ORDINAL) else f"input {k + 1}"
            flow = f"the gradient flowing out of {where} into its {ordinal} input"
            if gk is None:
                return "vjp", f"{flow} is None, although that input requires grad."
            error = _local_vjp_error(step.name, step.params, arrays, k, got, gk, rng)
            if error is not None:
                shape_in, shape_out = arrays[k].shape, np.shape(step.out.data)
                broadcast = shape_in != shape_out and step.name in ("add", "sub", "mul", "div", "pow")
                why = (f" That input (shape {shape_in}) was broadcast to {shape_out}: Node.input_grads "
                       "reduced its gradient with your sum_to_shape." if broadcast else
                       " The node's VJPs are the given table's, so the node was recorded with the wrong "
                       "inputs, params or output: see apply_op.")
                return "vjp", f"{flow} is wrong: {error}.{why}"
        return None

    def _judge_leaf(self, leaf: object, parts: list) -> str | None:
        name = self.names.get(id(leaf), "a leaf")
        expected = _total([p[3] for p in parts])
        written = [t for i, t in self.writes if i == id(leaf)]
        late = [p for p in parts if written and p[0] >= written[-1]]
        if late:
            return (f"backward wrote {name}.grad before {self._sender(late[0])} had sent its share, so the "
                    "leaf got only part of its gradient. A node may run only after ALL its consumers, and "
                    "that holds for AccumulateGrad nodes too: walk the nodes in reverse topological order (a "
                    "post-order depth-first search, reversed), not breadth-first from the loss.")
        if leaf.grad is None:
            return (f"leaf {name} has .grad None, although {self._sender(parts[0])} sent a gradient to its "
                    "AccumulateGrad node. That node is missing from your order, or your loop does not handle "
                    "it: push every entry of next_functions that is not None, and for an AccumulateGrad node "
                    "add the gradient into node.variable.grad.")
        got = np.asarray(leaf.grad, dtype=float)
        if got.shape == expected.shape and _close(got, expected, parts):
            return None
        if len(parts) > 1 and any(p[3].shape == got.shape and _close(got, p[3]) for p in parts):
            return (f"{name}.grad holds only one of the {len(parts)} gradients sent to its AccumulateGrad "
                    "node: the leaf is used more than once, and its gradient is the SUM of what every use "
                    "sends. Add each contribution (into the dictionary entry, and leaf.grad + g), do not "
                    "overwrite it.")
        return (f"{name}.grad is not the sum of the {len(parts)} gradient(s) sent to its AccumulateGrad "
                f"node: {_differ(got, expected)}.")


def _floats(x: object) -> np.ndarray:
    """A float copy of what student code passed along (NaN where it is not numbers, so it never matches)."""
    try:
        return np.array(x, dtype=float, copy=True)
    except (TypeError, ValueError):
        return np.array(np.nan)


class _Log:
    """The kernel's side of a Graph: what its logged nodes and leaves did during a backward pass."""

    def __init__(self) -> None:
        self.calls: list[list] = []   # [node, gradient received, gradients sent or None, error or None]
        self.writes: list[list] = []  # [leaf, VJP calls started before the write]
        self.leaf_types: dict[int, type] = {}


def probe_new_log(Tensor: type) -> _Log:
    """Probe: a new, empty log in the kernel (Tensor only says where the student's objects live)."""
    return _Log()


def probe_logged_leaf(log: _Log, Tensor: type, data: np.ndarray) -> object:
    """Probe: a leaf that requires grad, of a subclass of the given Tensor that logs every write of .grad."""
    Leaf = log.leaf_types.get(id(Tensor))
    if Leaf is None:
        def write(t: object, value: object) -> None:
            t.__dict__["_grad"] = value
            if value is not None:  # None is Tensor.__init__ (or zero_grad), not an AccumulateGrad node
                log.writes.append([t, len(log.calls)])

        grad = property(lambda t: t.__dict__.get("_grad"), write)
        Leaf = log.leaf_types[id(Tensor)] = type(Tensor.__name__, (Tensor,), {"grad": grad})
    return Leaf(np.array(data, dtype=float), requires_grad=True)


def probe_log_node(log: _Log, node: object) -> None:
    """Probe: make a Node log each run of its VJPs (what it received and what it sent on)."""
    original = getattr(node, "input_grads", None)
    if original is None:  # not a Node with VJPs: nothing to log
        return

    def logged(g: object) -> object:
        call = [node, _floats(g), None, None]
        log.calls.append(call)
        try:
            result = original(g)
        except Exception as exc:
            call[3] = f"{type(exc).__name__}: {exc}"
            raise
        try:
            call[2] = [None if r is None else _floats(r) for r in result]
        except TypeError:  # not a sequence: the replay then finds what this node sent unusable
            pass
        return result

    try:
        node.input_grads = logged
    except AttributeError:  # a node type that refuses new attributes: it is simply not replayed
        pass


def probe_read_log(log: _Log) -> tuple[list, list]:
    """Probe: the log so far, as lists."""
    return [list(c) for c in log.calls], [list(w) for w in log.writes]


def _total(arrays: list[np.ndarray]) -> np.ndarray:
    total = arrays[0]
    for a in arrays[1:]:
        total = total + a
    return np.asarray(total, dtype=float)


def _close(got: np.ndarray, want: np.ndarray, parts: list | None = None) -> bool:
    """Equal up to the rounding of summing `parts` (the contributions `want` is the sum of) in any order."""
    size = np.abs(want) if not parts else _total([np.abs(p[3]) for p in parts])
    scale = max(1.0, float(np.max(size))) if want.size else 1.0
    return bool(np.all(np.abs(got - want) <= 1e-8 * size + 1e-10 * scale))


def _differ(got: np.ndarray, want: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"it has shape {got.shape}, the sum has shape {want.shape}"
    i = np.unravel_index(int(np.argmax(np.abs(got - want))), want.shape) if want.ndim else ()
    at = f" at index {[int(j) for j in i]}" if want.ndim else ""
    return f"{float(got[i]):.6g}{at} where the sum is {float(want[i]):.6g}"


def _local_vjp_error(name: str, params: dict, arrays: list[np.ndarray], k: int, g: np.ndarray,
                     got: np.ndarray, rng: np.random.Generator) -> str | None:
    """Does `got` match the VJP of the op alone for input k and upstream g? Judged along random directions
    (each element moved in proportion to its own size) by central differences of <g, op(...)> at two steps,
    combined by Richardson extrapolation, the op evaluated by the check's own numpy forward."""
    x = arrays[k]
    if got.shape != x.shape:
        return f"it has shape {got.shape}, but that input has shape {x.shape}"
    forward = NUMPY_OPS[name]
    h = 1e-5
    with quiet():  # the rounding error of <g, op(...)> bounds what a difference quotient can resolve
        roundoff = 16 * np.finfo(float).eps * float(np.sum(np.abs(g * forward(*arrays, **params)))) / h
    for _ in range(2):
        u = rng.standard_normal(x.shape) * np.maximum(1.0, np.abs(x))
        if name == "relu":
            u = np.where(np.abs(x) < 1e-3, 0.0, u)

        def phi(t: float, u: np.ndarray = u) -> float:
            moved = list(arrays)
            moved[k] = x + t * u
            with quiet():
                return float(np.sum(g * forward(*moved, **params)))

        wide, narrow = (phi(h) - phi(-h)) / (2 * h), (phi(h / 2) - phi(-h / 2)) / h
        fd = (4 * narrow - wide) / 3
        claimed = float(np.sum(u * got))
        size = float(np.sqrt(np.sum(u * u) * np.sum(got * got)))
        tol = 1e-6 * (abs(fd) + abs(claimed)) + 1e-8 * size + abs(narrow - wide) + 2 * roundoff + 1e-12
        if not abs(fd - claimed) <= tol:
            return (f"along a random direction u, <u, what it sent> = {claimed:.6g}, but finite differences "
                    f"of {name} alone, with the gradient it received, give {fd:.6g}")
    return None


# ---------------------------------------------------------------------------------------------------------
# Random programs: a straight-line list of ops over a few leaves, evaluated by any "backend"
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Program:
    """A random straight-line program over leaves; operands are ("v", i), ("c", array) or ("s", float)."""

    leaf_shapes: list[tuple[int, ...]]
    steps: list[tuple[str, list[tuple[str, object]], dict]] = field(default_factory=list)
    readout: list[tuple[int, np.ndarray]] = field(default_factory=list)  # loss = sum_k sum(R_k * v[i_k])

    def run(self, leaves: list, op: Callable[..., object], const: Callable[[object], object]) -> object:
        """Evaluate with op(name, *operands, **params); const wraps arrays/scalars for the backend."""
        values = list(leaves)
        for name, operands, params in self.steps:
            args = [values[x] if kind == "v" else const(x) for kind, x in operands]
            values.append(op(name, *args, **params))
        total = None
        for i, weights in self.readout:
            term = op("sum", op("mul", values[i], const(weights)))
            total = term if total is None else op("add", total, term)
        return total

    def numpy_loss(self, *leaves: np.ndarray) -> float:
        return float(self.run(list(leaves), lambda n, *a, **p: NUMPY_OPS[n](*a, **p), lambda c: c))

    def describe(self) -> str:
        names = [f"x{i}{list(s)}" for i, s in enumerate(self.leaf_shapes)]
        lines = []
        for name, operands, params in self.steps:
            args = [names[x] if k == "v" else ("const" if k == "c" else repr(x)) for k, x in operands]
            extra = "".join(f", {k}={v}" for k, v in params.items())
            lines.append(f"v{len(names)} = {name}({', '.join(args)}{extra})")
            names.append(f"v{len(names)}")
        # the loss too: a value it reads out is used once more than the steps show
        terms = [f"sum(r{k} * {names[i]})" for k, (i, _) in enumerate(self.readout)]
        lines.append(f"loss = {' + '.join(terms)} (r0, r1, ... fixed random weights)")
        return "; ".join(lines)


def random_program(rng: np.random.Generator, n_steps: int = 8, *, broadcasting: bool = False) -> Program:
    """Random program whose values are all (3, 4) unless `broadcasting` adds leaves of other shapes.

    Without broadcasting every gradient already has its input's shape, so the program tests backward
    without touching sum_to_shape. Domains are kept safe (log of 1 + x*x, exp of tanh) and values shared
    between ops so the graph has diamonds.
    """
    shapes: list[tuple[int, ...]] = [(3, 4), (3, 4), (4, 4)]
    if broadcasting:
        shapes += [(4,), (1, 4), (3, 1), ()]
    prog = Program(shapes)
    big = [0, 1]  # indices of (3, 4) values
    small = list(range(3, len(shapes)))

    def pick() -> tuple[str, int]:
        return ("v", int(rng.choice(big)))

    def emit(name: str, operands: list, **params: object) -> int:
        prog.steps.append((name, operands, params))
        return len(shapes) + len(prog.steps) - 1

    for _ in range(n_steps):
        kind = int(rng.integers(9))
        if kind == 0:
            new = emit(str(rng.choice(["add", "sub", "mul"])), [pick(), pick()])
        elif kind == 1:
            new = emit("mul", [pick(), ("c", rng.standard_normal(4))])
        elif kind == 2:  # a / (1 + b*b)
            sq = emit("mul", [pick(), pick()])
            den = emit("add", [("s", 1.0), ("v", sq)])
            new = emit("div", [pick(), ("v", den)])
        elif kind == 3:  # log(1 + a*a)
            a = pick()
            sq = emit("mul", [a, a])
            new = emit("log", [("v", emit("add", [("v", sq), ("s", 1.0)]))])
        elif kind == 4:
            new = emit("exp", [("v", emit("tanh", [pick()]))])
        elif kind == 5:
            new = emit(str(rng.choice(["relu", "neg", "tanh"])), [pick()])
        elif kind == 6:
            new = emit("matmul", [pick(), ("v", 2)])
        elif kind == 7:
            new = emit("reshape", [("v", emit("transpose", [pick()]))], shape=(3, 4))
        else:  # (1 + a*a) ** p
            a = pick()
            base = emit("add", [("s", 1.0), ("v", emit("mul", [a, a]))])
            new = emit("pow", [("v", base), ("s", float(rng.choice([0.5, 2.0, 3.0])))])
        if broadcasting and small and rng.random() < 0.7:
            other = ("v", int(rng.choice(small)))
            new = emit(str(rng.choice(["add", "mul", "sub"])), [("v", new), other])
        big.append(new)
    # Read out the last value, a random earlier one, and a reduction, so sums and means are exercised.
    prog.readout.append((big[-1], rng.standard_normal((3, 4))))
    prog.readout.append((int(rng.choice(big[2:] or big)), rng.standard_normal((3, 4))))
    mean_axis = emit("mean", [("v", int(rng.choice(big)))], axis=0)
    prog.readout.append((mean_axis, rng.standard_normal(4)))
    live = {i for i, _ in prog.readout}
    for k in range(len(prog.steps) - 1, -1, -1):  # which values the loss actually depends on
        if len(shapes) + k in live:
            live |= {x for kind, x in prog.steps[k][1] if kind == "v"}
    for leaf, shape in enumerate(shapes):  # every leaf must reach the loss, so every leaf gets a .grad
        if leaf not in live:
            prog.readout.append((leaf, rng.standard_normal(shape)))
    return prog


def random_leaves(rng: np.random.Generator, prog: Program) -> list[np.ndarray]:
    return [rng.standard_normal(s) * (0.5 if len(s) == 2 and s[0] == 4 else 1.0) for s in prog.leaf_shapes]


class _Explained(CheckFailure):
    """A failure whose message already names its cause (the replay or a shape found it): no hint is added."""


def explain(graph: Graph, loss: object, start: np.ndarray, seed: int, fallback: str, *,
            crashed: bool = False) -> str:
    """The replay's diagnosis of a wrong or failed backward pass, or `fallback` when it finds no cause.

    In a student's kit the graph was built with the student's own apply_op: the message says so only when
    the replay finds the fault in what apply_op recorded."""
    found = graph.diagnose(loss, start, np.random.default_rng(seed), crashed=crashed)
    if found is None:
        return fallback
    cause, text = found
    note = f"\n  {KIT_NOTE}" if _recording_op is None and cause in ("apply_op", "vjp") else ""
    return (f"{text}\n  (Found by replaying the graph node by node from the loss, judging each node by the "
            f"gradients it received and sent){note}")


def build_and_backward(prog: Program, arrays: list[np.ndarray], Tensor: type, op: Callable[..., object],
                       backward: Callable[..., None], *, raw_constants: bool = False,
                       what: str = "backward") -> tuple[Graph, object, CheckFailure | None]:
    """Build prog on fresh leaf Tensors through a logging Graph, call backward(loss): the graph, the loss
    and the failure backward ended in, if any.

    Constants are wrapped as Tensors, or (raw_constants) passed as the numbers/arrays they are, which is
    how the Tensor's operators meet them in user code."""
    graph = Graph(op, Tensor)
    for a in arrays:
        graph.leaf(a)
    const = (lambda c: c) if raw_constants else (lambda c: Tensor(np.array(c, dtype=float)))
    loss = call_student("apply_op", prog.run, list(graph.leaves), graph, const)
    try:
        call_student(what, backward, loss)
    except NotDone:
        raise
    except CheckFailure as exc:
        return graph, loss, CheckFailure(f"{exc}{_crash_hint(str(exc))}")
    return graph, loss, None


def _crash_hint(text: str) -> str:
    """The usual reason behind the exceptions a backward pass over Nodes raises."""
    if "KeyError" in text:
        return ("\n  Hint: a node's entry was read from the gradient dictionary before any contribution had "
                "arrived. Create the entry with the first contribution and add the later ones to it (check "
                "`key in grads` or use grads.get), and skip a node whose entry never appeared.")
    if "NameError" in text and "sum_to_shape" in text:
        return ("\n  Hint: Node.input_grads called sum_to_shape (exercise 4), not defined yet. It does so "
                "only when a VJP's result has another shape than its input, which this check's graphs "
                "never give when apply_op records them right: fix apply_op first.")
    if "AccumulateGrad" in text and "input_grads" in text:
        return ("\n  Hint: an AccumulateGrad node has no VJPs to run: when you reach one, add the gradient "
                "into node.variable.grad instead of calling node.input_grads.")
    return ""


def tensor_gradients(prog: Program, arrays: list[np.ndarray], Tensor: type, op: Callable[..., object],
                     backward: Callable[..., None], *, raw_constants: bool = False, what: str = "backward",
                     seed: int = 0) -> tuple[np.ndarray, ...]:
    """The leaves' .grad after backward on prog; a failure is explained by replaying the graph."""
    graph, loss, failure = build_and_backward(prog, arrays, Tensor, op, backward,
                                              raw_constants=raw_constants, what=what)
    crashed = failure is not None
    try:
        for i, leaf in enumerate(graph.leaves):
            _grad_is_array(leaf, f"leaf x{i}", f"after {what}")
    except CheckFailure as exc:
        raise _Explained(str(exc)) from None
    missing = [i for i, leaf in enumerate(graph.leaves) if leaf.grad is None]
    if failure is None and missing:
        failure = CheckFailure(
            f"after {what}, leaf x{missing[0]} (shape {graph.leaves[missing[0]].shape}) has .grad None "
            "although the loss depends on it. Every leaf that requires grad and is reached from the loss "
            "must receive its gradient.")
    if failure is not None:
        start = np.ones_like(np.asarray(getattr(loss, "data", 0.0), dtype=float))
        raise _Explained(explain(graph, loss, start, seed, str(failure), crashed=crashed))
    return tuple(np.array(leaf.grad, dtype=float) for leaf in graph.leaves)


def torch_gradients(prog: Program, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...] | None:
    """The same program differentiated by PyTorch in float64, or None when torch is not installed."""
    try:
        with quiet():  # an import-time warning on stderr would zero the test cell
            import torch
    except ImportError:
        return None
    ops = _torch_ops(torch)
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]

    def const(c: object) -> object:
        return torch.tensor(np.array(c, dtype=float), dtype=torch.float64)

    loss = prog.run(leaves, lambda n, *a, **p: ops[n](*a, **p), const)
    loss.backward()
    return tuple(leaf.grad.numpy().copy() for leaf in leaves)


def check_program_gradients(prog: Program, arrays: list[np.ndarray], Tensor: type, op: Callable[..., object],
                            backward: Callable[..., None], *, seed: int, what: str,
                            raw_constants: bool = False,
                            reference: Callable[[Program, list], tuple] | None = None) -> None:
    """The leaves' gradients after `backward` on prog against finite differences, against `reference`
    (the grader's trusted engine, when given) and PyTorch when installed. A wrong gradient is traced to the
    first node that got it wrong by replaying the graph."""
    options = {"raw_constants": raw_constants, "what": what}

    def loss(*xs: np.ndarray) -> float:
        return prog.numpy_loss(*xs)

    computed: list[tuple] = []  # the student's gradients at `arrays`, computed once

    def gradients(*xs: np.ndarray) -> tuple:
        result = tensor_gradients(prog, list(xs), Tensor, op, backward, seed=seed, **options)
        if not computed and all(np.array_equal(x, a) for x, a in zip(xs, arrays, strict=True)):
            computed.append(result)
        return result

    loss.__name__ = "program"
    gradients.__name__ = f"the gradients after {what}"
    program = f"\n  The random program was: {prog.describe()}"
    try:
        check_gradient(loss, gradients, *arrays, seed=seed, repeat=False)
        trusted = [] if reference is None else [("the grader's reference engine", reference(prog, arrays))]
        torch_grads = torch_gradients(prog, arrays)
        if torch_grads is not None:
            trusted.append(("PyTorch", torch_grads))
        got = (computed[0] if computed else gradients(*arrays)) if trusted else ()
        for engine, expected in trusted:
            for i, (g, e) in enumerate(zip(got, expected, strict=True)):
                check_close(g, e, name=f"{what}: gradient of leaf x{i} compared with {engine}", rtol=1e-7,
                            atol=1e-10)
    except _Explained as exc:
        raise CheckFailure(f"{exc}{program}") from None
    except CheckFailure as exc:
        graph, root, failure = build_and_backward(prog, arrays, Tensor, op, backward, **options)
        start = np.ones_like(np.asarray(getattr(root, "data", 0.0), dtype=float))
        message = explain(graph, root, start, seed, str(exc), crashed=failure is not None)
        raise CheckFailure(message + program) from None


# ---------------------------------------------------------------------------------------------------------
# "Without recursion", judged by what the code does
# ---------------------------------------------------------------------------------------------------------

RECURSION_MARGIN = 200
"""Frames a student's function may use on top of the check's own while it walks a deep graph."""


def call_without_recursion(what: str, fn: Callable[..., object], *args: object, depth: int) -> object:
    """Call fn(*args) on a graph `depth` nodes deep under a recursion limit RECURSION_MARGIN frames above
    the current stack, so only a loop with an explicit stack finishes. sys.setrecursionlimit is refused
    meanwhile (raising the limit hides the recursion; a deeper graph would still crash); the limit and the
    function are restored afterwards. The call runs where the student's code lives (`probe_recursion`)."""
    seen = in_kernel(probe_recursion, what, fn, list(args), RECURSION_MARGIN)
    failure = seen["failure"]
    if failure is not None and seen["not_done"]:
        raise NotDone(what)
    raised = seen["limit_changed"]
    if failure is not None:
        if "RecursionError" not in failure:
            raise CheckFailure(failure)
        raised = True
    if raised:
        asked = seen["asked"]
        tried = (f" It called sys.setrecursionlimit({asked[0]}): a higher limit only moves the crash to a "
                 "deeper graph, so the check keeps its own." if asked else "")
        raise CheckFailure(
            f"{what} recurses: on a chain {depth} ops deep it needed more than {RECURSION_MARGIN} nested "
            f"Python calls, so it would crash on the deep graphs of real networks.{tried} Walk the graph "
            "with a loop and an explicit stack (a list you push to and pop from) instead of a function "
            "that calls itself.")
    return seen["result"]


def probe_chain(Tensor: type, top: object, repeats: int) -> object:
    """Probe: a deep chain made of `repeats` copies of the graph segment behind `top` (the nodes reached
    from top.grad_fn through first inputs, down to a leaf): each copy's first input is the copy below it,
    its other inputs and saved arrays are the segment's. A graph thousands of nodes deep, built here in a
    few milliseconds instead of op by op from the grader; its numbers are not judged, only its depth."""
    segment = []
    node = getattr(top, "grad_fn", None)
    while node is not None and hasattr(node, "input_grads") and node not in segment:
        segment.append(node)
        edges = tuple(node.next_functions)
        node = edges[0] if edges else None
    if not segment:
        return top
    below = segment[0]
    for _ in range(repeats - 1):
        copies = [copy.copy(n) for n in segment]
        for i, (original, made) in enumerate(zip(segment, copies, strict=True)):
            made.__dict__.pop("input_grads", None)  # a logging wrapper would run the original's VJPs
            first = copies[i + 1] if i + 1 < len(copies) else below
            made.next_functions = (first, *tuple(original.next_functions)[1:])
        below = copies[0]
    out = Tensor(top.data, requires_grad=True)
    out.grad_fn = below
    return out


def probe_recursion(what: str, fn: Callable[..., object], args: list, margin: int) -> dict:
    """Probe: fn(*args) under a recursion limit `margin` frames above the current stack, with
    sys.setrecursionlimit replaced by a recorder meanwhile. Observations: its result, the failure message
    it ended in (None if none; not_done for a blank answer), whether the limit changed, the limits asked."""
    frames, frame = 0, sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    limit, set_limit = sys.getrecursionlimit(), sys.setrecursionlimit
    low = frames + margin
    asked: list[int] = []
    seen: dict = {"result": None, "failure": None, "not_done": False, "limit_changed": False, "asked": asked}
    sys.setrecursionlimit(low)
    sys.setrecursionlimit = asked.append
    try:
        seen["result"] = call_student(what, fn, *args)
        seen["limit_changed"] = sys.getrecursionlimit() != low
    except CheckFailure as exc:
        seen["failure"], seen["not_done"] = str(exc), isinstance(exc, NotDone)
    finally:
        sys.setrecursionlimit = set_limit
        sys.setrecursionlimit(limit)
    if not isinstance(seen["result"], str):  # only text (format_graph's) is needed back
        seen["result"] = None
    return seen


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: apply_op
# ---------------------------------------------------------------------------------------------------------

_SINGLE_OPS: dict[str, tuple[list[tuple[int, ...]], dict, str]] = {
    # name: (input shapes, params, domain) ; domain "pos" keeps inputs positive
    "add": ([(3, 4), (3, 4)], {}, "any"),
    "sub": ([(3, 4), (3, 4)], {}, "any"),
    "mul": ([(3, 4), (3, 4)], {}, "any"),
    "div": ([(3, 4), (3, 4)], {}, "pos"),
    "pow": ([(3, 4), (3, 4)], {}, "pos"),
    "neg": ([(2, 5)], {}, "any"),
    "exp": ([(2, 5)], {}, "any"),
    "log": ([(2, 5)], {}, "pos"),
    "tanh": ([(2, 5)], {}, "any"),
    "relu": ([(2, 5)], {}, "away0"),
    "matmul": ([(3, 4), (4, 2)], {}, "any"),
    "sum": ([(3, 4)], {"axis": 1, "keepdims": False}, "any"),
    "mean": ([(3, 4)], {"axis": 0, "keepdims": True}, "any"),
    "reshape": ([(3, 4)], {"shape": (2, 6)}, "any"),
    "transpose": ([(2, 3, 4)], {"axes": (2, 0, 1)}, "any"),
}


def _draw(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    x = rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "away0":
        return np.where(np.abs(x) < 0.1, x + np.sign(x + 1e-300) * 0.2, x)
    return x


def _call_apply_op(apply_op: Callable[..., object], label: str, prim: object, *args: object,
                   **params: object) -> object:
    """apply_op(prim, *args, **params); an exception becomes one message naming the call and its fix."""
    def with_fix(exc: CheckFailure) -> str:
        text = str(exc)
        if "'Tensor'" in text or "Tensor'" in text:
            hint = ("prim.forward works on numpy arrays: call it with the inputs' .data (after wrapping "
                    "constants as Tensors), and put its result into a new Tensor.")
        elif "has no attribute" in text:
            hint = ("wrap every input that is not a Tensor (numbers AND numpy arrays) as a constant "
                    "Tensor(x) first, so `t * 2` and `2 - t` work; then use that list of Tensors everywhere: "
                    "their .data for prim.forward, and the Tensors themselves for Node.")
        elif "return arrays must be of ArrayType" in text or "'out' must be" in text:
            hint = ("numpy read an extra positional argument as its `out` array: the call's settings go to "
                    "prim.forward as keywords, prim.forward(*arrays, **params), not as the dict itself.")
        elif params and "argument" in text:
            hint = f"this call passed {params}: hand **params on to prim.forward and to Node unchanged."
        else:
            hint = ""
        advice = f"\n  Hint: {hint}" if hint else ""
        return f"{text}\n  (the call was apply_op({label})){advice}"

    with reworded(with_fix, into=CheckFailure):
        return call_student("apply_op", apply_op, prim, *args, **params)


def _check_node(out: object, name: str, params: dict, seed: int) -> None:
    """The recorded Node got the call's params and the output's data array (what its VJPs will read)."""
    node = out.grad_fn
    recorded = getattr(node, "params", params)
    if recorded != params:
        raise CheckFailure(
            f"apply_op({name}) was called with {params}, but its Node was recorded with params {recorded}: "
            "the params are not passed on. Pass the params dict apply_op received to Node as it is, "
            "Node(prim, tensors, params, out_data) (a dict, not **params): the VJPs of sum, mean, reshape "
            f"and transpose read it. (seed {seed})")
    saved = getattr(node, "saved", None)
    if saved is None:
        return
    ans = saved[0]
    if not isinstance(ans, np.ndarray) or np.shape(ans) != out.shape:
        passed_as = (f"a {type_name(ans)}" if not isinstance(ans, np.ndarray)
                     else f"something of shape {np.shape(ans)}")
        raise CheckFailure(
            f"apply_op({name}) gave Node {passed_as} as its 4th argument (ans), where the output has shape "
            f"{out.shape}. Pass the forward's output ARRAY (out.data, or what prim.forward returned), not "
            f"the output Tensor: the VJPs compute with it as a numpy array. (seed {seed})")




def judge_apply_op(apply_op: Callable[..., object], Tensor: type, OPS: dict, GradMode: type, *, seed: int
                   ) -> str:
    """apply_op computes the forward, decides requires_grad, and records a Node whose VJPs are right."""
    with repeatable(f"checks.check_apply_op(apply_op, Tensor, OPS, GradMode, seed={seed})"):
        return _judge_apply_op(apply_op, Tensor, OPS, GradMode, seed)


def _judge_apply_op(apply_op: Callable[..., object], Tensor: type, OPS: dict, GradMode: type, seed: int
                    ) -> str:
    rng = np.random.default_rng(seed)
    previous = GradMode.enabled
    GradMode.enabled = True
    try:
        for flags in ((True, False), (False, True)):
            ins = [Tensor(rng.standard_normal((2, 3)), requires_grad=f) for f in flags]
            out = _call_apply_op(apply_op, "mul", OPS["mul"], *ins)
            if not isinstance(out, Tensor):
                raise CheckFailure(
                    f"apply_op(mul) returned a {type_name(out)}, not a Tensor. Hint: put what "
                    "prim.forward returned into Tensor(out_data, requires_grad=...) and return that. "
                    f"(seed {seed})")
            if not getattr(out, "requires_grad", False) or getattr(out, "grad_fn", None) is None:
                raise CheckFailure(
                    f"apply_op(mul) with requires_grad flags {list(flags)} returned a tensor that does not "
                    "require grad. Hint: a gradient must flow if ANY input needs one (think of x @ W where "
                    f"only W is a parameter). (seed {seed})"
                )
            _check_node(out, "mul", {}, seed)
        for name, (shapes, params, domain) in _SINGLE_OPS.items():
            if name not in OPS:
                continue
            prim = OPS[name]
            arrays = [_draw(rng, s, domain) for s in shapes]
            flags = [bool(rng.random() < 0.5) for _ in arrays]
            flags[int(rng.integers(len(flags)))] = True  # at least one input needs a gradient
            ins = [Tensor(a.copy(), requires_grad=f) for a, f in zip(arrays, flags, strict=True)]
            out = _call_apply_op(apply_op, name, prim, *ins, **params)
            _check_output(out, Tensor, name, arrays, params, seed)
            if not out.requires_grad or out.grad_fn is None:
                raise CheckFailure(
                    f"apply_op({name}): the inputs' requires_grad flags were {flags}, so the output must "
                    "have requires_grad=True and a grad_fn (a Node). Hint: a gradient must flow if ANY "
                    f"input needs one, and grad mode is on. (seed {seed})"
                )
            node = out.grad_fn
            edges = [t.accumulator if f else None for t, f in zip(ins, flags, strict=True)]
            if (
                getattr(node, "prim", None) is not prim
                or len(node.next_functions) != len(ins)
                or any(a is not b for a, b in zip(node.next_functions, edges, strict=True))
            ):
                raise CheckFailure(
                    f"apply_op({name}): the Node must be built from the primitive and the input Tensors "
                    "themselves, in order: Node(prim, tensors, params, out_data). Its next_functions should "
                    f"be {edges}, got {getattr(node, 'next_functions', None)}. (seed {seed})"
                )
            _check_node(out, name, params, seed)
            _check_recorded_vjps(apply_op, Tensor, name, prim, arrays, params, seed)

        # requires_grad rule with constants only, and with grad mode off
        a = Tensor(rng.standard_normal((2, 3)))
        b = Tensor(rng.standard_normal((2, 3)))
        out = _call_apply_op(apply_op, "mul", OPS["mul"], a, b)
        if out.requires_grad or out.grad_fn is not None:
            raise CheckFailure(
                "apply_op(mul) on two tensors that do not require grad returned a tensor with "
                f"requires_grad={out.requires_grad} and grad_fn={out.grad_fn!r}. Constants must not start a "
                f"graph: record a Node only if some input requires grad. (seed {seed})"
            )
        a.requires_grad = True
        GradMode.enabled = False
        try:
            out = _call_apply_op(apply_op, "mul", OPS["mul"], a, b)
        finally:
            GradMode.enabled = True
        if out.requires_grad or out.grad_fn is not None:
            raise CheckFailure(
                "With GradMode.enabled = False (what no_grad() sets), apply_op still recorded a graph. "
                "Check is_grad_enabled() before recording: inside no_grad the output is a plain tensor "
                f"(requires_grad False, grad_fn None). (seed {seed})"
            )
        _check_op_values(out, a.data * b.data, "apply_op(mul) with grad mode off", seed)

        # Python numbers on either side
        x = rng.standard_normal((2, 3))
        t = Tensor(x.copy(), requires_grad=True)
        c = float(rng.uniform(1.5, 3.0))
        arr = rng.uniform(1.5, 3.0, (2, 3))
        for label, args, expected, kind in (
            ("mul(t, c)", (t, c), x * c, f"a Python number c = {c:.3g}"),
            ("sub(c, t)", (c, t), c - x, f"a Python number c = {c:.3g}"),
            ("mul(t, c)", (t, arr), x * arr, "a numpy array c of shape (2, 3)"),
        ):
            prim = OPS["mul"] if label.startswith("mul") else OPS["sub"]
            out = _call_apply_op(apply_op, f"{label} with {kind}", prim, *args)
            _check_op_values(out, expected, f"apply_op({label})", seed)
            want = (True, False) if label.startswith("mul") else (False, True)
            if out.grad_fn is None or tuple(out.grad_fn.needs_grad) != want:
                raise CheckFailure(
                    f"apply_op({label}) with {kind}: the Node's inputs must be two Tensors, the constant "
                    f"wrapped as a Tensor that does not require grad (needs_grad {want}). Wrap every input "
                    f"that is not a Tensor (numbers AND numpy arrays). (seed {seed})"
                )
    finally:
        GradMode.enabled = previous
    return f"forward, requires_grad rule and recorded VJPs of {len(_SINGLE_OPS)} ops (seed {seed})"


def check_apply_op(apply_op: Callable[..., object], Tensor: type, OPS: dict, GradMode: type, *,
                   seed: int | None = None) -> None:
    """Exercise 1's visible check: prints one line when it passes."""
    passed("apply_op", judge_apply_op(apply_op, Tensor, OPS, GradMode, seed=new_seed(seed)))


def _check_output(out: object, Tensor: type, name: str, arrays: list[np.ndarray], params: dict,
                  seed: int) -> None:
    if not isinstance(out, Tensor):
        raise CheckFailure(
            f"apply_op({name}) returned {type_name(out)}, expected a Tensor. (seed {seed})"
        )
    if params:
        with quiet():
            try:
                without = NUMPY_OPS[name](*arrays)
            except TypeError:  # reshape cannot run without its shape
                without = None
        data = np.asarray(out.data)
        if without is not None and data.shape == np.shape(without) and np.allclose(data, without):
            raise CheckFailure(
                f"apply_op({name}) was called with {params}, but its output is what prim.forward gives "
                "without them: the params are not passed on. Call prim.forward(*arrays, **params). "
                f"(seed {seed})")
    _check_op_values(out, NUMPY_OPS[name](*arrays, **params), f"apply_op({name})", seed)


def _check_op_values(out: object, expected: np.ndarray, what: str, seed: int) -> None:
    check_close(
        getattr(out, "data", None),
        expected,
        name=f"the data of {what}",
        rtol=1e-12,
        atol=1e-12,
        hint=f"compute the forward with prim.forward(*arrays, **params) on the inputs' .data (seed {seed})",
    )


def _check_recorded_vjps(
    apply_op: Callable[..., object],
    Tensor: type,
    name: str,
    prim: object,
    arrays: list[np.ndarray],
    params: dict,
    seed: int,
) -> None:
    """Build the op with apply_op at the checker's points and run the recorded Node's VJPs."""

    def vjp_for(k: int) -> Callable[..., np.ndarray]:
        def recorded_vjp(g: np.ndarray, ans: np.ndarray, *xs: np.ndarray) -> np.ndarray:
            ins = [Tensor(np.array(x, dtype=float), requires_grad=(j == k)) for j, x in enumerate(xs)]
            out = _call_apply_op(apply_op, name, prim, *ins, **params)
            if out.grad_fn is None:
                raise CheckFailure(
                    f"apply_op({name}) recorded no Node when only input {k} requires grad; record one if ANY "
                    f"input requires grad. (seed {seed})"
                )
            return call_student(f"the Node apply_op({name}) recorded", out.grad_fn.input_grads,
                                np.array(g))[k]

        recorded_vjp.__name__ = f"the VJP recorded by apply_op({name}) for input {k}"
        return recorded_vjp

    def forward(*xs: np.ndarray) -> np.ndarray:
        return NUMPY_OPS[name](*xs, **params)

    forward.__name__ = name
    check_vjp(forward, [vjp_for(k) for k in range(len(arrays))], *arrays, seed=seed, repeat=False)


# ---------------------------------------------------------------------------------------------------------
# Exercise 2: format_graph
# ---------------------------------------------------------------------------------------------------------

_UNARY = ["exp", "tanh", "neg", "relu"]
_BINARY = ["add", "sub", "mul"]


def _random_graph(rng: np.random.Generator, Tensor: type, op: Callable[..., object], depth: int,
                  pool: list[tuple[object, list[str]]]) -> tuple[object, list[str]]:
    """A random graph and the lines format_graph must print for it (built bottom-up). Sub-graphs already
    made are reused from `pool` now and then (and then appended again, so the pool counts the reuse): some
    nodes are reached by several paths and their lines appear once per path."""
    if pool and rng.random() < 0.3:
        pool.append(pool[int(rng.integers(len(pool)))])
        return pool[-1]
    if depth == 0 or rng.random() < 0.25:
        needs = bool(rng.random() < 0.75)
        t = Tensor(rng.standard_normal((2, 2)) * 0.5, requires_grad=needs)
        made = (t, ["AccumulateGrad" if needs else "None"])
    else:
        if rng.random() < 0.4:
            name = str(rng.choice(_UNARY))
            kids = [_random_graph(rng, Tensor, op, depth - 1, pool)]
        else:
            name = str(rng.choice(_BINARY))
            kids = [_random_graph(rng, Tensor, op, depth - 1, pool) for _ in range(2)]
        out = op(name, *(k[0] for k in kids))
        if out.grad_fn is None:
            made = (out, ["None"])
        else:
            made = (out, [out.grad_fn.name] + ["  " + line for _, kid in kids for line in kid])
    pool.append(made)
    return made


def _diamond(rng: np.random.Generator, Tensor: type, op: Callable[..., object]) -> tuple[object, list[str]]:
    """u = f(x); w = g(h(u), u); out = k(w, constant): the node of u is reached by two paths, and so is x's
    AccumulateGrad; the constant input prints as None."""
    x = Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    u = op(str(rng.choice(_UNARY)), x)
    v = op(str(rng.choice(_UNARY)), u)
    w = op(str(rng.choice(_BINARY)), v, u)
    out = op(str(rng.choice(_BINARY)), w, Tensor(rng.standard_normal((2, 2))))
    u_lines = [u.grad_fn.name, "  AccumulateGrad"]
    w_lines = [w.grad_fn.name, "  " + v.grad_fn.name, *("    " + s for s in u_lines),
               *("  " + s for s in u_lines)]
    return out, [out.grad_fn.name] + ["  " + s for s in w_lines] + ["  None"]


def _apply_op_noted(graph: Graph) -> AbstractContextManager[None]:
    """In a student's kit, a failure on a graph that the student's apply_op recorded wrongly says so."""
    def with_note(exc: CheckFailure) -> str:
        problem = graph.structure_error() if _recording_op is None else None
        return str(exc) if problem is None else f"{exc}\n  {KIT_NOTE} Here: {problem}."

    return reworded(with_note, into=CheckFailure)


def judge_format_graph(format_graph: Callable[[object], str], Tensor: type, Node: type, OPS: dict, *,
                       seed: int, graphs: int = 6, depth: int = 1000) -> str:
    """format_graph prints every grad_fn, depth-first, inputs in order, two spaces per level, a shared
    node once per path, and walks a deep chain without recursion."""
    rng = np.random.default_rng(seed)
    graph = Graph(graph_op(Tensor, Node, OPS), Tensor)
    with _apply_op_noted(graph):
        return _judge_format_graph(format_graph, Tensor, graph, rng, seed, graphs, depth)


def _judge_format_graph(format_graph: Callable[[object], str], Tensor: type, op: Callable[..., object],
                        rng: np.random.Generator, seed: int, graphs: int, depth: int) -> str:
    made = 0
    while made < graphs:
        pool: list[tuple[object, list[str]]] = []
        if made == 0:
            (root, lines), shared = _diamond(rng, Tensor, op), True
        else:
            root, lines = _random_graph(rng, Tensor, op, 4, pool)
            shared = len({id(t) for t, _ in pool}) < len(pool)
        if root.grad_fn is None or len(lines) < 3:
            continue
        made += 1
        got = call_student("format_graph", format_graph, root)
        if not isinstance(got, str):
            raise CheckFailure(
                f"format_graph returned {type_name(got)}; it must return one string (lines joined with "
                f"'\\n'). (seed {seed})"
            )
        got_lines = got.rstrip("\n").split("\n")
        if got_lines != lines:
            diff = next(
                (i for i, (a, b) in enumerate(zip(got_lines, lines, strict=False)) if a != b),
                min(len(got_lines), len(lines)),
            )
            hint = ("print a node's name, then each entry of its next_functions in order (None for a "
                    "constant input), each one level (two spaces) deeper; AccumulateGrad nodes end a branch.")
            if [x for x in lines if x.strip() != "None"] == got_lines:
                hint = ("every line but the None ones is right: a constant input is an entry None in "
                        "next_functions, and it gets its own line `None`, indented like its siblings.")
            elif len(got_lines) < len(lines) and shared:
                hint = ("this graph reaches some nodes by more than one path, and your output is shorter: a "
                        "shared node must be printed once PER PATH, with everything below it, exactly as "
                        "following next_functions shows it. Do not skip nodes you have already printed (no "
                        "'visited' set here, unlike backward).")
            raise CheckFailure(
                "format_graph printed the wrong graph.\n  expected:\n    "
                + "\n    ".join(lines)
                + "\n  got:\n    "
                + "\n    ".join(got_lines)
                + f"\n  first difference at line {diff + 1}. Hint: {hint} (seed {seed})"
            )
    leaf = Tensor(rng.standard_normal(3), requires_grad=True)
    const = Tensor(rng.standard_normal(3))
    for t, want in ((leaf, "AccumulateGrad"), (const, "None")):
        got = call_student("format_graph", format_graph, t)
        if not isinstance(got, str) or got.strip("\n") != want:
            raise CheckFailure(
                f"format_graph of a tensor without grad_fn that has requires_grad={t.requires_grad} should "
                f"be the single line {want!r}, got {got!r}. (seed {seed})"
            )
    h = in_kernel(probe_chain, Tensor, op("tanh", Tensor(rng.standard_normal(2), requires_grad=True)), depth)
    got = call_without_recursion("format_graph", format_graph, h, depth=depth)
    if not isinstance(got, str) or got.rstrip("\n").count("\n") != depth:
        raise CheckFailure(f"format_graph of a chain of {depth} tanh ops must have {depth + 1} lines. "
                           f"(seed {seed})")
    return f"{graphs} random graphs with shared nodes and a chain {depth} ops deep (seed {seed})"


def check_format_graph(format_graph: Callable[[object], str], Tensor: type, Node: type, OPS: dict, *,
                       seed: int | None = None) -> None:
    """Exercise 2's visible check: prints one line when it passes."""
    seed = new_seed(seed)
    with repeatable(f"checks.check_format_graph(format_graph, Tensor, Node, OPS, seed={seed})"):
        passed("format_graph", judge_format_graph(format_graph, Tensor, Node, OPS, seed=seed))


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: backward
# ---------------------------------------------------------------------------------------------------------


def judge_backward(backward: Callable[..., None], Tensor: type, Node: type, OPS: dict, *, seed: int,
                   programs: int = 3, n_steps: int = 8,
                   reference: Callable[[Program, list], tuple] | None = None) -> str:
    """backward on random programs (with shared sub-expressions) matches finite differences and PyTorch;
    a wrong gradient is traced to the first node that went wrong."""
    rng = np.random.default_rng(seed)
    op = graph_op(Tensor, Node, OPS)
    for k in range(programs):
        prog = random_program(rng, n_steps)
        check_program_gradients(prog, random_leaves(rng, prog), Tensor, op, backward, seed=seed + k,
                                what="backward", reference=reference)
    _check_unequal_paths(backward, Tensor, op, rng, seed)
    return (f"{programs} random programs against finite differences, and one graph with unequal paths "
            f"(seed {seed})")


def check_backward(backward: Callable[..., None], Tensor: type, Node: type, OPS: dict, *,
                   seed: int | None = None) -> None:
    """Exercise 3's visible check: prints one line when it passes."""
    seed = new_seed(seed)
    with repeatable(f"checks.check_backward(backward, Tensor, Node, OPS, seed={seed})"):
        passed("backward", judge_backward(backward, Tensor, Node, OPS, seed=seed))


def _check_unequal_paths(
    backward: Callable[..., None],
    Tensor: type,
    op: Callable[..., object],
    rng: np.random.Generator,
    seed: int,
) -> None:
    """h = c*w reaches the loss directly and through a longer path: its node must wait for both. The
    constant c comes first, so h's next_functions start with None and a search must go on past it."""
    graph = Graph(op, Tensor)
    w0 = rng.standard_normal(4)
    c = rng.uniform(1.5, 2.5, 4)
    r = rng.standard_normal(4)
    w = graph.leaf(w0)
    h = graph("mul", Tensor(c), w)
    long = graph("exp", graph("tanh", graph("tanh", h)))
    loss = graph("sum", graph("mul", graph("add", long, h), Tensor(r)))
    hv = w0 * c
    t1 = np.tanh(hv)
    expected = r * (np.exp(np.tanh(t1)) * (1 - np.tanh(t1) ** 2) * (1 - t1**2) + 1) * c
    crashed = True
    with reworded(lambda exc: explain(graph, loss, np.ones(()), seed, str(exc), crashed=crashed),
                  into=CheckFailure):
        call_student("backward", backward, loss)
        crashed = False
        check_close(
            w.grad,
            expected,
            name="w.grad for loss = sum(r * (exp(tanh(tanh(h))) + h)), h = c * w",
            rtol=1e-9,
            atol=1e-12,
            hint="h reaches the loss by a short and a long path. A node's VJP may run only after ALL "
            "gradient contributions to it have arrived: process nodes in reverse topological order, not "
            f"breadth-first from the loss. (seed {seed})",
        )


def judge_backward_semantics(backward: Callable[..., None], Tensor: type, Node: type, OPS: dict, *, seed: int,
                             depth: int = 1000) -> str:
    """PyTorch's observable rules: accumulation, only leaves keep .grad, errors, freeing saved arrays, and
    a deep chain walked without recursion."""
    rng = np.random.default_rng(seed)
    graph = Graph(graph_op(Tensor, Node, OPS), Tensor)
    with _apply_op_noted(graph):
        return _judge_semantics(backward, Tensor, graph, rng, seed, depth)


def _start_shape_problem(graph: Graph, root: object, call: str, failure: str = "") -> str | None:
    """What is wrong when the first node of backward(root) received a gradient of another shape than root:
    every later shape is then off, and the pass may crash far from the cause."""
    graph.pull()
    received = [c.g for c in graph.calls if c.node is root.grad_fn]
    if not received or received[-1].shape == root.shape:
        return None
    why = ""
    if "NameError" in failure and "sum_to_shape" in failure:
        why = (" That is why Node.input_grads called sum_to_shape, which is exercise 4's and not defined "
               "yet: running that cell would only hide the mistake, the fix belongs in backward.")
    return (f"{call} started the backward pass from a gradient of shape {received[-1].shape}, but the "
            f"tensor has shape {root.shape}. The starting gradient must have the tensor's own shape (the "
            f"tensor is a scalar here, so the start is a scalar 1.0, not an array holding it).{why}")


def _backward_started_right(graph: Graph, backward: Callable[..., None], root: object, call: str) -> None:
    """backward(root), then the shape of the gradient its pass started from, also when the pass crashed."""
    def reword(exc: CheckFailure) -> str:
        return _start_shape_problem(graph, root, call, str(exc)) or str(exc)

    with reworded(reword, into=CheckFailure):
        call_student("backward", backward, root)
    problem = _start_shape_problem(graph, root, call)
    if problem is not None:
        raise CheckFailure(problem)


def _judge_semantics(backward: Callable[..., None], Tensor: type, graph: Graph,
                     rng: np.random.Generator, seed: int, depth: int) -> str:
    a0, b0 = rng.standard_normal(2)

    # c = a + b, three calls: 1, 2, then 1 after zeroing
    a = Tensor(a0, requires_grad=True)
    b = Tensor(b0, requires_grad=True)
    c = graph("add", a, b)
    seen = []
    for reset in (False, False, True):
        if reset:
            a.grad = None
        _backward_started_right(graph, backward, c, "backward(c) with c = a + b")
        _grad_is_array(a, "a", "c = a + b; backward(c)")
        seen.append(None if a.grad is None else float(np.asarray(a.grad)))
    if seen == [None, None, None]:
        raise CheckFailure(
            "c = a + b; after backward(c), a.grad is still None: the gradient never reached the leaf. Either "
            "the leaf's AccumulateGrad node is missing from your order, or your loop met it before "
            "AddBackward had sent it anything (walk the post-order list in REVERSE, so each node comes after "
            f"all its consumers). (seed {seed})")
    if seen != [1.0, 2.0, 1.0]:
        raise CheckFailure(
            f"c = a + b; three backward calls with a.grad reset before the third gave a.grad = {seen}, "
            "PyTorch gives [1.0, 2.0, 1.0]. Hint: add the new gradient to a leaf's existing .grad "
            "(tensor.grad = tensor.grad + g) instead of overwriting it; start from a copy when .grad is "
            f"None. (seed {seed})"
        )

    # a leaf as the root: its own AccumulateGrad starts the pass
    r = Tensor(float(a0), requires_grad=True)
    with reworded(lambda exc: f"{exc}\n  The call was backward(r) on a leaf r = Tensor({a0:.3g}, "
                              "requires_grad=True). Hint: a leaf has no grad_fn: start the search from "
                              "tensor.accumulator when tensor.grad_fn is None.", into=CheckFailure):
        call_student("backward", backward, r)
    _grad_is_array(r, "r", "r = Tensor(x, requires_grad=True); backward(r)")
    if r.grad is None or np.shape(r.grad) != () or float(np.asarray(r.grad)) != 1.0:
        raise CheckFailure(
            f"backward(r) on a leaf r = Tensor({a0:.3g}, requires_grad=True) left r.grad = {r.grad!r}; "
            "PyTorch gives 1.0. Hint: a leaf has no grad_fn: start the search from tensor.accumulator when "
            f"tensor.grad_fn is None. (seed {seed})")

    # a leaf's first .grad must be its own array: add's VJP hands the same g to both inputs, and a caller
    # may reuse the gradient it passed in
    a = Tensor(rng.standard_normal(3), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    upstream = rng.standard_normal(3)
    _backward_from(backward, graph("add", a, b), upstream.copy(), "c = a + b")
    if in_kernel(probe_grads_share_memory, a, b):  # a copy here cannot tell: ask where the arrays live
        raise CheckFailure(
            "after backward through c = a + b, a.grad and b.grad are the same array in memory, so changing "
            "one would change the other. Hint: when a leaf's .grad is None, store a COPY of the incoming "
            f"gradient (add's VJP passes the very same array to both inputs). (seed {seed})"
        )

    # gradient argument, non-scalar roots, shapes
    x0 = rng.standard_normal((3, 4))
    g0 = rng.standard_normal((3, 4))
    x = Tensor(x0.copy(), requires_grad=True)
    y = graph("tanh", x)
    _backward_from(backward, y, g0.copy(), "y = tanh(x)")
    check_close(
        x.grad,
        g0 * (1 - np.tanh(x0) ** 2),
        name="x.grad after backward(tanh(x), gradient=g)",
        rtol=1e-10,
        atol=1e-12,
        hint="start the backward pass from the given gradient instead of ones",
    )
    if y.grad is not None:
        raise CheckFailure(
            "after backward, the non-leaf y = tanh(x) has a .grad; like PyTorch, only leaves keep their "
            f"gradient (intermediate gradients live in a local dict and are dropped). (seed {seed})"
        )
    y = graph("tanh", Tensor(x0.copy(), requires_grad=True))
    error = raised_by("backward", backward, y)
    if error is None:
        raise CheckFailure(
            "backward of a (3, 4) tensor without a gradient argument must raise a RuntimeError (only a "
            "scalar has an obvious starting gradient of 1). It returned silently."
        )
    if not isinstance(error, RuntimeError):
        raise CheckFailure(f"backward of a (3, 4) tensor without a gradient raised {type(error).__name__}: "
                           f"{error}; it should raise a RuntimeError (as PyTorch does) that names the shape.")
    if "shape" not in str(error) and "scalar" not in str(error):
        raise CheckFailure(
            f"backward of a (3, 4) tensor without a gradient raised {error!r}; the message should say that "
            "a gradient is needed because the tensor is not a scalar, and name its shape.")

    # a gradient of another shape than the tensor is refused
    y = graph("tanh", Tensor(x0.copy(), requires_grad=True))
    wrong = rng.standard_normal((4, 3))
    call = "backward(y, gradient) with y of shape (3, 4) and a gradient of shape (4, 3)"
    error = raised_by("backward", backward, y, wrong)
    if error is None:
        raise CheckFailure(f"{call} returned silently; it must raise a ValueError that names both shapes "
                           "(a gradient of another shape belongs to another tensor).")
    if not isinstance(error, ValueError):
        raise CheckFailure(f"{call} raised {type(error).__name__}: {error}; it should raise a ValueError "
                           "that names both shapes.")
    if "(4, 3)" not in str(error) or "(3, 4)" not in str(error):
        raise CheckFailure(
            f"{call} raised ValueError({str(error)!r}); compare the shapes before the pass starts and "
            "raise a ValueError that names both, (4, 3) and (3, 4).")

    # a constant input never receives .grad
    w = Tensor(rng.standard_normal(4), requires_grad=True)
    k = Tensor(rng.standard_normal(4))
    call_student("backward", backward, graph("sum", graph("mul", w, k)))
    if k.grad is not None:
        raise CheckFailure(
            "a tensor with requires_grad=False received a .grad; skip inputs that do not need a gradient. "
            f"(seed {seed})"
        )

    # saved arrays are freed after backward, kept with retain_graph=True; q is used twice, so the first
    # pass is judged node by node first: a fault within one pass is named as such, not as accumulation
    # across calls (a graph of its own: the replay reads every VJP call logged on it)
    fresh = Graph(graph.op, Tensor)
    p = fresh.leaf(rng.standard_normal(5))
    q = fresh("exp", p)
    loss = fresh("sum", fresh("mul", q, q))
    _judged_pass(fresh, backward, loss, seed, retain_graph=True)
    if q.grad_fn.saved is None:
        raise CheckFailure(
            "backward(..., retain_graph=True) freed the saved arrays; with retain_graph the graph must stay "
            "usable for another backward."
        )
    call_student("backward", backward, loss)
    if q.grad_fn.saved is not None or loss.grad_fn.next_functions[0].saved is not None:
        raise CheckFailure(
            "after backward (retain_graph=False) a node still holds its saved arrays. Call node.release() "
            "on each node once its VJPs have run, so the activations it kept for the backward pass are "
            "freed."
        )
    check_close(
        p.grad,
        2 * 2 * np.exp(2 * p.data),
        name="p.grad after two backward calls (retain_graph then not)",
        rtol=1e-10,
        hint="gradients accumulate across backward calls",
    )

    # deep graphs must not need recursion
    z = Tensor(rng.uniform(-0.5, 0.5, 2), requires_grad=True)
    h = in_kernel(probe_chain, Tensor, graph("add", graph("tanh", z), z), depth // 2)
    call_without_recursion("backward", backward, graph("sum", h), depth=depth)
    return f"accumulation, copies, gradient argument, freeing, and a chain {depth} ops deep (seed {seed})"


def _judged_pass(graph: Graph, backward: Callable[..., None], loss: object, seed: int,
                 **kwargs: object) -> None:
    """backward(loss, **kwargs) on a graph of its own, then the replay's verdict on that one pass: a node run
    twice (breadth-first) or a contribution overwritten is named even when the pass did not crash."""
    crashed = True
    with reworded(lambda exc: explain(graph, loss, np.ones(()), seed, str(exc), crashed=crashed),
                  into=CheckFailure):
        call_student("backward", backward, loss, **kwargs)
        crashed = False
    problem = explain(graph, loss, np.ones(()), seed, "")
    if problem:
        raise CheckFailure(problem)


def probe_grads_share_memory(a: object, b: object) -> bool:
    """Probe: do the .grad arrays of two tensors share memory?"""
    try:
        return bool(np.shares_memory(np.asarray(a.grad), np.asarray(b.grad)))
    except TypeError:  # not arrays: the checks of .grad's type name it
        return False


def probe_backward_twice(backward: Callable[..., None], roots: list, gradient: np.ndarray) -> np.ndarray:
    """Probe: backward(root, gradient) for each root with the SAME gradient array; that array afterwards
    (a backward that accumulates in place into it changes it)."""
    for root in roots:
        backward(root, gradient)
    return gradient


def _backward_from(backward: Callable[..., None], y: object, gradient: np.ndarray, what: str) -> None:
    """backward(y, gradient) on a non-scalar y: a crash there usually means the gradient was ignored."""
    with reworded(lambda exc: (
            f"{exc}\n  The check called backward(y, gradient) with {what} of shape {gradient.shape} and a "
            f"gradient of shape {gradient.shape}: when gradient is given, start the backward pass from it "
            "(only a call without gradient needs a scalar)."), into=CheckFailure):
        call_student("backward", backward, y, gradient)


def _grad_is_array(t: object, name: str, case: str) -> None:
    """A leaf's .grad is a numpy array (or None): a Tensor there would start a graph of its own."""
    grad = getattr(t, "grad", None)
    if grad is not None and not isinstance(grad, np.ndarray | np.generic | float):
        raise CheckFailure(
            f"{case}: {name}.grad is a {type_name(grad)}; .grad must be a numpy array. Hint: store the "
            "gradient array itself (the VJPs return arrays); do not wrap it in a Tensor.")


def check_backward_semantics(backward: Callable[..., None], Tensor: type, Node: type, OPS: dict, *,
                             seed: int | None = None) -> None:
    """Exercise 3's second visible check: prints one line when it passes."""
    seed = new_seed(seed)
    with repeatable(f"checks.check_backward_semantics(backward, Tensor, Node, OPS, seed={seed})"):
        passed("backward (PyTorch's rules)", judge_backward_semantics(backward, Tensor, Node, OPS, seed=seed))


# ---------------------------------------------------------------------------------------------------------
# Exercise 4: sum_to_shape
# ---------------------------------------------------------------------------------------------------------

_PAIRS = [
    ((4,), (3, 4)),
    ((1, 4), (3, 4)),
    ((3, 1), (3, 4)),
    ((), (2, 3)),
    ((5, 1, 3), (2, 5, 4, 3)),
    ((1,), (6,)),
    ((2, 1), (4, 2, 3)),
]


def _check_result_shape(sum_to_shape: Callable[[np.ndarray, tuple], np.ndarray], big: tuple, small: tuple
                        ) -> None:
    """sum_to_shape(g, small) returns the shape small; if not, the slip its shape shows, in the exercise's
    words (which axes were or were not summed), before any value is compared."""
    result = call_student("sum_to_shape", sum_to_shape, np.ones(big), small)
    try:
        got = np.shape(result)
    except (TypeError, ValueError):  # not array-like (a ragged list): check_vjp's own message names it
        return
    if got == small:
        return
    lead = len(big) - len(small)
    stretched = [i for i, (b, s) in enumerate(zip(big[lead:], small, strict=True)) if s == 1 and b != 1]
    said = f"sum_to_shape(g of shape {big}, {small}) returned shape {got}"
    if got == big[lead:] and stretched:
        why = (f"{'the leading axes are summed away, but ' if lead else ''}axis {stretched[0]} of the target "
               f"has size 1 and was not summed: broadcasting stretched it to {big[lead + stretched[0]]}. Sum "
               "over it with keepdims=True, so the 1 stays.")
    elif stretched and got == tuple(s for i, s in enumerate(small) if i not in stretched):
        why = ("the axes where the target has size 1 were summed without keepdims=True, so their 1s are "
               "gone. Sum them with keepdims=True.")
    elif len(got) > len(small):
        why = (f"g has {lead} more axes than the target, and they are still there. Broadcasting adds axes at "
               "the FRONT (numpy lines shapes up from the right): sum over g's first "
               f"{lead} axes{' (axis 0)' if lead == 1 else ''}.")
    else:
        why = ("the result must have the target's shape. Sum over the leading axes broadcasting added (g "
               f"has {lead} more than the target), then over the axes where the target has size 1, "
               "keepdims=True.")
    raise _Explained(f"{said}, expected {small}: {why}")


def judge_sum_to_shape(sum_to_shape: Callable[[np.ndarray, tuple], np.ndarray], *, seed: int) -> str:
    """sum_to_shape is the VJP of broadcasting: checked as such with finite differences."""
    with repeatable(f"checks.check_sum_to_shape(sum_to_shape, seed={seed})"):
        return _judge_sum_to_shape(sum_to_shape, seed)


def _judge_sum_to_shape(sum_to_shape: Callable[[np.ndarray, tuple], np.ndarray], seed: int) -> str:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(_PAIRS))
    for k in order:
        small, big = _PAIRS[k]

        def broadcast(x: np.ndarray, big: tuple = big) -> np.ndarray:
            return np.broadcast_to(x, big).copy()

        def vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> np.ndarray:
            return call_student("sum_to_shape", sum_to_shape, g, x.shape)

        broadcast.__name__ = f"broadcast_to(x of shape {small}, {big})"
        vjp.__name__ = f"sum_to_shape(g of shape {big}, {small})"
        try:
            _check_result_shape(sum_to_shape, big, small)
            check_vjp(broadcast, vjp, rng.standard_normal(small), seed=seed + int(k), repeat=False)
        except NotDone:
            raise
        except (GradientCheckError, _Explained):
            raise
        except CheckFailure as exc:
            raise CheckFailure(
                f"{exc} (called as sum_to_shape(g of shape {big}, {small}))\n  Hint: this pair does "
                "broadcast, so sum_to_shape must reduce g to the target shape, not fail. g is the larger "
                "array: SUM it over the axes broadcasting added, its LEADING ones (numpy lines shapes up "
                "from the right), then over those where the target has size 1, keepdims=True; broadcasting g "
                f"cannot shrink it. (seed {seed})") from None
    g = rng.standard_normal((3, 4))
    same = call_student("sum_to_shape", sum_to_shape, g, (3, 4))
    check_close(
        same,
        g,
        name="sum_to_shape(g, g.shape)",
        rtol=0,
        hint="when the shapes already match there is nothing to sum",
    )
    for bad in ((4, 3), (2, 4), (3, 4, 1)):
        call = f"sum_to_shape(g of shape (3, 4), {bad})"
        error = raised_by("sum_to_shape", sum_to_shape, g, bad)
        if error is None:
            raise CheckFailure(
                f"{call} must raise ValueError: {bad} does not broadcast to (3, 4), so this gradient cannot "
                "belong to that input. A silent wrong answer hides graph bugs.")
        if not isinstance(error, ValueError):
            raise CheckFailure(f"{call} raised {type(error).__name__}: {error}; it must raise ValueError "
                               "naming the shapes.")
        if str(bad) not in str(error) and str(list(bad)) not in str(error):
            raise CheckFailure(f"{call} raised ValueError({str(error)!r}); name the target shape {bad} in "
                               "the message.")
    return f"{len(_PAIRS)} broadcasting pairs against finite differences, and shapes refused (seed {seed})"


def check_sum_to_shape(sum_to_shape: Callable[[np.ndarray, tuple], np.ndarray], *,
                       seed: int | None = None) -> None:
    """Exercise 4's visible check: prints one line when it passes."""
    passed("sum_to_shape", judge_sum_to_shape(sum_to_shape, seed=new_seed(seed)))


# ---------------------------------------------------------------------------------------------------------
# Exercise 5: no_grad
# ---------------------------------------------------------------------------------------------------------




def judge_no_grad(no_grad: type, GradMode: type) -> str:
    """no_grad switches recording off and restores the PREVIOUS state on exit, even on an exception."""
    saw = _no_grad_scenario(no_grad, GradMode, "plain")
    if saw["inside"] is not False:
        raise CheckFailure("inside `with no_grad():` GradMode.enabled must be False.")
    if saw["after"] is not True:
        raise CheckFailure("after leaving `with no_grad():` grad mode must be on again (it was on before).")

    saw = _no_grad_scenario(no_grad, GradMode, "nested")
    if saw["inner_inside"] is not False:
        raise CheckFailure(
            f"nested no_grad: inside the inner block grad mode must be off too; got {saw['inner_inside']}. "
            "Hint: __enter__ sets GradMode.enabled = False whatever it was (do not toggle it), and "
            "__exit__ puts back the state __enter__ found."
        )
    if saw["still_off"] is not False:
        raise CheckFailure(
            "nested no_grad: after the inner block exits, grad mode must still be off (the outer block "
            f"is still running); got {saw['still_off']}. Hint: remember the state found on __enter__ and "
            "restore THAT on __exit__, instead of switching grad mode back on."
        )
    if saw["after"] is not True:
        raise CheckFailure(
            "nested no_grad: after the OUTER block exits, grad mode must be on again (it was on before "
            f"the outer block); got {saw['after']}. Hint: keep the saved state on the instance "
            "(self.prev = ...), not in a global or on the class: those are shared by every no_grad, so the "
            "inner block overwrote what the outer one saved."
        )

    saw = _no_grad_scenario(no_grad, GradMode, "entered_off")
    if saw["inside"] is not False:
        raise CheckFailure(
            "no_grad entered while grad mode was already off switched it ON inside the block. Hint: "
            "__enter__ sets GradMode.enabled = False; do not toggle it with `not`."
        )
    if saw["after"] is not False:
        raise CheckFailure(
            "no_grad entered while grad mode was already off must leave it off on exit; restore the "
            "previous state, do not assume it was on."
        )

    saw = _no_grad_scenario(no_grad, GradMode, "late_entry")
    if saw["after"] is not False:
        raise CheckFailure(
            "a no_grad object made while grad mode was on, then entered while it was off, switched grad "
            "mode ON when the block ended. Save the state in __enter__ (when the block starts), not in "
            "__init__: an object can be made long before it is used, e.g. `frozen = no_grad()` kept and "
            "entered later."
        )

    saw = _no_grad_scenario(no_grad, GradMode, "exception")
    if saw["propagated"] is not True:
        raise CheckFailure(
            "an exception raised inside `with no_grad():` disappeared. __exit__ must return False (or "
            "None) so the exception propagates."
        )
    if saw["after"] is not True:
        raise CheckFailure(
            "after an exception inside `with no_grad():` grad mode stayed off. __exit__ runs on "
            "exceptions too; if you used @contextmanager, put the restore in a `finally:` block."
        )
    return "off inside, the state found on entry restored on exit, nesting, late entry and exceptions"


def _no_grad_scenario(no_grad: type, GradMode: type, scenario: str) -> dict:
    """What grad mode was at each point of one scenario, observed where the student's no_grad runs."""
    return call_student("no_grad", in_kernel, probe_no_grad, no_grad, GradMode, scenario)


class _Raised(Exception):
    """Raised inside a no_grad block by probe_no_grad."""


def probe_no_grad(no_grad: type, GradMode: type, scenario: str) -> dict:
    """Probe: run one `with no_grad():` scenario and report GradMode.enabled at each point of interest
    (the student's exceptions propagate; grad mode is restored afterwards whatever happens)."""
    saved = GradMode.enabled
    saw: dict = {}
    try:
        GradMode.enabled = scenario not in ("entered_off",)
        if scenario == "plain":
            with no_grad():
                saw["inside"] = GradMode.enabled
        elif scenario == "nested":
            with no_grad():
                with no_grad():
                    saw["inner_inside"] = GradMode.enabled
                saw["still_off"] = GradMode.enabled
        elif scenario == "entered_off":
            with no_grad():
                saw["inside"] = GradMode.enabled
        elif scenario == "late_entry":  # made while on, entered while off
            block = no_grad()
            GradMode.enabled = False
            with block:
                pass
        elif scenario == "exception":
            saw["propagated"] = False
            try:
                with no_grad():
                    raise _Raised("raised inside the block")
            except _Raised:
                saw["propagated"] = True
        elif scenario == "nested_exceptions":  # two nested blocks left by an exception, twice
            saw["after_each"] = []
            for exc_type in (KeyError, ZeroDivisionError):
                try:
                    with no_grad(), no_grad():
                        raise exc_type("inside two nested blocks")
                except exc_type:
                    pass
                saw["after_each"].append(GradMode.enabled)
        elif scenario == "helper_raises":  # a helper's own no_grad, which raises, inside the student's block
            def inner() -> None:
                with no_grad():
                    raise ValueError("from a helper")

            with no_grad():
                try:
                    inner()
                except ValueError:
                    pass
                saw["off_after_helper"] = GradMode.enabled
        else:
            raise KeyError(scenario)
        saw["after"] = GradMode.enabled
    finally:
        GradMode.enabled = saved
    return saw


def check_no_grad(no_grad: type, GradMode: type) -> None:
    """Exercise 5's visible check: prints one line when it passes."""
    passed("no_grad", judge_no_grad(no_grad, GradMode))
