"""Schemas of matrix products: Gemm, MatMul (ONNX semantics)."""

from __future__ import annotations

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops._util import broadcast_shapes
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema


def _conflict(a: Dim, b: Dim) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a != b


@op_schema(
    "Gemm",
    inputs=["A", "B", "C?"],
    outputs=["Y"],
    attrs=[
        Attr("alpha", AttrType.FLOAT, 1.0),
        Attr("beta", AttrType.FLOAT, 1.0),
        Attr("transA", AttrType.INT, 0),
        Attr("transB", AttrType.INT, 0),
    ],
)
def _gemm(ctx: InferContext) -> list[TensorType]:
    """Y = alpha * A' @ B' + beta * C; A' (M, K), B' (K, N); C unidirectionally broadcast to (M, N)."""
    a, b = ctx.shape(0), ctx.shape(1)
    if len(a) != 2 or len(b) != 2:
        raise ctx.fail(f"A and B must be 2-D, got shapes {list(a)} and {list(b)}")
    m, ka = (a[1], a[0]) if ctx.attrs["transA"] else (a[0], a[1])
    kb, n = (b[1], b[0]) if ctx.attrs["transB"] else (b[0], b[1])
    if _conflict(ka, kb):
        raise ctx.fail(
            f"inner dimensions differ: A{list(a)} (transA={ctx.attrs['transA']}) and "
            f"B{list(b)} (transB={ctx.attrs['transB']}) give K={ka} vs K={kb}"
        )
    if 0 in (ka, kb, n):
        raise ctx.fail(f"zero-size operand: A{list(a)}, B{list(b)} give K={ka}, N={n}; both must be >= 1")
    if ctx.has_input(2):
        c = ctx.shape(2)
        # Unidirectional broadcasting: C's dims must be 1 or equal to the output's, right-aligned.
        if len(c) > 2 or any(_conflict(cd, od) and cd != 1 for cd, od in zip(reversed(c), (n, m), strict=False)):
            raise ctx.fail(f"C of shape {list(c)} does not broadcast to the output (M, N) = ({m}, {n})")
    return [TensorType(ctx.input_type(0).dtype, (m, n))]


@op_schema("MatMul", inputs=["A", "B"], outputs=["Y"])
def _matmul(ctx: InferContext) -> list[TensorType]:
    """numpy.matmul: batched over leading dims with broadcasting; a 1-D operand gains then loses a unit dim."""
    a, b = ctx.shape(0), ctx.shape(1)
    if not a or not b:
        raise ctx.fail(f"operands must have rank >= 1, got shapes {list(a)} and {list(b)}")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if _conflict(a2[-1], b2[-2]):
        raise ctx.fail(f"inner dimensions differ: A{list(a)} has K={a2[-1]}, B{list(b)} has K={b2[-2]}")
    if a2[-1] == 0 or b2[-1] == 0:
        raise ctx.fail(f"zero-size operand: A{list(a)}, B{list(b)}; K and N must be >= 1")
    try:
        batch = broadcast_shapes(a2[:-2], b2[:-2])
    except InvalidModelError as e:
        raise ctx.fail(f"batch dimensions do not broadcast: {e}") from None
    out: tuple[Dim, ...] = (*batch, *((a2[-2],) if len(a) > 1 else ()), *((b2[-1],) if len(b) > 1 else ()))
    return [TensorType(ctx.input_type(0).dtype, out)]
