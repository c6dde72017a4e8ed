"""Visible checks for lesson 06 (an autograd Tensor).

The notebook's given cells define the data structure (``Tensor``, ``Node``, the primitive table ``OPS``
and ``GradMode``); each check receives those plus the ONE student function it grades. When grading,
the graphs a check needs are recorded by the grader's trusted stand-in (``autograder.hidden``), never with
the student's other exercises, so a bug in one exercise costs only that exercise's points. This module is
shipped to students and holds no answer: in their kit the graphs are built with their own apply_op
(through the Tensor's operators), and a failure says so.

Correct gradients always come from float64 finite differences of a forward pass the check computes with
its own numpy code (``autograder.checks``), never from the notebook; where PyTorch is installed the same
random program is also differentiated by PyTorch and compared.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autograder.checks import CheckFailure, check_close, check_gradient, check_vjp, new_seed, quiet

__all__ = [
    "check_apply_op",
    "check_format_graph",
    "check_backward",
    "check_backward_semantics",
    "check_sum_to_shape",
    "check_no_grad",
    "Program",
    "random_program",
    "graph_op",
    "operator_op",
]


# ---------------------------------------------------------------------------------------------------------
# The check's own numpy forward of every primitive (independent of the notebook's table)
# ---------------------------------------------------------------------------------------------------------

NUMPY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "neg": np.negative,
    "pow": np.power,
    "exp": np.exp,
    "log": np.log,
    "tanh": np.tanh,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "matmul": np.matmul,
    "sum": lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, axes=None: np.transpose(x, axes),
}


def _torch_ops(torch):  # noqa: ANN001, ANN202 - torch is optional, imported by the caller
    return {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "neg": torch.neg,
        "pow": torch.pow,
        "exp": torch.exp,
        "log": torch.log,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "matmul": torch.matmul,
        "sum": lambda x, axis=None, keepdims=False: (
            x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)
        ),
        "mean": lambda x, axis=None, keepdims=False: (
            x.mean() if axis is None else x.mean(dim=axis, keepdim=keepdims)
        ),
        "reshape": lambda x, shape: x.reshape(shape),
        "transpose": lambda x, axes=None: x.permute(
            *(axes if axes is not None else range(x.ndim - 1, -1, -1))
        ),
    }


try:  # the grader has trusted stand-ins; students' kits do not (they would be apply_op's answer)
    _trusted = importlib.import_module("autograder.hidden.lesson06_trusted")
except ImportError:
    _trusted = None

KIT_NOTE = (
    "(Without the grader's trusted pieces, this check builds its graphs with YOUR apply_op, through the "
    "Tensor's operators: if check_apply_op fails, fix apply_op first.)"
)


_BINARY_METHODS = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "truediv", "pow": "pow", "matmul": "matmul"
}


def operator_op(name: str, *args: object, **params: object) -> object:
    """Evaluate a program step with the Tensor's own operators, which call the notebook's apply_op."""
    a = args[0]
    if name in _BINARY_METHODS:
        method, b = _BINARY_METHODS[name], args[1]
        if hasattr(a, "grad_fn"):
            return getattr(a, f"__{method}__")(b)
        return getattr(b, f"__r{method}__")(a)  # a Python number on the left: the reflected operator
    if name == "neg":
        return -a
    if name in ("exp", "log", "tanh", "relu"):
        return getattr(a, name)()
    if name in ("sum", "mean"):
        return getattr(a, name)(**params)
    if name == "reshape":
        return a.reshape(params["shape"])
    if name == "transpose":
        return a.transpose(*(params.get("axes") or ()))
    raise KeyError(name)


def graph_op(Tensor: type, Node: type, OPS: dict) -> Callable[..., object]:
    """op(name, *tensors, **params) that records a graph for checks of exercises other than apply_op.

    With the grader's trusted stand-in the graph does not depend on the student's apply_op; in a student's
    kit it is built with the student's own apply_op (a blank one is reported as such)."""
    if _trusted is not None:
        return _trusted.recording_op(Tensor, Node, OPS)

    def op(name: str, *args: object, **params: object) -> object:
        try:
            with quiet():
                return operator_op(name, *args, **params)
        except NotImplementedError:
            raise CheckFailure(
                "this check builds its graphs with your apply_op (the grader uses a trusted one), and "
                "apply_op is not implemented yet: do that exercise first."
            ) from None

    return op


def with_kit_note(check: Callable[..., str]) -> Callable[..., str]:
    """In a student's kit, add KIT_NOTE to a failure of a check whose graphs come from graph_op."""

    def wrapped(*args: object, **kwargs: object) -> str:
        try:
            return check(*args, **kwargs)
        except CheckFailure as exc:
            if _trusted is None and KIT_NOTE not in str(exc):
                raise CheckFailure(f"{exc}\n  {KIT_NOTE}") from None
            raise

    wrapped.__name__, wrapped.__doc__ = check.__name__, check.__doc__
    wrapped.__wrapped__ = check
    return wrapped


