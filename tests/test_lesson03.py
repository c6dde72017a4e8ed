"""Lesson 03 (scalar backprop): the check functions directly, then the notebook as nbgrader grades it.

Every typical bug below is a small edit of the notebook's own solution cell. It is used twice: exec'd with
the rest of the notebook's code and handed to the check functions (a student's kit: the message must name
the cause), and judged as grading judges it (`judged`: the test cells run in the grader, the student's
objects behind the grading channel): the bug's own test cell must lose its points and the network and
training cells, which need a whole engine, keep theirs. A few bugs also go through a real kernel.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import lesson_harness as harness
import nbformat
import pytest

from autograder import lesson03 as visible
from autograder.checks import CheckFailure, NotDone
from autograder.course.judge import is_autograded_test, judge, loopback
from autograder.course.notebooks import CellScore
from autograder.hidden import lesson03 as hidden

NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "03_scalar_backprop" / "scalar_backprop.ipynb"

# answer cell -> the test cells that grade it
TEST_CELLS = {
    "add_mul": ["test_add", "test_mul"],
    "power": ["test_power"],
    "exp_log": ["test_exp", "test_log"],
    "tanh_relu": ["test_tanh", "test_relu"],
    "sigmoid": ["test_sigmoid"],
    "topological_sort": ["test_topological_sort"],
    "backprop": ["test_backprop"],
    "mlp": ["test_mlp"],
    "train_step": ["test_train_step"],
}

SIGMOID_STABLE = """    if self.data >= 0:
        s = 1.0 / (1.0 + math.exp(-self.data))
    else:
        e = math.exp(self.data)  # exp of a negative number: never overflows
        s = e / (1.0 + e)
"""
MUL = "self.grad += other.data * out.grad\n        other.grad += self.data * out.grad"

# (answer cell, test cell that must fail, text of the solution, replacement, words the message must contain)
BUGS = {
    "add overwrites instead of accumulating": (
        "add_mul", "test_add", "self.grad += out.grad\n        other.grad += out.grad",
        "self.grad = out.grad\n        other.grad = out.grad", "+="),
    "add ignores the upstream gradient": (
        "add_mul", "test_add", "self.grad += out.grad\n        other.grad += out.grad",
        "self.grad += 1.0\n        other.grad += 1.0", "dropped the upstream gradient"),
    "mul swaps the local derivatives": (
        "add_mul", "test_mul", MUL,
        "self.grad += self.data * out.grad\n        other.grad += other.data * out.grad",
        "swapped the two inputs' derivatives"),
    "mul overwrites instead of accumulating": (
        "add_mul", "test_mul", MUL,
        "self.grad = other.data * out.grad\n        other.grad = self.data * out.grad", "+="),
    "pow derivative misses the exponent factor": (
        "power", "test_power", "self.grad += k * self.data ** (k - 1) * out.grad",
        "self.grad += self.data ** (k - 1) * out.grad", "is missing: the local derivative of a**k"),
    "pow derivative uses k * a**k": (
        "power", "test_power", "self.grad += k * self.data ** (k - 1) * out.grad",
        "self.grad += k * self.data ** k * out.grad", "`power`"),
    "exp derivative uses the input": (
        "exp_log", "test_exp", "self.grad += e * out.grad", "self.grad += self.data * out.grad", "`exp`"),
    "log derivative divides by the output": (
        "exp_log", "test_log", "self.grad += out.grad / self.data", "self.grad += out.grad / out.data",
        "`log`"),
    "tanh derivative uses the input instead of the output": (
        "tanh_relu", "test_tanh", "self.grad += (1.0 - t * t) * out.grad",
        "self.grad += (1.0 - self.data**2) * out.grad", "OUTPUT"),
    "relu derivative from the wrong sign": (
        "tanh_relu", "test_relu", "        if positive:\n            self.grad += out.grad",
        "        if not positive:\n            self.grad += out.grad", "`relu`"),
    "recursive topological sort": (
        "topological_sort", "test_topological_sort", None, """
def topological_sort(root):
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for parent in node.inputs:
                visit(parent)
            order.append(node)

    visit(root)
    return order
""", "RecursionError"),
    "topological sort without a visited set": (
        "topological_sort", "test_topological_sort", None, """
def topological_sort(root):
    order, stack = [], [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.inputs)
    return order
""", "more than once"),
    "topological sort returns the root first": (
        "topological_sort", "test_topological_sort", "    return order\n", "    return order[::-1]\n",
        "starts with the root"),
    "backward without a topological order": (
        "backprop", "test_backprop", None, """
def backprop(root, order):
    root.grad = 1.0
    stack = [root]
    while stack:
        node = stack.pop()
        node._backward()
        stack.extend(node.inputs)
""", "exactly once"),
    "backward that keeps old gradients in intermediate nodes (no reset)": (
        "backprop", "test_backprop", None, """
def backprop(root, order):
    root.grad = 1.0
    for node in reversed(order):
        node._backward()
