"""IR node -> Caffe layer emitters: shape ops, Softmax, LRN and the Caffe-only (SSD, ArgMax) ops."""

from __future__ import annotations

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.readers.caffe.proto import pb
from convertmodel.writers.caffe.layers import EmitContext, Emitted, NotExpressible, emits


@emits("Concat")
def concat(ctx: EmitContext) -> list[Emitted]:
    if any(ctx.const(i) is not None for i in range(len(ctx.node.inputs))):
        raise NotExpressible("constant operands have no Caffe layer")
    lp = ctx.layer("Concat", bottoms=list(ctx.node.inputs))
    lp.concat_param.axis = int(ctx.attrs["axis"])
    return [Emitted(lp, [])]


@emits("Split")
def split(ctx: EmitContext) -> list[Emitted]:
    x = ctx.shape(ctx.node.inputs[0])
    axis = int(ctx.attrs["axis"]) % len(x)
    tops = list(ctx.node.outputs)
    if not all(tops):
        raise NotExpressible("omitted outputs have no Caffe equivalent")
    lp = ctx.layer("Slice", tops=tops)
    lp.slice_param.axis = axis
    if len(ctx.node.inputs) > 1 and ctx.node.inputs[1]:
        sizes = ctx.need_const(1, "split").astype(np.int64).reshape(-1)
        lp.slice_param.slice_point.extend(int(v) for v in np.cumsum(sizes)[:-1])
    return [Emitted(lp, [])]


@emits("Flatten")
def flatten(ctx: EmitContext) -> list[Emitted]:
    x = ctx.shape(ctx.node.inputs[0])
    axis = int(ctx.attrs["axis"]) % max(len(x), 1)
    if axis != 1:
        raise NotExpressible(f"Flatten(axis={axis}) is 2-D in the IR but keeps the leading axes in Caffe")
    return [Emitted(ctx.layer("Flatten"), [])]


@emits("Reshape")
def reshape(ctx: EmitContext) -> list[Emitted]:
    if ctx.attrs.get("allowzero"):
        raise NotExpressible("allowzero=1 has no Caffe equivalent")
    shape = ctx.need_const(1, "shape").astype(np.int64).reshape(-1)
    lp = ctx.layer("Reshape")
    # ONNX's 0 (copy the input dim at the same index) and -1 are Caffe's with axis 0, num_axes -1.
    lp.reshape_param.shape.dim.extend(int(d) for d in shape)
    return [Emitted(lp, [])]


@emits("Transpose")
def transpose(ctx: EmitContext) -> list[Emitted]:
    x = ctx.shape(ctx.node.inputs[0])
    perm = list(ctx.attrs["perm"]) or list(range(len(x)))[::-1]
    lp = ctx.layer("Permute")
    lp.permute_param.order.extend(int(p) for p in perm)
    return [Emitted(lp, [])]


@emits("Softmax")
def softmax(ctx: EmitContext) -> list[Emitted]:
    lp = ctx.layer("Softmax")
    lp.softmax_param.axis = int(ctx.attrs["axis"])
    return [Emitted(lp, [])]


@emits("LRN")
def lrn(ctx: EmitContext) -> list[Emitted]:
    lp = ctx.layer("LRN")
    p = lp.lrn_param
    p.local_size, p.alpha, p.beta, p.k = (
        int(ctx.attrs["size"]),
        float(ctx.attrs["alpha"]),
        float(ctx.attrs["beta"]),
        float(ctx.attrs["bias"]),
    )
    return [Emitted(lp, [])]


@emits("LRNWithinChannel", domain=CM_DOMAIN)
def lrn_within(ctx: EmitContext) -> list[Emitted]:
    lp = ctx.layer("LRN")
    p = lp.lrn_param
    p.norm_region = pb.LRNParameter.WITHIN_CHANNEL
    p.local_size, p.alpha, p.beta = int(ctx.attrs["size"]), float(ctx.attrs["alpha"]), float(ctx.attrs["beta"])
    return [Emitted(lp, [])]


@emits("Normalize", domain=CM_DOMAIN)
def normalize(ctx: EmitContext) -> list[Emitted]:
    scale = ctx.need_const(1, "scale").reshape(-1)
    lp = ctx.layer("Normalize")
    p = lp.norm_param
    p.across_spatial = bool(ctx.attrs["across_spatial"])
    p.channel_shared = scale.size == 1
    p.eps = float(ctx.attrs["eps"])
    return [Emitted(lp, [scale])]


@emits("PriorBox", domain=CM_DOMAIN)
def prior_box(ctx: EmitContext) -> list[Emitted]:
    a = ctx.attrs
    lp = ctx.layer("PriorBox", bottoms=list(ctx.node.inputs))
    p = lp.prior_box_param
    p.min_size.extend(a["min_sizes"])
    p.max_size.extend(a["max_sizes"])
    p.aspect_ratio.extend(a["aspect_ratios"])
    p.flip, p.clip = bool(a["flip"]), bool(a["clip"])
    p.variance.extend(a["variances"])
    p.offset = float(a["offset"])
    for field, value in (
        ("img_h", a["img_h"]),
        ("img_w", a["img_w"]),
        ("step_h", a["step_h"]),
        ("step_w", a["step_w"]),
    ):
        if value:
            setattr(p, field, value)
    return [Emitted(lp, [])]


@emits("DetectionOutput", domain=CM_DOMAIN)
def detection_output(ctx: EmitContext) -> list[Emitted]:
    a = ctx.attrs
    lp = ctx.layer("DetectionOutput", bottoms=list(ctx.node.inputs))
    p = lp.detection_output_param
    p.num_classes = int(a["num_classes"])
    p.share_location = bool(a["share_location"])
    p.background_label_id = int(a["background_label_id"])
    p.nms_param.nms_threshold = float(a["nms_threshold"])
    if int(a["top_k"]) > -1:
        p.nms_param.top_k = int(a["top_k"])
    p.nms_param.eta = float(a["eta"])
    p.keep_top_k = int(a["keep_top_k"])
    p.code_type = pb.PriorBoxParameter.CodeType.Value(a["code_type"])
    p.variance_encoded_in_target = bool(a["variance_encoded_in_target"])
    if float(a["confidence_threshold"]) > -3.4e38:
        p.confidence_threshold = float(a["confidence_threshold"])
    return [Emitted(lp, [])]


@emits("CaffeArgMax", domain=CM_DOMAIN)
def argmax(ctx: EmitContext) -> list[Emitted]:
    a = ctx.attrs
    lp = ctx.layer("ArgMax")
    p = lp.argmax_param
    p.top_k, p.out_max_val = int(a["top_k"]), bool(a["out_max_val"])
    if a["has_axis"]:
        p.axis = int(a["axis"])
    return [Emitted(lp, [])]
