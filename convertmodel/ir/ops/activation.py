"""Schemas of elementwise activations (shape and dtype pass through)."""

from __future__ import annotations

from convertmodel.ir.graph import TensorType
from convertmodel.ir.ops._util import same_as
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema


@op_schema("Relu", inputs=["X"], outputs=["Y"])
def _relu(ctx: InferContext) -> list[TensorType]:
    """max(x, 0)."""
    return same_as(ctx.input_type(0))


@op_schema("LeakyRelu", inputs=["X"], outputs=["Y"], attrs=[Attr("alpha", AttrType.FLOAT, 0.01)])
def _leaky(ctx: InferContext) -> list[TensorType]:
    """x if x >= 0 else alpha * x."""
    return same_as(ctx.input_type(0))
