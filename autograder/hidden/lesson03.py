"""Hidden checks for lesson 03 (instructor only): more seeds, edge cases, and the reference engine.

Each hidden check first reruns the visible check with a fresh seed, then adds what the visible one leaves
out: conventions (relu'(0) = 0), extreme inputs (tanh at 1000), more exponents, deeper and wider graphs,
other network shapes, and values and gradients compared, in the grader, with `reference_impl.scalar` on
inputs the grader draws. The student's code runs in the kernel through the visible module's probes, which
return numbers; when they disagree with the reference, the message names the first recorded operation
whose own gradient is wrong (observed in the kernel: only a hint, never the verdict).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from autograder import lesson03 as visible
from autograder.checks import CheckFailure, close, in_kernel
from autograder.hidden import silently
from autograder.lesson03 import Expression, random_expression
from reference_impl.scalar import Value as Ref
from reference_impl.scalar import topological_order

__all__ = [
    "check_add",
    "check_mul",
    "check_power",
    "check_exp",
    "check_log",
    "check_tanh",
    "check_relu",
    "check_sigmoid",
    "check_topological_sort",
    "check_backprop",
    "check_mlp",
    "check_train_step",
]

def _observe(probe: Callable, *args: object) -> dict:
    """A probe's observations; the failure it reports is raised here (a failure only costs points)."""
    result = in_kernel(probe, *args)
    if not isinstance(result, dict):
        raise CheckFailure("the check's cases did not report their observations (got "
                           f"{type(result).__name__})")
    if "notdone" in result or "failure" in result:
        visible.outcome(result)
    return result


def _ref_op(op: str, a: Ref, arg: object) -> Ref:
    if op == "add":
        return a + arg
    if op == "mul":
        return a * arg
    if op == "power":
        return a.power(float(arg))
    return getattr(a, op)()


def _reference_gradient(expr: Expression, xs: np.ndarray) -> tuple[float, list[float]]:
    """Root value and leaf gradients of `expr` computed by the reference engine."""
    nodes = [Ref(float(x)) for x in xs]
    leaves = list(nodes)
    for step in expr.steps:
        op, i = step[0], step[1]
        nodes.append(_ref_op(op, nodes[i], nodes[step[2]] if op in ("add", "mul") else
                             (step[2] if op == "power" else None)))
    nodes[-1].backward()
    return nodes[-1].data, [leaf.grad for leaf in leaves]


def _against_reference(Value: object, fn: object, focus: str, label: str, seed: int,
                       backprop: object = None, count: int = 4) -> None:
    """Random expressions drawn here, computed in the kernel by the isolated engine around the code under
    test, and compared here with the reference engine. An add or mul is also judged on one expression whose
    leaf feeds it three times (x0 op x0, then op x0 again): a _backward that sets a gradient instead of
    adding to it is wrong there on every seed, whatever the random ones happen to share."""
    rng = np.random.default_rng(seed)
    others = tuple(op for op in visible.OPS if op != focus)
    cases = [random_expression(rng, focus, others, n_leaves=4, n_steps=14) for _ in range(count)]
    if focus in ("add", "mul"):
        cases.append((Expression(2, [(focus, 0, 0), (focus, 2, 0), (focus, 3, 1)]),
                      rng.uniform(0.5, 1.5, 2)))
    for expr, xs in cases:
        want_value, want_grads = _reference_gradient(expr, xs)
        seen = _observe(visible.expression_observations, Value, fn, focus, expr.n_leaves,
                        [list(step) for step in expr.steps], [float(x) for x in xs], backprop)
        got_value, got = float(seen["value"]), [float(g) for g in seen["grads"]]
        if len(got) != len(want_grads) or not close(got_value, want_value, 1e-9) or not np.allclose(
                got, want_grads, rtol=1e-7, atol=1e-10):
            culprit = f" The first wrong operation: {seen['culprit']}" if seen.get("culprit") else ""
            raise CheckFailure(f"{label}: on the expression {expr.text()} at x = {np.round(xs, 6).tolist()} "
                               f"the reference engine gives value {want_value:.8g} and leaf gradients "
                               f"{np.round(want_grads, 6).tolist()}; yours gave {got_value:.8g} and "
                               f"{np.round(got, 6).tolist()} (seed {seed}).{culprit}")


