"""Visible checks for lesson 02 (the chain rule on graphs).

Graph exercises are checked on random layered DAGs with random edge derivatives, node names whose sorted
order has nothing to do with the graph, and edges stored in shuffled order. This module is shipped to
students, so it computes no answer: on the grader's machine the exact answers come from the hidden
`lesson02_trusted` (linear algebra, (I - A)^-1), and in a student's kit each node's value is checked against
the student's own values at its neighbours (paths into v end with one edge from a parent), which pins every
value down by induction. Dual numbers are checked against finite differences of the same operation on
floats, and the adjoint trace against local partial derivatives measured the same way. "Visits each edge
once" is measured, not assumed: the edges are handed over in a dict that counts reads of each value, and
each value is a float that counts the arithmetic done with it.
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from autograder.checks import CheckFailure, check_derivative, new_seed, quiet

__all__ = [
    "check_count_paths",
    "check_sum_over_paths",
    "check_forward_mode",
    "check_reverse_mode",
    "check_dual",
    "check_adjoint_trace",
]

Edge = tuple[Hashable, Hashable]

try:  # the grader has the exact answers; students' kits do not (they would answer the graph exercises)
    _trusted = importlib.import_module("autograder.hidden.lesson02_trusted")
except ImportError:
    _trusted = None


# ---------------------------------------------------------------------------------------------------------
# Random graphs and their exact answers
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Graph:
    """A random DAG: edges (u, v) -> dv/du in shuffled order, one source, one sink, plus stray nodes."""

    edges: dict[Edge, float]
    src: Hashable
    dst: Hashable
    nodes: list[Hashable]

    def describe(self) -> str:
        return f"a random graph with {len(self.nodes)} nodes and {len(self.edges)} edges"


def random_graph(
    rng: np.random.Generator, layers: int, width: tuple[int, int] = (2, 4), extra_nodes: bool = True
) -> Graph:
    """A layered DAG from src to dst with random skip edges, weights away from 0, and shuffled names.

    With `extra_nodes`, one node is fed from the middle of the graph but never reaches dst, and one feeds
    into the middle but cannot be reached from src, so "every node" really means every node.
    """
    sizes = [1] + [int(rng.integers(width[0], width[1] + 1)) for _ in range(layers)] + [1]
    total = sum(sizes) + (2 if extra_nodes else 0)
    names = [f"n{k}" for k in rng.permutation(np.arange(10, 10 + 3 * total))[:total]]
    levels, k = [], 0
    for size in sizes:
        levels.append(names[k : k + size])
        k += size
    pairs: set[Edge] = set()
    for i in range(len(levels) - 1):
        here, there = levels[i], levels[i + 1]
        for v in there:  # every node gets at least one parent ...
            pairs.add((here[int(rng.integers(len(here)))], v))
        for u in here:  # ... and at least one child
            pairs.add((u, there[int(rng.integers(len(there)))]))
        for u in here:
            for v in there:
                if rng.random() < 0.35:
                    pairs.add((u, v))
        if i + 2 < len(levels):
            for u in here:
                for v in levels[i + 2]:
                    if rng.random() < 0.15:
                        pairs.add((u, v))
    if extra_nodes:
        middle = levels[len(levels) // 2]
        dead_end, orphan = names[-2], names[-1]
        pairs.add((middle[int(rng.integers(len(middle)))], dead_end))
        pairs.add((orphan, middle[int(rng.integers(len(middle)))]))
    ordered = sorted(pairs)
    order = rng.permutation(len(ordered))
    edges = {}
    for i in order:
        edges[ordered[int(i)]] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.6))
    return Graph(edges, levels[0][0], levels[-1][0], names)


def layered_graph(rng: np.random.Generator, layers: int, width: int) -> Graph:
    """Fully connected layers: src -> width -> ... -> width -> dst has width**layers paths."""
    levels = [["src"]] + [[f"L{i}_{j}" for j in range(width)] for i in range(layers)] + [["dst"]]
    edges = {}
    for here, there in zip(levels, levels[1:], strict=False):
        for u in here:
            for v in there:
                edges[(u, v)] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.3))
    return Graph(edges, "src", "dst", [n for level in levels for n in level])


# ---------------------------------------------------------------------------------------------------------
# Measuring "visits each edge once"
# ---------------------------------------------------------------------------------------------------------


class CountedFloat(float):
    """An edge derivative that counts the arithmetic done with it (the result is a plain float)."""

    __slots__ = ("edge", "tally")

    def __new__(cls, value: float, edge: Edge, tally: Counter) -> CountedFloat:
        obj = super().__new__(cls, value)
        obj.edge = edge
        obj.tally = tally
        return obj

    def _use(self) -> None:
        self.tally[self.edge] += 1


def _counted(name: str) -> Callable:
    base = getattr(float, name)

    def op(self: CountedFloat, other: object) -> object:
        self._use()
        return base(float(self), other)

    op.__name__ = name
    return op


for _name in (
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
):
    setattr(CountedFloat, _name, _counted(_name))


class CountingEdges(dict):
    """The edges mapping handed to students: counts how often each edge's value is read."""

    def __init__(self, edges: dict[Edge, float]) -> None:
        self.uses: Counter = Counter()
        self.reads: Counter = Counter()
        super().__init__({e: CountedFloat(d, e, self.uses) for e, d in edges.items()})

    def __getitem__(self, key: Edge) -> float:
        self.reads[key] += 1
        return super().__getitem__(key)

    def get(self, key: Edge, default: object = None) -> object:
        if key in self:
            return self[key]
        return default

    def items(self) -> list[tuple[Edge, float]]:  # type: ignore[override]
        out = list(super().items())
        for key, _ in out:
            self.reads[key] += 1
        return out

    def values(self) -> list[float]:  # type: ignore[override]
        return [value for _, value in self.items()]


