"""Lesson 02 (chain rule on graphs): the check functions in-process, then the notebook as nbgrader grades it.

Each wrong solution below is a mistake students make. It replaces its answer cell in the notebook's own
namespace (lesson_harness.answer_namespace: the given and answer cells exec'd in order, no kernel), and the
checks are called directly: the visible check must fail with a message naming the cause, the hidden check
must fail too, and every other exercise's checks must still pass (a bug costs only its own points). A few
representative bugs also go through the real grading path in a kernel.
"""

from __future__ import annotations

import math
from pathlib import Path

import lesson_harness as harness
import nbformat
import numpy as np
import pytest

from autograder import lesson02 as visible
from autograder.checks import CheckFailure, NotDone, repeat_line
from autograder.course.notebooks import cell_grade_id
from autograder.hidden import lesson02 as hidden

NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "02_chain_rule" / "chain_rule.ipynb"

HEADER = "import math\n\n"

KAHN = """
    children, waiting = {}, {}
    for (u, v) in edges:
        children.setdefault(u, []).append(v)
        children.setdefault(v, [])
        waiting[v] = waiting.get(v, 0) + 1
        waiting.setdefault(u, 0)
    order, ready = [], [n for n in children if waiting[n] == 0]
    while ready:
        u = ready.pop()
        order.append(u)
        for v in children[u]:
            waiting[v] -= 1
            if waiting[v] == 0:
                ready.append(v)
"""

SOLUTIONS = {
    "count_paths": """
def count_paths(edges, src, dst):
    if src == dst:
        return 1
    return sum(count_paths(edges, v, dst) for (u, v) in edges if u == src)
""",
    "sum_over_paths": """
def sum_over_paths(edges, src, dst):
    total = 0.0
    stack = [(src, 1.0)]
    while stack:
        node, product = stack.pop()
        if node == dst:
            total += product
            continue
        for (u, v), d in edges.items():
            if u == node:
                stack.append((v, product * d))
    return total
""",
    "forward_mode": f"""
def forward_mode(edges, src):
{KAHN}
    deriv = {{n: 0.0 for n in order}}
    deriv[src] = 1.0
    for u in order:
        for v in children[u]:
            deriv[v] += deriv[u] * edges[(u, v)]
    return deriv
""",
    "reverse_mode": f"""
def reverse_mode(edges, dst):
{KAHN}
    grad = {{n: 0.0 for n in order}}
    grad[dst] = 1.0
    for u in reversed(order):
        for v in children[u]:
            grad[u] += edges[(u, v)] * grad[v]
    return grad
""",
    "dual": """
class Dual:
    def __init__(self, value, deriv=0.0):
        self.value = value
        self.deriv = deriv

    @staticmethod
    def lift(other):
        return other if isinstance(other, Dual) else Dual(other, 0.0)

    def __add__(self, other):
        other = Dual.lift(other)
        return Dual(self.value + other.value, self.deriv + other.deriv)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.deriv)

    def __sub__(self, other):
        return self + (-Dual.lift(other))

    def __rsub__(self, other):
        return Dual.lift(other) - self

    def __mul__(self, other):
        other = Dual.lift(other)
        return Dual(self.value * other.value, self.deriv * other.value + self.value * other.deriv)

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = Dual.lift(other)
        return Dual(self.value / other.value,
                    (self.deriv * other.value - self.value * other.deriv) / other.value**2)

    def __rtruediv__(self, other):
        return Dual.lift(other) / self

    def __pow__(self, p):
        return Dual(self.value**p, p * self.value ** (p - 1) * self.deriv)

    def exp(self):
        return Dual(math.exp(self.value), math.exp(self.value) * self.deriv)

    def log(self):
        return Dual(math.log(self.value), self.deriv / self.value)

    def sin(self):
        return Dual(math.sin(self.value), math.cos(self.value) * self.deriv)

    def cos(self):
        return Dual(math.cos(self.value), -math.sin(self.value) * self.deriv)
""",
    "diff": """
def diff(e, var):
    if isinstance(e, Const):
        return Const(0.0)
    if isinstance(e, Var):
        return Const(1.0 if e.name == var else 0.0)
    if isinstance(e, Add):
        return Add(diff(e.left, var), diff(e.right, var))
    if isinstance(e, Mul):
        return Add(Mul(diff(e.left, var), e.right), Mul(e.left, diff(e.right, var)))
    if isinstance(e, Sin):
        return Mul(Cos(e.arg), diff(e.arg, var))
    if isinstance(e, Cos):
        return Mul(Mul(Const(-1.0), Sin(e.arg)), diff(e.arg, var))
    if isinstance(e, Exp):
        return Mul(Exp(e.arg), diff(e.arg, var))
    raise TypeError(e)
""",
    "adjoint_trace": """
x1, x2 = 2.0, 5.0
adjoints = {"v5": 1.0}
adjoints["v4"] = adjoints["v5"] * 1.0
adjoints["v3"] = adjoints["v5"] * -1.0
adjoints["v2"] = adjoints["v4"] * 1.0
adjoints["v1"] = adjoints["v4"] * 1.0
adjoints["v0"] = adjoints["v3"] * math.cos(x2)
adjoints["v-1"] = adjoints["v2"] * x2
adjoints["v0"] += adjoints["v2"] * x1
adjoints["v-1"] += adjoints["v1"] / x1
""",
}

