"""Lesson 07 (training library): the checks against right and wrong code, and the notebook as graded.

Fast tests exec the notebook's given and answer cells into a namespace and call the check functions directly
with the solution, correct solutions in other styles, and typical bugs (the messages a student sees), and
judge the whole notebook as grading does, through the grading channel without a kernel
(`lesson_harness.judged_in_process`): every bug loses exactly its own exercise's points, every other style
earns full marks. Slow tests execute the notebook in a kernel (solved, blank, three representative bugs).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import lesson_harness as harness
import nbformat
import numpy as np
import pytest

from autograder import lesson07 as checks
from autograder.checks import CheckFailure, NotDone, repeat_line
from autograder.hidden import lesson07 as hidden

NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "07_training_library" / "training_library.ipynb"

_MODULE_HEAD = """
class Module:
    def __init__(self):
        self.training = True

    def forward(self, *args):
        raise NotImplementedError

    def __call__(self, *args):
        return self.forward(*args)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)
"""

_LINEAR_HEAD = """
class Linear(Module):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        rng = np.random.default_rng() if rng is None else rng
        bound = 1.0 / np.sqrt(in_features)
"""

_SGD_HEAD = """
class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params)
        self.lr, self.momentum = lr, momentum
        self.velocity = [None] * len(self.params)
"""

_ADAM_HEAD = """
class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.t = [0] * len(self.params)
"""

# Correct answers written for these tests; most bugs below are one of them with a line or two changed.
_SGD = _SGD_HEAD + """
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if self.velocity[i] is None:
                self.velocity[i] = p.grad.copy()
            else:
                self.velocity[i] = self.momentum * self.velocity[i] + p.grad
            p.data = p.data - self.lr * self.velocity[i]
"""

_ADAM = _ADAM_HEAD + """
    def step(self):
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.t[i] += 1
            self.m[i] = b1 * self.m[i] + (1 - b1) * p.grad
            self.v[i] = b2 * self.v[i] + (1 - b2) * p.grad ** 2
            m_hat, v_hat = self.m[i] / (1 - b1 ** self.t[i]), self.v[i] / (1 - b2 ** self.t[i])
            p.data = p.data - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
"""

_TRAIN_EPOCH = """
def train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    model.train()
    order = rng.permutation(len(X))
    total = 0.0
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(Tensor(X[idx])), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    return total / len(X)
"""

_EVALUATE = """
def evaluate(model, loss_fn, X, y, batch_size=256):
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            out = model(Tensor(xb))
            total_loss += loss_fn(out, yb).item() * len(xb)
            correct += int((out.data.argmax(axis=1) == yb).sum())
    return total_loss / len(X), correct / len(X)