def visit_problem(counting: CountingEdges, name: str, original: dict[Edge, float]) -> str | None:
    """Why the student's sweep did not visit each edge once, or None if it did."""
    if dict.keys(counting) != original.keys() or any(
        float(dict.__getitem__(counting, e)) != d for e, d in original.items()
    ):
        return f"{name} changed the edges dictionary it was given. Read it; never modify it."
    used = max(counting.uses.values(), default=0)
    read = max(counting.reads.values(), default=0)
    if used > 1:
        edge = counting.uses.most_common(1)[0][0]
        return (
            f"{name} did arithmetic with the derivative of edge {edge} {used} times. A sweep uses each edge "
            f"exactly once: when a node's value is final, pass it along each of its edges once. (Listing "
            f"paths, or recursion without remembering finished nodes, repeats edges.)"
        )
    if read > 3:  # a few passes to build parent/child lists are fine; a scan of all edges per node is not
        edge = counting.reads.most_common(1)[0][0]
        return (
            f"{name} read the derivative of edge {edge} {read} times. Build your lists of parents or "
            f"children from edges once; the sweep then needs each edge once: process the nodes in an order "
            f"where each node is finished before it is used, instead of scanning all edges for every node."
        )
    return None


# ---------------------------------------------------------------------------------------------------------
# count_paths and sum_over_paths
# ---------------------------------------------------------------------------------------------------------


def as_number(value: object, name: str) -> float:
    if value is None:
        raise CheckFailure(f"{name} returned None. Did you forget the `return` statement?")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CheckFailure(f"{name} returned {value!r} ({type(value).__name__}); it should return a number.")
    out = float(value)
    if not math.isfinite(out):
        raise CheckFailure(f"{name} returned {out}, which is not a finite number.")
    return out


def path_cases(rng: np.random.Generator, g: Graph) -> list[tuple[Hashable, Hashable]]:
    """The source and sink, a random reachable pair, and a pair with no path between them."""
    counts = _trusted.path_counts(g.edges, g.nodes)
    index = {n: i for i, n in enumerate(g.nodes)}
    reachable = [(u, v) for u in g.nodes for v in g.nodes if u != v and counts[index[u], index[v]] > 0]
    unreachable = [(u, v) for u in g.nodes for v in g.nodes if u != v and counts[index[u], index[v]] == 0]
    cases = [(g.src, g.dst), reachable[int(rng.integers(len(reachable)))]]
    cases.append(unreachable[int(rng.integers(len(unreachable)))])
    return cases


def exact_count_paths(count_paths: Callable, rng: np.random.Generator, seed: int) -> None:
    """Exact path counts on random DAGs (including a pair with no path), compared with matrix powers."""
    for layers in (2, 4, 6):
        g = random_graph(rng, layers)
        counts = _trusted.path_counts(g.edges, g.nodes)
        index = {n: i for i, n in enumerate(g.nodes)}
        for src, dst in path_cases(rng, g):
            expected = int(counts[index[src], index[dst]])
            with quiet():
                got = as_number(count_paths(dict(g.edges), src, dst), "count_paths")
            if got == expected:
                continue
            on_paths = sum(
                1
                for (u, v) in g.edges
                if counts[index[src], index[u]] > 0 and counts[index[v], index[dst]] > 0
            )
            if expected == 0:
                hint = "when no path leads from src to dst the answer is 0."
            elif got in (len(g.edges), on_paths):
                hint = (
                    "you counted edges, not paths. A path is a whole route from src to dst; two routes "
                    "may share edges. The number of paths into v is the sum of the numbers of paths into "
                    "each parent of v."
                )
            else:
                hint = (
                    "the number of paths from src to v is the sum, over the parents u of v, of the "
                    "number of paths from src to u (and there is exactly 1 path from src to itself)."
                )
            raise CheckFailure(
                f"count_paths(edges, {src!r}, {dst!r}) on {g.describe()} returned {got:g}, expected "
                f"{expected} (seed {seed}).\nEdges: {sorted(g.edges)}\nHint: {hint}"
            )


