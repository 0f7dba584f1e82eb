"""Which ops and graphs are int8: the one answer to "is this graph quantized"."""

from __future__ import annotations

from convertmodel.ir.graph import Graph, Node
from convertmodel.ir.schema import CM_DOMAIN

#: The int8 ops the quantize rules emit (schemas in convertmodel/ir/ops/quantized.py).
QUANTIZED_OPS = ("QConv", "QGemm")


def is_quantized_node(node: Node) -> bool:
    return node.domain == CM_DOMAIN and node.op_type in QUANTIZED_OPS


def quantized_nodes(graph: Graph) -> list[Node]:
    """The int8 layers of a graph, in order."""
    return [n for n in graph.nodes if is_quantized_node(n)]


def is_quantized(graph: Graph) -> bool:
    return any(is_quantized_node(n) for n in graph.nodes)
