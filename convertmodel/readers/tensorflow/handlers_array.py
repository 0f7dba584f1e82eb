"""Handlers of TensorFlow's constants, pass-throughs, elementwise, reduction and shape ops."""

from __future__ import annotations

import numpy as np

from convertmodel.ir.ops.activation import ONNX_DTYPE_CODES
from convertmodel.readers.tensorflow.context import TO_NCHW, TO_NHWC, Node, Val, tf_axis_to_ir, tf_op

_ONNX_CODE = {v: k for k, v in ONNX_DTYPE_CODES.items()}
_BIG = np.iinfo(np.int64).max


@tf_op("Const")
def const(node: Node) -> None:
    node.set_out(node.tr.add_const(node.name, node.attr("value")))


@tf_op(
    "Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics", "EnsureShape", "PlaceholderWithDefault"
)
def identity(node: Node) -> None:
    node.alias(node.x(0))


@tf_op("IdentityN")
def identity_n(node: Node) -> None:
    for k in range(len(node.inputs)):
        node.alias(node.x(k), k)


@tf_op("NoOp")
def noop(node: Node) -> None:
    pass  # only control dependencies; the converter drops those


def _cast(node: Node, x: str, dtype: str, suffix: str = "") -> str:
    t = node.tr.type_of(x)
    if t is not None and t.dtype == dtype:
        return x
    c = node.tr.const_value(x)
    if c is not None:
        return node.tr.add_const(f"{node.name}{suffix}", c.astype(dtype))
    return node.emit("Cast", [x], suffix, to=_ONNX_CODE[dtype])


@tf_op("Cast")
def cast(node: Node) -> None:
    v = node.x(0)
    node.set_out(_cast(node, v.ir, str(node.attr("DstT"))), nchw=v.nchw)


# -- elementwise binary ops: an NCHW-held operand pulls the others into NCHW ----------------------
_BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div", "Div": "Div"}
_BINARY |= {"Maximum": "Max", "Minimum": "Min", "Pow": "Pow"}


def _to_nchw_operand(node: Node, v: Val) -> str | None:
    """``v`` broadcast against a 4-D NCHW-held tensor, re-laid out as NCHW; None when not possible."""
    if v.nchw:
        return v.ir
    c = node.tr.const_value(v.ir)
    if c is not None:
        if c.ndim > 4:
            return None
        if c.ndim == 0:
            return v.ir
        c4 = c.reshape((1,) * (4 - c.ndim) + c.shape)
        return node.tr.add_const(f"{v.ir}/nchw", np.ascontiguousarray(np.transpose(c4, TO_NCHW)))
    r = node.tr.ir_rank(v.ir)
    if r == 4:
        return node.tr.as_nchw(v, node.where)
    if r is not None and r < 4:  # numpy broadcasting aligns the trailing axes: prepend ones
        u = node.emit("Unsqueeze", [v.ir, node.ints("axes", list(range(4 - r)))], "/expand")
        return node.tr.transpose(u, TO_NCHW, f"{node.name}/expand_nchw")
    return None


def binary_inputs(node: Node, vals: list[Val]) -> tuple[list[str], bool]:
    if any(v.nchw for v in vals):
        outs = [_to_nchw_operand(node, v) for v in vals]
        if all(o is not None for o in outs):
            return [o for o in outs if o is not None], True
    return [node.tr.as_tf(v) for v in vals], False


@tf_op(*_BINARY)
def binary(node: Node) -> None:
    ins, nchw = binary_inputs(node, [node.x(0), node.x(1)])
    node.set_out(node.emit(_BINARY[node.op], ins), nchw=nchw)


@tf_op("SquaredDifference")
def squared_difference(node: Node) -> None:
    ins, nchw = binary_inputs(node, [node.x(0), node.x(1)])
    d = node.emit("Sub", ins, "/sub")
    node.set_out(node.emit("Mul", [d, d]), nchw=nchw)


@tf_op("AddN")
def add_n(node: Node) -> None:
    ins, nchw = binary_inputs(node, [node.x(i) for i in range(len(node.inputs))])
    node.set_out(node.emit("Sum", ins), nchw=nchw)


# -- axis ops: an NCHW-held 4-D input keeps its layout, the axes are remapped ---------------------
def _keeps_order(remaining: list[int]) -> bool:
    """After dropping axes of an NCHW-held tensor, do the remaining IR axes come in TF order?"""
    ir = sorted(TO_NHWC[a] for a in remaining)
    return [TO_NCHW[j] for j in ir] == remaining


