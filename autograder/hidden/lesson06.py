"""Hidden checks for lesson 06 (instructor only: never shipped to students).

They go further than the visible ones: larger and broadcasting programs, shared sub-expressions, Python
numbers on either side of every operator, graphs with repeated nodes, and, for apply_op and sum_to_shape,
whole programs built through the student's code and differentiated by a trusted backward defined here.
Every program's gradients are also compared with the course's reference engine (`reference_impl.tensor`),
and sum_to_shape with `reference_impl.vjp.unbroadcast`, in the grader.

Importing this module installs `recording_op` in the visible checks (the test cells import it before the
visible check runs): when grading, the graphs for the format_graph and backward checks are then recorded
by this module's `record`, never by the student's apply_op, so a bug there costs only apply_op's points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autograder import lesson06 as visible
from autograder.checks import (
    CheckFailure,
    call_student,
    check_close,
    check_vjp,
    in_kernel,
    new_seed,
    raised_by,
)
from reference_impl import tensor as reference
from reference_impl.vjp import unbroadcast


def record(Tensor: type, Node: type, prim: object, inputs: list, params: dict | None = None) -> object:
    """Record one op with the GIVEN Node (what a correct apply_op produces): the exercises' answer, so it
    lives here and not in the shipped module."""
    params = params or {}
    data = prim.forward(*(t.data for t in inputs), **params)
    out = Tensor(data, requires_grad=any(t.requires_grad for t in inputs))
    if out.requires_grad:
        out.grad_fn = Node(prim, list(inputs), params, out.data)
    return out


def recording_op(Tensor: type, Node: type, OPS: dict) -> Callable[..., object]:
    """op(name, *tensors, **params) for programs: each step recorded by `record`."""

    def op(name: str, *args: object, **params: object) -> object:
        return record(Tensor, Node, OPS[name], list(args), params)

    return op


visible.install_grader_recording(recording_op)


def reference_gradients(prog: visible.Program, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The leaves' gradients of a random program by `reference_impl.tensor` (the same operators a
    student's Tensor offers), in float64."""
    leaves = [reference.Tensor(np.array(a, dtype=float), requires_grad=True) for a in arrays]
    loss = prog.run(leaves, visible.operator_op, lambda c: c)
    loss.backward()
    return tuple(np.zeros_like(a) if leaf.grad is None else np.array(leaf.grad) for leaf, a in
                 zip(leaves, arrays, strict=True))


def trusted_backward(tensor: object, gradient: np.ndarray | None = None) -> None:
    """Reverse-topological backward over the given Node structure (used to isolate other exercises)."""
    root = tensor.grad_fn if tensor.grad_fn is not None else tensor.accumulator
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in node.next_functions if c is not None)
    grads = {id(root): np.ones_like(tensor.data) if gradient is None else gradient}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if not hasattr(node, "input_grads"):  # AccumulateGrad
            leaf = node.variable
            leaf.grad = np.array(g, copy=True) if leaf.grad is None else leaf.grad + g
            continue
        for child, gi in zip(node.next_functions, node.input_grads(g), strict=True):
            if child is not None and gi is not None:
                grads[id(child)] = grads[id(child)] + gi if id(child) in grads else gi


def trusted_format(tensor: object) -> str:
    """The walk format_graph must produce (next_functions, depth first, two spaces per level)."""

    def name(fn: object) -> str:
        return "None" if fn is None else fn.name

    if tensor.grad_fn is not None:
        root = tensor.grad_fn
    else:
        return "AccumulateGrad" if tensor.requires_grad else "None"
    lines, stack = [], [(root, 0)]
    while stack:
        fn, depth = stack.pop()
        lines.append("  " * depth + name(fn))
        if fn is not None:
            stack.extend((c, depth + 1) for c in reversed(fn.next_functions))
    return "\n".join(lines)


def _program_with_scalars(rng: np.random.Generator) -> visible.Program:
    """Programs whose Python numbers sit on the left of -, / and * (the reflected operators)."""
    prog = visible.Program([(2, 3), (2, 3)])
    prog.steps.append(("sub", [("s", float(rng.uniform(1, 2))), ("v", 0)], {}))  # c - x0
    prog.steps.append(("mul", [("v", 0), ("v", 0)], {}))
    prog.steps.append(("add", [("s", 1.0), ("v", 3)], {}))  # 1 + x0*x0
    prog.steps.append(("div", [("s", float(rng.uniform(1, 2))), ("v", 4)], {}))  # c / (1 + x0^2)
    prog.steps.append(("mul", [("s", float(rng.uniform(-2, -1))), ("v", 1)], {}))  # c * x1
    prog.steps.append(("mul", [("v", 2), ("v", 6)], {}))
    prog.steps.append(("add", [("v", 5), ("v", 7)], {}))
    prog.readout.append((8, rng.standard_normal((2, 3))))
    return prog


