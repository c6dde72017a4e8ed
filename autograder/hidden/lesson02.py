"""Hidden checks for lesson 02 (instructor only, never shipped).

More and larger random graphs, other kinds of node names, the degenerate cases (a node and itself, a
single edge), Duals at more points and powers, and exact answers from the course's reverse-mode engine
(`reference_impl.scalar`), which shares no code with the visible consistency checks: the graph exercises
against the total derivatives and path counts of each graph (the graph run as a computation, one
backward pass per start node), the adjoint trace against a reverse sweep of the same trace, and symbolic
derivatives of deeper random expressions in other variables against the exact derivative of the
expression, so a derivative expression that only approximates cannot pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import numpy as np

from autograder.checks import CheckFailure, as_real, call_student, close, new_seed
from autograder.hidden import silently
from autograder.lesson02 import (
    DUAL_OPS,
    OPERATIONS,
    TRACE_NAMES,
    TRACE_RTOL,
    DiffCase,
    Edge,
    Env,
    Graph,
    Tree,
    adjoint_values,
    chain_graph,
    check_dual_op,
    children_of,
    graph_path_case,
    judge_diff,
    layered_graph,
    postorder,
    random_expression,
    random_graph,
    state_problem,
    sweep_case,
)
from autograder.lesson02 import check_adjoint_trace as visible_adjoint_check
from autograder.lesson02 import check_count_paths as visible_count_check
from autograder.lesson02 import check_diff as visible_diff_check
from autograder.lesson02 import check_dual as visible_dual_check
from autograder.lesson02 import check_sum_over_paths as visible_sum_check
from reference_impl.scalar import Value

__all__ = [
    "check_count_paths",
    "check_sum_over_paths",
    "check_forward_mode",
    "check_reverse_mode",
    "check_dual",
    "check_adjoint_trace",
    "check_diff",
]


def renamed(g: Graph, rename: Callable) -> Graph:
    """The same graph with other node labels (ints, tuples): nothing may depend on labels being strings."""
    edges = {(rename(u), rename(v)): d for (u, v), d in g.edges.items()}
    return Graph(edges, rename(g.src), rename(g.dst), [rename(n) for n in g.nodes], g.kind)


def int_label(name: str) -> int:
    return int(name[1:]) * 7 + 3


def tuple_label(name: str) -> tuple[str, int]:
    return ("node", int(name[1:]))


# ---------------------------------------------------------------------------------------------------------
# Exact answers, from the course's reverse-mode engine
# ---------------------------------------------------------------------------------------------------------


def _sensitivities(edges: dict[Edge, float], nodes: list[Hashable], start: Hashable,
                   weight: Callable[[float], float]) -> dict[Hashable, float]:
    """d x_start / d e_n for every node n, where the graph is run as the computation x_v = e_v + sum over
    the edges (u, v) of weight(d) * x_u (leaves e_n = 0): the sum over all paths from n to start of the
    products of the weights, by one backward pass of `reference_impl.scalar`."""
    parents: dict[Hashable, list[tuple[Hashable, float]]] = {n: [] for n in nodes}
    waiting = {n: 0 for n in nodes}
    children: dict[Hashable, list[Hashable]] = {n: [] for n in nodes}
    for (u, v), d in edges.items():
        parents[v].append((u, weight(d)))
        children[u].append(v)
        waiting[v] += 1
    e = {n: Value(0.0) for n in nodes}
    x: dict[Hashable, Value] = {}
    ready = [n for n in nodes if waiting[n] == 0]
    while ready:
        node = ready.pop()
        total = e[node]
        for u, w in parents[node]:
            total = total + x[u] * w
        x[node] = total
        for v in children[node]:
            waiting[v] -= 1
            if waiting[v] == 0:
                ready.append(v)
    if len(x) != len(nodes):
        raise ValueError("the graph has a cycle")
    x[start].backward()
    return {n: e[n].grad for n in nodes}


def exact_values(g: Graph, start: Hashable, *, forward: bool, counting: bool = False) -> dict:
    """node -> (exact value, bound) for every node of g: d node/d start (forward) or d start/d node
    (reverse), or the number of paths from start (counting); bound is the sum over paths of |products|,
    which sets the rounding tolerance. A forward quantity is a backward pass on the reversed graph."""
    edges = {(v, u): d for (u, v), d in g.edges.items()} if forward else g.edges
    if counting:
        counts = _sensitivities(edges, g.nodes, start, lambda d: 1.0)
        return {n: (counts[n], counts[n]) for n in g.nodes}
    signed = _sensitivities(edges, g.nodes, start, lambda d: d)
    bound = _sensitivities(edges, g.nodes, start, abs)
    return {n: (signed[n], bound[n]) for n in g.nodes}


_VALUE_OPS: dict[str, Callable[..., Value]] = {
    "Add": lambda p, q: p + q, "Mul": lambda p, q: p * q,
    "Sin": Value.sin, "Cos": Value.cos, "Exp": Value.exp,
}


def exact_derivative(expr: Tree, var: str, env: Env) -> float:
    """d expr/d var at env, by a backward pass of `reference_impl.scalar` through the expression: exact to
    rounding, so a derivative expression that only approximates (a finite difference built as an
    expression) is told apart from one built by the rules."""
    leaves = {name: Value(value) for name, value in env.items()}
    values: dict[int, Value] = {}
    for node in postorder(expr):
        kind = node[0]
        if kind == "Const":
            values[id(node)] = Value(node[1])
        elif kind == "Var":
            values[id(node)] = leaves[node[1]]
        else:
            values[id(node)] = _VALUE_OPS[kind](*(values[id(part)] for part in children_of(node)))
    values[id(expr)].backward()
    return leaves[var].grad if var in leaves else 0.0


assert set(_VALUE_OPS) == set(OPERATIONS)


# ---------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------


def degenerate_cases(student: Callable, name: str, expected_self: float) -> None:
    """A node and itself (one empty path, derivative 1) and a single edge."""
    edges = {("p", "q"): -0.75}
    same = as_real(call_student(name, student, dict(edges), "p", "p"), f"{name} returned")
    one = as_real(call_student(name, student, dict(edges), "p", "q"), f"{name} returned")
    if same != expected_self:
        raise CheckFailure(
            f"{name}(edges, 'p', 'p') returned {same}, expected {expected_self}: a node has exactly one "
            f"path to itself (the empty path, whose product of derivatives is 1)."
        )
    want = 1 if name == "count_paths" else -0.75
    if one != want:
        raise CheckFailure(f"{name}({{('p', 'q'): -0.75}}, 'p', 'q') returned {one}, expected {want}.")


def exact_path_cases(student: Callable, name: str, seed: int) -> None:
    """Every node of graphs with integer and tuple labels, against the exact answers."""
    rng = np.random.default_rng(seed + 1)
    for label in (int_label, tuple_label):
        g = renamed(random_graph(rng, 4), label)
        graph_path_case(student, name, g, g.src, seed,
                        exact=exact_values(g, g.src, forward=True, counting=name == "count_paths"))


def check_count_paths(count_paths: Callable, *, seed: int | None = None) -> None:
    """The visible cases again, the degenerate ones, and every node of graphs with integer and tuple
    labels against the exact counts."""
    seed = new_seed(seed)
    silently(visible_count_check, count_paths, seed=seed)
    degenerate_cases(count_paths, "count_paths", 1)
    exact_path_cases(count_paths, "count_paths", seed)


def check_sum_over_paths(sum_over_paths: Callable, *, seed: int | None = None) -> None:
    """The visible cases again with a new seed, the degenerate ones, and graphs with other labels against
    the exact derivatives."""
    seed = new_seed(seed)
    silently(visible_sum_check, sum_over_paths, seed=seed + 1)
    degenerate_cases(sum_over_paths, "sum_over_paths", 1.0)
    exact_path_cases(sum_over_paths, "sum_over_paths", seed)


def sweep_graphs(rng: np.random.Generator) -> list[Graph]:
    return [
        random_graph(rng, 8, width=(2, 5)),
        renamed(random_graph(rng, 4), int_label),
        renamed(random_graph(rng, 3), tuple_label),
        random_graph(rng, 1, width=(1, 1), extra_nodes=False),
        layered_graph(rng, 25, 2),  # 2**25 paths: only a sweep stays within its budget of steps
        chain_graph(160),  # a scan of all remaining nodes per step costs nodes**2
    ]


def check_forward_mode(forward_mode: Callable, *, seed: int | None = None) -> None:
    """Larger and relabelled graphs, a chain, and a graph with 2**25 paths, each within its step budget and
    every node against the exact derivatives."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    state_problem(forward_mode, "forward_mode")
    for g in sweep_graphs(rng):
        sweep_case(forward_mode, "forward_mode", g, seed, exact=exact_values(g, g.src, forward=True))