def exact_sum_over_paths(sum_over_paths: Callable, rng: np.random.Generator, seed: int) -> None:
    """Sum over paths of products of edge derivatives, against (I - A)^-1 on random DAGs."""
    for layers in (2, 3, 5):
        g = random_graph(rng, layers)
        T = _trusted.total_derivatives(g.edges, g.nodes)
        scale = _trusted.total_derivatives(g.edges, g.nodes, absolute=True)
        counts = _trusted.path_counts(g.edges, g.nodes)
        index = {n: i for i, n in enumerate(g.nodes)}
        for src, dst in path_cases(rng, g):
            i, j = index[src], index[dst]
            expected = float(T[i, j])
            with quiet():
                got = as_number(sum_over_paths(dict(g.edges), src, dst), "sum_over_paths")
            if abs(got - expected) <= 1e-10 * max(1.0, float(scale[i, j])):
                continue
            if expected == 0.0:
                hint = "when no path leads from src to dst the derivative is 0."
            elif got == counts[i, j]:
                hint = (
                    "you returned the number of paths. Multiply the edge derivatives along each path and "
                    "add up the products."
                )
            elif abs(got - _trusted.additive_paths(g.edges, g.nodes, src, dst)) <= 1e-9 * max(1, abs(got)):
                hint = (
                    "you ADD the derivatives along a path. The chain rule MULTIPLIES them along a path "
                    "and adds over paths."
                )
            else:
                hint = (
                    "d dst/d src = sum over all paths from src to dst of the product of the edge "
                    "derivatives along the path."
                )
            raise CheckFailure(
                f"sum_over_paths(edges, {src!r}, {dst!r}) on {g.describe()} returned {got!r}, expected "
                f"{expected!r} (seed {seed}).\nEdges: {g.edges}\nHint: {hint}"
            )


FALLBACK_NOTE = (
    "(Without the grader's exact answers, this check tests each node against your own values at its "
    "{kin}, so the first node reported may sit downstream of the real slip.)"
)


def parents_of(g: Graph) -> dict[Hashable, list[Edge]]:
    """node -> the edges coming into it (the graph's own structure, not an answer)."""
    into: dict[Hashable, list[Edge]] = {n: [] for n in g.nodes}
    for u, v in g.edges:
        into[v].append((u, v))
    return into


def consistent_paths(student: Callable, name: str, g: Graph, seed: int, multiply: bool) -> None:
    """Without the exact answers: check student(edges, src, v) for every node v against the student's own
    values at v's parents. Paths into v end with one edge from a parent, so count(v) = sum of count(u) over
    parents u and, with products, sum(v) = sum of sum(u) * d(u, v); the empty path gives 1 at src itself.
    By induction over the graph this pins every value down without computing any of them here."""
    into = parents_of(g)
    got: dict[Hashable, float] = {}
    for v in g.nodes:
        with quiet():
            got[v] = as_number(student(dict(g.edges), g.src, v), name)
    for v in g.nodes:
        if v == g.src:
            expected, bound = 1.0, 1.0
        else:
            terms = [got[u] * (g.edges[(u, v)] if multiply else 1.0) for (u, v) in into[v]]
            expected, bound = float(sum(terms)), float(sum(abs(t) for t in terms))
        if abs(got[v] - expected) <= 1e-10 * max(1.0, bound):
            continue
        what = "derivative" if multiply else "number of paths"
        if v == g.src:
            hint = f"from a node to itself there is exactly one path, the empty one: {name}(edges, v, v) = 1."
        elif multiply:
            hint = (
                "d v/d src = sum over all paths from src to v of the PRODUCT of the edge derivatives along "
                "the path: MULTIPLY along a path, ADD over paths. Every path into v ends with one edge "
                "(u, v), so the value for v is the sum over the parents u of v of (value for u) * "
                "edges[(u, v)]."
            )
        else:
            hint = (
                "the number of paths from src to v is the sum, over the parents u of v, of the number of "
                "paths from src to u (and there is exactly 1 path from src to itself): count whole routes, "
                "not edges, and add the routes of all parents, do not take the largest."
            )
        parents = {u: got[u] for (u, _) in into[v]}
        raise CheckFailure(
            f"{name}(edges, {g.src!r}, {v!r}) on {g.describe()} returned {got[v]:g}, but with your own "
            f"values for the parents of {v!r} ({parents}) the {what} should be {expected:g} (seed {seed}).\n"
            f"Edges: {g.edges}\nHint: {hint}\n" + FALLBACK_NOTE.format(kin="parents")
        )