# Correct solutions written differently from the notebook's: they must get full marks too.
OTHER_STYLES = {
    "count_paths": """
def count_paths(edges, src, dst):
    memo = {}

    def paths_from(node):
        if node == dst:
            return 1
        if node not in memo:
            memo[node] = sum(paths_from(v) for (u, v) in edges if u == node)
        return memo[node]

    return paths_from(src)
""",
    "forward_mode": """
def forward_mode(edges, src):
    parents = {}
    for (u, v), d in edges.items():
        parents.setdefault(v, []).append((u, d))
        parents.setdefault(u, [])
    memo = {}

    def deriv(node):
        if node not in memo:
            memo[node] = 1.0 if node == src else sum(deriv(u) * d for u, d in parents[node])
        return memo[node]

    return {node: deriv(node) for node in parents}
""",
    "reverse_mode": """
def reverse_mode(edges, dst):
    children = {}
    for (u, v), d in edges.items():
        children.setdefault(u, []).append((v, d))
        children.setdefault(v, [])
    memo = {}

    def adjoint(node):
        if node not in memo:
            memo[node] = 1.0 if node == dst else sum(d * adjoint(v) for v, d in children[node])
        return memo[node]

    return {node: adjoint(node) for node in children}
""",
    "diff": """
def diff(e, var):
    def add(a, b):
        if a == Const(0.0):
            return b
        return a if b == Const(0.0) else Add(a, b)

    def mul(a, b):
        if Const(0.0) in (a, b):
            return Const(0.0)
        if a == Const(1.0):
            return b
        return a if b == Const(1.0) else Mul(a, b)

    if isinstance(e, Const):
        return Const(0.0)
    if isinstance(e, Var):
        return Const(float(e.name == var))
    if isinstance(e, Add):
        return add(diff(e.left, var), diff(e.right, var))
    if isinstance(e, Mul):
        return add(mul(diff(e.left, var), e.right), mul(e.left, diff(e.right, var)))
    inner = diff(e.arg, var)
    if isinstance(e, Sin):
        return mul(Cos(e.arg), inner)
    if isinstance(e, Cos):
        return mul(-1 * Sin(e.arg), inner)
    return mul(e, inner)
""",
    "adjoint_trace": """
adjoints = {
    "v5": 1,
    "v4": 1,
    "v3": -1,
    "v2": 1,
    "v1": 1,
    "v0": 1.7163,  # rounded to 4 decimals, as the notebook allows
    "v-1": 5 + 1 / 2,
}
""",
}


def with_change(name: str, old: str, new: str) -> str:
    """The notebook's solution with one slip introduced (the slip must really change the code)."""
    source = SOLUTIONS[name]
    assert old in source, (name, old)
    return source.replace(old, new)


COPY_THEN_FOLLOW_PATHS = """
def {name}(edges, start):
    plain = {{k: float(v) for k, v in edges.items()}}  # plain floats: no read or use is counted any more
    nodes = {{n for edge in plain for n in edge}}

    def paths(a, b):
        if a == b:
            return 1.0
        return sum(d * paths(v, b) for (u, v), d in plain.items() if u == a)

    return {{n: paths({pair}) for n in nodes}}
"""

SCAN_PER_NODE = """
def forward_mode(edges, src):
    plain = dict(edges)
    nodes = {n for edge in plain for n in edge}
    deriv = {n: 0.0 for n in nodes}
    deriv[src] = 1.0
    done = set()
    while len(done) < len(nodes):
        for n in nodes - done:  # scans every edge again for every node
            parents = [u for (u, v) in plain if v == n]
            if all(p in done for p in parents):
                if n != src:
                    deriv[n] = sum(deriv[u] * float(plain[(u, v)]) for (u, v) in plain if v == n)
                done.add(n)
    return deriv
"""

SCAN_REMAINING_NODES = """
def forward_mode(edges, src):
    parents = {}
    for (u, v), d in edges.items():  # each edge read once
        parents.setdefault(v, []).append((u, d))
        parents.setdefault(u, [])
    deriv = {n: 0.0 for n in parents}
    deriv[src] = 1.0
    done, remaining = set(), list(parents)
    while remaining:
        for n in remaining:  # look for a node whose parents are all done: a scan of all nodes every time
            if all(u in done for u, _ in parents[n]):
                if n != src:
                    deriv[n] = sum(deriv[u] * d for u, d in parents[n])
                done.add(n)
                remaining.remove(n)
                break
    return deriv
"""

SHIFTED = """
    def shifted(node, t):  # the expression with var replaced by var + t
        if isinstance(node, Var):
            return Add(node, Const(t)) if node.name == var else node
        if isinstance(node, Const):
            return node
        return type(node)(*(shifted(child, t) for child in children(node)))
"""

