"""BigDL resampling, padding and SSD handlers: UpSampling2D, ResizeBilinear, InferReshape, PriorBox, Padding."""

from __future__ import annotations

import math

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.readers.bigdl.context import Act, ModuleContext, module_handler
from convertmodel.readers.bigdl.modules import _unsupported
from convertmodel.readers.torchnn import emit


@module_handler("UpSampling2D")
def upsampling2d(ctx: ModuleContext) -> Act:
    size = [int(v) for v in ctx.attr("size")]
    if len(size) != 2 or min(size) < 1:
        raise ctx.fail(f"size must be two positive factors, got {size}")
    fmt = ctx.fmt("format")
    x = emit.to_nchw(ctx.b, ctx.name, ctx.tensor_in(), fmt)
    scales = ctx.const("scales", np.asarray([1.0, 1.0, size[0], size[1]], np.float32))
    y = ctx.node(
        "Resize",
        [x, "", scales],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return emit.from_nchw(ctx.b, ctx.name, y, fmt)


@module_handler("ResizeBilinear")
def resize_bilinear(ctx: ModuleContext) -> Act:
    """TensorFlow's resize_bilinear (BigDL's port): align_corners, or ``src = dst * in / out``."""
    oh, ow = ctx.i("outputHeight"), ctx.i("outputWidth")
    fmt = ctx.fmt("dataFormat")
    x = emit.to_nchw(ctx.b, ctx.name, ctx.tensor_in(), fmt)
    sizes = ctx.const("sizes", np.asarray([oh, ow], np.int64))
    ctm = "align_corners" if bool(ctx.attr("alignCorners", False)) else "asymmetric"
    y = ctx.node("Resize", [x, "", "", sizes], mode="linear", coordinate_transformation_mode=ctm, axes=[2, 3])
    return emit.from_nchw(ctx.b, ctx.name, y, fmt)


@module_handler("InferReshape")
def infer_reshape(ctx: ModuleContext) -> Act:
    """BigDL InferReshape: 0 copies the input's dimension, -1 is inferred (ONNX Reshape's own rules);
    batchMode keeps the batch dimension in front."""
    size = [int(v) for v in ctx.attr("size")]
    if bool(ctx.attr("batchMode", False)):
        size = [0, *size]
    return emit.reshape(ctx.b, ctx.name, ctx.tensor_in(), size)


@module_handler("PriorBox")
def prior_box(ctx: ModuleContext) -> Act:
    """BigDL's PriorBox (a port of Caffe SSD's): feature map, or a table (feature map, image)."""
    feat = ctx.x
    image = None
    if isinstance(feat, list):
        xs = ctx.table_in()
        feat, image = xs[0], xs[1] if len(xs) > 1 else None
    mins = [float(v) for v in ctx.attr("minSizes")]
    maxs = [float(v) for v in (ctx.attr("maxSizes", None) or [])]
    ratios = [float(v) for v in (ctx.attr("_aspectRatios", None) or [])]
    variances = [float(v) for v in (ctx.attr("variances", None) or [0.1])]
    for what, vals in (("minSizes", mins), ("maxSizes", maxs), ("aspectRatios", ratios), ("variances", variances)):
        if any(not math.isfinite(v) or v <= 0 for v in vals):
            raise ctx.fail(f"{what} must be finite and > 0, got {vals}")
    if not mins:
        raise ctx.fail("minSizes is required")
    img_size = ctx.i("imgSize", 0)
    img_h, img_w = ctx.i("imgH", 0) or img_size, ctx.i("imgW", 0) or img_size
    step = float(ctx.attr("step", 0.0))
    step_h, step_w = float(ctx.attr("stepH", 0.0)) or step, float(ctx.attr("stepW", 0.0)) or step
    if image is None and (img_h <= 0 or img_w <= 0):
        raise ctx.fail("needs imgH/imgW (or imgSize) or an image input")
    return ctx.node(
        "PriorBox",
        [str(feat), str(image if image is not None else feat)],
        domain=CM_DOMAIN,
        min_sizes=mins,
        max_sizes=maxs,
        aspect_ratios=ratios,
        flip=int(bool(ctx.attr("isFlip", True))),
        clip=int(bool(ctx.attr("isClip", False))),
        variances=variances,
        img_h=img_h,
        img_w=img_w,
        step_h=step_h,
        step_w=step_w,
        offset=float(ctx.attr("offset", 0.5)),
    )


@module_handler("Padding")
def padding(ctx: ModuleContext) -> Act:
    """BigDL Padding(dim, pad, nInputDim, value, nIndex): |pad| values along ``dim`` (1-based, shifted
    past a batch dimension), before the data when pad < 0, after it when pad > 0 (nIndex = 1)."""
    x = ctx.tensor_in()
    rank = ctx.b.rank(x)
    dim, pad, n_in = ctx.i("dim"), ctx.i("pad"), ctx.i("nInputDim", 0)
    if ctx.i("nIndex", 1) != 1:
        raise _unsupported(ctx, f"nIndex={ctx.i('nIndex')}")
    axis = dim - 1 + (1 if rank != n_in else 0)
    if not 0 <= axis < rank:
        raise ctx.fail(f"dim {dim} is outside an input of rank {rank}")
    pads = [0] * (2 * rank)
    pads[axis if pad < 0 else axis + rank] = abs(pad)
    value = ctx.const("value", np.float32(float(ctx.attr("value", 0.0))))
    return ctx.node("Pad", [x, ctx.const("pads", np.asarray(pads, np.int64)), value], mode="constant")