def _axes(node: Node, i: int, rank: int | None) -> list[int]:
    a = np.atleast_1d(node.require_const(i, "axes")).astype(np.int64).tolist()
    if rank is None:
        if any(x < 0 for x in a):
            raise node.fail("negative axes need a known input rank")
        return sorted(a)
    return sorted(x + rank if x < 0 else x for x in a)


_REDUCE = {"Mean": "ReduceMean", "Max": "ReduceMax", "Min": "ReduceMin", "Sum": "ReduceSum", "Prod": "ReduceProd"}


@tf_op(*_REDUCE)
def reduce(node: Node) -> None:
    v = node.x(0)
    keep = bool(node.attr("keep_dims", False))
    axes = _axes(node, 1, node.tr.tf_rank(v))
    if v.nchw:
        remaining = [a for a in range(4) if a not in axes]
        if axes == [1, 2] and node.op in ("Mean", "Max"):  # global pooling over H, W
            g = node.emit(
                "GlobalAveragePool" if node.op == "Mean" else "GlobalMaxPool", [v.ir], "" if keep else "/pool"
            )
            node.set_out(g if keep else node.emit("Flatten", [g], axis=1), nchw=keep)
            return
        if keep or _keeps_order(remaining):
            ir_axes = sorted(TO_NHWC[a] for a in axes)
            out = node.emit(_REDUCE[node.op], [v.ir, node.ints("axes", ir_axes)], keepdims=int(keep))
            node.set_out(out, nchw=keep)
            return
    out = node.emit(_REDUCE[node.op], [node.tf(0), node.ints("axes", axes)], keepdims=int(keep))
    node.set_out(out)


@tf_op("ConcatV2", "Concat")
def concat(node: Node) -> None:
    # ConcatV2: values..., axis; the old Concat: axis, values...
    data = list(range(len(node.inputs) - 1)) if node.op == "ConcatV2" else list(range(1, len(node.inputs)))
    axis_i = len(node.inputs) - 1 if node.op == "ConcatV2" else 0
    axis = int(node.require_const(axis_i, "axis"))
    vals = [node.x(i) for i in data]
    ranks = [node.tr.tf_rank(v) for v in vals]
    if any(v.nchw for v in vals) and all(r == 4 for r in ranks):
        ins = [node.tr.as_nchw(v, node.where) for v in vals]
        node.set_out(node.emit("Concat", ins, axis=tf_axis_to_ir(axis)), nchw=True)
        return
    node.set_out(node.emit("Concat", [node.tr.as_tf(v) for v in vals], axis=axis))


def _check_mirror(node: Node) -> str | None:
    mode = str(node.attr("mode", "REFLECT")).upper()
    return None if mode == "REFLECT" else f"mode={mode}"


@tf_op("Pad", "PadV2", "MirrorPad", check=lambda n: _check_mirror(n) if n.op == "MirrorPad" else None)
def pad(node: Node) -> None:
    v = node.x(0)
    p = node.require_const(1, "paddings").astype(np.int64).reshape(-1, 2)
    nchw = v.nchw and p.shape[0] == 4
    if nchw:
        p = p[list(TO_NCHW)]
    x = v.ir if nchw else node.tf(0)
    ins = [x, node.ints("pads", p[:, 0].tolist() + p[:, 1].tolist())]
    if node.op == "PadV2":
        ins.append(node.tf(2))
    mode = "reflect" if node.op == "MirrorPad" else "constant"
    node.set_out(node.emit("Pad", ins, mode=mode), nchw=nchw)


@tf_op("Squeeze")
def squeeze(node: Node) -> None:
    v = node.x(0)
    rank = node.tr.tf_rank(v)
    dims = [int(d) for d in node.attr("squeeze_dims", [])]
    if not dims:
        shape = node.tr.tf_shape(v)
        if shape is not None and all(isinstance(d, int) for d in shape):
            dims = [i for i, d in enumerate(shape) if d == 1]
    if not dims:
        node.set_out(node.emit("Squeeze", [node.tf(0)]))
        return
    axes = sorted(d + rank if d < 0 and rank is not None else d for d in dims)
    if v.nchw and _keeps_order([a for a in range(4) if a not in axes]):
        node.set_out(node.emit("Squeeze", [v.ir, node.ints("axes", sorted(TO_NHWC[a] for a in axes))]))
        return
    node.set_out(node.emit("Squeeze", [node.tf(0), node.ints("axes", axes)]))