"""


def _edited(source: str, *replacements: tuple[str, str]) -> str:
    """`source` with exact text replaced; each replacement must apply, so a bug cannot silently vanish."""
    for old, new in replacements:
        assert old in source, f"{old!r} not found: update the bug"
        source = source.replace(old, new)
    return source


_FIRST_VELOCITY = "self.velocity[i] = p.grad.copy()"
_VELOCITY = "self.velocity[i] = self.momentum * self.velocity[i] + p.grad"
_CORRECTED = "m_hat, v_hat = self.m[i] / (1 - b1 ** self.t[i]), self.v[i] / (1 - b2 ** self.t[i])"
_SKIP = "            if p.grad is None:\n                continue\n"
_COUNT = "            self.t[i] += 1\n"
_ONE_COUNT = ("self.t = [0] * len(self.params)", "self.t = 0")
_CORRECT_MODULES = """
    def modules(self):
        found, seen, stack = [], set(), [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            found.append(module)
            stack.extend(reversed([item for value in vars(module).values()
                                   for item in (value if isinstance(value, (list, tuple)) else (value,))
                                   if isinstance(item, Module)]))
        return found
"""
_CORRECT_PARAMETERS = """
    def parameters(self):
        out = []
        for module in self.modules():
            for value in vars(module).values():
                for item in (value if isinstance(value, (list, tuple)) else (value,)):
                    if isinstance(item, Parameter) and all(item is not p for p in out):
                        out.append(item)
        return out
"""
_ACCURACY = "correct += int((out.data.argmax(axis=1) == yb).sum())"

BUGS: dict[str, tuple[str, str, str]] = {
    "parameters_direct_attributes_only": (
        "module_parameters",
        _MODULE_HEAD
        + _CORRECT_MODULES
        + """
    def parameters(self):
        out = []
        for value in vars(self).values():
            for item in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(item, Parameter) and all(item is not p for p in out):
                    out.append(item)
        return out
""",
        "search each sub-module too",
    ),
    "parameters_ignores_lists": (
        "module_parameters",
        _MODULE_HEAD
        + """
    def modules(self):
        found = [self]
        for value in vars(self).values():
            if isinstance(value, Module):
                found += [m for m in value.modules() if all(m is not f for f in found)]
        return found

    def parameters(self):
        out = []
        for module in self.modules():
            for value in vars(module).values():
                if isinstance(value, Parameter) and all(value is not p for p in out):
                    out.append(value)
        return out
""",
        "through a list or tuple attribute",
    ),
    "modules_returns_an_iterator": (
        "module_parameters",
        _MODULE_HEAD + _CORRECT_MODULES.replace("return found", "return iter(found)") + _CORRECT_PARAMETERS,
        "not a list",
    ),
    "parameters_returns_a_generator": (
        "module_parameters",
        _MODULE_HEAD + _CORRECT_MODULES + """
    def parameters(self):
        seen = set()
        for module in self.modules():
            for value in vars(module).values():
                for item in (value if isinstance(value, (list, tuple)) else (value,)):
                    if isinstance(item, Parameter) and id(item) not in seen:
                        seen.add(id(item))
                        yield item
""",
        "not a list",
    ),
    "modules_leaves_out_the_model": (
        "module_parameters",
        _MODULE_HEAD + _CORRECT_MODULES.replace("return found", "return found[1:]") + _CORRECT_PARAMETERS,
        "left out the model itself",
    ),
    "modules_puts_the_model_last": (
        "module_parameters",
        _MODULE_HEAD
        + """
    def modules(self):
        found = []
        for value in vars(self).values():
            for item in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(item, Module):
                    found += [m for m in item.modules() if all(m is not f for f in found)]
        return found + [self]

    def parameters(self):
        out = []
        for module in self.modules():
            for value in vars(module).values():
                for item in (value if isinstance(value, (list, tuple)) else (value,)):
                    if isinstance(item, Parameter) and all(item is not p for p in out):
                        out.append(item)
        return out
""",
        "itself FIRST",
    ),
    "parameters_duplicates_shared": (
        "module_parameters",
        _MODULE_HEAD
        + """
    def modules(self):
        found = [self]
        for value in vars(self).values():
            for item in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(item, Module):
                    found += item.modules()
        return found

    def parameters(self):
        return [item for module in self.modules() for value in vars(module).values()
                for item in (value if isinstance(value, (list, tuple)) else (value,))
                if isinstance(item, Parameter)]
""",
        "more than once",
    ),
    "linear_weight_transposed": (
        "linear",
        _LINEAR_HEAD
        + """
        self.weight = Parameter(rng.uniform(-bound, bound, (in_features, out_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features))

    def forward(self, x):
        return x @ self.weight + self.bias
""",
        "transposed",
    ),
    "linear_bias_not_a_parameter": (
        "linear",
        _LINEAR_HEAD
        + """
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Tensor(np.zeros(out_features), requires_grad=True)

    def forward(self, x):
        return x @ self.weight.T + self.bias
""",
        "not a Parameter",
    ),
    "linear_uniform_from_zero": (
        "linear",
        _LINEAR_HEAD
        + """
        self.weight = Parameter(rng.uniform(0, bound, (out_features, in_features)))
        self.bias = Parameter(rng.uniform(0, bound, out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias
""",
        "lower bound of rng.uniform is -bound",
    ),
    "linear_gaussian_init": (
        "linear",
        _LINEAR_HEAD
        + """
        self.weight = Parameter(rng.standard_normal((out_features, in_features)))
        self.bias = Parameter(np.zeros(out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias
""",
        "uniform",
    ),
    "linear_no_generator_when_rng_is_none": (
        "linear",
        _LINEAR_HEAD.replace("rng = np.random.default_rng() if rng is None else rng", "pass")
        + """
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias
""",
        "rng=None is allowed",
    ),
    "linear_forward_without_transpose": (
        "linear",
        _LINEAR_HEAD
        + """
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features))

    def forward(self, x):
        return x @ self.weight + self.bias
""",
        "weight transposed",
    ),
    "sgd_momentum_as_average": (
        "sgd_step",
        _edited(_SGD, ("+ p.grad", "+ (1 - self.momentum) * p.grad"),
                (_FIRST_VELOCITY, "self.velocity[i] = (1 - self.momentum) * p.grad")),
        "exponential average",
    ),
    "sgd_velocity_not_kept": (
        "sgd_step",
        _edited(_SGD, ("p.data - self.lr * self.velocity[i]", "p.data - self.lr * p.grad")),
        "plain SGD",
    ),
    "sgd_uses_velocity_before_updating_it": (
        "sgd_step",
        _edited(_SGD, (_FIRST_VELOCITY, "self.velocity[i] = np.zeros_like(p.data)"),
                ("            else:\n                " + _VELOCITY + "\n", ""),
                ("self.lr * self.velocity[i]\n", f"self.lr * self.velocity[i]\n            {_VELOCITY}\n")),
        "one step late",
    ),
    "sgd_momentum_average_after_first_step": (
        "sgd_step",
        _edited(_SGD, ("+ p.grad", "+ (1 - self.momentum) * p.grad")),
        "exponential average",
    ),
    "sgd_velocity_assumed_zero": (
        "sgd_step",
        _edited(_SGD, ("            if self.velocity[i] is None:\n                " + _FIRST_VELOCITY
                       + "\n            else:\n                " + _VELOCITY + "\n",
                       "            " + _VELOCITY + "\n")),
        "self.velocity[i] is None until",
    ),
    "sgd_missing_grad_as_zeros": (
        "sgd_step",
        _edited(_SGD, (_SKIP, "            g = np.zeros_like(p.data) if p.grad is None else p.grad\n"),
                ("p.grad.copy()", "g.copy()"), ("+ p.grad", "+ g")),
        "rather than treating it as zeros",
    ),
    "sgd_velocity_shares_the_gradient_array": (
        "sgd_step",
        _edited(_SGD, (_FIRST_VELOCITY, "self.velocity[i] = p.grad"),
                (_VELOCITY, "self.velocity[i] *= self.momentum\n                self.velocity[i] += p.grad")),
        "shares that array",
    ),
    "sgd_one_velocity_for_all_parameters": (
        "sgd_step",
        _edited(_SGD, ("self.velocity[i]", "self.velocity[0]")),
        "its own slot",
    ),
    "sgd_no_check_for_missing_grad": (
        "sgd_step",
        _edited(_SGD, ("            if p.grad is None:\n                continue\n", ""),
                (_FIRST_VELOCITY, "self.velocity[i] = p.grad")),
        ".grad None",
    ),
    "sgd_missing_grad_made_nan": (
        "sgd_step",
        _edited(_SGD, (_SKIP, ""), ("p.grad.copy()", "np.array(p.grad, dtype=float)"),
                ("+ p.grad", "+ np.asarray(p.grad, dtype=float)")),
        "It had .grad None at step 1, and None made into numbers is NaN",
    ),
    "adam_no_bias_correction": (
        "adam_step",
        _edited(_ADAM, (_CORRECTED, "m_hat, v_hat = self.m[i], self.v[i]")),
        "bias correction",
    ),
    "adam_step_count_frozen": (
        "adam_step",
        _edited(_ADAM, ("self.t[i] += 1", "t = self.t[i] + 1"), ("b1 ** self.t[i]", "b1 ** t"),
                ("b2 ** self.t[i]", "b2 ** t")),
        "t = 1",
    ),
    "adam_gradient_not_squared": (
        "adam_step",
        _edited(_ADAM, ("p.grad ** 2", "p.grad")),
        "SQUARED gradient",
    ),
    "adam_no_check_for_missing_grad": (
        "adam_step",
        _edited(_ADAM, (_SKIP, "")),
        ".grad None",
    ),
    "adam_missing_grad_as_zeros": (
        "adam_step",
        _edited(_ADAM, (_SKIP, "            g = np.zeros_like(p.data) if p.grad is None else p.grad\n"),
                ("* p.grad", "* g")),
        "rather than treating it as zeros",
    ),
    "adam_step_count_incremented_after_use": (
        "adam_step",
        _edited(_ADAM, (_COUNT, ""),
                ("(np.sqrt(v_hat) + self.eps)\n", "(np.sqrt(v_hat) + self.eps)\n" + _COUNT)),
        "division by zero",
    ),
    "adam_one_step_count_for_the_optimiser": (
        "adam_step",
        _edited(_ADAM, _ONE_COUNT, (_COUNT, ""), ("        b1, b2 = self.betas\n",
                                                  "        self.t += 1\n        b1, b2 = self.betas\n"),
                ("self.t[i])", "self.t)")),
        "one step count for the whole optimiser",
    ),
    "adam_one_count_incremented_per_parameter": (
        "adam_step",
        _edited(_ADAM, _ONE_COUNT, (_COUNT, "            self.t += 1\n"), ("self.t[i])", "self.t)")),
        "own count",
    ),
    "adam_betas_swapped": (
        "adam_step",
        _edited(_ADAM, ("b1, b2 = self.betas", "b2, b1 = self.betas")),
        "in that order",
    ),
    "adam_eps_inside_sqrt": (
        "adam_step",
        _edited(_ADAM, ("(np.sqrt(v_hat) + self.eps)", "np.sqrt(v_hat + self.eps)")),
        "small but systematic, not rounding: it is where eps sits",
    ),
    "adam_step_with_the_gradient": (
        "adam_step",
        _edited(_ADAM, ("p.data = p.data - self.lr", "p.data = p.data + self.lr")),
        "in the wrong direction",
    ),
    "train_epoch_no_zero_grad": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("        optimizer.zero_grad()\n", "")),
        "not zeroed",
    ),
    "train_epoch_zero_grad_between_backward_and_step": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("        optimizer.zero_grad()\n", ""),
                ("        loss.backward()\n", "        loss.backward()\n        optimizer.zero_grad()\n")),
        "not between",
    ),
    "train_epoch_backward_of_loss_times_batch_size": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("loss.backward()", "(loss * len(idx)).backward()")),
        "the batch size",
    ),
    "train_epoch_drops_last_batch": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("range(0, len(X),", "range(0, len(X) - batch_size + 1,"),
                ("return total / len(X)", "return total / (len(X) // batch_size * batch_size)")),
        "last partial batch",
    ),
    "train_epoch_no_shuffle": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("order = rng.permutation(len(X))", "order = np.arange(len(X))")),
        "shuffle",
    ),
    "train_epoch_labels_in_stored_order": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("y[idx]", "y[start:start + batch_size]")),
        "wrong labels",
    ),
    "train_epoch_shuffles_inputs_in_place": (
        "train_epoch",
        _edited(_TRAIN_EPOCH,
                ("order = rng.permutation(len(X))", "rng.shuffle(X)\n    order = np.arange(len(X))")),
        "in place",
    ),
    "train_epoch_global_permutation": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("rng.permutation", "np.random.permutation")),
        "np.random",
    ),
    "train_epoch_own_fixed_seed": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("rng.permutation", "np.random.default_rng(0).permutation")),
        "does not come from the rng",
    ),
    "train_epoch_total_keeps_graph": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("total += loss.item() * len(idx)", "total = total + loss * len(idx)"),
                ("return total / len(X)", "return total.item() / len(X)")),
        "graph alive",
    ),
    "train_epoch_returns_tensor_total": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("total += loss.item() * len(idx)", "total = total + loss * len(idx)")),
        "graph alive",
    ),
    "train_epoch_keeps_loss_tensors": (
        "train_epoch",
        _edited(_TRAIN_EPOCH, ("    total = 0.0\n", "    losses = []\n"),
                ("total += loss.item() * len(idx)", "losses.append((loss, len(idx)))"),
                ("return total / len(X)", "return sum(l.item() * n for l, n in losses) / len(X)")),
        "graph alive",
    ),
    "evaluate_stays_in_train_mode": (
        "evaluate",
        _edited(_EVALUATE, ("    model.eval()\n", "")),
        "training mode",
    ),
    "evaluate_counts_per_batch": (
        "evaluate",
        _edited(_EVALUATE, (_ACCURACY, "correct += np.mean(out.data.argmax(axis=1) == yb) * batch_size")),
        "accuracy",
    ),
    "evaluate_records_graph": (
        "evaluate",
        _edited(_EVALUATE, ("with no_grad():", "if True:")),
        "no_grad",
    ),
    "evaluate_argmax_of_the_tensor": (
        "evaluate",
        _edited(_EVALUATE, ("out.data.argmax(axis=1)", "out.argmax(axis=1)")),
        ".data",
    ),
    "evaluate_returns_accuracy_first": (
        "evaluate",
        _edited(_EVALUATE, ("return total_loss / len(X), correct / len(X)",
                            "return correct / len(X), total_loss / len(X)")),
        "the order is",
    ),
    "evaluate_returns_loss_tensor": (
        "evaluate",
        _edited(_EVALUATE, ("total_loss += loss_fn(out, yb).item() * len(xb)",
                            "total_loss = total_loss + loss_fn(out, yb) * len(xb)")),
        "plain numbers",
    ),
    "evaluate_no_grad_without_parentheses": (
        "evaluate",
        _edited(_EVALUATE, ("with no_grad():", "with no_grad:")),
        "with parentheses",
    ),
    "evaluate_accuracy_in_percent": (
        "evaluate",
        _edited(_EVALUATE, ("correct / len(X)", "100 * correct / len(X)")),
        "that is a percentage",
    ),
    "evaluate_accuracy_as_a_count": (
        "evaluate",
        _edited(_EVALUATE, ("correct / len(X)", "correct")),
        "that is the number of correct predictions",
    ),
    "evaluate_argmax_over_the_batch": (
        "evaluate",
        _edited(_EVALUATE, ("argmax(axis=1)", "argmax(axis=0)")),
        "axis=1",
    ),
}

OTHER_STYLES: dict[str, tuple[str, str]] = {
    "parameters_recursive_generators": (
        "module_parameters",
        _MODULE_HEAD
        + """
    def _children(self):
        for value in vars(self).values():
            items = value if isinstance(value, (list, tuple)) else [value]
            yield from (item for item in items if isinstance(item, Module))

    def modules(self, _seen=None):
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return []
        seen.add(id(self))
        out = [self]
        for child in self._children():
            out += child.modules(seen)
        return out

    def parameters(self):
        unique = {}
        for module in self.modules():
            for value in vars(module).values():
                items = value if isinstance(value, (list, tuple)) else [value]
                for item in items:
                    if isinstance(item, Parameter):
                        unique.setdefault(id(item), item)
        return list(unique.values())
""",
    ),
    "sgd_in_place": (
        "sgd_step",
        _SGD_HEAD
        + """
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            d = p.grad
            if self.momentum != 0:
                buf = self.velocity[i]
                if buf is None:
                    buf = self.velocity[i] = p.grad.copy()
                else:
                    buf *= self.momentum
                    buf += p.grad
                d = buf
            p.data -= self.lr * d
""",
    ),
    "adam_pytorch_form": (
        "adam_step",
        _ADAM_HEAD
        + """
    def step(self):
        import math
        beta1, beta2 = self.betas
        for i, (p, m, v) in enumerate(zip(self.params, self.m, self.v)):
            if p.grad is None:
                continue
            self.t[i] += 1
            m *= beta1
            m += (1 - beta1) * p.grad
            v *= beta2
            v += (1 - beta2) * p.grad * p.grad
            step_size = self.lr / (1 - beta1 ** self.t[i])
            denom = np.sqrt(v) / math.sqrt(1 - beta2 ** self.t[i]) + self.eps
            p.data -= step_size * m / denom
""",
    ),
    "train_epoch_array_split": (
        "train_epoch",
        """
def train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    model.train()
    n_batches = -(-len(X) // batch_size)
    weighted = []
    for idx in np.array_split(rng.permutation(len(X)), n_batches):
        model.zero_grad()
        optimizer.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        optimizer.step()
        weighted.append(float(loss.data) * len(idx))
    return sum(weighted) / len(X)
""",
    ),
    "evaluate_collect_then_score": (
        "evaluate",
        """
def evaluate(model, loss_fn, X, y, batch_size=256):
    model.eval()
    parts = []
    with no_grad():
        for start in range(0, len(X), batch_size):
            out = model(Tensor(X[start:start + batch_size]))
            parts.append((out.data, loss_fn(out, y[start:start + batch_size]).item()))
    logits = np.concatenate([p[0] for p in parts])
    sizes = [len(p[0]) for p in parts]
    mean_loss = sum(l * n for (_, l), n in zip(parts, sizes)) / len(X)
    return mean_loss, float(np.mean(logits.argmax(axis=1) == y))
""",
    ),
}

EXERCISE_TESTS = {
    "module_parameters": ["test_module_parameters"],
    "linear": ["test_linear"],
    "sgd_step": ["test_sgd_step"],
    "adam_step": ["test_adam_step"],
    "train_epoch": ["test_train_epoch"],
    "evaluate": ["test_evaluate"],
}


def _namespace(replace: dict[str, str] | None = None) -> dict:
    return harness.answer_namespace(NOTEBOOK, replace)


def _args(gid: str, ns: dict) -> tuple:
    """What the test cell of exercise `gid` hands its checks (check_<gid> in both modules)."""
    T, P, G = ns["Tensor"], ns["Parameter"], ns["GradMode"]
    return {
        "module_parameters": (ns["Module"], P, T),
        "linear": (ns["Linear"], P, T),
        "sgd_step": (ns["SGD"], P),
        "adam_step": (ns["Adam"], P),
        "train_epoch": (ns["train_epoch"], T, P),
        "evaluate": (ns["evaluate"], T, P, G),
    }[gid]


def _run_visible(gid: str, ns: dict) -> None:
    """Only the shipped check of one exercise, as a student runs it from the kit."""
    getattr(checks, f"check_{gid}")(*_args(gid, ns))


def _run_hidden(gid: str, ns: dict) -> None:
    getattr(hidden, f"check_{gid}")(*_args(gid, ns))


def _run_check(gid: str, ns: dict) -> None:
    """The whole test cell when grading: the visible check, then the hidden one."""
    _run_visible(gid, ns)
    _run_hidden(gid, ns)


@pytest.fixture(scope="module")
def solution_ns() -> dict:
    return _namespace()


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_solution_passes_every_check_repeatedly(solution_ns: dict, gid: str) -> None:
    for _ in range(2):  # judged twice more below (test_the_solved_notebook_gets_full_marks_when_judged)
        _run_check(gid, solution_ns)


def _judged(replace: dict[str, str] | None = None) -> dict:
    return harness.judged_in_process(NOTEBOOK, replace)


def test_the_solved_notebook_gets_full_marks_when_judged() -> None:
    for _ in range(2):
        harness.assert_full_marks(_judged(), TEST_CELLS)


@pytest.mark.parametrize("name", list(OTHER_STYLES))
def test_other_correct_styles_pass(name: str) -> None:
    """In-process (the student's kernel) and judged as grading does: full marks."""
    gid, source = OTHER_STYLES[name]
    _run_visible(gid, _namespace({gid: source}))
    harness.assert_full_marks(_judged({gid: source}), TEST_CELLS)


@pytest.mark.parametrize("name", list(BUGS))
def test_each_bug_fails_its_checks_with_its_cause_and_costs_nothing_else(name: str) -> None:
    """The visible check names the cause on every random draw, the hidden check fails too, and, judged as
    grading does, the bug loses exactly its own exercise's points, with the cause in the cell's error."""
    gid, source, message = BUGS[name]
    ns = _namespace({gid: source})
    with pytest.raises(CheckFailure) as info:  # every random draw must catch it: this one and the judged one
        _run_visible(gid, ns)
    assert message in str(info.value), str(info.value)
    with pytest.raises(CheckFailure):
        _run_hidden(gid, ns)
    scores = _judged({gid: source})
    harness.assert_only_cells_lose_points(scores, EXERCISE_TESTS[gid], what=f"{name} in {gid}",
                                          expected_ids=TEST_CELLS)
    for cell in EXERCISE_TESTS[gid]:
        assert message in scores[cell].error, scores[cell].error


def test_the_graders_own_judgement_catches_every_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hidden checks' verdicts do not rest on the kernel's: with a kernel that says every visible check
    passed, each bug still fails its hidden check, judged from observations, and the solution and the other
    styles still pass."""
    real = checks.kernel_probe

    def lying(name: str, *args: object, **kwargs: object) -> tuple[str, object]:
        return ("ok", "") if name.startswith("verify_") else real(name, *args, **kwargs)

    monkeypatch.setattr(checks, "kernel_probe", lying)
    for name, (gid, source, _) in BUGS.items():
        with pytest.raises(CheckFailure):
            _run_hidden(gid, _namespace({gid: source}))
            pytest.fail(f"{name} passed the grader's own judgement")
    for gid, source in [*OTHER_STYLES.values(), *((gid, None) for gid in EXERCISE_TESTS)]:
        _run_hidden(gid, _namespace(None if source is None else {gid: source}))


def test_a_failure_ends_with_the_call_that_repeats_it() -> None:
    """The last line names the exact call with the seed; running it (seed given by position too) repeats the
    same failure word for word, and no other seed note is left inside the message."""
    gid, source, _ = BUGS["sgd_momentum_average_after_first_step"]
    ns = _namespace({gid: source})
    with pytest.raises(CheckFailure) as info:
        checks.check_sgd_step(*_args(gid, ns))
    text = str(info.value)
    found = re.search(r"\n" + re.escape(repeat_line("checks.check_sgd_step(SGD, Parameter, seed=@)")).replace(
        "@", r"(\d+)") + "$", text)
    assert found and text.count("seed") == 1, text
    with pytest.raises(CheckFailure) as again:
        checks.check_sgd_step(*_args(gid, ns), int(found.group(1)))
    assert str(again.value) == text


def _blank(gid: str) -> str:
    """Answer cell `gid` as released: each solution block becomes `raise NotImplementedError()`."""
    cell = next(c for c in nbformat.read(NOTEBOOK, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    return re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION",
                  r"\1# YOUR CODE HERE\n\1raise NotImplementedError()", cell.source, flags=re.S)


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_a_blank_exercise_gets_the_one_not_done_message(gid: str) -> None:
    ns = _namespace({gid: _blank(gid)})
    for run in (_run_visible, _run_hidden):
        with pytest.raises(NotDone) as info:
            run(gid, ns)
        assert "is not written yet" in str(info.value)
    scores = _judged({gid: _blank(gid)})
    harness.assert_only_cells_lose_points(scores, EXERCISE_TESTS[gid], what=f"blank {gid}",
                                          expected_ids=TEST_CELLS)
    assert all("is not written yet" in scores[cell].error for cell in EXERCISE_TESTS[gid])


@pytest.mark.parametrize("gid", list(EXERCISE_TESTS))
def test_a_passing_visible_check_prints_one_line_saying_what_it_compared(
    solution_ns: dict, gid: str, capsys: pytest.CaptureFixture
) -> None:
    _run_visible(gid, solution_ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("passed: ") and "seed" in lines[0], lines


def test_the_answers_the_bugs_are_edited_from_are_correct() -> None:
    """Each bug is one change away from a correct answer: so the bug, not the base, is what fails."""
    for gid, source in (("sgd_step", _SGD), ("adam_step", _ADAM), ("train_epoch", _TRAIN_EPOCH),
                        ("evaluate", _EVALUATE)):
        ns = _namespace({gid: source})
        for _ in range(2):
            _run_check(gid, ns)


def _demo_output(replace: dict[str, str], *fragments: str, **data: object) -> str:
    """What the one demo (ungraded) code cell holding every fragment prints, run after the notebook's
    answers (some replaced) with ``data`` (small stand-ins for the digits) in the namespace."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"
             and "nbgrader" not in c.metadata and all(f in c.source for f in fragments)]
    assert len(cells) == 1, fragments
    ns = {**_namespace(replace), **data}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(cells[0], "<demo cell>", "exec"), ns)
    return out.getvalue()


def _digits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 64)), rng.integers(0, 10, n)


# a wrong answer that breaks a demo cell: (bug, fragments naming the cell, what the one line must say)
DEMO_BUGS = {
    "linear_weight_transposed": (("layer(x).backward(G)",), "Run the test cells of exercise 2"),
    "sgd_velocity_assumed_zero": (("rosenbrock_path",), "Run the test cell of exercise 3"),
    "parameters_ignores_lists": (("final test accuracy",), "test cells of exercises 1, 2, 4, 5 and 6"),
    "evaluate_accuracy_as_a_count": (("final test accuracy",), "not a fraction between 0 and 1"),
}


@pytest.mark.parametrize("name", list(DEMO_BUGS))
def test_a_demo_broken_by_a_wrong_answer_says_so_in_one_line(name: str) -> None:
    gid, source, _ = BUGS[name]
    fragments, message = DEMO_BUGS[name]
    rng = np.random.default_rng(0)
    (X_train, y_train), (X_test, y_test) = _digits(rng, 40), _digits(rng, 20)
    text = _demo_output({gid: source}, *fragments, X_train=X_train, y_train=y_train, X_test=X_test,
                        y_test=y_test)
    assert message in text and "final test accuracy" not in text, text
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 2, text


def test_the_named_adam_slips_are_adam_when_nothing_is_slipped() -> None:
    """The hidden module's run of Adam with a named mistake is reference_impl's Adam without the mistake,
    also with parameters that sometimes have no gradient."""
    from reference_impl.optim import Adam as RefAdam

    rng = np.random.default_rng(1)
    starts = [rng.standard_normal(4), rng.standard_normal(2)]
    grads = [[rng.standard_normal(4), None if t % 2 else rng.standard_normal(2)] for t in range(7)]
    want = hidden._reference_run(lambda ps: RefAdam(ps, lr=0.01, betas=(0.7, 0.95), eps=1e-6), starts, grads)
    got = hidden._adam_slip(starts, grads, 0.01, (0.7, 0.95), 1e-6)
    for g_step, w_step in zip(got, want, strict=True):
        for g, w in zip(g_step, w_step, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------------------
# The notebook as nbgrader runs it
# ---------------------------------------------------------------------------------------------------------

SOLUTION_MARKERS = [
    "children = [item for value in vars(module).values()",
    "if isinstance(item, Parameter) and id(item) not in seen:",
    "self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))",
    "return x @ self.weight.T + self.bias",
    "self.velocity[i] = self.momentum * self.velocity[i] + g",
    "m_hat = self.m[i] / (1 - b1 ** t)",
    "total += loss.item() * len(idx)",
    "correct += int((out.data.argmax(axis=1) == yb).sum())",
    "the direction is dominated by old gradients",
]
TEST_CELLS = [t for tests in EXERCISE_TESTS.values() for t in tests]

notebooks, source_nb = harness.notebook_fixtures(NOTEBOOK)
# the given cells need numpy, which the notebook imports in an ungraded cell
NUMPY = "import numpy as np"


@pytest.mark.slow
def test_source_notebook_gets_full_marks(notebooks, source_nb) -> None:  # noqa: ANN001
    harness.assert_full_marks(harness.run_and_grade(notebooks, source_nb), TEST_CELLS)


@pytest.mark.slow
def test_student_version_has_no_solutions_and_scores_zero(notebooks, source_nb) -> None:  # noqa: ANN001
    text = harness.released_text(notebooks.student_version(source_nb))
    for marker in [*SOLUTION_MARKERS, *harness.SOLUTION_MARKERS]:
        assert marker not in text, marker
    # the loop's steps (optimizer.zero_grad(), optimizer.step()) are quoted in the instructions on purpose
    student_nb = notebooks.student_version(source_nb)
    harness.assert_no_leaks(source_nb, student_nb, at_least=45, unless_outside="text")
    executed = notebooks.execute(student_nb)
    harness.assert_zero_everywhere(notebooks.grade(executed), TEST_CELLS)
    # each test cell ends in the one blank-exercise message; every demo cell says what to complete instead
    for cell in executed.cells:
        errors = [out for out in cell.get("outputs", []) if out.output_type == "error"]
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid in TEST_CELLS:
            assert len(errors) == 1 and "is not written yet" in errors[0].evalue, (gid, errors)
        else:
            assert not errors, (cell.source[:80], errors)


# A few representatives through the real grading path; every bug is tested in-process above (its own check
# fails, the others pass), so a kernel run per bug would only repeat that, slowly.
NOTEBOOK_BUGS = [
    "sgd_momentum_average_after_first_step",
    "train_epoch_labels_in_stored_order",
    "evaluate_argmax_over_the_batch",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_BUGS)
def test_injected_bug_loses_only_its_points(notebooks, source_nb, name: str) -> None:  # noqa: ANN001
    gid, source, _ = BUGS[name]
    nb = notebooks.with_cell_source(harness.graded_cells_only(source_nb, NUMPY), gid, source)
    harness.assert_only_cells_lose_points(harness.run_and_grade(notebooks, nb), EXERCISE_TESTS[gid],
                                          what=f"{name} in {gid}", expected_ids=TEST_CELLS)


# ---------------------------------------------------------------------------------------------------------
# The student kit: the visible module is shipped, so it must hold no answer and work without the hidden side
# ---------------------------------------------------------------------------------------------------------

def test_visible_module_holds_no_solution_line() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = Path(checks.__file__).read_text()
    lines = harness.solution_lines(nb, unless_outside="text")  # the loop's steps are quoted in the text
    assert len(lines) > 30
    for line in lines:
        assert line not in text, f"the shipped module contains a solution line: {line!r}"


def test_visible_module_holds_no_optimiser() -> None:
    """Neither the optimisers' closed forms nor a gradient step is written out in the shipped module."""
    text = Path(checks.__file__).read_text()
    for fragment in ("def sgd_expected", "def adam_expected", "momentum ** (t - k)", "b1 ** (t - k)",
                     "self.lr * p.grad", "lr * total"):
        assert fragment not in text, fragment


def test_visible_module_imports_nothing_hidden() -> None:
    """One-way imports: the shipped module never reaches for the hidden checks (nothing to fall back from)."""
    assert "hidden" not in "".join(line for line in Path(checks.__file__).read_text().splitlines()
                                   if "import" in line)


def kit_script() -> str:
    """The notebook's given, answer and test cells in order (test cells cut before the hidden tests), with
    the hidden modules blocked: what a student with correct answers runs from the kit."""
    script = harness.visible_cells_script(nbformat.read(NOTEBOOK, as_version=4), NUMPY)
    return (f"from autograder import lesson07\n\n{script}\n"
            "print('kit checks passed')\n")


@pytest.mark.slow
def test_visible_checks_pass_the_solutions_without_the_hidden_modules() -> None:
    done = harness.run_in_student_kit(kit_script(), NOTEBOOK.parent, timeout=600)
    assert "kit checks passed" in done.stdout
