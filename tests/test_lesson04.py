"""Lesson 04 (the hand-worked network): the stage checks directly, then the notebook as nbgrader grades it.

Each typical mistake is a complete wrong answer for ONE stage, worked through consistently the way a
student who made that slip would; the other stages keep the notebook's correct answers. The wrong stage must
lose its points and every other stage keep them, both in the fast check tests and in the executed notebook.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import lesson_harness as harness
import nbformat
import pytest

from autograder import lesson04 as visible
from autograder.checks import CheckFailure, NotDone
from autograder.course.notebooks import cell_grade_id, without_regions
from autograder.hidden import lesson04 as hidden

NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "04_hand_worked" / "hand_worked.ipynb"

TEST_CELLS = {"forward": "test_forward", "deltas": "test_deltas", "deltas_plus": "test_deltas_plus",
              "weight_grads": "test_weight_grads", "updated_weights": "test_update"}


def fwd(m1: dict, p1: dict) -> str:
    return f"forward = {{-1: {m1!r}, 1: {p1!r}}}\n"


RIGHT = {
    "forward": fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.0, "h3": 1.0, "z4": -1.5, "h4": 0.0, "yhat": 2.0, "L": 1.125},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": 0.5, "h4": 0.5, "yhat": -0.5, "L": 0.5}),
    "deltas": "deltas = {'d1': 1.5, 'd2': 3.0, 'd3': 3.0, 'd4': 0.0, 'd5': 1.5}\n",
    "deltas_plus": "deltas_plus = {'d1': 2.0, 'd2': 0.5, 'd3': 0.0, 'd4': 1.0, 'd5': -1.0}\n",
    "weight_grads": "grads = {'w10': -1.5, 'w20': -3.0, 'w31': -3.0, 'w32': 6.0, 'w41': 0.0, 'w42': 0.0, "
                    "'w53': 1.5, 'w54': 0.0}\n",
    "updated_weights": "updated = {'w10': 1.15, 'w20': -1.7, 'w31': 0.8, 'w32': 0.4, 'w41': 2.0, 'w42': 0.5, "
                       "'w53': 1.85, 'w54': -1.0}\n",
}

# name -> (stage, wrong answer worked through consistently, words the visible message must contain (the
# cause, named from the student's own numbers), words of the hidden message)
BUGS = {
    "ReLU not applied (h = z)": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.0, "h3": 1.0, "z4": -1.5, "h4": -1.5, "yhat": 3.5, "L": 4.5},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": -2.0, "z4": 0.5, "h4": 0.5, "yhat": -4.5, "L": 12.5}),
        "you copied z4, but unit 4 is a ReLU", "relu"),
    "bias forgotten in z3": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.5, "h3": 1.5, "z4": -1.5, "h4": 0.0, "yhat": 3.0, "L": 3.125},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": 0.5, "h4": 0.5, "yhat": -0.5, "L": 0.5}),
        "z3 = w31*h1 + w32*h2 + b: the bias b = -0.5 is missing.", "bias"),
    "w32 and w41 swapped": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 3.0, "h3": 3.0, "z4": -0.5, "h4": 0.0, "yhat": 6.0, "L": 15.125},
        {"h1": 1.0, "h2": -2.0, "z3": -4.0, "h3": 0.0, "z4": -0.5, "h4": 0.0, "yhat": 0.0, "L": 0.125}),
        "you used w31 and w41, the weights OUT of unit 1", "w31*h1 + w32*h2"),
    "loss without the 1/2": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.0, "h3": 1.0, "z4": -1.5, "h4": 0.0, "yhat": 2.0, "L": 2.25},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": 0.5, "h4": 0.5, "yhat": -0.5, "L": 1.0}),
        "the 1/2 is missing", "(yhat - y)**2 / 2"),
    "loss rounded to two decimals": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.0, "h3": 1.0, "z4": -1.5, "h4": 0.0, "yhat": 2.0, "L": 1.13},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": 0.5, "h4": 0.5, "yhat": -0.5, "L": 0.5}),
        "it is close, but not within 0.0001 of what the rule gives: if you rounded, give more digits",
        "(yhat - y)**2 / 2"),
    "inactive ReLU passes gradient": (
        "deltas", "deltas = {'d1': -1.5, 'd2': 2.25, 'd3': 3.0, 'd4': -1.5, 'd5': 1.5}\n",
        "unit 4's ReLU is inactive (your z4 = -1.5 <= 0)", "inactive"),
    "sign error in (yhat - y)": (
        "deltas", "deltas = {'d1': -1.5, 'd2': -3.0, 'd3': -3.0, 'd4': 0.0, 'd5': -1.5}\n",
        "the sign is flipped", "sign"),
    "first-layer deltas through the wrong weights": (
        "deltas", "deltas = {'d1': 3.0, 'd2': 1.5, 'd3': 3.0, 'd4': 0.0, 'd5': 1.5}\n",
        "d1 = w31 * d3 + w41 * d4 (the weights on the edges OUT of unit 1): you used w32 and w42, the "
        "weights out of unit 2.", "w31 * d3 + w41 * d4"),
    "d1 off by a slip no single cause fits (the rule, true of every slip)": (
        "deltas", "deltas = {'d1': 0.5, 'd2': 3.0, 'd3': 3.0, 'd4': 0.0, 'd5': 1.5}\n",
        "(the weights on the edges OUT of unit 1): take each edge out of unit 1: its weight times the delta "
        "of the unit it feeds, and add the two.", "w31 * d3 + w41 * d4"),
    "first-layer derivatives without x": (
        "weight_grads", "grads = {'w10': 1.5, 'w20': 3.0, 'w31': -3.0, 'w32': 6.0, 'w41': 0.0, 'w42': 0.0, "
        "'w53': 1.5, 'w54': 0.0}\n", "or the factor x is missing", "h_0 = x"),
    "derivative uses z instead of h": (
        "weight_grads", "grads = {'w10': -1.5, 'w20': -3.0, 'w31': -3.0, 'w32': 6.0, 'w41': 0.0, 'w42': 0.0, "
        "'w53': 1.5, 'w54': -2.25}\n", "d5 times z4, but w54 carries h4", "w54"),
    "dL/dw31 with the wrong activation": (
        "weight_grads", "grads = {'w10': -1.5, 'w20': -3.0, 'w31': 6.0, 'w32': 6.0, 'w41': 0.0, 'w42': 0.0, "
        "'w53': 1.5, 'w54': 0.0}\n", "d3 times h2, but w31 carries h1", "w31"),
    "every derivative with the wrong sign": (
        "weight_grads", "grads = {'w10': 1.5, 'w20': 3.0, 'w31': 3.0, 'w32': -6.0, 'w41': 0.0, 'w42': 0.0, "
        "'w53': -1.5, 'w54': 0.0}\n", "Every entry of grads has the wrong sign", "d_j * h_i"),
    "dL/dw53 from d3 and h3 (fits several slips: no single cause named)": (
        "weight_grads", "grads = {'w10': -1.5, 'w20': -3.0, 'w31': -3.0, 'w32': 6.0, 'w41': 0.0, 'w42': 0.0, "
        "'w53': 3.0, 'w54': 0.0}\n", "use the delta of the unit the weight feeds (d5)", "w53"),
    "dL/dw32 from d2 and h3 (fits several slips: no single cause named)": (
        "weight_grads", "grads = {'w10': -1.5, 'w20': -3.0, 'w31': -3.0, 'w32': 3.0, 'w41': 0.0, 'w42': 0.0, "
        "'w53': 1.5, 'w54': 0.0}\n", "use the delta of the unit the weight feeds (d3)", "w32"),
    "w41 and w42 swapped in z4": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.0, "h3": 1.0, "z4": 3.0, "h4": 3.0, "yhat": -1.0, "L": 1.125},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": -4.0, "h4": 0.0, "yhat": 0.0, "L": 0.125}),
        "z4 = w41*h1 + w42*h2 + b: you used w42 and w41, so h1 and h2 got each other's weight.",
        "w41*h1 + w42*h2"),
    "a typo in z3 (its consequences held back)": ("forward", fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.001, "h3": 1.0, "z4": -1.5, "h4": 0.0, "yhat": 2.0, "L": 1.125},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": 0.5, "h4": 0.5, "yhat": -0.5, "L": 0.5}),
        "not judged yet, because they are computed from an entry above: forward[-1]['h3']", "z3"),
    "a slip in d3 alone (d1 and d2 held back)": (
        "deltas", "deltas = {'d1': 1.5, 'd2': 3.0, 'd3': 2.0, 'd4': 0.0, 'd5': 1.5}\n",
        "not judged yet, because they are computed from an entry above: deltas['d1'], deltas['d2']", "d3"),
    "relu(z) instead of relu'(z) in the deltas (passes at x = -1, where z3 = 1)": (
        "deltas_plus", "deltas_plus = {'d1': 1.0, 'd2': 0.25, 'd3': 0.0, 'd4': 0.5, 'd5': -1.0}\n",
        "you multiplied by relu(z4), but the rule takes its slope relu'(z4)", "active"),
    "the second path dropped from d1 and d2 (passes at x = -1, where d4 = 0)": (
        "deltas_plus", "deltas_plus = {'d1': 0.0, 'd2': 0.0, 'd3': 0.0, 'd4': 1.0, 'd5': -1.0}\n",
        "d1 sums over both paths, and the path through unit 4 (w41 * d4) is missing", "w31 * d3 + w41 * d4"),
    "update with + instead of -": (
        "updated_weights", "updated = {'w10': 0.85, 'w20': -2.3, 'w31': 0.2, 'w32': 1.6, 'w41': 2.0, "
        "'w42': 0.5, 'w53': 2.15, 'w54': -1.0}\n", "AGAINST the gradient", "against the gradient"),
    "update without the learning rate": (
        "updated_weights", "updated = {'w10': 2.5, 'w20': 1.0, 'w31': 3.5, 'w32': -5.0, 'w41': 2.0, "
        "'w42': 0.5, 'w53': 0.5, 'w54': -1.0}\n", "lr = 0.1", "0.1"),
}

ALL_ZERO = {
    "forward": fwd(dict.fromkeys(visible.UNITS, 0.0), dict.fromkeys(visible.UNITS, 0.0)),
    "deltas": f"deltas = {dict.fromkeys(visible.DELTAS, 0.0)!r}\n",
    "deltas_plus": f"deltas_plus = {dict.fromkeys(visible.DELTAS, 0.0)!r}\n",
    "weight_grads": f"grads = {dict.fromkeys(visible.WEIGHT_NAMES, 0.0)!r}\n",
    "updated_weights": f"updated = {dict.fromkeys(visible.WEIGHT_NAMES, 0.0)!r}\n",
}

# Correct answers entered another way (arithmetic, ints, -0.0, a fresh dict instead of update()).
OTHER_STYLE = {
    "forward": "forward = {}\nforward[-1] = dict(h1=-1, h2=2, z3=1, h3=1, z4=-3/2, h4=0, yhat=2, L=9/8)\n"
               "forward[1.0] = dict(h1=1, h2=-2, z3=-2, h3=-0.0, z4=0.5, h4=0.5, yhat=-0.5, L=0.5)\n",
    "updated_weights": "updated = {'w10': 1 + 0.15, 'w20': -2 + 0.3, 'w31': 0.5 + 0.3, 'w32': 1 - 0.6, "
                       "'w41': 2, 'w42': 0.5, 'w53': 2 - 0.15, 'w54': -1}\n",
}

STAGES = list(TEST_CELLS)


def answers(**replace: str) -> dict:
    ns: dict = {}
    for stage in STAGES:
        exec(replace.get(stage, RIGHT[stage]), ns)
    return ns


def run_stage(stage: str, ns: dict, module=visible) -> None:
    f, d, g, u = ns["forward"], ns["deltas"], ns["grads"], ns["updated"]
    {"forward": lambda: module.check_forward(f),
     "deltas": lambda: module.check_deltas(d, f),
     "deltas_plus": lambda: module.check_deltas_plus(ns["deltas_plus"], f),
     "weight_grads": lambda: module.check_weight_grads(g, d, f),
     "updated_weights": lambda: module.check_update(u, g, d, f)}[stage]()


@pytest.mark.parametrize("module", [visible, hidden], ids=["visible", "hidden"])
def test_right_answers_pass_every_stage(module):
    ns = answers()
    for stage in STAGES:
        run_stage(stage, ns, module)


def test_the_notebook_solution_matches_the_reference_engine():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ns: dict = {}
    for cell in nb.cells:
        if cell_grade_id(cell) in TEST_CELLS:
            exec(cell.source, ns)
    ref = hidden.reference_answers()
    for x in visible.X:
        for key in visible.UNITS:
            assert ns["forward"][int(x)][key] == pytest.approx(ref["forward"][x][key])
    assert ns["deltas"] == pytest.approx(ref["deltas"])
    assert ns["deltas_plus"] == pytest.approx(ref["deltas_plus"])
    assert ns["grads"] == pytest.approx(ref["grads"])
    assert ns["updated"] == pytest.approx(ref["updated"])


@pytest.mark.parametrize("name", sorted(BUGS))
def test_a_typical_mistake_fails_its_stage_with_a_useful_message(name):
    stage, source, visible_words, hidden_words = BUGS[name]
    ns = answers(**{stage: source})
    if visible_words is not None:
        with pytest.raises(CheckFailure) as info:
            run_stage(stage, ns)
        assert visible_words in str(info.value), str(info.value)
    with pytest.raises(CheckFailure) as info:
        run_stage(stage, ns, hidden)
    assert hidden_words in str(info.value), str(info.value)


@pytest.mark.parametrize("name", sorted(BUGS))
def test_a_typical_mistake_leaves_the_other_stages_passing(name):
    stage, source, _, _ = BUGS[name]
    ns = answers(**{stage: source})
    for other in STAGES:
        if other != stage:
            run_stage(other, ns)
            run_stage(other, ns, hidden)


def test_one_slip_is_one_message():
    """The reviewer's case: a wrong d3 with correct d1 and d2 gave three messages, a z3 typo flagged h3."""
    for stage, name in (("deltas", "a slip in d3 alone (d1 and d2 held back)"),
                        ("forward", "a typo in z3 (its consequences held back)")):
        ns = answers(**{stage: BUGS[name][1]})
        with pytest.raises(CheckFailure) as info:
            run_stage(stage, ns)
        assert len(re.findall(r"does not follow|breaks", str(info.value))) == 1, str(info.value)


