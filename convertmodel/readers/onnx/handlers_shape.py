"""Handlers of shape ops. Older opsets' attribute forms (axes, starts/ends, split sizes, pads) become
constant int64 inputs, the form of the newest opset that the IR uses."""

from __future__ import annotations

from typing import Any

from convertmodel.readers.onnx.context import NodeContext, onnx_op


def _copy_handler(op: str):  # type: ignore[no-untyped-def]
    def fn(ctx: NodeContext) -> None:
        ctx.emit(op, ctx.inputs, ctx.outputs[:1], **ctx.attrs)

    fn.__name__ = f"onnx_{op}"
    return fn


# Unchanged (apart from element types) across the supported opsets, or changed only by an
# attribute whose default keeps the old behaviour (Reshape-14 allowzero=0, Shape-15 start/end).
for _op, _since in {
    "Reshape": 5,
    "Flatten": 1,
    "Transpose": 1,
    "Concat": 4,
    "Gather": 1,
    "Shape": 1,
    "Expand": 8,
    "Tile": 6,
    "DepthToSpace": 1,
    "SpaceToDepth": 1,
    "Size": 1,
    "GatherElements": 11,
    "NonZero": 9,
    "Range": 11,
    "ArgMax": 1,
    "ArgMin": 1,
}.items():
    onnx_op(_op, _since, emits=(_op,), copy_attrs=True)(_copy_handler(_op))


def _ints(ctx: NodeContext, suffix: str, values: object) -> str:
    return ctx.const_input(suffix, list(values), "int64")  # type: ignore[call-overload]


# -- Squeeze / Unsqueeze: axes attribute (<13) -> input ------------------------------------------
def _axes_to_input(op: str, n_data: int = 1):  # type: ignore[no-untyped-def]
    def fn(ctx: NodeContext) -> None:
        axes = ctx.attr("axes")
        ins = list(ctx.inputs[:n_data])
        if axes is not None:
            ins.append(_ints(ctx, "axes", axes))
        ctx.emit(op, ins, ctx.outputs[:1])

    fn.__name__ = f"onnx_{op}_axes_attr"
    return fn


onnx_op("Squeeze", 1, emits=("Squeeze",))(_axes_to_input("Squeeze"))
onnx_op("Unsqueeze", 1, emits=("Unsqueeze",))(_axes_to_input("Unsqueeze"))
onnx_op("Squeeze", 13, emits=("Squeeze",), copy_attrs=True)(_copy_handler("Squeeze"))
onnx_op("Unsqueeze", 13, emits=("Unsqueeze",), copy_attrs=True)(_copy_handler("Unsqueeze"))


# -- Reduce*: axes attribute -> input (ReduceSum at 13, the others at 18) -------------------------
_REDUCE = (
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ReduceLogSum",
)


def _reduce_old(op: str):  # type: ignore[no-untyped-def]
    def fn(ctx: NodeContext) -> None:
        axes = ctx.attr("axes")
        ins = [ctx.input(0)] + ([_ints(ctx, "axes", axes)] if axes is not None else [])
        ctx.emit(op, ins, ctx.outputs[:1], keepdims=int(ctx.attr("keepdims", 1)))

    fn.__name__ = f"onnx_{op}_axes_attr"
    return fn


for _op in _REDUCE:
    onnx_op(_op, 1, emits=(_op,))(_reduce_old(_op))
    onnx_op(_op, 13 if _op == "ReduceSum" else 18, emits=(_op,), copy_attrs=True)(_copy_handler(_op))


# -- Slice: starts/ends/axes attributes (<10) -> inputs -------------------------------------------
@onnx_op("Slice", 1, emits=("Slice",))
def slice_1(ctx: NodeContext) -> None:
    starts = ctx.require_attr("starts")
    ends = ctx.require_attr("ends")
    ins = [ctx.input(0), _ints(ctx, "starts", starts), _ints(ctx, "ends", ends)]
    axes = ctx.attr("axes")
    if axes is not None:
        ins.append(_ints(ctx, "axes", axes))
    ctx.emit("Slice", ins, ctx.outputs[:1])


onnx_op("Slice", 10, emits=("Slice",), copy_attrs=True)(_copy_handler("Slice"))


