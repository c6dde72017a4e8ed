"""Exact answers for lesson 02's graph exercises (instructor only, never shipped).

The visible checks use these when they are importable (on the grader's machine) to report the first wrong
node with its exact expected value; a student's kit lacks this module, because the functions below answer
count_paths, sum_over_paths, forward_mode and reverse_mode (by linear algebra, but callable all the same).
With A[u, v] = dv/du the matrix of all total derivatives is (I - A)^-1 = I + A + A^2 + ..., and the path
counts are the same series for the 0/1 adjacency matrix.
"""

from __future__ import annotations

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