def test_an_ambiguous_guess_names_no_single_wrong_cause():
    for name in ("dL/dw53 from d3 and h3 (fits several slips: no single cause named)",
                 "dL/dw32 from d2 and h3 (fits several slips: no single cause named)"):
        ns = answers(weight_grads=BUGS[name][1])
        with pytest.raises(CheckFailure) as info:
            visible.check_weight_grads(ns["grads"], ns["deltas"], ns["forward"])
        assert "times h2" not in str(info.value) and "is missing" not in str(info.value), str(info.value)


def test_the_given_weights_cannot_be_changed_and_the_checks_do_not_depend_on_them():
    import copy

    ns = answers()
    with pytest.raises(TypeError, match=r"cannot be changed: build a new dict.*dict\(WEIGHTS\)"):
        exec("updated = WEIGHTS\nfor k in updated:\n    updated[k] -= 0.1 * grads[k]\n",
             {**ns, "WEIGHTS": visible.WEIGHTS})
    for change in (lambda w: w.update(w10=0.0), lambda w: w.pop("w10"), lambda w: w.clear()):
        with pytest.raises(TypeError):
            change(visible.WEIGHTS)
    assert dict(visible.WEIGHTS) == copy.copy(visible.WEIGHTS) == visible.WEIGHTS.copy() == dict(visible._W)
    with pytest.raises(CheckFailure, match="is the given WEIGHTS dict itself"):
        visible.check_update(visible.WEIGHTS, ns["grads"], ns["deltas"], ns["forward"])
    for stage in STAGES:
        run_stage(stage, ns)


