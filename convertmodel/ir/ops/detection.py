"""Schemas of Caffe-only ops (domain ``convertmodel``): the SSD layers Normalize, PriorBox and
DetectionOutput, plus Caffe's LRN WITHIN_CHANNEL form and Caffe's ArgMax.

Semantics follow the SSD fork of Caffe (weiliu89/caffe, branch ssd: normalize_layer.cpp,
prior_box_layer.cpp, detection_output_layer.cpp, bbox_util.cpp) and BVLC Caffe
(lrn_layer.cpp, argmax_layer.cpp); OpenCV's dnn module implements the same and is the test
reference. Kernels live in convertmodel/runtime/kernels/ref/detection.py.
"""

from __future__ import annotations

import math

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops._util import same_as
from convertmodel.ir.schema import CM_DOMAIN, Attr, AttrType, InferContext, op_schema

CODE_TYPES = ("CORNER", "CENTER_SIZE", "CORNER_SIZE")


@op_schema(
    "Normalize",
    domain=CM_DOMAIN,
    inputs=["X", "scale"],
    outputs=["Y"],
    attrs=[
        Attr("across_spatial", AttrType.INT, 1, "1: one L2 norm per sample over C*H*W; 0: one per position over C"),
        Attr("eps", AttrType.FLOAT, 1e-10, "added to the sum of squares before the square root"),
    ],
)
def _normalize(ctx: InferContext) -> list[TensorType]:
    """SSD's L2 normalization: Y = X / sqrt(sum(X^2) + eps) * scale[c].

    The sum runs over (C, H, W) of each sample when ``across_spatial`` is 1, else over C at each
    spatial position. ``scale`` has shape (C,) (per channel) or (1,) (Caffe's channel_shared).
    """
    x = ctx.shape(0)
    s = ctx.shape(1)
    if len(x) < 2:
        raise ctx.fail(f"input must be (N, C, ...), got shape {list(x)}")
    if len(s) != 1 or (isinstance(s[0], int) and isinstance(x[1], int) and s[0] not in (1, x[1])):
        raise ctx.fail(f"scale must have shape (1,) or ({x[1]},), got {list(s)}")
    return same_as(ctx.input_type(0))


def prior_aspect_ratios(aspect_ratios: tuple[float, ...], flip: bool) -> list[float]:
    """Caffe's list: 1 first, then each new ratio (duplicates within 1e-6 dropped) and, with flip, its inverse."""
    out = [1.0]
    for ar in aspect_ratios:
        if not math.isfinite(ar) or ar <= 0:
            raise InvalidModelError(f"PriorBox aspect ratios must be finite and > 0, got {list(aspect_ratios)}")
        if any(abs(ar - a) < 1e-6 for a in out):
            continue
        out.append(float(ar))
        if flip:
            out.append(1.0 / float(ar))
    return out


def num_priors(attrs: dict) -> int:
    """Priors per feature-map cell: aspect ratios x min sizes, plus one per max size."""
    ars = prior_aspect_ratios(tuple(attrs["aspect_ratios"]), bool(attrs["flip"]))
    return len(ars) * len(attrs["min_sizes"]) + len(attrs["max_sizes"])


