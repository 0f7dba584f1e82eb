"""IR node -> Caffe layer emitters for the writer, one per IR op (registered by :class:`EmitKey`).

Each emitter fills ``LayerParameter`` messages and returns them with their weight blobs; it raises
:class:`NotExpressible` when the node's attributes have no Caffe equivalent (the writer collects
those into one UnsupportedOpError). Every mapping is the inverse of the reader's handler, so
IR -> Caffe -> IR reproduces the nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from convertmodel.ir.graph import Graph, Node
from convertmodel.ir.schema import CM_DOMAIN, resolve_attrs
from convertmodel.readers.caffe.layers import caffe_pool_out
from convertmodel.readers.caffe.proto import pb
from convertmodel.registry import Registry


class NotExpressible(Exception):
    """The node cannot be written as Caffe layers; the message says why."""


class EmitKey(NamedTuple):
    domain: str
    op_type: str


@dataclass
class Emitted:
    layer: Any  # pb.LayerParameter (no blobs)
    blobs: list[np.ndarray]


Emitter = Callable[["EmitContext"], list[Emitted]]
EMITTERS: Registry[EmitKey, Emitter] = Registry("Caffe layer emitter")


def emits(*ops: str, domain: str = "") -> Callable[[Emitter], Emitter]:
    def deco(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS.add(EmitKey(domain, op), fn)
        return fn

    return deco


@dataclass
class EmitContext:
    graph: Graph
    node: Node
    attrs: dict[str, Any]

    @classmethod
    def make(cls, graph: Graph, node: Node) -> EmitContext:
        return cls(graph, node, resolve_attrs(node))

    def const(self, i: int) -> np.ndarray | None:
        if i >= len(self.node.inputs) or not self.node.inputs[i]:
            return None
        return self.graph.constants.get(self.node.inputs[i])

    def need_const(self, i: int, what: str) -> np.ndarray:
        v = self.const(i)
        if v is None:
            raise NotExpressible(f"{what} must be a constant")
        return v

    def shape(self, value: str) -> tuple[int, ...]:
        t = self.graph.value_types.get(value)
        if t is None or t.shape is None or not all(isinstance(d, int) for d in t.shape):
            raise NotExpressible(f"value {value!r} needs a static shape")
        return tuple(int(d) for d in t.shape)  # type: ignore[arg-type]

    def layer(
        self, type_: str, bottoms: list[str] | None = None, tops: list[str] | None = None, name: str | None = None
    ) -> Any:
        lp = pb.LayerParameter(name=name or self.node.name, type=type_)
        lp.bottom.extend(bottoms if bottoms is not None else [self.node.inputs[0]])
        lp.top.extend(tops if tops is not None else [self.node.outputs[0]])
        return lp


def _sym_pads(ctx: EmitContext, n: int) -> list[int]:
    pads = list(ctx.attrs.get("pads") or [0] * (2 * n))
    if ctx.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or pads[:n] != pads[n:]:
        raise NotExpressible(f"pads {pads} / auto_pad {ctx.attrs.get('auto_pad')} are not symmetric explicit pads")
    return pads[:n] if ctx.attrs.get("auto_pad", "NOTSET") == "NOTSET" else [0] * n


def _set_hw(p: Any, field: str, values: list[int], default: int | None) -> None:
    """Write pad/kernel_size/stride the way Caffe reads them back (one value when all equal)."""
    if default is not None and all(v == default for v in values):
        return
    rep = getattr(p, field)
    rep.extend([values[0]] if len(set(values)) == 1 else values)


@emits("Conv", "ConvTranspose")
def conv(ctx: EmitContext) -> list[Emitted]:
    w = ctx.need_const(1, "weight")
    b = ctx.const(2)
    if len(ctx.node.inputs) > 2 and ctx.node.inputs[2] and b is None:
        raise NotExpressible("bias must be a constant")
    n = w.ndim - 2
    deconv = ctx.node.op_type == "ConvTranspose"
    if deconv and (any(ctx.attrs["output_padding"]) or ctx.attrs["output_shape"]):
        raise NotExpressible("output_padding/output_shape have no Caffe equivalent")
    g = int(ctx.attrs["group"])
    kernel = list(ctx.attrs["kernel_shape"] or w.shape[2:])
    lp = ctx.layer("Deconvolution" if deconv else "Convolution")
    p = lp.convolution_param
    p.num_output = int(w.shape[1] * g if deconv else w.shape[0])
    p.bias_term = b is not None
    _set_hw(p, "kernel_size", [int(k) for k in kernel], None)
    _set_hw(p, "stride", list(ctx.attrs["strides"] or [1] * n), 1)
    _set_hw(p, "pad", _sym_pads(ctx, n), 0)
    _set_hw(p, "dilation", list(ctx.attrs["dilations"] or [1] * n), 1)
    if g != 1:
        p.group = g
    return [Emitted(lp, [w] + ([b] if b is not None else []))]


@emits("MaxPool", "AveragePool")
def pool(ctx: EmitContext) -> list[Emitted]:
    x = ctx.shape(ctx.node.inputs[0])
    k = list(ctx.attrs["kernel_shape"])
    if len(k) != 2 or any(d != 1 for d in (ctx.attrs["dilations"] or [1, 1])):
        raise NotExpressible("Caffe pools 2-D windows without dilation")
    s = list(ctx.attrs["strides"] or [1, 1])
    pads = _sym_pads(ctx, 2)
    y = ctx.shape(ctx.node.outputs[0])
    # Caffe's default ceil rounding when it gives the IR's sizes; else floor (ceil_mode: false, which
    # BVLC PR #3057 and OpenCV read).
    ceil = all(caffe_pool_out(x[2 + i], k[i], s[i], pads[i]) == y[2 + i] for i in range(2))
    if not ceil and any(caffe_pool_out(x[2 + i], k[i], s[i], pads[i], False) != y[2 + i] for i in range(2)):
        raise NotExpressible(f"output size {list(y[2:])} matches neither Caffe's ceil nor floor rounding")
    ave = ctx.node.op_type == "AveragePool"
    if ave and any(pads) and not ctx.attrs["count_include_pad"]:
        raise NotExpressible("Caffe's AVE pooling counts padding in the divisor (count_include_pad=1)")
    lp = ctx.layer("Pooling")
    p = lp.pooling_param
    if not ceil:
        p.ceil_mode = False
    # Always written: OpenCV's importer insists on an explicit pool method.
    p.pool = pb.PoolingParameter.AVE if ave else pb.PoolingParameter.MAX
    if k[0] == k[1]:
        p.kernel_size = k[0]
    else:
        p.kernel_h, p.kernel_w = k
    if s[0] == s[1]:
        p.stride = s[0]
    else:
        p.stride_h, p.stride_w = s
    if pads[0] == pads[1]:
        if pads[0]:
            p.pad = pads[0]
    else:
        p.pad_h, p.pad_w = pads
    return [Emitted(lp, [])]


@emits("GlobalMaxPool", "GlobalAveragePool")
def global_pool(ctx: EmitContext) -> list[Emitted]:
    lp = ctx.layer("Pooling")
    lp.pooling_param.global_pooling = True
    ave = ctx.node.op_type == "GlobalAveragePool"
    lp.pooling_param.pool = pb.PoolingParameter.AVE if ave else pb.PoolingParameter.MAX
    return [Emitted(lp, [])]


@emits("Gemm")
def gemm(ctx: EmitContext) -> list[Emitted]:
    a = ctx.attrs
    if a["alpha"] != 1.0 or a["beta"] != 1.0 or a["transA"]:
        raise NotExpressible("InnerProduct needs alpha=1, beta=1, transA=0")
    w = ctx.need_const(1, "B (weight)")
    b = ctx.const(2)
    if len(ctx.node.inputs) > 2 and ctx.node.inputs[2] and (b is None or b.ndim != 1):
        raise NotExpressible("C must be a constant vector")
    lp = ctx.layer("InnerProduct")
    p = lp.inner_product_param
    p.num_output = int(w.shape[0] if a["transB"] else w.shape[1])
    p.bias_term = b is not None
    if not a["transB"]:
        # Store the weight as (num_output, K) rather than setting `transpose`: BVLC Caffe honours the flag,
        # but OpenCV's dnn (4.x) ignores it and would silently compute with the wrong matrix.
        w = np.ascontiguousarray(w.T)
    return [Emitted(lp, [w] + ([b] if b is not None else []))]


_UNARY = {
    "Relu": "ReLU",
    "Sigmoid": "Sigmoid",
    "Tanh": "TanH",
    "Abs": "AbsVal",
    "Softplus": "BNLL",
    "Identity": "Dropout",
    "Dropout": "Dropout",
}


@emits(*_UNARY)
def unary(ctx: EmitContext) -> list[Emitted]:
    if ctx.node.op_type == "Dropout" and len([o for o in ctx.node.outputs if o]) > 1:
        raise NotExpressible("Dropout's mask output has no Caffe equivalent")
    lp = ctx.layer(_UNARY[ctx.node.op_type], tops=[ctx.node.outputs[0]])
    return [Emitted(lp, [])]


@emits("LeakyRelu")
def leaky(ctx: EmitContext) -> list[Emitted]:
    lp = ctx.layer("ReLU")
    lp.relu_param.negative_slope = float(ctx.attrs["alpha"])
    return [Emitted(lp, [])]


@emits("Elu")
def elu(ctx: EmitContext) -> list[Emitted]:
    lp = ctx.layer("ELU")
    lp.elu_param.alpha = float(ctx.attrs["alpha"])
    return [Emitted(lp, [])]


@emits("PRelu")
def prelu(ctx: EmitContext) -> list[Emitted]:
    slope = ctx.need_const(1, "slope").reshape(-1)
    x = ctx.shape(ctx.node.inputs[0])
    if slope.size not in (1, x[1]):
        raise NotExpressible(f"slope of {slope.size} values is neither shared nor per channel ({x[1]})")
    lp = ctx.layer("PReLU")
    if slope.size == 1 and x[1] != 1:
        lp.prelu_param.channel_shared = True
    return [Emitted(lp, [slope])]


@emits("Mul", "Add", "Pow", "Max")
def binary(ctx: EmitContext) -> list[Emitted]:
    op = ctx.node.op_type
    consts = [ctx.const(i) for i in range(len(ctx.node.inputs))]
    if op != "Max" and len(consts) == 2 and (consts[0] is None) != (consts[1] is None):
        data = 0 if consts[0] is None else 1  # Mul and Add commute; Pow needs the data first
        c = consts[1 - data]
        assert c is not None
        if op == "Pow" and data != 0:
            raise NotExpressible("a constant base raised to a tensor power has no Caffe layer")
        if c.size == 1:
            # x * s, x + s, x ^ p with a scalar: Caffe's Power layer (shift + scale * x) ^ power.
            lp = ctx.layer("Power", bottoms=[ctx.node.inputs[data]])
            field = {"Mul": "scale", "Add": "shift", "Pow": "power"}[op]
            setattr(lp.power_param, field, float(c.reshape(())))
            return [Emitted(lp, [])]
        if op != "Pow":
            return [_scale_or_bias(ctx, c, ctx.node.inputs[data])]
    if any(c is not None for c in consts):
        raise NotExpressible("these constant operands have no Caffe layer")
    shapes = {ctx.shape(v) for v in ctx.node.inputs}
    if len(shapes) != 1:
        raise NotExpressible(f"Eltwise needs equal input shapes, got {sorted(shapes)}")
    if op == "Pow":
        raise NotExpressible("Pow of two tensors has no Caffe layer")
    lp = ctx.layer("Eltwise", bottoms=list(ctx.node.inputs))
    lp.eltwise_param.operation = {"Mul": 0, "Add": 1, "Max": 2}[op]
    return [Emitted(lp, [])]


def _scale_or_bias(ctx: EmitContext, c: np.ndarray, data: str) -> Emitted:
    """x * C or x + C with C covering consecutive axes of x: Caffe's Scale/Bias with axis and num_axes."""
    x = ctx.shape(data)
    dims = list(c.shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    axis = len(x) - len(dims)
    while dims and dims[-1] == 1:
        dims.pop()
    if axis < 0 or tuple(x[axis : axis + len(dims)]) != tuple(dims):
        raise NotExpressible(f"constant of shape {list(c.shape)} does not cover consecutive axes of {list(x)}")
    lp = ctx.layer("Scale" if ctx.node.op_type == "Mul" else "Bias", bottoms=[data])
    p = lp.scale_param if ctx.node.op_type == "Mul" else lp.bias_param
    p.axis, p.num_axes = axis, len(dims)
    return Emitted(lp, [c.reshape(dims)])


@emits("BatchNormalization")
def batch_norm(ctx: EmitContext) -> list[Emitted]:
    if len([o for o in ctx.node.outputs if o]) > 1:
        raise NotExpressible("training outputs have no Caffe equivalent")
    scale, bias, mean, var = (ctx.need_const(i, n) for i, n in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
    trivial = bool(np.all(scale == 1) and np.all(bias == 0))
    bn_top = ctx.node.outputs[0] if trivial else f"{ctx.node.name}/bn"
    lp = ctx.layer("BatchNorm", tops=[bn_top])
    lp.batch_norm_param.use_global_stats = True
    lp.batch_norm_param.eps = float(ctx.attrs["epsilon"])
    out = [Emitted(lp, [mean.astype(np.float32), var.astype(np.float32), np.ones(1, np.float32)])]
    if not trivial:
        sp = ctx.layer("Scale", bottoms=[bn_top], name=f"{ctx.node.name}/scale")
        sp.scale_param.bias_term = True
        out.append(Emitted(sp, [scale, bias]))
    return out


@emits("ChannelAffine", domain=CM_DOMAIN)
def channel_affine(ctx: EmitContext) -> list[Emitted]:
    if int(ctx.attrs["axis"]) != 1:
        raise NotExpressible("only axis 1 is written")
    scale, bias = ctx.const(1), ctx.const(2)
    for i, v in ((1, scale), (2, bias)):
        if i < len(ctx.node.inputs) and ctx.node.inputs[i] and v is None:
            raise NotExpressible("scale and B must be constants")
    if scale is None:
        lp = ctx.layer("Bias")
        return [Emitted(lp, [bias])]  # type: ignore[list-item]
    lp = ctx.layer("Scale")
    if bias is not None:
        lp.scale_param.bias_term = True
    return [Emitted(lp, [scale] + ([bias] if bias is not None else []))]
