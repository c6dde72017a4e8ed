"""Lesson 06 (autograd Tensor): the checks against right and wrong code, and the notebook as graded.

Fast tests exec the notebook's given and solution cells into a namespace and call the check functions
directly with the solution, with correct solutions in another style, and with typical bugs. Slow tests
execute the notebook (source, student version, one run per injected bug) and look at nbgrader's scores.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import lesson_harness as harness
import nbformat
import numpy as np
import pytest

from autograder import lesson06 as checks
from autograder.checks import CheckFailure, NotDone, repeat_line
from autograder.course.notebooks import without_regions
from autograder.hidden import lesson06 as hidden

NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "06_autograd_tensor" / "autograd_tensor.ipynb"

# ---------------------------------------------------------------------------------------------------------
# Typical wrong solutions (whole answer cells), keyed by a short name: (grade_id, source, expected message)
# ---------------------------------------------------------------------------------------------------------

# Correct answers written for these tests; most bugs below are one of them with a line or two changed.
_APPLY_OP = """
def apply_op(prim, *inputs, **params):
    tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    out_data = prim.forward(*(t.data for t in tensors), **params)
    track = is_grad_enabled() and any(t.requires_grad for t in tensors)
    out = Tensor(out_data, requires_grad=track)
    if track:
        out.grad_fn = Node(prim, tensors, params, out.data)
    return out
"""

_BACKWARD = """
def backward(tensor, gradient=None, retain_graph=False):
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"gradient needed for non-scalar of shape {tensor.shape}")
        gradient = np.ones_like(tensor.data)
    if gradient.shape != tensor.shape:
        raise ValueError(f"gradient of shape {gradient.shape} for a tensor of shape {tensor.shape}")
    root = tensor.grad_fn if tensor.grad_fn is not None else tensor.accumulator
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in node.next_functions if c is not None)
    grads = {id(root): gradient}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if isinstance(node, AccumulateGrad):
            v = node.variable
            v.grad = np.array(g, copy=True) if v.grad is None else v.grad + g
            continue
        for child, gi in zip(node.next_functions, node.input_grads(g)):
            if child is not None and gi is not None:
                grads[id(child)] = grads[id(child)] + gi if id(child) in grads else gi
        if not retain_graph:
            node.release()
"""


def _edited(source: str, *replacements: tuple[str, str]) -> str:
    """`source` with exact text replaced; each replacement must apply, so a bug cannot silently vanish."""
    for old, new in replacements:
        assert old in source, f"{old!r} not found: update the bug"
        source = source.replace(old, new)
    return source


_WRAPPED = "tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]\n    "
_ADD_CONTRIBUTION = "grads[id(child)] = grads[id(child)] + gi if id(child) in grads else gi"
_ACCUMULATE = "v.grad = np.array(g, copy=True) if v.grad is None else v.grad + g"
_SHAPE_CHECK = ('    if gradient.shape != tensor.shape:\n        raise ValueError(f"gradient of shape '
                '{gradient.shape} for a tensor of shape {tensor.shape}")\n')
# the scalar's start gradient as a one-element array, with no shape check to catch it
_START_AS_ARRAY = _edited(_BACKWARD, ("gradient = np.ones_like(tensor.data)", "gradient = np.ones(1)"),
                          (_SHAPE_CHECK, ""))

BUGS: dict[str, tuple[str, str, str]] = {
    "apply_op_all_instead_of_any": (
        "apply_op", _edited(_APPLY_OP, ("and any(", "and all(")), "ANY input"),
    "apply_op_ignores_grad_mode": (
        "apply_op", _edited(_APPLY_OP, ("is_grad_enabled() and ", "")), "GradMode.enabled = False"),
    "apply_op_no_constant_wrapping": (
        "apply_op", _edited(_APPLY_OP, (_WRAPPED, ""), ("for t in tensors", "for t in inputs"),
                            ("Node(prim, tensors,", "Node(prim, inputs,")), "wrap every input"),
    "apply_op_forward_on_tensors": (
        "apply_op", _edited(_APPLY_OP, ("(*(t.data for t in tensors)", "(*tensors")),
        "call it with the inputs' .data"),
    "backward_overwrites_leaf_grad": (
        "backward", _edited(_BACKWARD, (_ACCUMULATE, "v.grad = np.array(g, copy=True)")), "[1.0, 2.0, 1.0]"),
    "backward_start_gradient_wrong_shape": (
        "backward", _START_AS_ARRAY, "started the backward pass from a gradient of shape (1,)"),
    "backward_first_grad_not_copied": (
        "backward", _edited(_BACKWARD, (_ACCUMULATE, "v.grad = g if v.grad is None else v.grad + g")),
        "same array in memory"),
    "format_graph_children_reversed": (
        "format_graph",
        """
def format_graph(tensor):
    root = tensor.grad_fn if tensor.grad_fn is not None else (
        AccumulateGrad(tensor) if tensor.requires_grad else None)
    lines, stack = [], [(root, 0)]
    while stack:
        fn, depth = stack.pop()
        lines.append("  " * depth + ("None" if fn is None else fn.name))
        if fn is not None:
            stack.extend((child, depth + 1) for child in fn.next_functions)
    return "\\n".join(lines)
""",
        "wrong graph",
    ),
    "format_graph_skips_constants": (
        "format_graph",
        """
def format_graph(tensor):
    def walk(fn, depth):
        out = ["  " * depth + fn.name]
        for child in fn.next_functions:
            if child is not None:
                out += walk(child, depth + 1)
        return out
    if tensor.grad_fn is None:
        return "AccumulateGrad" if tensor.requires_grad else "None"
    return "\\n".join(walk(tensor.grad_fn, 0))
""",
        "wrong graph",
    ),
    "backward_breadth_first": (
        "backward",
        """