def test_updated_as_an_alias_of_grads_is_named_in_both_tests():
    ns = answers()
    exec("updated = grads\nfor k in updated:\n    updated[k] = WEIGHTS[k] - 0.1 * updated[k]\n",
         {**ns, "WEIGHTS": visible.WEIGHTS}, ns)
    with pytest.raises(CheckFailure, match=r"grads now holds weights after an SGD step.*= dict\(grads\)"):
        visible.check_weight_grads(ns["grads"], ns["deltas"], ns["forward"])
    with pytest.raises(CheckFailure, match="updated and grads are the same dict"):
        visible.check_update(ns["updated"], ns["grads"], ns["deltas"], ns["forward"])
    with pytest.raises(CheckFailure):
        hidden.check_weight_grads(ns["grads"], ns["deltas"], ns["forward"])
    for stage in ("forward", "deltas"):
        run_stage(stage, ns)
        run_stage(stage, ns, hidden)


def test_a_half_done_forward_pass_names_the_empty_example_and_does_not_hold_up_the_deltas():
    ns = answers()
    ns["forward"][1] = dict.fromkeys(visible.UNITS)
    for module in (visible, hidden):
        with pytest.raises(CheckFailure, match=r"forward\[1\] is still empty") as info:
            module.check_forward(ns["forward"])
        assert not isinstance(info.value, NotDone)
    for stage in ("deltas", "weight_grads", "updated_weights"):
        run_stage(stage, ns)