# ---------------------------------------------------------------------------------------------------------
# Random programs: a straight-line list of ops over a few leaves, evaluated by any "backend"
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Program:
    """A random straight-line program over leaves; operands are ("v", i), ("c", array) or ("s", float)."""

    leaf_shapes: list[tuple[int, ...]]
    steps: list[tuple[str, list[tuple[str, object]], dict]] = field(default_factory=list)
    readout: list[tuple[int, np.ndarray]] = field(default_factory=list)  # loss = sum_k sum(R_k * v[i_k])

    def run(self, leaves: list, op: Callable[..., object], const: Callable[[object], object]) -> object:
        """Evaluate with op(name, *operands, **params); const wraps arrays/scalars for the backend."""
        values = list(leaves)
        for name, operands, params in self.steps:
            args = [values[x] if kind == "v" else const(x) for kind, x in operands]
            values.append(op(name, *args, **params))
        total = None
        for i, weights in self.readout:
            term = op("sum", op("mul", values[i], const(weights)))
            total = term if total is None else op("add", total, term)
        return total

    def numpy_loss(self, *leaves: np.ndarray) -> float:
        return float(self.run(list(leaves), lambda n, *a, **p: NUMPY_OPS[n](*a, **p), lambda c: c))

    def describe(self) -> str:
        names = [f"x{i}{list(s)}" for i, s in enumerate(self.leaf_shapes)]
        lines = []
        for name, operands, params in self.steps:
            args = [names[x] if k == "v" else ("const" if k == "c" else repr(x)) for k, x in operands]
            extra = "".join(f", {k}={v}" for k, v in params.items())
            lines.append(f"v{len(names)} = {name}({', '.join(args)}{extra})")
            names.append(f"v{len(names)}")
        return "; ".join(lines)


def random_program(rng: np.random.Generator, n_steps: int = 8, *, broadcasting: bool = False) -> Program:
    """Random program whose values are all (3, 4) unless `broadcasting` adds leaves of other shapes.

    Without broadcasting every gradient already has its input's shape, so the program tests backward
    without touching sum_to_shape. Domains are kept safe (log of 1 + x*x, exp of tanh) and values shared
    between ops so the graph has diamonds.
    """
    shapes: list[tuple[int, ...]] = [(3, 4), (3, 4), (4, 4)]
    if broadcasting:
        shapes += [(4,), (1, 4), (3, 1), ()]
    prog = Program(shapes)
    big = [0, 1]  # indices of (3, 4) values
    small = list(range(3, len(shapes)))

    def pick() -> tuple[str, int]:
        return ("v", int(rng.choice(big)))

    def emit(name: str, operands: list, **params: object) -> int:
        prog.steps.append((name, operands, params))
        return len(shapes) + len(prog.steps) - 1

    for _ in range(n_steps):
        kind = int(rng.integers(9))
        if kind == 0:
            new = emit(str(rng.choice(["add", "sub", "mul"])), [pick(), pick()])
        elif kind == 1:
            new = emit("mul", [pick(), ("c", rng.standard_normal(4))])
        elif kind == 2:  # a / (1 + b*b)
            sq = emit("mul", [pick(), pick()])
            den = emit("add", [("s", 1.0), ("v", sq)])
            new = emit("div", [pick(), ("v", den)])
        elif kind == 3:  # log(1 + a*a)
            a = pick()
            sq = emit("mul", [a, a])
            new = emit("log", [("v", emit("add", [("v", sq), ("s", 1.0)]))])
        elif kind == 4:
            new = emit("exp", [("v", emit("tanh", [pick()]))])
        elif kind == 5:
            new = emit(str(rng.choice(["relu", "neg", "tanh"])), [pick()])
        elif kind == 6:
            new = emit("matmul", [pick(), ("v", 2)])
        elif kind == 7:
            new = emit("reshape", [("v", emit("transpose", [pick()]))], shape=(3, 4))
        else:  # (1 + a*a) ** p
            a = pick()
            base = emit("add", [("s", 1.0), ("v", emit("mul", [a, a]))])
            new = emit("pow", [("v", base), ("s", float(rng.choice([0.5, 2.0, 3.0])))])
        if broadcasting and small and rng.random() < 0.7:
            other = ("v", int(rng.choice(small)))
            new = emit(str(rng.choice(["add", "mul", "sub"])), [("v", new), other])
        big.append(new)
    # Read out the last value, a random earlier one, and a reduction, so sums and means are exercised.
    prog.readout.append((big[-1], rng.standard_normal((3, 4))))
    prog.readout.append((int(rng.choice(big[2:] or big)), rng.standard_normal((3, 4))))
    mean_axis = emit("mean", [("v", int(rng.choice(big)))], axis=0)
    prog.readout.append((mean_axis, rng.standard_normal(4)))
    live = {i for i, _ in prog.readout}
    for k in range(len(prog.steps) - 1, -1, -1):  # which values the loss actually depends on
        if len(shapes) + k in live:
            live |= {x for kind, x in prog.steps[k][1] if kind == "v"}
    for leaf, shape in enumerate(shapes):  # every leaf must reach the loss, so every leaf gets a .grad
        if leaf not in live:
            prog.readout.append((leaf, rng.standard_normal(shape)))
    return prog