def backward(tensor, gradient=None, retain_graph=False):
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"gradient needed for non-scalar of shape {tensor.shape}")
        gradient = np.ones_like(tensor.data)
    if gradient.shape != tensor.shape:
        raise ValueError(f"gradient of shape {gradient.shape} for a tensor of shape {tensor.shape}")
    root = tensor.grad_fn if tensor.grad_fn is not None else tensor.accumulator
    grads = {id(root): gradient}
    queue, done = [root], set()
    while queue:
        node = queue.pop(0)
        if id(node) in done:
            continue
        done.add(id(node))
        g = grads[id(node)]
        if isinstance(node, AccumulateGrad):
            v = node.variable
            v.grad = np.array(g, copy=True) if v.grad is None else v.grad + g
            continue
        for child, gi in zip(node.next_functions, node.input_grads(g)):
            if child is not None and gi is not None:
                grads[id(child)] = grads.get(id(child), 0) + gi
                queue.append(child)
        if not retain_graph:
            node.release()
""",
        "before",
    ),
    "backward_recursive_no_release": (
        "backward",
        """
def backward(tensor, gradient=None, retain_graph=False):
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"gradient needed for non-scalar of shape {tensor.shape}")
        gradient = np.ones_like(tensor.data)
    if gradient.shape != tensor.shape:
        raise ValueError(f"gradient of shape {gradient.shape} for a tensor of shape {tensor.shape}")
    root = tensor.grad_fn if tensor.grad_fn is not None else tensor.accumulator
    order, seen = [], set()
    def visit(node):
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        for c in node.next_functions:
            visit(c)
        order.append(node)
    visit(root)
    grads = {id(root): gradient}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if isinstance(node, AccumulateGrad):
            v = node.variable
            v.grad = np.array(g, copy=True) if v.grad is None else v.grad + g
            continue
        for child, gi in zip(node.next_functions, node.input_grads(g)):
            if child is not None and gi is not None:
                grads[id(child)] = grads[id(child)] + gi if id(child) in grads else gi
""",
        "release",
    ),
    "sum_to_shape_leading_axes_only": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    lead = g.ndim - len(shape)
    return g.sum(axis=tuple(range(lead)))
""",
        "has size 1 and was not summed",
    ),
    "sum_to_shape_drops_kept_axes": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1)
    return g.sum(axis=axes)
""",
        "summed without keepdims=True",
    ),
    "sum_to_shape_keeps_the_added_axes": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    lead = g.ndim - len(shape)
    return g.sum(axis=tuple(lead + i for i, s in enumerate(shape) if s == 1), keepdims=True)
""",
        "Broadcasting adds axes at the FRONT",
    ),
    "sum_to_shape_sums_the_trailing_axes": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(len(shape), g.ndim)))
    g = g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True)
    if g.shape != shape:
        raise ValueError(f"cannot sum a gradient of shape {g.shape} to shape {shape}")
    return g
""",
        "its LEADING ones (numpy lines shapes up from the right)",
    ),
    "sum_to_shape_no_error_on_bad_shape": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1:
            g = g.sum(axis=i, keepdims=True)
    return g.reshape(shape) if g.size == int(np.prod(shape)) else g[tuple(slice(0, s) for s in shape)]
""",
        "must raise ValueError",
    ),
    "no_grad_restores_true": (
        "no_grad",
        """
class no_grad:
    def __enter__(self):
        GradMode.enabled = False
    def __exit__(self, *exc):
        GradMode.enabled = True
""",
        "nested no_grad",
    ),
    "no_grad_saves_in_a_global": (
        "no_grad",
        """
class no_grad:
    def __enter__(self):
        global _previous
        _previous = GradMode.enabled
        GradMode.enabled = False

    def __exit__(self, exc_type, exc, traceback):
        GradMode.enabled = _previous
""",
        "not in a global or on the class",
    ),
    "no_grad_contextmanager_without_finally": (
        "no_grad",
        """
import contextlib

@contextlib.contextmanager
def no_grad():
    previous = GradMode.enabled
    GradMode.enabled = False
    yield
    GradMode.enabled = previous
""",
        "finally",
    ),
    "sum_to_shape_broadcasts_instead_of_summing": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    return np.broadcast_to(g, shape)
""",
        "SUM it over the axes",
    ),
    "no_grad_toggles": (
        "no_grad",
        """
class no_grad:
    def __enter__(self):
        GradMode.enabled = not GradMode.enabled
    def __exit__(self, *exc):
        GradMode.enabled = not GradMode.enabled
""",
        "do not toggle",
    ),
    "apply_op_node_without_params": (
        "apply_op", _edited(_APPLY_OP, ("Node(prim, tensors, params,", "Node(prim, tensors, {},")),
        "(a dict, not **params)"),
    "apply_op_forward_without_params": (
        "apply_op", _edited(_APPLY_OP, ("for t in tensors), **params)", "for t in tensors))")),
        "params are not passed on"),
    "apply_op_forward_gets_the_params_dict": (
        "apply_op", _edited(_APPLY_OP, ("for t in tensors), **params)", "for t in tensors), params)")),
        "prim.forward(*arrays, **params)"),
    "apply_op_node_gets_output_tensor": (
        "apply_op", _edited(_APPLY_OP, ("params, out.data)", "params, out)")), "not the output Tensor"),
    "backward_breadth_first_without_visited": (
        "backward",
        """
def backward(tensor, gradient=None, retain_graph=False):
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"gradient needed for non-scalar of shape {tensor.shape}")
        gradient = np.ones_like(tensor.data)
    if gradient.shape != tensor.shape:
        raise ValueError(f"gradient of shape {gradient.shape} for a tensor of shape {tensor.shape}")
    root = tensor.grad_fn if tensor.grad_fn is not None else tensor.accumulator
    queue = [(root, gradient)]
    while queue:
        node, g = queue.pop(0)
        if isinstance(node, AccumulateGrad):
            v = node.variable
            v.grad = np.array(g, copy=True) if v.grad is None else v.grad + g
            continue
        for child, gi in zip(node.next_functions, node.input_grads(g)):
            if child is not None and gi is not None:
                queue.append((child, gi))
        if not retain_graph:
            node.release()
