"""Visible checks for lesson 02 (the chain rule on graphs).

Graph exercises are checked on random layered DAGs with random edge derivatives, node names whose sorted
order has nothing to do with the graph, and edges stored in shuffled order. The expected answers come from
linear algebra, independently of any path or sweep: with A[u, v] = dv/du, the matrix of all total
derivatives is (I - A)^-1 = I + A + A^2 + ..., and the path counts are the same series for the 0/1
adjacency matrix. "Visits each edge once" is measured, not assumed: the edges are handed over in a dict
that counts reads of each value, and each value is a float that counts the arithmetic done with it.
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from autograder.checks import CheckFailure, check_derivative, quiet

__all__ = [
    "check_count_paths",
    "check_sum_over_paths",
    "check_forward_mode",
    "check_reverse_mode",
    "check_dual",
    "check_adjoint_trace",
]

Edge = tuple[Hashable, Hashable]


def new_seed(seed: int | None) -> int:
    """A fresh seed from the OS unless the caller pins one (so failures can be reproduced)."""
    return secrets.randbits(63) if seed is None else int(seed)


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
    counts = path_counts(g.edges, g.nodes)
    index = {n: i for i, n in enumerate(g.nodes)}
    reachable = [(u, v) for u in g.nodes for v in g.nodes if u != v and counts[index[u], index[v]] > 0]
    unreachable = [(u, v) for u in g.nodes for v in g.nodes if u != v and counts[index[u], index[v]] == 0]
    cases = [(g.src, g.dst), reachable[int(rng.integers(len(reachable)))]]
    cases.append(unreachable[int(rng.integers(len(unreachable)))])
    return cases


def check_count_paths(count_paths: Callable, *, seed: int | None = None) -> None:
    """Exact path counts on random DAGs (including a pair with no path), compared with matrix powers."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for layers in (2, 4, 6):
        g = random_graph(rng, layers)
        counts = path_counts(g.edges, g.nodes)
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


