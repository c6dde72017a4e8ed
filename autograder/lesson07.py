"""Visible checks for lesson 07 (a small training library).

Each check receives the student's class or function plus the given engine classes it needs (``Tensor``,
``Parameter``, ``GradMode``). Whatever else an exercise needs is supplied by the check as a small
*recording* stand-in (a linear model that logs the batches it sees, an optimiser that logs the gradients
it is asked to apply), never the student's other exercises, so one bug costs one exercise's points.

This module is shipped to students, so it holds no answer: the optimisers are judged by properties of
their update rules (a plain step is -lr * g; with momentum a single gradient keeps acting, decaying by
`momentum` per step; the update is linear in the gradients; Adam's bias-corrected steps are ~lr * sign(g)
and ignore the gradients' scale). When grading, the closed forms over whole gradient histories come from
``autograder.hidden``. The training step is checked with explicit gradients of the mean-squared error of
the stand-in model, and the Linear layer with finite differences (``autograder.checks``).

Every public ``check_*`` prints one ``passed:`` line saying what it compared; the ``verify_*`` function
behind it does the work and returns that line's detail, so the hidden checks can run it again silently.
Student code is always run through ``call_student``: a blank exercise ends in the course's one NotDone
message and any other exception in one message naming the exercise, never in a traceback.
"""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Callable

import numpy as np

from autograder.checks import (
    CheckFailure,
    NotDone,
    call_student,
    check_close,
    check_gradient,
    in_kernel,
    new_seed,
    passed,
    readonly,  # the read-only copies every check hands to student code
    repeat_line,
    reworded,
)

__all__ = [
    "check_module_parameters",
    "check_linear",
    "check_sgd_step",
    "check_adam_step",
    "check_train_epoch",
    "check_evaluate",
]


_SEED_NOTE = re.compile(r"[ \t]*\(seed \d+\)")


def _reproducibly(what: str, call: str, verify: Callable[..., str], args: tuple, seed: int | None) -> None:
    """Run a visible check's work; print its one passed: line, or end its failure with the course's repeat
    line (the call with the seed it drew) in place of the bare seed notes inside the message."""
    seed = new_seed(seed)
    again = repeat_line(f"checks.{call}, seed={seed})")
    with reworded(lambda exc: f"{_SEED_NOTE.sub('', str(exc)).rstrip()}\n{again}"):
        detail = in_the_kernel(verify.__name__, *args, seed=seed)
    passed(what, detail)



def kernel_probe(name: str, *args: object, **kwargs: object) -> tuple[str, object]:
    """Probe: run this module's function `name` where the student's objects live (their kernel when graded)
    and hand back what came of it as data: ("ok", its return value), ("failed", the message) or
    ("not done", the message). The checks build their recording stand-ins and subclasses there, since
    grader-side objects cannot be handed to the student's code."""
    if name not in KERNEL_WORK:
        raise ValueError(f"{name} is not a lesson 07 probe")
    try:
        return "ok", globals()[name](*args, **kwargs)
    except NotDone as exc:
        return "not done", str(exc)
    except CheckFailure as exc:
        return "failed", str(exc)


KERNEL_WORK = frozenset({
    "verify_module_parameters", "verify_linear", "verify_sgd_step", "verify_adam_step", "verify_train_epoch",
    "verify_evaluate", "observe_module_tree", "observe_module_chain", "observe_linear", "observe_optimizer",
    "observe_epoch", "observe_orders", "observe_evaluate",
})


def in_the_kernel(name: str, *args: object, **kwargs: object) -> object:
    """``name(*args, **kwargs)`` of this module run by `kernel_probe`, with its failure raised here again
    in the same words (a CheckFailure, or NotDone for a blank exercise)."""
    kind, value = in_kernel(kernel_probe, name, *args, **kwargs)
    if kind == "ok":
        return value
    if kind == "not done":
        blank = NotDone("")
        blank.args = (value,)
        raise blank
    raise CheckFailure(value)


# ---------------------------------------------------------------------------------------------------------
# Module.parameters / Module.modules
# ---------------------------------------------------------------------------------------------------------


def random_module_tree(
    Module: type, Parameter: type, Tensor: type, rng: np.random.Generator, depth: int = 3
) -> tuple[object, dict[int, str], dict[int, str]]:
    """A random tree of Module subclasses; returns (root, {id(param): path}, {id(module): path}).

    Parameters sit in attributes, in lists and in tuples; sub-modules likewise; one Parameter and one
    sub-module are shared (reachable twice); plain Tensors (even with requires_grad) and numbers are noise
    that must not be collected.
    """
    params: dict[int, str] = {}
    modules: dict[int, str] = {}

    class Block(Module):  # a fresh subclass of the student's Module
        def __init__(self) -> None:
            super().__init__()

    def new_param(path: str) -> object:
        p = Parameter(rng.standard_normal(int(rng.integers(1, 4))))
        params[id(p)] = path
        return p

    def build(path: str, level: int) -> object:
        m = Block()
        modules[id(m)] = path or "the model itself"
        for k in range(int(rng.integers(1, 3))):
            setattr(m, f"w{k}", new_param(f"{path}.w{k}"))
        m.scale = float(rng.uniform(1, 2))
        m.buffer = Tensor(rng.standard_normal(2))
        m.frozen = Tensor(rng.standard_normal(2), requires_grad=True)  # a Tensor, but not a Parameter
        m.pair = (new_param(f"{path}.pair[0]"), "label")
        if level > 0:
            m.child = build(f"{path}.child", level - 1)
            m.blocks = [build(f"{path}.blocks[{i}]", level - 1) for i in range(int(rng.integers(1, 3)))]
            m.blocks.append(new_param(f"{path}.blocks[{len(m.blocks)}]"))
        else:
            m.weights = [new_param(f"{path}.weights[{i}]") for i in range(int(rng.integers(1, 3)))]
        return m

    root = build("", depth)
    shared_holder = build(".extra", 0)
    root.extra = shared_holder
    root.alias = shared_holder  # the same sub-module twice
    root.tied = shared_holder.w0  # the same Parameter twice (weight tying)
    return root, params, modules


def _listed(what: str, method: Callable[[], object]) -> list:
    """The list a student's method returns, with one clear message when it returns something else."""
    out = call_student(what, method)
    if out is None:
        raise CheckFailure(f"{what} returned None: return the list you built.")
    if not isinstance(out, list):
        raise CheckFailure(
            f"{what} returned a {type(out).__name__}, not a list: the exercise asks both methods to return "
            "lists (an iterator or generator can be read only once, and len() and indexing fail on it). "
            "Build a list and return it."
        )
    return out


def _describe(paths: list[str]) -> str:
    shown = ", ".join(f"self{p}" for p in paths[:4])
    return shown + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")


def _where(missing: list[str]) -> str:
    """What the missed objects' places have in common, as the hint; else the general rule."""
    steps = [[step for step in path.split(".") if step] for path in missing]
    if all(any(step.endswith("]") for step in path) for path in steps):
        return ("every one missed is reached through a list or tuple attribute: search the items of lists "
                "and tuples too")
    if all(len(path) > 1 for path in steps):
        return ("every one missed sits inside a sub-module: search each sub-module too (modules() lists them "
                "all, at every depth)")
    return ("look through every attribute of every module: Parameters and sub-Modules, and the items of "
            "lists and tuples")


def check_module_parameters(Module: type, Parameter: type, Tensor: type, seed: int | None = None) -> None:
    """parameters() finds every Parameter once (attributes, lists, tuples, sub-modules); so does modules()."""
    _reproducibly("Module.parameters and Module.modules", "check_module_parameters(Module, Parameter, Tensor",
                  verify_module_parameters, (Module, Parameter, Tensor), seed)