@tf_op("ExpandDims")
def expand_dims(node: Node) -> None:
    axis = np.atleast_1d(node.require_const(1, "axis")).astype(np.int64).tolist()
    node.set_out(node.emit("Unsqueeze", [node.tf(0), node.ints("axes", axis)]))


@tf_op("Transpose")
def transpose(node: Node) -> None:
    v = node.x(0)
    perm = [int(p) for p in node.require_const(1, "perm").reshape(-1)]
    if v.nchw:
        composed = [TO_NHWC[p] for p in perm]  # y axis i = IR axis TO_NHWC[perm[i]]
        if composed == [0, 1, 2, 3]:  # NHWC -> NCHW of an NCHW-held tensor: already there
            node.set_out(v.ir)
            return
        node.set_out(node.tr.transpose(v.ir, composed, node.name))
        return
    if perm == list(TO_NHWC) and node.tr.ir_rank(v.ir) == 4:
        # NCHW -> NHWC (the transposes tf2onnx-like exporters and NCHW graphs insert): the
        # result's NCHW form is the input itself.
        node.set_out(v.ir, nchw=True)
        return
    node.set_out(node.tr.transpose(v.ir, perm, node.name))


@tf_op("Shape")
def shape(node: Node) -> None:
    v = node.x(0)
    s = node.emit("Shape", [v.ir], "/shape" if v.nchw else "")
    if v.nchw:
        s = node.emit("Gather", [s, node.ints("nhwc", list(TO_NHWC))], axis=0)
    node.set_out(_cast(node, s, str(node.attr("out_type", "int32")), "/cast"))


def _batch_kept_shape(node: Node) -> list[int] | None:
    """Keras' Flatten/Reshape idiom ``reshape(x, stack([shape(x)[0], c1, ...]))`` as ``[0, c1, ...]``
    (ONNX Reshape's 0 copies the batch), so a dynamic batch does not hide the constant target."""
    graph = node.extra.get("graph", {})
    pack = graph.get(node.inputs[1].split(":")[0]) if ":" not in node.inputs[1] else None
    if pack is None or pack.op != "Pack" or int(pack.attr["axis"].i) != 0 or not pack.input:
        return None
    first = graph.get(pack.input[0])
    if first is None or first.op != "StridedSlice" or int(first.attr["shrink_axis_mask"].i) != 1:
        return None
    shp = graph.get(first.input[0])
    if shp is None or shp.op != "Shape" or shp.input[0].removesuffix(":0") != node.inputs[0]:
        return None
    spec = [node.tr.const_value(node.tr.val(i.removesuffix(":0"), node.where).ir) for i in first.input[1:]]
    if any(v is None for v in spec) or [int(np.asarray(v).reshape(-1)[0]) for v in spec] != [0, 1, 1]:  # type: ignore[arg-type]
        return None
    rest = [node.tr.const_value(node.tr.val(i.removesuffix(":0"), node.where).ir) for i in pack.input[1:]]
    if any(v is None or np.asarray(v).size != 1 for v in rest):
        return None
    return [0] + [int(np.asarray(v).reshape(-1)[0]) for v in rest]  # type: ignore[arg-type]


@tf_op("Reshape")
def reshape(node: Node) -> None:
    target = node.const(1)
    kept = None if target is not None else _batch_kept_shape(node)
    if target is not None:
        shape_ir = node.ints("shape", target.astype(np.int64).reshape(-1))
    elif kept is not None:
        shape_ir = node.ints("shape", kept)
    else:
        shape_ir = _cast(node, node.tf(1), "int64", "/shape64")
    node.set_out(node.emit("Reshape", [node.tf(0), shape_ir]))


def _bits(mask: int, n: int) -> list[bool]:
    return [bool(mask >> i & 1) for i in range(n)]