def check_sum_over_paths(sum_over_paths: Callable, *, seed: int | None = None) -> None:
    """Sum over paths of products of edge derivatives, against (I - A)^-1 on random DAGs."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    for layers in (2, 3, 5):
        g = random_graph(rng, layers)
        T = total_derivatives(g.edges, g.nodes)
        scale = total_derivatives(g.edges, g.nodes, absolute=True)
        counts = path_counts(g.edges, g.nodes)
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
            elif abs(got - additive_paths(g.edges, g.nodes, src, dst)) <= 1e-9 * max(1.0, abs(got)):
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
    nodes = g.nodes
    T = total_derivatives(g.edges, nodes)
    scale = total_derivatives(g.edges, nodes, absolute=True)
    k = nodes.index(start)
    # Report the wrong node the sweep reaches first (its inputs are then known to be right): order by the
    # number of ancestors (forward) or descendants (reverse), which is a topological order.
    reach = path_counts(g.edges, nodes) > 0
    depth = reach.sum(axis=0) if forward else reach.sum(axis=1)
    order = sorted(range(len(nodes)), key=lambda i: (i != k, int(depth[i])))
    for i in order:
        node = nodes[i]
        expected = float(T[k, i] if forward else T[i, k])
        got = as_number(result[node], f"{name}(...)[{node!r}]")
        tol = 1e-10 * max(1.0, float(scale[k, i] if forward else scale[i, k]))
        if abs(got - expected) <= tol:
            continue
        if node == start:
            hint = f"the derivative of {start!r} with respect to itself is 1: start the sweep from 1.0."
        elif expected == 0.0:
            hint = (
                f"{node!r} {'cannot be reached from' if forward else 'cannot reach'} {start!r}, so its "
                f"derivative is 0."
            )
        elif overwritten(g, nodes, T, k, node, got, forward):
            kin = "parent" if forward else "child"
            hint = (
                f"{node!r} has several {'parents' if forward else 'children'}, and your value is the "
                f"contribution of only ONE of them. Add up one contribution per {kin} (+=, not =), and use "
                f"a {kin} only once it is finished: visit the nodes in "
                f"{'topological order' if forward else 'REVERSE topological order'}, not in the order the "
                f"edges happen to be stored."
            )
        elif forward:
            hint = (
                "d v/d src = sum over the parents u of v of (d u/d src) * edges[(u, v)], one contribution "
                "per parent added up with +=. Each parent must be finished before v is computed: visit the "
                "nodes in topological order (every node after all of its parents), not in the order the "
                "edges happen to be stored."
            )
        else:
            hint = (
                "d dst/d u = sum over the children v of u of edges[(u, v)] * (d dst/d v), one contribution "
                "per child added up with +=. Each child must be finished before u is computed: visit the "
                "nodes in REVERSE topological order (every node after all of its children), not in the "
                "order the edges happen to be stored."
            )
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
    """One operation: how to apply it, and its value and derivative for x = a + da eps, y = b + db eps."""

    text: str
    apply: Callable
    value: Callable[[float, float, float, float, float], float]
    deriv: Callable[[float, float, float, float, float], float]
    rule: str


DUAL_OPS = [
    DualOp(
        "x + y",
        lambda x, y, c: x + y,
        lambda a, da, b, db, c: a + b,
        lambda a, da, b, db, c: da + db,
        "(x + y)' = x' + y'",
    ),
    DualOp(
        "x + c",
        lambda x, y, c: x + c,
        lambda a, da, b, db, c: a + c,
        lambda a, da, b, db, c: da,
        "a constant has derivative 0, so (x + c)' = x'",
    ),
    DualOp(
        "c + x",
        lambda x, y, c: c + x,
        lambda a, da, b, db, c: c + a,
        lambda a, da, b, db, c: da,
        "a number on the left calls x.__radd__(c)",
    ),
    DualOp(
        "x - y",
        lambda x, y, c: x - y,
        lambda a, da, b, db, c: a - b,
        lambda a, da, b, db, c: da - db,
        "(x - y)' = x' - y'",
    ),
    DualOp(
        "x - c",
        lambda x, y, c: x - c,
        lambda a, da, b, db, c: a - c,
        lambda a, da, b, db, c: da,
        "(x - c)' = x'",
    ),
    DualOp(
        "c - x",
        lambda x, y, c: c - x,
        lambda a, da, b, db, c: c - a,
        lambda a, da, b, db, c: -da,
        "c - x calls x.__rsub__(c): value c - x, derivative -x' (not x - c)",
    ),
    DualOp(
        "-x",
        lambda x, y, c: -x,
        lambda a, da, b, db, c: -a,
        lambda a, da, b, db, c: -da,
        "(-x)' = -x' (define __neg__)",
    ),
    DualOp(
        "x * y",
        lambda x, y, c: x * y,
        lambda a, da, b, db, c: a * b,
        lambda a, da, b, db, c: da * b + a * db,
        "product rule: (x y)' = x' y + x y'",
    ),
    DualOp(
        "x * c",
        lambda x, y, c: x * c,
        lambda a, da, b, db, c: a * c,
        lambda a, da, b, db, c: da * c,
        "(c x)' = c x'",
    ),
    DualOp(
        "c * x",
        lambda x, y, c: c * x,
        lambda a, da, b, db, c: c * a,
        lambda a, da, b, db, c: c * da,
        "a number on the left calls x.__rmul__(c)",
    ),
    DualOp(
        "x / y",
        lambda x, y, c: x / y,
        lambda a, da, b, db, c: a / b,
        lambda a, da, b, db, c: (da * b - a * db) / b**2,
        "quotient rule: (x / y)' = (x' y - x y') / y^2",
    ),
    DualOp(
        "x / c",
        lambda x, y, c: x / c,
        lambda a, da, b, db, c: a / c,
        lambda a, da, b, db, c: da / c,
        "(x / c)' = x' / c",
    ),
    DualOp(
        "c / x",
        lambda x, y, c: c / x,
        lambda a, da, b, db, c: c / a,
        lambda a, da, b, db, c: -c * da / a**2,
        "c / x calls x.__rtruediv__(c): (c / x)' = -c x' / x^2",
    ),
    DualOp(
        "x ** c",
        lambda x, y, c: x**c,
        lambda a, da, b, db, c: a**c,
        lambda a, da, b, db, c: c * a ** (c - 1) * da,
        "(x^c)' = c x^(c-1) x'",
    ),
    DualOp(
        "x.exp()",
        lambda x, y, c: x.exp(),
        lambda a, da, b, db, c: math.exp(a),
        lambda a, da, b, db, c: math.exp(a) * da,
        "(e^x)' = e^x x'",
    ),
    DualOp(
        "x.log()",
        lambda x, y, c: x.log(),
        lambda a, da, b, db, c: math.log(a),
        lambda a, da, b, db, c: da / a,
        "(log x)' = x' / x",
    ),
    DualOp(
        "x.sin()",
        lambda x, y, c: x.sin(),
        lambda a, da, b, db, c: math.sin(a),
        lambda a, da, b, db, c: math.cos(a) * da,
        "(sin x)' = cos(x) x'",
    ),
    DualOp(
        "x.cos()",
        lambda x, y, c: x.cos(),
        lambda a, da, b, db, c: math.cos(a),
        lambda a, da, b, db, c: -math.sin(a) * da,
        "(cos x)' = -sin(x) x' (note the minus sign)",
    ),
]


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
    want_value, want_deriv = op.value(a, da, b, db, c), op.deriv(a, da, b, db, c)
    if not abs(value - want_value) <= 1e-12 * max(1.0, abs(want_value)):
        hint = f"the value part is just the ordinary result of {op.text} on the values."
        swapped = {"c - x": a - c, "c / x": a / c}.get(op.text)
        if swapped is not None and abs(value - swapped) <= 1e-12 * max(1.0, abs(swapped)):
            hint = f"you computed {op.text[::-1]} instead: {op.rule}."
        raise CheckFailure(f"{what}: value {value!r}, expected {want_value!r} (seed {seed}).\nHint: {hint}")
    if abs(deriv - want_deriv) <= 1e-10 * max(1.0, abs(want_deriv)):
        return
    unit = op.deriv(a, 1.0, b, 1.0, c)
    hint = op.rule
    if "x" in op.text and abs(deriv - unit) <= 1e-10 * max(1.0, abs(unit)) and (da, db) != (1.0, 1.0):
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

# statement: name -> (text, inputs); the local partial derivatives are computed from the primal values.
TRACE = {
    "v1": ("v1 = log(v-1)", ("v-1",)),
    "v2": ("v2 = v-1 * v0", ("v-1", "v0")),
    "v3": ("v3 = sin(v0)", ("v0",)),
    "v4": ("v4 = v1 + v2", ("v1", "v2")),
    "v5": ("v5 = v4 - v3", ("v4", "v3")),
}


def primal_trace(x1: float = 2.0, x2: float = 5.0) -> dict[str, float]:
    """The forward (primal) sweep: every intermediate value."""
    v = {"v-1": x1, "v0": x2}
    v["v1"] = math.log(v["v-1"])
    v["v2"] = v["v-1"] * v["v0"]
    v["v3"] = math.sin(v["v0"])
    v["v4"] = v["v1"] + v["v2"]
    v["v5"] = v["v4"] - v["v3"]
    return v


def local_partial(v: dict[str, float], out: str, inp: str) -> float:
    """d out / d inp for one statement of the trace, at the primal values."""
    if out == "v1":
        return 1.0 / v["v-1"]
    if out == "v2":
        return v["v0"] if inp == "v-1" else v["v-1"]
    if out == "v3":
        return math.cos(v["v0"])
    if out == "v4":
        return 1.0
    return 1.0 if inp == "v4" else -1.0


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
        users = [out for out, (_, inputs) in TRACE.items() if name in inputs]
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
