"""One full training step (forward, backward, SGD-with-momentum update) of the same MLP in three
implementations, timed side by side in one process:

- lib:   reference_impl (Tensor + nn + optim), the library the course builds;
- numpy: the same network written by hand in numpy, the floor any numpy library sits on;
- torch: PyTorch CPU, when installed.

Sizes: small = batch 64, 64 -> 128 -> 10, float64 (per-op overhead dominates);
       large = batch 512, 784 -> 1024 -> 1024 -> 10, float32 (matrix products dominate).
Targets (issue 4): large within 1.15x of numpy; small within 2x of numpy and no slower than torch.

Timing: the implementations run interleaved, in rounds, and each round's per-step time is recorded; the
report gives the median over rounds (and the best), so a burst of load from other processes hits all
three alike. Both wall-clock time and this process's CPU time are measured; with one thread (the default)
CPU time is the work each implementation does and is barely disturbed by other processes competing for
the cores, so the ratios (lib / numpy, lib / torch) are computed from it. Wall-clock is shown too.

Memory: the bytes of the arrays each implementation keeps alive for its backward pass after the forward
(the saved activations, counted once per buffer, parameters excluded, the input batch included), and for
lib and numpy the peak of traced numpy allocation during one whole step (tracemalloc; torch allocations
are invisible to it).

Usage: python bench/bench_training.py [--rounds N] [--threads N (default 1; 0 = library defaults)]
                                      [--sizes small,large]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from reference_impl import nn, optim
from reference_impl.tensor import Node, Tensor, cross_entropy

try:
    import torch
except ImportError:  # the benchmark still compares lib with numpy
    torch = None

LR, MOMENTUM = 0.01, 0.9
SIZES = {
    "small": dict(batch=64, widths=(64, 128, 10), dtype=np.float64, steps=200),
    "large": dict(batch=512, widths=(784, 1024, 1024, 10), dtype=np.float32, steps=3),
}


def initial_weights(widths: tuple[int, ...], dtype, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyTorch's default Linear initialisation, drawn once and shared by all three implementations."""
    shapes = zip(widths[:-1], widths[1:], strict=True)
    layers = [nn.Linear(i, o, seed=seed + k, dtype=dtype) for k, (i, o) in enumerate(shapes)]
    return [(layer.weight.data.copy(), layer.bias.data.copy()) for layer in layers]


# ------------------------------------------------------------------------------------ implementations
class LibStep:
    def __init__(self, weights, X, y):
        layers: list[nn.Module] = []
        for W, b in weights:
            linear = nn.Linear(W.shape[1], W.shape[0], seed=0, dtype=W.dtype)
            linear.weight.data[...], linear.bias.data[...] = W, b
            layers += [linear, nn.ReLU()]
        self.model = nn.Sequential(*layers[:-1])
        self.opt = optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.X, self.y = Tensor(X), y

    def forward(self) -> Tensor:
        return cross_entropy(self.model(self.X), self.y)

    def __call__(self) -> float:
        self.opt.zero_grad()
        loss = self.forward()
        loss.backward()
        self.opt.step()
        return loss.item()

    def saved_bytes(self) -> int:
        params = {id(p.data) for p in self.model.parameters()}
        loss = self.forward()
        seen: dict[int, int] = {}
        stack, visited = [loss.grad_fn], set()
        while stack:
            node = stack.pop()
            if node is None or id(node) in visited or not isinstance(node, Node):
                continue
            visited.add(id(node))
            for a in (*node.args, node.ans):
                if isinstance(a, np.ndarray):
                    owner = a if a.base is None else a.base
                    if id(owner) not in params:
                        seen[id(owner)] = owner.nbytes
            stack.extend(p for p, _ in node.next_functions)
        return sum(seen.values())


class NumpyStep:
    """The same network and update written out by hand: what a careful numpy programmer would write."""

    def __init__(self, weights, X, y):
        self.params = [(W.copy(), b.copy()) for W, b in weights]
        self.buffers = [(np.zeros_like(W), np.zeros_like(b)) for W, b in weights]
        self.first = True
        self.X, self.y = X, y

    def forward(self):
        cache, h = [], self.X
        last = len(self.params) - 1
        for k, (W, b) in enumerate(self.params):
            z = h @ W.T + b
            cache.append(h)  # the layer input, for the weight gradient; it is also relu's mask
            h = np.maximum(z, 0) if k < last else z
        shifted = h - h.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        n = len(self.y)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), self.y]))
        probs = e / s
        return loss, cache, probs

    def __call__(self) -> float:
        loss, cache, d = self.forward()
        n = len(self.y)
        d[np.arange(n), self.y] -= 1
        d /= n
        grads = []
        for k in range(len(self.params) - 1, -1, -1):
            h = cache[k]
            W, _ = self.params[k]
            grads.append((d.T @ h, d.sum(axis=0)))
            if k:
                d = (d @ W) * (h > 0)
        for (W, b), (bW, bb), (gW, gb) in zip(self.params, self.buffers, reversed(grads), strict=True):
            if self.first:
                bW[...], bb[...] = gW, gb
            else:
                bW *= MOMENTUM
                bW += gW
                bb *= MOMENTUM
                bb += gb
            W -= LR * bW
            b -= LR * bb
        self.first = False
        return loss

    def saved_bytes(self) -> int:
        _, cache, probs = self.forward()
        return sum(a.nbytes for a in [*cache, probs])