def check_reverse_mode(reverse_mode: Callable, *, seed: int | None = None) -> None:
    """Larger and relabelled graphs, a chain, and a graph with 2**25 paths, each within its step budget and
    every node against the exact derivatives."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    state_problem(reverse_mode, "reverse_mode")
    for g in sweep_graphs(rng):
        sweep_case(reverse_mode, "reverse_mode", g, seed, exact=exact_values(g, g.dst, forward=False))


def check_dual(Dual: type, *, seed: int | None = None) -> None:
    """Every operation at more points, integer and negative powers of negative numbers, int inputs."""
    seed = new_seed(seed)
    silently(visible_dual_check, Dual, seed=seed)
    rng = np.random.default_rng(seed)
    power = next(op for op in DUAL_OPS if op.text == "x ** c")
    for _ in range(3):
        for op in DUAL_OPS:
            a = float(rng.uniform(0.2, 3.0))
            b = float(rng.uniform(0.2, 3.0) * rng.choice([-1.0, 1.0]))
            da, db = (float(rng.normal()) for _ in range(2))
            check_dual_op(Dual, op, a, da, b, db, float(rng.uniform(-2.0, 3.0)), seed)
    for c in (3, 2, -1, 0.5):
        a = float(rng.uniform(0.5, 2.0)) * (-1.0 if isinstance(c, int) else 1.0)
        check_dual_op(Dual, power, a, float(rng.normal()), 1.0, 0.0, c, seed)
    y = call_student("Dual", lambda: Dual(2, 1) * Dual(2, 1) * 3 + 1)  # ints in: value 13, derivative 12
    value, deriv = call_student("Dual", lambda: (y.value, y.deriv))
    if (as_real(value, "value is"), as_real(deriv, "deriv is")) != (13.0, 12.0):
        raise CheckFailure(
            f"With x = Dual(2, 1), 3*x*x + 1 gave Dual({value}, {deriv}); expected Dual(13, 12)."
        )


def check_adjoint_trace(adjoints: object) -> None:
    """Each adjoint against the reverse-mode engine of the course, run on the same trace."""
    silently(visible_adjoint_check, adjoints)
    got = adjoint_values(adjoints)
    v = {"v-1": Value(2.0), "v0": Value(5.0)}
    v["v1"] = v["v-1"].log()
    v["v2"] = v["v-1"] * v["v0"]
    v["v3"] = v["v0"].sin()
    v["v4"] = v["v1"] + v["v2"]
    v["v5"] = v["v4"] - v["v3"]
    v["v5"].backward()
    for name in TRACE_NAMES:
        expected = v[name].grad
        if not close(got[name], expected, TRACE_RTOL):
            raise CheckFailure(f"adjoints[{name!r}] = {got[name]!r} disagrees with a reverse sweep of the "
                               f"trace.")
    if not (close(got["v-1"], 5.5, TRACE_RTOL) and close(got["v0"], 2 - math.cos(5.0), TRACE_RTOL)):
        raise CheckFailure("the input adjoints are not the gradient of f at (2, 5).")


def check_diff(diff: Callable, Expr: type, *, seed: int | None = None) -> None:
    """The visible cases, then deeper random expressions in other variable names (and with respect to a
    variable the expression does not contain), each compared with the exact derivative to rounding."""
    seed = new_seed(seed)
    silently(visible_diff_check, diff, Expr, seed=seed)
    rng = np.random.default_rng(seed + 1)
    names = ("t", "w1")

    def exact(case: DiffCase, env: Env) -> float:
        return exact_derivative(case.expr, case.var, env)

    for depth in (3, 4, 5, 5, 6):
        expr = random_expression(rng, depth, names)
        for var in (*names, "z"):
            points = [{name: float(rng.uniform(-1.2, 1.2)) for name in names} for _ in range(4)]
            if var == "z":
                points = [{**env, "z": 0.5} for env in points]
            judge_diff(diff, Expr, DiffCase(expr, var), points, seed, expected=exact)