def test_in_the_kit_a_later_stage_names_the_earliest_failing_exercise(monkeypatch):
    monkeypatch.setattr(visible, "_reference", lambda: None)
    ns = answers(forward=BUGS["loss without the 1/2"][1])
    with pytest.raises(CheckFailure, match=r"exercise 2 \(forward\) does not pass its own check yet"):
        visible.check_update(ns["updated"], ns["grads"], ns["deltas"], ns["forward"])


def test_the_confirmation_cells_leave_no_answer_and_rebind_no_name():
    """The finite-difference and engine cells print verdicts only; each runs on its own; the student's
    own variables (x, h1, ..., L, w, b, h) survive them."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    by_id = {cell_grade_id(c): c.source for c in nb.cells}
    mine = {name: f"mine {name}" for name in ("x", "h", "h1", "h2", "z3", "z4", "yhat", "L", "w", "b", "loss",
                                              "network", "tape", "adjoint", "engine_deltas", "error")}
    for cell in ("given_finite_differences", "given_tape_engine"):
        ns = {**answers(), **mine}
        exec(by_id["given_imports"], ns)
        exec(by_id[cell], ns)  # alone: no other given cell ran before
        assert {k: ns[k] for k in mine} == mine, cell
        new = set(ns) - set(answers()) - set(mine) - {"__builtins__"}
        import_names = {"plt", "np", "BIAS", "LR", "WEIGHTS", "X", "Y", "draw_network", "verdict"}
        assert new - import_names <= {"confirm_by_finite_differences", "confirm_with_the_engine", "Tape"}, new


def test_a_filled_dict_whose_cell_still_raises_gets_a_note(monkeypatch, capsys):
    """The reviewer's case: the dict is filled but `raise NotImplementedError()` stayed in the answer cell,
    so that cell errors (and Run All stops there) while the test passes: the passing test says so."""
    import types

    import IPython

    ns = answers()
    history = ["from autograder.lesson04 import WEIGHTS",
               "deltas = {'d1': None}\n# YOUR CODE HERE\nraise NotImplementedError()",
               "deltas = {'d1': 1.5, 'd2': 3.0}\nraise NotImplementedError()"]
    shell = types.SimpleNamespace(user_ns={"In": history})
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    visible.check_deltas(ns["deltas"], ns["forward"])
    assert "the cell that sets deltas still ends in `raise NotImplementedError()`" in capsys.readouterr().out
    history.append("deltas = {'d1': 1.5, 'd2': 3.0}\n")  # the line deleted and the cell run again
    visible.check_deltas(ns["deltas"], ns["forward"])
    visible.check_forward(ns["forward"])  # no cell of this history sets forward
    assert "note:" not in capsys.readouterr().out


def test_the_hidden_message_says_why_an_inactive_relu_has_zero_delta():
    ns = answers(deltas=BUGS["inactive ReLU passes gradient"][1])
    with pytest.raises(CheckFailure, match=r"unit 4's ReLU is inactive .* passes no gradient"):
        hidden.check_deltas(ns["deltas"], ns["forward"])


def test_a_delta_slip_is_reported_once_where_it_happened():
    ns = answers(deltas="deltas = {'d1': 2.0, 'd2': 3.0, 'd3': 3.0, 'd4': 0.0, 'd5': 1.5}\n")
    with pytest.raises(CheckFailure) as info:
        visible.check_deltas(ns["deltas"], ns["forward"])
    message = str(info.value)
    assert "'d1'" in message and "w31 * d3 + w41 * d4" in message and "'d2'" not in message, message


def test_the_visible_checks_state_rules_not_the_numbers_they_imply():
    ns = answers(deltas="deltas = {'d1': 2.0, 'd2': 3.0, 'd3': 2.5, 'd4': 0.0, 'd5': 1.5}\n")
    with pytest.raises(CheckFailure) as info:
        visible.check_deltas(ns["deltas"], ns["forward"])
    message = str(info.value)
    assert "'d3'" in message and "active" in message
    assert "1.25" not in message and "3.0" not in message.replace("= 3", "")  # d1 and d3 as they should be
    ns = answers(updated_weights=BUGS["update without the learning rate"][1])
    with pytest.raises(CheckFailure) as info:
        visible.check_update(ns["updated"], ns["grads"], ns["deltas"], ns["forward"])
    assert "1.15" not in str(info.value) and "0.8" not in str(info.value)  # the correct new w10, w31


@pytest.mark.parametrize("module", [visible, hidden], ids=["visible", "hidden"])
def test_an_all_zero_submission_fails_every_stage(module):
    ns = answers(**ALL_ZERO)
    for stage in STAGES:
        with pytest.raises(CheckFailure):
            run_stage(stage, ns, module)


def test_in_the_kit_a_stage_on_a_broken_earlier_stage_says_which_exercise_to_finish(monkeypatch):
    monkeypatch.setattr(visible, "_reference", lambda: None)  # a student's kit has no reference
    ns = answers(forward=BUGS["bias forgotten in z3"][1])
    with pytest.raises(CheckFailure, match=r"complete exercise 2 \(forward\) first"):
        visible.check_deltas(ns["deltas"], ns["forward"])
    ns = answers(**ALL_ZERO)
    with pytest.raises(CheckFailure, match=r"complete exercise 3 \(deltas\)"):
        visible.check_weight_grads(ns["grads"], ns["deltas"], answers()["forward"])
    ns = answers()
    for stage in STAGES:
        run_stage(stage, ns)  # correct work passes without the reference
    ns = answers(forward=fwd(
        {"h1": -1.0, "h2": 2.0, "z3": 1.0, "h3": 1.0, "z4": -1.5, "h4": 0.0, "yhat": 2.0, "L": 1.125},
        {"h1": 1.0, "h2": -2.0, "z3": -2.0, "h3": 0.0, "z4": 0.5, "h4": 0.5, "yhat": -0.5, "L": 1.0}))
    visible.check_deltas(ns["deltas"], ns["forward"])  # a slip only for x = +1 does not hold up the deltas


def test_a_blank_stage_gets_the_course_wide_not_done_message():
    blank = {stage: re.sub(r"-?\d+\.\d+", "None", source) for stage, source in RIGHT.items()}
    ns = answers(**blank)
    names = ("forward", "deltas", "deltas_plus", "grads", "updated")  # the dict the student fills in
    for stage, name in zip(STAGES, names, strict=True):
        for module in (visible, hidden):
            with pytest.raises(NotDone) as info:
                run_stage(stage, ns, module)
            assert str(info.value) == str(NotDone(name))


def test_confirmation_verdicts_name_a_rounding_and_never_the_confirming_number():
    assert visible.verdict(1.1249, 1.125).endswith("agrees")
    for rounded in (1.13, 1.124):
        line = visible.verdict(rounded, 1.125)
        assert "DIFFERS slightly: if you rounded, give more digits" in line and "1.125" not in line, line
    line = visible.verdict(4.5, 1.125)
    assert line.endswith("DIFFERS: work this entry out again") and "1.125" not in line, line
    assert visible.verdict(0.004, 0.0).endswith("DIFFERS: work this entry out again")  # no rounding of 0


def test_a_passing_check_prints_one_line(capsys):
    ns = answers()
    for stage in STAGES:
        run_stage(stage, ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(STAGES) and all(line.startswith("passed: ") for line in lines)


@pytest.mark.parametrize("stage", STAGES)
def test_an_unfilled_entry_scores_zero_with_a_message(stage):
    ns = answers(**{stage: re.sub(r"(': )-?[\d.]+", r"\1None", RIGHT[stage], count=1)})  # one entry
    for module in (visible, hidden):
        with pytest.raises(CheckFailure, match="still None"):
            run_stage(stage, ns, module)


def test_wrong_types_and_missing_keys_are_named():
    ns = answers()
    with pytest.raises(CheckFailure, match="missing the key"):
        visible.check_deltas({"d1": 1.5}, ns["forward"])
    with pytest.raises(CheckFailure, match="not its text"):
        visible.check_deltas({**ns["deltas"], "d3": "3"}, ns["forward"])
    with pytest.raises(CheckFailure, match="no entry for x = 1"):
        visible.check_forward({-1: ns["forward"][-1]})


def test_other_entry_styles_pass():
    ns = answers(**OTHER_STYLE)
    for stage in STAGES:
        run_stage(stage, ns)
        run_stage(stage, ns, hidden)


def test_draw_network_labels_every_weight():
    import matplotlib

    matplotlib.use("Agg")
    ax = visible.draw_network()
    labels = " ".join(t.get_text() for t in ax.texts)
    for name, value in visible.WEIGHTS.items():
        assert f"{name} = {value:g}" in labels


# ------------------------------------------------------------------------------------------------------
# The notebook, executed as nbgrader would
# ------------------------------------------------------------------------------------------------------


notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)


def test_notebook_has_every_stage_and_written_answer():
    ids = set(harness.graded_metadata(NOTEBOOK))
    assert set(TEST_CELLS) | set(TEST_CELLS.values()) | {"written_cost", "written_still_weights"} <= ids


@pytest.mark.slow
def test_source_notebook_earns_full_marks_without_errors(notebooks, source_nb):
    executed = notebooks.execute(source_nb)
    harness.assert_full_marks(notebooks.grade(executed), TEST_CELLS.values())
    harness.assert_no_error_outputs(executed)


@pytest.mark.slow
def test_student_version_has_no_answers_or_hidden_tests_scores_zero_and_still_runs(notebooks, source_nb):
    student = notebooks.student_version(source_nb)
    text = harness.released_text(student)
    assert ".update(" not in text and "1.125" not in text and "1.85" not in text
    harness.assert_no_hidden_tests(student, source_nb)
    executed = notebooks.execute(student)
    harness.assert_zero_everywhere(notebooks.grade(executed), TEST_CELLS.values())
    # The confirmation cells still run with blank answers (they show "—").
    by_id = {cell_grade_id(c): c for c in executed.cells}
    for grade_id in ("given_finite_differences", "given_tape_engine"):
        assert not [o for o in by_id[grade_id].outputs if o.output_type == "error"], grade_id


# ------------------------------------------------------------------------------------------------------
# The notebook judged as grading judges it (grader-side test cells, answers fetched over the channel)
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _close_figures():
    """The answer namespace of a judged run executes the given cells, which draw the network."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def test_judged_the_solved_notebook_earns_full_marks():
    harness.assert_full_marks(harness.judged_in_process(NOTEBOOK), TEST_CELLS.values())