class TorchStep:
    def __init__(self, weights, X, y):
        layers: list[torch.nn.Module] = []
        for W, b in weights:
            linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64 if W.dtype == np.float64
                                     else torch.float32)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b))
            layers += [linear, torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1])
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)

    def __call__(self) -> float:
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(self.X), self.y)
        loss.backward()
        self.opt.step()
        return loss.item()

    def saved_bytes(self) -> int:
        params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        seen: dict[int, int] = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params:
                seen[ptr] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            torch.nn.functional.cross_entropy(self.model(self.X), self.y)
        return sum(seen.values())


# ------------------------------------------------------------------------------------------ harness
def peak_step_bytes(step: Callable[[], float]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - before


def run_size(name: str, rounds: int) -> dict:
    cfg = SIZES[name]
    rng = np.random.default_rng(0)
    dtype, widths = cfg["dtype"], cfg["widths"]
    X = rng.standard_normal((cfg["batch"], widths[0])).astype(dtype)
    y = rng.integers(0, widths[-1], cfg["batch"])
    weights = initial_weights(widths, dtype)
    impls = {"lib": LibStep(weights, X, y), "numpy": NumpyStep(weights, X, y)}
    if torch is not None:
        impls["torch"] = TorchStep(weights, X, y)
    first = {k: step() for k, step in impls.items()}  # warm up; the first losses must agree
    spread = max(first.values()) - min(first.values())
    tol = 1e-9 if dtype == np.float64 else 1e-4
    if spread > tol:
        raise AssertionError(f"{name}: the implementations disagree on the first loss: {first}")
    times: dict[str, list[float]] = {k: [] for k in impls}
    walls: dict[str, list[float]] = {k: [] for k in impls}
    steps = cfg["steps"]
    for _ in range(rounds):
        for k, step in impls.items():
            w0, t0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            times[k].append((time.process_time() - t0) / steps)
            walls[k].append((time.perf_counter() - w0) / steps)
    result = {"times": times, "walls": walls, "saved": {k: s.saved_bytes() for k, s in impls.items()},
              "peak": {k: peak_step_bytes(impls[k]) for k in ("lib", "numpy")}}
    return result


def report(name: str, result: dict) -> None:
    cfg = SIZES[name]
    med = {k: statistics.median(v) for k, v in result["times"].items()}
    best = {k: min(v) for k, v in result["times"].items()}
    wall = {k: statistics.median(v) for k, v in result["walls"].items()}
    print(f"\n== {name}: batch {cfg['batch']}, {' -> '.join(map(str, cfg['widths']))}, "
          f"{np.dtype(cfg['dtype']).name}, {len(result['times']['lib'])} rounds x {cfg['steps']} steps")
    for k in med:
        peak = result["peak"].get(k)
        print(f"  {k:6s} step CPU: median {med[k] * 1e3:8.3f} ms  best {best[k] * 1e3:8.3f} ms  "
              f"(wall median {wall[k] * 1e3:8.3f} ms)  "
              f"saved activations {result['saved'][k] / 2**20:8.2f} MiB"
              + (f"   peak traced during step {peak / 2**20:8.2f} MiB" if peak is not None else ""))
    for other in ("numpy", "torch"):
        if other in med:
            print(f"  lib / {other}: median {med['lib'] / med[other]:.2f}x   "
                  f"best {best['lib'] / best[other]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and torch threads (default 1: on a shared machine, idle BLAS threads "
                             "spin and turn small-size timings into noise); 0 = the libraries' defaults")
    parser.add_argument("--sizes", default="small,large")
    args = parser.parse_args()
    limiter = None
    if args.threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
                                       if torch is not None else ", torch not installed")
          + (f", BLAS threads limited to {args.threads}" if limiter else ", default BLAS threads"))
    for name in args.sizes.split(","):
        report(name, run_size(name, args.rounds))


if __name__ == "__main__":
    main()