""", "exactly double"),
    "backward in forward order": (
        "backprop", "test_backprop", "    for node in reversed(order):\n", "    for node in order:\n",
        "`backprop`"),
    "MLP.parameters misses the biases": (
        "mlp", "test_mlp", "        return self.w + [self.b]", "        return self.w",
        "the neuron has"),
    "MLP with a tanh output layer": (
        "mlp", "test_mlp", '"linear" if i == last else "tanh"', '"tanh"', "last layer applies tanh"),
    "neuron computes with w.data": (
        "mlp", "test_mlp", "            z = z + wi * xi", "            z = z + wi.data * xi", "w.data"),
    "backward that also resets the leaves": (
        "backprop", "test_backprop", "if node.inputs:  # intermediate results are recomputed on every call",
        "if True:  # every node, leaves included", "reset the leaves too"),
    "add without wrapping a plain number": (
        "add_mul", "test_add", "    other = as_value(other)\n    out = Value(self.data + other.data",
        "    out = Value(self.data + other.data", "as_value(other)"),
    "training step returns the loss Value": (
        "train_step", "test_train_step", "return loss.data", "return loss", "plain float"),
    "training step on a squared loss": (
        "train_step", "test_train_step", "(1 + (-yi * model(xi)).exp()).log()", "(model(xi) - yi) ** 2",
        "log(1 + exp(-y_i * s_i))"),
    "training step without zero_grad": (
        "train_step", "test_train_step", "    zero_grad(params)\n", "", "zero_grad"),
    "training step moves up the gradient": (
        "train_step", "test_train_step", "p.data -= lr * p.grad", "p.data += lr * p.grad", "UP the gradient"),
    "tanh from exp, which overflows far from 0": (
        "tanh_relu", "test_tanh", "t = math.tanh(self.data)",
        "t = (math.exp(2 * self.data) - 1) / (math.exp(2 * self.data) + 1)", "Use math.tanh"),
    "sigmoid derivative from the input instead of the output": (
        "sigmoid", "test_sigmoid", "self.grad += s * (1.0 - s) * out.grad",
        "self.grad += self.data * (1.0 - self.data) * out.grad", "OUTPUT"),
    "sigmoid by math.exp(-a), which overflows at a = -1000": (
        "sigmoid", "test_sigmoid", SIGMOID_STABLE, "    s = 1.0 / (1.0 + math.exp(-self.data))\n",
        "math.exp(-a) overflows"),
    "relu with slope 1 at 0": (
        "tanh_relu", "test_relu", "positive = self.data > 0", "positive = self.data >= 0", "a = 0 exactly"),
    "Neuron without ValueError for an unknown activation": (
        "mlp", "test_mlp", """        if activation not in ("tanh", "relu", "linear"):
            raise ValueError(f"activation must be 'tanh', 'relu' or 'linear', got {activation!r}")
""", "", "must raise ValueError"),
    "recursive topological sort with a raised recursion limit": (
        "topological_sort", "test_topological_sort", None, """
import sys

sys.setrecursionlimit(100_000)


def topological_sort(root):
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for parent in node.inputs:
                visit(parent)
            order.append(node)

    visit(root)
    return order
""", "sys.setrecursionlimit only moves the crash"),
    "backprop that never seeds the root": (
        "backprop", "test_backprop",
        "    root.grad += 1.0  # leaves (and only leaves) keep what earlier calls left in .grad\n", "",
        "never seeded"),
    "backprop that seeds the root before the reset": (
        "backprop", "test_backprop", None, """
def backprop(root, order):
    root.grad = 1.0
    for node in order:
        if node.inputs:
            node.grad = 0.0
    for node in reversed(order):
        node._backward()
""", "never seeded"),
    "exp drops the upstream gradient": (
        "exp_log", "test_exp", "self.grad += e * out.grad", "self.grad += e",
        "dropped the upstream gradient (out.grad)"),
    "MLP wires every layer to the network inputs": (
        "mlp", "test_mlp", "Layer(sizes[i], sizes[i + 1]", "Layer(n_inputs, sizes[i + 1]",
        "one weight per input"),
    "mul sends the wrong gradient to its second input": (
        "add_mul", "test_mul", MUL,
        "self.grad += other.data * out.grad\n        other.grad += other.data * out.grad",
        "to b.grad"),
    "topological sort that marks nodes seen when pushed": (
        "topological_sort", "test_topological_sort", None, """
def topological_sort(root):
    order, seen = [], {root}
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        else:
            stack.append((node, True))
            for parent in node.inputs:
                if parent not in seen:
                    seen.add(parent)
                    stack.append((parent, False))
    return order
""", "mark it seen when you pop it"),
    "topological sort as a reversed breadth-first order": (
        "topological_sort", "test_topological_sort", None, """
def topological_sort(root):
    order, seen, queue = [root], {root}, [root]
    while queue:
        node = queue.pop(0)
        for parent in node.inputs:
            if parent not in seen:
                seen.add(parent)
                order.append(parent)
                queue.append(parent)
    return order[::-1]
""", "comes before its own input"),
    "topological sort by a stale distance from the root": (
        "topological_sort", "test_topological_sort", None, """