def random_leaves(rng: np.random.Generator, prog: Program) -> list[np.ndarray]:
    return [rng.standard_normal(s) * (0.5 if len(s) == 2 and s[0] == 4 else 1.0) for s in prog.leaf_shapes]


def tensor_gradients(
    prog: Program,
    arrays: list[np.ndarray],
    Tensor: type,
    op: Callable[..., object],
    backward: Callable[[object], None],
    *,
    raw_constants: bool = False,
) -> tuple[np.ndarray, ...]:
    """Build prog on fresh leaf Tensors with op(name, *args, **params), call backward(loss), read .grad.

    Constants are wrapped as Tensors, or (raw_constants) passed as the numbers/arrays they are, which is
    how the Tensor's operators meet them in user code.
    """
    leaves = [Tensor(np.array(a, dtype=float), requires_grad=True) for a in arrays]
    loss = prog.run(
        leaves, op, (lambda c: c) if raw_constants else (lambda c: Tensor(np.array(c, dtype=float)))
    )
    with quiet():
        backward(loss)
    grads = []
    for i, leaf in enumerate(leaves):
        if leaf.grad is None:
            raise CheckFailure(
                f"after backward, leaf x{i} (shape {leaf.shape}) has .grad None although the loss depends on "
                "it. Every leaf that requires grad and is reached from the loss must receive its gradient."
            )
        grads.append(np.array(leaf.grad, dtype=float))
    return tuple(grads)


def torch_gradients(prog: Program, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...] | None:
    """The same program differentiated by PyTorch in float64, or None when torch is not installed."""
    try:
        with quiet():  # an import-time warning on stderr would zero the test cell
            import torch
    except ImportError:
        return None
    ops = _torch_ops(torch)
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]

    def const(c: object) -> object:
        return torch.tensor(np.array(c, dtype=float), dtype=torch.float64)

    loss = prog.run(leaves, lambda n, *a, **p: ops[n](*a, **p), const)
    loss.backward()
    return tuple(leaf.grad.numpy().copy() for leaf in leaves)


def check_program_gradients(
    prog: Program, arrays: list[np.ndarray], grads_of: Callable[..., tuple], seed: int, what: str
) -> None:
    """Compare grads_of(*arrays) with finite differences (and PyTorch when installed)."""

    def loss(*xs: np.ndarray) -> float:
        return prog.numpy_loss(*xs)

    def gradients(*xs: np.ndarray) -> tuple:
        return grads_of(*xs)

    loss.__name__ = "program"
    gradients.__name__ = what
    try:
        check_gradient(loss, gradients, *arrays, seed=seed)
    except CheckFailure as exc:
        raise CheckFailure(f"{exc}\n  The random program was: {prog.describe()}") from None
    expected = torch_gradients(prog, arrays)
    if expected is not None:
        got = grads_of(*arrays)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            check_close(
                g, e, name=f"{what}: gradient of leaf x{i} compared with PyTorch", rtol=1e-7, atol=1e-10
            )


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: apply_op
# ---------------------------------------------------------------------------------------------------------

_SINGLE_OPS: dict[str, tuple[list[tuple[int, ...]], dict, str]] = {
    # name: (input shapes, params, domain) ; domain "pos" keeps inputs positive
    "add": ([(3, 4), (3, 4)], {}, "any"),
    "sub": ([(3, 4), (3, 4)], {}, "any"),
    "mul": ([(3, 4), (3, 4)], {}, "any"),
    "div": ([(3, 4), (3, 4)], {}, "pos"),
    "pow": ([(3, 4), (3, 4)], {}, "pos"),
    "neg": ([(2, 5)], {}, "any"),
    "exp": ([(2, 5)], {}, "any"),
    "log": ([(2, 5)], {}, "pos"),
    "tanh": ([(2, 5)], {}, "any"),
    "relu": ([(2, 5)], {}, "away0"),
    "matmul": ([(3, 4), (4, 2)], {}, "any"),
    "sum": ([(3, 4)], {"axis": 1, "keepdims": False}, "any"),
    "mean": ([(3, 4)], {"axis": 0, "keepdims": True}, "any"),
    "reshape": ([(3, 4)], {"shape": (2, 6)}, "any"),
    "transpose": ([(2, 3, 4)], {"axes": (2, 0, 1)}, "any"),
}