# grade_id -> {bug name: (answer cell source, a fragment the visible failure message must contain)}
BUGS = {
    "count_paths": {
        "counts_edges": (
            """
def count_paths(edges, src, dst):
    reach = {src}
    for _ in range(len(edges)):
        reach |= {v for (u, v) in edges if u in reach}
    back = {dst}
    for _ in range(len(edges)):
        back |= {u for (u, v) in edges if v in back}
    return sum(1 for (u, v) in edges if u in reach and v in back)
""",
            "counted edges",
        ),
        "largest_child_only": (
            with_change("count_paths", "return sum(", "return max([").replace(
                "if u == src)", "if u == src], default=0)"),
            "whether a path exists, not how many",
        ),
        "visited_set": (
            """
def count_paths(edges, src, dst):
    visited = set()

    def walk(node):
        if node == dst:
            return 1
        if node in visited:
            return 0
        visited.add(node)
        return sum(walk(v) for (u, v) in edges if u == node)

    return walk(src)
""",
            "your count is too low: it misses routes. Routes that meet at a node (one with two parents) are "
            "still different routes: each counts, and so does each way on from that node. So a node reached "
            "a second time must count again: a visited set",
        ),
        "overwrites_instead_of_adding": (
            f"""
def count_paths(edges, src, dst):
{KAHN}
    count = {{n: 0 for n in order}}
    count[src] = 1
    for u in order:
        for v in children[u]:
            count[v] = count[u]
    return count.get(dst, 0)
""",
            "finds whether a path exists, not how many. Routes that meet at a node (one with two parents) "
            "are still different routes: each counts, and so does each way on from that node. Add the counts",
        ),
        "memo_answers_zero": (
            """
def count_paths(edges, src, dst):
    memo = {}

    def walk(node):
        if node == dst:
            return 1
        if node in memo:
            return 0
        memo[node] = sum(walk(v) for (u, v) in edges if u == node)
        return memo[node]

    return walk(src)
""",
            "a memo that answers 0",
        ),
        "follows_edges_backwards": (
            with_change("count_paths", "count_paths(edges, v, dst) for (u, v) in edges if u == src",
                        "count_paths(edges, u, dst) for (u, v) in edges if v == src"),
            "backwards",
        ),
        "counts_reachable_nodes": (
            """
def count_paths(edges, src, dst):
    seen, stack = {src}, [src]
    while stack:
        node = stack.pop()
        for (u, v) in edges:
            if u == node and v not in seen:
                seen.add(v)
                stack.append(v)
    return len(seen) if dst in seen else 0
""",
            "counted reachable nodes",
        ),
        "memo_as_default_argument": (
            """
def count_paths(edges, src, dst, memo={}):
    if src == dst:
        return 1
    if src not in memo:
        memo[src] = sum(count_paths(edges, v, dst) for (u, v) in edges if u == src)
    return memo[src]
""",
            "keeps state between calls",
        ),
        "recursion_on_the_same_node": (
            with_change("count_paths", "count_paths(edges, v, dst)", "count_paths(edges, src, dst)"),
            "so yours calls itself without end: check that each recursive call moves on",
        ),
        "empties_edges": (
            """
def count_paths(edges, src, dst):
    out = {}
    while edges:
        (u, v), _ = edges.popitem()
        out.setdefault(u, []).append(v)

    def walk(node):
        return 1 if node == dst else sum(walk(child) for child in out.get(node, []))

    return walk(src)
""",
            "changed the edges dictionary",
        ),
    },
    "sum_over_paths": {
        "adds_along_a_path": (
            with_change("sum_over_paths", "product * d", "product + d").replace(
                "[(src, 1.0)]", "[(src, 0.0)]"
            ),
            "ADD",
        ),
        "counts_paths": (with_change("sum_over_paths", "product * d", "product"), "number of paths"),
        "never_pops_the_stack": (
            with_change("sum_over_paths", "stack.pop()", "stack[-1]"),
            "so your function never ends: look for a loop whose condition never changes",
        ),
        "clears_edges": (
            with_change("sum_over_paths", "    return total", "    edges.clear()\n    return total"),
            "changed the edges dictionary",
        ),
    },
    "forward_mode": {
        "storage_order": (
            """
def forward_mode(edges, src):
    deriv = {}
    for (u, v) in edges:
        deriv[u] = 0.0
        deriv[v] = 0.0
    deriv[src] = 1.0
    for (u, v), d in edges.items():
        deriv[v] += deriv[u] * d
    return deriv
""",
            "topological order",
        ),
        "recursion_without_memory": (
            """
def forward_mode(edges, src):
    nodes = {n for edge in edges for n in edge}

    def deriv(node):
        if node == src:
            return 1.0
        return sum(deriv(u) * edges[(u, v)] for (u, v) in edges if v == node)

    return {node: deriv(node) for node in nodes}
""",
            "times",
        ),
        "forgets_unreachable_nodes": (
            with_change("forward_mode", "deriv = {n: 0.0 for n in order}\n", "deriv = {}\n").replace(
                "deriv[v] += deriv[u] * edges[(u, v)]",
                "if u in deriv:\n                deriv[v] = deriv.get(v, 0.0) + deriv[u] * edges[(u, v)]",
            ),
            "no entry",
        ),
        "overwrites_instead_of_adding": (
            with_change("forward_mode", "deriv[v] += deriv[u]", "deriv[v] = deriv[u]"),
            "+=",
        ),
        "copies_edges_then_follows_paths": (
            COPY_THEN_FOLLOW_PATHS.format(name="forward_mode", pair="start, n"), "Python steps"),
        "scans_all_edges_per_node": (SCAN_PER_NODE, "scans all edges again for every node"),
        "scans_remaining_nodes_for_a_ready_one": (SCAN_REMAINING_NODES, "scans all remaining nodes"),
        "memo_as_default_argument": (
            OTHER_STYLES["forward_mode"]
            .replace("def forward_mode(edges, src):", "def forward_mode(edges, src, memo={}):")
            .replace("    memo = {}\n", ""),
            "keeps state between calls",
        ),
    },
    "reverse_mode": {
        "forward_topological_order": (
            with_change("reverse_mode", "for u in reversed(order):", "for u in order:"),
            "REVERSE topological",
        ),
        "overwrites_instead_of_adding": (
            with_change("reverse_mode", "grad[u] += edges", "grad[u] = edges"),
            "+=",
        ),
        "forgets_to_start_from_one": (
            with_change("reverse_mode", "grad[dst] = 1.0", "pass"),
            "start the sweep from 1.0",
        ),
        "forgets_the_childs_adjoint": (
            with_change("reverse_mode", "edges[(u, v)] * grad[v]", "edges[(u, v)]"),
            "the factor from the child is missing",
        ),
        "copies_edges_then_follows_paths": (
            COPY_THEN_FOLLOW_PATHS.format(name="reverse_mode", pair="n, start"), "Python steps"),
    },
    "dual": {
        "product_rule": (
            with_change(
                "dual", "self.deriv * other.value + self.value * other.deriv", "self.deriv * other.deriv"
            ),
            "product rule",
        ),
        "division_without_quotient_rule": (
            with_change(
                "dual",
                "(self.deriv * other.value - self.value * other.deriv) / other.value**2",
                "self.deriv / other.deriv",
            ),
            "quotient rule",
        ),
        "exp_without_chain_rule": (
            with_change("dual", "math.exp(self.value) * self.deriv)", "math.exp(self.value))"),
            "chain rule",
        ),
        "cos_sign": (
            with_change("dual", "-math.sin(self.value) * self.deriv", "math.sin(self.value) * self.deriv"),
            "minus sign",
        ),
        "rsub_same_as_sub": (
            with_change("dual", "return Dual.lift(other) - self", "return self - other"),
            "you computed x - c instead. With a number on the left, c - x calls x.__rsub__(c), which must "
            "return c - x, whose derivative is -x'.",
        ),
        "constant_not_lifted": (
            with_change(
                "dual",
                "        other = Dual.lift(other)\n        return Dual(self.value + other.value",
                "        return Dual(self.value + other.value",
            ),
            "Dual.lift(other)",
        ),
        "mul_without_lift": (
            with_change("dual",
                        "        other = Dual.lift(other)\n        return Dual(self.value * other.value",
                        "        return Dual(self.value * other.value"),
            "Dual.lift(other)",
        ),
        "radd_calls_itself": (
            with_change("dual", "    __radd__ = __add__\n",
                        "    def __radd__(self, other):\n        return other + self\n"),
            "calls itself again",
        ),
        "neg_negates_only_the_value": (
            with_change("dual", "return Dual(-self.value, -self.deriv)",
                        "return Dual(-self.value, self.deriv)"),
            "negate the value AND the derivative",
        ),
        "add_modifies_self": (
            with_change("dual",
                        "        other = Dual.lift(other)\n        return Dual(self.value + other.value, "
                        "self.deriv + other.deriv)",
                        "        other = Dual.lift(other)\n        self.value += other.value\n"
                        "        self.deriv += other.deriv\n        return self"),
            "modified its input: after the operation, x.value and x.deriv had changed, and it returned x "
            "itself",
        ),
        "neg_modifies_its_input": (
            with_change("dual", "        return Dual(-self.value, -self.deriv)",
                        "        self.deriv = -self.deriv\n        return Dual(-self.value, self.deriv)"),
            "after the operation, x.deriv had changed (seed",
        ),
        "one_method_left_blank": (
            with_change("dual", "        return Dual(-self.value, -self.deriv)",
                        "        raise NotImplementedError()"),
            "Dual.__neg__ (used by",
        ),
    },
    "adjoint_trace": {
        "missing_plus_equals": (
            with_change("adjoint_trace", 'adjoints["v0"] += adjoints["v2"] * x1\n', ""),
            "the += line that adds the other one",
        ),
        "sign_of_v3": (with_change("adjoint_trace", 'adjoints["v5"] * -1.0', 'adjoints["v5"] * 1.0'),
                       "dv5/dv3 = 1"),
        "wrong_factor_in_product": (
            with_change("adjoint_trace", 'adjoints["v2"] * x2', 'adjoints["v2"] * x1'),
            "v-1bar = v1bar * dv1/dv-1 + v2bar * dv2/dv-1",
        ),
        "too_few_digits": (SOLUTIONS["adjoint_trace"] + 'adjoints["v0"] = 1.72\n', "give more digits"),
        "quoted_number": (
            SOLUTIONS["adjoint_trace"] + 'adjoints["v-1"] = "5.5"\n',
            "no quotes",
        ),
    },
    "diff": {
        "constant_has_derivative_one": (
            with_change("diff", "        return Const(0.0)\n    if isinstance(e, Var)",
                        "        return Const(1.0)\n    if isinstance(e, Var)"),
            "derivative of a constant is 0",
        ),
        "every_variable_has_derivative_one": (
            with_change("diff", "Const(1.0 if e.name == var else 0.0)", "Const(1.0)"), "another variable"),
        "bare_number": (
            with_change("diff", "        return Const(0.0)\n    if isinstance(e, Var)",
                        "        return 0.0\n    if isinstance(e, Var)"),
            "Const(0.0) rather than the number",
        ),
        "product_of_derivatives": (
            with_change("diff", "Add(Mul(diff(e.left, var), e.right), Mul(e.left, diff(e.right, var)))",
                        "Mul(diff(e.left, var), diff(e.right, var))"),
            "you multiplied the two derivatives",
        ),
        "product_rule_paired_wrongly": (
            with_change("diff", "Add(Mul(diff(e.left, var), e.right), Mul(e.left, diff(e.right, var)))",
                        "Add(Mul(diff(e.left, var), e.left), Mul(e.right, diff(e.right, var)))"),
            "each factor's derivative must multiply the OTHER factor",
        ),
        "product_rule_one_term": (
            with_change("diff", "Add(Mul(diff(e.left, var), e.right), Mul(e.left, diff(e.right, var)))",
                        "Mul(diff(e.left, var), e.right)"),
            "one of the two terms is missing",
        ),
        "sin_without_inner_derivative": (
            with_change("diff", "return Mul(Cos(e.arg), diff(e.arg, var))", "return Cos(e.arg)"),
            "you left out the factor du",
        ),
        "cos_sign": (
            with_change("diff", "Mul(Mul(Const(-1.0), Sin(e.arg)), diff(e.arg, var))",
                        "Mul(Sin(e.arg), diff(e.arg, var))"),
            "the sign is wrong",
        ),
        "exp_without_inner_derivative": (
            with_change("diff", "return Mul(Exp(e.arg), diff(e.arg, var))", "return Exp(e.arg)"),
            "you left out the factor du",
        ),
        "recursion_always_in_x": (
            SOLUTIONS["diff"].replace(", var)", ', "x")').replace('def diff(e, "x")', "def diff(e, var)"),
            "pass `var` on to the recursive calls",
        ),
        "finite_difference_expression": (
            "def diff(e, var):\n" + SHIFTED
            + "    h = 1e-5\n"
            "    return Mul(Const(0.5 / h), Add(shifted(e, h), Mul(Const(-1.0), shifted(e, -h))))\n",
            "did you build a finite difference",
        ),
        "crashes_on_exp": (
            with_change("diff", "return Mul(Exp(e.arg), diff(e.arg, var))",
                        "return Mul(Exp(e.argument), diff(e.arg, var))"),
            "diff(exp(x), 'x') raised AttributeError",
        ),
    },
}

