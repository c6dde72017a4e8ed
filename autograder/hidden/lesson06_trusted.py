"""Trusted stand-ins for lesson 06 (instructor only: never shipped, they are the exercises' answers).

The visible checks import this module when it is present (grading) so that a graph for the backward,
format_graph and sum_to_shape checks is recorded without the student's apply_op: a bug there then costs
only apply_op's points. Students' kits lack it, and the checks fall back to the student's own apply_op.
"""

from __future__ import annotations

from collections.abc import Callable


def record(Tensor: type, Node: type, prim: object, inputs: list, params: dict | None = None) -> object:
    """Record one op with the GIVEN Node (what a correct apply_op produces)."""
    params = params or {}
    data = prim.forward(*(t.data for t in inputs), **params)
    out = Tensor(data, requires_grad=any(t.requires_grad for t in inputs))
    if out.requires_grad:
        out.grad_fn = Node(prim, list(inputs), params, out.data)
    return out


def recording_op(Tensor: type, Node: type, OPS: dict) -> Callable[..., object]:
    """op(name, *tensors, **params) for programs: each step recorded by `record`."""

    def op(name: str, *args: object, **params: object) -> object:
        return record(Tensor, Node, OPS[name], list(args), params)

    return op