def _one_op(Value: object, fn: object, op: str, cases: list[tuple[float, object]], g: float,
            hint: str, plain: bool = False) -> None:
    """The op alone at points the visible check avoids, against the reference engine (out.grad = g); with
    `plain`, the second operand of add or mul is a plain number."""
    label = f"`{op}`" + (" with a plain number b" if plain else "")
    seen = _observe(visible.op_observations, Value, fn, op, [[a, arg, g] for a, arg in cases], plain)
    binary = op in ("add", "mul") and not plain
    for (a, arg), row in zip(cases, seen["rows"], strict=True):
        ref_a = Ref(a)
        other = Ref(float(arg)) if binary else arg
        out = _ref_op(op, ref_a, other)
        out.backward(g)
        want = [out.data, ref_a.grad] + ([other.grad] if binary else [])
        got = [float(v) for v in row]
        ok = len(got) == len(want) and all(
            math.isfinite(v) and close(v, w, 1e-9) for v, w in zip(got, want, strict=True))
        if not ok:
            at = f"a = {a:g}" + (f", k = {arg:g}" if op == "power" else "")
            raise CheckFailure(f"{label} at {at}: expected value {want[0]:.6g} and a.grad {want[1]:.6g} "
                               f"(out.grad = {g:g}), got {got[0]:.6g} and {got[1]:.6g}. {hint}")


# Names a submission would go through to be, or call, the checker's own engine or helpers instead of the
# student's code (the checker is importable wherever the notebook runs):
_CHECKER_NAMES = frozenset({"autograder", "lesson03", "reference_impl", "_Isolated", "_NUMERIC",
                            "_numeric_op", "_numeric_backward", "_level_order", "_drawing_order",
                            "_TinyModel", "_engine", "_logged_order", "_creation_log", "run_body"})


def _own_code(fn: object, name: str) -> None:
    """Fail a submission that is, or calls, the checker's engine or helpers instead of the student's code."""
    seen = in_kernel(visible.code_names, fn)
    module = str(seen.get("module", "")) if isinstance(seen, dict) else ""
    names = set(seen.get("names", ())) if isinstance(seen, dict) else set()
    if module.startswith(("autograder", "reference_impl")) or _CHECKER_NAMES & names:
        raise CheckFailure(f"`{name}` uses the checker's engine or helpers from autograder instead of your "
                           "own code; the points are for your implementation, so write it yourself.")


def _with_reference(check: Callable, fn: object, Value: object, name: str, seed: int | None) -> int:
    _own_code(fn, name)
    seed = visible.new_seed(seed)
    silently(check, fn, Value, seed)
    _against_reference(Value, fn, name, f"`{name}`", seed + 1)
    return seed


_PLAIN = "A plain number b must work too: wrap it with as_value(other) first."


def check_add(add: Callable, Value: type, seed: int | None = None) -> None:
    seed = _with_reference(visible.check_add, add, Value, "add", seed)
    rng = np.random.default_rng(seed + 2)
    _one_op(Value, add, "add", [(float(a), float(b)) for a, b in rng.normal(size=(4, 2)) * 3], 1.5,
            "d(a + b)/da = d(a + b)/db = 1.")
    _one_op(Value, add, "add", [(float(a), float(b)) for a, b in rng.normal(size=(2, 2)) * 3], 1.5,
            _PLAIN, plain=True)


def check_mul(mul: Callable, Value: type, seed: int | None = None) -> None:
    seed = _with_reference(visible.check_mul, mul, Value, "mul", seed)
    rng = np.random.default_rng(seed + 2)
    _one_op(Value, mul, "mul", [(float(a), float(b)) for a, b in rng.normal(size=(4, 2)) * 3], 1.5,
            "d(a * b)/da = b and d(a * b)/db = a.")
    _one_op(Value, mul, "mul", [(float(a), float(b)) for a, b in rng.normal(size=(2, 2)) * 3], 1.5,
            _PLAIN, plain=True)


def check_power(power: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_power, power, Value, "power", seed)
    _one_op(Value, power, "power", [(1.7, 0.0), (-1.3, 1.0), (2.5, -0.5)], 2.0,
            "The local derivative of a**k is k * a**(k-1), times out.grad.")


def check_exp(exp: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_exp, exp, Value, "exp", seed)
    _one_op(Value, exp, "exp", [(0.0, None), (-30.0, None), (5.0, None)], 1.5, "d/da exp(a) = exp(a).")


def check_log(log: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_log, log, Value, "log", seed)
    _one_op(Value, log, "log", [(1.0, None), (1e-3, None), (50.0, None)], 1.5, "d/da log(a) = 1/a.")