def check_count_paths(count_paths: Callable, *, seed: int | None = None) -> None:
    """Exact path counts on random DAGs, from src to every node (some have no path from src)."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    if _trusted is not None:
        exact_count_paths(count_paths, rng, seed)
        return
    for layers in (2, 4, 6):
        consistent_paths(count_paths, "count_paths", random_graph(rng, layers), seed, multiply=False)


def check_sum_over_paths(sum_over_paths: Callable, *, seed: int | None = None) -> None:
    """Sum over paths of products of edge derivatives on random DAGs, from src to every node."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    if _trusted is not None:
        exact_sum_over_paths(sum_over_paths, rng, seed)
        return
    for layers in (2, 3, 5):
        consistent_paths(sum_over_paths, "sum_over_paths", random_graph(rng, layers), seed, multiply=True)


def sweep_hint(node: Hashable, start: Hashable, forward: bool, *, one_of_several: bool) -> str:
    """What to fix when a forward/reverse sweep got `node` wrong; `one_of_several`: the value is one
    parent's (child's) contribution alone, the overwrite-instead-of-add slip."""
    kin, kins = ("parent", "parents") if forward else ("child", "children")
    order = "topological order" if forward else "REVERSE topological order"
    if node == start:
        return f"the derivative of {start!r} with respect to itself is 1: start the sweep from 1.0."
    if one_of_several:
        return (
            f"{node!r} has several {kins}, and your value is the contribution of only ONE of them. Add up "
            f"one contribution per {kin} (+=, not =), and use a {kin} only once it is finished: visit the "
            f"nodes in {order}, not in the order the edges happen to be stored."
        )
    if forward:
        rule = "d v/d src = sum over the parents u of v of (d u/d src) * edges[(u, v)]"
    else:
        rule = "d dst/d u = sum over the children v of u of edges[(u, v)] * (d dst/d v)"
    return (
        f"{rule}, one contribution per {kin} added up with +=. Each {kin} must be finished before "
        f"{'v' if forward else 'u'} is computed: visit the nodes in {order} (every node after all of its "
        f"{kins}), not in the order the edges happen to be stored."
    )


def consistent_sweep(result: dict, name: str, g: Graph, seed: int, call: str) -> None:
    """Without the exact answers: every node's derivative against the student's own values next to it.

    forward: d v/d src = sum over the edges (u, v) into v of (d u/d src) * d(u, v), and 1 at src;
    reverse: d dst/d u = sum over the edges (u, v) out of u of d(u, v) * (d dst/d v), and 1 at dst."""
    forward = name == "forward_mode"
    start = g.src if forward else g.dst
    links: dict[Hashable, list[Edge]] = {n: [] for n in g.nodes}
    for u, v in g.edges:
        links[v if forward else u].append((u, v))
    got = {n: as_number(result[n], f"{name}(...)[{n!r}]") for n in g.nodes}
    for node in g.nodes if forward else reversed(g.nodes):  # built level by level: a topological order
        if node == start:
            expected, terms = 1.0, [1.0]
        else:
            terms = [got[u] * float(g.edges[(u, v)]) if forward else float(g.edges[(u, v)]) * got[v]
                     for (u, v) in links[node]]
            expected = float(sum(terms))
        if abs(got[node] - expected) <= 1e-10 * max(1.0, sum(abs(t) for t in terms)):
            continue
        kins = "parents" if forward else "children"
        one_of_several = len(terms) > 1 and any(abs(got[node] - t) <= 1e-9 * max(1.0, abs(t)) for t in terms)
        hint = sweep_hint(node, start, forward, one_of_several=one_of_several)
        neighbours = {(u if forward else v): got[u if forward else v] for (u, v) in links[node]}
        raise CheckFailure(
            f"{call}: the derivative for node {node!r} is {got[node]!r}, but with your own values at its "
            f"{kins} ({neighbours}) it should be {expected!r} (seed {seed}).\nEdges: {g.edges}\n"
            f"Hint: {hint}\n" + FALLBACK_NOTE.format(kin=kins)
        )


# ---------------------------------------------------------------------------------------------------------
# forward_mode and reverse_mode
# ---------------------------------------------------------------------------------------------------------


def overwritten(
    g: Graph, nodes: list[Hashable], T: np.ndarray, k: int, node: Hashable, got: float, forward: bool
) -> bool:
    """Whether `got` is one edge's contribution alone, where the node should add up several."""
    index = {n: i for i, n in enumerate(nodes)}
    if forward:
        terms = [T[k, index[u]] * d for (u, v), d in g.edges.items() if v == node]
    else:
        terms = [d * T[index[v], k] for (u, v), d in g.edges.items() if u == node]
    terms = [float(t) for t in terms if t != 0.0]
    return len(terms) > 1 and any(abs(got - t) <= 1e-9 * max(1.0, abs(t)) for t in terms)