@pytest.mark.parametrize("name", sorted(BUGS))
def test_judged_a_typical_mistake_loses_only_its_own_points_and_names_the_cause(name):
    """Graded, the test cell imports the hidden module first, so a later stage also passes on the correct
    earlier numbers: each slip costs exactly its own stage, with the visible check's message."""
    stage, source, visible_words, _ = BUGS[name]
    scores = harness.judged_in_process(NOTEBOOK, {stage: source})
    harness.assert_only_cells_lose_points(scores, [TEST_CELLS[stage]], what=name)
    assert visible_words in scores[TEST_CELLS[stage]].error, scores[TEST_CELLS[stage]].error


def test_judged_other_entry_styles_earn_full_marks_and_all_zeros_earn_nothing():
    harness.assert_full_marks(harness.judged_in_process(NOTEBOOK, OTHER_STYLE), TEST_CELLS.values())
    harness.assert_zero_everywhere(harness.judged_in_process(NOTEBOOK, ALL_ZERO), TEST_CELLS.values())


def test_judged_an_update_written_into_grads_costs_the_derivatives():
    """Graded, each answer reaches the grader as its own copy, so `updated is grads` cannot be seen there;
    the values still show it: grads holds weights after a step (the student's kernel names the alias)."""
    aliased = "updated = grads\nfor k in updated:\n    updated[k] = WEIGHTS[k] - 0.1 * updated[k]\n"
    scores = harness.judged_in_process(NOTEBOOK, {"updated_weights": aliased})
    harness.assert_only_cells_lose_points(scores, [TEST_CELLS["weight_grads"]], what="updated = grads")
    assert "grads now holds weights after an SGD step" in scores[TEST_CELLS["weight_grads"]].error


