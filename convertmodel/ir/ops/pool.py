"""Schemas of pooling ops: MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool.

Output sizes follow :func:`~convertmodel.ir.ops._util.pool_out_dim`, which was checked against
onnxruntime's kernels (not against ONNX's own shape inference, which in ceil mode keeps a last
window that starts inside the end padding; onnxruntime and PyTorch drop it).
"""

from __future__ import annotations

from dataclasses import dataclass

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops._util import conv_pads, pool_out_dim, same_out_dim
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")

_POOL_ATTRS = [
    Attr("kernel_shape", AttrType.INTS, doc="spatial window size (required)"),
    Attr("strides", AttrType.INTS, (), "defaults to 1 per spatial axis"),
    Attr("pads", AttrType.INTS, (), "begin pads then end pads, one per spatial axis"),
    Attr("auto_pad", AttrType.STRING, "NOTSET", "NOTSET, SAME_UPPER, SAME_LOWER or VALID"),
    Attr("ceil_mode", AttrType.INT, 0, "round the output size up; a last window starting in the end pad is dropped"),
    Attr("dilations", AttrType.INTS, (), "defaults to 1 per spatial axis"),
]


@dataclass(frozen=True)
class PoolGeometry:
    """Resolved window geometry of a pooling node (pads explicit, auto_pad resolved)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]  # begins then ends
    ceil_mode: bool

    def out_spatial(self, spatial: tuple[Dim, ...]) -> tuple[Dim, ...]:
        n = len(self.kernel)
        return tuple(
            pool_out_dim(
                spatial[i],
                self.kernel[i],
                self.strides[i],
                self.pads[i],
                self.pads[n + i],
                self.dilations[i],
                self.ceil_mode,
            )
            for i in range(n)
        )


def pool_geometry(attrs: dict, x_shape: tuple[Dim, ...], where: str) -> PoolGeometry:
    """Validate a pooling node's attributes against its input shape; ``where`` names the node in errors.

    Used by the schema and by the kernels so both agree on every size.
    """
    n = len(x_shape) - 2
    kernel = tuple(attrs["kernel_shape"])
    if n < 1:
        raise InvalidModelError(f"{where}: input must be (N, C, spatial...), got rank {len(x_shape)}")
    strides = tuple(attrs.get("strides") or (1,) * n)
    dil = tuple(attrs.get("dilations") or (1,) * n)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto not in AUTO_PADS:
        raise InvalidModelError(f"{where}: auto_pad must be one of {', '.join(AUTO_PADS)}, got {auto!r}")
    if len(kernel) != n or len(strides) != n or len(dil) != n:
        raise InvalidModelError(
            f"{where}: kernel_shape {list(kernel)}, strides {list(strides)}, dilations {list(dil)} "
            f"must have one entry per spatial axis of the rank-{len(x_shape)} input"
        )
    if min(kernel) < 1 or min(strides) < 1 or min(dil) < 1:
        raise InvalidModelError(
            f"{where}: kernel_shape {list(kernel)}, strides {list(strides)}, dilations {list(dil)} must be >= 1"
        )
    raw_pads = tuple(attrs.get("pads") or ())
    if raw_pads and len(raw_pads) != 2 * n:
        raise InvalidModelError(f"{where}: pads {list(raw_pads)} must have {2 * n} entries (begins then ends)")
    if raw_pads and min(raw_pads) < 0:
        raise InvalidModelError(f"{where}: pads {list(raw_pads)} must be >= 0")
    try:
        pads = conv_pads(attrs, x_shape[2:], kernel, strides, dil)
        geo = PoolGeometry(kernel, strides, dil, tuple(pads), bool(attrs.get("ceil_mode", 0)))
        geo.out_spatial(x_shape[2:])
    except InvalidModelError as e:
        raise InvalidModelError(f"{where}: {e}") from None
    for i in range(n):
        # ONNX requires pads smaller than the window; a window of pure padding has no defined value.
        if max(pads[i], pads[n + i]) >= dil[i] * (kernel[i] - 1) + 1:
            raise InvalidModelError(
                f"{where}: pads {list(pads)} must be smaller than the (dilated) window {list(kernel)} on each axis"
            )
    return geo


def _pool_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.shape(0)
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        raise UnsupportedOpError("IR", {f"{ctx.node.op_type} with an Indices output": [ctx.node.name]})
    where = f"{ctx.node.op_type} {ctx.node.name!r}"
    if ctx.attrs["auto_pad"] in ("SAME_UPPER", "SAME_LOWER") and not all(isinstance(d, int) for d in x[2:]):
        # Symbolic spatial dims: pads are resolved at run time. Validate the attributes on a stand-in
        # size large enough for any window; the output size is ceil(size / stride) regardless.
        stand_in = tuple(d if isinstance(d, int) else 1 << 20 for d in x[2:])
        geo = pool_geometry(dict(ctx.attrs), (*x[:2], *stand_in), where)
        out = tuple(same_out_dim(d, s) for d, s in zip(x[2:], geo.strides, strict=True))
    else:
        out = pool_geometry(dict(ctx.attrs), x, where).out_spatial(x[2:])
    return [TensorType(ctx.input_type(0).dtype, (x[0], x[1], *out))]


@op_schema(
    "MaxPool",
    inputs=["X"],
    outputs=["Y", "Indices?"],
    attrs=[*_POOL_ATTRS, Attr("storage_order", AttrType.INT, 0, "only used by the Indices output")],
)
def _max_pool(ctx: InferContext) -> list[TensorType]:
    """Max over each window; padding never wins (it acts as -inf). The Indices output is not supported."""
    return _pool_infer(ctx)


@op_schema(
    "AveragePool",
    inputs=["X"],
    outputs=["Y"],
    attrs=[*_POOL_ATTRS, Attr("count_include_pad", AttrType.INT, 0)],
)
def _average_pool(ctx: InferContext) -> list[TensorType]:
    """Mean over each window (ONNX semantics, divisor as onnxruntime computes it).

    The sum runs over the window taps inside the input. The divisor is:

    * ``count_include_pad=0``: the number of taps inside the input (padding excluded);
    * ``count_include_pad=1``: the number of taps inside the *padded* extent
      ``[-pad_begin, size + pad_end)``, i.e. the window clipped to the padded input. With
      ``ceil_mode=1`` a last window that runs past the end padding is therefore divided by its
      clipped size, not by ``prod(kernel_shape)``. This is exactly Caffe's AVE pooling rule
      (ceil rounding, ``pool_size = (min(start + k, size + pad) - start)``), so Caffe maps to
      ``ceil_mode=1, count_include_pad=1`` with the same pads.
    """
    return _pool_infer(ctx)


def _global_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.shape(0)
    if len(x) < 3:
        raise ctx.fail(f"input must be (N, C, spatial...), got rank {len(x)}")
    return [TensorType(ctx.input_type(0).dtype, (x[0], x[1], *[1] * (len(x) - 2)))]


@op_schema("GlobalMaxPool", inputs=["X"], outputs=["Y"])
def _global_max_pool(ctx: InferContext) -> list[TensorType]:
    """Max over all spatial positions; output (N, C, 1, ...)."""
    return _global_infer(ctx)


@op_schema("GlobalAveragePool", inputs=["X"], outputs=["Y"])
def _global_average_pool(ctx: InferContext) -> list[TensorType]:
    """Mean over all spatial positions; output (N, C, 1, ...)."""
    return _global_infer(ctx)