def verify_module_parameters(
    Module: type, Parameter: type, Tensor: type, *, seed: int | None = None, trees: int = 3
) -> str:
    """The work of check_module_parameters; returns what was compared."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    n_params = n_modules = 0
    for _ in range(trees):
        root, params, modules = random_module_tree(
            Module, Parameter, Tensor, rng, depth=int(rng.integers(1, 4))
        )
        n_params, n_modules = n_params + len(params), n_modules + len(modules)
        mods = _listed("Module.modules", root.modules)  # first: parameters() may use it, blank or not
        found = _listed("Module.parameters", root.parameters)
        mids = [id(m) for m in mods]
        if mods and mods[0] is not root and any(m is root for m in mods):
            raise CheckFailure(
                "Module.modules: modules() must return the model itself FIRST, then its sub-modules; yours "
                f"put the model at position {next(k for k, m in enumerate(mods) if m is root)}. (seed {seed})"
            )
        if all(m is not root for m in mods):
            raise CheckFailure(
                "Module.modules: modules() left out the model itself: the list starts with self, then the "
                "sub-modules (parameters(), train() and eval() rely on it to reach the model's own "
                f"attributes). (seed {seed})"
            )
        lost = [path for mid, path in modules.items() if mid not in set(mids)]
        if lost:
            raise CheckFailure(
                f"Module.modules: modules() missed {len(lost)} of {len(modules) - 1} sub-modules, e.g. "
                f"{_describe(lost)}: {_where(lost)}. "
                f"(seed {seed})"
            )
        if len(mids) != len(set(mids)):
            raise CheckFailure(
                f"Module.modules: modules() returned the same module more than once ({len(mids)} modules, "
                f"{len(set(mids))} distinct): a module reachable twice (through two attributes, say) must "
                "appear once, or parameters() would visit it twice. Hint: keep a set of id(m) already "
                f"returned. (seed {seed})"
            )
        if mods[0] is not root or set(mids) != set(modules):
            raise CheckFailure(
                "Module.modules: "
                "modules() must return the model itself first, then every sub-module once: expected "
                f"{len(modules)} modules, got {len(mods)} ({len(set(mids))} distinct). (seed {seed})"
            )
        ids = [id(p) for p in found]
        if len(ids) != len(set(ids)):
            raise CheckFailure(
                "Module.parameters: "
                "parameters() returned the same Parameter more than once. A Parameter shared by two modules "
                "(or a module reachable twice) must appear once, or the optimiser would update it twice per "
                f"step. Hint: keep a set of id(p) already returned. (seed {seed})"
            )
        missing = [path for pid, path in params.items() if pid not in set(ids)]
        if missing:
            raise CheckFailure(
                "Module.parameters: "
                f"parameters() missed {len(missing)} of {len(params)} Parameters, e.g. {_describe(missing)}: "
                f"{_where(missing)}. (seed {seed})"
            )
        extra = [p for p in found if id(p) not in params]
        if extra:
            raise CheckFailure(
                "Module.parameters: "
                f"parameters() returned {len(extra)} object(s) that are not Parameters of the model (e.g. a "
                f"{type(extra[0]).__name__}). Collect only isinstance(value, Parameter): plain Tensors, even "
                f"with requires_grad=True, are not learnable parameters. (seed {seed})"
            )
        call_student("Module.eval (through your modules())", root.eval)
        if any(m.training for m in mods):
            raise CheckFailure(
                "Module.modules: "
                "after model.eval() some sub-module still has training=True: train()/eval() use modules(), "
                "which must reach every sub-module."
            )
        call_student("Module.train (through your modules())", root.train)
    return (f"{trees} random module trees, {n_params} Parameters and {n_modules} modules found once each "
            f"(shared ones too), plain Tensors left out (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------------------------------------


def check_linear(Linear: type, Parameter: type, Tensor: type, seed: int | None = None) -> None:
    """Shapes (out, in), PyTorch's init range and spread, reproducibility, forward and gradients."""
    _reproducibly("Linear", "check_linear(Linear, Parameter, Tensor", verify_linear,
                  (Linear, Parameter, Tensor), seed)


def verify_linear(Linear: type, Parameter: type, Tensor: type, *, seed: int | None = None) -> str:
    """The work of check_linear; returns what was compared."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(5, 9)), int(rng.integers(2, 5))
    lin = call_student("Linear", Linear, n_in, n_out, rng=np.random.default_rng(seed))
    for name, shape in (("weight", (n_out, n_in)), ("bias", (n_out,))):
        p = getattr(lin, name, None)
        if not isinstance(p, Parameter):
            raise CheckFailure(
                f"Linear({n_in}, {n_out}).{name} is {type(p).__name__}, not a Parameter. Wrap it as "
                "Parameter(array) so that requires_grad is on and parameters() finds it."
            )
        if p.shape != shape:
            hint = (
                " It looks transposed: PyTorch stores W as (out_features, in_features)."
                if p.shape == shape[::-1]
                else ""
            )
            raise CheckFailure(f"Linear({n_in}, {n_out}).{name} has shape {p.shape}, expected {shape}.{hint}")
    again = call_student("Linear", Linear, n_in, n_out, rng=np.random.default_rng(seed))
    if not (
        np.array_equal(again.weight.data, lin.weight.data) and np.array_equal(again.bias.data, lin.bias.data)
    ):
        raise CheckFailure(
            "Linear: two layers built with generators from the same seed differ: draw every random number "
            "from the `rng` argument (not np.random.* or a new default_rng())."
        )
    with reworded(lambda exc: f"{exc}.\n  Hint: rng=None is allowed: then make a generator of your own with "
                              "np.random.default_rng()."):
        a, b = (call_student(f"Linear({n_in}, {n_out}) without an rng", Linear, n_in, n_out) for _ in "ab")
    if np.array_equal(a.weight.data, b.weight.data):
        raise CheckFailure(
            f"Linear: Linear({n_in}, {n_out}) without an rng gave two identical layers: when rng is None use "
            "np.random.default_rng() (unseeded), so that unseeded layers differ."
        )

    big_in, big_out = 400, 250
    big = call_student("Linear", Linear, big_in, big_out, rng=np.random.default_rng(seed + 1))
    bound = 1 / np.sqrt(big_in)
    for name, arr, tol in (("weight", big.weight.data, 0.05), ("bias", big.bias.data, 0.25)):
        spread = float(np.std(arr))
        if np.min(arr) >= 0 and np.max(arr) > 0:
            raise CheckFailure(
                f"Linear({big_in}, {big_out}).{name}: every value is >= 0 (the smallest is "
                f"{np.min(arr):.4f}): the range is symmetric around zero, from -1/sqrt(in_features) = "
                f"-{bound:.4f} up to {bound:.4f}; the lower bound of rng.uniform is -bound, not 0. "
                f"(seed {seed})"
            )
        if np.max(np.abs(arr)) > bound * (1 + 1e-12) or abs(spread / (bound / np.sqrt(3)) - 1) > tol:
            raise CheckFailure(
                f"Linear({big_in}, {big_out}).{name}: values should be uniform on [-1/sqrt(in_features), "
                f"1/sqrt(in_features)] = [-{bound:.4f}, {bound:.4f}] (standard deviation "
                f"{bound / np.sqrt(3):.4f}); got max |value| {np.max(np.abs(arr)):.4f} and standard "
                f"deviation {spread:.4f}. Hint: the bound uses in_features (the fan-in), and the bias is "
                f"drawn from the same range, not zeros. (seed {seed})"
            )

    x0 = rng.standard_normal((int(rng.integers(3, 7)), n_in))
    transposed = (f".\n  Hint: x has shape (batch, in_features) = {x0.shape} and weight (out_features, "
                  f"in_features) = {lin.weight.shape}: the product needs the weight transposed, as in "
                  "x @ W.T + b.")
    with reworded(lambda exc: f"{exc}{transposed}" if "matmul" in str(exc) else str(exc)):
        out = call_student("Linear.forward", lin, Tensor(x0))
    check_close(
        getattr(out, "data", None),
        x0 @ lin.weight.data.T + lin.bias.data,
        name=f"Linear({n_in}, {n_out}) forward",
        rtol=1e-12,
        atol=1e-12,
        hint="the output is x @ W.T + b, with W of shape (out_features, in_features)",
    )
    R = rng.standard_normal((len(x0), n_out))

    def loss(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
        return float(np.sum(R * (x @ W.T + b)))

    def gradients(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> tuple:
        lin.weight.data, lin.bias.data = np.array(W), np.array(b)
        lin.weight.grad = lin.bias.grad = None
        xt = Tensor(np.array(x), requires_grad=True)
        (lin(xt) * R).sum().backward()
        if lin.weight.grad is None or lin.bias.grad is None:
            raise CheckFailure(
                "Linear: "
                "after backward through it, weight.grad or bias.grad is None: build the output from the "
                "Parameters themselves with Tensor operations (the engine records those), not from their "
                ".data arrays (plain numpy, invisible to backward)."
            )
        return lin.weight.grad, lin.bias.grad, xt.grad

    gradients.__name__ = "gradients through your Linear (weight, bias, input)"
    report = call_student("Linear (backward through it)", check_gradient, loss, gradients,
                          lin.weight.data.copy(), lin.bias.data.copy(), x0, seed=seed, repeat=False)
    return (f"shapes, initial range and spread ({big_out}x{big_in}), reproducible from rng, forward, and "
            f"{report.compared} gradient entries against finite differences, worst relative error "
            f"{report.worst_relative_error:.1e} (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# SGD and Adam: closed forms over the gradient history
# ---------------------------------------------------------------------------------------------------------


def _run_optimizer(
    make: Callable[[list], object],
    Parameter: type,
    starts: list[np.ndarray],
    grads: list[list[np.ndarray | None]],
    *,
    diagnose: bool = True,
) -> list[list[np.ndarray]]:
    """Step a student's optimiser over the gradient history; returns parameter values after each step.

    A step that leaves NaN or inf is named here (with ``diagnose``, by rerunning the history with every
    gradient made positive: a negative number under a square root then disappears)."""
    params = [Parameter(s.copy()) for s in starts]
    opt = call_student("the optimiser's __init__", make, params)
    name = f"{type(opt).__name__}.step"
    history = []
    handed: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (step, parameter, array given, its copy)
    for t, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads, strict=True)):
            p.grad = None if g is None else g.copy()
            if g is not None:
                handed.append((t, i, p.grad, g.copy()))
        def reword(exc: CheckFailure, t: int = t) -> str:
            cause = ""
            if "NoneType" in str(exc) and diagnose:
                cause = _none_cause(make, Parameter, starts, grads[: t + 1])
            elif "broadcast" in str(exc):
                cause = (" The parameters have different shapes: keep each one's state in its own slot "
                         "(self.velocity[i], self.m[i], self.v[i]), shaped like that parameter.")
            return f"{exc} (in step() number {t + 1}).{cause}"

        with reworded(reword):
            call_student(name, opt.step)
        values = []
        for i, p in enumerate(params):
            try:
                values.append(np.array(p.data, dtype=float, copy=True))
            except (TypeError, ValueError):
                raise CheckFailure(
                    f"{name}: after step() number {t + 1}, parameter {i}'s .data is a "
                    f"{type(p.data).__name__}, not a numpy array: compute the new value from the arrays "
                    "p.data and p.grad, not from the Parameter itself."
                ) from None
            if values[-1].shape != starts[i].shape:
                raise CheckFailure(
                    f"{name}: after step() number {t + 1} parameter {i} has shape {values[-1].shape}, but it "
                    f"started with shape {starts[i].shape}; a step never changes a parameter's shape. Keep "
                    "each parameter's state in its own slot (self.velocity[i], self.m[i], self.v[i]), shaped "
                    "like that parameter, and update p.data from p's own gradient."
                )
            if not np.all(np.isfinite(values[-1])):
                raise CheckFailure(_nonfinite(name, t, i, make, Parameter, starts, grads, diagnose))
        for k, i, array, copy in handed:
            if array.shape != copy.shape or not np.array_equal(array, copy):
                raise CheckFailure(
                    f"{name}: step() number {t + 1} changed the gradient array that parameter {i} had as its "
                    f".grad at step {k + 1}. Your state shares that array: after `state = p.grad` they are "
                    "one array, so an in-place update of the state (*=, +=) rewrites the gradient (and a "
                    "gradient used twice then counts wrongly). Store a copy, np.array(p.grad, copy=True), "
                    "or update the state with `state = ... + ...`, which makes a new array."
                )
        history.append(values)
    return history


def _none_cause(make: Callable[[list], object], Parameter: type, starts: list[np.ndarray],
                grads: list[list[np.ndarray | None]]) -> str:
    """Why a step met None: rerun the same steps with zeros for every missing .grad. If it still fails,
    the None is the optimiser's own state (a velocity still None at a parameter's first step)."""
    filled = [[np.zeros_like(s) if g is None else g for s, g in zip(starts, gs, strict=True)] for gs in grads]
    try:
        _run_optimizer(make, Parameter, starts, filled, diagnose=False)
    except CheckFailure as exc:
        if "NoneType" in str(exc):
            return (" No .grad was None here, so the None is your optimiser's state: "
                    "self.velocity[i] is None until the parameter's first step. At that step set it to a "
                    "copy of the gradient (b = g), and use momentum * b + g only after it.")
        return ""
    if any(g is None for gs in grads for g in gs):
        return (" One of the parameters has .grad None (it took no part in the loss): skip it, leaving its "
                "state and value as they are, as PyTorch does.")
    return ""


def _nonfinite(name: str, t: int, i: int, make: Callable[[list], object], Parameter: type,
               starts: list[np.ndarray], grads: list[list[np.ndarray | None]], diagnose: bool) -> str:
    """Why a step left NaN or inf: a .grad of None made into numbers, or a negative number under a square
    root, which shows by vanishing for |g|."""
    head = f"{name}: after step() number {t + 1} parameter {i} holds NaN or inf."
    if grads[t][i] is None:  # an earlier None would have made NaN at its own step, not this one
        return (f"{head} It had .grad None at step {t + 1}, and None made into numbers is NaN "
                "(np.asarray(None, dtype=float) is nan), which then spreads. A .grad of None means the "
                "parameter took no part in the loss: skip it (continue), leaving its value and state as they "
                "are, as PyTorch does.")
    if diagnose and any(g is not None and np.any(g < 0) for gs in grads for g in gs):
        positive = [[None if g is None else np.abs(g) for g in gs] for gs in grads]
        try:
            _run_optimizer(make, Parameter, starts, positive, diagnose=False)
        except CheckFailure:
            pass
        else:
            return (f"{head} With the same gradients made positive it stays finite, so a negative number "
                    "reached a square root: the second moment v must average the SQUARED gradient, "
                    "(1 - beta2) * g**2, which is never negative.")
    return (f"{head} Look for a division by zero; in Adam, e.g. by 1 - beta**t while t is still 0 (increment "
            "self.t before using it), or for eps left out of the denominator.")


def _compare_steps(
    got: list[list[np.ndarray]],
    expected: list[list[np.ndarray]],
    what: str,
    alternatives: dict[str, list[list[np.ndarray]]],
    seed: int,
    *,
    starts: list[np.ndarray],
    rule: str,
) -> None:
    """Compare step by step. The hint names a recognised slip (an alternative that the WHOLE run matches,
    so one coinciding step cannot mislead), else an unchanged parameter, else `rule`."""
    slip = next((h for h, alt in alternatives.items() if _same_run(got, alt)), None)
    for t, (g_step, e_step) in enumerate(zip(got, expected, strict=True)):
        for i, (g, e) in enumerate(zip(g_step, e_step, strict=True)):
            if g.shape == e.shape and np.all(np.abs(g - e) <= 1e-9 * np.maximum(1.0, np.abs(e))):
                continue
            before = got[t - 1][i] if t else starts[i]
            unchanged = (
                "The parameter did not change in this step: write the new value into p.data (assigning to "
                "a loop variable such as `p = p - ...` changes nothing), and include this step's gradient."
            )
            hint = slip or (unchanged if g.shape == before.shape and np.array_equal(g, before) else rule)
            with reworded(lambda exc: f"{exc} (seed {seed})", into=CheckFailure):
                check_close(
                    g, e, name=f"{what}: parameter {i} after step {t + 1}", rtol=1e-9, atol=1e-12, hint=hint
                )


def _same_run(got: list[list[np.ndarray]], alt: list[list[np.ndarray]]) -> bool:
    return all(
        g.shape == a.shape and np.allclose(g, a, rtol=1e-9, atol=1e-12)
        for g_step, a_step in zip(got, alt, strict=True)
        for g, a in zip(g_step, a_step, strict=True)
    )


def _one_step_late(starts: list[np.ndarray], expected: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """The run of an update that steps with the velocity of the step before: every value one step late."""
    return [list(starts)] + expected[:-1]


SGD_RULE = (
    "PyTorch's rule, for each parameter whose .grad is not None: b = g at its first step, then "
    "b = momentum * b + g; then p <- p - lr * b (the velocity is updated BEFORE it is used)."
)


def check_sgd_step(SGD: type, Parameter: type, seed: int | None = None) -> None:
    """SGD(params, lr, momentum).step(): PyTorch's update, judged by what it must do to a gradient history.

    When grading, the parameters are compared with the closed form over random histories; everywhere, the
    update is checked by properties of the rule (no answer is written out here, this module is shipped)."""
    _reproducibly("SGD.step", "check_sgd_step(SGD, Parameter", verify_sgd_step, (SGD, Parameter), seed)


def verify_sgd_step(SGD: type, Parameter: type, *, seed: int | None = None) -> str:
    """The work of check_sgd_step; returns what was compared."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    _sgd_properties(SGD, Parameter, rng, seed)
    return (f"plain steps, one gradient's decaying push, a gradient arriving at a later step, linearity in "
            f"the gradients, parameters without .grad left alone, the gradient arrays left unchanged, "
            f"over 3-6 steps (seed {seed})")


