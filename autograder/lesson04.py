"""Visible checks for lesson 04 (the hand-worked network), and the network itself.

The network is part of the exercise, so it is defined once, here, and the notebook imports it:
x -> two linear units (bias 0) -> two ReLU units (bias -0.5) -> one linear output (bias 0),
L = (yhat - y)**2 / 2. Units are numbered 1..5 (unit 0 is the input x); ``w_ji`` is the weight on the
edge from unit i to unit j, ``z_j`` a unit's input sum, ``h_j`` its output and ``delta_j = dL/dz_j``.

This module is shipped to students, so it never states the number a cell should hold. It checks each
entry against the rule that produces it, applied to the student's OWN numbers: h1 from x and the given
weights, z3 from the student's h1 and h2, yhat from their h3 and h4, d5 from their yhat, each delta from
their z and the deltas of later units, each dL/dw from their delta and value, the step from their
derivatives. A slip is reported once, where it happened, with its cause; entries computed from it are held
back until it is fixed, and a cause is named only when the student's numbers fit that one cause alone.

A later stage is judged on the earlier stages only when those pass their own check (an all-zero delta
table must not make all-zero derivatives look consistent). When grading, the hidden module (which imports
this one; this one never imports it) installs the correct earlier numbers with `install_reference`, and a
later stage also passes when it follows from them, so a slip in one stage costs only that stage's points;
the hidden checks compare every number with the reference engine, in the grader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType

from autograder.checks import CheckFailure, NotDone, as_real, close, passed

__all__ = [
    "WEIGHTS", "BIAS", "X", "Y", "LR", "UNITS", "DELTAS", "WEIGHT_NAMES", "STAGES",
    "check_forward", "check_deltas", "check_deltas_plus", "check_weight_grads", "check_update",
    "draw_network", "verdict", "install_reference",
]

# The checks read this private, read-only copy: whatever a notebook does to WEIGHTS cannot change them.
_W = MappingProxyType({
    "w10": 1.0, "w20": -2.0,  # input -> linear units 1, 2
    "w31": 0.5, "w32": 1.0,  # units 1, 2 -> ReLU unit 3
    "w41": 2.0, "w42": 0.5,  # units 1, 2 -> ReLU unit 4
    "w53": 2.0, "w54": -1.0,  # ReLU units 3, 4 -> output unit 5
})


class _GivenWeights(dict):
    """The network's weights as the notebook sees them: a dict that refuses changes.

    An SGD step written in place (`updated = WEIGHTS; updated[k] -= ...`) would otherwise change the
    given network for every later cell of the kernel; this way the step fails at once, saying what to do."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("WEIGHTS is the given network and cannot be changed: build a new dict for your "
                        "answer, e.g. updated = dict(WEIGHTS), and change that one.")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = clear = setdefault = _refuse

    def __copy__(self) -> dict[str, float]:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict[str, float]:
        return dict(self)


WEIGHTS: dict[str, float] = _GivenWeights(_W)
BIAS = -0.5  # of the two ReLU units; every other bias is 0 (and no bias is trained here)
X = (-1.0, 1.0)
Y = (0.5, 0.5)
LR = 0.1
STEP_X, STEP_Y = -1.0, 0.5  # the example the deltas, derivatives and SGD step are worked out for

UNITS = ("h1", "h2", "z3", "h3", "z4", "h4", "yhat", "L")
DELTAS = ("d1", "d2", "d3", "d4", "d5")
WEIGHT_NAMES = tuple(_W)
STAGES = {"forward": "exercise 2 (forward)", "deltas": "exercise 3 (deltas)",
          "deltas_plus": "exercise 3b (deltas_plus)",
          "grads": "exercise 4 (grads)", "updated": "exercise 5 (updated)"}
TOL = 1e-4  # hand-worked numbers here are exact at two decimals
ROUNDED = (f"it is close, but not within {TOL:g} of what the rule gives: if you rounded, give more digits, "
           f"or type the arithmetic itself, such as 0.5 * 2")