def test_the_visible_module_never_imports_the_hidden_one():
    text = Path(visible.__file__).read_text()
    assert "autograder.hidden" not in text and "importlib" not in text
    assert visible._reference() is not None  # installed by importing the hidden module (this file does)


# Two representative mistakes go through a real kernel, in one run (each in its own stage; the stages after
# them pass on the correct earlier numbers, so the deltas' message speaks of the correct z4); the judged tests
# above cover every one.
KERNEL_BUGS = {"bias forgotten in z3": "the bias b = -0.5 is missing",
               "inactive ReLU passes gradient": "unit 4's ReLU is inactive (the correct z4 <= 0)"}


@pytest.mark.slow
def test_typical_mistakes_lose_only_their_own_points(notebooks, source_nb):
    nb = source_nb
    for name in KERNEL_BUGS:
        nb = notebooks.with_cell_source(nb, BUGS[name][0], BUGS[name][1])
    scores = harness.run_and_grade(notebooks, nb)
    harness.assert_only_cells_lose_points(scores, [TEST_CELLS[BUGS[name][0]] for name in KERNEL_BUGS],
                                          what=" and ".join(KERNEL_BUGS))
    for name, words in KERNEL_BUGS.items():
        stage = BUGS[name][0]
        assert words in scores[TEST_CELLS[stage]].error, scores[TEST_CELLS[stage]].error


