"""Handlers of neural-network ops: convolutions, pooling, normalisation, Gemm/MatMul, Softmax."""

from __future__ import annotations

from convertmodel.readers.onnx.context import NodeContext, onnx_op


def _copy(op: str, ctx: NodeContext, drop: tuple[str, ...] = (), n_out: int = 1) -> None:
    attrs = {k: v for k, v in ctx.attrs.items() if k not in drop}
    ctx.emit(op, ctx.inputs, ctx.outputs[:n_out], **attrs)


# -- convolution ---------------------------------------------------------------------------------
# Conv and ConvTranspose kept their attributes and inputs unchanged from opset 1 to the newest.
@onnx_op("Conv", 1, emits=("Conv",), copy_attrs=True)
def conv(ctx: NodeContext) -> None:
    _copy("Conv", ctx)


@onnx_op("ConvTranspose", 1, emits=("ConvTranspose",), copy_attrs=True)
def conv_transpose(ctx: NodeContext) -> None:
    _copy("ConvTranspose", ctx)


# -- pooling -------------------------------------------------------------------------------------
def _check_no_indices(ctx: NodeContext) -> str | None:
    if len(ctx.outputs) > 1 and ctx.outputs[1] in ctx.used_outputs:
        return "Indices output"
    return None


@onnx_op("MaxPool", 1, emits=("MaxPool",), check=_check_no_indices, copy_attrs=True)
def max_pool(ctx: NodeContext) -> None:
    # storage_order only changes the unsupported Indices output (MaxPool-8).
    _copy("MaxPool", ctx, drop=("storage_order",))


@onnx_op("AveragePool", 1, emits=("AveragePool",), copy_attrs=True)
def average_pool(ctx: NodeContext) -> None:
    _copy("AveragePool", ctx)


@onnx_op("GlobalAveragePool", 1, emits=("GlobalAveragePool",), copy_attrs=True)
def global_average_pool(ctx: NodeContext) -> None:
    _copy("GlobalAveragePool", ctx)


@onnx_op("GlobalMaxPool", 1, emits=("GlobalMaxPool",), copy_attrs=True)
def global_max_pool(ctx: NodeContext) -> None:
    _copy("GlobalMaxPool", ctx)


@onnx_op("LRN", 1, emits=("LRN",), copy_attrs=True)
def lrn(ctx: NodeContext) -> None:
    _copy("LRN", ctx)


# -- normalisation -------------------------------------------------------------------------------
def _check_bn(ctx: NodeContext) -> str | None:
    # BatchNormalization-7 spatial=0 normalises per activation (mean of shape (C, H, W)); opset 9 dropped it.
    if ctx.opset < 9 and int(ctx.attr("spatial", 1)) == 0:
        return "spatial=0"
    if int(ctx.attr("training_mode", 0)) == 1:
        return "training_mode=1"
    if any(o in ctx.used_outputs for o in ctx.outputs[1:]):
        return "training outputs (running mean/var) used"
    return None


@onnx_op("BatchNormalization", 7, emits=("BatchNormalization",), check=_check_bn)
def batch_norm(ctx: NodeContext) -> None:
    # Inference form only: momentum and the training outputs do not affect Y (ONNX BatchNormalization-15).
    ctx.emit("BatchNormalization", ctx.inputs[:5], ctx.outputs[:1], epsilon=float(ctx.attr("epsilon", 1e-5)))


@onnx_op("InstanceNormalization", 6, emits=("InstanceNormalization",), copy_attrs=True)
def instance_norm(ctx: NodeContext) -> None:
    _copy("InstanceNormalization", ctx)


@onnx_op("LpNormalization", 1, emits=("LpNormalization",), copy_attrs=True)
def lp_norm(ctx: NodeContext) -> None:
    _copy("LpNormalization", ctx)


# -- dense -------------------------------------------------------------------------------------
@onnx_op("Gemm", 7, emits=("Gemm",), copy_attrs=True)
def gemm(ctx: NodeContext) -> None:
    # Gemm-7 made C broadcast unidirectionally (the newest rule); Gemm-11 made C optional.
    _copy("Gemm", ctx)


@onnx_op("MatMul", 1, emits=("MatMul",), copy_attrs=True)
def matmul(ctx: NodeContext) -> None:
    _copy("MatMul", ctx)


# -- softmax family ------------------------------------------------------------------------------
def _softmax_old(op: str, ctx: NodeContext) -> None:
    """Opset < 13: the input is coerced to 2-D at ``axis`` (default 1), normalised per row, reshaped back."""
    axis = int(ctx.attr("axis", 1))
    x = ctx.input(0)
    rank = ctx.rank(x)
    if rank is not None:
        a = axis + rank if axis < 0 else axis
        if a == rank - 1:
            # Coercing at the last axis equals the opset-13 form on that axis.
            ctx.emit(op, [x], ctx.outputs[:1], axis=a)
            return
    flat = ctx.emit("Flatten", [x], 1, name=f"{ctx.name}/flatten", axis=axis)[0]
    y2 = ctx.emit(op, [flat], 1, name=f"{ctx.name}/2d", axis=1)[0]
    shape = ctx.emit("Shape", [x], 1, name=f"{ctx.name}/shape")[0]
    ctx.emit("Reshape", [y2, shape], ctx.outputs[:1])


def _softmax_new(op: str, ctx: NodeContext) -> None:
    ctx.emit(op, ctx.inputs[:1], ctx.outputs[:1], axis=int(ctx.attr("axis", -1)))


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    onnx_op(_op, 1, emits=(_op, "Flatten", "Reshape", "Shape"))(
        lambda ctx, _op=_op: _softmax_old(_op, ctx)  # type: ignore[misc]
    )
    onnx_op(_op, 13, emits=(_op,))(lambda ctx, _op=_op: _softmax_new(_op, ctx))  # type: ignore[misc]
