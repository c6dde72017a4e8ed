"""Look inside a `Value` graph: list its nodes and edges, or draw it with matplotlib alone.

Drawing needs no graphviz binary (a frequent install failure in courses that use it): the layered
layout is computed here, Sugiyama style (columns, waypoints where an edge skips columns, rows ordered by
the barycentre heuristic).  Inputs sit to the left of the values computed from them; each non-leaf
value has its op drawn as a small circle just left of its box, and each box shows data and grad.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reference_impl.scalar import Value, topological_order

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["draw_graph", "graph_layers", "nodes_and_edges"]

MAX_DRAWN_NODES = 150
_SWEEPS = 8  # ordering sweeps of each kind; cheap at the sizes drawn (<= MAX_DRAWN_NODES)


def nodes_and_edges(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """All nodes reachable from ``root`` (inputs before their users) and the edges (input, output).

    One edge per input slot, so ``a + a`` gives the edge (a, a + a) twice, just as ``a`` receives two
    gradient contributions in the backward pass.  Iterative, so any depth works.
    """
    nodes = topological_order(root)
    edges = [(parent, node) for node in nodes for parent in node.inputs]
    return nodes, edges


class _Waypoint:
    """Where an edge that skips columns crosses an intermediate column; it takes a row there, so no box
    is drawn on top of the edge (the dummy nodes of a Sugiyama layout)."""

    __slots__ = ()


@dataclass
class _Layout:
    columns: list[list[Value | _Waypoint]]  # each column top to bottom
    routes: list[tuple[Value, Value, list[_Waypoint]]]  # (input, user, waypoints between them)


def _layout(root: Value) -> _Layout:
    """Columns (as late as possible), waypoints for long edges, then barycentre ordering of the rows."""
    nodes, edges = nodes_and_edges(root)
    users: dict[Value, list[Value]] = {node: [] for node in nodes}
    for parent, node in edges:
        users[parent].append(node)
    depth: dict[Value, int] = {}
    for node in nodes:  # topological order: inputs already have their depth
        depth[node] = 1 + max((depth[p] for p in node.inputs), default=-1)
    column: dict[Value | _Waypoint, int] = {root: depth[root]}
    for node in reversed(nodes[:-1]):  # users first; every node but the root has one
        column[node] = min(column[u] for u in users[node]) - 1
    columns: list[list[Value | _Waypoint]] = [[] for _ in range(depth[root] + 1)]
    for node in nodes:
        columns[column[node]].append(node)

    # Neighbours in adjacent columns, for ordering; long edges are routed through waypoints.
    before: dict[Value | _Waypoint, list[Value | _Waypoint]] = {node: [] for node in nodes}
    after: dict[Value | _Waypoint, list[Value | _Waypoint]] = {node: [] for node in nodes}
    routes = []
    for parent, node in edges:
        chain: list[Value | _Waypoint] = [parent]
        for c in range(column[parent] + 1, column[node]):
            waypoint = _Waypoint()
            column[waypoint] = c
            columns[c].append(waypoint)
            before[waypoint], after[waypoint] = [], []
            chain.append(waypoint)
        chain.append(node)
        for left, right in zip(chain, chain[1:], strict=False):
            after[left].append(right)
            before[right].append(left)
        routes.append((parent, node, chain[1:-1]))

    # Barycentre heuristic: sort each column by the mean position of its neighbours, sweeping both ways.
    position = {item: i for col in columns for i, item in enumerate(col)}

    def centred(item: Value | _Waypoint) -> float:
        return position[item] - (len(columns[column[item]]) - 1) / 2

    def reorder(col: list[Value | _Waypoint], neighbours: Mapping[Value | _Waypoint, list]) -> None:
        def key(item: Value | _Waypoint) -> tuple[float, int]:
            near = neighbours[item]
            mean = sum(centred(n) for n in near) / len(near) if near else centred(item)
            return (mean, position[item])

        col.sort(key=key)
        for i, item in enumerate(col):
            position[item] = i

    both = {item: before[item] + after[item] for item in before}
    # Sweeps one way, then the other, then against both sides at once (which straightens the long edges).
    for _sweep in range(_SWEEPS):
        for col in columns[1:]:
            reorder(col, before)
        for col in reversed(columns[:-1]):
            reorder(col, after)
    for _sweep in range(_SWEEPS):
        for col in columns:
            reorder(col, both)
    return _Layout(columns, routes)


def graph_layers(root: Value) -> list[list[Value]]:
    """The nodes grouped into columns for drawing, left to right, each ordered top to bottom.

    The root sits in the last column, as far right as the longest path from a leaf demands; every other
    node sits one column before its first user (as late as possible), so a constant or a partial
    product is drawn next to the op that uses it rather than far away with the leaves.  Rows are
    ordered by the barycentre heuristic to limit edge crossings.
    """
    return [[item for item in col if isinstance(item, Value)] for col in _layout(root).columns]


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
    n_nodes = len(topological_order(root))
    if n_nodes > MAX_DRAWN_NODES:
        raise ValueError(
            f"the graph has {n_nodes} nodes; a drawing is only legible up to about {MAX_DRAWN_NODES}. "
            "Draw a smaller piece of it (call draw_graph on an intermediate Value)."
        )
    layout = _layout(root)
    labels = labels or {}
    height = max(len(col) for col in layout.columns)
    if ax is None:
        _fig, ax = plt.subplots(figsize=(max(4.0, 2.6 * len(layout.columns)), max(2.0, 0.9 * height + 0.6)))

    dx, dy = 2.6, 0.9
    where: dict[Value | _Waypoint, tuple[float, float]] = {}
    for c, col in enumerate(layout.columns):
        for row, item in enumerate(col):
            where[item] = (c * dx, ((len(col) - 1) / 2 - row) * dy)

    boxes, op_marks = {}, {}
    for item, (x, y) in where.items():
        if not isinstance(item, Value):
            continue
        face = "#ffd9a8" if item is root else "#cfe3f7" if item.is_leaf else "#f4f4f4"
        boxes[item] = ax.text(
            x,
            y,
            _box_text(item, labels.get(item)),
            ha="center",
            va="center",
            fontsize=8,
            family="monospace",
            zorder=3,
            bbox={"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": "#555555"},
        )
        if not item.is_leaf:
            shape = "circle,pad=0.3" if len(item.op) <= 2 else "round,pad=0.3"
            op_marks[item] = ax.text(
                x - 0.5 * dx,
                y,
                item.op,
                ha="center",
                va="center",
                fontsize=8,
                zorder=3,
                bbox={"boxstyle": shape, "facecolor": "#fff2b3", "edgecolor": "#555555"},
            )
            _arrow(ax, op_marks[item], boxes[item])

    first_of_pair: set[Value] = set()
    for parent, node, waypoints in layout.routes:
        bend = 0.0
        if node.inputs == (parent, parent):  # a + a: bend its two edges apart so both show
            bend = -0.3 if node in first_of_pair else 0.3
            first_of_pair.add(node)
        if waypoints:
            # A line through the waypoints, starting under the input's box, then the arrowhead.
            xs, ys = zip(*([where[parent]] + [where[w] for w in waypoints]), strict=True)
            ax.plot(xs, ys, color="#555555", lw=0.8, zorder=1)
            _arrow(ax, where[waypoints[-1]], op_marks[node], bend)
        else:
            _arrow(ax, boxes[parent], op_marks[node], bend)
    ax.set_xlim(-0.6 * dx, (len(layout.columns) - 0.4) * dx)
    ax.set_ylim(-(height / 2 + 0.2) * dy, (height / 2 + 0.2) * dy)
    ax.set_axis_off()
    return ax


def _arrow(ax: Axes, source: object, target: object, bend: float = 0.0) -> None:
    """An arrow into ``target``'s left side from ``source``'s right side (or from a point (x, y)).

    ``bend`` curves it, so that the two edges of ``a + a`` both show.
    """
    from_point = isinstance(source, tuple)
    ax.annotate(
        "",
        xy=(0.0, 0.5),
        xycoords=target,
        xytext=source if from_point else (1.0, 0.5),
        textcoords="data" if from_point else source,
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
