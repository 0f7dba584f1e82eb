"""Quantization rules: which fp32 ops get an int8 form, registered like every other registry entry.

A rule looks at one node of the (BN-folded) graph and returns a :class:`Plan` (the fp32 weight
as (M, K) rows, the bias and the attributes of the int8 op to emit) or a string: the reason the
node stays fp32. An op type without a rule simply stays fp32 (recorded for ``inspect``)::

    @quant_rule("Conv")
    def conv(g: Graph, n: Node) -> Plan | str: ...

Rules register when the package loads its rule modules (convertmodel/passes/quantize/__init__.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from convertmodel.ir.graph import Graph, Node
from convertmodel.registry import Registry


class RuleKey(NamedTuple):
    domain: str
    op_type: str


@dataclass
class Plan:
    """A layer to quantize: its fp32 weight as (M, K) rows, bias (M,) and the int8 op to emit."""

    node: Node
    op_type: str
    w_rows: np.ndarray
    bias: np.ndarray | None
    attrs: dict[str, object] = field(default_factory=dict)


Rule = Callable[[Graph, Node], "Plan | str"]

RULES: Registry[RuleKey, Rule] = Registry("quantization rule")


def quant_rule(op_type: str, domain: str = "") -> Callable[[Rule], Rule]:
    """Register the int8 rule of ``op_type``."""
    return RULES.register(RuleKey(domain, op_type))


def rule_for(node: Node) -> Rule | None:
    return RULES.get(RuleKey(node.domain, node.op_type))


def constant_bias(g: Graph, node: Node, idx: int, m: int, beta: float = 1.0) -> tuple[np.ndarray | None, str | None]:
    """The constant bias input ``idx`` broadcast to (M,), or a reason it cannot be."""
    if len(node.inputs) <= idx or not node.inputs[idx]:
        return None, None
    c = g.constants.get(node.inputs[idx])
    if c is None:
        return None, "bias is not a constant"
    if c.size not in (1, m) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
        return None, f"bias of shape {list(c.shape)} is not one value per output channel"
    b = np.broadcast_to(c.astype(np.float32).reshape(-1), (m,)).astype(np.float32)
    return (b * np.float32(beta) if beta != 1.0 else b), None