@op_schema(
    "PriorBox",
    domain=CM_DOMAIN,
    inputs=["feature", "image"],
    outputs=["priors"],
    attrs=[
        Attr("min_sizes", AttrType.FLOATS, doc="box sizes in pixels (required)"),
        Attr("max_sizes", AttrType.FLOATS, (), "one per min size: adds a sqrt(min*max) square box"),
        Attr("aspect_ratios", AttrType.FLOATS, (), "extra ratios besides 1"),
        Attr("flip", AttrType.INT, 1, "also use 1/ratio"),
        Attr("clip", AttrType.INT, 0, "clip coordinates to [0, 1]"),
        Attr("variances", AttrType.FLOATS, (0.1,), "1 or 4 values written to the second channel"),
        Attr("img_h", AttrType.INT, 0, "image height; 0 = the image input's"),
        Attr("img_w", AttrType.INT, 0, "image width; 0 = the image input's"),
        Attr("step_h", AttrType.FLOAT, 0.0, "cell height in pixels; 0 = img_h / feature height"),
        Attr("step_w", AttrType.FLOAT, 0.0, "cell width in pixels; 0 = img_w / feature width"),
        Attr("offset", AttrType.FLOAT, 0.5, "box centre within the cell, in cells"),
    ],
)
def _prior_box(ctx: InferContext) -> list[TensorType]:
    """SSD prior (anchor) boxes for a feature map; output (1, 2, H*W*P*4) float32.

    For each cell (h, w), in row-major order, centre = ((w + offset) * step_w, (h + offset) * step_h);
    for each min size s: a box s x s, then (with max sizes) sqrt(s*max) x sqrt(s*max), then for each
    aspect ratio r != 1: s*sqrt(r) x s/sqrt(r). Channel 0 holds (xmin, ymin, xmax, ymax) divided by the
    image size (clipped to [0, 1] with ``clip``); channel 1 holds the variances for each box.
    The values depend only on the input shapes.
    """
    f = ctx.shape(0)
    ctx.shape(1)
    if len(f) != 4:
        raise ctx.fail(f"feature input must be (N, C, H, W), got {list(f)}")
    attrs = ctx.attrs
    if not attrs["min_sizes"]:
        raise ctx.fail("min_sizes must not be empty")
    if attrs["max_sizes"] and len(attrs["max_sizes"]) != len(attrs["min_sizes"]):
        raise ctx.fail(f"max_sizes {list(attrs['max_sizes'])} must pair with min_sizes {list(attrs['min_sizes'])}")
    if len(attrs["variances"]) not in (1, 4):
        raise ctx.fail(f"variances must have 1 or 4 values, got {list(attrs['variances'])}")
    p = num_priors(dict(attrs))
    size: Dim = f[2] * f[3] * p * 4 if isinstance(f[2], int) and isinstance(f[3], int) else None
    return [TensorType("float32", (1, 2, size))]


@op_schema(
    "DetectionOutput",
    domain=CM_DOMAIN,
    inputs=["loc", "conf", "priors"],
    outputs=["detections"],
    attrs=[
        Attr("num_classes", AttrType.INT, doc="classes incl. background (required)"),
        Attr("share_location", AttrType.INT, 1, "one box per prior for all classes"),
        Attr("background_label_id", AttrType.INT, 0, "class skipped in the output; -1 for none"),
        Attr("nms_threshold", AttrType.FLOAT, 0.3, "IoU above which a lower-scored box is suppressed"),
        Attr("top_k", AttrType.INT, -1, "boxes per class kept before NMS; -1 all"),
        Attr("eta", AttrType.FLOAT, 1.0, "adaptive NMS factor (1 = plain NMS)"),
        Attr("keep_top_k", AttrType.INT, -1, "boxes per image kept after NMS; -1 all"),
        Attr("confidence_threshold", AttrType.FLOAT, -3.4028234663852886e38, "scores must be strictly above"),
        Attr("code_type", AttrType.STRING, "CORNER", "CORNER, CENTER_SIZE or CORNER_SIZE"),
        Attr("variance_encoded_in_target", AttrType.INT, 0, "1: the variances are already in loc"),
    ],
)
def _detection_output(ctx: InferContext) -> list[TensorType]:
    """SSD's box decoding + per-class NMS + keep_top_k; output (1, 1, K, 7) like Caffe and OpenCV.

    Inputs: ``loc`` (N, P*L*4) box offsets with L = 1 if share_location else num_classes; ``conf``
    (N, P*num_classes) class scores (already softmaxed); ``priors`` (1, 2, P*4) from PriorBox (boxes,
    then variances; with variance_encoded_in_target the variances are unused and may be absent: (1, 1, P*4)). Each
    row is [image_id, label, score, xmin, ymin, xmax, ymax] (normalized coordinates, not clipped),
    grouped per image, by label ascending, by score descending within a label. NMS is Caffe's
    ApplyNMSFast: candidates with score > confidence_threshold, stable-sorted by score, cut to top_k,
    then greedily kept when their IoU with every kept box is <= the (adaptive) threshold. With no
    detection at all, the output is one row [i, -1, -1, -1, -1, -1, -1] per image (Caffe's rule).
    K depends on the data, so the third dim is unknown.
    """
    loc, conf, pri = ctx.shape(0), ctx.shape(1), ctx.shape(2)
    if ctx.attrs["code_type"] not in CODE_TYPES:
        raise ctx.fail(f"code_type must be one of {', '.join(CODE_TYPES)}, got {ctx.attrs['code_type']!r}")
    if ctx.attrs["num_classes"] < 1:
        raise ctx.fail(f"num_classes must be >= 1, got {ctx.attrs['num_classes']}")
    channels = (1, 2) if ctx.attrs["variance_encoded_in_target"] else (2,)
    if len(pri) != 3 or pri[1] not in channels:
        raise ctx.fail(f"priors must be (1, {' or '.join(map(str, channels))}, P*4), got {list(pri)}")
    for what, s in (("loc", loc), ("conf", conf)):
        if len(s) < 2:
            raise ctx.fail(f"{what} must be (N, ...), got {list(s)}")
    if isinstance(pri[2], int) and isinstance(conf[-1], int) and len(conf) == 2:
        n_priors = pri[2] // 4
        if conf[1] != n_priors * ctx.attrs["num_classes"]:
            raise ctx.fail(
                f"conf has {conf[1]} scores per image, expected {n_priors} priors x {ctx.attrs['num_classes']} classes"
            )
    return [TensorType(ctx.input_type(0).dtype, (1, 1, None, 7))]