def _draw(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    x = rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "away0":
        return np.where(np.abs(x) < 0.1, x + np.sign(x + 1e-300) * 0.2, x)
    return x


def check_apply_op(
    apply_op: Callable[..., object], Tensor: type, OPS: dict, GradMode: type, *, seed: int | None = None
) -> str:
    """apply_op computes the forward, decides requires_grad, and records a Node whose VJPs are right."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    previous = GradMode.enabled
    GradMode.enabled = True
    try:
        for flags in ((True, False), (False, True)):
            ins = [Tensor(rng.standard_normal((2, 3)), requires_grad=f) for f in flags]
            with quiet():
                out = apply_op(OPS["mul"], *ins)
            if not getattr(out, "requires_grad", False) or getattr(out, "grad_fn", None) is None:
                raise CheckFailure(
                    f"apply_op(mul) with requires_grad flags {list(flags)} returned a tensor that does not "
                    "require grad. Hint: a gradient must flow if ANY input needs one (think of x @ W where "
                    f"only W is a parameter). (seed {seed})"
                )
        for name, (shapes, params, domain) in _SINGLE_OPS.items():
            if name not in OPS:
                continue
            prim = OPS[name]
            arrays = [_draw(rng, s, domain) for s in shapes]
            flags = [bool(rng.random() < 0.5) for _ in arrays]
            flags[int(rng.integers(len(flags)))] = True  # at least one input needs a gradient
            ins = [Tensor(a.copy(), requires_grad=f) for a, f in zip(arrays, flags, strict=True)]
            with quiet():
                out = apply_op(prim, *ins, **params)
            _check_output(out, Tensor, name, NUMPY_OPS[name](*arrays, **params), seed)
            if not out.requires_grad or out.grad_fn is None:
                raise CheckFailure(
                    f"apply_op({name}): the inputs' requires_grad flags were {flags}, so the output must "
                    "have requires_grad=True and a grad_fn (a Node). Hint: a gradient must flow if ANY "
                    f"input needs one, and grad mode is on. (seed {seed})"
                )
            node = out.grad_fn
            edges = [t.accumulator if f else None for t, f in zip(ins, flags, strict=True)]
            if (
                node.prim is not prim
                or len(node.next_functions) != len(ins)
                or any(a is not b for a, b in zip(node.next_functions, edges, strict=True))
            ):
                raise CheckFailure(
                    f"apply_op({name}): the Node must be built from the primitive and the input Tensors "
                    "themselves, in order: Node(prim, tensors, params, out_data). Its next_functions should "
                    f"be {edges}, got {getattr(node, 'next_functions', None)}. (seed {seed})"
                )
            _check_recorded_vjps(apply_op, Tensor, name, prim, arrays, params, seed)

        # requires_grad rule with constants only, and with grad mode off
        a = Tensor(rng.standard_normal((2, 3)))
        b = Tensor(rng.standard_normal((2, 3)))
        with quiet():
            out = apply_op(OPS["mul"], a, b)
        if out.requires_grad or out.grad_fn is not None:
            raise CheckFailure(
                "apply_op(mul) on two tensors that do not require grad returned a tensor with "
                f"requires_grad={out.requires_grad} and grad_fn={out.grad_fn!r}. Constants must not start a "
                f"graph: record a Node only if some input requires grad. (seed {seed})"
            )
        a.requires_grad = True
        GradMode.enabled = False
        try:
            with quiet():
                out = apply_op(OPS["mul"], a, b)
        finally:
            GradMode.enabled = True
        if out.requires_grad or out.grad_fn is not None:
            raise CheckFailure(
                "With GradMode.enabled = False (what no_grad() sets), apply_op still recorded a graph. "
                "Check is_grad_enabled() before recording: inside no_grad the output is a plain tensor "
                f"(requires_grad False, grad_fn None). (seed {seed})"
            )
        _check_op_values(out, a.data * b.data, "apply_op(mul) with grad mode off", seed)

        # Python numbers on either side
        x = rng.standard_normal((2, 3))
        t = Tensor(x.copy(), requires_grad=True)
        c = float(rng.uniform(1.5, 3.0))
        for label, args, expected in (("mul(t, c)", (t, c), x * c), ("sub(c, t)", (c, t), c - x)):
            prim = OPS["mul"] if label.startswith("mul") else OPS["sub"]
            try:
                with quiet():
                    out = apply_op(prim, *args)
            except (AttributeError, TypeError) as exc:
                raise CheckFailure(
                    f"apply_op({label}) with a Python number c = {c:.3g} failed with {type(exc).__name__}: "
                    f"{exc}. Hint: wrap every input that is not a Tensor as a constant Tensor(x) first, so "
                    f"`t * 2` and `2 - t` work. (seed {seed})"
                ) from None
            _check_op_values(out, expected, f"apply_op({label})", seed)
            want = (True, False) if label.startswith("mul") else (False, True)
            if out.grad_fn is None or tuple(out.grad_fn.needs_grad) != want:
                raise CheckFailure(
                    f"apply_op({label}): the Node's inputs must be two Tensors, the number wrapped as a "
                    f"constant Tensor that does not require grad (needs_grad {want}). (seed {seed})"
                )
    except (CheckFailure, NotImplementedError):  # a blank answer cell shows as not implemented
        raise
    except Exception as exc:
        raise CheckFailure(
            f"apply_op raised {type(exc).__name__}: {exc}. Hint: prim.forward works on numpy arrays, so call "
            "it with the inputs' .data (after wrapping constants as Tensors); the result goes into a new "
            f"Tensor. (seed {seed})"
        ) from exc
    finally:
        GradMode.enabled = previous
    return (
        f"apply_op passed: forward, requires_grad rule and recorded VJPs of {len(_SINGLE_OPS)} ops (seed "
        f"{seed})"
    )


def _check_output(out: object, Tensor: type, name: str, expected: np.ndarray, seed: int) -> None:
    if not isinstance(out, Tensor):
        raise CheckFailure(
            f"apply_op({name}) returned {type(out).__name__}, expected a Tensor. (seed {seed})"
        )
    _check_op_values(out, expected, f"apply_op({name})", seed)


def _check_op_values(out: object, expected: np.ndarray, what: str, seed: int) -> None:
    check_close(
        getattr(out, "data", None),
        expected,
        name=f"the data of {what}",
        rtol=1e-12,
        atol=1e-12,
        hint=f"compute the forward with prim.forward(*arrays, **params) on the inputs' .data (seed {seed})",
    )


def _check_recorded_vjps(
    apply_op: Callable[..., object],
    Tensor: type,
    name: str,
    prim: object,
    arrays: list[np.ndarray],
    params: dict,
    seed: int,
) -> None:
    """Build the op with apply_op at the checker's points and run the recorded Node's VJPs."""

    def vjp_for(k: int) -> Callable[..., np.ndarray]:
        def recorded_vjp(g: np.ndarray, ans: np.ndarray, *xs: np.ndarray) -> np.ndarray:
            ins = [Tensor(np.array(x, dtype=float), requires_grad=(j == k)) for j, x in enumerate(xs)]
            out = apply_op(prim, *ins, **params)
            if out.grad_fn is None:
                raise CheckFailure(
                    f"apply_op({name}) recorded no Node when only input {k} requires grad; record one if ANY "
                    f"input requires grad. (seed {seed})"
                )
            return out.grad_fn.input_grads(np.array(g))[k]

        recorded_vjp.__name__ = f"the VJP recorded by apply_op({name}) for input {k}"
        return recorded_vjp

    def forward(*xs: np.ndarray) -> np.ndarray:
        return NUMPY_OPS[name](*xs, **params)

    forward.__name__ = name
    check_vjp(forward, [vjp_for(k) for k in range(len(arrays))], *arrays, seed=seed)


# ---------------------------------------------------------------------------------------------------------
# Exercise 2: format_graph
# ---------------------------------------------------------------------------------------------------------

_UNARY = ["exp", "tanh", "neg", "relu"]
_BINARY = ["add", "sub", "mul"]


def _random_tree(
    rng: np.random.Generator, Tensor: type, op: Callable[..., object], depth: int
) -> tuple[object, list[str]]:
    """A random tree-shaped graph and the lines format_graph must print for it (built bottom-up)."""
    if depth == 0 or rng.random() < 0.25:
        needs = bool(rng.random() < 0.75)
        t = Tensor(rng.standard_normal((2, 2)) * 0.5, requires_grad=needs)
        return t, ["AccumulateGrad" if needs else "None"]
    if rng.random() < 0.4:
        name = str(rng.choice(_UNARY))
        kids = [_random_tree(rng, Tensor, op, depth - 1)]
    else:
        name = str(rng.choice(_BINARY))
        kids = [_random_tree(rng, Tensor, op, depth - 1) for _ in range(2)]
    out = op(name, *(k[0] for k in kids))
    if out.grad_fn is None:
        return out, ["None"]
    lines = [out.grad_fn.name]
    for _, kid_lines in kids:
        lines += ["  " + line for line in kid_lines]
    return out, lines


@with_kit_note
def check_format_graph(
    format_graph: Callable[[object], str],
    Tensor: type,
    Node: type,
    OPS: dict,
    *,
    seed: int | None = None,
    trees: int = 6,
) -> str:
    """format_graph prints every grad_fn, depth-first, inputs in order, two spaces per level."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    op = graph_op(Tensor, Node, OPS)
    made = 0
    while made < trees:
        root, lines = _random_tree(rng, Tensor, op, depth=4)
        if root.grad_fn is None or len(lines) < 3:
            continue
        made += 1
        with quiet():
            got = format_graph(root)
        if not isinstance(got, str):
            raise CheckFailure(
                f"format_graph returned {type(got).__name__}; it must return one string (lines joined with "
                f"'\\n'). (seed {seed})"
            )
        got_lines = got.rstrip("\n").split("\n")
        if got_lines != lines:
            diff = next(
                (i for i, (a, b) in enumerate(zip(got_lines, lines, strict=False)) if a != b),
                min(len(got_lines), len(lines)),
            )
            raise CheckFailure(
                "format_graph printed the wrong graph.\n  expected:\n    "
                + "\n    ".join(lines)
                + "\n  got:\n    "
                + "\n    ".join(got_lines)
                + f"\n  first difference at line {diff + 1}. Hint: print a node's name, then each entry of "
                "its next_functions in order (None for a constant input), each one level (two spaces) "
                f"deeper; AccumulateGrad nodes end a branch. (seed {seed})"
            )
    leaf = Tensor(rng.standard_normal(3), requires_grad=True)
    const = Tensor(rng.standard_normal(3))
    for t, want in ((leaf, "AccumulateGrad"), (const, "None")):
        with quiet():
            got = format_graph(t)
        if not isinstance(got, str) or got.strip("\n") != want:
            raise CheckFailure(
                f"format_graph of a tensor without grad_fn that has requires_grad={t.requires_grad} should "
                f"be the single line {want!r}, got {got!r}. (seed {seed})"
            )
    return f"format_graph passed on {trees} random graphs (seed {seed})"


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: backward
# ---------------------------------------------------------------------------------------------------------


@with_kit_note
def check_backward(
    backward: Callable[..., None],
    Tensor: type,
    Node: type,
    OPS: dict,
    *,
    seed: int | None = None,
    programs: int = 3,
    n_steps: int = 8,
) -> str:
    """backward on random programs (with shared sub-expressions) matches finite differences and PyTorch."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    op = graph_op(Tensor, Node, OPS)
    for k in range(programs):
        prog = random_program(rng, n_steps)
        arrays = random_leaves(rng, prog)
        check_program_gradients(
            prog,
            arrays,
            lambda *xs, prog=prog: tensor_gradients(prog, list(xs), Tensor, op, backward),
            seed + k,
            "your backward",
        )
    _check_unequal_paths(backward, Tensor, op, rng, seed)
    return f"backward passed on {programs} random programs (seed {seed})"


def _check_unequal_paths(
    backward: Callable[..., None],
    Tensor: type,
    op: Callable[..., object],
    rng: np.random.Generator,
    seed: int,
) -> None:
    """h = w*c reaches the loss directly and through a longer path: its node must wait for both."""
    w0 = rng.standard_normal(4)
    c = rng.uniform(1.5, 2.5, 4)
    r = rng.standard_normal(4)
    w = Tensor(w0.copy(), requires_grad=True)
    h = op("mul", w, Tensor(c))
    long = op("exp", op("tanh", op("tanh", h)))
    loss = op("sum", op("mul", op("add", long, h), Tensor(r)))
    with quiet():
        backward(loss)
    hv = w0 * c
    t1 = np.tanh(hv)
    expected = r * (np.exp(np.tanh(t1)) * (1 - np.tanh(t1) ** 2) * (1 - t1**2) + 1) * c
    check_close(
        w.grad,
        expected,
        name="w.grad for loss = sum(r * (exp(tanh(tanh(h))) + h)), h = w * c",
        rtol=1e-9,
        atol=1e-12,
        hint="h reaches the loss by a short and a long path. A node's VJP may run only after ALL "
        "gradient contributions to it have arrived: process nodes in reverse topological order, not "
        f"breadth-first from the loss. (seed {seed})",
    )


@with_kit_note
def check_backward_semantics(
    backward: Callable[..., None], Tensor: type, Node: type, OPS: dict, *, seed: int | None = None
) -> str:
    """PyTorch's observable rules: accumulation, only leaves keep .grad, errors, freeing saved arrays."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    op = graph_op(Tensor, Node, OPS)
    a0, b0 = rng.standard_normal(2)

    # c = a + b, three calls: 1, 2, then 1 after zeroing
    a = Tensor(a0, requires_grad=True)
    b = Tensor(b0, requires_grad=True)
    c = op("add", a, b)
    seen = []
    with quiet():
        backward(c)
        seen.append(None if a.grad is None else float(np.asarray(a.grad)))
        backward(c)
        seen.append(None if a.grad is None else float(np.asarray(a.grad)))
        a.grad = None
        backward(c)
        seen.append(None if a.grad is None else float(np.asarray(a.grad)))
    if seen != [1.0, 2.0, 1.0]:
        raise CheckFailure(
            f"c = a + b; three backward calls with a.grad reset before the third gave a.grad = {seen}, "
            "PyTorch gives [1.0, 2.0, 1.0]. Hint: add the new gradient to a leaf's existing .grad "
            "(tensor.grad = tensor.grad + g) instead of overwriting it; start from a copy when .grad is "
            f"None. (seed {seed})"
        )

    # a leaf's first .grad must be its own array: add's VJP hands the same g to both inputs, and a caller
    # may reuse the gradient it passed in
    a = Tensor(rng.standard_normal(3), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    upstream = rng.standard_normal(3)
    with quiet():
        backward(op("add", a, b), upstream.copy())
    a_grad, b_grad = np.asarray(a.grad), np.asarray(b.grad)
    if np.shares_memory(a_grad, b_grad):
        raise CheckFailure(
            "after backward through c = a + b, a.grad and b.grad are the same array in memory, so changing "
            "one would change the other. Hint: when a leaf's .grad is None, store a COPY of the incoming "
            f"gradient (add's VJP passes the very same array to both inputs). (seed {seed})"
        )

    # gradient argument, non-scalar roots, shapes
    x0 = rng.standard_normal((3, 4))
    g0 = rng.standard_normal((3, 4))
    x = Tensor(x0.copy(), requires_grad=True)
    y = op("tanh", x)
    with quiet():
        backward(y, g0.copy())
    check_close(
        x.grad,
        g0 * (1 - np.tanh(x0) ** 2),
        name="x.grad after backward(tanh(x), gradient=g)",
        rtol=1e-10,
        atol=1e-12,
        hint="start the backward pass from the given gradient instead of ones",
    )
    if y.grad is not None:
        raise CheckFailure(
            "after backward, the non-leaf y = tanh(x) has a .grad; like PyTorch, only leaves keep their "
            f"gradient (intermediate gradients live in a local dict and are dropped). (seed {seed})"
        )
    y = op("tanh", Tensor(x0.copy(), requires_grad=True))
    try:
        with quiet():
            backward(y)
    except (RuntimeError, ValueError) as exc:
        if "shape" not in str(exc) and "scalar" not in str(exc):
            raise CheckFailure(
                f"backward of a (3, 4) tensor without a gradient raised {exc!r}; the message should say that "
                "a gradient is needed because the tensor is not a scalar, and name its shape."
            ) from None
    else:
        raise CheckFailure(
            "backward of a (3, 4) tensor without a gradient argument must raise a RuntimeError (only a "
            "scalar has an obvious starting gradient of 1). It returned silently."
        )

    # a constant input never receives .grad
    w = Tensor(rng.standard_normal(4), requires_grad=True)
    k = Tensor(rng.standard_normal(4))
    with quiet():
        backward(op("sum", op("mul", w, k)))
    if k.grad is not None:
        raise CheckFailure(
            "a tensor with requires_grad=False received a .grad; skip inputs that do not need a gradient. "
            f"(seed {seed})"
        )

    # saved arrays are freed after backward, kept with retain_graph=True
    p = Tensor(rng.standard_normal(5), requires_grad=True)
    q = op("exp", p)
    loss = op("sum", op("mul", q, q))
    with quiet():
        backward(loss, retain_graph=True)
    if q.grad_fn.saved is None:
        raise CheckFailure(
            "backward(..., retain_graph=True) freed the saved arrays; with retain_graph the graph must stay "
            "usable for another backward."
        )
    with quiet():
        backward(loss)
    if q.grad_fn.saved is not None or loss.grad_fn.next_functions[0].saved is not None:
        raise CheckFailure(
            "after backward (retain_graph=False) a node still holds its saved arrays. Call node.release() "
            "on each node once its VJPs have run, so the activations it kept for the backward pass are "
            "freed."
        )
    check_close(
        p.grad,
        2 * 2 * np.exp(2 * p.data),
        name="p.grad after two backward calls (retain_graph then not)",
        rtol=1e-10,
        hint="gradients accumulate across backward calls",
    )

    # deep graphs must not hit Python's recursion limit
    z = Tensor(rng.uniform(-0.5, 0.5, 2), requires_grad=True)
    h = z
    for _ in range(5000):
        h = op("add", op("tanh", h), z)
    try:
        with quiet():
            backward(op("sum", h))
    except RecursionError:
        raise CheckFailure(
            "backward hit Python's recursion limit on a chain of 10000 ops. Build the topological order "
            "with an explicit stack instead of recursion."
        ) from None
    return f"backward follows PyTorch's rules (seed {seed})"


# ---------------------------------------------------------------------------------------------------------
# Exercise 4: sum_to_shape
# ---------------------------------------------------------------------------------------------------------

_PAIRS = [
    ((4,), (3, 4)),
    ((1, 4), (3, 4)),
    ((3, 1), (3, 4)),
    ((), (2, 3)),
    ((5, 1, 3), (2, 5, 4, 3)),
    ((1,), (6,)),
    ((2, 1), (4, 2, 3)),
]


def check_sum_to_shape(
    sum_to_shape: Callable[[np.ndarray, tuple], np.ndarray], *, seed: int | None = None
) -> str:
    """sum_to_shape is the VJP of broadcasting: checked as such with finite differences."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(_PAIRS))
    for k in order:
        small, big = _PAIRS[k]

        def broadcast(x: np.ndarray, big: tuple = big) -> np.ndarray:
            return np.broadcast_to(x, big).copy()

        def vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> np.ndarray:
            return sum_to_shape(g, x.shape)

        broadcast.__name__ = f"broadcast_to(x of shape {small}, {big})"
        vjp.__name__ = f"sum_to_shape(g of shape {big}, {small})"
        try:
            check_vjp(broadcast, vjp, rng.standard_normal(small), seed=seed + int(k))
        except (CheckFailure, NotImplementedError):
            raise
        except Exception as exc:
            raise CheckFailure(
                f"sum_to_shape(g of shape {big}, {small}) raised {type(exc).__name__}: {exc}. Hint: the "
                "gradient is the larger array; SUM it over the axes broadcasting added (leading ones) or "
                "stretched (size 1 in the target, keepdims=True); broadcasting it does not shrink it. "
                f"(seed {seed})"
            ) from exc
    g = rng.standard_normal((3, 4))
    with quiet():
        same = sum_to_shape(g, (3, 4))
    check_close(
        same,
        g,
        name="sum_to_shape(g, g.shape)",
        rtol=0,
        hint="when the shapes already match there is nothing to sum",
    )
    for bad in ((4, 3), (2, 4), (3, 4, 1)):
        try:
            with quiet():
                sum_to_shape(g, bad)
        except ValueError as exc:
            if str(bad) not in str(exc) and str(list(bad)) not in str(exc):
                raise CheckFailure(
                    f"sum_to_shape(g of shape (3, 4), {bad}) raised ValueError({str(exc)!r}); name the "
                    f"target shape {bad} in the message."
                ) from None
        else:
            raise CheckFailure(
                f"sum_to_shape(g of shape (3, 4), {bad}) must raise ValueError: {bad} does not broadcast to "
                "(3, 4), so this gradient cannot belong to that input. A silent wrong answer hides graph "
                "bugs."
            )
    return f"sum_to_shape passed on {len(_PAIRS)} broadcasting pairs (seed {seed})"


# ---------------------------------------------------------------------------------------------------------
# Exercise 5: no_grad
# ---------------------------------------------------------------------------------------------------------


def check_no_grad(no_grad: type, GradMode: type) -> str:
    """no_grad switches recording off and restores the PREVIOUS state on exit, even on an exception."""
    saved = GradMode.enabled
    try:
        GradMode.enabled = True
        with quiet(), no_grad():
            inside = GradMode.enabled
        if inside is not False:
            raise CheckFailure("inside `with no_grad():` GradMode.enabled must be False.")
        if GradMode.enabled is not True:
            raise CheckFailure(
                "after leaving `with no_grad():` grad mode must be on again (it was on before)."
            )

        with quiet(), no_grad():
            with no_grad():
                inner_inside = GradMode.enabled
            still_off = GradMode.enabled
        if inner_inside is not False:
            raise CheckFailure(
                f"nested no_grad: inside the inner block grad mode must be off too; got {inner_inside}. "
                "Hint: __enter__ sets GradMode.enabled = False whatever it was (do not toggle it), and "
                "__exit__ puts back the state __enter__ found."
            )
        if still_off is not False or GradMode.enabled is not True:
            raise CheckFailure(
                "nested no_grad: after the inner block exits, grad mode must still be off (the outer block "
                f"is still running); got {still_off}. Hint: remember the state found on __enter__ and "
                "restore THAT on __exit__, instead of switching grad mode back on."
            )

        GradMode.enabled = False
        with quiet(), no_grad():
            off_inside = GradMode.enabled
        if off_inside is not False:
            raise CheckFailure(
                "no_grad entered while grad mode was already off switched it ON inside the block. Hint: "
                "__enter__ sets GradMode.enabled = False; do not toggle it with `not`."
            )
        if GradMode.enabled is not False:
            raise CheckFailure(
                "no_grad entered while grad mode was already off must leave it off on exit; restore the "
                "previous state, do not assume it was on."
            )

        GradMode.enabled = True

        class Probe(Exception):
            pass

        try:
            with quiet(), no_grad():
                raise Probe("raised inside the block")
        except Probe:
            pass
        else:
            raise CheckFailure(
                "an exception raised inside `with no_grad():` disappeared. __exit__ must return False (or "
                "None) so the exception propagates."
            )
        if GradMode.enabled is not True:
            raise CheckFailure(
                "after an exception inside `with no_grad():` grad mode stayed off. __exit__ runs on "
                "exceptions too; if you used @contextmanager, put the restore in a `finally:` block."
            )
    finally:
        GradMode.enabled = saved
    return "no_grad passed: off inside, previous state restored on exit, nesting and exceptions"
