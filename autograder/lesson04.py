"""Visible checks for lesson 04 (the hand-worked network), and the network itself.

The network is part of the exercise, so it is defined once, here, and the notebook imports it:
x -> two linear units (bias 0) -> two ReLU units (bias -0.5) -> one linear output (bias 0),
L = (yhat - y)**2 / 2. Units are numbered 1..5 (unit 0 is the input x); ``w_ji`` is the weight on the
edge from unit i to unit j, ``z_j`` a unit's input sum, ``h_j`` its output and ``delta_j = dL/dz_j``.

This module is shipped to students, so it computes no answer: nothing here runs the network forward or
backward from the weights (that is the exercise). The visible checks test completeness, types and the
rules that tie a stage's own entries together (a ReLU output from its z, the loss from yhat, each delta
from the later ones, the SGD step from the student's own derivatives), and they never judge a stage on an
earlier one, so one wrong stage costs only its own points. The hidden checks compare every number with the
reference engine.
"""

from __future__ import annotations

import importlib
import math

from autograder.checks import CheckFailure

__all__ = [
    "WEIGHTS", "BIAS", "X", "Y", "LR", "UNITS", "DELTAS", "WEIGHT_NAMES",
    "check_forward", "check_deltas", "check_weight_grads", "check_update", "draw_network",
]

WEIGHTS: dict[str, float] = {
    "w10": 1.0, "w20": -2.0,  # input -> linear units 1, 2
    "w31": 0.5, "w32": 1.0,  # units 1, 2 -> ReLU unit 3
    "w41": 2.0, "w42": 0.5,  # units 1, 2 -> ReLU unit 4
    "w53": 2.0, "w54": -1.0,  # ReLU units 3, 4 -> output unit 5
}
BIAS = -0.5  # of the two ReLU units; every other bias is 0 (and no bias is trained here)
X = (-1.0, 1.0)
Y = (0.5, 0.5)
LR = 0.1
STEP_X, STEP_Y = -1.0, 0.5  # the example the deltas, derivatives and SGD step are worked out for

UNITS = ("h1", "h2", "z3", "h3", "z4", "h4", "yhat", "L")
DELTAS = ("d1", "d2", "d3", "d4", "d5")
WEIGHT_NAMES = tuple(WEIGHTS)
TOL = 1e-4  # hand-worked numbers here are exact at two decimals


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= TOL * max(1.0, abs(want))


def _entries(answer: object, keys: tuple[str, ...], name: str) -> dict[str, float]:
    """The student's numbers for `keys`, or a message naming the first missing or malformed entry."""
    if not isinstance(answer, dict):
        raise CheckFailure(f"{name} should be a dict with keys {list(keys)}, got {type(answer).__name__}.")
    missing = [k for k in keys if k not in answer]
    if missing:
        raise CheckFailure(f"{name} is missing the key(s) {missing}; keep every key of the template.")
    values = {}
    for k in keys:
        v = answer[k]
        if v is None:
            raise CheckFailure(f"{name}[{k!r}] is still None: replace None with the number you worked out.")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise CheckFailure(f"{name}[{k!r}] should be a plain number like 0.5 or -1.5, got "
                               f"{type(v).__name__}: {v!r}.")
        if not math.isfinite(float(v)):
            raise CheckFailure(f"{name}[{k!r}] is {v}, not a finite number.")
        values[k] = float(v)
    return values


def _forward_entries(forward: object) -> dict[float, dict[str, float]]:
    if not isinstance(forward, dict):
        raise CheckFailure("forward should be a dict {-1: {...}, 1: {...}}, got "
                           f"{type(forward).__name__}.")
    out = {}
    for x in X:
        if x not in forward:
            raise CheckFailure(f"forward has no entry for x = {x:g}; keep the keys -1 and 1 of the template.")
        out[x] = _entries(forward[x], UNITS, f"forward[{x:g}]")
    return out


def _reference_grads() -> dict[str, float] | None:
    """dL/dw from the hidden reference when it is importable (on the grader's machine), else None.

    Imported at call time: the hidden module imports this one. Students' kits lack it, because it would
    hand out the answers."""
    try:
        hidden = importlib.import_module("autograder.hidden.lesson04")
    except ImportError:
        return None
    return hidden.reference_answers()["grads"]


def _fail(errors: list[str], note: str) -> None:
    if errors:
        raise CheckFailure("\n".join(errors) + note)


_VISIBLE_ONLY = ("\n  (These checks test completeness and the rules that tie your entries together; the "
                 "hidden tests compare every number with the correct one.)")


def check_forward(forward: object) -> None:
    """Every activation, output and loss for both examples, complete; each ReLU output and the loss follow
    from your own z and yhat. (Whether z and yhat themselves are right is for the hidden tests.)"""
    values = _forward_entries(forward)
    errors = []
    for x, y in zip(X, Y, strict=True):
        f = values[x]
        for j in ("3", "4"):
            if not _close(f[f"h{j}"], max(f[f"z{j}"], 0.0)):
                errors.append(f"forward[{x:g}]['h{j}'] = {f[f'h{j}']:g} does not follow from your "
                              f"z{j} = {f[f'z{j}']:g}: h{j} = relu(z{j}) = max(z{j}, 0) (unit {j} is a "
                              "ReLU).")
        if f["L"] < 0 or not _close(f["L"], (f["yhat"] - y) ** 2 / 2):
            errors.append(f"forward[{x:g}]['L'] = {f['L']:g} does not follow from your yhat = {f['yhat']:g}: "
                          f"L = (yhat - y)**2 / 2 with y = {y:g}.")
    _fail(errors, _VISIBLE_ONLY)


