"""Hidden checks for lesson 07 (instructor only: never shipped to students).

Each runs the visible check's work again (silently, with the closed forms of ``lesson07_trusted`` in
reach) and goes beyond it: deeper module trees, PyTorch's Linear where installed, and the student's
optimiser steps run against the reference optimisers (``reference_impl.optim``) on the same gradients,
with parameters that sometimes have no gradient; train_epoch and evaluate on awkward sizes. A passing
hidden check prints one ``passed:`` line of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autograder import lesson07 as visible
from autograder.checks import CheckFailure, call_student, check_close, new_seed, passed, quiet


def check_module_parameters(Module: type, Parameter: type, Tensor: type) -> None:
    """Six random trees, a 60-deep chain of modules and a module without Parameters."""
    seed = new_seed(None)
    visible.verify_module_parameters(Module, Parameter, Tensor, seed=seed, trees=6)

    class Chain(Module):
        def __init__(self, inner: object | None) -> None:
            super().__init__()
            self.p = Parameter(np.ones(1))
            self.inner = inner

    root = None
    for _ in range(60):  # 60 levels deep: a plain walk must cope
        root = Chain(root)
    found = visible._listed("Module.parameters", root.parameters)
    if len(found) != 60:
        raise CheckFailure(
            f"Module.parameters: a chain of 60 nested modules holds 60 Parameters; parameters() found "
            f"{len(found)}."
        )

    class Empty(Module):
        pass

    none = visible._listed("Module.parameters", Empty().parameters)
    if none:
        raise CheckFailure("Module.parameters: a module without Parameters must return an empty list.")
    passed("Module.parameters (grading)", f"6 random trees, a 60-deep chain, an empty module (seed {seed})")


def check_linear(Linear: type, Parameter: type, Tensor: type) -> None:
    """Linear(1, 1) and the gradients of torch.nn.functional.linear."""
    seed = new_seed(None)
    visible.verify_linear(Linear, Parameter, Tensor, seed=seed)
    rng = np.random.default_rng(seed)
    one = call_student("Linear", Linear, 1, 1, rng=rng)
    out = call_student("Linear.forward", one, Tensor(np.array([[2.0]])))
    check_close(
        getattr(out, "data", None), 2.0 * one.weight.data + one.bias.data, name="Linear(1, 1) on one example",
        rtol=1e-12,
    )
    try:
        with quiet():
            import torch
    except ImportError:
        passed("Linear (grading)", f"Linear(1, 1); no PyTorch here to compare with (seed {seed})")
        return
    lin = call_student("Linear", Linear, 6, 4, rng=rng)
    x = rng.standard_normal((5, 6))
    g = rng.standard_normal((5, 4))
    xt = Tensor(x.copy(), requires_grad=True)
    call_student("backward through Linear", lambda: lin(xt).backward(g.copy()))
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(lin.weight.data, requires_grad=True)
    tb = torch.tensor(lin.bias.data, requires_grad=True)
    torch.nn.functional.linear(tx, tw, tb).backward(torch.tensor(g))
    for name, mine, theirs in (
        ("weight", lin.weight.grad, tw.grad),
        ("bias", lin.bias.grad, tb.grad),
        ("input", xt.grad, tx.grad),
    ):
        check_close(
            mine,
            theirs.numpy(),
            name=f"Linear {name} gradient vs torch.nn.functional.linear",
            rtol=1e-10,
            atol=1e-12,
        )
    passed("Linear (grading)", f"Linear(1, 1), gradients as PyTorch's (seed {seed})")


def _reference_run(
    make_ref: Callable[[list], object], starts: list[np.ndarray], grads: list[list[np.ndarray | None]]
) -> list[list[np.ndarray]]:
    from reference_impl.tensor import Tensor as RefTensor

    params = [RefTensor(s.copy(), requires_grad=True) for s in starts]
    opt = make_ref(params)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = None if g is None else g.copy()
        opt.step()
        history.append([np.array(p.data, dtype=float, copy=True) for p in params])
    return history


def _gradient_history(
    rng: np.random.Generator, shapes: list[tuple[int, ...]], steps: int, gaps: bool
) -> list[list[np.ndarray | None]]:
    """Random gradients; with gaps, the last parameter sometimes has none (it is then left alone)."""
    out = []
    for t in range(steps):
        row: list[np.ndarray | None] = [rng.standard_normal(s) * rng.uniform(0.05, 5.0) for s in shapes]
        if gaps and t % 3 == 1:
            row[-1] = None
        out.append(row)
    return out


def check_sgd_step(SGD: type, Parameter: type) -> None:
    """The student's SGD against reference_impl.optim.SGD on the same gradient histories."""
    from reference_impl.optim import SGD as RefSGD

    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.verify_sgd_step(SGD, Parameter, seed=seed)
    shapes = [(5, 3), (3,), (2, 2, 2)]
    for momentum in (0.0, 0.9, float(rng.uniform(0.1, 0.99))):
        lr = float(rng.uniform(1e-3, 0.5))
        starts = [rng.standard_normal(s) for s in shapes]
        grads = _gradient_history(rng, shapes, 9, gaps=True)
        got = visible._run_optimizer(
            lambda ps, lr=lr, m=momentum: SGD(ps, lr=lr, momentum=m), Parameter, starts, grads
        )
        want = _reference_run(lambda ps, lr=lr, m=momentum: RefSGD(ps, lr=lr, momentum=m), starts, grads)
        visible._compare_steps(
            got, want, f"SGD(lr={lr:.3g}, momentum={momentum:.3g}) vs the reference", {}, seed,
            starts=starts, rule=visible.SGD_RULE,
        )
    passed("SGD.step (grading)", f"3 momenta x 9 steps with gaps in .grad, as the reference (seed {seed})")