def check_tanh(tanh: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_tanh, tanh, Value, "tanh", seed)
    _one_op(Value, tanh, "tanh", [(0.0, None), (1000.0, None), (-1000.0, None)], 1.5,
            "Use math.tanh (it cannot overflow) and 1 - t**2 with the output t.")


def check_relu(relu: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_relu, relu, Value, "relu", seed)
    _one_op(Value, relu, "relu", [(0.0, None), (3.0, None), (-3.0, None), (1e-9, None)], 1.5,
            "relu'(a) is 1 for a > 0 and 0 for a <= 0 (the course uses 0 at a = 0, like PyTorch).")


def check_sigmoid(sigmoid: Callable, Value: type, seed: int | None = None) -> None:
    _with_reference(visible.check_sigmoid, sigmoid, Value, "sigmoid", seed)
    _one_op(Value, sigmoid, "sigmoid", [(0.0, None), (1000.0, None), (-1000.0, None), (-30.0, None)], 1.5,
            "sigmoid never overflows when exp only gets numbers <= 0; its slope is s * (1 - s) with the "
            "output s.")


def check_topological_sort(topological_sort: Callable, Value: type, seed: int | None = None) -> None:
    """The visible cases, plus a 15 000-deep chain, a 3 000-term sum, the shared-input graphs (judged here
    too: the visible run is the kernel's word) and larger random graphs."""
    _own_code(topological_sort, "topological_sort")
    seed = visible.new_seed(seed)
    silently(visible.check_topological_sort, topological_sort, Value, seed)
    rng = np.random.default_rng(seed + 1)
    label = "`topological_sort`"
    graphs = [(f"{label} on a 15 000-deep chain", [1.0 + k for k in range(15_001)],
               [[]] + [[k] for k in range(15_000)])]
    terms = [float(v) for v in rng.normal(size=3000)]
    graphs.append((f"{label} on a 3 000-term sum", terms + [0.0] * 2999,
                   [[]] * 3000 + [[0, 1]] + [[3000 + k - 1, k + 1] for k in range(1, 2999)]))
    a = math.tanh(0.5)
    for flip in (False, True):  # the root uses a node directly and through a longer path, in both orders
        graphs.append((f"{label} on r = {'3 * a + a' if flip else 'a + 3 * a'}", [0.5, a, 3.0, 3 * a, 4 * a],
                       [[], [0], [], [1, 2], [3, 1] if flip else [1, 3]]))
        graphs.append((f"{label} on r = {'d3 + x' if flip else 'x + d3'} where d3 is x after three steps",
                       [0.2, 1.2, 2.2, 3.2, 3.4], [[], [0], [1], [2], [3, 0] if flip else [0, 3]]))
    for _ in range(5):
        parents: list[list[int]] = [[] for _ in range(10)]
        for _ in range(200):
            i, j = (int(v) for v in rng.integers(len(parents), size=2))
            parents.append([i] if rng.random() < 0.3 else [i, j])
        graphs.append((f"{label} on a random graph of 210 nodes (seed {seed})",
                       [float(v) for v in rng.normal(size=len(parents))], parents))
    for what, data, parents in graphs:
        _judge_order(topological_sort, Value, what, data, parents)


def _judge_order(topological_sort: object, Value: object, what: str, data: list[float],
                 parents: list[list[int]]) -> None:
    """The kernel's order of the grader's graph, judged on the same graph built with reference Values."""
    seen = _observe(visible.order_observations, topological_sort, Value, data, parents)
    got = seen["order"]
    nodes: list[Ref] = []
    for x, ps in zip(data, parents, strict=True):
        node = Ref(x)
        if ps:
            node = Ref(x, nodes[ps[0]], nodes[ps[1]] if len(ps) > 1 else None, Ref._add)
        nodes.append(node)
    root = nodes[-1]
    order = [nodes[int(k)] if 0 <= int(k) < len(nodes) else Ref(0.0) for k in got]
    visible._validate_order(order, root, what, topological_order(root))
    visible.judge_nesting(int(seen["deepest"]), what)


def check_backprop(backprop: Callable, Value: type, seed: int | None = None) -> None:
    """The visible cases, plus the reference engine on long random expressions."""
    _own_code(backprop, "backprop")
    seed = visible.new_seed(seed)
    silently(visible.check_backprop, backprop, Value, seed)
    for k, focus in enumerate(("mul", "tanh", "power")):
        _against_reference(Value, None, focus, "`backprop`", seed + 1 + k, backprop=backprop, count=2)
    _judge_rules(backprop, Value, np.random.default_rng(seed + 4))