# What each entry is computed from, in the order a slip propagates: an entry whose inputs are wrong is
# held back (judging it against a wrong input would report one slip several times).
_FORWARD_NEEDS = {"h1": (), "h2": (), "z3": ("h1", "h2"), "h3": ("z3",), "z4": ("h1", "h2"), "h4": ("z4",),
                  "yhat": ("h3", "h4"), "L": ("yhat",)}
_DELTA_NEEDS = {"d5": (), "d3": ("d5",), "d4": ("d5",), "d1": ("d3", "d4"), "d2": ("d3", "d4")}


def verdict(yours: object, confirmed: float) -> str:
    """One line for the confirmation cells: your entry and whether it agrees, never the confirming number."""
    if not isinstance(yours, int | float) or isinstance(yours, bool):
        return f"{'—':>9}  (not filled in)"
    if close(float(yours), confirmed, TOL):
        return f"{yours + 0.0:9.4f}  agrees"
    if _near(float(yours), confirmed):
        return f"{yours + 0.0:9.4f}  DIFFERS slightly: if you rounded, give more digits"
    return f"{yours + 0.0:9.4f}  DIFFERS: work this entry out again"


def _near(got: float, want: float) -> bool:
    """Whether got is want rounded or cut to 1-3 decimals (1.13 or 1.124 for 1.125) but not within TOL: a
    rounding, not a slip (0.004 for 0 is no rounding of it)."""
    return not close(got, want, TOL) and any(
        round(got, k) == got and abs(got - want) <= 10.0**-k for k in (1, 2, 3))


def _cause(candidates: list[tuple[bool, str]], otherwise: str) -> str:
    """The one cause the student's numbers fit, or both when two fit equally, else the plain rule.

    At hand-picked numbers two different slips can give the same value (x = -1 makes a missing factor x
    look like a flipped sign); naming only one of them would send the student the wrong way."""
    fits = list(dict.fromkeys(text for ok, text in candidates if ok))
    if len(fits) == 1:
        return fits[0]
    if len(fits) == 2:
        return f"either {fits[0]}, or {fits[1]} (at these numbers the two give the same value)"
    return otherwise


def _entries(answer: object, keys: tuple[str, ...], name: str) -> dict[str, float]:
    """The student's numbers for `keys`, or a message naming the first missing or malformed entry.

    A template that is still entirely None is an exercise not started: it gets the course's one
    blank-exercise message."""
    if answer is WEIGHTS:
        raise CheckFailure(f"{name} is the given WEIGHTS dict itself, not your answer: build a new dict, "
                           f"e.g. {name} = dict(WEIGHTS), and change that one.")
    if not isinstance(answer, dict):
        raise CheckFailure(f"{name} should be a dict with keys {list(keys)}, got {type(answer).__name__}.")
    missing = [k for k in keys if k not in answer]
    if missing:
        raise CheckFailure(f"{name} is missing the key(s) {missing}; keep every key of the template.")
    if all(answer[k] is None for k in keys):
        if "[" in name:
            raise CheckFailure(f"{name} is still empty: replace every None in it with the number you worked "
                               "out, then run its cell and this one again.")
        raise NotDone(name)
    values = {}
    for k in keys:
        v = answer[k]
        if v is None:
            raise CheckFailure(f"{name}[{k!r}] is still None: replace None with the number you worked out.")
        values[k] = as_real(v, f"{name}[{k!r}] is")
    return values


def _forward_entries(forward: object, xs: tuple[float, ...] = X) -> dict[float, dict[str, float]]:
    """The forward numbers for the examples xs; the blank message only when no example is started."""
    if not isinstance(forward, dict):
        raise CheckFailure("forward should be a dict {-1: {...}, 1: {...}}, got "
                           f"{type(forward).__name__}.")
    for x in X:
        if x not in forward:
            raise CheckFailure(f"forward has no entry for x = {x:g}; keep the keys -1 and 1 of the template.")
    if all(isinstance(forward[x], dict) and all(forward[x].get(k) is None for k in UNITS) for x in X):
        raise NotDone("forward")
    return {x: _entries(forward[x], UNITS, f"forward[{x:g}]") for x in xs}


_REFERENCE: dict | None = None  # the correct numbers, only where the grader installed them