""",
        "retaining the graph is not the fix",
    ),
    "backward_search_stops_at_none": (
        "backward",
        _edited(_BACKWARD, ("stack.extend((c, False) for c in node.next_functions if c is not None)",
                            "for c in node.next_functions:\n                if c is None:\n"
                            "                    break\n                stack.append((c, False))")),
        "missing from your order",
    ),
    "backward_overwrites_contributions": (
        "backward", _edited(_BACKWARD, (_ADD_CONTRIBUTION, "grads[id(child)] = gi")),
        "only one of the"),
    "backward_reads_missing_entries": (
        "backward", _edited(_BACKWARD, (_ADD_CONTRIBUTION, "grads[id(child)] += gi")),
        "before any contribution"),
    "backward_walks_the_order_forward": (
        "backward", _edited(_BACKWARD, ("for node in reversed(order):", "for node in order:")), "REVERSE"),
    "backward_runs_vjps_of_accumulate_grad": (
        "backward",
        _edited(_BACKWARD, ("        if isinstance(node, AccumulateGrad):\n", "        if False:\n")),
        "no VJPs to run"),
    "backward_recursive_with_raised_limit": (
        "backward",
        _edited(_BACKWARD, ("    order, seen, stack = [], set(), [(root, False)]\n", """    import sys
    sys.setrecursionlimit(100000)
    order, seen = [], set()
    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for c in node.next_functions:
            if c is not None:
                visit(c)
        order.append(node)
    visit(root)
    stack = []
"""), ("        elif id(node) not in seen:", "        elif False:")),
        "recurses",
    ),
    "format_graph_recursive_with_raised_limit": (
        "format_graph",
        """
import sys

def format_graph(tensor):
    sys.setrecursionlimit(100000)
    def walk(fn, depth):
        out = ["  " * depth + ("None" if fn is None else fn.name)]
        for child in (fn.next_functions if fn is not None else ()):
            out += walk(child, depth + 1)
        return out
    if tensor.grad_fn is None:
        return "AccumulateGrad" if tensor.requires_grad else "None"
    return "\\n".join(walk(tensor.grad_fn, 0))
""",
        "recurses",
    ),
    "format_graph_prints_shared_nodes_once": (
        "format_graph",
        """
def format_graph(tensor):
    root = tensor.grad_fn if tensor.grad_fn is not None else (
        AccumulateGrad(tensor) if tensor.requires_grad else None)
    lines, stack, seen = [], [(root, 0)], set()
    while stack:
        fn, depth = stack.pop()
        if fn is not None and id(fn) in seen:
            continue
        if fn is not None:
            seen.add(id(fn))
        lines.append("  " * depth + ("None" if fn is None else fn.name))
        if fn is not None:
            stack.extend((child, depth + 1) for child in reversed(fn.next_functions))
    return "\\n".join(lines)
""",
        "once PER PATH",
    ),
    "no_grad_saves_state_in_init": (
        "no_grad",
        """
class no_grad:
    def __init__(self):
        self.previous = GradMode.enabled
    def __enter__(self):
        GradMode.enabled = False
        return self
    def __exit__(self, *exc):
        GradMode.enabled = self.previous
        return False
""",
        "not in __init__",
    ),
    # found by a student reviewer of the released notebook
    "apply_op_wraps_only_numbers": (
        "apply_op", _edited(_APPLY_OP, ("if isinstance(x, Tensor) else Tensor(x)",
                                        "if not isinstance(x, (int, float)) else Tensor(x)")),
        "numbers AND numpy arrays"),
    "apply_op_node_gets_unwrapped_inputs": (
        "apply_op", _edited(_APPLY_OP, ("Node(prim, tensors,", "Node(prim, inputs,")),
        "the Tensors themselves for Node"),
    "apply_op_returns_the_array": (
        "apply_op", _edited(_APPLY_OP, ("    return out\n", "    return out_data\n")), "not a Tensor"),
    "backward_root_is_grad_fn_only": (
        "backward", _edited(_BACKWARD, ("if tensor.grad_fn is not None else tensor.accumulator", "")),
        "start the search from tensor.accumulator"),
    "backward_value_error_without_gradient": (
        "backward", _edited(_BACKWARD, ('raise RuntimeError(f"gradient', 'raise ValueError(f"gradient')),
        "should raise a RuntimeError"),
    "backward_ignores_gradient_argument": (
        "backward", _edited(_BACKWARD, ("    if gradient is None:\n", "    if True:\n")),
        "start the backward pass from it"),
    "backward_no_gradient_shape_check": (
        "backward", _edited(_BACKWARD, ("    if gradient.shape != tensor.shape:\n", "    if False:\n")),
        "raise a ValueError that names both"),
    "backward_grad_as_tensor": (
        "backward", _edited(_BACKWARD, (_ACCUMULATE, "v.grad = Tensor(g) if v.grad is None else v.grad + g")),
        ".grad must be a numpy array"),
    "backward_releases_before_vjps": (
        "backward", _edited(_BACKWARD, ("        for child, gi in zip(", "        node.release()\n"
                                                                         "        for child, gi in zip(")),
        "released"),
    "sum_to_shape_mean": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    lead = g.ndim - len(shape)
    g = g.mean(axis=tuple(range(lead))) if lead else g
    return g.mean(axis=tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1), keepdims=True)
""",
        "checks.check_sum_to_shape(sum_to_shape, seed="),
    "no_grad_state_on_the_class": (
        "no_grad",
        """
class no_grad:
    previous = True
    def __enter__(self):
        no_grad.previous = GradMode.enabled
        GradMode.enabled = False
    def __exit__(self, *exc):
        GradMode.enabled = no_grad.previous
        return False
""",
        "after the OUTER block exits"),
}