@op_schema(
    "LRNWithinChannel",
    domain=CM_DOMAIN,
    inputs=["X"],
    outputs=["Y"],
    attrs=[
        Attr("size", AttrType.INT, doc="odd side of the square spatial window (required)"),
        Attr("alpha", AttrType.FLOAT, 1.0),
        Attr("beta", AttrType.FLOAT, 0.75),
    ],
)
def _lrn_within(ctx: InferContext) -> list[TensorType]:
    """Caffe's LRN with norm_region WITHIN_CHANNEL: Y = X / (1 + alpha * mean(X^2))^beta.

    The mean is over a size x size spatial window centred on each position, zero-padded by
    (size - 1) / 2 and always divided by size^2 (Caffe builds it from AVE pooling, which counts
    the padding). Caffe's ``k`` is not used by this form.
    """
    x = ctx.shape(0)
    if len(x) != 4:
        raise ctx.fail(f"input must be (N, C, H, W), got {list(x)}")
    if ctx.attrs["size"] < 1 or ctx.attrs["size"] % 2 == 0:
        raise ctx.fail(f"size must be odd and >= 1, got {ctx.attrs['size']}")
    return same_as(ctx.input_type(0))


@op_schema(
    "CaffeArgMax",
    domain=CM_DOMAIN,
    inputs=["X"],
    outputs=["Y"],
    attrs=[
        Attr("top_k", AttrType.INT, 1),
        Attr("out_max_val", AttrType.INT, 0, "output the values (with has_axis) or (index, value) pairs"),
        Attr("has_axis", AttrType.INT, 0, "0: over all axes after the first, per sample"),
        Attr("axis", AttrType.INT, 0, "used when has_axis is 1; may be negative"),
    ],
)
def _caffe_argmax(ctx: InferContext) -> list[TensorType]:
    """Caffe's ArgMax: the top_k indices (as float32) in descending order of value.

    Without an axis each sample's values are flattened: output (N, 1, top_k), or (N, 2, top_k) holding
    indices then values with ``out_max_val``, padded with trailing 1s to the input's rank. With an axis
    the output is the input shape with that axis set to top_k, holding indices, or the values
    themselves with ``out_max_val``. Ties go to the larger index (Caffe sorts (value, index) pairs).
    """
    x = ctx.shape(0)
    k = int(ctx.attrs["top_k"])
    if k < 1:
        raise ctx.fail(f"top_k must be >= 1, got {k}")
    if ctx.attrs["has_axis"]:
        axis = int(ctx.attrs["axis"])
        if not -len(x) <= axis < len(x):
            raise ctx.fail(f"axis {axis} is out of range for rank {len(x)}")
        axis %= len(x)
        shape = list(x)
        shape[axis] = k
        return [TensorType("float32", tuple(shape))]
    shape2: list[Dim] = [x[0], 2 if ctx.attrs["out_max_val"] else 1, k]
    shape2 += [1] * max(0, len(x) - 3)
    return [TensorType("float32", tuple(shape2))]
