"""Visible checks for lesson 04 (the hand-worked network), and the network itself.

The network is part of the exercise, so it is defined once, here, and the notebook imports it:
x -> two linear units (bias 0) -> two ReLU units (bias -0.5) -> one linear output (bias 0),
L = (yhat - y)**2 / 2. Units are numbered 1..5 (unit 0 is the input x); ``w_ji`` is the weight on the
edge from unit i to unit j, ``z_j`` a unit's input sum, ``h_j`` its output and ``delta_j = dL/dz_j``.

This module is shipped to students, so it never states the number a cell should hold. It checks each
entry against the rule that produces it, applied to the student's OWN numbers: h1 from x and the given
weights, z3 from the student's h1 and h2, yhat from their h3 and h4, d5 from their yhat, each delta from
their z and later deltas, each dL/dw from their delta and value, the step from their derivatives. A slip is
reported once, where it happened, with its cause and the student's numbers.

A later stage is judged on the earlier stages only when those pass their own check (an all-zero delta
table must not make all-zero derivatives look consistent). When grading, the hidden reference is
importable and a later stage also passes when it follows from the CORRECT earlier numbers, so a slip in one
stage costs only that stage's points; the hidden checks compare every number with the reference engine.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

from autograder.checks import CheckFailure, NotDone, passed

__all__ = [
    "WEIGHTS", "BIAS", "X", "Y", "LR", "UNITS", "DELTAS", "WEIGHT_NAMES", "STAGES",
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
STAGES = {"forward": "exercise 2 (forward)", "deltas": "exercise 3 (deltas)",
          "grads": "exercise 4 (grads)", "updated": "exercise 5 (updated)"}
TOL = 1e-4  # hand-worked numbers here are exact at two decimals


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= TOL * max(1.0, abs(want))


def _entries(answer: object, keys: tuple[str, ...], name: str) -> dict[str, float]:
    """The student's numbers for `keys`, or a message naming the first missing or malformed entry.

    A template that is still entirely None is an exercise not started: it gets the course's one
    blank-exercise message."""
    if not isinstance(answer, dict):
        raise CheckFailure(f"{name} should be a dict with keys {list(keys)}, got {type(answer).__name__}.")
    missing = [k for k in keys if k not in answer]
    if missing:
        raise CheckFailure(f"{name} is missing the key(s) {missing}; keep every key of the template.")
    if all(answer[k] is None for k in keys):
        raise NotDone(STAGES.get(name.split("[")[0], name))
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
    for x in X:
        if x not in forward:
            raise CheckFailure(f"forward has no entry for x = {x:g}; keep the keys -1 and 1 of the template.")
    if all(isinstance(forward[x], dict) and all(forward[x].get(k) is None for k in UNITS) for x in X):
        raise NotDone(STAGES["forward"])
    return {x: _entries(forward[x], UNITS, f"forward[{x:g}]") for x in X}


def _reference() -> dict | None:
    """The hidden reference answers when importable (on the grader's machine), else None.

    Imported at call time: the hidden module imports this one. Students' kits lack it, because it would
    hand out the answers."""
    try:
        hidden = importlib.import_module("autograder.hidden.lesson04")
    except ImportError:
        return None
    return hidden.reference_answers()


def _fail(errors: list[str]) -> None:
    if errors:
        raise CheckFailure("\n".join(errors))


def _h(f: dict[str, float], x: float = STEP_X) -> dict[str, float]:
    """The value each weight carries, by the number of its source unit (h_0 = x)."""
    return {"0": x, "1": f["h1"], "2": f["h2"], "3": f["h3"], "4": f["h4"]}


# --------------------------------------------------------------------------------------------------
# The rules, each applied to the student's own earlier numbers (a list of messages, empty when all hold)
# --------------------------------------------------------------------------------------------------


def forward_errors(f: dict[str, float], x: float, y: float) -> list[str]:
    """Each forward entry against its rule applied to the student's own earlier entries for this x."""
    w, b = WEIGHTS, BIAS
    at = f"forward[{x:g}]"
    errors = []
    for j in ("1", "2"):
        h = f[f"h{j}"]
        if _close(h, w[f"w{j}0"] * x):
            continue
        other = "2" if j == "1" else "1"
        why = (f"you used w{other}0, the weight into unit {other}" if _close(h, w[f"w{other}0"] * x)
               else f"unit {j} is linear with bias 0")
        errors.append(f"{at}['h{j}'] = {h:g} is not w{j}0 * x with w{j}0 = {w[f'w{j}0']:g} and x = {x:g}: "
                      f"{why}.")
    for j in ("3", "4"):
        z, h1, h2 = f[f"z{j}"], f["h1"], f["h2"]
        w1, w2 = w[f"w{j}1"], w[f"w{j}2"]
        if not _close(z, w1 * h1 + w2 * h2 + b):
            rule = (f"z{j} = w{j}1*h1 + w{j}2*h2 + b with your h1 = {h1:g}, h2 = {h2:g}, w{j}1 = {w1:g}, "
                    f"w{j}2 = {w2:g} and b = {b:g}")
            errors.append(f"{at}['z{j}'] = {z:g} does not follow from {rule}: {_z_cause(z, j, h1, h2)}")
        h = f[f"h{j}"]
        if not _close(h, max(z, 0.0)):
            cause = (f"you copied z{j}, but unit {j} is a ReLU" if _close(h, z) and z < 0
                     else f"unit {j} is a ReLU")
            errors.append(f"{at}['h{j}'] = {h:g} does not follow from your z{j} = {z:g}: {cause}, "
                          f"h{j} = relu(z{j}) = max(z{j}, 0).")
    yhat, h3, h4 = f["yhat"], f["h3"], f["h4"]
    if not _close(yhat, w["w53"] * h3 + w["w54"] * h4):
        from_z = _close(yhat, w["w53"] * f["z3"] + w["w54"] * f["z4"])
        cause = ("you used z3 and z4; the output reads the ReLU OUTPUTS h3 and h4" if from_z
                 else "the output unit is linear, bias 0")
        errors.append(f"{at}['yhat'] = {yhat:g} does not follow from your h3 = {h3:g} and h4 = {h4:g}: "
                      f"yhat = w53*h3 + w54*h4 with w53 = {w['w53']:g}, w54 = {w['w54']:g} ({cause}).")
    loss = f["L"]
    if not _close(loss, (yhat - y) ** 2 / 2):
        cause = ("the 1/2 is missing" if _close(loss, (yhat - y) ** 2)
                 else "a squared error is never negative" if loss < 0 else "square the error, then halve it")
        errors.append(f"{at}['L'] = {loss:g} does not follow from your yhat = {yhat:g}: "
                      f"L = (yhat - y)**2 / 2 with y = {y:g} ({cause}).")
    return errors


def _z_cause(z: float, j: str, h1: float, h2: float) -> str:
    """The usual reason a z is off: the bias, or weights taken from the wrong edges."""
    w, b = WEIGHTS, BIAS
    w1, w2 = w[f"w{j}1"], w[f"w{j}2"]
    if _close(z, w1 * h1 + w2 * h2):
        return f"the bias b = {b:g} is missing."
    into = ("w31", "w32", "w41", "w42")
    right = (f"w{j}1", f"w{j}2")
    pairs = sorted(((a, c) for a in into for c in into if (a, c) != right),
                   key=lambda pair: (pair[0] != right[0]) + (pair[1] != right[1]))  # one slip before two
    for a, c in pairs:
        if _close(z, w[a] * h1 + w[c] * h2 + b):
            return (f"you used {a} and {c}. w_ji is the weight on the edge FROM unit i INTO unit j, so "
                        f"z{j} uses w{j}1 (from unit 1) and w{j}2 (from unit 2).")
    if _close(z, w1 * h1 + w2 * h2 - b):
        return f"the bias is b = {b:g}: add it, do not subtract it."
    return "recompute it from your h1 and h2."


def delta_errors(d: dict[str, float], f: dict[str, float], own: bool, y: float = STEP_Y) -> list[str]:
    """Each delta against its backward rule, applied to forward values f and the student's later deltas.

    ``own`` says whether f is the student's forward pass (its numbers may be quoted) or the correct one."""
    w = WEIGHTS

    def val(name: str) -> str:
        return f" = {f[name]:g}" if own else ""

    whose = "your" if own else "the correct"
    errors = []
    if not _close(d["d5"], f["yhat"] - y):
        cause = ("the sign is flipped: d5 = dL/dyhat = yhat - y, not y - yhat"
                 if _close(d["d5"], y - f["yhat"]) else "d5 = dL/dyhat = yhat - y for L = (yhat - y)**2 / 2")
        errors.append(f"deltas['d5'] = {d['d5']:g} does not follow from {whose} yhat{val('yhat')} and "
                      f"y = {y:g}: {cause}.")
    for j in ("3", "4"):
        active = f[f"z{j}"] > 0
        want = w[f"w5{j}"] * d["d5"] if active else 0.0
        if _close(d[f"d{j}"], want):
            continue
        if not active:
            cause = (f"unit {j}'s ReLU is inactive ({whose} z{j}{val(f'z{j}')} <= 0), so relu'(z{j}) = 0 and "
                     f"no gradient passes back through it")
        else:
            cause = (f"unit {j}'s ReLU is active ({whose} z{j}{val(f'z{j}')} > 0), so relu'(z{j}) = 1 and "
                     f"d{j} = w5{j} * d5 with w5{j} = {w[f'w5{j}']:g} and your d5 = {d['d5']:g}")
        errors.append(f"deltas['d{j}'] = {d[f'd{j}']:g} breaks d{j} = relu'(z{j}) * w5{j} * d5: {cause}.")
    for j in ("1", "2"):
        if _close(d[f"d{j}"], w[f"w3{j}"] * d["d3"] + w[f"w4{j}"] * d["d4"]):
            continue
        errors.append(f"deltas['d{j}'] = {d[f'd{j}']:g} does not follow from your d3 = {d['d3']:g} and "
                      f"d4 = {d['d4']:g}: unit {j} is linear and feeds units 3 and 4, so d{j} = w3{j} * d3 + "
                      f"w4{j} * d4 with w3{j} = {w[f'w3{j}']:g} and w4{j} = {w[f'w4{j}']:g} (the weights "
                      f"on the edges OUT of unit {j}).")
    return errors


def grad_errors(g: dict[str, float], d: dict[str, float], f: dict[str, float], own: bool) -> list[str]:
    """Each dL/dw_ji against d_j * h_i with deltas d and forward values f (h_0 = x)."""
    h = _h(f)
    names = {"0": "x", "1": "h1", "2": "h2", "3": "h3", "4": "h4"}
    errors = []
    for name in WEIGHT_NAMES:
        j, i = name[1], name[2]
        dj, hi = d[f"d{j}"], h[i]
        if _close(g[name], dj * hi):
            continue
        numbers = f" = {dj:g}" if own else ""
        carried = f" = {hi:g}" if own else ""
        others = [k for k in (*names, "z3", "z4") if k != i and (h[k] if k in h else f[k]) != 0
                  and _close(g[name], dj * (h[k] if k in h else f[k]))]
        if _close(g[name], dj):
            cause = f"the factor {names[i]} is missing"
        elif others and dj != 0:
            used = names.get(others[0], others[0])
            cause = (f"it is d{j} times {used}, but {name} carries {names[i]} (from unit {i} into unit {j}); "
                     "a weight's derivative uses the value on its own edge")
        else:
            cause = f"use the delta of the unit the weight feeds (unit {j}) times the value it carries"
        errors.append(f"grads[{name!r}] = {g[name]:g} is not d{j} * {names[i]} with "
                      f"{'your' if own else 'the correct'} d{j}{numbers} and {names[i]}{carried}: {cause}.")
    return errors


def _judge(stage: str, errors_from: Callable[[object, bool], list[str]], own_base: object,
           own_problem: str, reference_base: object) -> None:
    """Pass when the stage follows from the student's own valid earlier stages or, where the grader has
    them, from the correct ones; otherwise report the rules it breaks (on the student's own numbers when
    those are usable), or say which exercise to finish first."""
    own_errors = errors_from(own_base, True) if own_base is not None else None
    if own_errors == []:
        return
    reference_errors = errors_from(reference_base, False) if reference_base is not None else None
    if reference_errors == []:
        return
    _fail(own_errors or reference_errors or [])
    raise CheckFailure(f"{stage} is judged on your earlier answers, and {own_problem}")


def _earlier(stage: Callable[[], object], exercise: str) -> tuple[object, str]:
    """An earlier stage's numbers when they pass its own check, else None and what to tell the student."""
    try:
        return stage(), ""
    except CheckFailure as exc:
        state = "is not written yet" if isinstance(exc, NotDone) else "does not pass its own check yet"
        return None, f"{exercise} {state}: complete {exercise} first, then run this cell again."


def _forward(forward: object) -> dict[float, dict[str, float]]:
    values = _forward_entries(forward)
    _fail([e for x, y in zip(X, Y, strict=True) for e in forward_errors(values[x], x, y)])
    return values


def _forward_for_step(forward: object) -> dict[str, float]:
    """The forward values of the example the later stages use (x = -1), when they pass their rules: a slip
    in the other example does not hold up the deltas."""
    f = _forward_entries(forward)[STEP_X]
    _fail(forward_errors(f, STEP_X, STEP_Y))
    return f


def _deltas(deltas: object, forward: object) -> dict[str, float]:
    d = _entries(deltas, DELTAS, "deltas")
    own, problem = _earlier(lambda: _forward_for_step(forward), STAGES["forward"])
    ref = _reference()
    _judge("deltas", lambda f, mine: delta_errors(d, f, mine), own, problem,
           ref["forward"][STEP_X] if ref else None)
    return d


def _grads(grads: object, deltas: object, forward: object) -> dict[str, float]:
    g = _entries(grads, WEIGHT_NAMES, "grads")
    own, problem = _earlier(lambda: _forward_for_step(forward), STAGES["forward"])
    if own is not None:
        own_deltas, problem = _earlier(lambda: _deltas(deltas, forward), STAGES["deltas"])
        own = (own, own_deltas) if own_deltas is not None else None
    ref = _reference()
    _judge("grads", lambda base, mine: grad_errors(g, base[1], base[0], mine), own, problem,
           (ref["forward"][STEP_X], ref["deltas"]) if ref else None)
    return g


def _step_errors(new: dict[str, float], g: dict[str, float], mine: bool) -> list[str]:
    out = []
    for name in WEIGHT_NAMES:
        if _close(new[name], WEIGHTS[name] - LR * g[name]):
            continue
        cause = ("the step goes AGAINST the gradient: w - lr * dL/dw" if _close(
            new[name], WEIGHTS[name] + LR * g[name]) else "w_new = w - lr * dL/dw with lr = 0.1")
        numbers = f" = {g[name]:g}" if mine else ""
        out.append(f"updated[{name!r}] = {new[name]:g} is not one step from {name} = {WEIGHTS[name]:g} "
                   f"with {'your' if mine else 'the correct'} grads[{name!r}]{numbers}: {cause}.")
    return out


# --------------------------------------------------------------------------------------------------
# The checks the notebook's test cells call
# --------------------------------------------------------------------------------------------------


def check_forward(forward: object) -> None:
    """Every activation, output and loss for both examples, each from your own earlier entries."""
    _forward(forward)
    passed("forward", f"all {2 * len(UNITS)} entries follow from the weights and your own earlier entries")


def check_deltas(deltas: object, forward: object = None) -> None:
    """The deltas for x = -1: d5 from your yhat, each other delta from your z's and later deltas."""
    _deltas(deltas, forward)
    passed("deltas", "all 5 follow from the backward rules, the forward values and your later deltas")


def check_weight_grads(grads: object, deltas: object = None, forward: object = None) -> None:
    """dL/dw for every weight (x = -1): each d_j * h_i with your own delta and forward value."""
    _grads(grads, deltas, forward)
    passed("grads", f"all {len(WEIGHT_NAMES)} are the delta of the unit fed times the value carried")


def check_update(updated: object, grads: object = None, deltas: object = None,
                 forward: object = None) -> None:
    """Weights after one SGD step (lr = 0.1): w - 0.1 * dL/dw with your own derivatives."""
    new = _entries(updated, WEIGHT_NAMES, "updated")
    own, problem = _earlier(lambda: _grads(grads, deltas, forward), STAGES["grads"])
    ref = _reference()
    _judge("updated", lambda g, mine: _step_errors(new, g, mine), own, problem, ref["grads"] if ref else None)
    passed("updated", f"all {len(WEIGHT_NAMES)} weights are one SGD step (lr = {LR:g}) against the gradient")


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