_SGD_EMA = (
    "This is b = momentum * b + (1 - momentum) * g, an exponential average (the slip the lesson warns "
    "about); PyTorch's SGD uses b = momentum * b + g (b = g at the first step)."
)
_SGD_EMA_AFTER_FIRST = (
    "After b = g at the first step this is b = momentum * b + (1 - momentum) * g, an exponential average "
    "(the slip the lesson warns about): later gradients count (1 - momentum) times too little. PyTorch's "
    "SGD uses b = momentum * b + g."
)
_SGD_PLAIN = (
    "This is plain SGD: the momentum buffer is ignored or not kept between steps. Store the velocity in "
    "self.velocity[i] and step along it."
)
_SGD_LATE = (
    "Your step uses the velocity of the previous step: every value comes one step late (at the first "
    "step the parameter does not move). Update the velocity with this step's gradient first, then step "
    "along the NEW velocity."
)


def _left_alone_without_grad(make: Callable[[list], object], Parameter: type, rng: np.random.Generator,
                             label: str, state: str, seed: int) -> None:
    """A parameter with a gradient at step 1 and .grad None after it stays where step 1 left it."""
    starts = [rng.standard_normal(3), rng.standard_normal(2)]
    grads = [[rng.standard_normal(3), rng.standard_normal(2)]]
    grads += [[rng.standard_normal(3), None] for _ in range(2)]
    got = _run_optimizer(make, Parameter, starts, grads)
    for t in (1, 2):
        if not np.array_equal(got[t][1], got[0][1]):
            raise CheckFailure(
                f"{label}: parameter 1 had a gradient at step 1 and .grad None at steps 2 and 3, so it must "
                f"stay where step 1 left it; at step {t + 1} it moved by up to "
                f"{float(np.max(np.abs(got[t][1] - got[t - 1][1]))):.3g}. A .grad of None means the "
                f"parameter took no part in the loss: skip it (continue), rather than treating it as "
                f"zeros, with "
                f"which its {state} would keep moving it. (seed {seed})"
            )


