"""Hidden checks for lesson 04 (instructor only): every entry against the reference engine.

The expected numbers are computed at check time by `reference_impl.scalar` from the network defined in
`autograder.lesson04`, never typed in. Importing this module (the test cells do, before the visible check,
when grading) hands the visible checks those numbers, so a later stage that follows from the correct
earlier ones passes there too. Each stage is compared on its own, so a wrong stage costs only its
points, and a wrong entry gets a message that names it and its rule, never the correct number (feedback
is read by students who may resubmit).
"""

from __future__ import annotations

from autograder.checks import CheckFailure, close
from autograder.lesson04 import (
    _W,
    BIAS,
    DELTAS,
    LR,
    STEP_X,
    TOL,
    UNITS,
    WEIGHT_NAMES,
    X,
    Y,
    _entries,
    _forward_entries,
    install_reference,
)
from reference_impl.scalar import Value

__all__ = ["reference_answers", "check_forward", "check_deltas", "check_deltas_plus", "check_weight_grads",
           "check_update"]


def reference_answers() -> dict:
    """Forward values and deltas for both examples; weight derivatives and the SGD step for x = -1."""
    answers: dict = {"forward": {}}
    for x, y in zip(X, Y, strict=True):
        w = {name: Value(v) for name, v in _W.items()}  # the private copy
        h1, h2 = w["w10"] * x, w["w20"] * x
        z3 = w["w31"] * h1 + w["w32"] * h2 + BIAS
        z4 = w["w41"] * h1 + w["w42"] * h2 + BIAS
        h3, h4 = z3.relu(), z4.relu()
        yhat = w["w53"] * h3 + w["w54"] * h4
        loss = (yhat - y) ** 2 / 2
        nodes = {"h1": h1, "h2": h2, "z3": z3, "h3": h3, "z4": z4, "h4": h4, "yhat": yhat, "L": loss}
        answers["forward"][x] = {k: v.data for k, v in nodes.items()}
        loss.backward()
        deltas = {"d1": h1.grad, "d2": h2.grad, "d3": z3.grad, "d4": z4.grad, "d5": yhat.grad}
        answers["deltas" if x == STEP_X else "deltas_plus"] = deltas
        if x == STEP_X:
            answers["grads"] = {name: w[name].grad for name in WEIGHT_NAMES}
            answers["updated"] = {name: _W[name] - LR * w[name].grad for name in WEIGHT_NAMES}
    return answers


# Grading: the visible checks may judge a later stage on these correct earlier numbers (see lesson04).
install_reference(reference_answers())

_FORWARD_RULES = {
    "h1": "h1 = w10 * x (linear, bias 0)", "h2": "h2 = w20 * x (linear, bias 0)",
    "z3": "z3 = w31*h1 + w32*h2 + b, with the bias b = -0.5", "h3": "h3 = relu(z3) = max(z3, 0)",
    "z4": "z4 = w41*h1 + w42*h2 + b, with the bias b = -0.5", "h4": "h4 = relu(z4) = max(z4, 0)",
    "yhat": "yhat = w53*h3 + w54*h4 (linear output, bias 0)", "L": "L = (yhat - y)**2 / 2 with y = 0.5",
}


def check_forward(forward: object) -> None:
    ref = reference_answers()["forward"]
    got = _forward_entries(forward)
    errors = [f"forward[{x:g}][{k!r}] = {got[x][k]:g} is wrong: {_FORWARD_RULES[k]}."
              for x in X for k in UNITS if not close(got[x][k], ref[x][k], TOL)]
    if errors:
        raise CheckFailure("\n".join(errors))


def check_deltas(deltas: object, forward: object = None, x: float = STEP_X, name: str = "deltas") -> None:
    ref = reference_answers()
    got = _entries(deltas, DELTAS, name)
    f = ref["forward"][x]
    errors = []
    for k in DELTAS:
        want = ref[name][k]
        if close(got[k], want, TOL):
            continue
        j = k[1]
        if k == "d5":
            why = ("the sign is flipped: dL/dyhat = yhat - y." if close(got[k], -want, TOL)
                   else "d5 = dL/dyhat = yhat - y.")
        elif j in "34" and f[f"z{j}"] <= 0:
            why = (f"unit {j}'s ReLU is inactive for x = {x:g} (z{j} < 0), so it passes no gradient: "
                   f"relu'(z{j}) = 0.")
        elif j in "34":
            why = f"unit {j}'s ReLU is active, so d{j} = w5{j} * d5."
        else:
            why = f"d{j} = w3{j} * d3 + w4{j} * d4, with d3 and d4 the deltas of the units unit {j} feeds."
        errors.append(f"{name}[{k!r}] = {got[k]:g} is wrong: {why}")
    if errors:
        raise CheckFailure("\n".join(errors))


def check_deltas_plus(deltas_plus: object, forward: object = None) -> None:
    check_deltas(deltas_plus, forward, X[1], "deltas_plus")


def _compare(answer: object, name: str, key: str, hint: str) -> None:
    want = reference_answers()[key]
    got = _entries(answer, WEIGHT_NAMES, name)
    errors = [f"{name}[{w!r}] = {got[w]:g} is wrong: {hint}"
              for w in WEIGHT_NAMES if not close(got[w], want[w], TOL)]
    if errors:
        raise CheckFailure("\n".join(errors))


def check_weight_grads(grads: object, deltas: object = None, forward: object = None) -> None:
    _compare(grads, "grads", "grads", "dL/dw_ji = d_j * h_i, with h_0 = x = -1.")


def check_update(updated: object, grads: object = None, deltas: object = None,
                 forward: object = None) -> None:
    _compare(updated, "updated", "updated", "w_new = w - 0.1 * dL/dw (against the gradient).")
