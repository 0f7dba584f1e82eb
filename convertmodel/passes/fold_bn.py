"""Fold per-channel affine ops into the Conv/Gemm before them; drop no-op nodes.

Folded: ``BatchNormalization``, ``ChannelAffine``, and ``Mul`` / ``Add`` by a per-channel or
scalar constant (how ONNX exporters often spell BN and Caffe's Scale layer).

``BatchNormalization`` (inference) is ``y = x * f + (B - mean * f)`` with
``f = scale / sqrt(var + epsilon)``; ``ChannelAffine`` (domain ``"convertmodel"``) is
``y = x * scale + B``. Both act per channel on axis 1, which is the output-channel axis of a
Conv (N, M, ...) and of a Gemm (N, M). When the Conv/Gemm output feeds only that op, the weights
of output channel m are multiplied by ``f[m]`` and the bias becomes ``b * f + shift``: the same
function, different fp rounding only. Folding before quantizing matters for int8: the weight
windows then see the weights actually applied (as BigDL did when it converted Caffe models).

Also removed: ``Identity`` and inference ``Dropout`` nodes (exactly the identity).
"""

from __future__ import annotations

import numpy as np

from convertmodel.ir.graph import Graph, Node, prune, rename_values
from convertmodel.ir.schema import CM_DOMAIN, resolve_attrs


def _per_channel(shape: tuple[int, ...], rank: int) -> bool:
    """True when a constant of ``shape`` broadcasts along axis 1 only of a rank-``rank`` value (or is a scalar)."""
    if len(shape) > rank:
        return False
    if int(np.prod(shape)) == 1:
        return True
    full = (1,) * (rank - len(shape)) + tuple(shape)
    return full[0] == 1 and all(d == 1 for d in full[2:])


Affine = tuple[np.ndarray | None, np.ndarray | None, str]


def _affine_of(g: Graph, n: Node) -> Affine | None:
    """(factor, shift, data input) per channel of a foldable BN / ChannelAffine / Mul / Add node, or None."""
    c = g.constants
    if n.op_type in ("Mul", "Add") and n.domain == "" and len(n.inputs) == 2:
        # x * c or x + c with a per-channel (or scalar) constant c: ONNX exports of BN and Scale layers.
        a, b = n.inputs
        if (a in c) == (b in c):
            return None
        data, const = (b, c[a]) if a in c else (a, c[b])
        t = g.type_of(data)
        if t is None or t.rank is None or t.rank < 2 or not _per_channel(tuple(const.shape), t.rank):
            return None
        v = const.astype(np.float64).reshape(-1)
        return (v, None, data) if n.op_type == "Mul" else (None, v, data)
    if n.op_type == "BatchNormalization" and n.domain == "":
        if any(o for o in n.outputs[1:]):
            return None  # training-style extra outputs are used
        if not all(i in c for i in n.inputs[1:5]):
            return None
        eps = float(resolve_attrs(n)["epsilon"])
        scale, beta, mean, var = (c[i].astype(np.float64) for i in n.inputs[1:5])
        f = scale / np.sqrt(var + eps)
        return f, beta - mean * f, n.inputs[0]
    if n.op_type == "ChannelAffine" and n.domain == CM_DOMAIN:
        t = g.type_of(n.inputs[0])
        rank = t.rank if t is not None else None
        axis = int(resolve_attrs(n)["axis"])
        if rank is None or axis % rank != 1:
            return None
        ins = [*n.inputs, "", ""]
        if (ins[1] and ins[1] not in c) or (ins[2] and ins[2] not in c):
            return None
        fa = c[ins[1]].astype(np.float64) if ins[1] else None
        sa = c[ins[2]].astype(np.float64) if ins[2] else None
        return fa, sa, n.inputs[0]
    return None


def _gemm_layout(consts: dict[str, np.ndarray], n: Node) -> tuple[int, int] | None:
    """For a foldable Gemm: (axis of W holding output channels, M); else None."""
    a = resolve_attrs(n)
    if a.get("transA", 0):
        return None
    w = consts.get(n.inputs[1])
    if w is None or w.ndim != 2:
        return None
    axis = 0 if a.get("transB", 0) else 1
    m = w.shape[axis]
    if len(n.inputs) > 2 and n.inputs[2]:
        bias = consts.get(n.inputs[2])
        if bias is None or bias.size not in (1, m) or (bias.ndim == 2 and bias.shape[0] != 1):
            return None
    return axis, m