EXERCISES = list(SOLUTIONS)
CHECKS = {
    "count_paths": (visible.check_count_paths, hidden.check_count_paths),
    "sum_over_paths": (visible.check_sum_over_paths, hidden.check_sum_over_paths),
    "forward_mode": (visible.check_forward_mode, hidden.check_forward_mode),
    "reverse_mode": (visible.check_reverse_mode, hidden.check_reverse_mode),
    "dual": (visible.check_dual, hidden.check_dual),
    "adjoint_trace": (visible.check_adjoint_trace, hidden.check_adjoint_trace),
    "diff": (visible.check_diff, hidden.check_diff),
}


def namespace(answers: dict[str, str] | None = None) -> dict:
    """The notebook's given and answer cells exec'd in order, some answer cells replaced (no kernel)."""
    replace = {gid: harness.answer_cell(source, HEADER) for gid, source in (answers or {}).items()}
    return harness.answer_namespace(NOTEBOOK, replace=replace)


def run_check(check, ns: dict, name: str, seed: int) -> None:
    """Call one exercise's visible or hidden check on what the namespace defines for it."""
    if name == "adjoint_trace":
        check(ns["adjoints"])
    elif name == "diff":
        check(ns["diff"], ns["Expr"], seed=seed)
    else:
        check(ns["Dual" if name == "dual" else name], seed=seed)