def topological_sort(root):
    depth, stack = {root: 0}, [root]
    while stack:
        node = stack.pop()
        for parent in node.inputs:
            if parent not in depth:
                depth[parent] = depth[node] + 1
                stack.append(parent)
    return sorted(depth, key=lambda node: -depth[node])
""", "comes before its own input"),
    "topological sort that tells nodes apart by .data": (
        "topological_sort", "test_topological_sort", None, """
def topological_sort(root):
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif node.data not in seen:
            seen.add(node.data)
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.inputs if parent.data not in seen)
    return order
""", "not their numbers"),
    "backprop that reverses the caller's order in place": (
        "backprop", "test_backprop", "    for node in reversed(order):\n",
        "    order.reverse()\n    for node in order:\n", "changed the list `order`"),
    "backprop that sets the root's grad to 1 instead of adding 1": (
        "backprop", "test_backprop", "root.grad += 1.0", "root.grad = 1.0", "do not set it to 1"),
    "backprop that loops over order.reverse() (None)": (
        "backprop", "test_backprop", "    for node in reversed(order):\n",
        "    for node in order.reverse():\n", "`backprop` raised TypeError"),
    "MLP that always returns the first output": (
        "mlp", "test_mlp", "        return x[0] if len(x) == 1 else x", "        return x[0]",
        "returns the list of their 2 outputs"),
    "Layer that unwraps a single output itself": (
        "mlp", "test_mlp", "        return [neuron(x) for neuron in self.neurons]",
        "        outs = [neuron(x) for neuron in self.neurons]\n"
        "        return outs[0] if len(outs) == 1 else outs",
        "a Layer always returns a list"),
    "MLP whose layer is linear when it has one neuron": (
        "mlp", "test_mlp", '"linear" if i == last else "tanh"', '"linear" if sizes[i + 1] == 1 else "tanh"',
        "not from how many neurons it has"),
    "Neuron that adds the bias after the activation": (
        "mlp", "test_mlp", "            return z.tanh()", "            return (z - self.b).tanh() + self.b",
        "after the activation"),
    "Layer that does not pass its activation on": (
        "mlp", "test_mlp", "Neuron(n_inputs, activation) for _", "Neuron(n_inputs) for _",
        "pass the Layer's activation on"),
    "Neuron that returns a float": (
        "mlp", "test_mlp", "            return z.tanh()", "            return z.tanh().data",
        "a Neuron returns one Value"),
    "training step that zeroes the gradients at the end": (
        "train_step", "test_train_step", None, """
def train_step(model, X, y, lr):
    params = model.parameters()
    losses = [(1 + (-yi * model(xi)).exp()).log() for xi, yi in zip(X, y)]
    loss = sum(losses) / len(losses)
    loss.backward()
    for p in params:
        p.data -= lr * p.grad
    zero_grad(params)
    return loss.data
""", "before loss.backward()"),
    "training step that zeroes the gradients between backward and the update": (
        "train_step", "test_train_step", "    loss.backward()\n",
        "    loss.backward()\n    zero_grad(params)\n",
        "between loss.backward() and the update"),
    "training step that multiplies by lr twice": (
        "train_step", "test_train_step", "p.data -= lr * p.grad", "p.data -= lr * lr * p.grad",
        "multiply the gradient by lr once"),
    "training step that reaches the parameters through model.layers": (
        "train_step", "test_train_step", "    params = model.parameters()\n",
        "    params = [p for layer in model.layers for p in layer.parameters()]\n",
        "count only on model(x) and model.parameters()"),
    "mul adds a Value into .grad (no .data)": (
        "add_mul", "test_mul", "self.grad += other.data * out.grad", "self.grad += other * out.grad",
        "a.grad became a Value"),
    "add never assigns its _backward closure": (
        "add_mul", "test_add", "        other.grad += out.grad\n\n    out._backward = _backward\n",
        "        other.grad += out.grad\n\n", "out._backward is still the default"),
    "exp's _backward returns the gradient": (
        "exp_log", "test_exp", "self.grad += e * out.grad", "return e * out.grad",
        "must add each input's share"),
    "add reads out.grad when the operation is built": (
        "add_mul", "test_add",
        "    def _backward():\n        self.grad += out.grad\n        other.grad += out.grad",
        "    upstream = out.grad\n\n    def _backward():\n        self.grad += upstream\n"
        "        other.grad += upstream", "not when the operation is built"),
    "add changes its input's data in place": (
        "add_mul", "test_add", "    out = Value(self.data + other.data",
        "    self.data += other.data\n    out = Value(self.data", "do not modify the inputs"),
    "add returns a plain float": (
        "add_mul", "test_add",
        "    out._backward = _backward\n    return out\n    ### END SOLUTION\n\n\ndef mul",
        "    out._backward = _backward\n    return out.data\n    ### END SOLUTION\n\n\ndef mul",
        "should return a new Value"),
    "relu whose result records no inputs": (
        "tanh_relu", "test_relu", 'Value(self.data if positive else 0.0, (self,), "relu")',
        "Value(self.data if positive else 0.0)", ".inputs must contain"),
}

# Operation bugs that a network check meets in a student's kit before its own cases can say anything (a crash,
# a gradient lost by `=`): the message names the operation, its exercise and its own test, never the network.
KNOCK_ON = {"add overwrites instead of accumulating": ("test_train_step",),
            "add without wrapping a plain number": ("test_train_step",),
            "add returns a plain float": ("test_mlp", "test_train_step"),
            "relu whose result records no inputs": ("test_mlp",)}

# Operation bugs a whole-graph check meets in a student's kit (checks of the network and of train_step run on
# the student's own engine there): the message must name the operation (graph replay), not the exercise.
OP_BUGS = {"mul swaps the local derivatives": "`mul` (a * b)",
           "mul sends the wrong gradient to its second input":
               "`mul` (a * b) gives the wrong gradient for its second input",
           "exp drops the upstream gradient": "`exp` (a.exp())",
           "tanh derivative uses the input instead of the output": "`tanh` (a.tanh())",
           "add ignores the upstream gradient": "`add` (a + b)"}

# Correct solutions written differently from the notebook's: full marks too.
OTHER_STYLES = {
    "sigmoid": """