# ------------------------------------------------------------------------------------------------------
# The student kit: the shipped module must compute no answer and work without the hidden side
# ------------------------------------------------------------------------------------------------------

KIT_BUGS = '''
from autograder.checks import CheckFailure

wrong = dict(updated, w10=updated["w10"] + 0.2)
try:
    checks.check_update(wrong, grads, deltas, forward)
except CheckFailure as exc:
    assert "your grads['w10']" in str(exc), str(exc)
else:
    raise SystemExit("the kit's update check passed a wrong step")
print("kit checks passed")
'''


def kit_script() -> str:
    """The notebook's code cells in order (test cells without their hidden blocks) with the hidden modules
    blocked, then a wrong update: what a student runs from the kit."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [without_regions(c.source, ("HIDDEN TESTS",)) for c in nb.cells if c.cell_type == "code"]
    return "\n\n".join(cells) + "\n" + KIT_BUGS


def test_visible_module_holds_no_solution_line_and_no_whole_forward_pass():
    """The shipped module applies each rule to the student's own numbers, one entry at a time; it never
    runs the network (or the backward pass) from the weights to a number a cell should hold."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = Path(visible.__file__).read_text()
    lines = harness.solution_lines(nb, min_length=8)
    assert len(lines) >= 4
    for line in lines:
        assert line not in text, f"the shipped module contains a solution line: {line!r}"
    for rule in ('w["w31"] * f["h1"]', '["w10"] * x', '["yhat"] - y)\n', "deltas_from", "grads_from"):
        assert rule not in text, rule


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules():
    done = harness.run_in_student_kit(kit_script(), NOTEBOOK.parent)
    assert "kit checks passed" in done.stdout
