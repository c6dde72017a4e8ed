"""Recognisable wrong VJPs for lesson 05's unary and softmax exercises (instructor only, never shipped).

Each diagnosis is a wrong formula a student typically writes; several are one step from the right VJP
(swap ans for exp(ans), subtract the one-hot term), so a shipped copy would hand students the answer. The
visible checks import this module when it exists (on the grader's machine) to name the mistake in their
messages; in a student's kit they give the exercise's hint without the diagnosis.
"""

from __future__ import annotations

import numpy as np

from autograder.lesson05 import Diagnosis, numerical_vjp, trusted_cross_entropy, trusted_softmax


def unary_diagnoses(name: str) -> list[Diagnosis]:
    """Typical wrong elementwise VJPs, each named by the rule it breaks (not by the right formula)."""
    table: dict[str, list[Diagnosis]] = {
        "np.log": [
            ("you used the output ans: log's derivative is a function of its input x.",
             lambda g, ans, x: [g * ans, g / ans]),
            ("you multiplied g by x: the derivative of log x is not x (differentiate log, then multiply).",
             lambda g, ans, x: [g * x]),
        ],
        "np.tanh": [
            ("you used the input x where tanh's derivative needs tanh(x) itself, which ans already holds.",
             lambda g, ans, x: [g * (1.0 - x**2)]),
            ("you squared (1 - ans): recheck which quantity tanh's derivative squares.",
             lambda g, ans, x: [g * (1.0 - ans) ** 2]),
        ],
        "np.exp": [
            ("you multiplied g by x: exp's derivative is not x.", lambda g, ans, x: [g * x]),
        ],
        "relu": [
            ("you applied relu to g: whether gradient flows depends on the sign of x, not of g.",
             lambda g, ans, x: [np.maximum(g, 0.0)]),
        ],
    }
    return table.get(name, [])


def softmax_diagnoses(axis: int) -> list[Diagnosis]:
    """Typical wrong softmax VJPs (ans is the softmax s)."""
    return [
        ("you kept only the diagonal of the Jacobian, g * s * (1 - s). Softmax's Jacobian also has the "
         "off-diagonal terms -s_i s_j, because every output depends on every input along `axis`.",
         lambda g, s, x: [g * s * (1.0 - s)]),
    ]


def log_softmax_diagnoses(axis: int) -> list[Diagnosis]:
    """Typical wrong log-softmax VJPs (ans is the log-softmax; the softmax is exp(ans))."""
    return [
        ("you used ans as the softmax: ans is the LOG-softmax, so the softmax is exp(ans).",
         lambda g, ans, x: [g - ans * np.sum(g, axis=axis, keepdims=True)]),
        ("your second term is the softmax alone: it must be the softmax times the sum of g along `axis`.",
         lambda g, ans, x: [g - np.exp(ans)]),
        ("you wrote the softmax's VJP; log-softmax's Jacobian is I - 1 s^T, so g itself is the first term.",
         lambda g, ans, x: [numerical_vjp(lambda v: trusted_softmax(v, axis), x, g)]),
    ]


def cross_entropy_diagnoses(labels: np.ndarray) -> list[Diagnosis]:
    """Typical wrong cross-entropy VJPs for the logits."""
    def probs(z):
        return trusted_softmax(z, -1)

    def right(g, z):
        return numerical_vjp(lambda v: trusted_cross_entropy(v, labels), z, g)

    return [
        ("you left out the one-hot term: only the entries at the labels are wrong.",
         lambda g, ans, z: [g * probs(z) / len(z)]),
        ("you did not divide by the batch size N: the loss is the MEAN over the batch.",
         lambda g, ans, z: [len(z) * right(g, z)]),
        ("you did not multiply by the upstream gradient g (a scalar here, but not 1 in general).",
         lambda g, ans, z: [right(1.0, z)]),
    ]