def sigmoid(self):
    s = (1.0 + math.tanh(self.data / 2)) / 2  # the same function, by tanh (which never overflows)
    out = Value(s, (self,), "sigmoid")

    def _backward():
        self.grad += s * (1 - s) * out.grad

    out._backward = _backward
    return out


Value.sigmoid = sigmoid
""",
    "topological_sort": """
def topological_sort(root):
    # Kahn's algorithm on the reversed graph: count, for every node, how many users still need it.
    users, seen, stack = {}, {root}, [root]
    while stack:
        node = stack.pop()
        for parent in node.inputs:
            users[parent] = users.get(parent, 0) + 1
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    order, ready = [], [root]
    while ready:
        node = ready.pop()
        order.append(node)
        for parent in node.inputs:
            users[parent] -= 1
            if users[parent] == 0:
                ready.append(parent)
    return order[::-1]
""",
    "backprop": """
def backprop(root, order):
    for node in order[:-1]:
        if len(node.inputs) > 0:
            node.grad = 0
    root.grad = 1.0 if root.inputs else root.grad + 1.0
    for node in order[::-1]:
        node._backward()
""",
    "train_step": """
def train_step(model, X, y, lr):
    for p in model.parameters():
        p.grad = 0.0
    total = Value(0.0)
    for xi, yi in zip(X, y):
        margin = model(xi) * (-yi)
        total = total + (margin.exp() + 1.0).log()
    loss = total * (1.0 / len(X))
    loss.backward()
    for p in model.parameters():
        p.data = p.data - lr * p.grad
    return float(loss.data)
""",
}


def answer_cells() -> dict[str, str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}


def bug_source(name: str) -> str:
    cell, _, old, new, _ = BUGS[name]
    if old is None:
        return new
    source = answer_cells()[cell]
    assert old in source, f"{name}: the solution text to break is no longer in cell {cell}"
    return source.replace(old, new)


def blank_source(cell: str) -> str:
    """The answer cell as released: each solution block replaced by `raise NotImplementedError()`."""
    return re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION\n?", r"\1raise NotImplementedError()\n",
                  answer_cells()[cell], flags=re.S)


def engine(replace: dict[str, str] | None = None) -> dict:
    """The notebook's imports, given cells and answers exec'd in one namespace (no tests, no demos)."""
    return harness.answer_namespace(NOTEBOOK, replace)


@pytest.fixture(autouse=True)
def _restore_recursion_limit():
    """A bug below raises the recursion limit, as a student might: keep it from leaking into other tests."""
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)


def run_check(test_cell: str, ns: dict, module=visible, seed: int | None = None) -> None:
    V = ns["Value"]
    calls = {
        "test_add": lambda: module.check_add(ns["add"], V, seed=seed),
        "test_mul": lambda: module.check_mul(ns["mul"], V, seed=seed),
        "test_power": lambda: module.check_power(ns["power"], V, seed=seed),
        "test_exp": lambda: module.check_exp(ns["exp"], V, seed=seed),
        "test_log": lambda: module.check_log(ns["log"], V, seed=seed),
        "test_tanh": lambda: module.check_tanh(ns["tanh"], V, seed=seed),
        "test_relu": lambda: module.check_relu(ns["relu"], V, seed=seed),
        "test_sigmoid": lambda: module.check_sigmoid(ns["sigmoid"], V, seed=seed),
        "test_topological_sort": lambda: module.check_topological_sort(ns["topological_sort"], V, seed=seed),
        "test_backprop": lambda: module.check_backprop(ns["backprop"], V, seed=seed),
        "test_mlp": lambda: module.check_mlp(ns["Neuron"], ns["Layer"], ns["MLP"], V, seed=seed),
        "test_train_step": lambda: module.check_train_step(ns["train_step"], V, seed=seed),
    }
    calls[test_cell]()


ALL_TESTS = [t for tests in TEST_CELLS.values() for t in tests]


@pytest.mark.parametrize("test_cell", ALL_TESTS)
def test_the_solution_passes_visible_checks_on_many_seeds(test_cell, capsys):
    ns = engine()
    capsys.readouterr()
    for seed in range(2):
        run_check(test_cell, ns, seed=seed)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1 and lines[0].startswith("passed: check_"), lines
        assert f"seed {seed})" in lines[0], lines


def seeds_for(name: str) -> int:
    """How many seeds a bug is tried on in the kit: the orders and sweeps, whose random graphs once let
    ordering bugs through on some seeds (fixed graphs now catch those every time), get 3; the rest 2."""
    cell = BUGS[name][0]
    return 3 if cell in ("topological_sort", "backprop") and "recursive" not in name else 2


ENGINE_CELLS = ("test_mlp", "test_train_step")  # the cells that need a whole engine


def judged(replace: dict[str, str], cells: tuple[str, ...] | list[str]) -> dict[str, CellScore]:
    """`lesson_harness.judged_in_process` restricted to some test cells: each judged as grading judges it
    (visible and hidden checks in the grader, the answers behind the grading channel)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    scores = {}
    with loopback(harness.answer_namespace(NOTEBOOK, replace)) as channel:
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if is_autograded_test(cell) and gid in cells:
                outputs = judge(cell.source, channel, f"<test cell {gid}>")
                errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
                points = float(cell.metadata["nbgrader"].get("points", 0))
                scores[gid] = CellScore(0.0 if errors else points, points, errors[0] if errors else None)
    return scores