def check_apply_op(
    apply_op: Callable[..., object], Tensor: type, Node: type, OPS: dict, GradMode: type
) -> None:
    """Whole programs through the Tensor operators (student's apply_op) against finite differences."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    saved = GradMode.enabled
    GradMode.enabled = True
    try:
        visible.judge_apply_op(apply_op, Tensor, OPS, GradMode, seed=seed + 1)
        for k in range(3):
            prog = visible.random_program(rng, 6, broadcasting=False) if k < 2 else _program_with_scalars(rng)
            visible.check_program_gradients(
                prog, visible.random_leaves(rng, prog), Tensor, visible.operator_op, trusted_backward,
                seed=seed + 10 + k, what="the grader's backward on a graph your apply_op recorded",
                raw_constants=True, reference=reference_gradients)
        # a chain: requires_grad must propagate through several ops from a single parameter
        w = Tensor(rng.standard_normal(3), requires_grad=True)
        inner = call_student("apply_op", apply_op, OPS["mul"], Tensor(rng.standard_normal(3)), w)
        out = call_student("apply_op", apply_op, OPS["tanh"], inner)
        if not out.requires_grad:
            raise CheckFailure(
                "requires_grad did not propagate through two ops: tanh(c * w) with w requiring grad must "
                "require grad."
            )
        # float32 inputs keep their dtype
        x32 = Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
        y32 = call_student("apply_op", apply_op, OPS["exp"], x32)
        dtype = np.asarray(y32.data).dtype
        if dtype != np.float32:
            raise CheckFailure(
                f"exp of a float32 tensor came out as {dtype}; keep the forward's dtype "
                "(Tensor(out_data) with the array prim.forward returned)."
            )
    finally:
        GradMode.enabled = saved


def _shared_graph(rng: np.random.Generator, Tensor: type, Node: type, OPS: dict) -> object:
    """A graph with a diamond, a constant and a leaf used twice."""
    a = Tensor(rng.standard_normal(3), requires_grad=True)
    c = Tensor(rng.standard_normal(3))
    rec = lambda n, *xs: record(Tensor, Node, OPS[n], list(xs))  # noqa: E731
    h = rec("mul", a, c)
    d = rec("add", rec("exp", h), rec("tanh", h))
    return rec("sum", rec("sub", rec("mul", d, a), c))


def check_format_graph(format_graph: Callable[[object], str], Tensor: type, Node: type, OPS: dict) -> None:
    """More random graphs, a chain 3000 ops deep, and a fixed graph with a diamond and a constant."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.judge_format_graph(format_graph, Tensor, Node, OPS, seed=seed, graphs=12, depth=3000)
    root = _shared_graph(rng, Tensor, Node, OPS)
    got = call_student("format_graph", format_graph, root)
    want = trusted_format(root)
    if not isinstance(got, str) or got.rstrip("\n") != want:
        raise CheckFailure(
            "format_graph is wrong on a graph with a shared sub-expression (a diamond) and a "
            "constant input. Expected:\n" + want + "\nGot:\n" + str(got)
        )


def check_backward(backward: Callable[..., None], Tensor: type, Node: type, OPS: dict) -> None:
    """More and longer random programs than the visible check."""
    visible.judge_backward(backward, Tensor, Node, OPS, seed=new_seed(None), programs=4, n_steps=14,
                           reference=reference_gradients)