def failure(check, ns: dict, name: str, seed: int) -> str:
    with pytest.raises(CheckFailure) as info:
        run_check(check, ns, name, seed)
    return str(info.value)


# ---------------------------------------------------------------------------------------------------------
# The check functions, in-process
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", ["notebook", "tests", "other styles"])
def test_correct_answers_pass_visible_and_hidden_checks_on_many_seeds(answers):
    ns = namespace({"notebook": {}, "tests": SOLUTIONS, "other styles": OTHER_STYLES}[answers])
    for name in EXERCISES:
        for seed in range(3):
            for check in CHECKS[name]:
                run_check(check, ns, name, seed)


@pytest.mark.parametrize(("name", "bug"), [(name, bug) for name, bugs in BUGS.items() for bug in bugs])
def test_each_bug_fails_its_own_checks_with_its_cause(name, bug):
    """In a student's kernel (the checks called directly), on several seeds; the hidden check fails on its
    own too. That a bug costs no other exercise's points is tested through grading, below."""
    source, fragment = BUGS[name][bug]
    ns = namespace({name: source})
    for seed in range(3):
        message = failure(CHECKS[name][0], ns, name, seed)
        assert fragment in message, message
        assert "Traceback" not in message and "Edges:" not in message
        if name != "adjoint_trace" and "not written yet" not in message:  # randomised: say how to repeat it
            arguments = {"dual": "Dual", "diff": "diff, Expr"}.get(name, name)
            assert message.endswith(repeat_line(f"checks.check_{name}({arguments}, seed={seed})")), message
    failure(CHECKS[name][1], ns, name, 11)