# Correct solutions in other styles: each must get full marks.
OTHER_STYLES: dict[str, tuple[str, str]] = {
    "backward_kahn": (
        "backward",
        '''
def backward(tensor, gradient=None, retain_graph=False):
    """Kahn's algorithm: count consumers, run a node when its last consumer has delivered."""
    if not tensor.requires_grad:
        raise RuntimeError("tensor does not require grad")
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"backward needs a gradient for a non-scalar tensor of shape {tensor.shape}")
        gradient = np.ones_like(tensor.data)
    gradient = np.asarray(gradient, dtype=float)
    if gradient.shape != tensor.shape:
        raise ValueError(f"gradient shape {gradient.shape} != tensor shape {tensor.shape}")
    root = tensor.grad_fn or tensor.accumulator
    consumers, nodes, todo = {id(root): 0}, {id(root): root}, [root]
    while todo:
        for child in todo.pop().next_functions:
            if child is None:
                continue
            if id(child) not in nodes:
                nodes[id(child)] = child
                consumers[id(child)] = 0
                todo.append(child)
            consumers[id(child)] += 1
    pending = {id(root): gradient}
    ready = [root]
    while ready:
        node = ready.pop()
        g = pending.pop(id(node))
        if isinstance(node, AccumulateGrad):
            leaf = node.variable
            leaf.grad = g.copy() if leaf.grad is None else leaf.grad + g
            continue
        for child, gi in zip(node.next_functions, node.input_grads(g)):
            if child is None:
                continue
            if gi is not None:
                pending[id(child)] = pending[id(child)] + gi if id(child) in pending else gi
            consumers[id(child)] -= 1
            if consumers[id(child)] == 0 and id(child) in pending:
                ready.append(child)
        if not retain_graph:
            node.release()
''',
    ),
    "sum_to_shape_loops": (
        "sum_to_shape",
        """
def sum_to_shape(g, shape):
    shape = tuple(shape)
    try:
        ok = len(shape) <= g.ndim and np.broadcast_shapes(shape, g.shape) == g.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"gradient of shape {g.shape} cannot be reduced to {shape}")
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g
""",
    ),
    "no_grad_contextmanager": (
        "no_grad",
        """
from contextlib import contextmanager

@contextmanager
def no_grad():
    before = GradMode.enabled
    GradMode.enabled = False
    try:
        yield
    finally:
        GradMode.enabled = before
""",
    ),
    "format_graph_iterators": (
        "format_graph",
        """
def format_graph(tensor):
    if tensor.grad_fn is None:
        return "AccumulateGrad" if tensor.requires_grad else "None"
    out = [tensor.grad_fn.name]
    path = [iter(tensor.grad_fn.next_functions)]   # one iterator per open level
    while path:
        child = next(path[-1], StopIteration)
        if child is StopIteration:
            path.pop()
            continue
        out.append("  " * len(path) + ("None" if child is None else child.name))
        if child is not None and child.next_functions:
            path.append(iter(child.next_functions))
    return "\\n".join(out) + "\\n"
""",
    ),
}

EXERCISE_TESTS = {
    "apply_op": ["test_apply_op"],
    "format_graph": ["test_format_graph"],
    "backward": ["test_backward", "test_backward_semantics"],
    "sum_to_shape": ["test_sum_to_shape"],
    "no_grad": ["test_no_grad"],
}


def _namespace(replace: dict[str, str] | None = None) -> dict:
    return harness.answer_namespace(NOTEBOOK, replace)


def _run_check(gid: str, ns: dict) -> None:
    """Call the visible and hidden checks of one exercise with the objects in ns, as its test cells do."""
    _run_visible(gid, ns)
    _run_hidden(gid, ns)


def _run_hidden(gid: str, ns: dict) -> None:
    """Only the hidden checks of one exercise (they run the visible cases again, with more)."""
    T, N, O, G = ns["Tensor"], ns["Node"], ns["OPS"], ns["GradMode"]
    if gid == "apply_op":
        hidden.check_apply_op(ns["apply_op"], T, N, O, G)
    elif gid == "format_graph":
        hidden.check_format_graph(ns["format_graph"], T, N, O)
    elif gid == "backward":
        hidden.check_backward(ns["backward"], T, N, O)
        hidden.check_backward_semantics(ns["backward"], T, N, O)
    elif gid == "sum_to_shape":
        hidden.check_sum_to_shape(ns["sum_to_shape"], T, N, O)
    elif gid == "no_grad":
        hidden.check_no_grad(ns["no_grad"], G)
    else:
        raise KeyError(gid)


@pytest.fixture(scope="module")
def solution_ns() -> dict:
    return _namespace()


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_solution_passes_every_check_repeatedly(solution_ns: dict, gid: str) -> None:
    for _ in range(2):  # fresh random programs and points each time
        _run_check(gid, solution_ns)


@pytest.mark.parametrize("name", list(OTHER_STYLES))
def test_other_correct_styles_pass(name: str) -> None:
    gid, source = OTHER_STYLES[name]
    ns = _namespace({gid: source})
    for _ in range(2):
        _run_check(gid, ns)


@pytest.mark.parametrize("name", list(BUGS))
def test_each_bug_fails_its_check_with_a_useful_message(name: str) -> None:
    gid, source, message = BUGS[name]
    ns = _namespace({gid: source})
    with pytest.raises((CheckFailure, RecursionError)) as info:
        _run_visible(gid, ns)
    assert message in str(info.value), str(info.value)
    if gid != "no_grad" and isinstance(info.value, CheckFailure):
        _assert_the_last_line_repeats_it(str(info.value), ns)
    with pytest.raises((CheckFailure, RecursionError)) as hidden_info:  # the grader's checks catch it too
        _run_hidden(gid, ns)
    assert "to reproduce" not in str(hidden_info.value), "no call the notebook does not make"


