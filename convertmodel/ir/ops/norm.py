"""Schemas of normalization ops: BatchNormalization (inference), ChannelAffine, LRN,
InstanceNormalization, LpNormalization, Softmax and LogSoftmax."""

from __future__ import annotations

from convertmodel.errors import UnsupportedOpError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops._util import same_as
from convertmodel.ir.schema import CM_DOMAIN, Attr, AttrType, InferContext, op_schema


def _channel_vector(ctx: InferContext, i: int, what: str, channels: Dim) -> None:
    """Input ``i`` must be 1-D with ``channels`` entries (when both are known)."""
    s = ctx.shape(i)
    if len(s) != 1 or (isinstance(s[0], int) and isinstance(channels, int) and s[0] != channels):
        raise ctx.fail(f"{what} must have shape ({channels},) to match the input's channels, got {list(s)}")


def _axis(ctx: InferContext, rank: int) -> int:
    axis = int(ctx.attrs["axis"])
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for a rank-{rank} input")
    return axis % rank


@op_schema(
    "BatchNormalization",
    inputs=["X", "scale", "B", "input_mean", "input_var"],
    # Outputs beyond Y exist only in training mode (opset 14: running_mean, running_var; opsets 9-13 also
    # saved_mean, saved_var). They are accepted and typed (C,) so converted graphs that list them stay valid;
    # in inference mode the kernel returns the unchanged input_mean/input_var for them.
    outputs=["Y", "running_mean?", "running_var?", "saved_mean?", "saved_var?"],
    attrs=[
        Attr("epsilon", AttrType.FLOAT, 1e-5),
        Attr("momentum", AttrType.FLOAT, 0.9, "training only; ignored"),
        Attr("training_mode", AttrType.INT, 0, "only 0 (inference) is supported"),
        Attr("spatial", AttrType.INT, 1, "opsets < 9; only 1 (per-channel statistics) is supported"),
    ],
)
def _batch_norm(ctx: InferContext) -> list[TensorType]:
    """Inference form: Y = (X - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1)."""
    if ctx.attrs["training_mode"]:
        raise UnsupportedOpError("IR", {"BatchNormalization(training_mode=1)": [ctx.node.name]})
    if not ctx.attrs["spatial"]:
        raise UnsupportedOpError("IR", {"BatchNormalization(spatial=0)": [ctx.node.name]})
    x = ctx.shape(0)
    if len(x) < 2:
        raise ctx.fail(f"input must be (N, C, ...), got shape {list(x)}")
    for i, what in enumerate(("scale", "B", "input_mean", "input_var"), start=1):
        _channel_vector(ctx, i, what, x[1])
    stat = TensorType(ctx.input_type(3).dtype, (x[1],))
    return [*same_as(ctx.input_type(0)), *[stat] * (len(ctx.node.outputs) - 1)]


@op_schema(
    "ChannelAffine",
    domain=CM_DOMAIN,
    inputs=["X", "scale?", "B?"],
    outputs=["Y"],
    attrs=[Attr("axis", AttrType.INT, 1, "the channel axis scale and B run along")],
)
def _channel_affine(ctx: InferContext) -> list[TensorType]:
    """Y = X * scale + B with scale, B of shape (C,) along ``axis`` (Caffe's Scale and Bias layers).

    Either of scale and B may be omitted (then 1 and 0). Passes fold it into a preceding Conv/Gemm.
    """
    x = ctx.shape(0)
    axis = _axis(ctx, len(x))
    if not ctx.has_input(1) and not ctx.has_input(2):
        raise ctx.fail("needs scale, B or both; both are omitted")
    for i, what in ((1, "scale"), (2, "B")):
        if ctx.has_input(i):
            _channel_vector(ctx, i, what, x[axis])
    return same_as(ctx.input_type(0))


#: LRN arithmetic: ONNX's, or BigDL's (docs/quantization.md section 9: it decides BigDL's truncated int8 codes).
LRN_ARITHS = ("onnx", "bigdl", "bigdl-f32")


@op_schema(
    "LRN",
    inputs=["X"],
    outputs=["Y"],
    attrs=[
        Attr("size", AttrType.INT, doc="number of channels summed over (required)"),
        Attr("alpha", AttrType.FLOAT, 1e-4),
        Attr("beta", AttrType.FLOAT, 0.75),
        Attr("bias", AttrType.FLOAT, 1.0),
        Attr(
            "arith",
            AttrType.STRING,
            "onnx",
            "'onnx', or BigDL's running channel sum with the power in float64 ('bigdl', BigDL 0.3) or float32 "
            "('bigdl-f32', BigDL 2.x); set by the BigDL reader",
        ),
    ],
)
def _lrn(ctx: InferContext) -> list[TensorType]:
    """Across-channel LRN: Y = X / (bias + alpha / size * sum of X^2 over the channel window)^beta.

    The window of channel c is [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to the channels.
    """
    x = ctx.shape(0)
    if len(x) < 3:
        raise ctx.fail(f"input must be (N, C, spatial...), got shape {list(x)}")
    if ctx.attrs["size"] < 1:
        raise ctx.fail(f"size must be >= 1, got {ctx.attrs['size']}")
    if ctx.attrs["arith"] not in LRN_ARITHS:
        raise ctx.fail(f"arith must be one of {list(LRN_ARITHS)}, got {ctx.attrs['arith']!r}")
    return same_as(ctx.input_type(0))


@op_schema(
    "InstanceNormalization",
    inputs=["input", "scale", "B"],
    outputs=["output"],
    attrs=[Attr("epsilon", AttrType.FLOAT, 1e-5)],
)
def _instance_norm(ctx: InferContext) -> list[TensorType]:
    """Per sample and channel: (x - mean) / sqrt(var + epsilon) * scale + B over the spatial axes."""
    x = ctx.shape(0)
    if len(x) < 3:
        raise ctx.fail(f"input must be (N, C, spatial...), got shape {list(x)}")
    _channel_vector(ctx, 1, "scale", x[1])
    _channel_vector(ctx, 2, "B", x[1])
    return same_as(ctx.input_type(0))


@op_schema(
    "LpNormalization",
    inputs=["input"],
    outputs=["output"],
    attrs=[Attr("axis", AttrType.INT, -1), Attr("p", AttrType.INT, 2, "1 or 2")],
)
def _lp_norm(ctx: InferContext) -> list[TensorType]:
    """x / ||x||_p along ``axis``."""
    _axis(ctx, len(ctx.shape(0)))
    if ctx.attrs["p"] not in (1, 2):
        raise ctx.fail(f"p must be 1 or 2, got {ctx.attrs['p']}")
    return same_as(ctx.input_type(0))


_SOFTMAX_DOC = "opset-13 semantics: normalizes along the single axis ``axis`` (default -1)."


@op_schema(
    "Softmax",
    inputs=["input"],
    outputs=["output"],
    attrs=[Attr("axis", AttrType.INT, -1)],
    doc=f"exp(x) / sum(exp(x)); {_SOFTMAX_DOC}",
)
def _softmax(ctx: InferContext) -> list[TensorType]:
    _axis(ctx, len(ctx.shape(0)))
    return same_as(ctx.input_type(0))


@op_schema(
    "LogSoftmax",
    inputs=["input"],
    outputs=["output"],
    attrs=[Attr("axis", AttrType.INT, -1)],
    doc=f"x - log(sum(exp(x))); {_SOFTMAX_DOC}",
)
def _log_softmax(ctx: InferContext) -> list[TensorType]:
    _axis(ctx, len(ctx.shape(0)))
    return same_as(ctx.input_type(0))