def install_reference(answers: dict | None) -> None:
    """Let a later stage also pass when it follows from the CORRECT earlier numbers (``answers`` in the
    shape of the stages: forward[x], deltas, grads), so one slip costs only its own stage's points.

    Only the hidden module calls this, when grading (it imports this one, never the other way round); a
    student's kit has no correct numbers, so there a later stage is judged on their own earlier stages."""
    global _REFERENCE
    _REFERENCE = answers


def _reference() -> dict | None:
    """The correct earlier numbers when the grader installed them, else None."""
    return _REFERENCE


def _fail(errors: list[str]) -> None:
    if errors:
        raise CheckFailure("\n".join(errors))


def _held_back(errors: dict[str, str], needs: dict[str, tuple[str, ...]], prefix: str) -> list[str]:
    """The messages of the entries that broke their rule on correct-looking inputs, and one line naming the
    entries not judged yet because they are computed from a wrong one."""
    wrong = set(errors)
    waiting = []
    for key, inputs in needs.items():
        if any(i in wrong or i in waiting for i in inputs):
            waiting.append(key)
    shown = [text for key, text in errors.items() if key not in waiting]
    if waiting:
        shown.append(f"(not judged yet, because they are computed from an entry above: "
                     f"{', '.join(f'{prefix}[{k!r}]' for k in waiting)}; fix the entry above first)")
    return shown


def _h(f: dict[str, float], x: float = STEP_X) -> dict[str, float]:
    """The value each weight carries, by the number of its source unit (h_0 = x)."""
    return {"0": x, "1": f["h1"], "2": f["h2"], "3": f["h3"], "4": f["h4"]}


# --------------------------------------------------------------------------------------------------
# The rules, each applied to the student's own earlier numbers (a list of messages, empty when all hold)
# --------------------------------------------------------------------------------------------------


def forward_errors(f: dict[str, float], x: float, y: float) -> list[str]:
    """Each forward entry against its rule applied to the student's own earlier entries for this x."""
    w, b = _W, BIAS
    at = f"forward[{x:g}]"
    errors: dict[str, str] = {}
    for j in ("1", "2"):
        h = f[f"h{j}"]
        if close(h, w[f"w{j}0"] * x, TOL):
            continue
        other = "2" if j == "1" else "1"
        why = _cause([(close(h, w[f"w{other}0"] * x, TOL),
                       f"you used w{other}0, the weight into unit {other}"),
                      (close(h, -w[f"w{j}0"] * x, TOL), "the sign is flipped"),
                      (_near(h, w[f"w{j}0"] * x), ROUNDED)],
                     f"unit {j} is linear with bias 0")
        errors[f"h{j}"] = f"{at}['h{j}'] = {h:g} is not w{j}0 * x with x = {x:g}: {why}."
    for j in ("3", "4"):
        z = f[f"z{j}"]
        if not close(z, w[f"w{j}1"] * f["h1"] + w[f"w{j}2"] * f["h2"] + b, TOL):
            errors[f"z{j}"] = (f"{at}['z{j}'] = {z:g} does not follow from your h1 and h2 by z{j} = "
                               f"w{j}1*h1 + w{j}2*h2 + b: {_z_cause(z, j, f['h1'], f['h2'])}")
        h = f[f"h{j}"]
        if not close(h, max(z, 0.0), TOL):
            cause = _cause([(close(h, z, TOL) and z < 0, f"you copied z{j}, but unit {j} is a ReLU"),
                            (_near(h, max(z, 0.0)), ROUNDED)],
                           f"unit {j} is a ReLU")
            errors[f"h{j}"] = (f"{at}['h{j}'] = {h:g} does not follow from your z{j} = {z:g}: {cause}, "
                               f"h{j} = relu(z{j}) = max(z{j}, 0).")
    yhat = f["yhat"]
    if not close(yhat, w["w53"] * f["h3"] + w["w54"] * f["h4"], TOL):
        cause = _cause([(close(yhat, w["w53"] * f["z3"] + w["w54"] * f["z4"], TOL),
                         "you used z3 and z4; the output reads the ReLU OUTPUTS h3 and h4"),
                        (_near(yhat, w["w53"] * f["h3"] + w["w54"] * f["h4"]), ROUNDED)],
                       "the output unit is linear, bias 0")
        errors["yhat"] = (f"{at}['yhat'] = {yhat:g} does not follow from your h3 and h4 by "
                          f"yhat = w53*h3 + w54*h4 ({cause}).")
    loss = f["L"]
    if not close(loss, (yhat - y) ** 2 / 2, TOL):
        cause = _cause([(close(loss, (yhat - y) ** 2, TOL), "the 1/2 is missing"),
                        (close(loss, abs(yhat - y) / 2, TOL), "the error is not squared"),
                        (loss < 0, "a squared error is never negative"),
                        (_near(loss, (yhat - y) ** 2 / 2), ROUNDED)],
                       "square the error, then halve it")
        errors["L"] = (f"{at}['L'] = {loss:g} does not follow from your yhat = {yhat:g}: "
                       f"L = (yhat - y)**2 / 2 with y = {y:g} ({cause}).")
    return _held_back(errors, _FORWARD_NEEDS, at)


