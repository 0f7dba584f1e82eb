"""IR node -> BigDL module emitters: tables (Concat, Add, Mul), per-channel constants, shapes, padding, upsampling."""

from __future__ import annotations

import math

import numpy as np

from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.writers.bigdl.build import Mod, a_bool, a_double, a_format, a_int, a_ints, a_null_regularizer
from convertmodel.writers.bigdl.modules import INT_MIN, Ctx, NotExpressible, emits


def _data_inputs(ctx: Ctx) -> list[int]:
    return [i for i, v in enumerate(ctx.node.inputs) if v and v not in ctx.graph.constants]


@emits("Concat")
def _concat(ctx: Ctx) -> list[Mod]:
    if len(_data_inputs(ctx)) != len(ctx.node.inputs):
        raise NotExpressible("a constant input")
    rank = len(ctx.shape(0))
    axis = int(ctx.attrs["axis"]) % rank
    if axis == 0:
        raise NotExpressible("concatenation along the batch axis")
    return [Mod("JoinTable", {"dimension": a_int(axis + 1), "nInputDims": a_int(0)})]


def _broadcast_size(ctx: Ctx, c: np.ndarray) -> list[int]:
    """The size of a CAdd/CMul parameter for constant ``c`` broadcast against the data input (batch kept)."""
    rank = len(ctx.shape(_data_inputs(ctx)[0]))
    per = ctx.static(_data_inputs(ctx)[0])
    shape = [1] * (rank - c.ndim) + list(c.shape)
    if shape[0] != 1:
        raise NotExpressible(f"a constant of shape {list(c.shape)} that varies along the batch")
    for d, n in zip(shape[1:], per, strict=True):
        if d not in (1, n):
            raise NotExpressible(f"a constant of shape {list(c.shape)} against input {list(per)}")
    return shape


@emits("Sum")
def _sum(ctx: Ctx) -> list[Mod]:
    if len(_data_inputs(ctx)) != len(ctx.node.inputs) or len({ctx.shape(i) for i in range(len(ctx.node.inputs))}) != 1:
        raise NotExpressible("inputs of different shapes or constants")
    return [Mod("CAddTable", {"inplace": a_bool(False)})]


@emits("Where")
def _where(ctx: Ctx) -> list[Mod]:
    """Where(Greater(x, th), x, v): BigDL's Threshold(th, v) (the Greater is folded by the writer's plan)."""
    th = ctx.fused_threshold
    v = ctx.const(2)
    if th is None or v is None or v.size != 1:
        raise NotExpressible("only Where(Greater(x, th), x, v) with constant th and v (a Threshold)")
    ctx.data = [ctx.node.inputs[1]]
    return [Mod("Threshold", {"th": a_double(th), "v": a_double(float(v.reshape(-1)[0])), "ip": a_bool(False)})]


@emits("Div")
def _div(ctx: Ctx) -> list[Mod]:
    """x / sqrt(sum(x * x, axis 1) + eps) (the writer's plan matched it): BigDL's Normalize(2, eps)."""
    if ctx.fused_l2_eps is None:
        raise NotExpressible("only as the L2 normalisation x / sqrt(sum(x * x, axis 1) + eps)")
    ctx.data = [ctx.node.inputs[0]]
    return [Mod("Normalize", {"p": a_double(2.0), "eps": a_double(ctx.fused_l2_eps)})]


@emits("LpNormalization")
def _lp(ctx: Ctx) -> list[Mod]:
    rank = len(ctx.shape(0))
    if int(ctx.attrs.get("axis", -1)) % rank != 1 or rank not in (2, 4):
        raise NotExpressible("only along axis 1 of a 2-D or 4-D input")
    return [Mod("Normalize", {"p": a_double(float(ctx.attrs.get("p", 2))), "eps": a_double(1e-10)})]


@emits("Add", "Mul", "Sub")
def _arith(ctx: Ctx) -> list[Mod]:
    data = _data_inputs(ctx)
    op = ctx.node.op_type
    if len(data) == 2:
        if op == "Sub" or ctx.shape(0) != ctx.shape(1):
            raise NotExpressible("two inputs of different shapes" if op != "Sub" else "Sub of two tensors")
        return [Mod("CAddTable", {"inplace": a_bool(False)}) if op == "Add" else Mod("CMulTable")]
    if len(data) != 1:
        raise NotExpressible("no data input")
    ci = 1 - data[0]
    c = np.asarray(ctx.graph.constants[ctx.node.inputs[ci]], np.float32)
    if op == "Sub":
        if ci == 0:
            raise NotExpressible("constant minus tensor")
        c = -c
    size = _broadcast_size(ctx, c)
    value = np.ascontiguousarray(np.broadcast_to(c.reshape([1] * (len(size) - c.ndim) + list(c.shape)), size))
    if op == "Mul":
        return [Mod("CMul", {"size": a_ints(size), "wRegularizer": a_null_regularizer()}, [value])]
    return [Mod("CAdd", {"size": a_ints(size), "bRegularizer": a_null_regularizer()}, [value])]