def test_a_blank_exercise_says_not_written_yet():
    blanks = {"count_paths": "def count_paths(edges, src, dst):\n    raise NotImplementedError()\n",
              "diff": "def diff(e, var):\n    raise NotImplementedError()\n",
              "adjoint_trace": 'adjoints = {k: None for k in ["v5", "v4", "v3", "v2", "v1", "v0", "v-1"]}\n'}
    ns = namespace(blanks)
    for name in blanks:
        for check in CHECKS[name]:
            with pytest.raises(NotDone) as info:
                run_check(check, ns, name, 0)
            if name != "adjoint_trace":  # the exercise is named, never one of its test cases
                assert str(info.value).startswith(f"{name} is not written yet: "), str(info.value)


def test_adjoint_messages_give_the_rule_and_the_students_numbers_never_the_value_to_enter():
    correct = {"v4": 1.0, "v3": -1.0, "v2": 1.0, "v1": 1.0, "v0": 2 - math.cos(5.0), "v-1": 5.5}
    for source, _ in BUGS["adjoint_trace"].values():
        ns = namespace({"adjoint_trace": source})
        message = failure(visible.check_adjoint_trace, ns, "adjoint_trace", 0)
        entry = message.split("]")[0].split("[")[-1].strip("'")
        if entry in correct:
            want = correct[entry]
            for text in (repr(want), f"{want:.6g}", f"{want:g}", f"{want:.4f}"):
                assert f"= {text}" not in message and f"be {text}" not in message, (text, message)


def test_adjoint_entries_rounded_to_four_decimals_pass_and_three_are_called_close():
    rounded = {"v5": 1.0, "v4": 1.0, "v3": -1.0, "v2": 1.0, "v1": 1.0, "v0": 1.7163, "v-1": 5.5}
    visible.check_adjoint_trace(rounded)
    hidden.check_adjoint_trace(rounded)
    for check in CHECKS["adjoint_trace"]:
        with pytest.raises(CheckFailure, match="give more digits"):
            check({**rounded, "v0": 1.716})


def test_notebook_leaves_the_trace_to_the_student():
    """No cell before exercise 7 prints the gradient of f at (2, 5), and the table asks for every partial of
    v2 = v-1 * v0 (one of them would give the other away)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = [cell_grade_id(cell) for cell in nb.cells]
    before = "\n".join(cell.source for cell in nb.cells[: ids.index("adjoint_trace")])
    for leak in ("5.5", "2 - cos 5", "2 - math.cos(5", "1.7163", "= v_0$", "= v_{-1}$"):
        assert leak not in before, leak


def test_sweep_budget_counts_the_students_steps_not_the_checkers():
    ns = namespace()
    g = visible.layered_graph(np.random.default_rng(0), 80, 2)
    edges = visible.CountingEdges(g.edges)
    _, steps, over = visible.run_counting_steps("forward_mode", ns["forward_mode"], edges, "src",
                                                limit=visible.steps_budget(g))
    assert not over and 5 * len(g.edges) < steps < 30 * (len(g.edges) + len(g.nodes))


def test_visit_counting_sees_reads_and_arithmetic():
    edges = visible.CountingEdges({("a", "b"): 2.0, ("b", "c"): 3.0})
    for _, d in edges.items():
        assert isinstance(d, float)
    product = edges[("a", "b")] * 1.5
    assert product == 3.0 and type(product) is float
    assert 1.5 * edges[("b", "c")] == 4.5
    assert edges.get(("a", "c"), 0.0) == 0.0
    assert edges.reads == {("a", "b"): 2, ("b", "c"): 2}
    assert edges.uses == {("a", "b"): 1, ("b", "c"): 1}


def test_setup_passes_over_the_edges_are_not_counted_against_a_sweep():
    three_passes = """