def sweep_case(student: Callable, name: str, g: Graph, seed: int) -> None:
    """Run forward_mode(edges, src) or reverse_mode(edges, dst) once and check values and edge visits."""
    forward = name == "forward_mode"
    start = g.src if forward else g.dst
    counting = CountingEdges(g.edges)
    with quiet():
        result = student(counting, start)
    problem = visit_problem(counting, name, g.edges)
    call = f"{name}(edges, {start!r}) on {g.describe()}"
    if problem:
        raise CheckFailure(f"{call}: {problem} (seed {seed})")
    if not isinstance(result, dict):
        raise CheckFailure(
            f"{call} returned a {type(result).__name__}; it should return a dict mapping every node to "
            f"its derivative."
        )
    missing = [n for n in g.nodes if n not in result]
    if missing:
        raise CheckFailure(
            f"{call}: the result has no entry for node(s) {missing} (seed {seed}).\n"
            f"Hint: return a derivative for EVERY node that appears in an edge; nodes that "
            f"{'cannot be reached from src' if forward else 'cannot reach dst'} get 0.0."
        )
    if _trusted is None:
        consistent_sweep(result, name, g, seed, call)
        return
    nodes = g.nodes
    T = _trusted.total_derivatives(g.edges, nodes)
    scale = _trusted.total_derivatives(g.edges, nodes, absolute=True)
    k = nodes.index(start)
    # Report the wrong node the sweep reaches first (its inputs are then known to be right): order by the
    # number of ancestors (forward) or descendants (reverse), which is a topological order.
    reach = _trusted.path_counts(g.edges, nodes) > 0
    depth = reach.sum(axis=0) if forward else reach.sum(axis=1)
    order = sorted(range(len(nodes)), key=lambda i: (i != k, int(depth[i])))
    for i in order:
        node = nodes[i]
        expected = float(T[k, i] if forward else T[i, k])
        got = as_number(result[node], f"{name}(...)[{node!r}]")
        tol = 1e-10 * max(1.0, float(scale[k, i] if forward else scale[i, k]))
        if abs(got - expected) <= tol:
            continue
        if node != start and expected == 0.0:
            hint = (
                f"{node!r} {'cannot be reached from' if forward else 'cannot reach'} {start!r}, so its "
                f"derivative is 0."
            )
        else:
            hint = sweep_hint(node, start, forward,
                              one_of_several=overwritten(g, nodes, T, k, node, got, forward))
        raise CheckFailure(
            f"{call}: the derivative for node {node!r} is {got!r}, expected {expected!r} (seed {seed}).\n"
            f"Edges: {g.edges}\nHint: {hint}"
        )


def check_forward_mode(forward_mode: Callable, *, seed: int | None = None) -> None:
    """d node/d src for every node of random DAGs, each edge visited once."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for layers in (1, 3, 6):
        sweep_case(forward_mode, "forward_mode", random_graph(rng, layers), seed)
    sweep_case(forward_mode, "forward_mode", layered_graph(rng, 12, 3), seed)  # 3**12 paths


def check_reverse_mode(reverse_mode: Callable, *, seed: int | None = None) -> None:
    """d dst/d node for every node of random DAGs, each edge visited once."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for layers in (1, 3, 6):
        sweep_case(reverse_mode, "reverse_mode", random_graph(rng, layers), seed)
    sweep_case(reverse_mode, "reverse_mode", layered_graph(rng, 12, 3), seed)


# ---------------------------------------------------------------------------------------------------------
# Dual numbers
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DualOp:
    """One operation: how to apply it to Duals, the same operation on plain floats, and its rule (a hint).

    The expected derivative is not written here (this module is shipped to students): it is measured from
    `plain` by finite differences along the direction (da, db), see `directional_derivative`."""

    text: str
    apply: Callable
    plain: Callable[[float, float, float], float]
    rule: str