def test_the_solved_notebook_earns_full_marks_when_judged():
    scores = harness.judged_in_process(NOTEBOOK)
    assert {gid: (s.score, s.error) for gid, s in scores.items() if s.score != s.max_score} == {}
    assert set(ALL_TESTS) <= set(scores)


@pytest.mark.parametrize("name", sorted(BUGS))
def test_each_bug_fails_its_check_and_costs_only_its_points_when_judged(name):
    """In the kit the visible check names the cause on every seed tried (the network and training checks,
    which run on the student's own engine there, say so); judged as grading does, the bug's test cell loses
    its points with that cause, and the cells of the network and training keep theirs (the isolated engine
    stands in for everything but the exercise under test)."""
    cell, test_cell, _, _, words = BUGS[name]
    ns = engine({cell: bug_source(name)})
    for seed in range(seeds_for(name)):
        with pytest.raises(CheckFailure) as info:
            run_check(test_cell, ns, seed=seed)
        assert words in str(info.value), f"seed {seed}: {info.value}"
        assert ("your own versions" in str(info.value)) == (test_cell in ENGINE_CELLS), str(info.value)
    cells = sorted({test_cell, *ENGINE_CELLS})
    scores = judged({cell: bug_source(name)}, cells)
    assert scores[test_cell].score == 0.0, f"{name}: {test_cell} kept its points"
    assert words in scores[test_cell].error, scores[test_cell].error
    kept = {gid: s.error for gid, s in scores.items() if gid != test_cell and s.score != s.max_score}
    assert kept == {}, f"{name} also cost {kept}"


@pytest.fixture
def lying_kernel(monkeypatch):
    """A kernel that answers "passed" whenever it is asked for a verdict: the visible checks' probe
    (`run_body`), the only probe that returns one (the hidden checks get observations). The grader names
    a probe by module and name and the loopback kernel looks it up in the same module, so patching the
    module is what a student's kernel could do to its own copy."""
    def lie(probe, answer):
        return functools.wraps(probe)(lambda *args, **kwargs: answer)

    monkeypatch.setattr(visible, "run_body", lie(visible.run_body, {"passed": ""}))


@pytest.mark.parametrize("name", sorted(BUGS))
def test_the_points_do_not_rest_on_the_kernels_verdict(lying_kernel, name):
    """With the kernel forging every verdict it is asked for, each bug still loses its own cell's points:
    the hidden checks judge, in the grader, the numbers and structures the kernel reports."""
    cell, test_cell, _, _, _ = BUGS[name]
    score = judged({cell: bug_source(name)}, [test_cell])[test_cell]
    assert score.score == 0.0, f"{name} kept the points of {test_cell} with a lying kernel"


def test_with_a_lying_kernel_correct_answers_still_earn_full_marks(lying_kernel):
    scores = harness.judged_in_process(NOTEBOOK)
    assert {gid: (s.score, s.error) for gid, s in scores.items() if s.score != s.max_score} == {}
    for cell, source in OTHER_STYLES.items():
        scores = judged({cell: source}, TEST_CELLS[cell])
        assert {gid: s.error for gid, s in scores.items() if s.score != s.max_score} == {}, cell


def test_the_checks_restore_the_students_class():
    ns = engine()
    V = ns["Value"]
    before = {name: V.__dict__.get(name) for name in (*visible.PRIMITIVES, "backward", "__init__")}
    with pytest.raises(CheckFailure):
        visible.check_mul(lambda self, other: 0, V)
    with pytest.raises(CheckFailure):  # this one also records the Values it creates
        visible.check_backprop(lambda root, order: None, V)
    with pytest.raises(CheckFailure):  # and this one records the primitive calls
        visible.check_train_step(lambda model, X, y, lr: 0.0, V)
    assert {name: V.__dict__.get(name) for name in before} == before