def _sweeps(backprop: object, Value: object, leaves: list[float], spec: list, start: list[float],
            calls: int) -> list[list[float]]:
    """Every node's grad after each of `calls` calls of backprop on the grader's graph of linear nodes
    (visible.LinearGraph), the caller's `order` judged unchanged after each."""
    seen = _observe(visible.sweep_observations, backprop, Value, leaves, spec, start, calls)
    needed = {len(leaves) + len(spec) - 1}
    for k in range(len(leaves) + len(spec) - 1, len(leaves) - 1, -1):
        if k in needed:
            needed.update(int(p) for p in spec[k - len(leaves)][0])
    for order in seen["orders"]:
        visible.judge_order_kept([int(k) for k in order] == sorted(needed), "`backprop`")
    return [[float(g) for g in grads] for grads in seen["grads"]]


def _judge_rules(backprop: object, Value: object, rng: np.random.Generator) -> None:
    """The visible check's rules on graphs drawn here, judged here on the grads the kernel reports: the seed
    and one sweep (b = a + a; c = b + b), PyTorch's accumulation rule on a random graph (its leaves'
    gradients from finite differences, exact for linear nodes), a leaf as the root."""
    label = "`backprop`"
    (grads,) = _sweeps(backprop, Value, [float(rng.uniform(0.5, 2.0))], [[[0, 0], [1.0, 1.0]],
                                                                         [[1, 1], [1.0, 1.0]]], [0.0], 1)
    visible._judge_first_sweep(grads[0], grads[2], label)
    n_leaves = 4
    leaves = [float(x) for x in rng.normal(size=n_leaves)]
    spec: list = []
    for _ in range(14):
        n = n_leaves + len(spec)
        positions = [int(p) for p in rng.integers(n, size=1 if rng.random() < 0.3 else 2)]
        coefs = rng.uniform(0.3, 1.0, len(positions)) * rng.choice([-1, 1])
        spec.append([positions, [float(c) for c in coefs]])
    n = n_leaves + len(spec)
    spec.append([[n - 1, n - 2, n - 4], [0.7, -0.9, 0.5]])
    once, twice = (g[:n_leaves] for g in _sweeps(backprop, Value, leaves, spec, [0.0] * n_leaves, 2))
    want = visible.LinearGraph([], spec=[(tuple(p), tuple(c)) for p, c in spec])
    exact = [(want.value(np.array(leaves) + e) - want.value(np.array(leaves) - e)) / 2
             for e in np.eye(n_leaves)]
    if not np.allclose(once, exact, rtol=1e-9, atol=1e-12):
        raise CheckFailure(f"{label}: on a random graph of {n + 1} nodes the leaves' gradients should be "
                           f"{np.round(exact, 6).tolist()}, got {np.round(once, 6).tolist()}.")
    start = [float(s) for s in rng.normal(size=n_leaves)]
    after = _sweeps(backprop, Value, leaves, spec, start, 1)[0][:n_leaves]
    visible.judge_accumulation(once, twice, start, after, label)
    held = float(rng.uniform(0.5, 2.0))
    visible.judge_leaf_root(held, _sweeps(backprop, Value, [0.3], [], [held], 1)[0][0], label)


def check_mlp(Neuron: type, Layer: type, MLP: type, Value: type, seed: int | None = None) -> None:
    """The visible cases, plus networks of several shapes (several outputs, a one-layer linear MLP, three
    hidden layers), each judged here against the reference engine: no verdict comes from the kernel."""
    seed = visible.new_seed(seed)
    silently(visible.check_mlp, Neuron, Layer, MLP, Value, seed)
    rng = np.random.default_rng(seed + 2)
    for n_in, sizes in ((3, [5, 2]), (4, [1]), (2, [3, 3, 3]), (3, [4, 2]), (2, [3, 1])):
        _judge_network(MLP, Value, n_in, sizes, rng)
    visible.judge_unknown_activation(_observe(visible.unknown_activation_observations, Neuron))