def _matmul_to_gemm(g: Graph) -> Graph:
    """MatMul of a rank-2 activation by a constant 2-D weight is a Gemm (transB=0), which can take a bias.

    tf2onnx writes Dense layers as MatMul + Add; as Gemm the Add folds into the bias below, so the
    quantized layer carries its bias in the fused epilogue instead of a separate fp32 Add.
    """
    changed = False
    nodes = []
    for n in g.nodes:
        t = g.value_types.get(n.inputs[0]) if n.inputs else None
        w = g.constants.get(n.inputs[1]) if len(n.inputs) > 1 else None
        if n.op_type == "MatMul" and n.domain == "" and w is not None and w.ndim == 2 and t is not None and t.rank == 2:
            nodes.append(Node("Gemm", n.name, n.inputs, n.outputs))
            changed = True
        else:
            nodes.append(n)
    return g.replace(nodes=tuple(nodes)) if changed else g


def fold_bn(g: Graph) -> Graph:
    """Fold BatchNormalization / ChannelAffine (and Mul/Add by per-channel constants) into a preceding
    Conv or Gemm with constant weights; a MatMul by a constant 2-D weight becomes a Gemm first."""
    g = _matmul_to_gemm(g)
    consumers = g.consumers()
    producers = g.producers()
    outputs = {o.name for o in g.outputs}
    consts = dict(g.constants)
    replaced: dict[str, Node] = {}
    removed: set[str] = set()
    rename: dict[str, str] = {}
    for n in g.nodes:
        aff = _affine_of(g, n)
        if aff is None:
            continue
        src = aff[2]
        p = producers.get(src)
        if p is None or src in outputs or len(consumers.get(src, [])) != 1:
            continue
        p = replaced.get(p.name, p)
        if p.domain != "" or p.op_type not in ("Conv", "Gemm") or p.inputs[1] not in consts:
            continue
        w = consts[p.inputs[1]]
        if p.op_type == "Conv":
            axis, m = 0, w.shape[0]
        else:
            lay = _gemm_layout(consts, p)
            if lay is None:
                continue
            axis, m = lay
        f, shift, _ = aff
        if (f is not None and f.size not in (1, m)) or (shift is not None and shift.size not in (1, m)):
            continue
        f = None if f is None else np.broadcast_to(f, (m,))
        shift = None if shift is None else np.broadcast_to(shift, (m,))
        has_b = len(p.inputs) > 2 and bool(p.inputs[2])
        b = consts[p.inputs[2]].astype(np.float64).reshape(-1) if has_b else np.zeros(m)
        if p.op_type == "Gemm":
            pa = resolve_attrs(p)
            b = b * float(pa.get("beta", 1.0)) if has_b else b
            b = np.broadcast_to(b, (m,))
        if has_b and p.inputs[2] not in consts:
            continue
        shape = [1] * w.ndim
        shape[axis] = m
        new_w = w.astype(np.float64) * f.reshape(shape) if f is not None else w.astype(np.float64)
        new_b = b * f if f is not None else b.copy()
        if shift is not None:
            new_b = new_b + shift
        w_name = _fresh(consts, f"{p.name}_folded_w")
        b_name = _fresh(consts, f"{p.name}_folded_b")
        consts[w_name] = new_w.astype(w.dtype)
        consts[b_name] = new_b.astype(np.float32)
        attrs = dict(p.attrs)
        if p.op_type == "Gemm":
            attrs["beta"] = 1.0
        new_p = p.with_(inputs=(p.inputs[0], w_name, b_name), outputs=(n.outputs[0],), attrs=attrs)
        replaced[p.name] = new_p
        producers[n.outputs[0]] = new_p  # a following ChannelAffine (Caffe BN + Scale) folds too
        removed.add(n.name)
    nodes = []
    for n in g.nodes:
        if n.name in removed:
            continue
        if n.op_type in ("Identity", "Dropout") and n.domain == "" and not any(o in outputs for o in n.outputs):
            if n.op_type == "Identity" or not (len(n.outputs) > 1 and n.outputs[1]):
                rename[n.outputs[0]] = n.inputs[0]
                continue
        nodes.append(replaced.get(n.name, n))
    out = g.replace(nodes=tuple(nodes), constants=consts, infer=False)
    if rename:
        out = rename_values(out, rename)
    return prune(out).replace()


def _fresh(consts: dict[str, np.ndarray], base: str) -> str:
    name, k = base, 0
    while name in consts:
        k += 1
        name = f"{base}_{k}"
    return name