def test_a_blank_exercise_ends_in_the_one_not_done_message():
    """The released notebook, every answer blank: in the kit each visible check says NotDone and nothing
    else (the network checks run on the student's blank engine there); judged, every cell scores zero with
    that same message."""
    blanks = {cell: blank_source(cell) for cell in TEST_CELLS}
    ns = engine(blanks)
    for test_cell in ALL_TESTS:
        with pytest.raises(NotDone) as info:
            run_check(test_cell, ns)
        assert str(info.value).startswith(f"{exercise_name(test_cell)} is not written yet: replace `raise "
                                          "NotImplementedError()`"), str(info.value)
    for gid, score in harness.judged_in_process(NOTEBOOK, blanks).items():
        assert score.score == 0.0, gid
        if gid in ALL_TESTS:
            written = f"NotDone: {exercise_name(gid)} is not written yet: replace `raise NotImplementedError"
            assert written in score.error, score.error


def exercise_name(test_cell: str) -> str:
    """The plain name a blank exercise's NotDone starts with: no case details."""
    return "`Neuron`" if test_cell == "test_mlp" else f"`{test_cell.removeprefix('test_')}`"


def test_in_the_kit_each_primitive_is_tested_while_exercise_2_is_blank(monkeypatch):
    """The notebook promises each piece is tested on its own: with `add` and `mul` still blank, the random
    expressions of the other primitives' checks are built without them, and those checks pass."""
    monkeypatch.setattr(visible, "_trusted", None)
    ns = engine({"add_mul": blank_source("add_mul")})
    for test_cell in ("test_power", "test_exp", "test_log", "test_tanh", "test_relu", "test_sigmoid"):
        run_check(test_cell, ns, seed=1)


@pytest.mark.parametrize("cell", sorted(OTHER_STYLES))
def test_other_correct_styles_pass_in_the_kit_and_earn_full_marks_when_judged(cell):
    ns = engine({cell: OTHER_STYLES[cell]})
    for test_cell in TEST_CELLS[cell]:
        run_check(test_cell, ns)
    scores = judged({cell: OTHER_STYLES[cell]}, sorted({*TEST_CELLS[cell], *ENGINE_CELLS}))
    assert {gid: s.error for gid, s in scores.items() if s.score != s.max_score} == {}


def test_in_the_kit_a_check_that_stops_in_an_unfinished_exercise_names_it(monkeypatch):
    monkeypatch.setattr(visible, "_trusted", None)
    ns = engine({"backprop": blank_source("backprop")})
    with pytest.raises(CheckFailure, match="`train_step` stopped in `backprop`") as info:
        run_check("test_train_step", ns)
    assert not isinstance(info.value, NotDone)


@pytest.mark.parametrize("cell, replace", [
    ("topological_sort", None), ("backprop", None),
    ("backprop", "backprop that loops over order.reverse() (None)"),
])
def test_in_the_kit_the_network_checks_name_the_exercise_they_stopped_in(monkeypatch, cell, replace):
    """A network check whose backward pass stops in another exercise (blank, or raising) says so in one
    message naming it, with no hint or note of its own; judged, the network cells keep their points."""
    monkeypatch.setattr(visible, "_trusted", None)
    source = bug_source(replace) if replace else blank_source(cell)
    ns = engine({cell: source})
    for test_cell in ENGINE_CELLS:
        with pytest.raises(CheckFailure) as info:
            run_check(test_cell, ns, seed=0)
        message = str(info.value)
        assert not isinstance(info.value, NotDone), message
        assert f"stopped in `{cell}`" in message, message
        assert ("TypeError" in message) == bool(replace), message
        assert "your own versions" not in message and "Hint" not in message, message
        assert len(message.splitlines()) == 2, message  # the cause, then the line that repeats the test
    assert all(s.score == s.max_score for s in judged({cell: source}, ENGINE_CELLS).values())


def test_checks_report_the_seed_and_vary_it():
    ns = engine({"add_mul": bug_source("add ignores the upstream gradient")})
    messages = set()
    for _ in range(3):
        with pytest.raises(CheckFailure) as info:
            visible.check_add(ns["add"], ns["Value"])
        messages.add(re.search(r"seed=(\d+)", str(info.value)).group(1))
    assert len(messages) == 3


@pytest.mark.parametrize("name", ["neuron computes with w.data", "mul swaps the local derivatives",
                                  "backward in forward order", "training step that multiplies by lr twice"])
def test_a_failure_ends_with_the_one_call_that_repeats_it_exactly(name):
    """The closing line names the check the student ran, with its seed, and running it gives the same
    failure again: the network's weights are the seed's too, not the student's own random draws."""
    cell, test_cell, _, _, _ = BUGS[name]
    ns = engine({cell: bug_source(name)})
    messages = []
    for _ in range(2):
        with pytest.raises(CheckFailure) as info:
            run_check(test_cell, ns, seed=7)
        messages.append(str(info.value))
    call = f"checks.{test_cell.replace('test_', 'check_')}("
    assert messages[0].endswith(", seed=7) in a cell of your own to repeat this exact test."), messages[0]
    assert f"Run {call}" in messages[0].splitlines()[-1], messages[0]
    assert messages[0] == messages[1]
    assert "check_gradient" not in messages[0] and messages[0].count("seed") == 1, messages[0]