_REPEAT = re.compile(re.escape(repeat_line("@")).replace("@", "(checks\\.check_.*)"))


def _assert_the_last_line_repeats_it(first: str, ns: dict) -> None:
    """The last line of a randomised check's message is the course's repeat line: the notebook call, with
    its seed, that gives the same message again; no other seed is named."""
    found = _REPEAT.fullmatch(first.splitlines()[-1])
    assert found, first
    call = found.group(1)
    seed = re.search(r"seed=(\d+)\)$", call).group(1)
    assert set(re.findall(r"seed[ =](\d+)", first)) == {seed}, first
    with pytest.raises(CheckFailure) as again:
        eval(call, {"checks": checks, **ns})  # noqa: S307 - the line the message tells the student to run

    def unaddressed(text: str) -> str:  # a KeyError names an id(node), new on every run
        return re.sub(r"KeyError: \d+", "KeyError: <id>", text)

    assert unaddressed(str(again.value)) == unaddressed(first)


def test_a_later_programs_failure_names_only_the_seed_of_the_call_that_repeats_it() -> None:
    """check_backward judges several programs: a failure in the second names the seed the student passes
    (the replay used to name the program's own seed, one more)."""
    rng = np.random.default_rng(0)
    first = checks.random_program(rng, 8)
    checks.random_leaves(rng, first)
    assert "log(" not in first.describe() and "log(" in checks.random_program(rng, 8).describe()
    ns = _namespace()
    ns["defvjp"](ns["OPS"]["log"], lambda g, ans, x: g * x)
    with pytest.raises(CheckFailure) as info:
        checks.check_backward(ns["backward"], ns["Tensor"], ns["Node"], ns["OPS"], seed=0)
    assert "LogBackward" in str(info.value), str(info.value)
    _assert_the_last_line_repeats_it(str(info.value), ns)


def test_a_wrong_start_gradient_is_named_before_exercise_4_is_run() -> None:
    """Without sum_to_shape (exercise 4's cell not run yet) a start gradient of the wrong shape crashes in
    Node.input_grads with a NameError: the message names the start gradient, and why sum_to_shape came up."""
    ns = _namespace({"backward": _START_AS_ARRAY})
    del ns["sum_to_shape"]
    with pytest.raises(CheckFailure) as info:
        checks.check_backward_semantics(ns["backward"], ns["Tensor"], ns["Node"], ns["OPS"])
    message = str(info.value)
    assert "started the backward pass from a gradient of shape (1,)" in message, message
    assert "exercise 4's and not defined yet" in message and "fix belongs in backward" in message, message


def test_the_answers_the_bugs_are_edited_from_are_correct() -> None:
    """Each bug is one change away from a correct answer: so the bug, not the base, is what fails."""
    for gid, source in (("apply_op", _APPLY_OP), ("backward", _BACKWARD)):
        ns = _namespace({gid: source})
        for _ in range(2):
            _run_check(gid, ns)



# backward's faults within one pass, named by the semantics check too (its own test cell is graded apart from
# test_backward's, so its message must not blame accumulation across calls or retain_graph for them)
WITHIN_ONE_PASS = {
    "backward_overwrites_contributions": "received only one of the 2 gradients",
    "backward_breadth_first_without_visited": "retaining the graph is not the fix",
}


@pytest.mark.parametrize("name", list(WITHIN_ONE_PASS))
def test_the_semantics_check_names_a_fault_within_one_pass(name: str) -> None:
    gid, source, _ = BUGS[name]
    ns = _namespace({gid: source})
    with pytest.raises(CheckFailure) as info:
        checks.check_backward_semantics(ns["backward"], ns["Tensor"], ns["Node"], ns["OPS"])
    assert WITHIN_ONE_PASS[name] in str(info.value), str(info.value)
    assert "accumulate across backward calls" not in str(info.value)
    _assert_the_last_line_repeats_it(str(info.value), ns)


