"""Exact answers for lesson 02's graph exercises (instructor only, never shipped).

The visible checks use these when they are importable (on the grader's machine) to report the first wrong
node with its exact expected value; a student's kit lacks this module, because the functions below answer
count_paths, sum_over_paths, forward_mode and reverse_mode (by linear algebra, but callable all the same).
With A[u, v] = dv/du the matrix of all total derivatives is (I - A)^-1 = I + A + A^2 + ..., and the path
counts are the same series for the 0/1 adjacency matrix. `exact_derivative` differentiates the notebook's
expression trees exactly (it holds the rules of calculus, the answer to `diff`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np

Edge = tuple[Hashable, Hashable]


def total_derivatives(edges: dict[Edge, float], nodes: list[Hashable], absolute: bool = False) -> np.ndarray:
    """T[i, j] = d node_j / d node_i summed over all paths, from (I - A)^-1 (independent of any sweep).

    With `absolute`, |A| is used: T then bounds the size of the terms a correct sum adds up, which sets the
    rounding tolerance.
    """
    index = {n: i for i, n in enumerate(nodes)}
    A = np.zeros((len(nodes), len(nodes)))
    for (u, v), d in edges.items():
        A[index[u], index[v]] = abs(d) if absolute else d
    return np.linalg.solve(np.eye(len(nodes)) - A, np.eye(len(nodes)))


def path_counts(edges: dict[Edge, float], nodes: list[Hashable]) -> np.ndarray:
    """N[i, j] = number of paths from node_i to node_j, as the exact integer series I + B + B^2 + ..."""
    index = {n: i for i, n in enumerate(nodes)}
    B = np.zeros((len(nodes), len(nodes)), dtype=np.int64)
    for u, v in edges:
        B[index[u], index[v]] = 1
    total = np.eye(len(nodes), dtype=np.int64)
    power = total.copy()
    for _ in range(len(nodes)):
        power = power @ B
        if not power.any():
            break
        total += power
    return total


def additive_paths(edges: dict[Edge, float], nodes: list[Hashable], src: Hashable, dst: Hashable) -> float:
    """Sum over paths of the SUM of edge derivatives (a common slip), by dynamic programming."""
    counts = path_counts(edges, nodes)
    index = {n: i for i, n in enumerate(nodes)}
    s, t = index[src], index[dst]
    # each edge (u, v) contributes d times (#paths src->u) * (#paths v->dst)
    return float(sum(d * counts[s, index[u]] * counts[index[v], t] for (u, v), d in edges.items()))


def exact_derivative(expr: object, var: str, env: dict[str, float]) -> float:
    """d expr/d var at env for the notebook's expression classes, by forward mode (value, derivative) pairs
    pushed through the tree: exact to rounding, so a derivative expression that only approximates (a
    finite difference built as an expression) is told apart from one built by the rules."""
    pairs: dict[int, tuple[float, float]] = {}
    stack = [expr]
    while stack:
        node = stack[-1]
        kind = type(node).__name__
        if id(node) in pairs:
            stack.pop()
            continue
        if kind == "Const":
            pairs[id(node)] = (float(node.value), 0.0)
        elif kind == "Var":
            pairs[id(node)] = (env[node.name], 1.0 if node.name == var else 0.0)
        else:
            children = [node.left, node.right] if kind in ("Add", "Mul") else [node.arg]
            pending = [child for child in children if id(child) not in pairs]
            if pending:
                stack.extend(pending)
                continue
            (a, da), *rest = (pairs[id(child)] for child in children)
            if kind == "Add":
                b, db = rest[0]
                pairs[id(node)] = (a + b, da + db)
            elif kind == "Mul":
                b, db = rest[0]
                pairs[id(node)] = (a * b, da * b + a * db)
            elif kind == "Sin":
                pairs[id(node)] = (math.sin(a), math.cos(a) * da)
            elif kind == "Cos":
                pairs[id(node)] = (math.cos(a), -math.sin(a) * da)
            else:
                pairs[id(node)] = (math.exp(a), math.exp(a) * da)
        stack.pop()
    return pairs[id(expr)][1]