def reshape_to(ctx: Ctx, target: list[int]) -> list[Mod]:
    """Reshape keeping the batch dim: BigDL's Reshape(size, batchMode = Some(true))."""
    per = ctx.static(0)
    if math.prod(per) != math.prod(target):
        raise NotExpressible(f"reshape of {list(per)} to {target} does not keep the batch dimension")
    # Reshape's batchMode is an Option[Boolean]: BigDL writes 0 (None), 1 (false), 2 (true)
    return [Mod("Reshape", {"size": a_ints(target), "batchMode": a_int(2)})]


@emits("Reshape")
def _reshape(ctx: Ctx) -> list[Mod]:
    s = [int(v) for v in ctx.need_const(1, "the shape").reshape(-1)]
    if not s or (s[0] not in (0, -1) and s[0] != ctx.shape(0)[0]):
        raise NotExpressible(f"target shape {s} does not keep the batch dimension first")
    try:
        per = ctx.static(0)
    except NotExpressible:  # sizes after the batch unknown: BigDL infers them (-1, 0 = copy) at run time
        if int(ctx.attrs.get("allowzero", 0)) or s[1:].count(-1) > 1:
            raise
        if -1 not in s[1:] and 0 not in s[1:]:
            return [Mod("Reshape", {"size": a_ints(s[1:]), "batchMode": a_int(2)})]
        return [Mod("InferReshape", {"size": a_ints(s[1:]), "batchMode": a_bool(True)})]
    rest = [per[i - 1] if v == 0 and not int(ctx.attrs.get("allowzero", 0)) else v for i, v in enumerate(s) if i]
    if rest.count(-1) > 1:
        raise NotExpressible(f"target shape {s}")
    if -1 in rest:
        known = math.prod(v for v in rest if v != -1)
        rest[rest.index(-1)] = math.prod(per) // known if known else 0
    if rest == list(per):
        return [Mod("Identity")]
    return reshape_to(ctx, rest)


@emits("Flatten")
def _flatten(ctx: Ctx) -> list[Mod]:
    rank = len(ctx.shape(0))
    if int(ctx.attrs.get("axis", 1)) % max(rank, 1) != 1:
        raise NotExpressible("Flatten with axis != 1")
    return reshape_to(ctx, [math.prod(ctx.static(0))])


def _swaps(perm: list[int]) -> list[tuple[int, int]]:
    """Pairwise swaps (BigDL's Transpose, applied in order) that give ``x.transpose(perm)``."""
    cur = list(range(len(perm)))
    out = []
    for i, want in enumerate(perm):
        j = cur.index(want)
        if j != i:
            cur[i], cur[j] = cur[j], cur[i]
            out.append((i + 1, j + 1))
    return out


@emits("Transpose")
def _transpose(ctx: Ctx) -> list[Mod]:
    rank = len(ctx.shape(0))
    perm = [int(p) % rank for p in (ctx.attrs.get("perm") or range(rank)[::-1])]
    sw = _swaps(perm)
    if not sw:
        return [Mod("Identity")]
    attrs = {"size": a_int(len(sw))}
    for i, (a, b) in enumerate(sw):
        attrs[f"permutation_{i}"] = a_ints([a, b])
    return [Mod("Transpose", attrs)]


@emits("Squeeze")
def _squeeze(ctx: Ctx) -> list[Mod]:
    rank = len(ctx.shape(0))
    axes = ctx.const(1)
    if axes is None:
        raise NotExpressible("Squeeze without axes")
    dims = sorted(int(a) % rank for a in axes.reshape(-1))
    if 0 in dims:
        raise NotExpressible("squeezing the batch axis")
    # BigDL squeezes the dims one after the other: the highest first keeps the others' numbers
    return [Mod("Squeeze", {"dims": a_ints([d + 1 for d in reversed(dims)]), "batchMode": a_bool(False)})]


@emits("Unsqueeze")
def _unsqueeze(ctx: Ctx) -> list[Mod]:
    axes = ctx.need_const(1, "axes").reshape(-1)
    rank = len(ctx.shape(0)) + axes.size
    pos = sorted(int(a) % rank for a in axes)
    if 0 in pos:
        raise NotExpressible("a new leading (batch) axis")
    return [Mod("Unsqueeze", {"pos": a_ints([p + 1 for p in pos]), "numInputDims": a_int(INT_MIN)})]