def test_draw_graph_draws_every_node():
    import matplotlib

    matplotlib.use("Agg")
    ns = engine()
    V = ns["Value"]
    a, b = V(2.0, label="a"), V(-1.0, label="b")
    out = (a * b + a).tanh()
    out.backward()
    ax = visible.draw_graph(out)
    boxes = [t for t in ax.texts if "grad" in t.get_text()]
    assert len(boxes) == 5  # a, b, a*b, a*b + a, tanh


# ------------------------------------------------------------------------------------------------------
# Graph replay: a wrong gradient of a whole graph names the first operation whose own gradient is wrong
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OP_BUGS))
def test_in_the_kit_the_network_checks_name_the_wrong_operation(monkeypatch, name):
    """On a student's machine the network and training checks run on the student's engine: an operation's
    bug makes them fail, and the message names that operation instead of blaming the exercise."""
    monkeypatch.setattr(visible, "_trusted", None)
    cell = BUGS[name][0]
    ns = engine({cell: bug_source(name)})
    for test_cell in ("test_mlp", "test_train_step") if "exp" not in name else ("test_train_step",):
        with pytest.raises(CheckFailure) as info:
            run_check(test_cell, ns)
        message = str(info.value)
        assert "likely culprit is not this exercise: your " + OP_BUGS[name] in message, message


@pytest.mark.parametrize("name", sorted(KNOCK_ON))
def test_in_the_kit_a_network_check_names_the_broken_operation_before_itself(monkeypatch, name):
    monkeypatch.setattr(visible, "_trusted", None)
    cell = BUGS[name][0]
    op = BUGS[name][1].removeprefix("test_")
    ns = engine({cell: bug_source(name)})
    for test_cell in KNOCK_ON[name]:
        with pytest.raises(CheckFailure) as info:
            run_check(test_cell, ns, seed=3)
        message = str(info.value)
        assert message.startswith("This check builds its graphs with your Value operations, and your "
                                  f"`{op}` ("), message
        assert f"fails its own test (exercise {visible._EXERCISE[op]}, test_{op}): " in message, message
        assert BUGS[name][4] in message and f"Fix `{op}` first" in message, message


@pytest.mark.parametrize("name", sorted(OP_BUGS))
def test_the_hidden_comparison_with_the_reference_names_the_wrong_operation(name):
    """The hidden checks compare whole expressions with the reference engine; when they disagree the
    message names the first operation whose own gradient is wrong (replayed node by node)."""
    cell = BUGS[name][0]
    op = OP_BUGS[name].split("`")[1]
    ns = engine({cell: bug_source(name)})
    with pytest.raises(CheckFailure) as info:
        hidden._against_reference(ns["Value"], ns[op], op, f"`{op}`", seed=5)
    assert "The first wrong operation: your " + OP_BUGS[name] in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["backward in forward order", "backprop that never seeds the root",
                                  "backward without a topological order"])
def test_in_the_kit_a_broken_backprop_costs_only_backprop_and_is_named(monkeypatch, name):
    """The operations are checked without any backward pass, so they pass; the network checks, which need a
    whole engine in the kit, name the backward pass as the likely culprit when they fail (a sweep without
    order is still right on the tree-shaped graph of train_step, and that check then passes)."""
    monkeypatch.setattr(visible, "_trusted", None)
    ns = engine({"backprop": bug_source(name)})
    for test_cell in ("test_add", "test_mul", "test_tanh", "test_power", "test_topological_sort"):
        run_check(test_cell, ns)
    with pytest.raises(CheckFailure, match=r"likely culprit is not this exercise: loss\.backward\(\)"):
        run_check("test_mlp", ns)
    try:
        run_check("test_train_step", ns)
    except CheckFailure as exc:
        assert "likely culprit is not this exercise: loss.backward()" in str(exc), str(exc)


def test_in_the_kit_a_sort_that_tells_nodes_apart_by_data_is_named_by_the_training_check(monkeypatch):
    """The backward pass is tried on a graph where two nodes hold the same number before the loss is
    blamed: a sort that skips a node by its .data is named, and the note is not repeated."""
    monkeypatch.setattr(visible, "_trusted", None)
    ns = engine({"topological_sort": bug_source("topological sort that tells nodes apart by .data")})
    with pytest.raises(CheckFailure) as info:
        run_check("test_train_step", ns, seed=0)
    message = str(info.value)
    assert "likely culprit is not this exercise: loss.backward()" in message, message
    assert "hold the same number" in message and "Check the loss" not in message, message
    assert "your own versions" not in message, message


def test_a_demo_cell_after_a_wrong_answer_prints_one_line_naming_the_exercise(capsys):
    """`add` returning a float breaks the 'no order' demo: one line naming exercise 2, not a traceback."""
    capsys.readouterr()
    engine({"add_mul": bug_source("add returns a plain float")})
    lines = capsys.readouterr().out.splitlines()
    said = next(k for k, line in enumerate(lines) if line.startswith("This demo raised"))
    assert lines[said + 1] == "Run the test cells of exercise 2: they name the cause.", lines