def check_adam_step(Adam: type, Parameter: type) -> None:
    """The student's Adam against reference_impl.optim.Adam on the same gradient histories."""
    from reference_impl.optim import Adam as RefAdam

    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.verify_adam_step(Adam, Parameter, seed=seed)
    shapes = [(4, 3), (3,), ()]
    for lr, betas, eps in (
        (1e-3, (0.9, 0.999), 1e-8),
        (
            float(rng.uniform(0.01, 0.2)),
            (float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.9, 0.9999))),
            1e-6,
        ),
    ):
        starts = [rng.standard_normal(s) for s in shapes]
        grads = _gradient_history(rng, shapes, 12, gaps=True)
        got = visible._run_optimizer(
            lambda ps, lr=lr, b=betas, e=eps: Adam(ps, lr=lr, betas=b, eps=e), Parameter, starts, grads
        )
        want = _reference_run(
            lambda ps, lr=lr, b=betas, e=eps: RefAdam(ps, lr=lr, betas=b, eps=e), starts, grads
        )
        visible._compare_steps(
            got, want, f"Adam(lr={lr:.3g}, betas={betas}, eps={eps:g}) vs the reference", {}, seed,
            starts=starts, rule=visible.ADAM_RULE,
        )
    # a parameter that never receives a gradient is left untouched
    starts = [rng.standard_normal(3), rng.standard_normal(2)]
    grads = [[rng.standard_normal(3), None] for _ in range(3)]
    got = visible._run_optimizer(lambda ps: Adam(ps, lr=0.01), Parameter, starts, grads)
    if not np.array_equal(got[-1][1], starts[1]):
        raise CheckFailure("Adam changed a parameter whose .grad was None; skip such parameters.")
    passed("Adam.step (grading)", f"2 settings x 12 steps as the reference, a parameter never given a "
           f".grad left alone (seed {seed})")


def check_train_epoch(train_epoch: Callable[..., object], Tensor: type, Parameter: type) -> None:
    """The visible check's work, then awkward sizes: a batch larger than the data, a batch size of 7."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.verify_train_epoch(train_epoch, Tensor, Parameter, seed=seed)
    sizes = ((48, 16), (37, 64), (30, 7))
    for n, bs in sizes:
        visible.run_train_epoch(train_epoch, Tensor, Parameter, rng, n=n, batch_size=bs, seed=seed + n)
    passed("train_epoch (grading)", f"(examples, batch size) = {sizes} (seed {seed})")


def check_evaluate(evaluate: Callable[..., object], Tensor: type, Parameter: type, GradMode: type) -> None:
    """The visible check's work, then a batch larger than the data, the default batch size, batches of 8."""
    seed = new_seed(None)
    rng = np.random.default_rng(seed)
    visible.verify_evaluate(evaluate, Tensor, Parameter, GradMode, seed=seed)
    sizes = ((50, 50), (33, 8), (20, None), (300, None), (9, 100))
    for n, bs in sizes:
        visible.run_evaluate(evaluate, Tensor, Parameter, GradMode, rng, n=n, batch_size=bs, seed=seed + n)
    passed("evaluate (grading)", f"(examples, batch size) = {sizes}, None meaning the default (seed {seed})")
