"""Schemas of convolution-like ops: Conv, ConvTranspose (ONNX semantics, NCHW, any spatial rank)."""

from __future__ import annotations

from collections.abc import Sequence

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, TensorType
from convertmodel.ir.ops._util import conv_pads, pool_out_dim, same_out_dim
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")

CONV_ATTRS = [
    Attr("kernel_shape", AttrType.INTS, (), "spatial kernel size; taken from W when empty"),
    Attr("strides", AttrType.INTS, ()),
    Attr("pads", AttrType.INTS, (), "begin pads then end pads, one per spatial axis"),
    Attr("dilations", AttrType.INTS, ()),
    Attr("group", AttrType.INT, 1),
    Attr("auto_pad", AttrType.STRING, "NOTSET", "NOTSET, SAME_UPPER, SAME_LOWER or VALID"),
]


def _window_attrs(ctx: InferContext) -> tuple[list[int], list[int], list[int]]:
    """kernel, strides, dilations of a Conv-like node, validated against X and W."""
    x, w = ctx.shape(0), ctx.shape(1)
    if len(x) < 3 or len(w) != len(x):
        raise ctx.fail(f"X must be (N, C, spatial...) and W of the same rank, got shapes {list(x)} and {list(w)}")
    if 0 in w or x[1] == 0 or 0 in x[2:]:
        raise ctx.fail(f"zero-size X {list(x)} or W {list(w)}: channels, kernel and spatial sizes must be >= 1")
    n = len(x) - 2
    if ctx.attrs["kernel_shape"]:
        kernel = list(ctx.attrs["kernel_shape"])
    elif all(isinstance(d, int) for d in w[2:]):
        kernel = [int(d) for d in w[2:]]  # type: ignore[arg-type]
    else:
        raise ctx.fail(f"kernel_shape is not set and W's spatial dims {list(w[2:])} are not known")
    strides = list(ctx.attrs["strides"] or [1] * n)
    dil = list(ctx.attrs["dilations"] or [1] * n)
    if len(kernel) != n or len(strides) != n or len(dil) != n:
        raise ctx.fail(
            f"kernel {kernel}, strides {strides}, dilations {dil} must have {n} entries for input rank {len(x)}"
        )
    if min(kernel + strides + dil) < 1:
        raise ctx.fail(f"kernel {kernel}, strides {strides}, dilations {dil} must all be >= 1")
    if any(isinstance(a, int) and a != b for a, b in zip(w[2:], kernel, strict=True)):
        raise ctx.fail(f"kernel_shape {kernel} disagrees with W's spatial dims {list(w[2:])}")
    if ctx.attrs["auto_pad"] not in AUTO_PADS:
        raise ctx.fail(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {ctx.attrs['auto_pad']!r}")
    pads = ctx.attrs["pads"]
    if pads and (len(pads) != 2 * n or min(pads) < 0):
        raise ctx.fail(f"pads {list(pads)} must be {2 * n} non-negative entries (begins then ends)")
    if ctx.attrs["group"] < 1:
        raise ctx.fail(f"group must be >= 1, got {ctx.attrs['group']}")
    return kernel, strides, dil


def conv_geometry(ctx: InferContext) -> tuple[list[int], list[int], list[int], tuple[int, ...]]:
    """kernel, strides, dilations, explicit pads (auto_pad resolved) of a Conv-like node."""
    kernel, strides, dil = _window_attrs(ctx)
    try:
        pads = conv_pads(dict(ctx.attrs), ctx.shape(0)[2:], kernel, strides, dil)
    except InvalidModelError as e:
        raise ctx.fail(str(e)) from None
    return kernel, strides, dil, pads


@op_schema("Conv", inputs=["X", "W", "B?"], outputs=["Y"], attrs=CONV_ATTRS)
def _conv(ctx: InferContext) -> list[TensorType]:
    """N-d convolution (NCHW), ONNX semantics, incl. groups, dilation, asymmetric pads, auto_pad.

    X (N, C, *spatial), W (M, C/group, *kernel), B (M,). Output (N, M, *out) with
    out = floor((size + pad_begin + pad_end - dilation * (k - 1) - 1) / stride) + 1.
    """
    x, w = ctx.shape(0), ctx.shape(1)
    _, strides, _ = _window_attrs(ctx)  # ranks and attribute values first
    g = ctx.attrs["group"]
    if isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * g:
        raise ctx.fail(f"input has {x[1]} channels but W expects {w[1]} x group {g}")
    if isinstance(w[0], int) and w[0] % g:
        raise ctx.fail(f"W has {w[0]} output channels, not divisible by group {g}")
    if ctx.has_input(2):
        b = ctx.shape(2)
        if len(b) != 1 or (isinstance(b[0], int) and isinstance(w[0], int) and b[0] != w[0]):
            raise ctx.fail(f"B must have shape ({w[0]},), got {list(b)}")
    out: list[Dim]
    if ctx.attrs["auto_pad"] in ("SAME_UPPER", "SAME_LOWER") and not all(isinstance(d, int) for d in x[2:]):
        # Symbolic spatial dims: the pads are unknown until run time, but the output size is not.
        out = [same_out_dim(d, s) for d, s in zip(x[2:], strides, strict=True)]
    else:
        kernel, strides, dil, pads = conv_geometry(ctx)
        n = len(kernel)
        try:
            out = [pool_out_dim(x[2 + i], kernel[i], strides[i], pads[i], pads[n + i], dil[i]) for i in range(n)]
        except InvalidModelError as e:
            raise ctx.fail(str(e)) from None
    return [TensorType(ctx.input_type(0).dtype, (x[0], w[0], *out))]


def conv_transpose_geometry(
    attrs: dict, spatial: Sequence[Dim], kernel: Sequence[int], where: str
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[Dim, ...]]:
    """Explicit pads (begins then ends), output_padding and output spatial size of a ConvTranspose.

    ONNX rule: out = stride * (in - 1) + output_padding + dilation * (k - 1) + 1 - pad_begin - pad_end.
    With ``output_shape`` or ``auto_pad=SAME_*`` (out = in * stride) the pads are derived from the
    total padding; the odd unit goes to the end for SAME_UPPER, to the beginning otherwise (ONNX spec).
    """
    n = len(kernel)
    strides = tuple(attrs.get("strides") or (1,) * n)
    dil = tuple(attrs.get("dilations") or (1,) * n)
    opad = tuple(attrs.get("output_padding") or (0,) * n)
    if len(opad) != n:
        raise InvalidModelError(f"{where}: output_padding {list(opad)} must have {n} entries")
    for i in range(n):
        if not 0 <= opad[i] < max(strides[i], dil[i]):
            raise InvalidModelError(
                f"{where}: output_padding {list(opad)} must be >= 0 and below the stride or dilation on each axis"
            )
    auto = attrs.get("auto_pad", "NOTSET")
    target = tuple(attrs.get("output_shape") or ())
    if target and len(target) > n:
        target = target[-n:]  # some exporters give (N, C, *spatial)
    if target and len(target) != n:
        raise InvalidModelError(f"{where}: output_shape {list(target)} must have {n} spatial entries")
    if not target and auto in ("SAME_UPPER", "SAME_LOWER"):
        if not all(isinstance(s, int) for s in spatial):
            raise InvalidModelError(f"{where}: auto_pad={auto} needs static spatial dims, got {list(spatial)}")
        target = tuple(int(s) * st for s, st in zip(spatial, strides, strict=True))  # type: ignore[arg-type]
    if not target:
        pads = tuple(attrs.get("pads") or (0,) * (2 * n)) if auto != "VALID" else (0,) * (2 * n)
        out: list[Dim] = []
        for i in range(n):
            s = spatial[i]
            full = strides[i] * (s - 1) + opad[i] + dil[i] * (kernel[i] - 1) + 1 if isinstance(s, int) else None
            o = None if full is None else full - pads[i] - pads[n + i]
            if o is not None and o < 1:
                raise InvalidModelError(f"{where}: pads {list(pads)} leave an empty output on spatial axis {i}")
            out.append(o)
        return pads, opad, tuple(out)
    begin, end = [], []
    for i in range(n):
        s = spatial[i]
        if not isinstance(s, int):
            raise InvalidModelError(f"{where}: output_shape needs static spatial dims, got {list(spatial)}")
        total = strides[i] * (s - 1) + opad[i] + dil[i] * (kernel[i] - 1) + 1 - target[i]
        if total < 0:
            raise InvalidModelError(f"{where}: output_shape {list(target)} is larger than the full output")
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return tuple(begin + end), opad, target


@op_schema(
    "ConvTranspose",
    inputs=["X", "W", "B?"],
    outputs=["Y"],
    attrs=[*CONV_ATTRS, Attr("output_padding", AttrType.INTS, ()), Attr("output_shape", AttrType.INTS, ())],
)
def _conv_transpose(ctx: InferContext) -> list[TensorType]:
    """Transposed convolution; X (N, C, *spatial), W (C, M/group, *kernel), B (M,); output (N, M, *out)."""
    x, w = ctx.shape(0), ctx.shape(1)
    kernel, _, _ = _window_attrs(ctx)
    g = ctx.attrs["group"]
    if isinstance(x[1], int) and isinstance(w[0], int) and x[1] != w[0]:
        raise ctx.fail(f"input has {x[1]} channels but W (C, M/group, ...) has C = {w[0]}")
    if isinstance(w[0], int) and w[0] % g:
        raise ctx.fail(f"W has {w[0]} input channels, not divisible by group {g}")
    c_out = w[1] * g if isinstance(w[1], int) else None
    if ctx.has_input(2):
        b = ctx.shape(2)
        if len(b) != 1 or (isinstance(b[0], int) and c_out is not None and b[0] != c_out):
            raise ctx.fail(f"B must have shape ({c_out},), got {list(b)}")
    where = f"{ctx.node.op_type} {ctx.node.name!r}"
    out: tuple[Dim, ...]
    symbolic = not all(isinstance(d, int) for d in x[2:])
    if symbolic and not ctx.attrs["output_shape"] and ctx.attrs["auto_pad"] in ("SAME_UPPER", "SAME_LOWER"):
        # out = in * stride (ONNX); pads are resolved at run time from the real sizes.
        _, strides, _ = _window_attrs(ctx)
        out = tuple(
            d * s if isinstance(d, int) else (d if s == 1 else None) for d, s in zip(x[2:], strides, strict=True)
        )
    else:
        _, _, out = conv_transpose_geometry(dict(ctx.attrs), x[2:], kernel, where)
    return [TensorType(ctx.input_type(0).dtype, (x[0], c_out, *out))]
