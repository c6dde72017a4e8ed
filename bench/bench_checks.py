"""Cost of `check_vjp` on f: R^n -> R^n, against the forward pass and a full finite-difference Jacobian.

The checker compares element by element up to FULL_LIMIT inputs and with Gaussian projection probes
beyond; this prints what each path costs, in forward-pass units, next to what the naive alternative
(a full Jacobian by central differences: 2n forward calls) would cost on the same machine in the same run.

    python bench/bench_checks.py
"""

from __future__ import annotations

import time

import numpy as np

from autograder.checks import FULL_LIMIT, check_vjp


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _naive_jacobian_vjp(f, x: np.ndarray, g: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The textbook alternative: build the whole Jacobian by central differences, then J^T g."""
    jac = np.empty((g.size, x.size))
    for j in range(x.size):
        step = np.zeros_like(x)
        step[j] = h
        jac[:, j] = (f(x + step) - f(x - step)) / (2 * h)
    return jac.T @ g


def main() -> None:
    rng = np.random.default_rng(0)
    f = np.tanh

    def vjp(g, ans, x):
        return g * (1 - ans * ans)

    print(f"check_vjp on tanh: R^n -> R^n (element-by-element up to {FULL_LIMIT} inputs, projections beyond)")
    print(f"{'n':>9} {'mode':>11} {'check (s)':>10} {'forward (s)':>12} {'check/forward':>14} "
          f"{'full FD Jacobian (s)':>21} {'Jacobian/check':>15}")
    for n in (10**2, 10**4, 10**6):
        x = rng.standard_normal(n)
        repeat = 5 if n <= 10**4 else 3
        t_forward = _best(lambda x=x: f(x), 20)
        t_check = _best(lambda x=x: check_vjp(f, vjp, x), repeat)
        mode = check_vjp(f, vjp, x).mode
        if n <= 10**4:
            g = rng.standard_normal(n)
            t_jac = _best(lambda x=x, g=g: _naive_jacobian_vjp(f, x, g), 1)
            jac = f"{t_jac:21.3f}"
        else:
            t_jac = 2 * n * t_forward  # 2n forward calls; building it would need 8 TB of memory
            jac = f"{'~' + format(t_jac, '.0f'):>21}"
        print(f"{n:9d} {mode:>11} {t_check:10.4f} {t_forward:12.2e} {t_check / t_forward:14.0f} {jac} "
              f"{t_jac / t_check:15.1f}")


if __name__ == "__main__":
    main()