@emits("Pad")
def _pad(ctx: Ctx) -> list[Mod]:
    """Constant padding: SpatialZeroPadding for zeros around H and W of a 4-D input, else one BigDL Padding
    per padded side (``Padding(dim, pad, nInputDim, value)``: pad > 0 after, < 0 before; the batch kept)."""
    if ctx.attrs.get("mode", "constant") != "constant":
        raise NotExpressible(f"mode {ctx.attrs.get('mode')}")
    cv = ctx.const(2)
    value = 0.0 if cv is None else float(cv.reshape(-1)[0])
    p = [int(v) for v in ctx.need_const(1, "pads").reshape(-1)]
    rank = len(ctx.shape(0))
    if len(p) != 2 * rank or min(p) < 0 or p[0] or p[rank]:
        raise NotExpressible(f"pads {p} (non-negative, not along the batch axis)")
    if rank == 4 and value == 0.0 and not (p[1] or p[5]):
        attrs = {"padLeft": a_int(p[3]), "padRight": a_int(p[7]), "padTop": a_int(p[2]), "padBottom": a_int(p[6])}
        return [Mod("SpatialZeroPadding", attrs)]
    mods = []
    for axis in range(1, rank):
        for amount, sign in ((p[axis], -1), (p[axis + rank], 1)):
            if amount:
                attrs = {"dim": a_int(axis), "pad": a_int(sign * amount), "nInputDim": a_int(rank - 1),
                         "value": a_double(value), "nIndex": a_int(1)}  # fmt: skip
                mods.append(Mod("Padding", attrs))
    return mods or [Mod("Identity")]


@emits("ChannelAffine", domain=CM_DOMAIN)
def _channel_affine(ctx: Ctx) -> list[Mod]:
    """Y = X * scale + B per channel (Caffe's Scale/Bias): CMul then CAdd over (1, C, 1, ...)."""
    rank = len(ctx.shape(0))
    if int(ctx.attrs.get("axis", 1)) % rank != 1:
        raise NotExpressible("a channel axis other than 1")
    mods = []
    for i, cls, reg in ((1, "CMul", "wRegularizer"), (2, "CAdd", "bRegularizer")):
        v = ctx.const(i)
        if ctx.node.inputs[i : i + 1] and ctx.node.inputs[i] and v is None:
            raise NotExpressible("scale and B must be constants")
        if v is not None:
            size = [1, v.size] + [1] * (rank - 2)
            mods.append(
                Mod(cls, {"size": a_ints(size), reg: a_null_regularizer()}, [v.astype(np.float32).reshape(size)])
            )
    return mods


@emits("Resize")
def _resize(ctx: Ctx) -> list[Mod]:
    a = ctx.attrs
    shape = ctx.shape(0)
    if len(shape) != 4:
        raise NotExpressible("only 4-D inputs")
    scales = ctx.const(2)
    sizes = ctx.const(3)
    axes = [int(v) % 4 for v in (a.get("axes") or (0, 1, 2, 3))]
    if sizes is not None and sizes.size == len(axes) and a["mode"] == "linear" and set(axes) >= {2, 3}:
        hw = {ax: int(v) for ax, v in zip(axes, sizes.reshape(-1), strict=True)}
        ctm = a["coordinate_transformation_mode"]
        if set(axes) - {2, 3} or ctm not in ("asymmetric", "align_corners"):
            raise NotExpressible(f"linear resize of axes {axes} with {ctm} coordinates (H, W; asymmetric or "
                                 "align_corners only)")  # fmt: skip
        attrs = {"outputHeight": a_int(hw[2]), "outputWidth": a_int(hw[3]),
                 "alignCorners": a_bool(ctm == "align_corners"), "dataFormat": a_format()}  # fmt: skip
        return [Mod("ResizeBilinear", attrs)]
    per = ctx.static(0)
    if sizes is not None and sizes.size == 4:
        f = [int(sizes[2]) / per[1], int(sizes[3]) / per[2]]
    elif scales is not None and scales.size == 4:
        if float(scales[0]) != 1 or float(scales[1]) != 1:
            raise NotExpressible("scaling of batch or channels")
        f = [float(scales[2]), float(scales[3])]
    else:
        raise NotExpressible("scales/sizes must be constants of 4 values")
    if a["mode"] != "nearest" or any(v != int(v) or v < 1 for v in f):
        raise NotExpressible(f"mode {a['mode']} with scales {f} (nearest, integer upscaling only)")
    ctm, nm = a["coordinate_transformation_mode"], a["nearest_mode"]
    # UpSampling2D takes source pixel floor(dst / f): the same pixel for these two coordinate rules only
    if not ((ctm == "asymmetric" and nm == "floor") or (ctm == "half_pixel" and nm.startswith("round_prefer"))):
        raise NotExpressible(f"{ctm} coordinates with nearest_mode {nm}")
    return [Mod("UpSampling2D", {"size": a_ints([int(f[0]), int(f[1])]), "format": a_format()})]
