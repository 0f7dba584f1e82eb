"""Reference kernels of the Caffe-only ops: Normalize, PriorBox, DetectionOutput, LRNWithinChannel,
CaffeArgMax (semantics in convertmodel/ir/ops/detection.py).

Arithmetic is float32 like Caffe's CPU code (bbox_util.cpp works on float NormalizedBBox), so
boxes agree with Caffe and OpenCV to float rounding.
"""

from __future__ import annotations

import numpy as np

from convertmodel.ir.ops.detection import prior_aspect_ratios
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.runtime.registry import KernelContext, kernel

F32 = np.float32


@kernel("Normalize", CM_DOMAIN)
def normalize(ctx: KernelContext, x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    eps = F32(ctx.attrs["eps"])
    sq = np.square(x, dtype=F32)
    if ctx.attrs["across_spatial"]:
        # explicit sizes, not -1: numpy cannot infer -1 for an empty batch
        flat = sq.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))
        ssum = flat.sum(axis=1, dtype=F32).reshape((x.shape[0],) + (1,) * (x.ndim - 1))
    else:
        ssum = sq.sum(axis=1, keepdims=True, dtype=F32)
    norm = np.sqrt(ssum + eps)
    s = scale.astype(F32).reshape((1, -1) + (1,) * (x.ndim - 2))
    return ((x / norm) * s).astype(F32)


