"""Visible checks for lesson 04 (the hand-worked network), and the network itself.

The network is part of the exercise, so it is defined once, here, and the notebook imports it:
x -> two linear units (bias 0) -> two ReLU units (bias -0.5) -> one linear output (bias 0),
L = (yhat - y)**2 / 2. Units are numbered 1..5 (unit 0 is the input x); ``w_ji`` is the weight on the
edge from unit i to unit j, ``z_j`` a unit's input sum, ``h_j`` its output and ``delta_j = dL/dz_j``.

The visible checks test completeness and internal consistency, stage by stage. A stage is compared with
what follows from the student's OWN earlier stages, taken from the latest earlier stage that passes its
own check; so one wrong stage costs only its own points, and an error carried forward consistently is not
punished twice here (the hidden checks compare every stage with the reference engine).
"""

from __future__ import annotations

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


def _relu(z: float) -> float:
    return max(z, 0.0)


def _consistency_errors(f: dict[str, float], x: float, y: float) -> list[str]:
    """Each forward value against the rule that makes it from the student's own earlier values."""
    w = WEIGHTS
    rules = [
        ("h1", w["w10"] * x, f"h1 = w10 * x = {w['w10']:g} * {x:g} (unit 1 is linear, bias 0)"),
        ("h2", w["w20"] * x, f"h2 = w20 * x = {w['w20']:g} * {x:g} (unit 2 is linear, bias 0)"),
        ("z3", w["w31"] * f["h1"] + w["w32"] * f["h2"] + BIAS,
         f"z3 = w31*h1 + w32*h2 + b = {w['w31']:g}*h1 + {w['w32']:g}*h2 - 0.5 (don't forget the bias)"),
        ("h3", _relu(f["z3"]), "h3 = relu(z3) = max(z3, 0)"),
        ("z4", w["w41"] * f["h1"] + w["w42"] * f["h2"] + BIAS,
         f"z4 = w41*h1 + w42*h2 + b = {w['w41']:g}*h1 + {w['w42']:g}*h2 - 0.5 (don't forget the bias)"),
        ("h4", _relu(f["z4"]), "h4 = relu(z4) = max(z4, 0)"),
        ("yhat", w["w53"] * f["h3"] + w["w54"] * f["h4"], "yhat = w53*h3 + w54*h4 (the output is linear)"),
        ("L", (f["yhat"] - y) ** 2 / 2, f"L = (yhat - y)**2 / 2 with y = {y:g}"),
    ]
    return [f"forward[{x:g}][{k!r}] = {f[k]:g} does not follow from your other entries: {rule}, which "
            f"gives {want:g}." for k, want, rule in rules if not _close(f[k], want)]


def check_forward(forward: object) -> None:
    """Every activation, output and loss for both examples, each consistent with the ones before it."""
    values = _forward_entries(forward)
    for x, y in zip(X, Y, strict=True):
        errors = _consistency_errors(values[x], x, y)
        if errors:
            raise CheckFailure("\n".join(errors))


def _forward_ok(forward: object) -> bool:
    try:
        check_forward(forward)
    except CheckFailure:
        return False
    return True


def deltas_from(f: dict[str, float], y: float = STEP_Y) -> dict[str, float]:
    """The deltas that follow from forward values f (the chain rule, output to input)."""
    w = WEIGHTS
    d5 = f["yhat"] - y
    d3 = (1.0 if f["z3"] > 0 else 0.0) * w["w53"] * d5
    d4 = (1.0 if f["z4"] > 0 else 0.0) * w["w54"] * d5
    return {"d1": w["w31"] * d3 + w["w41"] * d4, "d2": w["w32"] * d3 + w["w42"] * d4,
            "d3": d3, "d4": d4, "d5": d5}


def grads_from(f: dict[str, float], d: dict[str, float], x: float = STEP_X) -> dict[str, float]:
    """dL/dw_ji = delta_j * h_i (h_0 = x): the delta of the unit the weight feeds times what it carries."""
    h = {"0": x, "1": f["h1"], "2": f["h2"], "3": f["h3"], "4": f["h4"]}
    return {name: d[f"d{name[1]}"] * h[name[2]] for name in WEIGHT_NAMES}


def _delta_hint(k: str, f: dict[str, float] | None, got: float, want: float) -> str:
    if k == "d5":
        if _close(got, -want):
            return "the sign is flipped: dL/dyhat = yhat - y (differentiate (yhat - y)**2 / 2)."
        return "d5 = dL/dyhat = yhat - y (the output unit is linear)."
    if k in ("d3", "d4") and f is not None:
        j = k[1]
        if f[f"z{j}"] <= 0:
            return (f"unit {j}'s ReLU is inactive for x = -1 (z{j} = {f[f'z{j}']:g} <= 0): relu'(z{j}) = 0, "
                    f"so it passes no gradient and d{j} = 0.")
        return f"unit {j}'s ReLU is active (z{j} > 0), so d{j} = w5{j} * d5."
    j = k[1]
    return f"unit {j} is linear: d{j} = w3{j} * d3 + w4{j} * d4 (sum over the units it feeds)."