def reverse_mode(edges, dst):
    nodes = {n for (u, v), d in edges.items() for n in (u, v)}
    indegree = {n: 0 for n in nodes}
    for (u, v), d in edges.items():
        indegree[v] += 1
    children = {n: [] for n in nodes}
    for (u, v), d in edges.items():
        children[u].append((v, d))
    order, ready = [], [n for n in nodes if indegree[n] == 0]
    while ready:
        u = ready.pop()
        order.append(u)
        for v, d in children[u]:
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    grad = {n: 0.0 for n in nodes}
    grad[dst] = 1.0
    for u in reversed(order):
        for v, d in children[u]:
            grad[u] += d * grad[v]
    return grad
"""
    ns = namespace({"reverse_mode": three_passes})
    for seed in range(3):
        visible.check_reverse_mode(ns["reverse_mode"], seed=seed)


def test_small_graphs_and_worked_example_agree_with_the_exact_answers():
    for case in visible.SMALL_GRAPHS:
        nodes = sorted({n for edge in case.edges for n in edge} | {case.src})
        g = visible.Graph(case.edges, case.src, case.dst, nodes)
        from_src = hidden.exact_values(g, case.src, forward=True, counting=True)
        assert from_src[case.dst][0] == case.paths, case.text
        derivative = hidden.exact_values(g, case.src, forward=True)[case.dst][0]
        assert derivative == pytest.approx(case.derivative), case.text
        if case.added is not None:  # each edge's derivative counts once per path through it
            to_dst = hidden.exact_values(g, case.dst, forward=False, counting=True)
            added = sum(d * from_src[u][0] * to_dst[v][0] for (u, v), d in case.edges.items())
            assert added == pytest.approx(case.added), case.text
    g = visible.EXAMPLE
    forward = hidden.exact_values(g, g.src, forward=True)
    backward = hidden.exact_values(g, g.dst, forward=False)
    for node in g.nodes:
        assert visible.EXAMPLE_SWEEPS["forward_mode"][node] == pytest.approx(forward[node][0])
        assert visible.EXAMPLE_SWEEPS["reverse_mode"][node] == pytest.approx(backward[node][0])


def test_exact_values_are_the_total_derivatives_of_the_graph():
    """The hidden checks' exact answers (backward passes of reference_impl.scalar) agree with (I - A)^-1."""
    g = visible.random_graph(np.random.default_rng(7), 5)
    index = {n: i for i, n in enumerate(g.nodes)}
    A = np.zeros((len(g.nodes), len(g.nodes)))
    for (u, v), d in g.edges.items():
        A[index[u], index[v]] = d
    T = np.linalg.inv(np.eye(len(g.nodes)) - A)
    forward = hidden.exact_values(g, g.src, forward=True)
    backward = hidden.exact_values(g, g.dst, forward=False)
    for n in g.nodes:
        assert forward[n][0] == pytest.approx(T[index[g.src], index[n]], abs=1e-12)
        assert backward[n][0] == pytest.approx(T[index[n], index[g.dst]], abs=1e-12)
        assert forward[n][1] >= abs(forward[n][0]) and backward[n][1] >= abs(backward[n][0])


def test_random_graphs_are_acyclic_with_stray_nodes_and_many_paths():
    rng = np.random.default_rng(3)
    g = visible.random_graph(rng, 5)
    from_src = hidden.exact_values(g, g.src, forward=True, counting=True)  # raises on a cycle
    to_dst = hidden.exact_values(g, g.dst, forward=False, counting=True)
    assert from_src[g.dst][0] > 5
    assert any(from_src[n][0] == 0 for n in g.nodes)  # a node src cannot reach
    assert any(to_dst[n][0] == 0 for n in g.nodes)  # a node that cannot reach dst
    assert sorted(g.nodes) != g.nodes


def test_exact_symbolic_derivative_matches_finite_differences():
    x, y = visible.V("x"), visible.V("y")
    e = visible.M(("Sin", visible.A(visible.M(x, y), ("Exp", visible.M(x, x)))),
                  ("Cos", visible.A(y, visible.C(2))))
    env = {"x": 0.3, "y": -0.7}
    fd = visible.slope(e, "x", env, 1e-3)
    assert hidden.exact_derivative(e, "x", env) == pytest.approx(fd, rel=1e-9)
    assert hidden.exact_derivative(e, "z", {**env, "z": 1.0}) == 0.0


def test_expressions_cross_to_the_students_classes_and_back_unchanged():
    """The probe that calls diff builds the checks' expressions from the notebook's classes, and turns the
    student's answer back into one: shared nodes stay shared, a node of another kind is named."""
    ns = namespace()
    x = visible.V("x")
    shared = visible.A(x, visible.C(1))
    e = visible.M(shared, ("Sin", shared))
    table = visible.to_table(e)
    assert len(table) == 5 and visible.from_table(table) == e
    built = visible.build_expression({c.__name__: c for c in ns["Expr"].__subclasses__()}, table)
    assert built == ns["Mul"](ns["Add"](ns["Var"]("x"), ns["Const"](1.0)),
                              ns["Sin"](ns["Add"](ns["Var"]("x"), ns["Const"](1.0))))
    back = visible.from_table(visible.expression_table(built))
    assert back == e and back[1] is back[2][1]
    odd = visible.expression_table(ns["Add"](ns["Var"]("x"), None))
    assert ["?", "None", "NoneType", True] in odd