def _z_cause(z: float, j: str, h1: float, h2: float) -> str:
    """The usual reason a z is off: the bias, or the weights of other edges (named only when the student's
    numbers fit that reason alone). Only slips a student makes are candidates: the weights out of a unit
    instead of into this one, the other unit's weights, or the two weights swapped."""
    w, b = _W, BIAS
    other, out_of = ("4", "1") if j == "3" else ("3", "2")
    right = w[f"w{j}1"] * h1 + w[f"w{j}2"] * h2
    candidates = [(close(z, right, TOL), f"the bias b = {b:g} is missing"),
                  (close(z, right - b, TOL), "the bias was subtracted, not added"),
                  (_near(z, right + b), ROUNDED)]
    candidates += [(close(z, w[a] * h1 + w[c] * h2 + b, TOL), f"you used {a} and {c}, {which}")
                   for a, c, which in ((f"w3{out_of}", f"w4{out_of}", f"the weights OUT of unit {out_of}"),
                                       (f"w{other}1", f"w{other}2", f"the weights into unit {other}"),
                                       (f"w{j}2", f"w{j}1", "so h1 and h2 got each other's weight"))]
    rule = (f"w_ji is the weight on the edge FROM unit i INTO unit j, so z{j} uses w{j}1 (from unit 1) and "
            f"w{j}2 (from unit 2), plus b = {b:g}")
    cause = _cause(candidates, "")
    return f"{cause}. {rule}." if cause else f"recompute it: {rule}."


def delta_errors(d: dict[str, float], f: dict[str, float], own: bool, y: float = STEP_Y,
                 at: str = "deltas") -> list[str]:
    """Each delta against its backward rule, applied to forward values f and the deltas of later units.

    ``own`` says whether f is the student's forward pass or the correct one (whose numbers are not shown);
    ``at`` names the student's dict."""
    w = _W
    whose = "your" if own else "the correct"
    errors: dict[str, str] = {}
    if not close(d["d5"], f["yhat"] - y, TOL):
        cause = _cause([(close(d["d5"], y - f["yhat"], TOL),
                         "the sign is flipped: d5 = yhat - y, not y - yhat"),
                        (_near(d["d5"], f["yhat"] - y), ROUNDED)],
                       "d5 = dL/dyhat = yhat - y for L = (yhat - y)**2 / 2")
        errors["d5"] = f"{at}['d5'] = {d['d5']:g} does not follow from {whose} yhat and y = {y:g}: {cause}."
    for j in ("3", "4"):
        z, dj = f[f"z{j}"], d[f"d{j}"]
        active = z > 0
        shown = f"{whose} z{j} = {z:g}" if own else f"{whose} z{j}"  # the value that decides, if theirs
        if close(dj, w[f"w5{j}"] * d["d5"] if active else 0.0, TOL):
            continue
        if not active:
            cause = (f"unit {j}'s ReLU is inactive ({shown} <= 0), so relu'(z{j}) = 0 and no gradient "
                     f"passes back through it")
        else:
            cause = (f"unit {j}'s ReLU is active ({shown} > 0), so relu'(z{j}) = 1; " + _cause(
                [(close(dj, max(z, 0.0) * w[f"w5{j}"] * d["d5"], TOL),
                  f"you multiplied by relu(z{j}), but the rule takes its slope relu'(z{j})"),
                 (close(dj, -w[f"w5{j}"] * d["d5"], TOL), "the sign is flipped"),
                 (close(dj, d["d5"], TOL), f"the factor w5{j} is missing"),
                 (_near(dj, w[f"w5{j}"] * d["d5"]), ROUNDED)],
                f"d{j} = w5{j} * d5 with your d5"))
        errors[f"d{j}"] = f"{at}['d{j}'] = {dj:g} breaks d{j} = relu'(z{j}) * w5{j} * d5: {cause}."
    for j in ("1", "2"):
        dj, first, second = d[f"d{j}"], w[f"w3{j}"] * d["d3"], w[f"w4{j}"] * d["d4"]
        if close(dj, first + second, TOL):
            continue
        errors[f"d{j}"] = (f"{at}['d{j}'] = {dj:g} does not follow from your d3 and d4 by "
                           f"d{j} = w3{j} * d3 + w4{j} * d4 (the weights on the edges OUT of unit {j}): "
                           f"{_first_layer_delta_cause(dj, j, d)}.")
    return _held_back(errors, _DELTA_NEEDS, at)