DUAL_OPS = [
    DualOp(
        "x + y",
        lambda x, y, c: x + y,
        lambda a, b, c: a + b,
        "(x + y)' = x' + y'",
    ),
    DualOp(
        "x + c",
        lambda x, y, c: x + c,
        lambda a, b, c: a + c,
        "a constant has derivative 0, so (x + c)' = x'",
    ),
    DualOp(
        "c + x",
        lambda x, y, c: c + x,
        lambda a, b, c: c + a,
        "a number on the left calls x.__radd__(c)",
    ),
    DualOp(
        "x - y",
        lambda x, y, c: x - y,
        lambda a, b, c: a - b,
        "(x - y)' = x' - y'",
    ),
    DualOp(
        "x - c",
        lambda x, y, c: x - c,
        lambda a, b, c: a - c,
        "(x - c)' = x'",
    ),
    DualOp(
        "c - x",
        lambda x, y, c: c - x,
        lambda a, b, c: c - a,
        "c - x calls x.__rsub__(c): value c - x, derivative -x' (not x - c)",
    ),
    DualOp(
        "-x",
        lambda x, y, c: -x,
        lambda a, b, c: -a,
        "(-x)' = -x' (define __neg__)",
    ),
    DualOp(
        "x * y",
        lambda x, y, c: x * y,
        lambda a, b, c: a * b,
        "product rule: (x y)' = x' y + x y'",
    ),
    DualOp(
        "x * c",
        lambda x, y, c: x * c,
        lambda a, b, c: a * c,
        "(c x)' = c x'",
    ),
    DualOp(
        "c * x",
        lambda x, y, c: c * x,
        lambda a, b, c: c * a,
        "a number on the left calls x.__rmul__(c)",
    ),
    DualOp(
        "x / y",
        lambda x, y, c: x / y,
        lambda a, b, c: a / b,
        "quotient rule: (x / y)' = (x' y - x y') / y^2",
    ),
    DualOp(
        "x / c",
        lambda x, y, c: x / c,
        lambda a, b, c: a / c,
        "(x / c)' = x' / c",
    ),
    DualOp(
        "c / x",
        lambda x, y, c: c / x,
        lambda a, b, c: c / a,
        "c / x calls x.__rtruediv__(c): (c / x)' = -c x' / x^2",
    ),
    DualOp(
        "x ** c",
        lambda x, y, c: x**c,
        lambda a, b, c: a**c,
        "(x^c)' = c x^(c-1) x'",
    ),
    DualOp(
        "x.exp()",
        lambda x, y, c: x.exp(),
        lambda a, b, c: math.exp(a),
        "(e^x)' = e^x x'",
    ),
    DualOp(
        "x.log()",
        lambda x, y, c: x.log(),
        lambda a, b, c: math.log(a),
        "(log x)' = x' / x",
    ),
    DualOp(
        "x.sin()",
        lambda x, y, c: x.sin(),
        lambda a, b, c: math.sin(a),
        "(sin x)' = cos(x) x'",
    ),
    DualOp(
        "x.cos()",
        lambda x, y, c: x.cos(),
        lambda a, b, c: math.cos(a),
        "(cos x)' = -sin(x) x' (note the minus sign)",
    ),
]


def directional_derivative(op: DualOp, a: float, da: float, b: float, db: float, c: float) -> float:
    """d/dt op.plain(a + t da, b + t db, c) at t = 0, by a five-point stencil (error ~ h^4, rounding ~ eps/h).

    That is what x' = da and y' = db must produce; the step 1e-4 keeps both errors near 1e-11."""
    h = 1e-4

    def along(t: float) -> float:
        return float(op.plain(a + t * da, b + t * db, c))

    return (along(-2 * h) - 8 * along(-h) + 8 * along(h) - along(2 * h)) / (12 * h)


def dual_parts(result: object, what: str) -> tuple[float, float]:
    """(value, deriv) of a student's Dual result, or a message saying what came back instead."""
    if not (hasattr(result, "value") and hasattr(result, "deriv")):
        raise CheckFailure(
            f"{what} returned {result!r} ({type(result).__name__}), not a Dual with .value and .deriv. Every "
            f"operation must return a NEW Dual (return Dual(value, deriv))."
        )
    return as_number(result.value, f"({what}).value"), as_number(result.deriv, f"({what}).deriv")