def check_deltas(deltas: object, forward: object) -> None:
    """The deltas for x = -1: complete, and consistent with your forward values (when those check out)."""
    d = _entries(deltas, DELTAS, "deltas")
    w = WEIGHTS
    errors = []
    if _forward_ok(forward):
        f = _forward_entries(forward)[STEP_X]
        want = deltas_from(f)
        # Each delta is judged on your own later deltas (d3, d4 on your d5; d1, d2 on your d3, d4), so
        # that one slip is reported once, where it happened.
        for j in ("3", "4"):
            want["d" + j] = (1.0 if f["z" + j] > 0 else 0.0) * w["w5" + j] * d["d5"]
        want["d1"] = w["w31"] * d["d3"] + w["w41"] * d["d4"]
        want["d2"] = w["w32"] * d["d3"] + w["w42"] * d["d4"]
        for k in ("d5", "d3", "d4", "d1", "d2"):
            if not _close(d[k], want[k]):
                errors.append(f"deltas[{k!r}] = {d[k]:g}, expected {want[k] + 0.0:g} from your other "
                              f"entries: {_delta_hint(k, f, d[k], want[k])}")
    else:  # only what holds whatever the forward values are
        for k, j in (("d3", "3"), ("d4", "4")):
            if not (_close(d[k], 0.0) or _close(d[k], w[f"w5{j}"] * d["d5"])):
                errors.append(f"deltas[{k!r}] = {d[k]:g} must be either w5{j} * d5 (active ReLU) or 0 "
                              "(inactive ReLU).")
        for k, j in (("d1", "1"), ("d2", "2")):
            want = w[f"w3{j}"] * d["d3"] + w[f"w4{j}"] * d["d4"]
            if not _close(d[k], want):
                errors.append(f"deltas[{k!r}] = {d[k]:g}, but {_delta_hint(k, None, d[k], want)} gives "
                              f"{want:g}.")
    if errors:
        raise CheckFailure("\n".join(errors))


def _deltas_ok(deltas: object, forward: object) -> bool:
    try:
        check_deltas(deltas, forward)
    except CheckFailure:
        return False
    return _forward_ok(forward)


def _reliable_deltas(deltas: object, forward: object) -> dict[str, float]:
    """Your deltas if they check out, else the ones your (checked) forward values imply."""
    if _deltas_ok(deltas, forward):
        return _entries(deltas, DELTAS, "deltas")
    return deltas_from(_forward_entries(forward)[STEP_X])


def check_weight_grads(grads: object, deltas: object, forward: object) -> None:
    """dL/dw for every weight (x = -1): complete, and delta_j * h_i with your own deltas and activations.

    Only earlier stages that pass their own checks are used: until your forward values check out there is
    nothing reliable to compare with, and then only completeness is checked here.
    """
    g = _entries(grads, WEIGHT_NAMES, "grads")
    if not _forward_ok(forward):
        return
    f = _forward_entries(forward)[STEP_X]
    d = _reliable_deltas(deltas, forward)
    want = grads_from(f, d)
    errors = []
    for name in WEIGHT_NAMES:
        if not _close(g[name], want[name]):
            j, i = name[1], name[2]
            src, carried = ("x", STEP_X) if i == "0" else (f"h{i}", f[f"h{i}"])
            errors.append(f"grads[{name!r}] = {g[name]:g}, expected d{j} * {src} = {d['d' + j]:g} * "
                          f"{carried:g} = {want[name]:g}: a weight's derivative is the delta of the unit "
                          f"it feeds (unit {j}) times the value it carries ({src}).")
    if errors:
        raise CheckFailure("\n".join(errors))


def _grads_ok(grads: object, deltas: object, forward: object) -> bool:
    try:
        check_weight_grads(grads, deltas, forward)
    except CheckFailure:
        return False
    return _forward_ok(forward) and _deltas_ok(deltas, forward)


def check_update(updated: object, grads: object, deltas: object, forward: object) -> None:
    """Weights after one SGD step (lr = 0.1), consistent with your own derivatives."""
    new = _entries(updated, WEIGHT_NAMES, "updated")
    if _grads_ok(grads, deltas, forward):
        g = _entries(grads, WEIGHT_NAMES, "grads")
    elif _forward_ok(forward):
        g = grads_from(_forward_entries(forward)[STEP_X], _reliable_deltas(deltas, forward))
    else:  # your forward values do not check out: be consistent with your own derivatives
        try:
            g = _entries(grads, WEIGHT_NAMES, "grads")
        except CheckFailure:
            return
    errors = []
    for name in WEIGHT_NAMES:
        want = WEIGHTS[name] - LR * g[name]
        if not _close(new[name], want):
            hint = "the step goes AGAINST the gradient: w - lr * dL/dw." if _close(
                new[name], WEIGHTS[name] + LR * g[name]) else "w_new = w - lr * dL/dw with lr = 0.1."
            errors.append(f"updated[{name!r}] = {new[name]:g}, expected {WEIGHTS[name]:g} - 0.1 * "
                          f"({g[name]:g}) = {want:g}: {hint}")
    if errors:
        raise CheckFailure("\n".join(errors))


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
