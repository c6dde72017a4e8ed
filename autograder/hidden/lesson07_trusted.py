"""Closed forms of the optimisers for lesson 07 (instructor only: never shipped, they are the answers).

The SGD and Adam updates unrolled over a gradient history, and the updates of typical slips (an
exponential average for momentum, with or without b = g at the first step, no bias correction, t stuck
at 1), so the visible checks can name the slip when grading. Students' kits lack this module; there the
checks judge the optimisers by properties of the update instead.
"""

from __future__ import annotations

import numpy as np


def sgd_expected(p0: np.ndarray, grads: list[np.ndarray], lr: float, momentum: float, *,
                 dampening: float = 0.0) -> list[np.ndarray]:
    """Parameter after each step: b_t = sum_k w_k momentum^(t-k) g_k, p_t = p_0 - lr * sum_{s<=t} b_s,
    with w_1 = 1 and w_k = 1 - dampening after it (PyTorch's dampening; dampening = momentum is the
    exponential-average slip that starts from b = g)."""
    out, total = [], np.zeros_like(p0)
    for t in range(1, len(grads) + 1):
        b = sum((1.0 if k == 1 else 1.0 - dampening) * momentum ** (t - k) * grads[k - 1]
                for k in range(1, t + 1))
        total = total + b
        out.append(p0 - lr * total)
    return out


def adam_expected(
    p0: np.ndarray,
    grads: list[np.ndarray],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    *,
    bias_correction: bool = True,
    frozen_t: bool = False,
) -> list[np.ndarray]:
    """Parameter after each Adam step from the unrolled averages m_t = (1-b1) sum_k b1^(t-k) g_k (and v)."""
    b1, b2 = betas
    out, p = [], p0.copy()
    for t in range(1, len(grads) + 1):
        m = (1 - b1) * sum(b1 ** (t - k) * grads[k - 1] for k in range(1, t + 1))
        v = (1 - b2) * sum(b2 ** (t - k) * grads[k - 1] ** 2 for k in range(1, t + 1))
        tc = 1 if frozen_t else t
        if bias_correction:
            m, v = m / (1 - b1**tc), v / (1 - b2**tc)
        p = p - lr * m / (np.sqrt(v) + eps)
        out.append(p.copy())
    return out
