"""Schemas of broadcasting elementwise ops, comparisons, logic, reductions and ArgMax/ArgMin.

Binary and variadic ops follow ONNX multidirectional (numpy) broadcasting. Reductions use the
opset-18 form: ``axes`` is an optional int64 INPUT, with ``keepdims`` and
``noop_with_empty_axes`` attributes.
"""

from __future__ import annotations

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops._util import broadcast_shapes
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema

_ARITH = ("Add", "Sub", "Mul", "Div", "Pow", "Mod")
_COMPARE = ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual")
_LOGIC = ("And", "Or", "Xor")
VARIADIC = ("Max", "Min", "Sum", "Mean")
REDUCTIONS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL2", "ReduceProd", "ReduceSumSquare")


def broadcast_inputs(ctx: InferContext, indices: list[int] | None = None) -> tuple[Dim, ...] | None:
    """Broadcast shape of the given inputs (all by default); ``None`` when a rank is unknown."""
    idx = list(range(len(ctx.node.inputs))) if indices is None else indices
    shapes = []
    for i in idx:
        s = ctx.input_type(i).shape
        if s is None:
            return None
        shapes.append(s)
    try:
        return broadcast_shapes(*shapes)
    except InvalidModelError as e:
        raise ctx.fail(f"input shapes {[list(s) for s in shapes]} do not broadcast") from e


def _same_dtype(ctx: InferContext, indices: list[int]) -> str:
    dtypes = {ctx.input_type(i).dtype for i in indices}
    if len(dtypes) > 1:
        raise ctx.fail(f"inputs must share one element type, got {sorted(dtypes)}")
    return dtypes.pop()


def _arith(ctx: InferContext) -> list[TensorType]:
    # Pow's exponent may have another type (ONNX T1); every other binary op needs one type.
    dtype = ctx.input_type(0).dtype if ctx.node.op_type == "Pow" else _same_dtype(ctx, [0, 1])
    return [TensorType(dtype, broadcast_inputs(ctx))]


def _compare(ctx: InferContext) -> list[TensorType]:
    _same_dtype(ctx, [0, 1])
    return [TensorType("bool", broadcast_inputs(ctx))]


def _variadic(ctx: InferContext) -> list[TensorType]:
    dtype = _same_dtype(ctx, list(range(len(ctx.node.inputs))))
    return [TensorType(dtype, broadcast_inputs(ctx))]


for _op in _ARITH:
    _attrs = [Attr("fmod", AttrType.INT, 0)] if _op == "Mod" else []
    op_schema(
        _op,
        inputs=["A", "B"],
        outputs=["C"],
        attrs=_attrs,
        doc=f"Elementwise {_op} with multidirectional broadcasting.",
    )(_arith)
for _op in _COMPARE:
    op_schema(_op, inputs=["A", "B"], outputs=["C"], doc=f"Elementwise {_op}, bool output, broadcasting.")(_compare)
for _op in _LOGIC:
    op_schema(_op, inputs=["A", "B"], outputs=["C"], doc=f"Logical {_op} of bool tensors, broadcasting.")(_compare)
for _op in VARIADIC:
    op_schema(_op, inputs=["data_0*"], outputs=["out"], doc=f"Elementwise {_op} of 1..n inputs, broadcasting.")(
        _variadic
    )


@op_schema("Not", inputs=["X"], outputs=["Y"])
def _not(ctx: InferContext) -> list[TensorType]:
    """Logical not of a bool tensor."""
    return [TensorType("bool", ctx.input_type(0).shape)]


@op_schema("Where", inputs=["condition", "X", "Y"], outputs=["output"])
def _where(ctx: InferContext) -> list[TensorType]:
    """X where condition else Y, all three broadcasting."""
    return [TensorType(_same_dtype(ctx, [1, 2]), broadcast_inputs(ctx))]


def normalize_axes(axes: list[int], rank: int, ctx: InferContext | None = None, what: str = "axis") -> list[int]:
    """Negative axes counted from the end; raises on out-of-range or repeated axes."""
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < rank:
            msg = f"{what} {a} is out of range for rank {rank}"
            raise ctx.fail(msg) if ctx is not None else InvalidModelError(msg)
        out.append(a + rank if a < 0 else a)
    if len(set(out)) != len(out):
        msg = f"{what} list {axes} repeats an axis"
        raise ctx.fail(msg) if ctx is not None else InvalidModelError(msg)
    return out


REDUCE_ATTRS = [Attr("keepdims", AttrType.INT, 1), Attr("noop_with_empty_axes", AttrType.INT, 0)]


def reduce_axes_of(ctx: InferContext, rank: int) -> list[int] | None:
    """Axes a reduction reduces (normalized, sorted); ``None`` when the axes input is not a constant."""
    if ctx.has_input(1):
        v = ctx.value(1)
        if v is None:
            return None
        if v.size:
            return sorted(normalize_axes([int(a) for a in v.reshape(-1)], rank, ctx))
    if ctx.attrs["noop_with_empty_axes"]:
        return []
    return list(range(rank))


def _reduce(ctx: InferContext) -> list[TensorType]:
    t = ctx.input_type(0)
    keep = bool(ctx.attrs["keepdims"])
    if t.shape is None:
        return [TensorType(t.dtype, None)]
    axes = reduce_axes_of(ctx, len(t.shape))
    if axes is None:
        # Which axes go is unknown: with keepdims the rank stays, dims already 1 stay 1.
        if keep:
            return [TensorType(t.dtype, tuple(1 if d == 1 else None for d in t.shape))]
        return [TensorType(t.dtype, None)]
    shape = (
        [1 if i in axes else d for i, d in enumerate(t.shape)]
        if keep
        else [d for i, d in enumerate(t.shape) if i not in axes]
    )
    return [TensorType(t.dtype, tuple(shape))]


for _op in REDUCTIONS:
    op_schema(
        _op,
        inputs=["data", "axes?"],
        outputs=["reduced"],
        attrs=REDUCE_ATTRS,
        doc=f"{_op} over the axes input (all axes when absent, unless noop_with_empty_axes).",
    )(_reduce)


def _arg(ctx: InferContext) -> list[TensorType]:
    t = ctx.input_type(0)
    if t.shape is None:
        return [TensorType("int64", None)]
    (axis,) = normalize_axes([ctx.attrs["axis"]], len(t.shape), ctx)
    if t.shape[axis] == 0:
        raise ctx.fail(f"axis {axis} of the input {list(t.shape)} is empty: there is no index to return")
    if ctx.attrs["keepdims"]:
        shape = tuple(1 if i == axis else d for i, d in enumerate(t.shape))
    else:
        shape = tuple(d for i, d in enumerate(t.shape) if i != axis)
    return [TensorType("int64", shape)]


_ARG_ATTRS = [
    Attr("axis", AttrType.INT, 0),
    Attr("keepdims", AttrType.INT, 1),
    Attr("select_last_index", AttrType.INT, 0),
]
for _op in ("ArgMax", "ArgMin"):
    op_schema(
        _op,
        inputs=["data"],
        outputs=["reduced"],
        attrs=_ARG_ATTRS,
        doc=f"{_op} indices (int64) along axis; ties go to the first index unless select_last_index.",
    )(_arg)
