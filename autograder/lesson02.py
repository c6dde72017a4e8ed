"""Visible checks for lesson 02 (the chain rule on graphs, and derivatives as expressions).

Graph exercises start on a few small graphs whose answers are counted by hand (so a failure can show the
whole graph in a few edges), then run on random layered DAGs with random edge derivatives, node names whose
sorted order has nothing to do with the graph, and edges stored in shuffled order. This module is shipped to
students, so it computes no answer: each node's value is checked against the student's own values at its
neighbours (paths into v end with one edge from a parent), which pins every value down by induction. A
wrong value is reported at the first node where it goes wrong, with that node's parents or children only,
never a dump of the whole graph. The hidden checks compare the same values with exact answers from the
course's reference implementation (`sweep_case` and `graph_path_case` take them as `exact`).

"Visits each edge once" is measured, not assumed, in two ways: the edges come in a dict that counts reads
of each value, each value is a float that counts the arithmetic done with it, and the Python steps (lines
and calls of the student's code) are counted against a budget proportional to the size of the graph, so a
sweep that copies the edges into plain floats and then follows paths is caught by the work it does, not by
a timeout. Dual numbers are checked against finite differences of the same operation on floats, the
adjoint trace against local partial derivatives measured the same way (its messages show the rule and the
student's own numbers, never the value a cell should hold), and symbolic derivatives by evaluating the
student's derivative expression against finite differences of the expression (exactly, for polynomials at
half-integer points, where a five-point difference is exact).

When a notebook is graded these checks run in the grader, and the student's objects live in the kernel.
What must watch the student's code from inside (the counting edges, the step budget, the expression
classes, a Dual operation that raises) is done by the probes below (`sweep_probe`, `edges_calls`,
`expression_kinds`, `differentiate`, `dual_op_probe`, `dual_composite_probe`): module-level functions that
run where the student's objects are and return plain observations, judged here. Test expressions are
plain nested tuples on the checks' side, ("Mul", ("Var", "x"), ("Const", 2.0)), built into the student's
classes by the probe that calls `diff`, whose answer comes back as a table of nodes.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

import numpy as np

from autograder.checks import (
    CheckFailure,
    NotDone,
    as_real,
    call_student,
    check_derivative,
    close,
    in_kernel,
    new_seed,
    passed,
    quiet,
    repeatable,
    student_function,
)

__all__ = [
    "check_count_paths",
    "check_sum_over_paths",
    "check_forward_mode",
    "check_reverse_mode",
    "check_dual",
    "check_adjoint_trace",
    "check_diff",
    "call_with_step_limit",
    "StepLimitExceeded",
    "PATH_STEPS",
]

Edge = tuple[Hashable, Hashable]

# ---------------------------------------------------------------------------------------------------------
# Random graphs and their exact answers
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Graph:
    """A DAG: edges (u, v) -> dv/du in shuffled order, one source, one sink, plus stray nodes; `kind` says
    in messages what sort of graph it is."""

    edges: dict[Edge, float]
    src: Hashable
    dst: Hashable
    nodes: list[Hashable]
    kind: str = "a random graph"

    def describe(self) -> str:
        return f"{self.kind} with {len(self.nodes)} nodes and {len(self.edges)} edges"


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
    return Graph(edges, "src", "dst", [n for level in levels for n in level],
                 f"a graph of {layers} fully connected layers of {width} nodes")


def chain_graph(length: int) -> Graph:
    """A chain of `length` edges stored from its end back to its start: code that looks for the next ready
    node by scanning all remaining nodes (work ~ nodes**2) runs far past any sweep's budget here."""
    names = [f"k{i}" for i in range(length + 1)]
    edges = {(names[i], names[i + 1]): (-1.0) ** i * (0.95 + 0.05 * (i % 3)) for i in reversed(range(length))}
    return Graph(edges, names[0], names[-1], names, f"a chain of {length} edges")


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


def visit_problem(seen: dict, name: str) -> str | None:
    """Why the student's sweep did not visit each edge once (from `sweep_probe`'s observations), or None."""
    if seen["changed"]:
        return f"{name} changed the edges dictionary it was given. Read it; never modify it."
    uses, reads = Counter(seen["uses"]), Counter(seen["reads"])
    used = max(uses.values(), default=0)
    read = max(reads.values(), default=0)
    if used > 1:
        edge = uses.most_common(1)[0][0]
        return (
            f"{name} did arithmetic with the derivative of edge {edge} {used} times. A sweep uses each edge "
            f"exactly once: when a node's value is final, pass it along each of its edges once. (Listing "
            f"paths, or recursion without remembering finished nodes, repeats edges.)"
        )
    if read > 3:  # a few passes to build parent/child lists are fine; a scan of all edges per node is not
        edge = reads.most_common(1)[0][0]
        return (
            f"{name} read the derivative of edge {edge} {read} times. Build your lists of parents or "
            f"children from edges once; the sweep then needs each edge once: process the nodes in an order "
            f"where each node is finished before it is used, instead of scanning all edges for every node."
        )
    return None


def sweep_probe(student: Callable, edges: dict[Edge, float], start: Hashable, limit: int) -> dict:
    """Probe (runs where the student's code is): student(counting edges, start) within `limit` Python
    steps. Observations: the result (a plain dict when it is a dict, its counting floats made plain), its
    type, the steps taken, whether the budget ran out, each edge's reads and arithmetic uses, and whether
    the edges were changed. The student's exceptions propagate."""
    counting = CountingEdges(edges)
    result, steps, over = counting_steps(student, counting, start, limit=limit)
    kind = type(result).__name__
    if isinstance(result, dict):
        result = {key: float(value) if isinstance(value, CountedFloat) else value
                  for key, value in dict.items(result)}
    changed = dict(dict.items(counting)) != edges
    return {"result": result, "type": kind, "steps": steps, "over": over, "uses": dict(counting.uses),
            "reads": dict(counting.reads), "changed": changed}


class TooManySteps(BaseException):
    """Raised inside student code once its budget of Python steps is spent.

    A BaseException, so an `except Exception` in the student's code does not swallow it; and the budget is
    also recorded outside the student's reach, so swallowing it anyway changes nothing."""


def steps_budget(g: Graph) -> int:
    """Python steps a sweep may take: generous for any one-pass design, far below following paths."""
    return 40 * (len(g.edges) + len(g.nodes)) + 2000


def counting_steps(fn: Callable, *args: object, limit: int) -> tuple[object, int, bool]:
    """Call fn(*args), counting the lines and calls of Python it executes (this module's counting objects
    and the checker excluded); past `limit` it is stopped. Returns (result, steps, over_budget)."""
    steps = 0
    over = False
    own_files = {__file__, sys.modules[call_student.__module__].__file__}

    def line(frame: object, event: str, arg: object) -> Callable | None:
        nonlocal steps, over
        if event == "line":
            steps += 1
            if steps > limit:
                over = True
                raise TooManySteps
        return line

    def call(frame: object, event: str, arg: object) -> Callable | None:
        nonlocal steps
        if frame.f_code.co_filename in own_files:
            return None
        steps += 1
        return line

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        result = fn(*args)
    except TooManySteps:
        result = None
    finally:
        sys.settrace(previous)
    return result, steps, over


def run_counting_steps(what: str, fn: Callable, *args: object, limit: int) -> tuple[object, int, bool]:
    """counting_steps for a check: the student's exceptions become one CheckFailure naming `what`."""
    return counting_steps(call_student, what, fn, *args, limit=limit)


class StepLimitExceeded(Exception):
    """Raised by call_with_step_limit: the function ran far more Python steps than one sweep needs."""


def call_with_step_limit(fn: Callable, *args: object, limit: int) -> object:
    """fn(*args), stopped with StepLimitExceeded after `limit` Python steps, so a notebook demo can measure
    a sweep without hanging on code that follows paths one by one (even on a plain copy of the edges)."""
    result, _, over = counting_steps(fn, *args, limit=limit)
    if over:
        name = getattr(fn, "__name__", "your function")
        raise StepLimitExceeded(f"{name} ran more than {limit} Python steps")
    return result