def _sgd_properties(SGD: type, Parameter: type, rng: np.random.Generator, seed: int) -> None:
    """The rule's consequences: a plain step is -lr * g; with momentum one gradient keeps acting, decaying
    by `momentum` per step, the same whichever step it arrives at; the update is linear in the gradient
    history; a missing .grad is skipped. Impulse responses, time invariance and linearity together fix
    the moves for any history, so every slip shows without the rule written out here."""
    shapes = [(3, 4), (4,), ()]
    lr = float(rng.uniform(0.01, 0.3))
    starts = [rng.standard_normal(s) for s in shapes] + [rng.standard_normal(2)]
    steps = 4
    history = [[rng.standard_normal(s) for s in shapes] + [None] for _ in range(steps)]
    got = _run_optimizer(lambda ps: SGD(ps, lr=lr, momentum=0.0), Parameter, starts, history)
    before = [starts] + got[:-1]
    expected = [
        [p - lr * g if g is not None else p for p, g in zip(b, gs, strict=True)]
        for b, gs in zip(before, history, strict=True)
    ]
    from_start, now = [], list(starts)
    for gs in history:
        now = [p - lr * g if g is not None else p for p, g in zip(now, gs, strict=True)]
        from_start.append(now)
    late = {_SGD_LATE: _one_step_late(starts, from_start)}
    _compare_steps(got, expected, f"SGD(lr={lr:.3g}, momentum=0)", late, seed, starts=starts, rule=SGD_RULE)

    mu = float(rng.uniform(0.5, 0.95))
    make = lambda ps: SGD(ps, lr=lr, momentum=mu)  # noqa: E731
    # one gradient g at step `at`, zeros at every other step: from then on it moves p by lr * g, then by
    # lr * mu**k * g; arriving at step 1 or later makes no difference (a zero gradient is a real gradient)
    kick = [rng.standard_normal(s) for s in shapes]
    steps = 6
    decay = [(1 - mu ** (t + 1)) / (1 - mu) for t in range(steps)]
    for at in (0, int(rng.integers(1, 3))):
        impulse = [[np.zeros(s) for s in shapes] + [None] for _ in range(steps)]
        impulse[at] = kick + [None]
        got = _run_optimizer(make, Parameter, starts, impulse)

        def pushed(factor: float, at: int = at) -> list:
            """Parameters after each step when the kick has moved them by lr * factor * decay so far."""
            return [list(starts)] * at + [
                [p - lr * factor * d * g for p, g in zip(starts, kick, strict=False)] + [starts[-1]]
                for d in decay[: steps - at]
            ]

        expected = pushed(1.0)
        plain = [list(starts)] * at + [
            [p - lr * g for p, g in zip(starts, kick, strict=False)] + [starts[-1]] for _ in range(steps - at)
        ]
        alts = {_SGD_EMA if at == 0 else _SGD_EMA_AFTER_FIRST: pushed(1 - mu), _SGD_PLAIN: plain,
                _SGD_LATE: _one_step_late(starts, expected)}
        when = "step 1 and zero gradients after it" if at == 0 else (
            f"step {at + 1} and zero gradients before and after it")
        _compare_steps(
            got,
            expected,
            f"SGD(lr={lr:.3g}, momentum={mu:.3g}), a gradient g at {when} (from its step on, p must move by "
            f"lr * g, then by lr * momentum**k * g)",
            alts,
            seed,
            starts=starts,
            rule=SGD_RULE,
        )
    _left_alone_without_grad(make, Parameter, rng, f"SGD(lr={lr:.3g}, momentum={mu:.3g})", "velocity", seed)
    # linear in the history: the moves for G + c * H are the moves for G plus c times those for H
    steps = 5
    grads_g = [[rng.standard_normal(s) for s in shapes] + [None] for _ in range(steps)]
    grads_h = [[rng.standard_normal(s) for s in shapes] + [None] for _ in range(steps)]
    c = float(rng.uniform(0.5, 2.0))
    both = [
        [np.asarray(a + c * b) for a, b in zip(ga[:-1], gb[:-1], strict=True)] + [None]
        for ga, gb in zip(grads_g, grads_h, strict=True)
    ]
    zero = [np.zeros_like(x) for x in starts]
    run_g, run_h = (_run_optimizer(make, Parameter, zero, gs) for gs in (grads_g, grads_h))
    got = _run_optimizer(make, Parameter, zero, both)
    expected = [[a + c * b for a, b in zip(sa, sb, strict=True)] for sa, sb in zip(run_g, run_h, strict=True)]
    _compare_steps(
        got,
        expected,
        f"SGD(lr={lr:.3g}, momentum={mu:.3g}): the moves for gradients G + {c:.3g} * H compared with the "
        f"moves for G plus {c:.3g} times the moves for H (the rule is linear in the gradients)",
        {},
        seed,
        starts=zero,
        rule=SGD_RULE,
    )


ADAM_RULE = (
    "Compare each term with: each parameter counts its own steps (self.t[i] += 1 in every step() in which "
    "it has a gradient, then t = self.t[i]); m = beta1 * m + (1 - beta1) * g; "
    "v = beta2 * v + (1 - beta2) * g**2; m_hat = m / (1 - beta1**t); v_hat = v / (1 - beta2**t); "
    "p <- p - lr * m_hat / (sqrt(v_hat) + eps), with eps OUTSIDE the square root."
)


def check_adam_step(Adam: type, Parameter: type, seed: int | None = None) -> None:
    """Adam.step(): the first step moves each entry by ~lr * sign(g), a constant gradient keeps doing so,
    eps sits outside the square root, betas are used and the update ignores the gradients' scale.

    When grading, the parameters are also compared with the closed form over random histories (not in this
    shipped module: it would be the answer)."""
    _reproducibly("Adam.step", "check_adam_step(Adam, Parameter", verify_adam_step, (Adam, Parameter), seed)


def verify_adam_step(Adam: type, Parameter: type, *, seed: int | None = None) -> str:
    """The work of check_adam_step; returns what was compared."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    _adam_properties(Adam, Parameter, rng, seed)
    return (f"the first step (about lr per entry), a parameter's first step arriving late, parameters "
            f"without .grad left alone, betas (0, beta2) with changing gradients, a constant gradient with "
            f"two (betas, eps), betas (0, 0) and scale invariance, over 3-6 steps (seed {seed})")


_ADAM_NO_CORRECTION = (
    "The bias correction is missing: m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)."
)
_ADAM_FROZEN_T = (
    "The bias correction always uses t = 1: increment the parameter's step count self.t[i] at each of its "
    "steps, before using it."
)
_ADAM_DEFAULTS = "Use self.betas and self.eps, not the default values."
_ADAM_T_PER_PARAMETER = (
    "One step count shared by the parameters grows once per parameter visited, so at the first step the "
    "second parameter was corrected with t = 2. Each parameter keeps its own count, self.t[i], incremented "
    "once per step() in which that parameter has a gradient."
)
_ADAM_SIGN = (
    "Your step moved each entry WITH its gradient, by the right amount but in the wrong direction: the "
    "update must go against the gradient (subtract it from p.data), as in any descent step."
)
_ADAM_EPS_INSIDE = (
    "The difference is small but systematic, not rounding: it is where eps sits. Your step divides by "
    "sqrt(v_hat + eps); Adam adds eps AFTER the square root, sqrt(v_hat) + eps."
)
_ADAM_GLOBAL_T = (
    "This is the bias correction with one step count for the whole optimiser (t = the number of step() "
    "calls). PyTorch counts steps per parameter, only those in which the parameter had a gradient: keep "
    "self.t[i] and increment it only when p.grad is not None."
)


def _adam_first_step(
    Adam: type, Parameter: type, rng: np.random.Generator, seed: int, shapes: list, lr: float
) -> None:
    """At t = 1, m_hat = g and v_hat = g**2, so each entry moves by lr * g / (|g| + eps) ~ lr * sign(g)."""
    starts = [rng.standard_normal(s) for s in shapes] + [rng.standard_normal(2)]
    kick = [rng.choice([-1.0, 1.0], s) * rng.uniform(0.1, 3.0, s) for s in shapes]
    got = _run_optimizer(lambda ps: Adam(ps, lr=lr), Parameter, starts, [kick + [None]])
    moves = [got[0][i] - starts[i] for i in range(len(shapes))]
    ratio = float(np.median(np.abs(np.concatenate([f.ravel() for f in moves])))) / lr
    if abs(ratio - 1) > 1e-3:
        raise CheckFailure(
            f"Adam's first step should move every entry by about lr = {lr:.3g} (since m_hat = g and v_hat = "
            f"g^2 at t = 1, up to eps); your step moved a typical entry by {ratio:.4g} x lr, not 1 x lr "
            "to within 0.1 %. "
            + (
                "A factor of about 3.16 = 0.1 / sqrt(0.001) means the bias correction is missing: divide m "
                "by (1 - beta1**t) and v by (1 - beta2**t)."
                if abs(ratio - 0.1 / np.sqrt(0.001)) < 0.05
                else ADAM_RULE
            )
            + f" (seed {seed})"
        )
    expected = [[p - lr * g / (np.abs(g) + 1e-8) for p, g in zip(starts, kick, strict=False)] + [starts[-1]]]
    b1, b2 = 0.9, 0.999
    per_parameter_t = [  # the k-th parameter with a gradient corrected with t = k + 1
        p - lr * (1 - b1) / (1 - b1**t) * g / (np.sqrt((1 - b2) / (1 - b2**t)) * np.abs(g) + 1e-8)
        for t, (p, g) in enumerate(zip(starts, kick, strict=False), start=1)
    ] + [starts[-1]]
    mirrored = [[2 * p - e for p, e in zip(starts, expected[0], strict=True)]]
    inside = [[p - lr * g / np.sqrt(g**2 + 1e-8) for p, g in zip(starts, kick, strict=False)] + [starts[-1]]]
    alts = {_ADAM_T_PER_PARAMETER: [per_parameter_t], _ADAM_SIGN: mirrored, _ADAM_EPS_INSIDE: inside}
    _compare_steps(got, expected, f"Adam(lr={lr:.3g}), first step", alts, seed, starts=starts, rule=ADAM_RULE)


def _adam_late_first_gradient(Adam: type, Parameter: type, rng: np.random.Generator, seed: int,
                              lr: float) -> None:
    """A parameter whose first gradient arrives at step 3 makes its own first step then: about lr * sign(g)
    per entry (PyTorch counts each parameter's steps; one global count gives 0.64 lr at step 3)."""
    starts = [rng.standard_normal(4), rng.standard_normal(3)]
    late = rng.choice([-1.0, 1.0], 3) * rng.uniform(0.1, 3.0, 3)
    grads = [[rng.standard_normal(4), None], [rng.standard_normal(4), None], [rng.standard_normal(4), late]]
    got = _run_optimizer(lambda ps: Adam(ps, lr=lr), Parameter, starts, grads)
    move = got[2][1] - starts[1]
    ratio = float(np.median(np.abs(move))) / lr
    if abs(ratio - 1) > 1e-3 or np.any(np.sign(move) != -np.sign(late)):
        b1, b2 = 0.9, 0.999
        global_t = (1 - b1) / (1 - b1**3) / np.sqrt((1 - b2) / (1 - b2**3))
        hint = _ADAM_GLOBAL_T if abs(ratio - global_t) < 1e-3 else ADAM_RULE
        raise CheckFailure(
            f"Adam(lr={lr:.3g}): parameter 1 had .grad None at steps 1 and 2 and its first gradient at "
            f"step 3, so step 3 was ITS first step and must move each entry by about lr against the "
            f"gradient's "
            f"sign (m_hat = g, v_hat = g**2 at a parameter's first step); yours moved a typical entry by "
            f"{ratio:.4g} x lr. {hint} (seed {seed})"
        )


def _adam_betas_in_their_places(Adam: type, Parameter: type, rng: np.random.Generator, seed: int,
                                shapes: list, lr: float) -> None:
    """With betas = (0, beta2), m_hat is this step's gradient: every entry moves against its current sign,
    whatever the earlier gradients were. Swapped betas average the gradient itself and break this."""
    beta2 = float(rng.uniform(0.8, 0.95))
    starts = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) * rng.uniform(0.5, 2.0) for s in shapes] for _ in range(6)]
    got = _run_optimizer(lambda ps: Adam(ps, lr=lr, betas=(0.0, beta2)), Parameter, starts, grads)
    before = [starts] + got[:-1]
    for t in range(len(grads)):
        for i, g in enumerate(grads[t]):
            wrong = np.sign(got[t][i] - before[t][i]) != -np.sign(g)
            if np.any(wrong):
                raise CheckFailure(
                    f"Adam(lr={lr:.3g}, betas=(0, {beta2:.3g})): with beta1 = 0, m is this step's gradient, "
                    f"so every entry must move against the sign of its current gradient; at step {t + 1}, "
                    f"{int(wrong.sum())} entries of parameter {i} moved the other way. Check that beta1 = "
                    "self.betas[0] averages the gradient (m) and beta2 = self.betas[1] its square (v): "
                    f"unpack self.betas in that order, beta1 first. (seed {seed})"
                )