def test_a_parameter_gradient_failure_gives_one_hint_in_sentences():
    ns = engine({"mlp": bug_source("neuron computes with w.data")})
    with pytest.raises(CheckFailure) as info:
        run_check("test_mlp", ns, seed=0)
    message = str(info.value)
    assert message.count("Hint:") == 1 and "no gradient reached any weight" in message, message
    assert "(a list of " in message and "shape (" not in message, message
    assert all(line.strip()[:1].isupper() for line in message.splitlines()[1:]
               if not line.strip().startswith("(")), message


# ------------------------------------------------------------------------------------------------------
# The notebook, executed as nbgrader would
# ------------------------------------------------------------------------------------------------------


notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)


def test_notebook_has_every_exercise_and_written_answer():
    ids = set(harness.graded_metadata(NOTEBOOK))
    assert set(TEST_CELLS) | set(ALL_TESTS) | {"written_order", "written_accumulation"} <= ids


@pytest.mark.slow
def test_source_notebook_earns_full_marks_and_fits_the_moons(notebooks, source_nb):
    executed = notebooks.execute(source_nb)
    harness.assert_full_marks(notebooks.grade(executed), ALL_TESTS)
    text = "\n".join(out.get("text", "") for c in executed.cells if c.cell_type == "code"
                     for out in c.outputs)
    accuracy = float(re.search(r"training accuracy: ([\d.]+)%", text).group(1))
    assert accuracy >= 95.0
    harness.assert_no_error_outputs(executed)


@pytest.mark.slow
def test_student_version_has_no_solutions_or_hidden_tests_and_scores_zero(notebooks, source_nb):
    # A line quoted in the instructions (e.g. the update rule `p.data -= lr * p.grad`) is not a leak.
    harness.assert_release_is_safe_and_blank(notebooks, source_nb, ALL_TESTS, at_least=30,
                                             unless_outside="text")


# Every bug is judged in-process above (the hidden checks, the kit's other styles and the solution in
# the grader included); these two go through the real grading path in a kernel: an operation, and the
# recursion limit raised in the student's kernel.
KERNEL_BUGS = ["mul sends the wrong gradient to its second input",
               "recursive topological sort with a raised recursion limit"]


@pytest.mark.slow
@pytest.mark.parametrize("name", KERNEL_BUGS)
def test_a_typical_bug_loses_only_its_own_points(notebooks, source_nb, name):
    cell, test_cell, _, _, _ = BUGS[name]
    nb = notebooks.with_cell_source(harness.graded_cells_only(source_nb), cell, bug_source(name))
    harness.assert_only_cells_lose_points(harness.run_and_grade(notebooks, nb), [test_cell], what=name,
                                          expected_ids=ALL_TESTS)


@pytest.mark.parametrize("cell, test_cell, source", [
    ("add_mul", "test_add", "from autograder.lesson03 import _numeric_op\n\nadd = _numeric_op('add')\n"
     "mul = _numeric_op('mul')\nValue.__add__ = add\nValue.__mul__ = mul\n"),
    ("topological_sort", "test_topological_sort", "import importlib\n\n"
     "topological_sort = importlib.import_module('autograder.lesson03')._level_order\n"),
    ("backprop", "test_backprop", "import importlib\n\n\ndef backprop(root, order):\n"
     "    importlib.import_module('autograder.lesson03')._numeric_backward(root)\n"),
])
def test_hidden_checks_refuse_the_checkers_own_engine(cell, test_cell, source):
    """The shipped module holds the isolated engine and helpers the checks use: a submission that borrows
    them gets no points, judged as grading judges it."""
    scores = judged({cell: source}, [test_cell])
    assert scores[test_cell].score == 0.0, scores[test_cell]


# ------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no engine and work without the hidden side
# ------------------------------------------------------------------------------------------------------

def kit_script() -> str:
    """What a student with correct answers runs from the kit, with the hidden modules blocked."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return ("\nfrom autograder import lesson03\nassert lesson03._trusted is None\n\n"
            + harness.visible_cells_script(nb) + "\nprint('kit checks passed')\n")


def test_visible_module_holds_no_solution_line():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = Path(visible.__file__).read_text()
    lines = harness.solution_lines(nb, unless_outside="text")  # the update rule is quoted in the text
    assert len(lines) > 30
    for line in lines:
        assert line not in text, f"the shipped module contains a solution line: {line!r}"


def test_visible_module_holds_no_engine():
    """No derivative rule or backward sweep of the exercises is written out in the shipped module."""
    text = Path(visible.__file__).read_text()
    for fragment in ("1.0 - y * y", "1.0 / x", "k * self.data ** (k - 1)", "other.data * out.grad",
                     "._backward()\n", "trusted_order", "_t_backward", "reversed(order)"):
        assert fragment not in text, fragment


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules():
    done = harness.run_in_student_kit(kit_script(), NOTEBOOK.parent, timeout=600)
    assert "kit checks passed" in done.stdout