def _demo_cell(*fragments: str) -> str:
    """The source of the one demo (ungraded) code cell holding every fragment."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"
             and "nbgrader" not in c.metadata and all(f in c.source for f in fragments)]
    assert len(cells) == 1, fragments
    return cells[0]


def _demo_output(ns: dict, source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<demo cell>", "exec"), ns)
    return out.getvalue()


def test_a_demo_after_a_no_grad_that_left_grad_mode_off_says_so() -> None:
    """Exercises 1, 3 and 4 pass, but grad mode was left off: the demo names exercise 5, not them."""
    ns = _namespace({"no_grad": BUGS["no_grad_contextmanager_without_finally"][1]})
    with pytest.raises(ZeroDivisionError), ns["no_grad"]():
        1 / 0  # noqa: B018 - the exception skips the restoring line
    assert not ns["GradMode"].enabled
    text = _demo_output(ns, _demo_cell("numeric_grad"))
    assert "Grad mode is still off" in text and "exercise 5" in text and "1, 3 and 4" not in text, text


def test_a_demo_with_blank_exercises_prints_only_what_to_complete() -> None:
    text = _demo_output(_namespace({"format_graph": BLANK["format_graph"]}), _demo_cell("took the"))
    assert text == "Complete exercises 1 and 2, then run this cell again.\n", text


BLANK = {
    "apply_op": "def apply_op(prim, *inputs, **params):\n    raise NotImplementedError()\n",
    "format_graph": "def format_graph(tensor):\n    raise NotImplementedError()\n",
    "backward": "def backward(tensor, gradient=None, retain_graph=False):\n    raise NotImplementedError()\n",
    "sum_to_shape": "def sum_to_shape(g, shape):\n    raise NotImplementedError()\n",
    "no_grad": ("class no_grad:\n    def __enter__(self):\n        raise NotImplementedError()\n\n"
                "    def __exit__(self, exc_type, exc, traceback):\n        raise NotImplementedError()\n"),
}


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_a_blank_exercise_gets_the_one_not_done_message(gid: str) -> None:
    """Visible and hidden checks of a blank exercise end in NotDone, the same words in every lesson."""
    ns = _namespace({gid: BLANK[gid]})
    for run in (_run_visible, _run_hidden):
        with pytest.raises(NotDone) as info:
            run(gid, ns)
        assert str(info.value) == str(NotDone(gid))


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_a_passing_check_prints_one_line_and_the_hidden_ones_nothing(solution_ns: dict, gid: str,
                                                                    capsys) -> None:  # noqa: ANN001
    capsys.readouterr()
    _run_visible(gid, solution_ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXERCISE_TESTS[gid]), lines
    assert all(line.startswith("passed: ") for line in lines), lines
    _run_hidden(gid, solution_ns)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("which", ["first", "second"])
def test_the_replay_names_the_op_and_input_whose_local_gradient_is_wrong(which: str) -> None:
    """A wrong VJP in the table makes a whole program wrong: the message names mul and its input."""
    ns = _namespace()
    right = lambda g, ans, a, b: g * b  # noqa: E731
    wrong = lambda g, ans, a, b: g * a  # noqa: E731
    ns["defvjp"](ns["OPS"]["mul"], *((wrong, wrong) if which == "first" else (right, right)))
    with pytest.raises(CheckFailure) as info:
        checks.judge_backward(ns["backward"], ns["Tensor"], ns["Node"], ns["OPS"], seed=5)
    message = str(info.value)
    assert "out of MulBackward (v" in message and f"into its {which} input is wrong" in message, message


def test_the_replay_names_the_broadcast_input_whose_reduction_is_wrong() -> None:
    """On the hidden broadcasting programs, a sum_to_shape that forgets size-1 axes is traced to the op whose
    input was broadcast, and to sum_to_shape."""
    ns = _namespace({"sum_to_shape": BUGS["sum_to_shape_leading_axes_only"][1]})
    op = hidden.recording_op(ns["Tensor"], ns["Node"], ns["OPS"])
    rng = np.random.default_rng(3)
    prog = checks.random_program(rng, 6, broadcasting=True)
    with pytest.raises(CheckFailure) as info:
        checks.check_program_gradients(prog, checks.random_leaves(rng, prog), ns["Tensor"], op,
                                       hidden.trusted_backward, seed=0, what="the grader's backward")
    message = str(info.value)
    assert "into its second input is wrong: it has shape (3, 4)" in message, message
    assert "reduced its gradient with your sum_to_shape" in message, message


# Answers that record being called and then raise, one per exercise (CALLED is put into the namespace).
_TRIP = "    CALLED.append({name!r})\n    raise NotImplementedError()\n"
TRIPWIRES = {
    "apply_op": "def apply_op(*args, **kwargs):\n" + _TRIP.format(name="apply_op"),
    "format_graph": "def format_graph(*args):\n" + _TRIP.format(name="format_graph"),
    "backward": "def backward(*args, **kwargs):\n" + _TRIP.format(name="backward"),
    "sum_to_shape": "def sum_to_shape(*args):\n" + _TRIP.format(name="sum_to_shape"),
    "no_grad": ("class no_grad:\n    def __init__(self, *args):\n"
                + _TRIP.format(name="no_grad").replace("    ", "        ")),
}


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_no_other_exercise_check_calls_this_exercise(gid: str) -> None:
    """Isolation, for every bug at once: with this exercise's answer replaced by a tripwire, every OTHER
    exercise's checks (visible and hidden, graphs recorded by the grader's code as when grading) pass and
    never call it, so no bug in it can cost another exercise its points. (Judged through the grading path
    with a bug in the whole notebook: the kernel runs below.)"""
    ns = _namespace({gid: TRIPWIRES[gid]})
    ns["CALLED"] = []
    for other in EXERCISE_TESTS:
        if other != gid:
            try:
                _run_check(other, ns)
            except CheckFailure as exc:  # pragma: no cover - the message is the diagnosis
                pytest.fail(f"the check of {other} depends on {gid}: {exc}")
    assert ns["CALLED"] == [], f"another exercise's check called {gid}"


def test_the_lessons_table_and_the_reference_engine_agree_op_by_op(solution_ns: dict) -> None:
    """Every primitive of the notebook's OPS, recorded by the notebook's Tensor and by reference_impl.tensor
    (which the hidden checks judge programs against): same node name, same forward, same gradients from
    Node.input_grads, for inputs of the same shape (broadcasting is where they differ: see the README of
    reference_impl.tensor)."""
    from reference_impl import tensor as reference

    rng = np.random.default_rng(0)
    for name, (shapes, params, domain) in checks._SINGLE_OPS.items():
        arrays = [checks._draw(rng, shape, domain) for shape in shapes]
        ours = checks.operator_op(name, *[solution_ns["Tensor"](a, requires_grad=True) for a in arrays],
                                  **params)
        theirs = checks.operator_op(name, *[reference.Tensor(a, requires_grad=True) for a in arrays],
                                    **params)
        assert ours.grad_fn.name == theirs.grad_fn.name, name
        np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-15)
        g = rng.standard_normal(ours.shape)
        for a, b in zip(ours.grad_fn.input_grads(g), theirs.grad_fn.input_grads(g), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_the_program_listing_ends_with_the_loss_that_reads_it_out() -> None:
    """The loss is part of the listing: a value it reads out is used there once more (a shared node)."""
    prog = checks.random_program(np.random.default_rng(0), 8)
    last = prog.describe().split("; ")[-1]
    assert last.startswith("loss = sum(r0 * "), last
    assert all(f"sum(r{k} * " in last for k in range(len(prog.readout))), last


def test_random_programs_differ_and_cover_every_op() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    descriptions = set()
    for _ in range(40):
        prog = checks.random_program(rng, 8, broadcasting=bool(rng.integers(2)))
        seen |= {name for name, _, _ in prog.steps}
        descriptions.add(prog.describe())
    assert len(descriptions) == 40
    assert seen >= set(checks.NUMPY_OPS) - {"sum"}


def test_checks_agree_with_pytorch_when_installed(solution_ns: dict) -> None:
    pytest.importorskip("torch", reason="PyTorch not installed: the cross-check against it is skipped")
    rng = np.random.default_rng()
    op = hidden.recording_op(solution_ns["Tensor"], solution_ns["Node"], solution_ns["OPS"])
    for _ in range(5):
        prog = checks.random_program(rng, 10, broadcasting=True)
        arrays = checks.random_leaves(rng, prog)
        ours = checks.tensor_gradients(prog, arrays, solution_ns["Tensor"], op, solution_ns["backward"])
        theirs = checks.torch_gradients(prog, arrays)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# The notebook as nbgrader runs it
# ---------------------------------------------------------------------------------------------------------

SOLUTION_MARKERS = [
    "track = is_grad_enabled() and any(",
    "stack.extend((child, depth + 1) for child in reversed(fn.next_functions))",
    "grads[id(child)] = grads[id(child)] + gi if id(child) in grads else gi",
    "stretched = tuple(lead + i for i, s in enumerate(shape)",
    "self._previous = GradMode.enabled",
    "inference needs only about one layer's activations",
]
TEST_CELLS = [t for tests in EXERCISE_TESTS.values() for t in tests]

notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)
# the given cells need numpy, which the notebook imports in an ungraded cell
NUMPY = "import numpy as np"


@pytest.mark.slow
def test_source_notebook_gets_full_marks(notebooks, source_nb) -> None:  # noqa: ANN001
    harness.assert_full_marks(harness.run_and_grade(notebooks, source_nb), TEST_CELLS)


@pytest.mark.slow
def test_student_version_has_no_solutions_and_scores_zero(notebooks, source_nb) -> None:  # noqa: ANN001
    text = harness.released_text(notebooks.student_version(source_nb))
    for marker in [*SOLUTION_MARKERS, *harness.SOLUTION_MARKERS]:
        assert marker not in text, marker
    harness.assert_release_is_safe_and_blank(notebooks, source_nb, TEST_CELLS, at_least=50)


# A few representative bugs through the real grading path (a kernel), with the test cells each must lose;
# every bug goes through the judged path without a kernel below.
NOTEBOOK_BUGS = {
    "apply_op_no_constant_wrapping": ["test_apply_op"],
    "backward_breadth_first": ["test_backward"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NOTEBOOK_BUGS))
def test_injected_bug_loses_only_its_points(notebooks, source_nb, name: str) -> None:  # noqa: ANN001
    gid, source, _ = BUGS[name]
    assert set(NOTEBOOK_BUGS[name]) <= set(EXERCISE_TESTS[gid])
    nb = notebooks.with_cell_source(harness.graded_cells_only(source_nb, NUMPY), gid, source)
    harness.assert_only_cells_lose_points(harness.run_and_grade(notebooks, nb), NOTEBOOK_BUGS[name],
                                          what=f"{name} in {gid}", expected_ids=TEST_CELLS)


# ---------------------------------------------------------------------------------------------------------
# The grading path without a kernel: test cells judged in the grader, the answers behind the real channel
# ---------------------------------------------------------------------------------------------------------


def _judged_cells(replace: dict[str, str], cells: list[str]) -> dict:
    """Only the named test cells judged as grading judges them."""
    scores = harness.judged_in_process(NOTEBOOK, replace, only=cells)
    assert set(scores) == set(cells)
    return scores


def test_judged_solution_gets_full_marks() -> None:
    harness.assert_full_marks(harness.judged_in_process(NOTEBOOK), TEST_CELLS)


def test_judged_blank_answers_get_zero_with_the_not_done_message() -> None:
    scores = harness.judged_in_process(NOTEBOOK, BLANK)
    harness.assert_zero_everywhere(scores, TEST_CELLS)
    for gid, cells in EXERCISE_TESTS.items():
        for cell in cells:
            assert str(NotDone(gid)) in scores[cell].error, scores[cell].error


def test_judged_other_styles_get_full_marks() -> None:
    answers = dict(OTHER_STYLES.values())
    assert len(answers) == len(OTHER_STYLES)  # one style per exercise: all judged in one notebook
    harness.assert_full_marks(harness.judged_in_process(NOTEBOOK, answers), TEST_CELLS)


# The exercise's test cells, cheapest first: a bug is judged until the first cell it loses.
CHEAP_FIRST = {gid: sorted(cells, key=lambda c: c != "test_backward_semantics")
               for gid, cells in EXERCISE_TESTS.items()}


@pytest.mark.parametrize("name", list(BUGS))
def test_judged_bug_loses_its_exercise_points_and_names_the_cause(name: str) -> None:
    """Each bug, judged as grading judges it, fails a test cell of its exercise with the same message as
    in-process (that it costs no other exercise anything: the tripwire test above, and the kernel runs)."""
    gid, source, message = BUGS[name]
    errors = []
    for cell in CHEAP_FIRST[gid]:
        score = _judged_cells({gid: source}, [cell])[cell]
        if score.score == 0:
            errors.append(score.error)
            if message in score.error:
                return
    pytest.fail(f"{name} kept every point of {gid}" if not errors else f"no cause named: {errors}")


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

def _run_visible(gid: str, ns: dict) -> None:
    """Only the shipped checks of one exercise, as a student runs them from the kit."""
    T, N, O, G = ns["Tensor"], ns["Node"], ns["OPS"], ns["GradMode"]
    if gid == "apply_op":
        checks.check_apply_op(ns["apply_op"], T, O, G)
    elif gid == "format_graph":
        checks.check_format_graph(ns["format_graph"], T, N, O)
    elif gid == "backward":
        checks.check_backward(ns["backward"], T, N, O)
        checks.check_backward_semantics(ns["backward"], T, N, O)
    elif gid == "sum_to_shape":
        checks.check_sum_to_shape(ns["sum_to_shape"])
    elif gid == "no_grad":
        checks.check_no_grad(ns["no_grad"], G)
    else:
        raise KeyError(gid)


def test_visible_module_holds_no_solution_line() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = Path(checks.__file__).read_text()
    lines = harness.solution_lines(nb)
    assert len(lines) > 30
    # the checks must switch the given grad mode off themselves; no_grad's answer is saving and restoring
    # the previous state, which the module does not contain
    allowed = {"GradMode.enabled = False"}
    for line in lines:
        assert line in allowed or line not in text, f"the shipped module contains a solution line: {line!r}"


def test_visible_module_holds_no_stand_in_apply_op() -> None:
    """Recording a Node from a forward (apply_op's answer) lives only on the hidden side."""
    text = Path(checks.__file__).read_text()
    for fragment in ("requires_grad=any(", ".grad_fn = Node", "prim.forward(*(", "def record("):
        assert fragment not in text, fragment


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_without_the_trusted_pieces_the_solution_passes(monkeypatch, gid: str) -> None:  # noqa: ANN001
    monkeypatch.setattr(checks, "_recording_op", None)
    ns = _namespace()
    for _ in range(2):
        _run_visible(gid, ns)
    for other_gid, source in OTHER_STYLES.values():
        if other_gid == gid:
            _run_visible(gid, _namespace({gid: source}))


@pytest.mark.parametrize("name", list(BUGS))
def test_without_the_trusted_pieces_each_bug_still_fails(monkeypatch, name: str) -> None:  # noqa: ANN001
    """On a student's machine the graphs come from the student's own apply_op, and the message says so."""
    monkeypatch.setattr(checks, "_recording_op", None)
    gid, source, message = BUGS[name]
    ns = _namespace({gid: source})
    with pytest.raises((CheckFailure, RecursionError)) as info:
        _run_visible(gid, ns)
    assert message in str(info.value), str(info.value)
    assert checks.KIT_NOTE not in str(info.value), "the student's apply_op is correct: no note about it"


@pytest.mark.parametrize("gid", ["backward", "format_graph"])
def test_without_the_trusted_pieces_a_wrong_apply_op_is_named(monkeypatch, gid: str) -> None:  # noqa: ANN001
    """In the kit a correct backward or format_graph fails on graphs a wrong apply_op recorded: the message
    says apply_op is at fault, and which step it recorded wrongly."""
    monkeypatch.setattr(checks, "_recording_op", None)
    wrong = _edited(_APPLY_OP, ("Node(prim, tensors, params,", "Node(prim, list(reversed(tensors)), params,"))
    ns = _namespace({"apply_op": wrong})
    with pytest.raises(CheckFailure) as info:
        _run_visible(gid, ns)
    assert checks.KIT_NOTE in str(info.value) and "next_functions" in str(info.value), str(info.value)


@pytest.mark.parametrize("bug", ["apply_op_all_instead_of_any", "apply_op_returns_the_array",
                                 "apply_op_forward_on_tensors"])
@pytest.mark.parametrize("gid", ["backward", "format_graph"])
def test_without_the_trusted_pieces_a_broken_apply_op_stops_the_graph_checks(monkeypatch, gid: str,
                                                                            bug: str) -> None:  # noqa: ANN001
    """In the kit, an apply_op that records no node, returns an array or crashes is named by the checks that
    build graphs with it (one message, not a crash inside the checker)."""
    monkeypatch.setattr(checks, "_recording_op", None)
    ns = _namespace({"apply_op": BUGS[bug][1]})
    with pytest.raises(CheckFailure, match="Fix apply_op first"):
        _run_visible(gid, ns)


def test_without_the_trusted_pieces_a_blank_apply_op_is_named(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(checks, "_recording_op", None)
    ns = _namespace({"apply_op": "def apply_op(prim, *inputs, **params):\n    raise NotImplementedError()\n"})
    with pytest.raises(CheckFailure, match="complete exercise 1"):
        _run_visible("backward", ns)


def _without_hidden_tests(source: str) -> str:
    """A test cell as released: every hidden-test region removed (a cell may have several), as nbgrader
    does."""
    return without_regions(source, ("HIDDEN TESTS",))


def kit_script() -> str:
    """The notebook's given, answer and test cells in order (test cells without their hidden tests), with
    the hidden modules blocked: what a student with correct answers runs from the kit."""
    nb = harness.graded_cells_only(nbformat.read(NOTEBOOK, as_version=4), NUMPY)
    script = "\n\n".join(_without_hidden_tests(c.source) for c in nb.cells if c.cell_type == "code")
    assert script.count("checks.check_") == len(TEST_CELLS)
    return (f"from autograder import lesson06\nassert lesson06._recording_op is None\n\n{script}\n"
            "print('kit checks passed')\n")


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules() -> None:
    done = harness.run_in_student_kit(kit_script(), NOTEBOOK.parent, timeout=600)
    assert "kit checks passed" in done.stdout


def test_a_sum_to_shape_returning_a_ragged_list_gets_one_message():
    """A result numpy cannot even shape fails in one CheckFailure naming what came back, no traceback."""
    with pytest.raises(CheckFailure, match="returned a list, expected an array"):
        checks.check_sum_to_shape(lambda g, shape: [[1.0, 2.0], [3.0]], seed=1)