def too_many_steps(g: Graph, limit: int) -> str:
    """Why a sweep that ran out of steps is not a sweep."""
    return (
        f"ran more than {limit} Python steps (lines of your code) on {g.describe()}; a sweep that uses each "
        f"edge once needs a few steps per node and per edge, about {10 * (len(g.edges) + len(g.nodes))} "
        "here. "
        f"Your function follows paths one by one, scans all edges again for every node, or scans all "
        f"remaining nodes to find the next ready one (copying the edges into a plain dict first does not "
        f"change that). Build the lists of children (or parents) once, then finish each node once, in "
        f"topological order: keep a list of ready nodes, and when a node is finished, add each child whose "
        f"parents are now all finished."
    )


# ---------------------------------------------------------------------------------------------------------
# count_paths and sum_over_paths
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallGraph:
    """A graph small enough to read in a message, with its answers worked out by hand (no code here
    computes them). `added` is the sum over paths of the SUM of the edge derivatives (a common slip)."""

    text: str
    edges: dict[Edge, float]
    src: str
    dst: str
    paths: int
    derivative: float
    added: float | None = None
    edges_on_paths: int = 0


# Edges are listed children first, so code that relies on the storage order fails here.
SMALL_GRAPHS = [
    SmallGraph("a single edge", {("a", "b"): 2.0}, "a", "b", 1, 2.0, 2.0, 1),
    SmallGraph("a chain", {("b", "c"): -4.0, ("a", "b"): 0.5}, "a", "c", 1, -2.0, -3.5, 2),
    SmallGraph("no path: the edges lead from c to a, not from a to c", {("b", "a"): 2.0, ("c", "b"): 3.0},
               "a", "c", 0, 0.0),
    SmallGraph("a diamond: two routes from a to d",
               {("b", "d"): 5.0, ("a", "b"): 2.0, ("c", "d"): 7.0, ("a", "c"): 3.0},
               "a", "d", 2, 31.0, 17.0, 4),
    SmallGraph("two diamonds in a row: 2 routes to d, then 2 from d to g",
               {("e", "g"): 4.0, ("f", "g"): 3.0, ("d", "e"): 0.5, ("d", "f"): -1.0, ("b", "d"): 5.0,
                ("a", "b"): 2.0, ("c", "d"): 7.0, ("a", "c"): 3.0}, "a", "g", 4, -31.0, 47.0, 8),
    SmallGraph("a diamond with a tail: both routes go on through d to e",
               {("d", "e"): -0.5, ("b", "d"): 5.0, ("a", "b"): 2.0, ("c", "d"): 7.0, ("a", "c"): 3.0},
               "a", "e", 2, -15.5, 16.0, 5),
    SmallGraph("a node and itself", {("a", "b"): 2.0}, "a", "a", 1, 1.0),
]


def reachable(edges: dict[Edge, float], start: Hashable, forward: bool = True) -> set[Hashable]:
    """The nodes reachable from `start` (along the edges, or against them), `start` included."""
    found, stack = {start}, [start]
    while stack:
        node = stack.pop()
        for u, v in edges:
            a, b = (u, v) if forward else (v, u)
            if a == node and b not in found:
                found.add(b)
                stack.append(b)
    return found


def node_counts(case: SmallGraph) -> set[int]:
    """What a function that counts nodes instead of paths returns: the nodes reachable from src, or those
    on a path from src to dst, with or without src itself."""
    reach = reachable(case.edges, case.src)
    on_paths = reach & reachable(case.edges, case.dst, forward=False)
    return {len(reach), len(reach) - 1, len(on_paths), len(on_paths) - 1}


PATH_STEPS = 2_000_000
"""Python steps one call of count_paths or sum_over_paths may take. Path by path, the course's solutions
need under 200 000 on the test graphs; a loop that never ends is stopped in about a second."""


def edges_calls(student: Callable, edges: dict[Edge, float], calls: list[tuple],
                limit: int = PATH_STEPS) -> list[list]:
    """Probe (runs where the student's code is): student(copy of edges, *args) for each args in `calls`,
    each within `limit` Python steps. Observations, one per call: [the result, how many edges the copy
    holds after the call, whether it still equals the edges, "" or why the call did not finish ("steps":
    it ran out of steps, "recursion": it hit the recursion limit)], up to the first call that did not
    finish. The student's other exceptions propagate."""
    seen = []
    for args in calls:
        given = dict(edges)
        try:
            result, _, over = counting_steps(student, given, *args, limit=limit)
        except RecursionError:
            result, over = None, None
        status = "steps" if over else "recursion" if over is None else ""
        seen.append([result, len(given), given == edges, status])
        if status:
            break
    return seen


def longest_path(edges: dict[Edge, float]) -> int:
    """The number of edges on the longest path of a DAG (0 without edges)."""
    depth: dict[Hashable, int] = {}
    changed = True
    while changed:  # test graphs are small: relax until nothing changes
        changed = False
        for u, v in edges:
            if depth.get(v, 0) < depth.get(u, 0) + 1:
                depth[v] = depth.get(u, 0) + 1
                changed = True
    return max(depth.values(), default=0)


def unfinished(call: str, status: str, edges: dict[Edge, float]) -> str:
    """Why a call on a small graph did not finish: with a few dozen edges, neither a deep graph nor the
    number of paths is the cause."""
    deep = longest_path(edges)
    graph = f"a graph of {len(edges)} edges whose longest path has {deep} edge{'s' if deep != 1 else ''}"
    shown = f":\n  edges = {edges!r}\n" if len(edges) <= 8 else ". "
    if status == "recursion":
        return (f"{call} hit Python's recursion limit (RecursionError) on {graph}{shown}A recursion that "
                f"moves one edge per call nests at most {deep + 1} calls here, so yours calls itself without "
                f"end: check that each recursive call moves on to a child (v of an edge (node, v)), never "
                f"the same node again, and that it returns at dst.")
    return (f"{call} ran more than {PATH_STEPS:,} Python steps on {graph}{shown}Following every path one "
            f"by one takes far fewer here, so your function never ends: look for a loop whose condition "
            f"never changes (a stack or list that is never emptied, a node that never moves on) or a "
            f"recursive call given the same node again.")


def calls_on_edges(name: str, student: Callable, edges: dict[Edge, float],
                   pairs: list[tuple[Hashable, Hashable]]) -> list[float]:
    """student(edges, src, dst) for each (src, dst), each on a copy of the edges, which must come back
    unchanged."""
    seen = call_student(name, in_kernel, edges_calls, student, dict(edges), [tuple(p) for p in pairs])
    out = []
    if not isinstance(seen, list | tuple) or len(seen) != len(pairs):  # every call observed, or none judged
        raise CheckFailure(f"{name}: the kernel did not report all {len(pairs)} calls; run the notebook's "
                           "cells from the top, then this test cell again.")
    for (src, dst), (got, size, same, status) in zip(pairs, seen, strict=True):
        call = f"{name}(edges, {src!r}, {dst!r})"
        if status:
            raise CheckFailure(unfinished(call, status, edges))
        if not same:
            raise CheckFailure(
                f"{call} changed the edges dictionary it was given (it had {len(edges)} edges, now "
                f"{size}{'' if size != len(edges) else ', some with other values'}). Read `edges`, "
                f"never modify it (no pop, del or assignment into it): the caller still needs its graph, and "
                f"a second call on the same graph would find it emptied (the example cell after exercise 3 "
                f"would then print 0).")
        out.append(as_real(got, f"{call} returned"))
    return out


def call_on_edges(name: str, student: Callable, edges: dict[Edge, float], src: Hashable,
                  dst: Hashable) -> float:
    """student(edges, src, dst) on a copy of the edges, which must come back unchanged."""
    return calls_on_edges(name, student, edges, [(src, dst)])[0]


_fresh_names = itertools.count()