def _adam_properties(Adam: type, Parameter: type, rng: np.random.Generator, seed: int) -> None:
    shapes = [(3, 4), (5,)]
    lr = float(rng.uniform(0.005, 0.05))
    _adam_first_step(Adam, Parameter, rng, seed, shapes, lr)
    _left_alone_without_grad(lambda ps: Adam(ps, lr=lr), Parameter, rng, f"Adam(lr={lr:.3g})", "m", seed)
    _adam_late_first_gradient(Adam, Parameter, rng, seed, lr)
    _adam_betas_in_their_places(Adam, Parameter, rng, seed, shapes, lr)

    # a constant gradient: the bias-corrected averages equal g and g**2 at every step, so every step moves
    # each entry by lr * g / (|g| + eps); eps comparable to |g| tells where eps sits
    steps = 5
    for betas, eps in (
        ((0.9, 0.999), 1e-8),
        ((float(rng.uniform(0.5, 0.8)), float(rng.uniform(0.9, 0.99))), 0.05),
    ):
        starts = [rng.standard_normal(s) for s in shapes] + [rng.standard_normal(2)]
        g = [rng.choice([-1.0, 1.0], s) * rng.uniform(0.02, 0.2 if eps > 1e-3 else 3.0, s) for s in shapes]
        got = _run_optimizer(
            lambda ps, b=betas, e=eps: Adam(ps, lr=lr, betas=b, eps=e),
            Parameter,
            starts,
            [g + [None] for _ in range(steps)],
        )

        def moved(
            factor: Callable[[int, np.ndarray], np.ndarray], starts: list = starts, g: list = g
        ) -> list:
            """Parameters after each step when step t moves each entry by lr * factor(t, g)."""
            out, now = [], list(starts)
            for t in range(1, steps + 1):
                now = [p - lr * factor(t, gi) for p, gi in zip(now, g, strict=False)] + [starts[-1]]
                out.append(now)
            return out

        b1, b2 = betas
        expected = moved(lambda t, gi, e=eps: gi / (np.abs(gi) + e))
        frozen = moved(
            lambda t, gi, e=eps, b1=b1, b2=b2: (
                (1 - b1**t) / (1 - b1) * gi / (np.sqrt((1 - b2**t) / (1 - b2)) * np.abs(gi) + e)
            )
        )
        alts = {_ADAM_FROZEN_T: frozen, _ADAM_EPS_INSIDE: moved(lambda t, gi, e=eps: gi / np.sqrt(gi**2 + e))}
        if eps != 1e-8:
            alts[_ADAM_DEFAULTS] = moved(lambda t, gi: gi / (np.abs(gi) + 1e-8))
        _compare_steps(
            got,
            expected,
            f"Adam(lr={lr:.3g}, betas=({b1:.3g}, {b2:.3g}), eps={eps:g}) with the same gradient g at every "
            "step (each step must move p by lr * g / (|g| + eps), as m_hat = g and v_hat = g**2)",
            alts,
            seed,
            starts=starts,
            rule=ADAM_RULE,
        )

    # betas (0, 0): m = g and v = g**2 at every step, whatever came before
    starts = [rng.standard_normal(s) for s in shapes] + [rng.standard_normal(2)]
    history = [
        [rng.standard_normal(s) * rng.uniform(0.5, 2.0) for s in shapes] + [None] for _ in range(steps)
    ]
    got = _run_optimizer(lambda ps: Adam(ps, lr=lr, betas=(0.0, 0.0)), Parameter, starts, history)
    expected, now = [], list(starts)
    for gs in history:
        now = [p - lr * gi / (np.abs(gi) + 1e-8) for p, gi in zip(now, gs[:-1], strict=False)] + [starts[-1]]
        expected.append(now)
    _compare_steps(
        got,
        expected,
        f"Adam(lr={lr:.3g}, betas=(0, 0)), where m_hat = g and v_hat = g**2 at every step",
        {},
        seed,
        starts=starts,
        rule=_ADAM_DEFAULTS + " " + ADAM_RULE,
    )

    # the update does not depend on the gradients' scale (with a negligible eps): G and c * G move p alike
    c = float(np.exp(rng.uniform(-4.0, 4.0)))
    make = lambda ps: Adam(ps, lr=lr, eps=1e-30)  # noqa: E731
    history = [
        [rng.standard_normal(s) * rng.uniform(0.5, 2.0) for s in shapes] + [None] for _ in range(steps)
    ]
    plain = _run_optimizer(make, Parameter, starts, history)
    scaled = _run_optimizer(make, Parameter, starts, [[c * g for g in gs[:-1]] + [None] for gs in history])
    _compare_steps(
        scaled,
        plain,
        f"Adam(lr={lr:.3g}, eps=1e-30) on gradients scaled by {c:.3g} compared with the same run unscaled "
        "(the steps must not change: m_hat / sqrt(v_hat) does not depend on the scale)",
        {},
        seed,
        starts=starts,
        rule=ADAM_RULE,
    )


# ---------------------------------------------------------------------------------------------------------
# train_epoch and evaluate, with recording stand-ins
# ---------------------------------------------------------------------------------------------------------


class RecordingLinearModel:
    """y = x @ W + b that logs every batch it sees, the training flag and the grad mode at that moment."""

    def __init__(
        self,
        Tensor: type,
        Parameter: type,
        rng: np.random.Generator,
        d_in: int,
        d_out: int,
        grad_mode: type | None = None,
    ) -> None:
        self.Tensor = Tensor
        self.W = Parameter(rng.standard_normal((d_in, d_out)) * 0.3)
        self.b = Parameter(rng.standard_normal(d_out) * 0.1)
        self.training = True
        self.grad_mode = grad_mode
        self.seen: list[np.ndarray] = []
        self.flags: list[tuple[bool, bool | None]] = []

    def parameters(self) -> list:
        return [self.W, self.b]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> RecordingLinearModel:
        self.training = mode
        return self

    def eval(self) -> RecordingLinearModel:
        return self.train(False)

    def __call__(self, x: object) -> object:
        x = x if isinstance(x, self.Tensor) else self.Tensor(np.asarray(x, dtype=float))
        self.seen.append(np.array(x.data, copy=True))
        self.flags.append((self.training, None if self.grad_mode is None else bool(self.grad_mode.enabled)))
        return x @ self.W + self.b