# ---------------------------------------------------------------------------------------------------------
# The notebook in a kernel: only what a kernel shows
# ---------------------------------------------------------------------------------------------------------

TEST_CELLS = {name: f"test_{name}" for name in SOLUTIONS}

notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)


def test_notebook_has_every_exercise():
    assert set(SOLUTIONS) | set(TEST_CELLS.values()) <= set(harness.graded_metadata(NOTEBOOK))


@pytest.mark.slow
def test_source_notebook_earns_full_marks(notebooks, source_nb):
    harness.assert_full_marks(harness.run_and_grade(notebooks, source_nb), TEST_CELLS.values())


@pytest.mark.slow
def test_student_version_has_no_solutions_or_hidden_tests_and_scores_zero(notebooks, source_nb):
    harness.assert_release_is_safe_and_blank(notebooks, source_nb, TEST_CELLS.values(), at_least=20)


# representatives: a sweep that does too much work (the step budget counted in the kernel), a hand-worked
# entry, a symbolic rule (the expression crossing to the kernel's classes and back)
NOTEBOOK_BUGS = [
    ("forward_mode", "copies_edges_then_follows_paths"),
    ("adjoint_trace", "missing_plus_equals"),
    ("diff", "product_of_derivatives"),
]


@pytest.mark.slow
def test_a_typical_bug_loses_only_its_own_points(notebooks, source_nb):
    nb = source_nb
    for name, bug in NOTEBOOK_BUGS:  # one kernel run: each bug sits in a different exercise
        nb = notebooks.with_cell_source(nb, name, harness.answer_cell(BUGS[name][bug][0], HEADER))
    losing = [TEST_CELLS[name] for name, _ in NOTEBOOK_BUGS]
    scores = harness.run_and_grade(notebooks, nb)
    harness.assert_only_cells_lose_points(scores, losing, what=str(NOTEBOOK_BUGS))
    for name, bug in NOTEBOOK_BUGS:
        assert BUGS[name][bug][1] in scores[TEST_CELLS[name]].error, (name, bug)


def test_a_demo_cell_after_a_wrong_answer_prints_one_line_naming_the_exercise(capsys):
    """Dual.__mul__ without `return` breaks the dual-number demo: one line naming exercise 6's test, not a
    traceback pointing into the demo."""
    no_return = with_change("dual", "return Dual(self.value * other.value,", "Dual(self.value * other.value,")
    ns = namespace({"dual": no_return})
    shown = next(cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells
                 if cell.cell_type == "code" and "with demo(" in cell.source
                 and "g_two_inputs(Dual" in cell.source)
    exec(shown, ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("This demo raised TypeError"), lines
    assert lines[1] == "Run the test cells of exercise 6: they name the cause.", lines


# ---------------------------------------------------------------------------------------------------------
# The notebook judged as grading judges it: test cells (hidden tests included) run here, the student's
# objects are served over the grading channel (lesson_harness.judged_in_process), no kernel
# ---------------------------------------------------------------------------------------------------------


def judged(answers: dict[str, str]) -> dict:
    return harness.judged_in_process(
        NOTEBOOK, {gid: harness.answer_cell(source, HEADER) for gid, source in answers.items()})


def bug_rounds() -> list[dict[str, str]]:
    """Round k holds the k-th bug of every exercise that has one: one judged notebook then tests a bug of
    each of several exercises, and that every exercise without a bug in it keeps its points."""
    listed = {name: list(bugs) for name, bugs in BUGS.items()}
    return [{name: bugs[k] for name, bugs in listed.items() if k < len(bugs)}
            for k in range(max(len(bugs) for bugs in listed.values()))]


def test_source_notebook_and_other_styles_earn_full_marks_when_judged():
    harness.assert_full_marks(judged({}), TEST_CELLS.values())
    harness.assert_full_marks(judged(OTHER_STYLES), TEST_CELLS.values())


@pytest.mark.parametrize("round_", bug_rounds(), ids=lambda r: "+".join(r.values()))
def test_each_bug_loses_only_its_own_points_when_judged(round_):
    scores = judged({name: BUGS[name][bug][0] for name, bug in round_.items()})
    harness.assert_only_cells_lose_points(scores, [TEST_CELLS[name] for name in round_], what=str(round_))
    for name, bug in round_.items():
        error = scores[TEST_CELLS[name]].error
        assert BUGS[name][bug][1] in error and "Traceback" not in error, (name, bug, error)


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

def test_visible_module_holds_no_solution_line(source_nb):
    harness.assert_module_holds_no_solution_line(Path(visible.__file__), source_nb, at_least=11)


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules(source_nb):
    harness.run_in_student_kit(harness.visible_cells_script(source_nb), NOTEBOOK.parent)