def state_problem(student: Callable, name: str) -> None:
    """Fail if the answer depends on earlier calls: a memo as a default argument (memo={}) or a global
    dict keeps the values of an earlier graph for nodes of the same name. (A sweep that returns no dict
    here is left to the sweep's own checks, which say what is wrong with its result.)"""
    k = next(_fresh_names)
    a, b, c, d = (f"{letter}{k}" for letter in "abcd")
    diamond = {(a, b): 2.0, (a, c): 3.0, (b, d): 5.0, (c, d): 7.0}
    single = {(a, d): 0.5}
    want_diamond, want_single = (2.0, 1.0) if name == "count_paths" else (31.0, 0.5)
    if name in ("count_paths", "sum_over_paths"):
        what = f"{name}(edges, {a!r}, {d!r})"
        answers = [call_on_edges(name, student, edges, a, d) for edges in (diamond, single, diamond)]
    else:
        start, other = (a, d) if name == "forward_mode" else (d, a)
        what = f"{name}(edges, {start!r})[{other!r}]"
        results = [call_student(name, student, dict(edges), start) for edges in (diamond, single, diamond)]
        if not all(isinstance(r, dict) and isinstance(r.get(other), numbers.Real) for r in results):
            return
        answers = [float(r[other]) for r in results]
    first, second, third = answers
    if (first == want_diamond and second != want_single) or first != third:
        raise CheckFailure(
            f"{name} keeps state between calls: {what} on a diamond graph {diamond!r} gave {first:g}, then "
            f"on the single edge {single!r} between the same two nodes {second:g} (expected "
            f"{want_single:g}), then on the diamond again {third:g}.\nHint: a memo given as a default "
            f"argument (memo={{}} in the def line) or kept in a global dict is shared by every call, so it "
            f"answers with the values of an earlier graph. Create the memo inside the function, so each "
            f"call starts with an empty one.")


def path_hint(name: str, case: SmallGraph, got: float, swapped: float | None) -> str:
    """What the student's number on a small graph says about the slip (count_paths or sum_over_paths)."""
    counting = name == "count_paths"
    want = case.paths if counting else case.derivative
    if case.src == case.dst:
        return (f"a node has exactly one path to itself, the empty one (its product of derivatives is 1), so "
                f"{name}(edges, v, v) = 1.")
    if swapped is not None and want != 0 and got == 0 and swapped == want:
        return ("you follow the edges backwards: with src and dst swapped your function returns "
                f"{swapped:g}. An "
                "edge (u, v) leads FROM u TO v, so a path from src starts with an edge whose FIRST "
                "node is src.")
    if want == 0:
        return (f"no path leads from {case.src!r} to {case.dst!r}, so the answer is 0. If you found one, you "
                f"followed an edge backwards: an edge (u, v) leads FROM u TO v.")
    paths_rule = ("A path is a whole route from src to dst; two routes may share nodes and edges. The number "
                  "of paths into a node is the sum of the numbers of paths into its parents.")
    if counting and got == case.edges_on_paths:
        also = " (or reachable nodes: here both are {got:g})" if got in node_counts(case) else ""
        return f"you counted edges{also.format(got=got)}, not paths. {paths_rule}"
    if counting and got in node_counts(case) and got > 1:
        return f"you counted reachable nodes, not paths. {paths_rule}"
    if counting and 1 <= got < want:
        meet = ("Routes that meet at a node (one with two parents) are still different routes: each counts, "
                "and so does each way on from that node.")
        if got == 1:  # every count stayed at one: counts were never added up
            return (f"your function finds whether a path exists, not how many. {meet} Add the counts: do "
                    "not combine them with max, any or `or`, nor overwrite a count with = where += adds.")
        return (f"your count is too low: it misses routes. {meet} So a node reached a second time must "
                "count again: a visited set (as in graph search) skips it, and so does a memo that answers "
                "0 for a node seen before (give back its stored count instead).")
    if not counting and got == case.paths:
        return ("you returned the number of paths. Multiply the edge derivatives along each path and add "
                "up the products.")
    if not counting and case.added is not None and got in (case.added, case.added + case.paths):
        return ("you ADD the derivatives along a path. The chain rule MULTIPLIES them along a path and "
                "adds over paths.")
    if counting:
        return ("every path from src to dst starts with an edge (src, v) and goes on with a path from v to "
                "dst, so the count is the sum over those edges of the counts from v (and 1 from dst to "
                "itself).")
    return ("d dst/d src = sum over all paths from src to dst of the PRODUCT of the edge derivatives "
            "along the "
            "path: multiply along a path, add over paths (a node reached along two routes counts on both).")


def small_graph_cases(student: Callable, name: str) -> None:
    """The hand-counted graphs; a failure shows the whole graph, it is that small."""
    for case in SMALL_GRAPHS:
        want = case.paths if name == "count_paths" else case.derivative
        call = f"{name}(edges, {case.src!r}, {case.dst!r})"
        got = call_on_edges(name, student, case.edges, case.src, case.dst)
        if close(got, want, 1e-12):
            continue
        swapped = None
        if want != 0 and got == 0:
            swapped = call_on_edges(name, student, case.edges, case.dst, case.src)
        raise CheckFailure(
            f"{call} returned {got:g}, expected {want:g}, on {case.text}:\n  edges = {case.edges!r}\n"
            f"Hint: {path_hint(name, case, got, swapped)}"
        )


FALLBACK_NOTE = (
    "(This check does not know the right values: it tests whether each node's value follows from your own "
    "values at its {kin}.)"
)


def parents_of(g: Graph) -> dict[Hashable, list[Edge]]:
    """node -> the edges coming into it (the graph's own structure, not an answer)."""
    into: dict[Hashable, list[Edge]] = {n: [] for n in g.nodes}
    for u, v in g.edges:
        into[v].append((u, v))
    return into


def graph_path_case(student: Callable, name: str, g: Graph, src: Hashable, seed: int,
                    exact: dict | None = None) -> None:
    """student(edges, src, v) for every node v of a random graph, reported at the first wrong node.

    Each value is compared with the student's own values at v's parents: paths into v end with one edge
    from a parent, so count(v) = sum of count(u) and, with products, sum(v) = sum of sum(u) * d(u, v), and 1
    at src itself. By induction this pins every value down without computing any of them here. The hidden
    checks pass `exact` (node -> (value, bound)) to compare with the exact answers instead."""
    multiply = name == "sum_over_paths"
    into = parents_of(g)
    got = dict(zip(g.nodes, calls_on_edges(name, student, g.edges, [(src, v) for v in g.nodes]), strict=True))
    for v in g.nodes:  # level by level: parents first
        terms = [got[u] * (g.edges[(u, v)] if multiply else 1.0) for (u, _) in into[v]]
        from_parents = 1.0 if v == src else float(sum(terms))
        if exact is not None:
            want, bound = exact[v]
        else:
            want, bound = from_parents, 1.0 if v == src else float(sum(abs(t) for t in terms))
        if abs(got[v] - want) <= 1e-10 * max(1.0, bound):
            continue
        what = "derivative" if multiply else "number of paths"
        parents = ", ".join(
            f"{u!r} (your value {got[u]:g}" + (f", edge derivative {g.edges[(u, v)]:g})" if multiply else ")")
            for (u, _) in into[v]) or "none"
        verdict = (f"expected {want:g}" if exact is not None
                   else f"but your own values at its parents give {from_parents:g}")
        if v == src:
            hint = f"a node has exactly one path to itself, the empty one: {name}(edges, v, v) = 1."
        elif multiply:
            hint = ("every path into v ends with one edge (u, v), so the derivative for v is the sum "
                    "over the "
                    "parents u of v of (derivative for u) * edges[(u, v)]: multiply along, add over paths.")
        else:
            hint = ("every path into v ends with one edge (u, v) from a parent u, so the number of "
                    "paths into v is "
                    "the sum of the numbers of paths into its parents (every route counts, even through a "
                    "node "
                    "reached before).")
        note = "" if exact is not None else "\n" + FALLBACK_NOTE.format(kin="parents")
        raise CheckFailure(
            f"{name}(edges, {src!r}, {v!r}) on {g.describe()} returned {got[v]:g}, {verdict} (seed {seed}).\n"
            f"The parents of {v!r} ({what} from {src!r} as your function returns it): {parents}.\n"
            f"Hint: {hint}{note}"
        )


