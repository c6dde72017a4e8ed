"""Lesson 02 (chain rule on graphs): the check functions directly, then the notebook as nbgrader grades it.

Each wrong solution below is a mistake students make; it is used twice: exec'd and handed to the check
functions (fast unit tests), and injected into the notebook in place of the solution (slow tests: that
exercise must lose its points and every other exercise keep them).
"""

from __future__ import annotations

from pathlib import Path

import lesson_harness as harness
import numpy as np
import pytest

from autograder import lesson02 as visible
from autograder.checks import CheckFailure
from autograder.hidden import lesson02 as hidden
from autograder.hidden import lesson02_trusted as trusted

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
    "adjoint_trace": """
adjoints = {
    "v5": 1,
    "v4": 1,
    "v3": -1,
    "v2": 1,
    "v1": 1,
    "v0": 2 - math.cos(5),
    "v-1": 5 + 1 / 2,
}
""",
}


def with_change(name: str, old: str, new: str) -> str:
    """The notebook's solution with one slip introduced (the slip must really change the code)."""
    source = SOLUTIONS[name]
    assert old in source, (name, old)
    return source.replace(old, new)


# grade_id -> {bug name: (source, a fragment the failure message must contain)}
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
        "reachability_only": (
            """
def count_paths(edges, src, dst):
    if src == dst:
        return 1
    return max([count_paths(edges, v, dst) for (u, v) in edges if u == src], default=0)
""",
            "number of paths",
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
            "you computed x - c instead",
        ),
        "constant_not_lifted": (
            with_change(
                "dual",
                "        other = Dual.lift(other)\n        return Dual(self.value + other.value",
                "        return Dual(self.value + other.value",
            ),
            "Dual(c, 0.0)",
        ),
    },
    "adjoint_trace": {
        "missing_plus_equals": (
            with_change("adjoint_trace", 'adjoints["v0"] += adjoints["v2"] * x1\n', ""),
            "the += line",
        ),
        "sign_of_v3": (with_change("adjoint_trace", 'adjoints["v5"] * -1.0', 'adjoints["v5"] * 1.0'), "v3"),
        "wrong_factor_in_product": (
            with_change("adjoint_trace", 'adjoints["v2"] * x2', 'adjoints["v2"] * x1'),
            "v-1",
        ),
        "quoted_number": (
            SOLUTIONS["adjoint_trace"] + 'adjoints["v-1"] = "5.5"\n',
            "without quotes",
        ),
    },
}

CHECKS = {
    "count_paths": (visible.check_count_paths, hidden.check_count_paths),
    "sum_over_paths": (visible.check_sum_over_paths, hidden.check_sum_over_paths),
    "forward_mode": (visible.check_forward_mode, hidden.check_forward_mode),
    "reverse_mode": (visible.check_reverse_mode, hidden.check_reverse_mode),
    "dual": (visible.check_dual, hidden.check_dual),
    "adjoint_trace": (visible.check_adjoint_trace, hidden.check_adjoint_trace),
}
DEFINES = {
    "count_paths": "count_paths",
    "sum_over_paths": "sum_over_paths",
    "forward_mode": "forward_mode",
    "reverse_mode": "reverse_mode",
    "dual": "Dual",
    "adjoint_trace": "adjoints",
}
SEEDED = {"count_paths", "sum_over_paths", "forward_mode", "reverse_mode", "dual"}


def define(source: str, name: str):
    """Execute one solution's source and return what it defines."""
    namespace: dict = {}
    exec(HEADER + source, namespace)
    return namespace[DEFINES[name]]


def run_check(check, obj, name: str, seed: int) -> None:
    if name in SEEDED:
        check(obj, seed=seed)
    else:
        check(obj)


# ---------------------------------------------------------------------------------------------------------
# The check functions, without notebooks
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_correct_solution_passes_visible_and_hidden_checks_on_many_seeds(name):
    obj = define(SOLUTIONS[name], name)
    for seed in range(12):
        for check in CHECKS[name]:
            run_check(check, obj, name, seed)


@pytest.mark.parametrize("name", sorted(OTHER_STYLES))
def test_other_correct_styles_pass(name):
    obj = define(OTHER_STYLES[name], name)
    for seed in range(12):
        for check in CHECKS[name]:
            run_check(check, obj, name, seed)


@pytest.mark.parametrize(("name", "bug"), [(name, bug) for name, bugs in BUGS.items() for bug in bugs])
def test_each_bug_fails_the_visible_check_with_a_useful_message(name, bug):
    source, fragment = BUGS[name][bug]
    obj = define(source, name)
    for seed in range(8):
        with pytest.raises(CheckFailure) as info:
            run_check(CHECKS[name][0], obj, name, seed)
        assert fragment in str(info.value), str(info.value)
        if name in SEEDED:
            assert f"seed {seed}" in str(info.value)


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
    three_passes = define("""
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
""", "reverse_mode")
    for seed in range(4):
        visible.check_reverse_mode(three_passes, seed=seed)