# -- Split: split attribute (<13) -> input; equal split -> num_outputs (Split-18) ------------------
def _emit_split(ctx: NodeContext, sizes: str) -> None:
    attrs: dict[str, Any] = {"axis": int(ctx.attr("axis", 0))}
    ins = [ctx.input(0)]
    if sizes:
        ins.append(sizes)
    else:
        attrs["num_outputs"] = int(ctx.attr("num_outputs", len(ctx.outputs)))
    ctx.builder.add_node("Split", ins, list(ctx.outputs), name=ctx.name, **attrs)


@onnx_op("Split", 2, emits=("Split",))
def split_2(ctx: NodeContext) -> None:
    split = ctx.attr("split")
    _emit_split(ctx, _ints(ctx, "split", split) if split else "")


@onnx_op("Split", 13, emits=("Split",))
def split_13(ctx: NodeContext) -> None:
    _emit_split(ctx, ctx.input(1))


# -- Pad: mode/pads/value attributes (<11) -> inputs ----------------------------------------------
@onnx_op("Pad", 2, emits=("Pad",))
def pad_2(ctx: NodeContext) -> None:
    pads = ctx.require_attr("pads")
    ins = [ctx.input(0), _ints(ctx, "pads", pads)]
    value = float(ctx.attr("value", 0.0))
    if value != 0.0:
        ins.append(ctx.const_input("value", value, "float32"))
    ctx.emit("Pad", ins, ctx.outputs[:1], mode=str(ctx.attr("mode", "constant")))


@onnx_op("Pad", 11, emits=("Pad",))
def pad_11(ctx: NodeContext) -> None:
    ctx.emit("Pad", ctx.inputs, ctx.outputs[:1], mode=str(ctx.attr("mode", "constant")))


# -- Resize and its predecessor Upsample ---------------------------------------------------------
# Upsample and Resize-10 compute input coordinates as out / scale ("asymmetric") and pick
# nearest neighbours by flooring, which is what np.repeat gives for integer scales (onnx's
# reference Upsample); Resize-11 made both explicit attributes.
_OLD_RESIZE = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}


def _check_resize(ctx: NodeContext) -> str | None:
    """Attribute values the IR's Resize rejects, reported by the up-front scan."""
    from convertmodel.ir.ops.resize import COORD_MODES, MODES, NEAREST_MODES

    for key, allowed in (
        ("mode", MODES),
        ("coordinate_transformation_mode", COORD_MODES),
        ("nearest_mode", NEAREST_MODES),
    ):
        v = ctx.attr(key)
        if v is not None and v not in allowed:
            return f"{key}={v}"
    if int(ctx.attr("antialias", 0)):
        return "antialias=1"
    return None


def _resize_old(ctx: NodeContext, scales: str) -> None:
    mode = str(ctx.attr("mode", "nearest"))
    ctx.emit("Resize", [ctx.input(0), "", scales], ctx.outputs[:1], mode=mode, **_OLD_RESIZE)


@onnx_op("Upsample", 7, emits=("Resize",), check=_check_resize)
def upsample_7(ctx: NodeContext) -> None:
    _resize_old(ctx, ctx.const_input("scales", list(ctx.require_attr("scales")), "float32"))


@onnx_op("Upsample", 9, emits=("Resize",), check=_check_resize)
def upsample_9(ctx: NodeContext) -> None:
    _resize_old(ctx, ctx.input(1))


@onnx_op("Resize", 10, emits=("Resize",), check=_check_resize)
def resize_10(ctx: NodeContext) -> None:
    _resize_old(ctx, ctx.input(1))


@onnx_op("Resize", 11, emits=("Resize",), check=_check_resize, copy_attrs=True)
def resize_11(ctx: NodeContext) -> None:
    ins = list(ctx.inputs) + [""] * (4 - len(ctx.inputs))
    # Resize-11/12 required roi and scales even when unused; exporters fill them with empty tensors.
    for i in (1, 2):
        v = ctx.const(i)
        if v is not None and v.size == 0:
            ins[i] = ""
    if ctx.attr("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize":
        ins[1] = ""
    while ins and not ins[-1]:
        ins.pop()
    ctx.emit("Resize", ins, ctx.outputs[:1], **ctx.attrs)