def _judge_network(MLP: object, Value: object, n_in: int, sizes: list[int], rng: np.random.Generator) -> None:
    """The student's MLP's outputs and parameter gradients at a point drawn here, against the same network
    (the weights the kernel reports) computed by the reference engine: tanh layers, a linear last one."""
    what = f"MLP({n_in}, {sizes})"
    x, g = rng.normal(size=n_in), rng.normal(size=sizes[-1])
    seen = _observe(visible.network_observations, MLP, Value, n_in, sizes, x.tolist(), g.tolist())
    layers = seen["layers"]
    if [len(layer) for layer in layers] != sizes:
        raise CheckFailure(f"{what} should have layers of {sizes} neurons, got {[len(la) for la in layers]}.")
    n_params = sum(len(w) + 1 for layer in layers for w, _ in layer)
    visible.judge_params([int(k) for k in seen["params"]], n_params, sum(sizes), what)
    params: list[list[tuple[list[Ref], Ref]]] = []
    h: list = [float(v) for v in x]
    for li, layer in enumerate(layers):
        row = [([Ref(float(v)) for v in w], Ref(float(b))) for w, b in layer]
        params.append(row)
        z = []
        for w, b in row:
            total = b
            for wi, hi in zip(w, h, strict=True):
                total = total + wi * hi
            z.append(total if li == len(layers) - 1 else total.tanh())
        h = z
    loss = h[0] * float(g[0])
    for o, gk in zip(h[1:], g[1:], strict=True):
        loss = loss + o * float(gk)
    loss.backward()
    want_out = [o.data for o in h]
    want_grads = [v.grad for row in params for w, b in row for v in (*w, b)]
    got_grads = [float(v) for row in seen["grads"] for w, b in row for v in (*w, b)]
    if not np.allclose(seen["outputs"], want_out, rtol=1e-9, atol=1e-12):
        raise CheckFailure(f"{what}(x) computed {np.round(seen['outputs'], 6).tolist()}, the reference "
                           f"engine {np.round(want_out, 6).tolist()} with the same weights.")
    if len(got_grads) != len(want_grads) or not np.allclose(got_grads, want_grads, rtol=1e-7, atol=1e-10):
        raise CheckFailure(f"{what}: the parameters' gradients differ from the reference engine's with the "
                           "same weights: compute with the weight Values themselves (w * x), never w.data.")


def _reference_step(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean log(1 + exp(-y s)) of the 2-3-1 tanh model and its gradient, by the reference engine."""
    params = [Ref(float(v)) for v in theta]
    w1, b1, w2, b2 = params[:6], params[6:9], params[9:12], params[12]
    total = Ref(0.0)
    for x, t in zip(X, y, strict=True):
        hidden = [(w1[2 * r] * float(x[0]) + w1[2 * r + 1] * float(x[1]) + b1[r]).tanh() for r in range(3)]
        s = b2 + w2[0] * hidden[0] + w2[1] * hidden[1] + w2[2] * hidden[2]
        total = total + ((s * float(-t)).exp() + 1.0).log()
    loss = total * (1.0 / len(y))
    loss.backward()
    return loss.data, np.array([p.grad for p in params])


def check_train_step(train_step: Callable, Value: type, seed: int | None = None) -> None:
    """Two more runs of the visible check, then two steps on grader-drawn data against the reference."""
    _own_code(train_step, "train_step")
    seed = visible.new_seed(seed)
    silently(visible.check_train_step, train_step, Value, seed)
    silently(visible.check_train_step, train_step, Value, seed + 1)
    rng = np.random.default_rng(seed + 2)
    theta = rng.normal(size=13) * 0.8
    held = rng.normal(size=13)
    X = rng.normal(size=(5, 2))
    y = np.array([-1.0, 1.0, *rng.choice([-1.0, 1.0], size=3)])
    lr = float(rng.uniform(0.2, 0.6))
    seen = _observe(visible.train_observations, train_step, Value, theta.tolist(), held.tolist(), X.tolist(),
                    y.tolist(), lr)
    for step, (got_theta, got_loss) in enumerate(zip(seen["thetas"], seen["losses"], strict=True), 1):
        want_loss, g = _reference_step(theta, X, y)
        theta = theta - lr * g
        if got_loss is None or not close(float(got_loss), want_loss, 1e-8) or not np.allclose(
                np.asarray(got_theta, dtype=float), theta, rtol=1e-8, atol=1e-10):
            raise CheckFailure(f"`train_step`: on another batch of {len(y)} (lr = {lr:.3g}), step {step} "
                               f"does not match one gradient-descent step on the mean logistic loss computed "
                               f"by the reference engine (loss {want_loss:.8g}, yours {got_loss}) (seed "
                               f"{seed}).")