def check_dual_op(
    Dual: type, op: DualOp, a: float, da: float, b: float, db: float, c: float, seed: int
) -> None:
    """One operation at one point; the message names the operation and its rule."""
    x, y = Dual(a, da), Dual(b, db)
    what = f"{op.text} with x = Dual({a!r}, {da!r}), y = Dual({b!r}, {db!r}), c = {c!r}"
    with quiet():
        try:
            result = op.apply(x, y, c)
        except Exception as exc:  # noqa: BLE001 - the student's exception is reported with a hint
            if isinstance(exc, AttributeError) and "c" in op.text:
                advice = (
                    "the other operand may be a plain number c, which has no .value or .deriv: treat it as "
                    "Dual(c, 0.0) first."
                )
            elif isinstance(exc, (AttributeError, TypeError)):
                advice = (
                    "a number on the left of an operator calls the reflected method (__radd__, __rsub__, "
                    "__rmul__, __rtruediv__) of the Dual on the right; unary minus calls __neg__."
                )
            else:
                advice = "compute the value with the ordinary float operation, the derivative by the rule."
            raise CheckFailure(
                f"{what} raised {type(exc).__name__}: {exc} (seed {seed}).\n"
                f"Hint: implement this operation ({op.rule}); {advice}"
            ) from None
    value, deriv = dual_parts(result, what)
    if (x.value, x.deriv, y.value, y.deriv) != (a, da, b, db):
        raise CheckFailure(f"{what} changed x or y. Operations must not modify their inputs (seed {seed}).")
    want_value, want_deriv = op.plain(a, b, c), directional_derivative(op, a, da, b, db, c)
    if not abs(value - want_value) <= 1e-12 * max(1.0, abs(want_value)):
        hint = f"the value part is just the ordinary result of {op.text} on the values."
        swapped = {"c - x": a - c, "c / x": a / c}.get(op.text)
        if swapped is not None and abs(value - swapped) <= 1e-12 * max(1.0, abs(swapped)):
            hint = f"you computed {op.text[::-1]} instead: {op.rule}."
        raise CheckFailure(f"{what}: value {value!r}, expected {want_value!r} (seed {seed}).\nHint: {hint}")
    if abs(deriv - want_deriv) <= 1e-8 * max(1.0, abs(want_deriv)):
        return
    unit = directional_derivative(op, a, 1.0, b, 1.0, c)
    hint = op.rule
    if "x" in op.text and abs(deriv - unit) <= 1e-8 * max(1.0, abs(unit)) and (da, db) != (1.0, 1.0):
        hint += (
            ". Your result is what this gives when x' = 1: multiply by the derivative the input carries "
            "(x.deriv), that is the chain rule."
        )
    raise CheckFailure(f"{what}: deriv {deriv!r}, expected {want_deriv!r} (seed {seed}).\nHint: {hint}")


