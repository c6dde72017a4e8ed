"""Hidden checks for lesson 07 (instructor only: never shipped to students).

Each runs the visible check's work again in the student's kernel (through the visible module's probe,
which builds the recording stand-ins there) and then judges, here in the grader, observations of the
student's code on inputs drawn here: the module trees' Parameters and sub-modules against the same trees
built from ``reference_impl.nn``, Linear's output and gradients against their closed forms, the
optimisers' whole trajectories against ``reference_impl.optim`` on the same gradient histories (with
parameters that sometimes have no gradient), and the named slips (an exponential average for momentum,
no bias correction, t stuck at 1) to say which one a wrong run is. train_epoch and evaluate are run on
awkward sizes. A passing hidden check prints one ``passed:`` line of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autograder import lesson07 as visible
from autograder.checks import CheckFailure, check_close, new_seed, passed
from reference_impl.nn import Module as RefModule
from reference_impl.nn import Parameter as RefParameter
from reference_impl.optim import SGD as RefSGD
from reference_impl.optim import Adam as RefAdam
from reference_impl.tensor import Tensor as RefTensor

kernel = visible.in_the_kernel


# ---------------------------------------------------------------------------------------------------------
# Module.parameters / Module.modules
# ---------------------------------------------------------------------------------------------------------


def _expected_tree(seed: int, depth: int) -> tuple[set[str], set[str]]:
    """The Parameters' and modules' paths of the tree `random_module_tree` draws from `seed`."""
    _, params, modules = visible.random_module_tree(RefModule, RefParameter, RefTensor,
                                                    np.random.default_rng(seed), depth)
    return set(params.values()), set(modules.values())


def _judge_tree(found: dict, params: set[str], modules: set[str], seed: int) -> None:
    mods, got = found["modules"], found["parameters"]
    if not mods or mods[0] != "the model itself":
        raise CheckFailure("Module.modules: modules() must return the model itself first, then every "
                           f"sub-module once. (seed {seed})")
    if len(mods) != len(set(mods)) or set(mods) != modules:
        raise CheckFailure(
            f"Module.modules: a module tree has {len(modules)} modules; modules() returned {len(mods)} "
            f"({len(set(mods))} distinct, {len(set(mods) - modules)} not in the tree): it must return every "
            f"module once. (seed {seed})")
    if len(got) != len(set(got)):
        raise CheckFailure("Module.parameters: parameters() returned the same Parameter more than once. "
                           f"(seed {seed})")
    missing, extra = sorted(params - set(got)), sorted(set(got) - params)
    if missing or extra:
        raise CheckFailure(
            f"Module.parameters: a module tree holds {len(params)} Parameters; parameters() missed "
            f"{len(missing)} and returned {len(extra)} other objects ({', '.join(extra[:2]) or 'none'}). "
            f"(seed {seed})")


def check_module_parameters(Module: type, Parameter: type, Tensor: type) -> None:
    """Six random trees (the visible work), four more judged against reference_impl.nn's trees, a 60-deep
    chain of modules and a module without Parameters."""
    seed = new_seed(None)
    kernel("verify_module_parameters", Module, Parameter, Tensor, seed=seed, trees=6)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        tree_seed, depth = int(rng.integers(2**62)), int(rng.integers(1, 5))
        found = kernel("observe_module_tree", Module, Parameter, Tensor, tree_seed, depth)
        _judge_tree(found, *_expected_tree(tree_seed, depth), seed)
    chain, empty = kernel("observe_module_chain", Module, Parameter, 60)
    if chain != 60:
        raise CheckFailure(
            "Module.parameters: a chain of 60 nested modules holds 60 Parameters; parameters() found "
            f"{chain}."
        )
    if empty:
        raise CheckFailure("Module.parameters: a module without Parameters must return an empty list.")
    passed("Module.parameters (grading)", f"10 random trees, a 60-deep chain, an empty module (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------------------------------------


def check_linear(Linear: type, Parameter: type, Tensor: type) -> None:
    """The visible work, then Linear(1, 1) and a random layer: output and gradients as the closed forms."""
    seed = new_seed(None)
    kernel("verify_linear", Linear, Parameter, Tensor, seed=seed)
    rng = np.random.default_rng(seed)
    for n_in, n_out, batch in ((1, 1, 1), (6, 4, 5)):
        x, upstream = rng.standard_normal((batch, n_in)), rng.standard_normal((batch, n_out))
        seen = kernel("observe_linear", Linear, Tensor, n_in, n_out, int(rng.integers(2**62)), x, upstream)
        W, b = seen["weight"], seen["bias"]
        if not (seen["same_seed_same_layer"] and seen["unseeded_layers_differ"]):
            raise CheckFailure(
                f"Linear({n_in}, {n_out}): layers built from generators with one seed must be equal, and "
                "layers built without an rng must differ (draw from the rng argument, or from "
                "np.random.default_rng() when it is None).")
        if np.shape(W) != (n_out, n_in) or np.shape(b) != (n_out,):
            raise CheckFailure(f"Linear({n_in}, {n_out}): weight and bias have shapes {np.shape(W)} and "
                               f"{np.shape(b)}, expected {(n_out, n_in)} and {(n_out,)}.")
        what = f"Linear({n_in}, {n_out}) on a batch of {batch}"
        check_close(seen["out"], x @ W.T + b, name=f"{what}: the output", rtol=1e-12, atol=1e-12)
        for name, got, want in zip(("weight", "bias", "input"), seen["grads"],
                                   (upstream.T @ x, upstream.sum(axis=0), upstream @ W), strict=True):
            if got is None:
                raise CheckFailure(f"{what}: after backward the {name} has no gradient.")
            check_close(got, want, name=f"{what}: the {name} gradient", rtol=1e-10, atol=1e-12)
    seen = kernel("observe_linear", Linear, Tensor, 400, 250, int(rng.integers(2**62)),
                  rng.standard_normal((1, 400)), rng.standard_normal((1, 250)))
    bound = 1 / np.sqrt(400)
    for name, values in (("weight", seen["weight"]), ("bias", seen["bias"])):
        spread = float(np.std(values)) / (bound / np.sqrt(3))
        mean = abs(float(np.mean(values)))
        if np.max(np.abs(values)) > bound * (1 + 1e-12) or abs(spread - 1) > 0.25 or mean > bound / 4:
            raise CheckFailure(
                f"Linear(400, 250).{name}: values should be uniform on [-1/sqrt(in_features), "
                f"1/sqrt(in_features)] = [-{bound:.4f}, {bound:.4f}]; got max |value| "
                f"{np.max(np.abs(values)):.4f}, mean {np.mean(values):.4f} and standard deviation "
                f"{np.std(values):.4f}.")
    passed("Linear (grading)", f"Linear(1, 1) and Linear(6, 4): output and gradients; Linear(400, 250)'s "
           f"initial range (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# SGD and Adam against reference_impl.optim, and the named slips
# ---------------------------------------------------------------------------------------------------------


def _reference_run(make_ref: Callable[[list], object], starts: list[np.ndarray],
                   grads: list[list[np.ndarray | None]]) -> list[list[np.ndarray]]:
    params = [RefTensor(s.copy(), requires_grad=True) for s in starts]
    opt = make_ref(params)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = None if g is None else g.copy()
        opt.step()
        history.append([np.array(p.data, dtype=float, copy=True) for p in params])
    return history


def _gradient_history(rng: np.random.Generator, shapes: list[tuple[int, ...]], steps: int
                      ) -> list[list[np.ndarray | None]]:
    """Random gradients of mixed scales; the last parameter sometimes has none (it is then left alone)."""
    out = []
    for t in range(steps):
        row: list[np.ndarray | None] = [rng.standard_normal(s) * rng.uniform(0.05, 5.0) for s in shapes]
        if t % 3 == 1:
            row[-1] = None
        out.append(row)
    return out


def _adam_slip(starts: list[np.ndarray], grads: list[list[np.ndarray | None]], lr: float,
               betas: tuple[float, float], eps: float, *, bias_correction: bool = True,
               frozen_t: bool = False) -> list[list[np.ndarray]]:
    """Adam with a named mistake (no bias correction, or t stuck at 1): the run it would give."""
    b1, b2 = betas
    ps = [s.copy() for s in starts]
    m, v, t = [np.zeros_like(s) for s in starts], [np.zeros_like(s) for s in starts], [0] * len(starts)
    history = []
    for step in grads:
        for i, g in enumerate(step):
            if g is None:
                continue
            t[i] += 1
            m[i], v[i] = b1 * m[i] + (1 - b1) * g, b2 * v[i] + (1 - b2) * g**2
            tc = 1 if frozen_t else t[i]
            mh, vh = (m[i] / (1 - b1**tc), v[i] / (1 - b2**tc)) if bias_correction else (m[i], v[i])
            ps[i] = ps[i] - lr * mh / (np.sqrt(vh) + eps)
        history.append([p.copy() for p in ps])
    return history


def _judge_run(Optimizer: type, Parameter: type, settings: dict, make_ref: Callable[[list], object],
               slips: dict[str, Callable[[list, list], list]], starts: list, grads: list, what: str,
               seed: int, rule: str) -> None:
    got = kernel("observe_optimizer", Optimizer, Parameter, settings, starts, grads)
    want = _reference_run(make_ref, starts, grads)
    alts = {hint: run(starts, grads) for hint, run in slips.items()}
    visible._compare_steps(got, want, what, alts, seed, starts=starts, rule=rule)


def check_sgd_step(SGD: type, Parameter: type) -> None:
    """The visible work, then the student's SGD against reference_impl.optim.SGD on the same histories."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    kernel("verify_sgd_step", SGD, Parameter, seed=seed)
    shapes = [(5, 3), (3,), (), (2, 2, 2)]
    for momentum in (0.0, 0.9, float(rng.uniform(0.1, 0.99))):
        lr = float(rng.uniform(1e-3, 0.5))
        starts = [rng.standard_normal(s) for s in shapes]
        slips = {visible._SGD_LATE: lambda s, g, lr=lr, m=momentum: visible._one_step_late(
            s, _reference_run(lambda ps: RefSGD(ps, lr=lr, momentum=m), s, g))}
        if momentum:
            slips |= {
                visible._SGD_EMA: lambda s, g, lr=lr, m=momentum: _reference_run(
                    lambda ps: RefSGD(ps, lr=lr * (1 - m), momentum=m), s, g),
                visible._SGD_PLAIN: lambda s, g, lr=lr: _reference_run(lambda ps: RefSGD(ps, lr=lr), s, g),
                visible._SGD_EMA_AFTER_FIRST: lambda s, g, lr=lr, m=momentum: _reference_run(
                    lambda ps: RefSGD(ps, lr=lr, momentum=m, dampening=m), s, g),
            }
        _judge_run(SGD, Parameter, {"lr": lr, "momentum": momentum},
                   lambda ps, lr=lr, m=momentum: RefSGD(ps, lr=lr, momentum=m), slips, starts,
                   _gradient_history(rng, shapes, 9), f"SGD(lr={lr:.3g}, momentum={momentum:.3g})", seed,
                   visible.SGD_RULE)
    passed("SGD.step (grading)", f"3 momenta x 9 steps with gaps in .grad, as the reference (seed {seed})")