def test_expected_answers_agree_with_the_worked_example():
    # e = (a + b) * (b + 1) at a = 2, b = 1: de/db = 1*2 + 1*3 = 5, de/da = 2.
    edges = {("a", "c"): 1.0, ("b", "c"): 1.0, ("b", "d"): 1.0, ("c", "e"): 2.0, ("d", "e"): 3.0}
    nodes = ["a", "b", "c", "d", "e"]
    T = trusted.total_derivatives(edges, nodes)
    assert T[nodes.index("b"), nodes.index("e")] == pytest.approx(5.0)
    assert T[nodes.index("a"), nodes.index("e")] == pytest.approx(2.0)
    assert trusted.path_counts(edges, nodes)[nodes.index("b"), nodes.index("e")] == 2


def test_random_graphs_are_acyclic_with_stray_nodes_and_many_paths():
    rng = np.random.default_rng(3)
    g = visible.random_graph(rng, 5)
    counts = trusted.path_counts(g.edges, g.nodes)
    assert np.all(np.diag(counts) == 1)  # acyclic: each node has only the empty path to itself
    i, j = g.nodes.index(g.src), g.nodes.index(g.dst)
    assert counts[i, j] > 5
    assert any(counts[i, k] == 0 for k in range(len(g.nodes)))  # a node src cannot reach
    assert any(counts[k, j] == 0 for k in range(len(g.nodes)))  # a node that cannot reach dst
    assert sorted(g.nodes) != g.nodes


def test_hidden_adjoint_check_uses_the_reference_engine():
    pytest.importorskip("reference_impl.scalar")
    hidden.check_adjoint_trace(define(SOLUTIONS["adjoint_trace"], "adjoint_trace"))
    for source, _ in BUGS["adjoint_trace"].values():
        with pytest.raises(CheckFailure):
            hidden.check_adjoint_trace(define(source, "adjoint_trace"))


# ---------------------------------------------------------------------------------------------------------
# The notebook
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


NOTEBOOK_BUGS = [
    ("count_paths", "counts_edges"),
    ("count_paths", "reachability_only"),
    ("sum_over_paths", "adds_along_a_path"),
    ("sum_over_paths", "counts_paths"),
    ("forward_mode", "storage_order"),
    ("forward_mode", "recursion_without_memory"),
    ("reverse_mode", "forward_topological_order"),
    ("reverse_mode", "overwrites_instead_of_adding"),
    ("dual", "product_rule"),
    ("dual", "division_without_quotient_rule"),
    ("adjoint_trace", "missing_plus_equals"),
    ("adjoint_trace", "sign_of_v3"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "bug"), NOTEBOOK_BUGS)
def test_a_typical_bug_loses_only_its_own_points(notebooks, source_nb, name, bug):
    nb = notebooks.with_cell_source(source_nb, name, harness.answer_cell(BUGS[name][bug][0], HEADER))
    harness.assert_only_cells_lose_points(harness.run_and_grade(notebooks, nb), [TEST_CELLS[name]],
                                          what=f"{bug} in {name}")


@pytest.mark.slow
def test_correct_solutions_in_another_style_earn_full_marks(notebooks, source_nb):
    answers = {name: harness.answer_cell(body, HEADER) for name, body in OTHER_STYLES.items()}
    harness.assert_answers_earn_full_marks(notebooks, source_nb, answers)


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

def test_visible_module_holds_no_solution_line(source_nb):
    harness.assert_module_holds_no_solution_line(Path(visible.__file__), source_nb, at_least=11)


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules(source_nb):
    harness.run_in_student_kit(harness.visible_cells_script(source_nb), NOTEBOOK.parent)


def test_visible_checks_work_without_the_exact_answers(monkeypatch):
    """In a student's kit the graph checks judge each node against the student's own neighbouring values:
    correct solutions pass and every typical bug still fails there."""
    monkeypatch.setattr(visible, "_trusted", None)
    for name in SOLUTIONS:
        for source in (SOLUTIONS[name], OTHER_STYLES.get(name, SOLUTIONS[name])):
            for seed in range(4):
                run_check(CHECKS[name][0], define(source, name), name, seed)
    for name, bugs in BUGS.items():
        for source, fragment in bugs.values():
            for seed in range(4):
                with pytest.raises(CheckFailure) as info:
                    run_check(CHECKS[name][0], define(source, name), name, seed)
                message = str(info.value)
                assert any(text in message for text in (fragment, "Hint:", "A sweep uses each edge")), message