def _first_layer_delta_cause(dj: float, j: str, d: dict[str, float]) -> str:
    """Why d1 or d2 is off: a path left out, the weights of other edges, or the two weights swapped (named
    only when the student's numbers fit that reason alone), else the rule, true of every slip."""
    w = _W
    other = "2" if j == "1" else "1"
    terms = {"3": w[f"w3{j}"] * d["d3"], "4": w[f"w4{j}"] * d["d4"]}
    candidates = [(close(dj, terms[kept], TOL) and terms[dropped] != 0,
                   f"d{j} sums over both paths, and the path through unit {dropped} (w{dropped}{j} * "
                   f"d{dropped}) is missing") for kept, dropped in (("3", "4"), ("4", "3"))]
    candidates += [(close(dj, w[a] * d["d3"] + w[c] * d["d4"], TOL), text) for a, c, text in (
        (f"w4{j}", f"w3{j}", f"you swapped w3{j} and w4{j}"),
        (f"w3{other}", f"w4{other}", f"you used w3{other} and w4{other}, the weights out of unit {other}"),
        ("w31", "w32", "you used w31 and w32, the weights INTO unit 3"),
        ("w41", "w42", "you used w41 and w42, the weights INTO unit 4"))]
    candidates.append((_near(dj, terms["3"] + terms["4"]), ROUNDED))
    return _cause(candidates, f"take each edge out of unit {j}: its weight times the delta of the unit it "
                              "feeds, and add the two")


def grad_errors(g: dict[str, float], d: dict[str, float], f: dict[str, float], own: bool) -> list[str]:
    """Each dL/dw_ji against d_j * h_i with deltas d and forward values f (h_0 = x)."""
    h = _h(f)
    names = {"0": "x", "1": "h1", "2": "h2", "3": "h3", "4": "h4"}
    carried = {**{names[k]: v for k, v in h.items()}, "z3": f["z3"], "z4": f["z4"]}
    bad = [n for n in WEIGHT_NAMES if not close(g[n], d[f"d{n[1]}"] * h[n[2]], TOL)]
    flipped = [n for n in WEIGHT_NAMES if d[f"d{n[1]}"] * h[n[2]] != 0]
    if bad and flipped and all(close(g[n], -d[f"d{n[1]}"] * h[n[2]], TOL) for n in WEIGHT_NAMES):
        return ["Every entry of grads has the wrong sign: dL/dw_ji = +d_j * h_i (the step then goes "
                "AGAINST the gradient, in exercise 5)."]
    whose = "your" if own else "the correct"
    errors = []
    for name in bad:
        j, i = name[1], name[2]
        dj = d[f"d{j}"]
        candidates = [(close(g[name], -dj * h[i], TOL) and dj * h[i] != 0, "the sign is flipped"),
                      (close(g[name], dj, TOL) and h[i] != 1, f"the factor {names[i]} is missing"),
                      (_near(g[name], dj * h[i]), ROUNDED)]
        # (abs(v) == 1 is the missing factor, named above)
        candidates += [(close(g[name], dj * v, TOL) and abs(v) not in (1, abs(h[i])) and dj != 0,
                        f"it is d{j} times {k}, but {name} carries {names[i]} (from unit {i} into unit {j})")
                       for k, v in carried.items()]
        candidates += [(close(g[name], d[k] * h[i], TOL) and d[k] != dj and h[i] != 0,
                        f"it is {k} times {names[i]}, but {name} feeds unit {j}, so it takes d{j}")
                       for k in DELTAS]
        cause = _cause(candidates, f"use the delta of the unit the weight feeds (d{j}) times the value the "
                                   f"weight carries ({names[i]})")
        errors.append(f"grads[{name!r}] = {g[name]:g} is not d{j} * {names[i]} with {whose} d{j} and "
                      f"{names[i]}: {cause}.")
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


