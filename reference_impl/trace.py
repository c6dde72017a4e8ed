"""Look inside a `Value` graph: list its nodes and edges, or draw it with matplotlib alone.

Drawing needs no graphviz binary (a frequent install failure in courses that use it): the layered
layout is computed here.  Inputs sit to the left of the values computed from them; each non-leaf value
has its op drawn as a small circle just left of its box, and each box shows the value's data and grad.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reference_impl.scalar import Value, topological_order

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["draw_graph", "graph_layers", "nodes_and_edges"]

MAX_DRAWN_NODES = 150


def nodes_and_edges(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """All nodes reachable from ``root`` (inputs before their users) and the edges (input, output).

    One edge per input slot, so ``a + a`` gives the edge (a, a + a) twice, just as ``a`` receives two
    gradient contributions in the backward pass.  Iterative, so any depth works.
    """
    nodes = topological_order(root)
    edges = [(parent, node) for node in nodes for parent in node.inputs]
    return nodes, edges


def graph_layers(root: Value) -> list[list[Value]]:
    """The nodes grouped into columns for drawing, left to right, ordered to limit edge crossings.

    A non-leaf's column is one past its furthest input (longest path from the leaves); a leaf sits one
    column before its first user, so a constant is drawn next to the op that uses it.
    """
    nodes, edges = nodes_and_edges(root)
    users: dict[Value, list[Value]] = {node: [] for node in nodes}
    for parent, node in edges:
        users[parent].append(node)
    column: dict[Value, int] = {}
    for node in nodes:  # topological order: inputs already have their column
        column[node] = 1 + max((column[p] for p in node.inputs), default=-1)
    for node in nodes:
        if node.is_leaf and users[node]:
            column[node] = min(column[u] for u in users[node]) - 1
    n_columns = max(column.values()) + 1
    layers: list[list[Value]] = [[] for _ in range(n_columns)]
    for node in nodes:
        layers[column[node]].append(node)

    # Barycentre heuristic: sort each column by the mean position of its neighbours, sweeping both ways.
    position = {node: i for layer in layers for i, node in enumerate(layer)}

    def centred(node: Value) -> float:
        return position[node] - (len(layers[column[node]]) - 1) / 2

    def reorder(layer: list[Value], neighbours: Mapping[Value, list[Value]]) -> None:
        def key(node: Value) -> tuple[float, int]:
            near = neighbours[node]
            mean = sum(centred(n) for n in near) / len(near) if near else centred(node)
            return (mean, position[node])

        layer.sort(key=key)
        for i, node in enumerate(layer):
            position[node] = i

    inputs = {node: list(node.inputs) for node in nodes}
    for _sweep in range(4):
        for layer in layers[1:]:
            reorder(layer, inputs)
        for layer in reversed(layers[:-1]):
            reorder(layer, users)
    return layers


def _box_text(node: Value, label: str | None) -> str:
    head = f"{label} | " if label else ""
    return f"{head}data {node.data:.4g}\ngrad {node.grad:.4g}"


def draw_graph(root: Value, ax: Axes | None = None, labels: Mapping[Value, str] | None = None) -> Axes:
    """Draw the graph ending at ``root``: boxes with data and grad, op names in circles, arrows forward.

    ``labels`` optionally names some nodes (``{x: "x", w: "w"}``).  Graphs up to a few dozen nodes are
    legible; more than MAX_DRAWN_NODES is refused rather than drawn as an unreadable blot.
    Returns the Axes drawn on (a new figure sized to the graph when ``ax`` is None).
    """
    import matplotlib.pyplot as plt

    if not isinstance(root, Value):
        raise TypeError(f"draw_graph needs a Value, got {type(root).__name__}")
    layers = graph_layers(root)
    n_nodes = sum(len(layer) for layer in layers)
    if n_nodes > MAX_DRAWN_NODES:
        raise ValueError(
            f"the graph has {n_nodes} nodes; a drawing is only legible up to about {MAX_DRAWN_NODES}. "
            "Draw a smaller piece of it (call draw_graph on an intermediate Value)."
        )
    labels = labels or {}
    height = max(len(layer) for layer in layers)
    if ax is None:
        _fig, ax = plt.subplots(figsize=(max(4.0, 2.6 * len(layers)), max(2.0, 1.0 * height + 0.6)))

    dx, dy = 2.6, 1.0
    boxes = {}
    for col, layer in enumerate(layers):
        for row, node in enumerate(layer):
            x, y = col * dx, ((len(layer) - 1) / 2 - row) * dy
            if node is root:
                face = "#ffd9a8"
            elif node.is_leaf:
                face = "#cfe3f7"
            else:
                face = "#f4f4f4"
            boxes[node] = ax.text(
                x,
                y,
                _box_text(node, labels.get(node)),
                ha="center",
                va="center",
                fontsize=8,
                family="monospace",
                zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": "#555555"},
            )
            if not node.is_leaf:
                shape = "circle,pad=0.3" if len(node.op) <= 2 else "round,pad=0.3"
                op_text = ax.text(
                    x - 0.5 * dx,
                    y,
                    node.op,
                    ha="center",
                    va="center",
                    fontsize=8,
                    zorder=3,
                    bbox={"boxstyle": shape, "facecolor": "#fff2b3", "edgecolor": "#555555"},
                )
                _arrow(ax, op_text, boxes[node])
                a, b = (node.inputs + (None,))[:2]
                _arrow(ax, boxes[a], op_text, bend=0.3 if a is b else 0.0)
                if b is not None:
                    _arrow(ax, boxes[b], op_text, bend=-0.3 if a is b else 0.0)
    ax.set_xlim(-0.6 * dx, (len(layers) - 0.4) * dx)
    ax.set_ylim(-(height / 2 + 0.2) * dy, (height / 2 + 0.2) * dy)
    ax.set_axis_off()
    return ax


def _arrow(ax: Axes, source: object, target: object, bend: float = 0.0) -> None:
    """An arrow between two drawn boxes; ``bend`` curves it so that the two edges of ``a + a`` show."""
    ax.annotate(
        "",
        xy=(0.0, 0.5),
        xycoords=target,
        xytext=(1.0, 0.5),
        textcoords=source,
        zorder=2,
        arrowprops={
            "arrowstyle": "-|>",
            "color": "#555555",
            "shrinkA": 4,
            "shrinkB": 4,
            "lw": 0.8,
            "connectionstyle": f"arc3,rad={bend}",
        },
    )
