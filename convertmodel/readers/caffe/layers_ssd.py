"""Caffe layer handlers of the SSD fork (Normalize, PriorBox, DetectionOutput) and Caffe's ArgMax.

The IR ops are Caffe-only, in the ``convertmodel`` domain (convertmodel/ir/ops/detection.py).
"""

from __future__ import annotations

import math
from typing import Any

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.readers.caffe.context import LayerContext, layer_handler

CODE_TYPES = {1: "CORNER", 2: "CENTER_SIZE", 3: "CORNER_SIZE"}


@layer_handler("Normalize")
def normalize(ctx: LayerContext) -> list[str]:
    p = ctx.layer.norm_param
    c = ctx.shape(0)[1]
    ctx.need_blobs(1)
    scale = ctx.blob(0, (1,) if p.channel_shared else (c,))
    return [
        ctx.node(
            "Normalize",
            [ctx.inputs[0], ctx.const("scale", scale)],
            out=ctx.top(),
            domain=CM_DOMAIN,
            across_spatial=int(p.across_spatial),
            eps=float(p.eps),
        )
    ]


@layer_handler("PriorBox", bottoms=(2, 2))
def prior_box(ctx: LayerContext) -> list[str]:
    p = ctx.layer.prior_box_param
    if not p.min_size:
        raise ctx.fail("prior_box_param.min_size is required")
    for field in ("min_size", "max_size", "aspect_ratio", "variance"):
        bad = [float(v) for v in getattr(p, field) if not math.isfinite(v) or v <= 0]
        if bad:
            raise ctx.fail(f"prior_box_param.{field} must be finite and > 0, got {bad}")
    img_h = int(p.img_h) if p.HasField("img_h") else int(p.img_size)
    img_w = int(p.img_w) if p.HasField("img_w") else int(p.img_size)
    step_h = float(p.step_h) if p.HasField("step_h") else float(p.step)
    step_w = float(p.step_w) if p.HasField("step_w") else float(p.step)
    return [
        ctx.node(
            "PriorBox",
            ctx.inputs,
            out=ctx.top(),
            domain=CM_DOMAIN,
            min_sizes=[float(v) for v in p.min_size],
            max_sizes=[float(v) for v in p.max_size],
            aspect_ratios=[float(v) for v in p.aspect_ratio],
            flip=int(p.flip),
            clip=int(p.clip),
            variances=[float(v) for v in p.variance] or [0.1],
            img_h=img_h,
            img_w=img_w,
            step_h=step_h,
            step_w=step_w,
            offset=float(p.offset),
        )
    ]


@layer_handler("DetectionOutput", bottoms=(3, 3))
def detection_output(ctx: LayerContext) -> list[str]:
    p = ctx.layer.detection_output_param
    if not p.HasField("num_classes"):
        raise ctx.fail("detection_output_param.num_classes is required")
    nms = p.nms_param
    attrs: dict[str, Any] = {
        "num_classes": int(p.num_classes),
        "share_location": int(p.share_location),
        "background_label_id": int(p.background_label_id),
        "nms_threshold": float(nms.nms_threshold),
        "top_k": int(nms.top_k) if nms.HasField("top_k") else -1,
        "eta": float(nms.eta),
        "keep_top_k": int(p.keep_top_k),
        "code_type": CODE_TYPES[int(p.code_type)],
        "variance_encoded_in_target": int(p.variance_encoded_in_target),
    }
    if p.HasField("confidence_threshold"):
        attrs["confidence_threshold"] = float(p.confidence_threshold)
    return [ctx.node("DetectionOutput", ctx.inputs, out=ctx.top(), domain=CM_DOMAIN, **attrs)]


@layer_handler("ArgMax")
def argmax(ctx: LayerContext) -> list[str]:
    p = ctx.layer.argmax_param
    return [
        ctx.node(
            "CaffeArgMax",
            ctx.inputs[:1],
            out=ctx.top(),
            domain=CM_DOMAIN,
            top_k=int(p.top_k),
            out_max_val=int(p.out_max_val),
            has_axis=int(p.HasField("axis")),
            axis=int(p.axis),
        )
    ]