def _earlier(stages: list[tuple[Callable[[], object], str]]) -> tuple[object, str]:
    """The last of the earlier stages' numbers when each passes its own check, else None and the EARLIEST
    exercise to finish first (a slip in the forward pass is named there, not two exercises later)."""
    value: object = None
    for stage, exercise in stages:
        try:
            value = stage()
        except CheckFailure as exc:
            state = "is not written yet" if isinstance(exc, NotDone) else "does not pass its own check yet"
            return None, f"{exercise} {state}: complete {exercise} first, then run this cell again."
    return value, ""


def _forward(forward: object) -> dict[float, dict[str, float]]:
    values = _forward_entries(forward)
    _fail([e for x, y in zip(X, Y, strict=True) for e in forward_errors(values[x], x, y)])
    return values


def _forward_for_step(forward: object, x: float = STEP_X) -> dict[str, float]:
    """The forward values of one example (x = -1 for the later stages), when they pass their rules: a slip
    in, or a blank, other example does not hold up the deltas."""
    f = _forward_entries(forward, (x,))[x]
    _fail(forward_errors(f, x, Y[X.index(x)]))
    return f


def _deltas(deltas: object, forward: object, x: float = STEP_X, name: str = "deltas") -> dict[str, float]:
    d = _entries(deltas, DELTAS, name)
    own, problem = _earlier([(lambda: _forward_for_step(forward, x), STAGES["forward"])])
    ref = _reference()
    _judge(name, lambda f, mine: delta_errors(d, f, mine, Y[X.index(x)], name), own, problem,
           ref["forward"][x] if ref else None)
    return d


def _overwritten_by_a_step(g: dict[str, float], d: dict[str, float], f: dict[str, float]) -> bool:
    """Whether grads holds weights after an SGD step: (w - grads) / lr then follows the derivative rules."""
    as_gradient = {n: (_W[n] - g[n]) / LR for n in WEIGHT_NAMES}
    return not grad_errors(as_gradient, d, f, True)


def _grads(grads: object, deltas: object, forward: object) -> dict[str, float]:
    g = _entries(grads, WEIGHT_NAMES, "grads")
    own, problem = _earlier([(lambda: _forward_for_step(forward), STAGES["forward"]),
                             (lambda: _deltas(deltas, forward), STAGES["deltas"])])
    base = (_forward_for_step(forward), own) if own is not None else None
    if base and grad_errors(g, base[1], base[0], True) and _overwritten_by_a_step(g, base[1], base[0]):
        raise CheckFailure("grads now holds weights after an SGD step, not derivatives: your exercise 5 cell "
                           "changed the grads dict in place (`updated = grads` makes both names one dict). "
                           "Build a new dict there, e.g. updated = dict(grads), then run exercise 4's cell, "
                           "exercise 5's cell and both tests again.")
    ref = _reference()
    _judge("grads", lambda b, mine: grad_errors(g, b[1], b[0], mine), base, problem,
           (ref["forward"][STEP_X], ref["deltas"]) if ref else None)
    return g


def _step_errors(new: dict[str, float], g: dict[str, float], mine: bool) -> list[str]:
    out = []
    for name in WEIGHT_NAMES:
        if close(new[name], _W[name] - LR * g[name], TOL):
            continue
        cause = _cause([(close(new[name], _W[name] + LR * g[name], TOL),
                         "the step goes AGAINST the gradient: w - lr * dL/dw"),
                        (_near(new[name], _W[name] - LR * g[name]), ROUNDED)],
                       f"w_new = w - lr * dL/dw with lr = {LR:g}")
        out.append(f"updated[{name!r}] = {new[name]:g} is not one step from {name} = {_W[name]:g} "
                   f"with {'your' if mine else 'the correct'} grads[{name!r}]: {cause}.")
    return out


