"""reference_impl.trace: graph listing, the layered layout, and the matplotlib drawing."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from reference_impl.scalar import Value  # noqa: E402
from reference_impl.trace import MAX_DRAWN_NODES, draw_graph, graph_layers, nodes_and_edges  # noqa: E402


def small_network() -> tuple[Value, dict[Value, str]]:
    x1, x2 = Value(2.0), Value(-1.0)
    w1, w2, b = Value(-3.0), Value(1.0), Value(6.88)
    n = x1 * w1 + x2 * w2 + b
    out = n.tanh()
    loss = (out - 0.25) ** 2
    return loss, {x1: "x1", x2: "x2", w1: "w1", w2: "w2", b: "b", loss: "loss"}


def test_nodes_and_edges_of_a_small_graph() -> None:
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    nodes, edges = nodes_and_edges(d)
    assert set(map(id, nodes)) == {id(a), id(b), id(c), id(d)} and len(nodes) == 4
    assert nodes[-1] is d
    assert sorted((id(p), id(n)) for p, n in edges) == sorted(
        [(id(a), id(c)), (id(b), id(c)), (id(c), id(d)), (id(a), id(d))]
    )


def test_reused_input_gives_one_edge_per_use() -> None:
    a = Value(1.5)
    b = a + a
    nodes, edges = nodes_and_edges(b)
    assert len(nodes) == 2
    assert [(p is a, n is b) for p, n in edges] == [(True, True), (True, True)]


def test_nodes_and_edges_of_a_100000_deep_chain() -> None:
    y = x = Value(0.1)
    for _ in range(100_000):
        y = y * 1.0
    nodes, edges = nodes_and_edges(y)
    assert nodes[0] is x or nodes[0].is_leaf
    assert len(nodes) == 200_001  # the chain plus one wrapped constant per multiplication
    assert len(edges) == 200_000


def test_layers_put_every_input_left_of_its_user() -> None:
    loss, _ = small_network()
    layers = graph_layers(loss)
    column = {id(node): i for i, layer in enumerate(layers) for node in layer}
    nodes, edges = nodes_and_edges(loss)
    assert len(column) == len(nodes) == sum(len(layer) for layer in layers)
    for parent, node in edges:
        assert column[id(parent)] < column[id(node)]
    assert layers[-1] == [loss]
    for node in nodes[:-1]:  # every node but the root sits right before its first user
        first_user = min(column[id(n)] for p, n in edges if p is node)
        assert column[id(node)] == first_user - 1


def test_layout_avoids_needless_crossings() -> None:
    # Two independent chains joined at the end: each chain must stay on its own row (no crossing edges).
    a, b = Value(1.0), Value(2.0)
    top = [a, a.exp()]
    top += [top[-1].sin(), top[-1].sin().tanh()]
    top[2] = top[3].inputs[0]
    bottom = [b, b.cos()]
    bottom += [bottom[-1].exp()]
    bottom += [bottom[-1].sigmoid()]
    layers = graph_layers(top[-1] + bottom[-1])
    assert [len(layer) for layer in layers] == [2, 2, 2, 2, 1]
    top_rows = {layers[i].index(node) for i, node in enumerate(top)}
    bottom_rows = {layers[i].index(node) for i, node in enumerate(bottom)}
    assert len(top_rows) == 1 and len(bottom_rows) == 1 and top_rows != bottom_rows


def boxes_and_arrows(ax) -> tuple[list[str], int]:
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    return [t.get_text() for t in ax.texts if not isinstance(t, Annotation)], len(arrows)


def test_draw_graph_shows_data_grad_ops_and_labels() -> None:
    loss, labels = small_network()
    loss.backward()
    ax = draw_graph(loss, labels=labels)
    texts, n_arrows = boxes_and_arrows(ax)
    nodes, edges = nodes_and_edges(loss)
    ops = [n.op for n in nodes if not n.is_leaf]
    assert len(texts) == len(nodes) + len(ops)
    assert n_arrows == len(edges) + len(ops)  # input -> op circle, and op circle -> its result
    assert sum("data " in t and "\ngrad " in t for t in texts) == len(nodes)
    assert sorted(t for t in texts if "data" not in t) == sorted(ops)
    assert any(t.startswith("x1 | data 2\ngrad ") for t in texts)
    assert f"loss | data {loss.data:.4g}\ngrad 1" in texts
    plt.close(ax.figure)


def test_edges_that_skip_columns_are_routed_around_the_boxes() -> None:
    # x feeds ops in three different columns; the edges that skip a column get a line through a
    # waypoint of their own in each column they cross, instead of running under another box.
    x, y = Value(0.5), Value(2.0)
    root = ((x * y).exp() * x + y).tanh() * x
    root.backward()
    layers = graph_layers(root)
    column = {id(node): i for i, layer in enumerate(layers) for node in layer}
    _, edges = nodes_and_edges(root)
    long_edges = [(p, n) for p, n in edges if column[id(n)] - column[id(p)] > 1]
    assert long_edges  # the example must exercise routing
    ax = draw_graph(root)
    assert len(ax.lines) == len(long_edges)
    for line, (parent, node) in zip(ax.lines, long_edges, strict=True):
        assert (
            len(line.get_xdata()) == column[id(node)] - column[id(parent)]
        )  # start + one per crossed column
    plt.close(ax.figure)


def test_draw_graph_saves_a_png_without_graphviz(tmp_path) -> None:
    loss, labels = small_network()
    loss.backward()
    fig, ax = plt.subplots()
    assert draw_graph(loss, ax=ax, labels=labels) is ax
    path = tmp_path / "graph.png"
    fig.savefig(path, dpi=60)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "graphviz" not in sys.modules


def test_draw_graph_of_a_single_leaf_and_of_a_plus_a() -> None:
    ax = draw_graph(Value(3.0))
    assert boxes_and_arrows(ax) == (["data 3\ngrad 0"], 0)
    plt.close(ax.figure)
    a = Value(1.5)
    c = (a + a) + (a + a)
    c.backward()
    ax = draw_graph(c)
    texts, n_arrows = boxes_and_arrows(ax)
    assert "data 1.5\ngrad 4" in texts and n_arrows == 9
    plt.close(ax.figure)


def test_draw_graph_refuses_what_it_cannot_draw_legibly() -> None:
    y = Value(0.5)
    for _ in range(MAX_DRAWN_NODES):
        y = y.sin()
    with pytest.raises(ValueError, match="legible"):
        draw_graph(y)
    with pytest.raises(TypeError, match="Value"):
        draw_graph(1.0)