def check_paths(student: Callable, name: str, layers: tuple[int, ...], seed: int | None) -> None:
    """Small hand-counted graphs, then every node of random DAGs from their source and from a middle node."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    pairs = 0
    with repeatable(f"checks.check_{name}({name}, seed={seed})"):
        state_problem(student, name)
        small_graph_cases(student, name)
        for n_layers in layers:
            g = random_graph(rng, n_layers)
            middle = g.nodes[1 + int(rng.integers(len(g.nodes) // 2))]
            for src in (g.src, middle):
                graph_path_case(student, name, g, src, seed)
                pairs += len(g.nodes)
    passed(name, f"{len(SMALL_GRAPHS)} small graphs, then {pairs} node pairs on {len(layers)} random graphs "
                 f"with up to {len(g.edges)} edges (seed {seed})")


def check_count_paths(count_paths: Callable, *, seed: int | None = None) -> None:
    """Exact path counts: small graphs counted by hand, then every node of random DAGs."""
    check_paths(count_paths, "count_paths", (2, 4, 6), seed)


def check_sum_over_paths(sum_over_paths: Callable, *, seed: int | None = None) -> None:
    """Sum over paths of products of edge derivatives: small graphs, then every node of random DAGs."""
    check_paths(sum_over_paths, "sum_over_paths", (2, 3, 5), seed)


# ---------------------------------------------------------------------------------------------------------
# forward_mode and reverse_mode
# ---------------------------------------------------------------------------------------------------------

# The worked example of the notebook, e = (a + b)(b + 1) at a = 2, b = 1, with its edges stored children
# first; its two sweeps are the table in the notebook.
EXAMPLE = Graph({("c", "e"): 2.0, ("d", "e"): 3.0, ("a", "c"): 1.0, ("b", "c"): 1.0, ("b", "d"): 1.0},
                "b", "e", ["a", "b", "c", "d", "e"], "the worked example e = (a + b)(b + 1)")
EXAMPLE_SWEEPS = {
    "forward_mode": {"a": 0.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 5.0},
    "reverse_mode": {"a": 2.0, "b": 5.0, "c": 2.0, "d": 3.0, "e": 1.0},
}


def sweep_hint(node: Hashable, start: Hashable, forward: bool, *, one_of_several: bool,
               edges_only: bool = False) -> str:
    """What to fix when a forward/reverse sweep got `node` wrong; `one_of_several`: the value is one
    parent's (child's) contribution alone, the overwrite-instead-of-add slip; `edges_only`: every node holds
    the sum of its edge derivatives alone, the factor from the finished neighbour is missing."""
    kin, kins = ("parent", "parents") if forward else ("child", "children")
    order = "topological order" if forward else "REVERSE topological order"
    if node == start:
        return f"the derivative of {start!r} with respect to itself is 1: start the sweep from 1.0."
    if edges_only:
        factor = "d u/d src of the parent u" if forward else "the adjoint d dst/d v of the child v"
        return (
            f"each of your values is the sum of the node's edge derivatives alone: the factor from the "
            f"{kin} is missing. A contribution is edges[(u, v)] times {factor}, which is finished "
            f"before this node is computed."
        )
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


def sweep_case(student: Callable, name: str, g: Graph, seed: int, known: dict | None = None,
               exact: dict | None = None) -> int:
    """Run forward_mode(edges, src) or reverse_mode(edges, dst) once; check the work done and every value.

    Values are compared with `known` (a hand-worked graph), `exact` (node -> (value, bound): the hidden
    checks' exact answers, bound the sum of |products| that sets the rounding tolerance), or the student's
    own values next to each node, and reported at the first wrong node with its parents (children) only.
    Returns the Python steps the sweep took."""
    forward = name == "forward_mode"
    start = g.src if forward else g.dst
    limit = steps_budget(g)
    seen = call_student(name, in_kernel, sweep_probe, student, dict(g.edges), start, limit)
    result, steps, over = seen["result"], seen["steps"], seen["over"]
    call = f"{name}(edges, {start!r}) on {g.describe()}"
    problem = visit_problem(seen, name)
    if problem:
        raise CheckFailure(f"{call}: {problem} (seed {seed})")
    if over:
        raise CheckFailure(f"{name}(edges, {start!r}) {too_many_steps(g, limit)} (seed {seed})")
    if not isinstance(result, dict):
        raise CheckFailure(
            f"{call} returned a {seen['type']}; it should return a dict mapping every node to "
            f"its derivative."
        )
    missing = [n for n in g.nodes if n not in result]
    if missing:
        raise CheckFailure(
            f"{call}: the result has no entry for node(s) {missing} (seed {seed}).\n"
            f"Hint: return a derivative for EVERY node that appears in an edge; nodes that "
            f"{'cannot be reached from src' if forward else 'cannot reach dst'} get 0.0."
        )
    got = {n: as_real(result[n], f"{name}(...)[{n!r}] is") for n in g.nodes}
    links: dict[Hashable, list[Edge]] = {n: [] for n in g.nodes}
    for u, v in g.edges:
        links[v if forward else u].append((u, v))
    order = list(g.nodes) if forward else list(reversed(g.nodes))  # built level by level
    for node in order:
        terms = [got[u] * float(g.edges[(u, v)]) if forward else float(g.edges[(u, v)]) * got[v]
                 for (u, v) in links[node]]
        from_kin = 1.0 if node == start else float(sum(terms))
        bound = 1.0 if node == start else float(sum(abs(t) for t in terms))
        if known is not None:
            want = known[node]
        elif exact is not None:
            want, bound = exact[node]
        else:
            want = from_kin
        if abs(got[node] - want) <= 1e-10 * max(1.0, bound):
            continue
        kins = "parents" if forward else "children"
        one_of_several = len(terms) > 1 and any(close(got[node], t, 1e-9) for t in terms)
        if node != start and want == 0.0 and not edges_only(got, links, g, start):
            hint = (f"{node!r} {'cannot be reached from' if forward else 'cannot reach'} {start!r}, so its "
                    f"derivative is 0.")
        else:
            hint = sweep_hint(node, start, forward, one_of_several=one_of_several,
                              edges_only=node != start and edges_only(got, links, g, start))
        kin_text = ", ".join(
            f"{(u if forward else v)!r} (edge derivative {float(g.edges[(u, v)]):g}, your value "
            f"{got[u if forward else v]:g})" for (u, v) in links[node]) or "none"
        verdict = (f"expected {want!r}" if known is not None or exact is not None
                   else f"but your own values at its {kins} give {from_kin!r}")
        note = "" if known is not None or exact is not None else "\n" + FALLBACK_NOTE.format(kin=kins)
        shown = f"\n  edges = {g.edges!r}" if known is not None else ""
        raise CheckFailure(
            f"{call}: the derivative for node {node!r} is {got[node]!r}, {verdict} (seed {seed}).{shown}\n"
            f"The {kins} of {node!r}: {kin_text}.\nHint: {hint}{note}"
        )
    return steps


def edges_only(got: dict[Hashable, float], links: dict[Hashable, list[Edge]], g: Graph,
               start: Hashable) -> bool:
    """Whether every node but the start holds the plain sum of its edge derivatives (the factor from the
    finished neighbour left out), and that differs from a right answer somewhere."""
    sums = {n: float(sum(float(g.edges[e]) for e in links[n])) for n in g.nodes if n != start}
    return all(close(got[n], sums[n], 1e-9) for n in sums)


def sweep_graphs(rng: np.random.Generator) -> list[Graph]:
    """Random DAGs, a graph with 3**12 paths, a long one (2**80 paths, a few hundred edges), and a chain
    stored back to front (where scanning all nodes for the next ready one costs nodes**2 steps)."""
    return [random_graph(rng, 1), random_graph(rng, 3), random_graph(rng, 6), layered_graph(rng, 12, 3),
            layered_graph(rng, 80, 2), chain_graph(150)]


def check_sweep(student: Callable, name: str, graphs: list[Graph], seed: int) -> None:
    """The worked example, then `graphs`; one pass line with the work measured."""
    worst = 0.0
    with repeatable(f"checks.check_{name}({name}, seed={seed})"):
        state_problem(student, name)
        sweep_case(student, name, EXAMPLE, seed, known=EXAMPLE_SWEEPS[name])
        for g in graphs:
            worst = max(worst, sweep_case(student, name, g, seed) / (len(g.edges) + len(g.nodes)))
    biggest = max(graphs, key=lambda g: len(g.edges))
    passed(name, f"the worked example and every node of {len(graphs)} random graphs (up to "
                 f"{len(biggest.edges)} "
                 f"edges), each edge derivative used once, at most {worst:.1f} Python steps per node and "
                 "edge "
                 f"(seed {seed})")


def check_forward_mode(forward_mode: Callable, *, seed: int | None = None) -> None:
    """d node/d src for every node of random DAGs, each edge used once, the work proportional to the graph."""
    seed = new_seed(seed)
    check_sweep(forward_mode, "forward_mode", sweep_graphs(np.random.default_rng(seed)), seed)


def check_reverse_mode(reverse_mode: Callable, *, seed: int | None = None) -> None:
    """d dst/d node for every node of random DAGs, each edge used once, the work proportional to the graph."""
    seed = new_seed(seed)
    check_sweep(reverse_mode, "reverse_mode", sweep_graphs(np.random.default_rng(seed)), seed)
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
        "-x",
        lambda x, y, c: -x,
        lambda a, b, c: -a,
        "(-x)' = -x': negate the value AND the derivative",
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


def dual_observation(result: object) -> dict:
    """What a Dual operation gave (in the kernel): its value and deriv, or what came back instead."""
    if not (hasattr(result, "value") and hasattr(result, "deriv")):
        return {"dual": False, "repr": repr(result), "type": type(result).__name__}
    return {"dual": True, "value": result.value, "deriv": result.deriv}


def dual_parts(seen: dict, what: str) -> tuple[float, float]:
    """(value, deriv) of a student's Dual result (`dual_observation`), or a message saying what came back
    instead."""
    if not seen["dual"]:
        raise CheckFailure(
            f"{what} returned {seen['repr']} ({seen['type']}), not a Dual with .value and .deriv. Every "
            f"operation must return a NEW Dual (return Dual(value, deriv))."
        )
    return as_real(seen["value"], f"({what}).value is"), as_real(seen["deriv"], f"({what}).deriv is")


def dual_op_probe(Dual: type, text: str, a: float, da: float, b: float, db: float, c: float) -> dict:
    """Probe (runs where the student's Dual is): the operation `text` on x = Dual(a, da), y = Dual(b, db)
    and the number c. Observations: its `dual_observation`, which parts of x and y it changed and whether
    it returned one of them; or the exception it raised (class name, text, whether it had arguments, the
    method it was raised in)."""
    op = next(op for op in DUAL_OPS if op.text == text)
    x, y = Dual(a, da), Dual(b, db)
    try:
        result = op.apply(x, y, c)
    except Exception as exc:  # noqa: BLE001 - the student's exception is the observation
        return {"raised": type(exc).__name__, "message": str(exc), "args": bool(exc.args),
                "method": student_function(exc)}
    seen = dual_observation(result)
    seen["changed"] = [f"{name}.{part}" for name, dual, before in (("x", x, (a, da)), ("y", y, (b, db)))
                       for part, was in zip(("value", "deriv"), before, strict=True)
                       if getattr(dual, part) != was]
    seen["returned"] = "x" if result is x else "y" if result is y else ""
    return seen


def dual_error_hint(op: DualOp, kind: str, message: str) -> str:
    """What an exception (its class name and text) inside a Dual operation says about the method (which
    exists unless Python found no method to call)."""
    if kind == "RecursionError":
        return (f"your method calls itself again through an operator. For {op.text}, a line such as "
                "`return other + self` in __radd__ (other a plain number) makes Python ask the Dual again, "
                "with the same operands, forever. Build the result directly (return Dual(value, deriv)) "
                "or turn the number into a Dual first (Dual.lift(other) + self).")
    if kind == "TypeError" and ("unsupported operand" in message or "bad operand" in message):
        return (f"Python found no method for {op.text}: a number on the left of an operator calls the "
                "reflected method (__radd__, __rsub__, __rmul__, __rtruediv__) of the Dual on the right, "
                f"unary minus calls __neg__. The rule: {op.rule}.")
    if kind == "AttributeError" and re.search(r"\bc\b", op.text):
        return ("the other operand is a plain number c here, which has no .value or .deriv: turn it into "
                "a Dual first with Dual.lift(other), the dual number c + 0 eps.")
    return f"compute the value with the ordinary float operation, the derivative by the rule: {op.rule}."


def check_dual_op(
    Dual: type, op: DualOp, a: float, da: float, b: float, db: float, c: float, seed: int
) -> None:
    """One operation at one point; the message names the operation and its rule."""
    operands = [f"x = Dual({a!r}, {da!r})"]
    if "y" in op.text:
        operands.append(f"y = Dual({b!r}, {db!r})")
    if re.search(r"\bc\b", op.text):
        operands.append(f"c = {c!r}")
    what = f"{op.text} with {', '.join(operands)}"
    seen = call_student(what, in_kernel, dual_op_probe, Dual, op.text, a, da, b, db, c)
    if "raised" in seen:
        kind, message = seen["raised"], seen["message"]
        if kind == "NotImplementedError":
            if not seen["args"]:  # the released method's bare `raise NotImplementedError()`
                raise NotDone(f"Dual.{seen['method']} (used by {op.text})")
            raise CheckFailure(f"{what} raised NotImplementedError: {message} (seed {seed}).")
        raise CheckFailure(
            f"{what} raised {kind}: {message} (seed {seed}).\nHint: {dual_error_hint(op, kind, message)}")
    value, deriv = dual_parts(seen, what)
    if seen["changed"]:
        returned = f", and it returned {seen['returned']} itself" if seen["returned"] else ""
        raise CheckFailure(
            f"{what} modified its input: after the operation, {' and '.join(seen['changed'])} had "
            f"changed{returned} (seed {seed}).\nHint: an operation must leave its inputs as they are "
            f"(other code still uses them) and return a NEW Dual: return Dual(value, deriv), not self "
            f"after `self.value += ...`.")
    want_value, want_deriv = op.plain(a, b, c), directional_derivative(op, a, da, b, db, c)
    if not close(value, want_value, 1e-12):
        hint = f"the value part is just the ordinary result of {op.text} on the values."
        swapped = {"c - x": (a - c, "__rsub__", "-x'"), "c / x": (a / c, "__rtruediv__", "-c x' / x^2")}
        if op.text in swapped and close(value, swapped[op.text][0], 1e-12):
            _, method, slope_text = swapped[op.text]
            hint = (f"you computed {op.text[::-1]} instead. With a number on the left, {op.text} calls "
                    f"x.{method}(c), which must return {op.text}, whose derivative is {slope_text}.")
        raise CheckFailure(f"{what}: value {value!r}, expected {want_value!r} (seed {seed}).\nHint: {hint}")
    if close(deriv, want_deriv, 1e-8):
        return
    unit = directional_derivative(op, a, 1.0, b, 1.0, c)
    hint = op.rule
    if "x" in op.text and close(deriv, unit, 1e-8) and (da, db) != (1.0, 1.0):
        hint += (
            ". Your result is what this gives when x' = 1: multiply by the derivative the input carries "
            "(x.deriv), that is the chain rule."
        )
    raise CheckFailure(f"{what}: deriv {deriv!r}, expected {want_deriv:.10g} (seed {seed}).\nHint: {hint}")


def composite_functions(p: float, q: float, r: float) -> list[tuple[str, Callable, Callable]]:
    """Compositions of all the operations with parameters p, q, r: (description, float version, Dual
    version)."""

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


def dual_composite_probe(Dual: type, index: int, p: float, q: float, r: float, t: float) -> dict:
    """Probe (runs where the student's Dual is): composition `index` of `composite_functions(p, q, r)` on
    Dual(t, 1.0); its `dual_observation`. The student's exceptions propagate."""
    return dual_observation(composite_functions(p, q, r)[index][2](Dual(t, 1.0)))


def check_dual(Dual: type, *, seed: int | None = None) -> None:
    """Every operation with random values and random (not 1) input derivatives, then compositions against
    finite differences of the same function in plain floats."""
    seed = new_seed(seed)
    with repeatable(f"checks.check_dual(Dual, seed={seed})"):
        dual_cases(Dual, seed)
    passed("Dual", f"{len(DUAL_OPS)} operations with random input derivatives, then 3 compositions of them, "
                   f"against finite differences of the same operations on floats (seed {seed})")


def dual_cases(Dual: type, seed: int) -> None:
    """check_dual's cases: each operation alone, then compositions."""
    rng = np.random.default_rng(seed)
    for op in DUAL_OPS:
        a = float(rng.uniform(0.5, 2.0))  # positive: log and x ** c
        b = float(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
        da, db = (float(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])) for _ in range(2))
        c = float(rng.uniform(1.2, 3.0))
        check_dual_op(Dual, op, a, da, b, db, c, seed)
    p, q, r = (float(v) for v in rng.uniform(0.5, 2.0, size=3))
    for index, (text, f, _) in enumerate(composite_functions(p, q, r)):
        t = float(rng.uniform(0.3, 1.2))
        seen = call_student("Dual", in_kernel, dual_composite_probe, Dual, index, p, q, r, t)
        value, _ = dual_parts(seen, f"f(Dual({t}, 1.0)) for f(t) = {text}")
        if not close(value, f(t), 1e-12):
            raise CheckFailure(
                f"f(Dual({t}, 1.0)).value = {value!r} but f({t}) = {f(t)!r} for f(t) = {text}."
            )

        def by_dual(s: float, index: int = index) -> object:
            seen = in_kernel(dual_composite_probe, Dual, index, p, q, r, s)
            return seen["deriv"] if seen["dual"] else None

        by_dual.__name__ = f"f(Dual(t, 1.0)).deriv for f(t) = {text},"
        with quiet():
            check_derivative(f, by_dual, t, seed=int(rng.integers(2**62)))


# ---------------------------------------------------------------------------------------------------------
# The adjoint trace of f(x1, x2) = log(x1) + x1*x2 - sin(x2) at (2, 5)
# ---------------------------------------------------------------------------------------------------------

TRACE_NAMES = ["v-1", "v0", "v1", "v2", "v3", "v4", "v5"]
# Hand-worked values may be rounded: 4 decimals (1.7163) are accepted, as the notebook says.
TRACE_RTOL = 1e-4

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
    if len(unfilled) == len(TRACE_NAMES):
        raise NotDone("the adjoint trace (the dict adjoints)")
    if unfilled:
        names = ", ".join(reversed(unfilled))
        raise CheckFailure(f"Still None in adjoints: {names}. Replace each None by the value you computed.")
    return {k: as_real(adjoints[k], f"adjoints[{k!r}] is") for k in TRACE_NAMES}


def check_adjoint_trace(adjoints: object) -> None:
    """Complete, seeded with v5bar = 1, and every entry consistent with the entries it depends on.

    Each adjoint must equal the sum, over the statements that USE the variable, of (that statement's
    adjoint) x (its local derivative), measured here from the primal values. This checks every step of the
    reverse sweep against the student's own later values, so one slip is reported where it happens; the
    message states the rule and the student's own numbers, never the value the entry should hold (else the
    trace could be filled in by copying from successive messages)."""
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
        error = abs(got[name] - expected) / max(1.0, abs(expected))
        if error <= TRACE_RTOL:
            continue
        statements = " and ".join(TRACE[out][0] for out in users)
        rule = (f"{name} is used by {statements}, so {name}bar = "
                + " + ".join(f"{out}bar * d{out}/d{name}" for out in users)
                + " (local derivatives at the primal values v-1 = 2, v0 = 5).")
        yours = ", ".join(f"{out}bar = {got[out]:.6g}" for out in users)
        if error <= 1e-2:
            detail = (f"With your {yours}, your {name}bar = {got[name]!r} is close to this sum but not "
                      f"within the {TRACE_RTOL:g} relative error the test allows: if you rounded, give more "
                      "digits (or enter the Python expression that computes it).")
        elif len(users) == 1 and got[users[0]] != 0.0:
            out = users[0]
            detail = (f"With your {yours}, your {name}bar = {got[name]:.6g} means d{out}/d{name} = "
                      f"{got[name] / got[out]:.6g}, which is not the local derivative of {TRACE[out][0]}: "
                      "work "
                      f"it out again (how much does {out} change when {name} grows by a little?).")
        elif len(users) == 1:
            detail = (f"With your {yours}, {name}bar is 0 whatever the local derivative; yours is "
                      f"{got[name]:.6g}.")
        else:
            detail = f"With your {yours}, your {name}bar = {got[name]:.6g} is not this sum. "
            if any(close(got[name], t, 1e-6) for t in terms):
                detail += ("Your value is only ONE of these contributions: enter the final value, after the "
                           "+= line that adds the other one.")
            else:
                detail += "Check both local derivatives, and enter the final value, after the += line."
        raise CheckFailure(
            f"adjoints[{name!r}] = {got[name]!r} does not follow from your later adjoints.\n"
            f"Rule: {rule}\n{detail}"
        )
    passed("adjoints", "v5bar = 1, and each of the other 6 adjoints follows from your later ones by the "
                       "local derivatives of the statements that use it")


# ---------------------------------------------------------------------------------------------------------
# Symbolic differentiation: diff(e, var) on the notebook's expression classes
# ---------------------------------------------------------------------------------------------------------

EXPRESSION_FIELDS = {"Const": ("value",), "Var": ("name",), "Add": ("left", "right"),
                     "Mul": ("left", "right"), "Sin": ("arg",), "Cos": ("arg",), "Exp": ("arg",)}
# Evaluating an expression, as the notebook's `evaluate` does: the operations, not their derivatives.
OPERATIONS: dict[str, Callable[..., float]] = {
    "Add": lambda p, q: p + q, "Mul": lambda p, q: p * q, "Sin": math.sin, "Cos": math.cos, "Exp": math.exp,
}
# Hints: the rules in the notebook's table, in words.
RULES = {
    "Add": "sum rule: d(u + v) = du + dv",
    "Mul": "product rule: d(u * v) = du * v + u * dv",
    "Sin": "chain rule: d sin(u) = cos(u) * du",
    "Cos": "chain rule: d cos(u) = -sin(u) * du (note the minus sign)",
    "Exp": "chain rule: d exp(u) = exp(u) * du",
}
Env = dict[str, float]
Tree = tuple
"""An expression on the checks' side: ("Const", value), ("Var", name), ("Add" | "Mul", left, right),
("Sin" | "Cos" | "Exp", arg); in a student's answer also ("?", its repr, its class name, whether it is
None) for a node that is none of these."""


def C(value: float) -> Tree:
    return ("Const", float(value))


def V(name: str) -> Tree:
    return ("Var", name)


def A(left: Tree, right: Tree) -> Tree:
    return ("Add", left, right)


def M(left: Tree, right: Tree) -> Tree:
    return ("Mul", left, right)


def children_of(e: Tree) -> tuple:
    """The operands of a node (none for Const, Var and unknown nodes)."""
    return e[1:] if e[0] in OPERATIONS else ()


def expression_kinds(Expr: type) -> list[str]:
    """Probe (runs where the student's classes are): the names of the subclasses of the notebook's Expr."""
    return sorted(cls.__name__ for cls in Expr.__subclasses__())


def check_expression_classes(Expr: type) -> None:
    """The notebook's expression classes are defined (as subclasses of its Expr)."""
    found = in_kernel(expression_kinds, Expr)
    missing = [name for name in EXPRESSION_FIELDS if name not in found]
    if missing:
        raise CheckFailure(f"The expression classes {missing} are not defined: run the given cell that "
                           "defines "
                           "Expr, Const, Var, Add, Mul, Sin, Cos and Exp, then your diff cell, then "
                           "this one.")


def to_table(e: Tree) -> list[list]:
    """An expression as a list of nodes, children before parents, each operand by its index (a node shared
    by several parents is listed once); the root is last."""
    index: dict[int, int] = {}
    table: list[list] = []
    stack = [e]
    while stack:
        node = stack[-1]
        if id(node) in index:
            stack.pop()
            continue
        pending = [child for child in children_of(node) if id(child) not in index]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        index[id(node)] = len(table)
        table.append([node[0], *(index[id(child)] for child in children_of(node))] if children_of(node)
                     else list(node))
    return table


def from_table(table: list[list]) -> Tree:
    """The expression a `to_table` (or `expression_table`) list describes, shared nodes shared."""
    nodes: list[Tree] = []
    for entry in table:
        kind = entry[0]
        nodes.append((kind, *(nodes[int(i)] for i in entry[1:])) if kind in OPERATIONS else tuple(entry))
    return nodes[-1]


def build_expression(classes: dict[str, type], table: list[list]) -> object:
    """The student's expression object for a `to_table` list (in the kernel)."""
    nodes: list[object] = []
    for kind, *rest in table:
        nodes.append(classes[kind](*(nodes[i] for i in rest)) if kind in OPERATIONS else classes[kind](*rest))
    return nodes[-1]


def _plain_field(value: object) -> object:
    if value is None or type(value) in (int, float, str, bool) or isinstance(value, np.generic):
        return value
    return repr(value)


def expression_table(e: object) -> list[list]:
    """A student's expression object as a `to_table` list (in the kernel); a node of another class than
    the seven becomes ["?", its repr, its class name, whether it is None]."""
    index: dict[int, int] = {}
    table: list[list] = []
    keep = []  # the nodes visited, so no id is reused while the walk runs
    stack = [e]
    while stack:
        node = stack[-1]
        if id(node) in index:
            stack.pop()
            continue
        kind = type(node).__name__
        if kind not in EXPRESSION_FIELDS:
            entry = ["?", repr(node), kind, node is None]
        elif kind in ("Const", "Var"):
            entry = [kind, _plain_field(getattr(node, EXPRESSION_FIELDS[kind][0]))]
        else:
            parts = [getattr(node, field) for field in EXPRESSION_FIELDS[kind]]
            pending = [part for part in parts if id(part) not in index]
            if pending:
                keep.extend(pending)
                stack.extend(pending)
                continue
            entry = [kind, *(index[id(part)] for part in parts)]
        stack.pop()
        keep.append(node)
        index[id(node)] = len(table)
        table.append(entry)
    return table


def differentiate(diff: Callable, Expr: type, table: list[list], var: str) -> dict:
    """Probe (runs where the student's code is): diff(expression, var) on the expression `table`
    describes, built from the notebook's classes. Observations: whether the answer is an Expr, else its
    repr and class name, and the answer as an `expression_table`. The student's exceptions propagate."""
    classes = {cls.__name__: cls for cls in Expr.__subclasses__()}
    d = diff(build_expression(classes, table), var)
    if not isinstance(d, Expr):
        return {"expr": False, "none": d is None, "repr": repr(d), "type": type(d).__name__}
    return {"expr": True, "table": expression_table(d)}


def postorder(e: Tree) -> Iterator[Tree]:
    """Every distinct node of an expression, each after its operands, without recursion: a node shared by
    several parents (a DAG, as a derivative that reuses sub-expressions is) comes once. Evaluating it and
    the grader's exact derivative walk it so."""
    done: set[int] = set()
    stack = [e]
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        pending = [child for child in children_of(node) if id(child) not in done]
        if pending:
            stack.extend(pending)
            continue
        done.add(id(node))
        stack.pop()
        yield node


def evaluate(e: Tree, env: Env, what: str) -> float:
    """The value of an expression at env, each shared node evaluated once (see `postorder`)."""
    values: dict[int, float] = {}
    for node in postorder(e):
        kind = node[0]
        if kind == "?":
            raise CheckFailure(
                f"{what} contains {node[1]} ({node[2]}). A derivative must be an expression built from "
                f"Const, Var, Add, Mul, Sin, Cos and Exp only: wrap a number as Const(0.0), never return "
                f"it bare"
                + (" (None: does every branch of your diff return an expression?)." if node[3] else "."))
        if kind == "Const":
            values[id(node)] = as_real(node[1], f"a Const in {what} holds")
        elif kind == "Var":
            if node[1] not in env:
                raise CheckFailure(f"{what} contains the variable {node[1]!r}, which is not in the "
                                   "expression.")
            values[id(node)] = env[node[1]]
        else:
            try:
                values[id(node)] = OPERATIONS[kind](*(values[id(child)] for child in children_of(node)))
            except (OverflowError, ValueError):  # exp overflowing, or sin/cos of an infinity
                values[id(node)] = math.nan
    return values[id(e)]


def show(e: Tree) -> str:
    """An expression as text with the fewest brackets (test expressions only: they are small)."""
    kind = e[0]
    if kind == "Const":
        return f"{e[1]:g}"
    if kind == "Var":
        return str(e[1])
    if kind == "Add":
        return f"{show(e[1])} + {show(e[2])}"
    if kind == "Mul":
        parts = [f"({show(side)})" if side[0] == "Add" else show(side) for side in e[1:]]
        return f"{parts[0]}*{parts[1]}"
    return f"{kind.lower()}({show(e[1])})"


def stencil(f: Callable[[float], float], t: float, h: float) -> float:
    """Five-point central difference: error ~ h^4 f^(5), and exact for polynomials of degree <= 4."""
    return (f(t - 2 * h) - 8 * f(t - h) + 8 * f(t + h) - f(t + 2 * h)) / (12 * h)


def slope(e: Tree, var: str, env: Env, h: float) -> float:
    """d e / d var at env, measured by finite differences of e's value."""
    return stencil(lambda t: evaluate(e, {**env, var: env[var] + t}, "the expression"), 0.0, h)


@dataclass
class DiffCase:
    """One expression to differentiate; `exact`: a polynomial at half-integer points (no rounding error)."""

    expr: Tree
    var: str
    exact: bool = False


def diff_cases(rng: np.random.Generator) -> list[DiffCase]:
    """Every kind of node alone (over children whose rules come earlier, so a slip shows where it is), then
    polynomials checked exactly, derivatives with respect to y, and random compositions."""
    x, y = V("x"), V("y")

    def S(u: Tree) -> Tree:
        return ("Sin", u)

    def Co(u: Tree) -> Tree:
        return ("Cos", u)

    def Ex(u: Tree) -> Tree:
        return ("Exp", u)

    c = C
    alone = [c(2.5), x, y, A(x, c(3)), A(y, x), M(x, x), M(x, y), M(A(x, c(1)), A(x, y)), M(c(3), x),
             S(x), S(M(c(2), x)), S(A(M(x, x), y)), Co(x), Co(M(c(3), x)), Ex(x), Ex(M(x, y)), S(Ex(x))]
    cases = [DiffCase(e, "x") for e in alone]
    cases += [DiffCase(M(x, y), "y"), DiffCase(Co(A(M(x, x), M(c(2), y))), "y")]
    cases += [DiffCase(M(M(x, x), x), "x", exact=True),
              DiffCase(M(M(A(x, c(1)), A(x, c(-2))), M(x, A(y, x))), "x", exact=True),
              DiffCase(M(A(M(x, y), c(3)), A(y, M(y, x))), "y", exact=True)]
    product = x
    for k in range(2, 6):
        product = M(product, A(x, c(k)))
    cases.append(DiffCase(product, "x"))
    for _ in range(3):
        cases.append(DiffCase(random_expression(rng, 4, ("x", "y")), str(rng.choice(["x", "y"]))))
    return cases


def random_expression(rng: np.random.Generator, depth: int, names: tuple[str, ...]) -> Tree:
    """A random tree of every kind of node whose values stay moderate for inputs in [-1.2, 1.2]."""
    corners = [{name: sign * 1.2 for name, sign in zip(names, signs, strict=False)}
               for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    while True:
        e = grow(rng, depth, names)
        parts = subexpressions(e)
        if any(part[0] == "Var" for part in parts) and all(
                abs(evaluate(part, env, "a test expression")) < 6 for part in parts for env in corners):
            return e  # every intermediate value is moderate, so are the derivatives


def grow(rng: np.random.Generator, depth: int, names: tuple[str, ...]) -> Tree:
    if depth == 0 or rng.random() < 0.15:
        if rng.random() < 0.7:
            return V(str(rng.choice(names)))
        return C(float(np.round(rng.uniform(-2, 2), 2)))
    kind = str(rng.choice(["Add", "Mul", "Sin", "Cos", "Exp"]))
    if kind in ("Add", "Mul"):
        return (kind, grow(rng, depth - 1, names), grow(rng, depth - 1, names))
    return (kind, grow(rng, depth - 1, names))


def subexpressions(e: Tree) -> list[Tree]:
    """Every node of a (small) expression tree."""
    found, stack = [], [e]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(children_of(node))
    return found


def case_points(case: DiffCase, rng: np.random.Generator) -> list[Env]:
    """Where to compare: half-integers for the exact cases, random points in [-1.2, 1.2] otherwise."""
    if case.exact:
        return [{"x": float(rng.choice([-1.5, -0.5, 0.5, 1.5, 2.5])),
                 "y": float(rng.choice([-1.5, 0.5, 1.5]))}
                for _ in range(3)]
    return [{"x": float(rng.uniform(-1.2, 1.2)), "y": float(rng.uniform(-1.2, 1.2))} for _ in range(3)]


DIFF_RTOL = 1e-7
"""A derivative built by the rules agrees with the exact one to rounding; the hints' candidates likewise."""


def diff_hint(case: DiffCase, env: Env, got: float, want: float,
              right_for: Callable[[str], bool] = lambda other: True) -> str:
    """What the student's number says about the slip, measured with finite differences of the parts of
    the expression (their values and slopes), never with a derivative rule. `right_for(other)`: whether
    the student's derivative of the same expression with respect to `other` is right, so that "you
    differentiated with respect to the other variable" is said only when that is what the code does."""
    e, var = case.expr, case.var
    kind = e[0]
    if case.exact and close(got, want, 1e-6):
        return ("your derivative is close but not exact. A derivative built by the rules evaluates "
                "exactly here "
                "(a polynomial at half-integer points); did you build a finite difference instead of "
                "applying "
                "the rules?")
    if kind == "Const":
        return "the derivative of a constant is 0, a Const holding 0.0."
    if kind == "Var":
        if e[1] == var:
            return f"d{var}/d{var} = 1, a Const holding 1.0."
        return (f"{e[1]} is another variable, which does not change when {var} does: its derivative with "
                f"respect to {var} is Const(0.0). Compare the Var's name with var.")
    for other in (name for name in env if name != var):
        sideways = slope(e, other, env, 1e-3)
        if (close(got, sideways, DIFF_RTOL) and not close(want, got, DIFF_RTOL)
                and not close(sideways, 0.0, DIFF_RTOL) and right_for(other)):
            return (f"your derivative is the one with respect to {other}, not {var}: pass `var` on to the "
                    f"recursive calls, and compare each Var's name with it.")
    if kind == "Mul":
        u, v = (evaluate(side, env, "the expression") for side in e[1:])
        du, dv = (slope(side, var, env, 1e-3) for side in e[1:])
        both, one_term = du * dv, (du * v, u * dv)
        if close(got, du * u + dv * v, DIFF_RTOL):
            return (f"each factor's derivative must multiply the OTHER factor: you multiplied du by u "
                    f"and dv by v. The {RULES['Mul']}.")
        if close(got, both, DIFF_RTOL) and not any(close(both, term, DIFF_RTOL) for term in one_term):
            return f"you multiplied the two derivatives (du * dv). The {RULES['Mul']}."
        if any(close(got, term, DIFF_RTOL) for term in one_term) and not close(got, both, DIFF_RTOL):
            return f"one of the two terms is missing: the {RULES['Mul']}."
        return f"the {RULES['Mul']}."
    if kind in ("Sin", "Cos", "Exp"):
        inner = evaluate(e[1], env, "the expression")
        outer = stencil(OPERATIONS[kind], inner, 1e-3)
        du = slope(e[1], var, env, 1e-3)
        if close(got, outer, DIFF_RTOL) and not close(du, 1.0, DIFF_RTOL):
            return (f"you left out the factor du, the derivative of the inside ({show(e[1])}). The "
                    f"{RULES[kind]}.")
        if close(got, -want, DIFF_RTOL):
            return f"the sign is wrong. The {RULES[kind]}."
        return f"the {RULES[kind]}."
    if kind == "Add":
        return f"the {RULES['Add']}."
    return "differentiate every child with the same var and combine the results by the rule of the node."


def judge_diff(diff: Callable, Expr: type, case: DiffCase, points: list[Env], seed: int,
               expected: Callable[[DiffCase, Env], float] | None = None) -> float:
    """The student's derivative of one case, evaluated at the points, against finite differences of the
    expression (or `expected`, the grader's exact values). Returns the worst relative error."""
    what = f"diff({show(case.expr)}, {case.var!r})"
    try:
        seen = call_student(what, in_kernel, differentiate, diff, Expr, to_table(case.expr), case.var)
    except NotDone:
        raise NotDone("diff") from None
    if not seen["expr"] and seen["none"]:
        raise CheckFailure(f"{what} returned None: does every branch of your diff return an expression "
                           f"(seed {seed})?")
    if not seen["expr"]:
        raise CheckFailure(f"{what} returned {seen['repr']} ({seen['type']}); it must return an expression "
                           "built from "
                           f"the classes, e.g. Const(0.0) rather than the number 0.0 (seed {seed}).")
    d = from_table(seen["table"])
    worst = 0.0
    for env in points:
        got = evaluate(d, env, what)
        rtol, fd_error = (1e-13 if case.exact else 1e-10 if expected else 1e-7), 0.0
        if expected:
            want = expected(case, env)
        elif case.exact:
            want = slope(case.expr, case.var, env, 0.5)
        else:  # the fourth-order stencil's own error, from the change between two steps, widens the bar
            want = slope(case.expr, case.var, env, 1e-3)
            fd_error = 10 * abs(want - slope(case.expr, case.var, env, 2e-3))
        error = abs(got - want) / max(1.0, abs(want))
        worst = max(worst, error)
        if error <= rtol or abs(got - want) <= fd_error:
            continue
        at = ", ".join(f"{name} = {value:g}" for name, value in env.items() if name in show(case.expr))
        at = f"at {at}" if at else "everywhere"
        shown = 0.0 if abs(want) <= max(fd_error, 1e-12) else want  # finite differences of a constant
        hint = diff_hint(case, env, got, want, lambda other, at=env: right_for(diff, Expr, case, other, at))
        raise CheckFailure(
            f"{what}: your derivative evaluates to {got!r} {at}, but finite differences of "
            f"{show(case.expr)} give {shown!r} (seed {seed}).\nHint: {hint}")
    return worst


def right_for(diff: Callable, Expr: type, case: DiffCase, other: str, env: Env) -> bool:
    """Whether the student's diff of the case's expression with respect to `other` is right at env."""
    try:
        seen = call_student("diff", in_kernel, differentiate, diff, Expr, to_table(case.expr), other)
        got = evaluate(from_table(seen["table"]), env, "diff") if seen["expr"] else math.nan
    except CheckFailure:
        return False
    return close(got, slope(case.expr, other, env, 1e-3), DIFF_RTOL)


def check_diff(diff: Callable, Expr: type, *, seed: int | None = None) -> None:
    """Every kind of node alone, polynomials exactly, other variables, compositions: each derivative
    expression the student's diff returns is evaluated and compared with finite differences."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    check_expression_classes(Expr)
    cases = diff_cases(rng)
    with repeatable(f"checks.check_diff(diff, Expr, seed={seed})"):
        worst = max(judge_diff(diff, Expr, case, case_points(case, rng), seed) for case in cases)
    passed("diff", f"{len(cases)} expressions (each kind of node alone, then combined, in x and in y), your "
                   f"derivative evaluated at 3 points each against finite differences, worst relative error "
                   f"{worst:.1e}, exact on polynomials (seed {seed})")