def prior_boxes(attrs: dict, feat_hw: tuple[int, int], img_hw: tuple[int, int]) -> np.ndarray:
    """The (1, 2, H*W*P*4) PriorBox output for a feature map and image size."""
    fh, fw = feat_hw
    img_h = int(attrs["img_h"]) or img_hw[0]
    img_w = int(attrs["img_w"]) or img_hw[1]
    step_h = F32(attrs["step_h"]) if attrs["step_h"] else F32(img_h) / F32(fh)
    step_w = F32(attrs["step_w"]) if attrs["step_w"] else F32(img_w) / F32(fw)
    offset = F32(attrs["offset"])
    # Box (width, height) pairs in Caffe's order: per min size, the square, sqrt(min*max), then ratios.
    sizes: list[tuple[np.float32, np.float32]] = []
    ars = prior_aspect_ratios(tuple(attrs["aspect_ratios"]), bool(attrs["flip"]))
    for k, mn in enumerate(attrs["min_sizes"]):
        mn32 = F32(mn)
        sizes.append((mn32, mn32))
        if attrs["max_sizes"]:
            side = F32(np.sqrt(F32(mn32 * F32(attrs["max_sizes"][k]))))
            sizes.append((side, side))
        for ar in ars:
            if abs(ar - 1.0) < 1e-6:
                continue
            r = F32(np.sqrt(F32(ar)))
            sizes.append((F32(mn32 * r), F32(mn32 / r)))
    bw = np.array([s[0] for s in sizes], F32)
    bh = np.array([s[1] for s in sizes], F32)
    cx = (np.arange(fw, dtype=F32) + offset) * step_w  # (W,)
    cy = (np.arange(fh, dtype=F32) + offset) * step_h  # (H,)
    cxg = np.broadcast_to(cx[None, :, None], (fh, fw, len(sizes)))
    cyg = np.broadcast_to(cy[:, None, None], (fh, fw, len(sizes)))
    half_w, half_h = bw / F32(2.0), bh / F32(2.0)
    boxes = np.stack(
        [
            (cxg - half_w) / F32(img_w),
            (cyg - half_h) / F32(img_h),
            (cxg + half_w) / F32(img_w),
            (cyg + half_h) / F32(img_h),
        ],
        axis=-1,
    ).astype(F32)
    flat = boxes.reshape(-1)
    if attrs["clip"]:
        flat = np.clip(flat, F32(0.0), F32(1.0))
    var = np.asarray(attrs["variances"], F32)
    var_row = np.broadcast_to(var if var.size == 4 else np.repeat(var, 4), (flat.size // 4, 4)).reshape(-1)
    return np.stack([flat, var_row])[None].astype(F32)


@kernel("PriorBox", CM_DOMAIN)
def prior_box(ctx: KernelContext, feature: np.ndarray, image: np.ndarray) -> np.ndarray:
    key = (feature.shape[2:], image.shape[2:])
    cached = ctx.cache.get("priors")
    if cached is None or cached[0] != key:
        cached = (key, prior_boxes(ctx.attrs, feature.shape[2:4], image.shape[2:4]))
        ctx.cache["priors"] = cached
    return cached[1].copy()


def decode_boxes(
    loc: np.ndarray, priors: np.ndarray, variances: np.ndarray, code_type: str, encoded: bool
) -> np.ndarray:
    """Caffe's DecodeBBox for arrays: loc (..., 4) offsets, priors and variances (P, 4) -> corners (..., 4)."""
    var = np.ones_like(variances) if encoded else variances
    pxmin, pymin, pxmax, pymax = (priors[:, i] for i in range(4))
    pw, ph = pxmax - pxmin, pymax - pymin
    lx, ly, lx2, ly2 = (loc[..., i] for i in range(4))
    if code_type == "CORNER":
        out = [pxmin + var[:, 0] * lx, pymin + var[:, 1] * ly, pxmax + var[:, 2] * lx2, pymax + var[:, 3] * ly2]
    elif code_type == "CORNER_SIZE":
        out = [
            pxmin + var[:, 0] * lx * pw,
            pymin + var[:, 1] * ly * ph,
            pxmax + var[:, 2] * lx2 * pw,
            pymax + var[:, 3] * ly2 * ph,
        ]
    else:  # CENTER_SIZE
        pcx, pcy = (pxmin + pxmax) / F32(2.0), (pymin + pymax) / F32(2.0)
        cx = var[:, 0] * lx * pw + pcx
        cy = var[:, 1] * ly * ph + pcy
        w = np.exp(var[:, 2] * lx2) * pw
        h = np.exp(var[:, 3] * ly2) * ph
        out = [cx - w / F32(2.0), cy - h / F32(2.0), cx + w / F32(2.0), cy + h / F32(2.0)]
    return np.stack(out, axis=-1).astype(F32)


def _box_size(b: np.ndarray) -> np.ndarray:
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return np.where((w < 0) | (h < 0), F32(0.0), w * h).astype(F32)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Caffe's JaccardOverlap (normalized boxes, no +1) of one box against many."""
    ix1 = np.maximum(box[0], others[:, 0])
    iy1 = np.maximum(box[1], others[:, 1])
    ix2 = np.minimum(box[2], others[:, 2])
    iy2 = np.minimum(box[3], others[:, 3])
    disjoint = (others[:, 0] > box[2]) | (others[:, 2] < box[0]) | (others[:, 1] > box[3]) | (others[:, 3] < box[1])
    inter = np.where(disjoint, F32(0.0), (ix2 - ix1) * (iy2 - iy1)).astype(F32)
    union = _box_size(box) + _box_size(others) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter > 0, inter / union, F32(0.0))
    return iou.astype(F32)


def nms_fast(
    boxes: np.ndarray, scores: np.ndarray, score_threshold: float, nms_threshold: float, eta: float, top_k: int
) -> list[int]:
    """Caffe's ApplyNMSFast: indices kept, in descending score order."""
    cand = np.nonzero(scores > F32(score_threshold))[0]
    order = cand[np.argsort(-scores[cand], kind="stable")]
    if top_k > -1:
        order = order[:top_k]
    kept: list[int] = []
    thr = float(nms_threshold)
    for idx in order:
        keep = True
        if kept:
            keep = bool(np.all(_iou(boxes[idx], boxes[np.asarray(kept)]) <= thr))
        if keep:
            kept.append(int(idx))
            if eta < 1.0 and thr > 0.5:
                thr *= eta
    return kept


@kernel("DetectionOutput", CM_DOMAIN)
def detection_output(ctx: KernelContext, loc: np.ndarray, conf: np.ndarray, priors: np.ndarray) -> np.ndarray:
    a = ctx.attrs
    n = loc.shape[0]
    nc = int(a["num_classes"])
    n_priors = priors.shape[2] // 4
    n_loc = 1 if a["share_location"] else nc
    pri = priors[0, 0].reshape(n_priors, 4).astype(F32)
    encoded = bool(a["variance_encoded_in_target"])
    var = np.ones((n_priors, 4), F32) if encoded else priors[0, 1].reshape(n_priors, 4).astype(F32)
    locs = loc.reshape(n, n_priors, n_loc, 4).astype(F32)
    confs = conf.reshape(n, n_priors, nc).astype(F32)
    rows: list[list[float]] = []
    for i in range(n):
        decoded = [decode_boxes(locs[i, :, c], pri, var, a["code_type"], encoded) for c in range(n_loc)]
        picked: dict[int, list[int]] = {}
        for c in range(nc):
            if c == a["background_label_id"]:
                continue
            boxes = decoded[0 if a["share_location"] else c]
            picked[c] = nms_fast(
                boxes, confs[i, :, c], a["confidence_threshold"], a["nms_threshold"], a["eta"], int(a["top_k"])
            )
        total = sum(len(v) for v in picked.values())
        keep_top_k = int(a["keep_top_k"])
        if keep_top_k > -1 and total > keep_top_k:
            pairs = [(c, idx) for c in sorted(picked) for idx in picked[c]]
            sc = np.array([confs[i, idx, c] for c, idx in pairs], F32)
            best = np.argsort(-sc, kind="stable")[:keep_top_k]
            picked = {}
            for k in best:
                c, idx = pairs[int(k)]
                picked.setdefault(c, []).append(idx)
        for c in sorted(picked):
            boxes = decoded[0 if a["share_location"] else c]
            for idx in picked[c]:
                rows.append([float(i), float(c), float(confs[i, idx, c]), *(float(v) for v in boxes[idx])])
    if not rows:
        out = np.full((1, 1, n, 7), -1.0, F32)
        out[0, 0, :, 0] = np.arange(n, dtype=F32)
        return out
    return np.asarray(rows, F32).reshape(1, 1, len(rows), 7)


@kernel("LRNWithinChannel", CM_DOMAIN)
def lrn_within(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    size = int(ctx.attrs["size"])
    pad = (size - 1) // 2
    sq = np.pad(np.square(x, dtype=F32), [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    h, w = x.shape[2], x.shape[3]
    acc = np.zeros(x.shape, F32)
    for dy in range(size):
        for dx in range(size):
            acc += sq[:, :, dy : dy + h, dx : dx + w]
    mean = acc / F32(size * size)
    scale = F32(1.0) + F32(ctx.attrs["alpha"]) * mean
    return (x * np.power(scale, F32(-ctx.attrs["beta"]))).astype(F32)


@kernel("CaffeArgMax", CM_DOMAIN)
def caffe_argmax(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    k = int(ctx.attrs["top_k"])
    out_val = bool(ctx.attrs["out_max_val"])
    if ctx.attrs["has_axis"]:
        axis = int(ctx.attrs["axis"]) % x.ndim
        xm = np.moveaxis(x, axis, -1)
    else:
        xm = x.reshape(x.shape[0], -1)
    d = xm.shape[-1]
    # Descending by value, ties to the larger index: sort the reversed array stably, map indices back.
    order = (d - 1) - np.argsort(-xm[..., ::-1], axis=-1, kind="stable")[..., :k]
    vals = np.take_along_axis(xm, order, axis=-1)
    if ctx.attrs["has_axis"]:
        res = vals if out_val else order.astype(F32)
        return np.ascontiguousarray(np.moveaxis(res.astype(F32), -1, axis))
    parts = [order.astype(F32)] + ([vals.astype(F32)] if out_val else [])
    y = np.stack(parts, axis=1)  # (N, 1|2, k)
    return y.reshape(y.shape + (1,) * max(0, x.ndim - 3))