def _expand_ellipsis(
    node: Node, spec: list[list[int]], masks: list[list[bool]]
) -> tuple[list[list[int]], list[list[bool]]]:
    """Replace the ellipsis entry by full-range entries for the axes it stands for (rank must be known)."""
    ell = masks[3]
    if not any(ell):
        return spec, [*masks[:3], masks[4]]
    rank = node.tr.tf_rank(node.x(0))
    if rank is None:
        raise node.fail("an ellipsis in the slice needs a known input rank")
    e, n = ell.index(True), len(ell)
    fill = rank - (n - 1 - sum(masks[4]))  # new axes take no input axis
    spec = [s[:e] + [d] * fill + s[e + 1 :] for s, d in zip(spec, (0, 0, 1), strict=True)]
    out = []
    for m, full in zip([masks[0], masks[1], masks[2], masks[4]], (True, True, False, False), strict=True):
        out.append(m[:e] + [full] * fill + m[e + 1 :])
    return spec, out


@tf_op("StridedSlice")
def strided_slice(node: Node) -> None:
    begin = node.require_const(1, "begin").astype(np.int64).reshape(-1).tolist()
    end = node.require_const(2, "end").astype(np.int64).reshape(-1).tolist()
    steps = node.require_const(3, "strides").astype(np.int64).reshape(-1).tolist()
    n = len(begin)
    keys = ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")
    masks = [_bits(int(node.attr(k, 0)), n) for k in keys]
    (begin, end, steps), (bm, em, sm, nm) = _expand_ellipsis(node, [begin, end, steps], masks)
    starts, ends, axes, kept_steps, shrink, new_axes = [], [], [], [], [], []
    ax = pos = 0  # next input axis, next output axis
    for i, (b, e, s) in enumerate(zip(begin, end, steps, strict=True)):
        if nm[i]:  # a new unit axis in the output; consumes no input axis
            new_axes.append(pos)
            pos += 1
            continue
        axes.append(ax)
        kept_steps.append(s)
        if sm[i]:  # one element, axis dropped
            starts.append(b)
            ends.append(b + 1 if b != -1 else _BIG)
            shrink.append(ax)
        else:
            starts.append((0 if s > 0 else _BIG) if bm[i] else b)
            ends.append((_BIG if s > 0 else -_BIG) if em[i] else e)
            pos += 1
        ax += 1
    v = node.x(0)
    # An NCHW-held feature map is sliced in place (axes remapped) when what remains keeps TF's order.
    keep = not shrink or _keeps_order([a for a in range(4) if a not in shrink])
    nchw = v.nchw and not new_axes and axes == [0, 1, 2, 3][: len(axes)] and node.tr.tf_rank(v) == 4 and keep
    if nchw:
        axes, shrink = [TO_NHWC[a] for a in axes], sorted(TO_NHWC[a] for a in shrink)
    ins = [v.ir if nchw else node.tf(0), node.ints("starts", starts), node.ints("ends", ends)]
    ins += [node.ints("axes", axes), node.ints("steps", kept_steps)]
    out = node.emit("Slice", ins, "/slice" if shrink or new_axes else "")
    if shrink:
        out = node.emit("Squeeze", [out, node.ints("shrink", shrink)], "/squeeze" if new_axes else "")
    if new_axes:
        out = node.emit("Unsqueeze", [out, node.ints("new_axes", new_axes)])
    node.set_out(out, nchw=nchw and not shrink)


@tf_op("DivNoNan")
def div_no_nan(node: Node) -> None:
    ins, nchw = binary_inputs(node, [node.x(0), node.x(1)])
    q = node.emit("Div", ins, "/div")
    zero = node.floats("zero", 0.0)
    eq = node.emit("Equal", [ins[1], zero], "/is_zero")
    node.set_out(node.emit("Where", [eq, zero, q]), nchw=nchw)


@tf_op("Slice")
def slice_(node: Node) -> None:
    begin = node.require_const(1, "begin").astype(np.int64).reshape(-1).tolist()
    size = node.require_const(2, "size").astype(np.int64).reshape(-1).tolist()
    ends = [_BIG if s == -1 else b + s for b, s in zip(begin, size, strict=True)]
    ins = [node.tf(0), node.ints("starts", begin), node.ints("ends", ends), node.ints("axes", list(range(len(begin))))]
    node.set_out(node.emit("Slice", ins))


@tf_op("Pack")
def pack(node: Node) -> None:
    axis = int(node.attr("axis", 0))
    parts = [
        node.emit("Unsqueeze", [node.tf(i), node.ints(f"axes{i}", [axis])], f"/unsqueeze{i}")
        for i in range(len(node.inputs))
    ]
    node.set_out(node.emit("Concat", parts, axis=axis))