def check_deltas(deltas: object, forward: object = None) -> None:
    """The deltas for x = -1: complete, and tied together by the backward rules (each judged on your own
    later deltas, so one slip is reported once, where it happened). `forward` is not used here: your deltas
    are judged on their own, so a slip in the forward pass costs only the forward points."""
    d = _entries(deltas, DELTAS, "deltas")
    w = WEIGHTS
    errors = []
    for j in ("3", "4"):
        if not (_close(d[f"d{j}"], 0.0) or _close(d[f"d{j}"], w[f"w5{j}"] * d["d5"])):
            errors.append(f"deltas['d{j}'] = {d[f'd{j}']:g} breaks the rule for a ReLU unit: "
                          f"d{j} = relu'(z{j}) * w5{j} * d5, which is w5{j} * d5 with your d5 if the unit is "
                          f"active (z{j} > 0) and 0 if it is inactive (z{j} <= 0).")
    for j in ("1", "2"):
        if not _close(d[f"d{j}"], w[f"w3{j}"] * d["d3"] + w[f"w4{j}"] * d["d4"]):
            errors.append(f"deltas['d{j}'] = {d[f'd{j}']:g} does not follow from your d3 and d4: unit {j} is "
                          f"linear and feeds units 3 and 4, so d{j} = w3{j} * d3 + w4{j} * d4.")
    _fail(errors, _VISIBLE_ONLY)


def check_weight_grads(grads: object, deltas: object = None, forward: object = None) -> None:
    """dL/dw for every weight (x = -1): complete and well formed. Each is d_j * h_i with the delta of the
    unit the weight feeds and the value it carries; the finite-difference table the notebook prints after
    this stage compares your numbers with the loss itself, and the hidden tests check every one."""
    _entries(grads, WEIGHT_NAMES, "grads")


def check_update(updated: object, grads: object = None, deltas: object = None,
                 forward: object = None) -> None:
    """Weights after one SGD step (lr = 0.1): w - 0.1 * dL/dw with your own derivatives.

    A step taken with the correct derivatives also passes where the grader has them, so a slip in grads
    costs only the grads points."""
    new = _entries(updated, WEIGHT_NAMES, "updated")
    try:
        own = _entries(grads, WEIGHT_NAMES, "grads")
    except CheckFailure:
        return  # grads are not filled in yet: nothing to be consistent with
    reference = _reference_grads()
    errors = []
    for name in WEIGHT_NAMES:
        steps = [WEIGHTS[name] - LR * own[name]]
        if reference is not None:
            steps.append(WEIGHTS[name] - LR * reference[name])
        if any(_close(new[name], s) for s in steps):
            continue
        hint = "the step goes AGAINST the gradient: w - lr * dL/dw." if _close(
            new[name], WEIGHTS[name] + LR * own[name]) else "w_new = w - lr * dL/dw with lr = 0.1."
        errors.append(f"updated[{name!r}] = {new[name]:g} is not {WEIGHTS[name]:g} - 0.1 * ({own[name]:g}), "
                      f"one step with your grads[{name!r}]: {hint}")
    _fail(errors, "" if reference is not None else
          "\n  (This check uses your own grads: if they are wrong, fix them first.)")


def draw_network(ax=None, title: str | None = "The network of lesson 4"):
    """The network with its weights on the edges and its biases on the units (matplotlib only)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 4.2))
    pos = {"0": (0, 0), "1": (1.6, 1), "2": (1.6, -1), "3": (3.2, 1), "4": (3.2, -1), "5": (4.8, 0)}
    text = {"0": "x", "1": "1\nlinear", "2": "2\nlinear", "3": "3\nReLU\nb = -0.5", "4": "4\nReLU\nb = -0.5",
            "5": "5 = ŷ\nlinear"}
    for name, value in WEIGHTS.items():
        (x0, y0), (x1, y1) = pos[name[2]], pos[name[1]]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "->", "color": "0.4", "shrinkA": 24, "shrinkB": 26})
        # The two crossing edges are labelled near their ends, beside the line, away from the crossing.
        t, dx, dy = {"w41": (0.72, 0.36, -0.05), "w32": (0.72, 0.36, -0.05)}.get(name, (0.5, 0.0, 0.13))
        xm, ym = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        ax.text(xm + dx, ym + dy, f"{name} = {value:g}", ha="center", fontsize=9, color="C3",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})
    for k, (x, y) in pos.items():
        color = "#dbe9f6" if k == "0" else ("#fde8c8" if k in "34" else "#e2f0d9")
        ax.text(x, y, text[k], ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "circle,pad=0.5", "fc": color, "ec": "0.3"})
    ax.text(5.55, 0, "L = (ŷ - y)² / 2", va="center", fontsize=10)
    ax.set_xlim(-0.5, 6.8)
    ax.set_ylim(-1.7, 1.7)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
