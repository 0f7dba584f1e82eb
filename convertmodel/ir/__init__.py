"""The IR: graph dataclasses, op schemas, shape inference, checker and text dump."""

from convertmodel.ir.checker import check_graph
from convertmodel.ir.dump import dump
from convertmodel.ir.graph import Dim, Graph, GraphBuilder, Node, TensorType, ValueInfo, prune, toposort
from convertmodel.ir.schema import CM_DOMAIN, find_schema, get_schema, resolve_attrs, supported_ops

__all__ = [
    "CM_DOMAIN",
    "Dim",
    "Graph",
    "GraphBuilder",
    "Node",
    "TensorType",
    "ValueInfo",
    "check_graph",
    "dump",
    "find_schema",
    "get_schema",
    "prune",
    "resolve_attrs",
    "supported_ops",
    "toposort",
]