class RecordingMSE:
    """Mean squared error that logs the targets and loss value of each call, and which batch graphs live on.

    Each loss it returns is watched through a weak reference to its graph (``grad_fn``). When batch k's loss
    is made, the graphs of batches before k - 1 must be gone (the student's ``loss`` variable may still
    hold batch k - 1's); one that lives on was kept by something built from the loss Tensor, such as a
    running total ``total = total + loss * n``. The check measures this instead of trusting the code."""

    def __init__(self, Tensor: type) -> None:
        self.Tensor = Tensor
        self.targets: list[np.ndarray] = []
        self.values: list[float] = []
        self.graphs: list[weakref.ref | None] = []
        self.kept: tuple[int, int] | None = None  # (batch whose graph lived on, batch that saw it), 0-based

    def __call__(self, prediction: object, target: object) -> object:
        self._note_kept_graphs()
        target = np.array(target, dtype=float, copy=True)
        self.targets.append(target)
        loss = ((prediction - self.Tensor(target)) ** 2).mean()
        self.values.append(float(loss.data))
        try:
            self.graphs.append(weakref.ref(loss.grad_fn))
        except TypeError:  # no graph recorded (grad mode off): nothing can be kept alive
            self.graphs.append(None)
        return loss

    def _note_kept_graphs(self) -> None:
        if self.kept is not None:
            return
        alive = [k for k, ref in enumerate(self.graphs[:-1]) if ref is not None and ref() is not None]
        if alive:
            gc.collect()  # only a reference, not a cycle waiting for the collector, may count against it
            alive = [k for k in alive if self.graphs[k]() is not None]
        if alive:
            self.kept = (alive[0], len(self.graphs))


class RecordingOptimizer:
    """Logs the gradients and parameters it sees at every step(), then nudges the parameters at random.

    The nudge is not a gradient step (this module is shipped: an optimiser here would be an answer); it
    only makes every minibatch meet new parameter values, so a gradient computed at stale values shows."""

    def __init__(self, params: list, rng: np.random.Generator) -> None:
        self.params = list(params)
        self.rng = rng
        self.steps: list[tuple[list[np.ndarray | None], list[np.ndarray]]] = []

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        grads = [None if p.grad is None else np.array(p.grad, dtype=float, copy=True) for p in self.params]
        self.steps.append((grads, [np.array(p.data, copy=True) for p in self.params]))
        for p in self.params:
            p.data = p.data + 0.05 * self.rng.standard_normal(np.shape(p.data))