def check_adam_step(Adam: type, Parameter: type) -> None:
    """The visible work, then the student's Adam against reference_impl.optim.Adam on the same histories."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    kernel("verify_adam_step", Adam, Parameter, seed=seed)
    shapes = [(4, 3), (3,), ()]
    betas = (float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.9, 0.9999)))
    settings = [(1e-3, (0.9, 0.999), 1e-8), (float(rng.uniform(0.01, 0.2)), betas, 1e-6)]
    for lr, betas, eps in settings:
        starts = [rng.standard_normal(s) for s in shapes]
        slips = {
            visible._ADAM_NO_CORRECTION: lambda s, g, lr=lr, b=betas, e=eps: _adam_slip(
                s, g, lr, b, e, bias_correction=False),
            visible._ADAM_FROZEN_T: lambda s, g, lr=lr, b=betas, e=eps: _adam_slip(
                s, g, lr, b, e, frozen_t=True),
        }
        if (betas, eps) != ((0.9, 0.999), 1e-8):
            slips[visible._ADAM_DEFAULTS] = lambda s, g, lr=lr: _reference_run(
                lambda ps: RefAdam(ps, lr=lr), s, g)
        _judge_run(Adam, Parameter, {"lr": lr, "betas": list(betas), "eps": eps},
                   lambda ps, lr=lr, b=betas, e=eps: RefAdam(ps, lr=lr, betas=b, eps=e), slips, starts,
                   _gradient_history(rng, shapes, 12), f"Adam(lr={lr:.3g}, betas={betas}, eps={eps:g})",
                   seed, visible.ADAM_RULE)
    passed("Adam.step (grading)", f"2 settings x 12 steps with gaps in .grad, as the reference (seed {seed})")


# ---------------------------------------------------------------------------------------------------------
# train_epoch and evaluate
# ---------------------------------------------------------------------------------------------------------


def check_train_epoch(train_epoch: Callable[..., object], Tensor: type, Parameter: type) -> None:
    """The visible check's work, then epochs on data drawn here, judged here: 48 examples in batches of
    16, a batch larger than the data, a batch size of 7, and the orders of six epochs."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    kernel("verify_train_epoch", train_epoch, Tensor, Parameter, seed=seed)
    sizes = ((48, 16), (37, 64), (30, 7))
    for n, bs in sizes:
        X, y = visible._keyed_data(rng, n)
        seen = kernel("observe_epoch", train_epoch, Tensor, Parameter, int(rng.integers(2**62)), X, y, bs,
                      seed + n)
        visible.judge_epoch(seen, X, y, bs, seed + n)
    X, y = visible._keyed_data(rng, 24)
    orders = kernel("observe_orders", train_epoch, Tensor, Parameter, int(rng.integers(2**62)), X, y, seed)
    visible.judge_orders(orders, seed)
    passed("train_epoch (grading)", f"(examples, batch size) = {sizes}, six epochs' orders (seed {seed})")


def check_evaluate(evaluate: Callable[..., object], Tensor: type, Parameter: type, GradMode: type) -> None:
    """The visible check's work, then cases drawn and judged here: a batch larger than the data, the
    default batch size, batches of 8."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    kernel("verify_evaluate", evaluate, Tensor, Parameter, GradMode, seed=seed)
    sizes = ((50, 50), (33, 8), (20, None), (300, None), (9, 100))
    for n, bs in sizes:
        X, y, W, b = visible.evaluate_case(rng, n)
        seen = kernel("observe_evaluate", evaluate, Tensor, Parameter, GradMode, X, y, W, b, bs)
        visible.judge_evaluate(seen, X, y, W, b, bs, seed)
    passed("evaluate (grading)", f"(examples, batch size) = {sizes}, None meaning the default (seed {seed})")