def check_backward_semantics(backward: Callable[..., None], Tensor: type, Node: type, OPS: dict) -> None:
    """The visible rules on a deeper chain, plus b = a + a; c = b + b, shapes refused, no aliasing."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.judge_backward_semantics(backward, Tensor, Node, OPS, seed=seed, depth=4000)
    op = lambda n, *xs, **p: record(Tensor, Node, OPS[n], list(xs), p)  # noqa: E731
    # b = a + a; c = b + b: dc/da = 4 (needs each node's VJP to run once, with both contributions)
    a = Tensor(rng.standard_normal(3), requires_grad=True)
    b = op("add", a, a)
    c = op("add", b, b)
    g = rng.standard_normal(3)
    call_student("backward", backward, c, g.copy())
    check_close(
        a.grad,
        4 * g,
        name="a.grad for b = a + a; c = b + b",
        rtol=1e-12,
        hint="add contributions from both uses of a tensor before running its node",
    )
    # wrong gradient shape is refused
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = op("exp", x)
    if raised_by("backward", backward, y, rng.standard_normal((3, 2))) is None:
        raise CheckFailure(
            "backward(y, gradient) with a gradient of shape (3, 2) for y of shape (2, 3) must raise an "
            "error naming both shapes, not compute something."
        )
    # the leaf's .grad must not alias the incoming gradient array
    z = Tensor(rng.standard_normal(3), requires_grad=True)
    start = rng.standard_normal(3)
    roots = [op("add", z, Tensor(np.zeros(3))) for _ in range(2)]
    after = call_student("backward", in_kernel, visible.probe_backward_twice, backward, roots, start.copy())
    if not np.array_equal(after, start):
        raise CheckFailure(
            "backward modified the gradient array it was given (accumulating in place into an array it does "
            "not own). Copy it when it first becomes a leaf's .grad."
        )


def check_sum_to_shape(
    sum_to_shape: Callable[[np.ndarray, tuple], np.ndarray], Tensor: type, Node: type, OPS: dict
) -> None:
    """More broadcasting pairs, and whole broadcasting programs whose Nodes reduce with sum_to_shape."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.judge_sum_to_shape(sum_to_shape, seed=seed)
    for small, big in (((1, 1), (3, 5)), ((2, 1, 1), (2, 3, 4)), ((1, 3, 1), (4, 2, 3, 5))):

        def vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> np.ndarray:
            return call_student("sum_to_shape", sum_to_shape, g, x.shape)

        vjp.__name__ = f"sum_to_shape(g of shape {big}, {small})"
        check_vjp(lambda x, big=big: np.broadcast_to(x, big).copy(), vjp, rng.standard_normal(small),
                  seed=int(rng.integers(2**62)), repeat=False)
    # against the reference engine's unbroadcast, on shapes drawn here
    for _ in range(4):
        big = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 5))))
        keep = int(rng.integers(0, len(big) + 1))
        small = tuple(1 if rng.random() < 0.4 else n for n in big[len(big) - keep:])
        g = rng.standard_normal(big)
        got = call_student("sum_to_shape", sum_to_shape, g.copy(), small)
        check_close(got, unbroadcast(g, small), name=f"sum_to_shape(g of shape {big}, {small})",
                    rtol=1e-12, atol=1e-12, hint="sum over the axes broadcasting added (leading ones) and "
                    f"stretched (size 1 in the target, keepdims=True) (seed {seed})")
    # end to end: broadcasting programs through the given Node (which calls the student's sum_to_shape)
    op = lambda n, *xs, **p: record(Tensor, Node, OPS[n], list(xs), p)  # noqa: E731
    for k in range(2):
        prog = visible.random_program(rng, 6, broadcasting=True)
        visible.check_program_gradients(
            prog, visible.random_leaves(rng, prog), Tensor, op, trusted_backward, seed=seed + 20 + k,
            what="the grader's backward on a broadcasting program (reduced by your sum_to_shape)",
            reference=reference_gradients)


def check_no_grad(no_grad: type, GradMode: type) -> None:
    """Nesting with exceptions at two levels, and a helper's own no_grad inside the student's."""
    visible.judge_no_grad(no_grad, GradMode)
    saw = call_student("no_grad", in_kernel, visible.probe_no_grad, no_grad, GradMode,
                       "nested_exceptions")
    for exc_type, after in zip((KeyError, ZeroDivisionError), saw["after_each"], strict=True):
        if after is not True:
            raise CheckFailure(
                f"after a {exc_type.__name__} inside two nested no_grad blocks, grad mode was not restored."
            )
    saw = call_student("no_grad", in_kernel, visible.probe_no_grad, no_grad, GradMode,
                       "helper_raises")
    if saw["off_after_helper"] is not False or saw["after"] is not True:
        raise CheckFailure(
            "a helper that raised inside its own no_grad, called inside yours, switched grad mode back "
            "on too early or left it off; restore exactly the state found on entry."
        )