def _mse_gradients(
    W: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r = 2 * (x @ W + b - y) / y.size
    return x.T @ r, r.sum(axis=0)


def _keys(seen: list[np.ndarray]) -> np.ndarray:
    """The examples' keys (column 0 of X) in the order the model saw them (`seen`: its batches)."""
    return np.concatenate([s[:, 0] for s in seen]) if seen else np.zeros(0)


def _keyed_data(rng: np.random.Generator, n: int, d_in: int = 3, d_out: int = 2
                ) -> tuple[np.ndarray, np.ndarray]:
    """Random (X, y) whose column X[:, 0] is a unique key per example, so each row seen can be traced back."""
    X = rng.standard_normal((n, d_in))
    X[:, 0] = (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n
    return X, rng.standard_normal((n, d_out))


def _epoch(
    train_epoch: Callable[..., object],
    Tensor: type,
    Parameter: type,
    rng: np.random.Generator,
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    order_rng: np.random.Generator,
) -> tuple[object, RecordingLinearModel, RecordingMSE, RecordingOptimizer]:
    """One epoch of the student's train_epoch on fresh recording stand-ins, with read-only X and y."""
    model = RecordingLinearModel(Tensor, Parameter, rng, X.shape[1], y.shape[1])
    model.eval()  # train_epoch must switch to training mode itself
    loss_fn = RecordingMSE(Tensor)
    opt = RecordingOptimizer(model.parameters(), rng)
    in_place = ("train_epoch tried to change X or y in place (with rng.shuffle(X), say): the caller's data "
                "must stay as it is, and shuffling X alone would part the inputs from their labels. Shuffle "
                "an array of indices instead and take the inputs and the labels with it.")
    with reworded(lambda exc: in_place if "in place" in str(exc) else str(exc)):
        result = call_student(
            "train_epoch", train_epoch, model, loss_fn, opt, readonly(X), readonly(y), batch_size, order_rng
        )
    return result, model, loss_fn, opt


def _check_pairs(seen: list[np.ndarray], targets: list[np.ndarray], X: np.ndarray, y: np.ndarray,
                 seed: int) -> None:
    """Every target row handed to the loss is the label of the input row in the same place of the batch."""
    row_of = {key: i for i, key in enumerate(X[:, 0])}
    start = 0
    for k, (xb, yb) in enumerate(zip(seen, targets, strict=True)):
        rows = np.array([row_of[key] for key in xb[:, 0]])
        if yb.shape != (len(rows), y.shape[1]):
            raise CheckFailure(
                f"train_epoch: minibatch {k + 1} has {len(rows)} inputs but the loss got targets of shape "
                f"{yb.shape}: pass the labels of that minibatch's examples. (seed {seed})"
            )
        if not np.array_equal(yb, y[rows]):
            j = int(np.flatnonzero(np.any(yb != y[rows], axis=1))[0])
            matches = np.flatnonzero(np.all(y == yb[j], axis=1))
            whose = f"the label of example {int(matches[0])}" if len(matches) else "no example's label"
            stored = (
                " The labels came in their stored order (like y[start:start + batch_size]) while the inputs "
                "were shuffled."
                if np.array_equal(yb, y[start:start + len(yb)])
                else ""
            )
            raise CheckFailure(
                f"train_epoch paired inputs with the wrong labels: in minibatch {k + 1}, row {j} holds the "
                f"input of example {int(rows[j])} but {whose}.{stored} Take the inputs and the labels with "
                f"the same shuffled indices, so every example keeps its own label. (seed {seed})"
            )
        start += len(yb)


def run_train_epoch(
    train_epoch: Callable[..., object],
    Tensor: type,
    Parameter: type,
    rng: np.random.Generator,
    n: int,
    batch_size: int,
    seed: int,
) -> None:
    """Run one epoch of the student's train_epoch on recording stand-ins and verify what it did."""
    X, y = _keyed_data(rng, n)
    seen = observe_epoch(train_epoch, Tensor, Parameter, int(rng.integers(2**62)), X, y, batch_size, seed)
    judge_epoch(seen, X, y, batch_size, seed)


def observe_epoch(train_epoch: Callable[..., object], Tensor: type, Parameter: type, model_seed: int,
                  X: np.ndarray, y: np.ndarray, batch_size: int, order_seed: int) -> dict:
    """One epoch of the student's train_epoch on recording stand-ins (model drawn from `model_seed`, the
    order's generator made from `order_seed`): what they saw, as data."""
    X, y = np.array(X, dtype=float), np.array(y, dtype=float)
    result, model, loss_fn, opt = _epoch(train_epoch, Tensor, Parameter, np.random.default_rng(model_seed),
                                         X, y, batch_size, np.random.default_rng(order_seed))
    try:
        value = float(np.asarray(result, dtype=float))
    except (TypeError, ValueError):
        value = None
    return {"seen": model.seen, "training": [training for training, _ in model.flags],
            "targets": loss_fn.targets, "kept": None if loss_fn.kept is None else list(loss_fn.kept),
            "grads": [grads for grads, _ in opt.steps], "params": [values for _, values in opt.steps],
            "result": value, "result_repr": repr(result)[:200], "result_type": type(result).__name__,
            "result_is_tensor": isinstance(result, Tensor)}


def judge_epoch(seen: dict, X: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
    """Verify an epoch's observations (`observe_epoch`) against the data it was given, wherever they came
    from: the loss values are computed here again from the parameters and batches seen."""
    n = len(X)
    batches, targets = seen["seen"], seen["targets"]
    steps = list(zip(seen["grads"], seen["params"], strict=True))
    n_batches = -(-n // batch_size)
    if len(steps) != n_batches or len(batches) != n_batches:
        raise CheckFailure(
            "train_epoch: "
            f"with {n} examples and batch_size {batch_size} an epoch has {n_batches} minibatches (the last "
            f"one smaller), so {n_batches} forward passes and optimizer steps; got {len(batches)} forward "
            f"passes and {len(steps)} steps. Hint: range(0, len(X), batch_size) keeps the last partial "
            f"batch. (seed {seed})"
        )
    keys = _keys(batches)
    if len(keys) != n or not np.array_equal(np.sort(keys), np.sort(X[:, 0])):
        raise CheckFailure(
            "train_epoch: "
            f"an epoch must use every training example exactly once; the batches held {len(keys)} rows for "
            f"{n} examples, some repeated or missing. (seed {seed})"
        )
    if np.array_equal(keys, X[:, 0]):
        raise CheckFailure(
            "train_epoch: the examples were visited in their stored order: shuffle them every epoch with "
            f"rng.permutation(len(X)). (seed {seed})"
        )
    _check_pairs(batches, targets, X, y, seed)
    if not all(seen["training"]):
        raise CheckFailure(
            "train_epoch: "
            "the model was not in training mode during the epoch: call model.train() first (the check "
            f"handed you a model in eval mode). (seed {seed})"
        )
    if seen["kept"] is not None or seen["result_is_tensor"]:
        where = (
            f" (minibatch {seen['kept'][0] + 1}'s graph was still alive when minibatch {seen['kept'][1] + 1} "
            "was trained)"
            if seen["kept"] is not None
            else f" (it returned a {seen['result_type']}, which carries the whole epoch's graph)"
        )
        raise CheckFailure(
            f"train_epoch kept every minibatch's graph alive until the epoch ended{where}: a running total "
            "built from loss Tensors, such as total = total + loss * n, is itself a Tensor whose graph links "
            "all the batches' graphs (a list of loss Tensors does the same). Add plain numbers instead: "
            f"loss.item() times the batch size. (seed {seed})"
        )
    for k, ((grads, values), xb, yb) in enumerate(zip(steps, batches, targets, strict=True)):
        gW, gb = _mse_gradients(values[0], values[1], xb, yb)
        if grads[0] is None or grads[1] is None:
            raise CheckFailure(
                "train_epoch: "
                f"at optimizer.step() number {k + 1} the parameters had no .grad: call loss.backward() "
                "before optimizer.step(), and optimizer.zero_grad() before the forward pass, not between "
                f"backward() and step(). (seed {seed})"
            )
        if k > 0 and np.allclose(grads[0], gW + steps[k - 1][0][0], rtol=1e-6):
            raise CheckFailure(
                "train_epoch: "
                f"at step {k + 1} the gradient was the sum of this batch's gradient and the previous ones: "
                "the gradients were not zeroed between steps (backward() accumulates). Call "
                f"optimizer.zero_grad() before each backward. (seed {seed})"
            )
        scale = float(np.sum(grads[0] * gW) / max(float(np.sum(gW * gW)), 1e-300))
        if not np.isclose(scale, 1.0) and np.allclose(grads[0], scale * gW, rtol=1e-6, atol=1e-12):
            cause = ("the batch size: backpropagate the minibatch's mean loss itself (weight it by the batch "
                     "size only in the running total)" if np.isclose(scale, len(xb)) else
                     "a constant factor: backpropagate exactly the loss that loss_fn returned")
            raise CheckFailure(
                f"train_epoch: the weight gradient at optimizer.step() number {k + 1} is {scale:.4g} times "
                f"the gradient of that minibatch's loss, i.e. scaled by {cause}. (seed {seed})"
            )
        check_close(
            grads[0],
            gW,
            name=f"the weight gradient seen by optimizer.step() number {k + 1}",
            rtol=1e-8,
            atol=1e-12,
            hint="each step must use the gradient of the current minibatch's loss only: zero_grad(), "
            f"forward, loss_fn(output, y_batch), backward(), step() (seed {seed})",
        )
        check_close(
            grads[1],
            gb,
            name=f"the bias gradient seen by optimizer.step() number {k + 1}",
            rtol=1e-8,
            atol=1e-12,
            hint=f"targets must be the labels of the same examples as the inputs (seed {seed})",
        )
    sizes = np.array([len(s) for s in batches])
    values = np.array([float(np.mean((xb @ W + b - yb) ** 2))
                       for (_, (W, b)), xb, yb in zip(steps, batches, targets, strict=True)])
    expected = float(np.dot(sizes, values) / n)
    value = seen["result"]
    if value is None:
        raise CheckFailure(
            f"train_epoch must return the epoch's mean loss as a number, got {seen['result_repr']}."
        )
    if not np.isfinite(value):
        raise CheckFailure(f"train_epoch returned {value} as the mean loss: return a finite number.")
    plain_mean = float(np.mean(values))
    hint = (
        "that is the plain mean of the batch losses; weight each batch loss by its batch size and divide by "
        "the number of examples"
        if np.isclose(value, plain_mean, rtol=1e-9)
        else "return sum(batch_loss * batch_size) / number_of_examples"
    )
    check_close(
        value,
        expected,
        name="the mean loss per example returned by train_epoch",
        rtol=1e-9,
        hint=f"{hint} (seed {seed})",
    )


def check_order_from_rng(
    train_epoch: Callable[..., object], Tensor: type, Parameter: type, rng: np.random.Generator, seed: int
) -> None:
    """The visiting order comes from the rng argument alone: generators made from one seed give the same
    order, from two seeds different orders, and one generator used twice two different orders."""
    X, y = _keyed_data(rng, 24)
    judge_orders(observe_orders(train_epoch, Tensor, Parameter, int(rng.integers(2**62)), X, y, seed), seed)


def observe_orders(train_epoch: Callable[..., object], Tensor: type, Parameter: type, model_seed: int,
                   X: np.ndarray, y: np.ndarray, seed: int) -> list[np.ndarray]:
    """The orders (keys seen) of six epochs in batches of 8: two with generators from `seed`, one from
    `seed` and one from `seed + 1`, then two with one generator from `seed`."""
    rng = np.random.default_rng(model_seed)
    X, y = np.array(X, dtype=float), np.array(y, dtype=float)

    def order(gen: np.random.Generator) -> np.ndarray:
        return _keys(_epoch(train_epoch, Tensor, Parameter, rng, X, y, 8, gen)[1].seen)

    gen = np.random.default_rng(seed)
    return [order(np.random.default_rng(s)) for s in (seed, seed, seed, seed + 1)] + [order(gen), order(gen)]


def judge_orders(orders: list[np.ndarray], seed: int) -> None:
    """Orders from `observe_orders`: the same seed gives the same order, others a different one."""
    if not np.array_equal(orders[0], orders[1]):
        raise CheckFailure(
            "train_epoch: "
            "two epochs given generators made from the same seed visited the examples in different orders: "
            "draw the order from the rng argument (rng.permutation), not from np.random.* (numpy's global "
            "generator), so that one seed reproduces a run; the PyTorch comparison in this lesson relies on "
            f"it. (seed {seed})"
        )
    if np.array_equal(orders[2], orders[3]):
        raise CheckFailure(
            "train_epoch: "
            "epochs given generators made from two different seeds visited the examples in the same order: "
            "the order does not come from the rng argument (a generator with a fixed seed of your own?). "
            f"Use rng.permutation. (seed {seed})"
        )
    if np.array_equal(orders[4], orders[5]):
        raise CheckFailure(
            "train_epoch: "
            "two epochs with the same generator visited the examples in the same order: draw a new "
            f"permutation from rng in every call (do not reseed it). (seed {seed})"
        )


def check_train_epoch(
    train_epoch: Callable[..., object], Tensor: type, Parameter: type, seed: int | None = None
) -> None:
    """One epoch: train mode, shuffled complete minibatches with their own labels, zeroed gradients, an
    order reproducible from the rng, no graph kept across batches, mean loss per example."""
    _reproducibly("train_epoch", "check_train_epoch(train_epoch, Tensor, Parameter", verify_train_epoch,
                  (train_epoch, Tensor, Parameter), seed)


def verify_train_epoch(
    train_epoch: Callable[..., object], Tensor: type, Parameter: type, *, seed: int | None = None
) -> str:
    """The work of check_train_epoch; returns what was compared."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    n = 48 + int(rng.integers(1, 16))
    run_train_epoch(train_epoch, Tensor, Parameter, rng, n=n, batch_size=16, seed=seed)
    check_order_from_rng(train_epoch, Tensor, Parameter, rng, seed)
    return (f"{n} examples in batches of 16: each used once with its own label, in a shuffled order "
            f"reproducible from rng, a fresh gradient per step, no graph kept across batches, the mean loss "
            f"per example; plus 6 epochs comparing orders (seed {seed})")


class _CrossEntropy:
    def __init__(self, Tensor: type) -> None:
        self.Tensor = Tensor

    def __call__(self, logits: object, labels: object) -> object:
        labels = np.asarray(labels)
        onehot = np.zeros(logits.shape)
        onehot[np.arange(len(labels)), labels] = 1.0
        return -(logits.log_softmax(axis=1) * onehot).sum() / len(labels)


def run_evaluate(
    evaluate: Callable[..., object],
    Tensor: type,
    Parameter: type,
    GradMode: type,
    rng: np.random.Generator,
    n: int,
    batch_size: int | None,
    seed: int,
) -> None:
    """Run the student's evaluate on a recording linear classifier whose loss and accuracy the check knows
    (about a third of the labels made wrong), and verify what it did and returned."""
    X, y, W, b = evaluate_case(rng, n)
    seen = observe_evaluate(evaluate, Tensor, Parameter, GradMode, X, y, W, b, batch_size)
    judge_evaluate(seen, X, y, W, b, batch_size, seed)


def evaluate_case(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, labels, W, b) for a linear classifier x @ W + b that gets about two thirds of the labels right."""
    d_in, k = 4, 5
    X = rng.standard_normal((n, d_in))
    W, b = rng.standard_normal((d_in, k)) * 1.2, rng.standard_normal(k) * 0.1
    y = (X @ W + b).argmax(axis=1)
    # make about a third wrong, never the last example: the last (partial) batch then always has a correct
    # prediction, so counting it as a full batch shows
    flip = rng.choice(n - 1, size=n // 3, replace=False)
    y[flip] = (y[flip] + rng.integers(1, k, size=len(flip))) % k
    return X, y, W, b


def observe_evaluate(evaluate: Callable[..., object], Tensor: type, Parameter: type, GradMode: type,
                     X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, batch_size: int | None
                     ) -> dict:
    """The student's evaluate on the recording classifier x @ W + b, called in training mode: what it
    returned (two numbers), the training flag and grad mode at each forward pass, whether the parameters
    changed. A result that is not two plain numbers, or an error, ends here with its message."""
    X, y = np.array(X, dtype=float), np.array(y, dtype=np.int64)
    model = RecordingLinearModel(Tensor, Parameter, np.random.default_rng(0), X.shape[1], len(b),
                                 grad_mode=GradMode)
    model.W.data, model.b.data = np.array(W, dtype=float), np.array(b, dtype=float)
    before = [p.data.copy() for p in model.parameters()]
    model.train()
    saved = GradMode.enabled
    args = (model, _CrossEntropy(Tensor), readonly(X), readonly(y))
    args += () if batch_size is None else (batch_size,)
    try:
        with reworded(_evaluate_crash):
            result = call_student("evaluate", evaluate, *args)
    finally:
        restored = GradMode.enabled
        GradMode.enabled = saved
    if not restored:
        raise CheckFailure(
            "evaluate: grad mode was still off after it returned: use `with no_grad():` so it is restored."
        )
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise CheckFailure(f"evaluate must return (mean_loss, accuracy), got {result!r}.")
    if any(isinstance(value, Tensor) for value in result):
        raise CheckFailure(
            "evaluate returned a Tensor inside (mean_loss, accuracy): return plain numbers, e.g. add each "
            "batch's loss.item() (a float) to the total rather than the loss Tensor."
        )
    if any(np.ndim(value) != 0 for value in result):
        raise CheckFailure(
            "evaluate must return two numbers (mean_loss, accuracy), got values of shapes "
            f"{[np.shape(value) for value in result]}: reduce each to one float over all examples."
        )
    try:
        numbers = [float(value) for value in result]
    except (TypeError, ValueError):
        numbers = None
    return {"result": numbers, "result_repr": repr(result)[:200],
            "training": [training for training, _ in model.flags],
            "enabled": [enabled for _, enabled in model.flags],
            "changed": any(not np.array_equal(p.data, b) for p, b in zip(model.parameters(), before,
                                                                         strict=True))}


def _evaluate_crash(exc: CheckFailure) -> str:
    """The error evaluate raised, with the usual reason behind it."""
    if "context manager" in str(exc):
        return f"{exc}.\n  Hint: no_grad is a class: write `with no_grad():`, with parentheses."
    if "'Tensor' object has no attribute" in str(exc):
        return (f"{exc}. A Tensor offers only the engine's operations: for plain numpy work such as argmax, "
                "use its array, .data.")
    if "broadcast" in str(exc):
        return (f"{str(exc).rstrip()}. The predictions of a batch and its labels have different lengths: a "
                "prediction is the index of the largest output OF EACH EXAMPLE, so take the argmax along the "
                "classes (axis=1, one value per row), not down the batch (axis=0).")
    return str(exc)


def judge_evaluate(seen: dict, X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray,
                   batch_size: int | None, seed: int) -> None:
    """Verify evaluate's observations (`observe_evaluate`) against the loss and accuracy computed here."""
    n = len(X)
    logits = X @ W + b
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected_loss = float(-logp[np.arange(n), y].mean())
    expected_acc = float(np.mean(logits.argmax(axis=1) == y))
    if any(seen["training"]):
        raise CheckFailure(
            "evaluate: the model was in training mode: call model.eval() first (dropout and similar "
            f"layers behave differently when training). (seed {seed})"
        )
    if any(seen["enabled"]):
        raise CheckFailure(
            "evaluate recorded a graph: run the forward passes inside `with no_grad():` so no activations "
            f"are kept for a backward pass that never comes. (seed {seed})"
        )
    if seen["changed"]:
        raise CheckFailure("evaluate changed the model's parameters; it must only read them.")
    result = seen["result"]
    if result is None:
        raise CheckFailure(
            f"evaluate must return two numbers (mean_loss, accuracy), got {seen['result_repr']}.")
    bs = "default" if batch_size is None else batch_size
    if np.allclose(result, [expected_acc, expected_loss], rtol=1e-9):
        raise CheckFailure(
            "evaluate returned (accuracy, mean_loss): the order is (mean_loss, accuracy), as the training "
            "cell unpacks it."
        )
    _accuracy_is_a_fraction(result[1], expected_acc, n, seed)
    check_close(
        result[1],
        expected_acc,
        name=f"the accuracy from evaluate (n={n}, batch_size={bs})",
        rtol=1e-12,
        hint="count correct predictions (argmax of each example's outputs, axis=1, == its label) over EVERY "
        f"example, including the last partial batch, and divide by the number of examples (seed {seed})",
    )
    check_close(
        result[0],
        expected_loss,
        name=f"the mean loss from evaluate (n={n}, batch_size={bs})",
        rtol=1e-9,
        hint=f"weight each batch's mean loss by its size and divide by the number of examples (seed {seed})",
    )


def _accuracy_is_a_fraction(got: float, expected: float, n: int, seed: int) -> None:
    """An accuracy above 1 is on another scale: say which one it matches, a percentage or a count."""
    if got <= 1:
        return
    if abs(got - 100 * expected) <= 0.5 + 1e-9:  # also when rounded to a whole percent
        kind = "a percentage: the cells that show it format it themselves"
    elif abs(got - n * expected) <= 1e-6 * n:
        kind = "the number of correct predictions, not yet divided by the number of examples"
    else:
        kind = "above 1, so it is not a share of the examples"
    raise CheckFailure(
        f"evaluate returned an accuracy of {got:g} over {n} examples; that is {kind}. Return the accuracy as "
        f"the fraction of examples classified correctly, a number between 0 and 1. (seed {seed})")


def check_evaluate(
    evaluate: Callable[..., object], Tensor: type, Parameter: type, GradMode: type, seed: int | None = None
) -> None:
    """evaluate: eval mode, no graph, loss and accuracy over every example, parameters untouched."""
    _reproducibly("evaluate", "check_evaluate(evaluate, Tensor, Parameter, GradMode", verify_evaluate,
                  (evaluate, Tensor, Parameter, GradMode), seed)


def verify_evaluate(
    evaluate: Callable[..., object], Tensor: type, Parameter: type, GradMode: type, *, seed: int | None = None
) -> str:
    """The work of check_evaluate; returns what was compared."""
    seed = new_seed(seed)
    rng = np.random.default_rng(seed)
    n = 16 * int(rng.integers(4, 6)) + int(rng.integers(1, 16))  # the last batch is a partial one
    run_evaluate(evaluate, Tensor, Parameter, GradMode, rng, n=n, batch_size=16, seed=seed)
    return (f"loss and accuracy over {n} examples in batches of 16 (the last one partial), in eval mode, "
            f"without a graph, parameters untouched (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Observations for the grader: each builds what the student's code needs in the kernel, runs it on the
# grader's data and returns what happened (never a verdict); the hidden checks judge it
# ---------------------------------------------------------------------------------------------------------


def observe_module_tree(Module: type, Parameter: type, Tensor: type, seed: int, depth: int) -> dict:
    """The paths of what modules() and parameters() returned for `random_module_tree` drawn from `seed`
    (an object that is not in the tree is named by its type), after modules() first."""
    root, params, modules = random_module_tree(Module, Parameter, Tensor, np.random.default_rng(seed), depth)
    mods = _listed("Module.modules", root.modules)
    found = _listed("Module.parameters", root.parameters)
    return {"modules": [modules.get(id(m), f"a {type(m).__name__}") for m in mods],
            "parameters": [params.get(id(p), f"a {type(p).__name__}") for p in found]}


def observe_module_chain(Module: type, Parameter: type, depth: int) -> list[int]:
    """How many Parameters parameters() returns for a chain of `depth` nested modules holding one each, and
    for a module without any."""

    class Chain(Module):
        def __init__(self, inner: object | None) -> None:
            super().__init__()
            self.p = Parameter(np.ones(1))
            self.inner = inner

    class Empty(Module):
        pass

    root = None
    for _ in range(depth):
        root = Chain(root)
    return [len(_listed("Module.parameters", root.parameters)), len(_listed("Module.parameters",
                                                                           Empty().parameters))]


def observe_linear(Linear: type, Tensor: type, n_in: int, n_out: int, seed: int, x: np.ndarray,
                   upstream: np.ndarray) -> dict:
    """Linear(n_in, n_out, rng=default_rng(seed)): its parameters, its output on x and the gradients of
    sum(output * upstream) for the weight, the bias and x."""
    lin = call_student("Linear", Linear, n_in, n_out, rng=np.random.default_rng(seed))
    weight, bias = (np.array(getattr(lin, name).data, dtype=float, copy=True) for name in ("weight", "bias"))
    xt = Tensor(np.array(x, dtype=float), requires_grad=True)
    out = call_student("Linear.forward", lin, xt)
    call_student("backward through Linear", lambda: (out * Tensor(np.array(upstream))).sum().backward())
    grads = [None if t.grad is None else np.array(t.grad, dtype=float) for t in (lin.weight, lin.bias, xt)]
    again = call_student("Linear", Linear, n_in, n_out, rng=np.random.default_rng(seed))
    a, b = (call_student(f"Linear({n_in}, {n_out}) without an rng", Linear, n_in, n_out) for _ in "ab")
    return {"weight": weight, "bias": bias, "out": np.array(getattr(out, "data", np.nan), dtype=float),
            "grads": grads, "same_seed_same_layer": bool(np.array_equal(again.weight.data, weight)),
            "unseeded_layers_differ": not np.array_equal(a.weight.data, b.weight.data)}


def observe_optimizer(Optimizer: type, Parameter: type, settings: dict, starts: list,
                      grads: list) -> list[list[np.ndarray]]:
    """The parameters after each step of Optimizer(params, **settings) over the gradient history."""
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    # arrays again (a 0-d array may arrive as a number), so each step meets what it would in a notebook
    grads = [[None if g is None else np.array(g, dtype=float) for g in row] for row in grads]
    return _run_optimizer(lambda ps: Optimizer(ps, **settings), Parameter,
                          [np.array(s, dtype=float) for s in starts], grads)