def composite_functions(rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    """Random compositions of all the operations: (description, float version, Dual version)."""
    p, q, r = (float(v) for v in rng.uniform(0.5, 2.0, size=3))

    def f1(t: object, exp: Callable, log: Callable, sin: Callable, cos: Callable) -> object:
        return ((sin(t * t + p) + 2) / (exp(t) + q)) ** 1.5 * 2 - r / (1 + t * t)

    def f2(t: object, exp: Callable, log: Callable, sin: Callable, cos: Callable) -> object:
        u = log(t * t + q)
        return cos(u * t - p) * u + exp(-t / r) - 3 * t

    def f3(t: object, exp: Callable, log: Callable, sin: Callable, cos: Callable) -> object:
        return (p - t) * (t + q) / (r + t * t) + sin(2 * t) * cos(t)

    def floats(fn: Callable) -> Callable:
        return lambda t: fn(t, math.exp, math.log, math.sin, math.cos)

    def duals(fn: Callable) -> Callable:
        return lambda t: fn(t, lambda z: z.exp(), lambda z: z.log(), lambda z: z.sin(), lambda z: z.cos())

    texts = [
        f"((sin(t*t + {p:.3g}) + 2) / (exp(t) + {q:.3g}))**1.5 * 2 - {r:.3g} / (1 + t*t)",
        f"cos(log(t*t + {q:.3g}) * t - {p:.3g}) * log(t*t + {q:.3g}) + exp(-t / {r:.3g}) - 3*t",
        f"({p:.3g} - t) * (t + {q:.3g}) / ({r:.3g} + t*t) + sin(2t) cos(t)",
    ]
    return [(texts[i], floats(fn), duals(fn)) for i, fn in enumerate((f1, f2, f3))]


def check_dual(Dual: type, *, seed: int | None = None) -> None:
    """Every operation with random values and random (not 1) input derivatives, then compositions against
    finite differences of the same function in plain floats."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for op in DUAL_OPS:
        a = float(rng.uniform(0.5, 2.0))  # positive: log and x ** c
        b = float(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
        da, db = (float(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])) for _ in range(2))
        c = float(rng.uniform(1.2, 3.0))
        check_dual_op(Dual, op, a, da, b, db, c, seed)
    for text, f, fd in composite_functions(rng):
        t = float(rng.uniform(0.3, 1.2))
        with quiet():
            got = fd(Dual(t, 1.0))
        value, _ = dual_parts(got, f"f(Dual({t}, 1.0)) for f(t) = {text}")
        if not abs(value - f(t)) <= 1e-12 * max(1.0, abs(f(t))):
            raise CheckFailure(
                f"f(Dual({t}, 1.0)).value = {value!r} but f({t}) = {f(t)!r} for f(t) = {text}."
            )
        def by_dual(s: float, fd: Callable = fd) -> object:
            return fd(Dual(s, 1.0)).deriv

        by_dual.__name__ = f"f(Dual(t, 1.0)).deriv for f(t) = {text},"
        with quiet():
            check_derivative(f, by_dual, t, seed=int(rng.integers(2**62)))


# ---------------------------------------------------------------------------------------------------------
# The adjoint trace of f(x1, x2) = log(x1) + x1*x2 - sin(x2) at (2, 5)
# ---------------------------------------------------------------------------------------------------------

TRACE_NAMES = ["v-1", "v0", "v1", "v2", "v3", "v4", "v5"]

# statement: name -> (text, inputs, the statement on plain floats). The local partial derivatives are
# measured from the statements by finite differences at the primal values, not written out: they are the
# exercise.
TRACE: dict[str, tuple[str, tuple[str, ...], Callable[..., float]]] = {
    "v1": ("v1 = log(v-1)", ("v-1",), math.log),
    "v2": ("v2 = v-1 * v0", ("v-1", "v0"), lambda p, q: p * q),
    "v3": ("v3 = sin(v0)", ("v0",), math.sin),
    "v4": ("v4 = v1 + v2", ("v1", "v2"), lambda p, q: p + q),
    "v5": ("v5 = v4 - v3", ("v4", "v3"), lambda p, q: p - q),
}


def primal_trace(x1: float = 2.0, x2: float = 5.0) -> dict[str, float]:
    """The forward (primal) sweep: every intermediate value, statement by statement."""
    v = {"v-1": x1, "v0": x2}
    for out, (_, inputs, fn) in TRACE.items():
        v[out] = fn(*(v[name] for name in inputs))
    return v


def local_partial(v: dict[str, float], out: str, inp: str) -> float:
    """d out / d inp for one statement of the trace at the primal values, by a five-point stencil."""
    _, inputs, fn = TRACE[out]
    h = 1e-4

    def moved(t: float) -> float:
        return fn(*(v[name] + (t if name == inp else 0.0) for name in inputs))

    return (moved(-2 * h) - 8 * moved(-h) + 8 * moved(h) - moved(2 * h)) / (12 * h)


def adjoint_values(adjoints: object) -> dict[str, float]:
    """The student's seven numbers as floats, or a message saying what is missing."""
    if not isinstance(adjoints, dict):
        raise CheckFailure(
            f"adjoints should be a dict like {{'v5': 1.0, ...}}, not a {type(adjoints).__name__}."
        )
    missing = [k for k in TRACE_NAMES if k not in adjoints]
    if missing:
        raise CheckFailure(f"adjoints has no entry for {missing}. Fill in all of {TRACE_NAMES}.")
    extra = [k for k in adjoints if k not in TRACE_NAMES]
    if extra:
        raise CheckFailure(f"adjoints has unexpected keys {extra}; use exactly {TRACE_NAMES}.")
    unfilled = [k for k in TRACE_NAMES if adjoints[k] is None]
    if unfilled:
        names = ", ".join(reversed(unfilled))
        raise CheckFailure(f"Still None in adjoints: {names}. Replace each None by the value you computed.")
    for k in TRACE_NAMES:
        if isinstance(adjoints[k], (str, bool)) or not isinstance(adjoints[k], numbers.Real):
            raise CheckFailure(
                f"adjoints[{k!r}] is {adjoints[k]!r} ({type(adjoints[k]).__name__}); enter a number or an "
                f"expression that computes one, such as 0.5 * math.sin(2), without quotes."
            )
    return {k: as_number(adjoints[k], f"adjoints[{k!r}]") for k in TRACE_NAMES}


def check_adjoint_trace(adjoints: object) -> None:
    """Complete, seeded with v5bar = 1, and every entry consistent with the entries it depends on.

    Each adjoint must equal the sum, over the statements that USE the variable, of (that statement's
    adjoint) x (its local derivative), computed here from the primal values. This checks every step of the
    reverse sweep against the student's own later values, so one slip is reported where it happens.
    """
    got = adjoint_values(adjoints)
    if got["v5"] != 1.0:
        raise CheckFailure(
            f"adjoints['v5'] = {got['v5']!r}. The reverse sweep starts from the output: v5bar = dy/dv5 = 1."
        )
    v = primal_trace()
    for name in reversed(TRACE_NAMES[:-1]):  # v4, v3, ..., v-1: in the order the sweep fills them
        users = [out for out, (_, inputs, _fn) in TRACE.items() if name in inputs]
        terms = [got[out] * local_partial(v, out, name) for out in users]
        expected = sum(terms)
        if abs(got[name] - expected) <= 1e-6 * max(1.0, abs(expected)):
            continue
        statements = " and ".join(TRACE[out][0] for out in users)
        hint = (
            f"{name} is used by {statements}, so {name}bar = "
            + " + ".join(f"{out}bar * d{out}/d{name}" for out in users)
            + "."
        )
        if len(users) > 1 and any(abs(got[name] - t) <= 1e-6 * max(1.0, abs(t)) for t in terms):
            hint += " Your value is only ONE of these contributions: add the other one (the += line)."
        raise CheckFailure(
            f"adjoints[{name!r}] = {got[name]!r} does not follow from your later adjoints: with your values "
            f"of {', '.join(users)} it should be {expected!r}.\nHint: {hint}"
        )
