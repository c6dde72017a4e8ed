"""Scalar engine benchmark: forward + backward throughput and memory on a graph of ~10^5 nodes.

The workload is a small ReLU multilayer perceptron written with scalar ops (+, *, relu, -, **), the
graph micrograd-style engines exist for.  The same forward is also computed with plain Python floats
(the floor: no graph at all) and, when the `micrograd` package is importable, with micrograd's Value.
All engines run in the same process, interleaved, best of N; the figures to read are the ratios.
Times are this process's CPU time (time.process_time, garbage collection included), which other jobs
on a shared machine disturb far less than wall-clock time.

    .venv/bin/python bench/bench_scalar.py [--layers 32] [--width 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_impl.scalar import Value, topological_order  # noqa: E402


@dataclass
class Params:
    inputs: list[float]
    weights: list[list[list[float]]]  # [layer][unit][input]
    biases: list[list[float]]


def make_params(layers: int, width: int, seed: int = 0) -> Params:
    rng = random.Random(seed)
    return Params(
        inputs=[rng.uniform(-1, 1) for _ in range(width)],
        weights=[
            [[rng.gauss(0, 1.5 / width**0.5) for _ in range(width)] for _ in range(width)]
            for _ in range(layers)
        ],
        biases=[[rng.uniform(-0.1, 0.1) for _ in range(width)] for _ in range(layers)],
    )


def as_leaves(p: Params, leaf: Callable[[float], object]) -> Params:
    """The same numbers as an engine's leaves, made once (as a model's parameters are), outside timing."""
    return Params(
        inputs=[leaf(x) for x in p.inputs],
        weights=[[[leaf(w) for w in unit] for unit in layer] for layer in p.weights],
        biases=[[leaf(b) for b in layer] for layer in p.biases],
    )


def forward(p: Params, relu: Callable[[object], object]):
    """An MLP forward pass and squared-error loss, for any engine whose numbers support + * - ** ."""
    h = p.inputs
    for layer_w, layer_b in zip(p.weights, p.biases, strict=True):
        new = []
        for unit_w, b in zip(layer_w, layer_b, strict=True):
            acc = b
            for w, x in zip(unit_w, h, strict=True):
                acc = acc + w * x
            new.append(relu(acc))
        h = new
    loss = 0.0
    for o in h:
        loss = (o - 0.5) ** 2 + loss
    return loss


def float_relu(x: float) -> float:
    return x if x > 0.0 else 0.0


@dataclass
class Engine:
    name: str
    leaf: Callable[[float], object]
    relu: Callable[[object], object]
    backward: Callable[[object], None] | None


def engines() -> list[Engine]:
    found = [
        Engine("python floats (no graph)", float, float_relu, None),
        Engine("reference_impl.scalar", Value, Value.relu, Value.backward),
    ]
    try:
        from micrograd.engine import Value as MicroValue
    except ImportError:
        print("micrograd not importable: no comparison (pip install micrograd to add it; not a dependency)")
    else:
        found.append(Engine("micrograd", MicroValue, MicroValue.relu, MicroValue.backward))
    return found


def time_engine(engine: Engine, leaves: Params, *, gc_off: bool = False) -> tuple[float, float]:
    """CPU seconds for one forward and one backward pass (Python's cyclic GC on, as users run it)."""
    gc.collect()
    if gc_off:
        gc.disable()
    try:
        t0 = time.process_time()
        loss = forward(leaves, engine.relu)
        t1 = time.process_time()
        if engine.backward is not None:
            engine.backward(loss)
        t2 = time.process_time()
    finally:
        gc.enable()
    return t1 - t0, t2 - t1


def bytes_per_built_node(engine: Engine, leaves: Params, built: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loss = forward(leaves, engine.relu)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del loss
    return (after - before) / built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    params = make_params(args.layers, args.width)
    all_engines = engines()
    leaves = {e.name: as_leaves(params, e.leaf) for e in all_engines}
    ours = all_engines[1]
    graph = topological_order(forward(leaves[ours.name], ours.relu))
    total = len(graph)
    made_once = leaves[ours.name]
    param_ids = {id(v) for v in made_once.inputs}
    param_ids |= {id(w) for layer in made_once.weights for unit in layer for w in unit}
    param_ids |= {id(b) for layer in made_once.biases for b in layer}
    built = sum(1 for n in graph if id(n) not in param_ids)
    # micrograd's backward builds its topological order recursively: allow its depth (~layers * 2 * width).
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * args.layers * (2 * args.width + 2) + 1000))

    best = {e.name: [float("inf"), float("inf"), float("inf")] for e in all_engines}
    for _ in range(args.repeats):
        for e in all_engines:  # interleaved, so machine load hits every engine alike
            # The float forward takes milliseconds: repeat it more so that noise does not swamp it.
            runs = 10 if e.backward is None else 1
            fwd, bwd = min(time_engine(e, leaves[e.name]) for _ in range(runs))
            fwd_no_gc = min(time_engine(e, leaves[e.name], gc_off=True)[0] for _ in range(runs))
            best[e.name] = [
                min(best[e.name][0], fwd),
                min(best[e.name][1], bwd),
                min(best[e.name][2], fwd_no_gc),
            ]

    print(
        f"\nGraph: ReLU MLP, {args.layers} layers x {args.width} units, scalar ops: {total} nodes "
        f"({built} built by each forward pass, the rest are parameters made once).\n"
        f"Best of {args.repeats}, CPU time."
    )
    print(f"Python {sys.version.split()[0]}\n")
    header = (
        f"{'engine':<26} {'forward ms':>11} {'backward ms':>12} {'total ms':>9} "
        f"{'graph nodes/s':>14} {'bytes/node':>11} {'forward ms, GC off':>19}"
    )
    print(header)
    print("-" * len(header))
    for e in all_engines:
        fwd, bwd, fwd_no_gc = best[e.name]
        if e.backward is None:
            print(
                f"{e.name:<26} {fwd * 1e3:>11.1f} {'-':>12} {fwd * 1e3:>9.1f} {'-':>14} {'-':>11} "
                f"{fwd_no_gc * 1e3:>19.1f}"
            )
            continue
        per_node = bytes_per_built_node(e, leaves[e.name], built)
        print(
            f"{e.name:<26} {fwd * 1e3:>11.1f} {bwd * 1e3:>12.1f} {(fwd + bwd) * 1e3:>9.1f} "
            f"{total / (fwd + bwd):>14,.0f} {per_node:>11.0f} {fwd_no_gc * 1e3:>19.1f}"
        )
    print("\nbytes/node: memory allocated by one forward pass (tracemalloc) / nodes it built, data included.")
    print("GC off: the forward again with Python's cyclic garbage collector paused, to show what it costs.")

    ours_fwd, ours_bwd, _ = best[ours.name]
    floor = best[all_engines[0].name][0]
    print(
        f"\nreference_impl.scalar forward / plain-float forward: {ours_fwd / floor:.1f}x "
        "(the cost of building the graph)"
    )
    if len(all_engines) > 2:
        mg_fwd, mg_bwd, _ = best["micrograd"]
        print(
            f"micrograd / reference_impl.scalar: forward {mg_fwd / ours_fwd:.2f}x, backward "
            f"{mg_bwd / ours_bwd:.2f}x, forward+backward {(mg_fwd + mg_bwd) / (ours_fwd + ours_bwd):.2f}x "
            "(> 1 means ours is faster)"
        )


if __name__ == "__main__":
    main()