# --------------------------------------------------------------------------------------------------
# The checks the notebook's test cells call
# --------------------------------------------------------------------------------------------------


def _passed(variable: str, detail: str) -> None:
    """The one passing line, plus a note when the answer cell that last set ``variable`` still raises.

    Filling the dict but keeping `raise NotImplementedError()` makes the answer cell fail while this test
    passes, and "Run All" then stops at that cell; IPython's input history (In) shows the cell's source."""
    passed(variable, detail)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    for source in reversed(history):
        if re.search(rf"^{variable}\s*=", source, re.M):
            if re.search(r"^\s*raise NotImplementedError", source, re.M):
                print(f"note: the cell that sets {variable} still ends in `raise NotImplementedError()`, so "
                      "it stops with an error (and Run All stops there): delete that line and run it again.")
            return


def check_forward(forward: object) -> None:
    """Every activation, output and loss for both examples, each from your own earlier entries."""
    _forward(forward)
    _passed("forward", f"all {2 * len(UNITS)} entries follow from the weights and your own earlier entries")


def check_deltas(deltas: object, forward: object = None) -> None:
    """The deltas for x = -1: d5 from your yhat, each other delta from your z and the later units' deltas."""
    _deltas(deltas, forward)
    _passed("deltas", "all 5 follow from the backward rules, your forward values and later units' deltas")


def check_deltas_plus(deltas_plus: object, forward: object = None) -> None:
    """The deltas for the other example, x = +1, where the other ReLU blocks: the same rules, on your own
    forward values for x = +1 (a method that only works at x = -1 shows here)."""
    _deltas(deltas_plus, forward, X[1], "deltas_plus")
    _passed("deltas_plus", "all 5 follow from the backward rules, your forward values for x = +1 and later "
                          "units' deltas")


def check_weight_grads(grads: object, deltas: object = None, forward: object = None) -> None:
    """dL/dw for every weight (x = -1): each d_j * h_i with your own delta and forward value."""
    _grads(grads, deltas, forward)
    _passed("grads", f"all {len(WEIGHT_NAMES)} are the delta of the unit fed times the value carried")


def check_update(updated: object, grads: object = None, deltas: object = None,
                 forward: object = None) -> None:
    """Weights after one SGD step (lr = 0.1): w - 0.1 * dL/dw with your own derivatives."""
    if updated is grads and grads is not None:
        raise CheckFailure("updated and grads are the same dict (`updated = grads`), so the step overwrote "
                           "your derivatives: build a new dict, e.g. updated = dict(grads), then run "
                           "exercise 4's cell, exercise 5's cell and both tests again.")
    new = _entries(updated, WEIGHT_NAMES, "updated")
    own, problem = _earlier([(lambda: _forward_for_step(forward), STAGES["forward"]),
                             (lambda: _deltas(deltas, forward), STAGES["deltas"]),
                             (lambda: _grads(grads, deltas, forward), STAGES["grads"])])
    ref = _reference()
    _judge("updated", lambda g, mine: _step_errors(new, g, mine), own, problem, ref["grads"] if ref else None)
    _passed("updated", f"all {len(WEIGHT_NAMES)} weights are one SGD step (lr = {LR:g}) against the gradient")


def draw_network(ax=None, title: str | None = "The network of lesson 4"):
    """The network with its weights on the edges and its biases on the units (matplotlib only)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 4.2))
    pos = {"0": (0, 0), "1": (1.6, 1), "2": (1.6, -1), "3": (3.2, 1), "4": (3.2, -1), "5": (4.8, 0)}
    text = {"0": "x", "1": "1\nlinear", "2": "2\nlinear", "3": "3\nReLU\nb = -0.5", "4": "4\nReLU\nb = -0.5",
            "5": "5 = ŷ\nlinear"}
    for name, value in _W.items():
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
