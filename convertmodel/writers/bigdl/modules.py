"""IR node -> BigDL 2.x module emitters (fp32 ops).

An emitter returns a chain of :class:`Mod` (the first reads the node's data inputs, each next one the previous
module's output, the last gives the node's output) or raises :class:`NotExpressible`. Attribute names and
value types are BigDL 2.4's constructor parameters, as its own files carry them (fixtures/bigdl/v2.4/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from convertmodel.ir.graph import Graph, Node
from convertmodel.ir.schema import resolve_attrs
from convertmodel.registry import Registry
from convertmodel.writers.bigdl.build import (
    Mod,
    a_bool,
    a_double,
    a_format,
    a_int,
    a_ints,
    a_null_tensor,
    w_layer_tail,
)

INT_MIN = -(2**31)


class NotExpressible(Exception):
    """The node has no BigDL module equivalent; the message says why."""


class EmitKey(NamedTuple):
    domain: str
    op_type: str


@dataclass
class Ctx:
    graph: Graph
    node: Node
    attrs: dict[str, Any]
    #: a Linear's bias taken from the Add that follows a MatMul (set by the writer's plan)
    fused_bias: np.ndarray | None = None
    #: a Threshold's th taken from the Greater that feeds a Where (set by the writer's plan)
    fused_threshold: float | None = None
    #: a Normalize's eps taken from the L2 norm that feeds a Div (set by the writer's plan)
    fused_l2_eps: float | None = None
    #: the IR values the first module reads, when not the node's non-constant inputs (set by an emitter)
    data: list[str] | None = None

    @classmethod
    def make(cls, graph: Graph, node: Node) -> Ctx:
        return cls(graph, node, resolve_attrs(node))

    def const(self, i: int) -> np.ndarray | None:
        n = self.node.inputs
        if i >= len(n) or not n[i]:
            return None
        v = self.graph.constants.get(n[i])
        return None if v is None else np.asarray(v)

    def need_const(self, i: int, what: str) -> np.ndarray:
        v = self.const(i)
        if v is None:
            raise NotExpressible(f"{what} must be a constant")
        return v

    def shape(self, i: int = 0) -> tuple[Any, ...]:
        t = self.graph.type_of(self.node.inputs[i])
        if t is None or t.shape is None:
            raise NotExpressible(f"input {self.node.inputs[i]!r} has an unknown shape")
        return tuple(t.shape)

    def static(self, i: int = 0) -> tuple[int, ...]:
        """The input's shape without the batch dimension, all dims known."""
        s = self.shape(i)[1:]
        if not all(isinstance(d, int) for d in s):
            raise NotExpressible(f"input {self.node.inputs[i]!r} needs a static shape after the batch, got {s}")
        return tuple(int(d) for d in s)


Emitter = Callable[[Ctx], list[Mod]]
EMITTERS: Registry[EmitKey, Emitter] = Registry("BigDL module emitter")


def emits(*ops: str, domain: str = "") -> Callable[[Emitter], Emitter]:
    def deco(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS.add(EmitKey(domain, op), fn)
        return fn

    return deco


def spatial(ctx: Ctx, what: str) -> tuple[list[int], list[int], list[int], list[Mod]]:
    """kernel, strides, symmetric pads (h, w) of a 2-D window op; a SpatialZeroPadding first when the pads
    are asymmetric (only where zeros are the right padding: convolutions)."""
    k = list(ctx.attrs.get("kernel_shape") or ())
    if not k:
        w = ctx.const(1)
        if w is None:
            raise NotExpressible("kernel_shape is missing")
        k = list(w.shape[2:])
    if len(k) != 2:
        raise NotExpressible(f"only 2-D {what} (kernel {k})")
    s = list(ctx.attrs.get("strides") or (1, 1))
    p = list(ctx.attrs.get("pads") or (0, 0, 0, 0))
    if ctx.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
        raise NotExpressible(f"auto_pad {ctx.attrs['auto_pad']} (explicit pads only)")
    pre: list[Mod] = []
    if (p[0] != p[2] or p[1] != p[3]) and what == "pooling" and _is_same(ctx, k, s, p):
        return k, s, [-1, -1], pre  # BigDL's pad -1: TensorFlow's SAME padding
    if p[0] != p[2] or p[1] != p[3]:
        if what != "convolution":
            raise NotExpressible(f"asymmetric pads {p} (other than TensorFlow's SAME)")
        attrs = {"padLeft": a_int(p[1]), "padRight": a_int(p[3]), "padTop": a_int(p[0]), "padBottom": a_int(p[2])}
        pre.append(Mod("SpatialZeroPadding", attrs))
        p = [0, 0, 0, 0]
    return k, s, [p[0], p[1]], pre


def _is_same(ctx: Ctx, k: list[int], s: list[int], p: list[int]) -> bool:
    """Whether explicit pads are TensorFlow's SAME for this input (extra pad after)."""
    try:
        hw = ctx.static(0)[1:3]
    except NotExpressible:
        return False
    for i in range(2):
        out = -(-hw[i] // s[i])
        total = max((out - 1) * s[i] + k[i] - hw[i], 0)
        if (p[i], p[i + 2]) != (total // 2, total - total // 2):
            return False
    return True


@emits("Conv")
def _conv(ctx: Ctx) -> list[Mod]:
    w = ctx.need_const(1, "the weight")
    b = ctx.const(2)
    k, s, p, pre = spatial(ctx, "convolution")
    d = list(ctx.attrs.get("dilations") or (1, 1))
    g = int(ctx.attrs.get("group", 1))
    m, cg = int(w.shape[0]), int(w.shape[1])
    bias = np.zeros(m, np.float32) if b is None else b.astype(np.float32)
    geo = {"strideW": a_int(s[1]), "strideH": a_int(s[0]), "padW": a_int(p[1]), "padH": a_int(p[0])}
    if d == [1, 1]:
        attrs = {"nInputPlane": a_int(cg * g), "nOutputPlane": a_int(m), "kernelW": a_int(k[1]),
                 "kernelH": a_int(k[0]), **geo, "nGroup": a_int(g), **w_layer_tail(propagate=True),
                 "withBias": a_bool(True), "format": a_format()}  # fmt: skip
        return [*pre, Mod("SpatialConvolution", attrs, [w.reshape(g, m // g, cg, k[0], k[1]), bias])]
    if g != 1:
        raise NotExpressible(f"dilated convolution with group {g} (BigDL's SpatialDilatedConvolution has no groups)")
    attrs = {"nInputPlane": a_int(cg), "nOutputPlane": a_int(m), "kW": a_int(k[1]), "kH": a_int(k[0]),
             "dW": a_int(s[1]), "dH": a_int(s[0]), "padW": a_int(p[1]), "padH": a_int(p[0]),
             "dilationW": a_int(d[1]), "dilationH": a_int(d[0]), **w_layer_tail(init=False)}  # fmt: skip
    return [*pre, Mod("SpatialDilatedConvolution", attrs, [w, bias])]


@emits("ConvTranspose")
def _deconv(ctx: Ctx) -> list[Mod]:
    w = ctx.need_const(1, "the weight")
    b = ctx.const(2)
    k, s, p, _ = spatial(ctx, "transposed convolution")
    if list(ctx.attrs.get("dilations") or (1, 1)) != [1, 1]:
        raise NotExpressible("dilated transposed convolution")
    if ctx.attrs.get("output_shape"):
        raise NotExpressible("output_shape (give pads and output_padding)")
    adj = list(ctx.attrs.get("output_padding") or (0, 0))
    g = int(ctx.attrs.get("group", 1))
    cin, mg = int(w.shape[0]), int(w.shape[1])
    ints = [cin, mg * g, k[1], k[0], s[1], s[0], p[1], p[0], adj[1], adj[0], g]
    attrs = {"intParams": a_ints(ints), "noBias": a_bool(False), **w_layer_tail(init=False)}
    bias = np.zeros(mg * g, np.float32) if b is None else b.astype(np.float32)
    return [Mod("SpatialFullConvolution", attrs, [w.reshape(g, cin // g, mg, k[0], k[1]), bias])]


def linear(k: int, m: int, w: np.ndarray, bias: np.ndarray | None) -> Mod:
    attrs = {"inputSize": a_int(k), "outputSize": a_int(m), "withBias": a_bool(bias is not None), **w_layer_tail()}
    return Mod("Linear", attrs, [w] if bias is None else [w, bias.reshape(m)])


@emits("Gemm")
def _gemm(ctx: Ctx) -> list[Mod]:
    a = ctx.attrs
    if int(a.get("transA", 0)):
        raise NotExpressible("transA=1")
    if len(ctx.shape(0)) != 2:
        raise NotExpressible(f"input of rank {len(ctx.shape(0))} (Linear takes 2-D)")
    b = ctx.need_const(1, "B")
    w = (b if int(a.get("transB", 0)) else b.T).astype(np.float32) * np.float32(a.get("alpha", 1.0))
    m, k = w.shape
    c = ctx.const(2)
    if ctx.node.inputs[2:3] and ctx.node.inputs[2] and c is None:
        raise NotExpressible("C must be a constant")
    bias = None
    if c is not None:
        if c.size not in (1, m):
            raise NotExpressible(f"C of shape {list(c.shape)} (a per-output bias only)")
        bias = np.broadcast_to(c.reshape(-1), (m,)).astype(np.float32) * np.float32(a.get("beta", 1.0))
    return [linear(k, m, np.ascontiguousarray(w), bias)]


@emits("MatMul")
def _matmul(ctx: Ctx) -> list[Mod]:
    if len(ctx.shape(0)) != 2:
        raise NotExpressible("only a 2-D input times a constant 2-D weight")
    w = ctx.need_const(1, "the weight")
    if w.ndim != 2:
        raise NotExpressible(f"a weight of rank {w.ndim}")
    return [linear(w.shape[0], w.shape[1], np.ascontiguousarray(w.T.astype(np.float32)), ctx.fused_bias)]


@emits("BatchNormalization")
def _bn(ctx: Ctx) -> list[Mod]:
    rank = len(ctx.shape(0))
    if rank not in (2, 4):
        raise NotExpressible(f"input of rank {rank}")
    scale, bias, mean, var = (ctx.need_const(i, n).astype(np.float32) for i, n in
                              ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))  # fmt: skip
    c = scale.size
    attrs = {"nOutput": a_int(c), "eps": a_double(ctx.attrs.get("epsilon", 1e-5)), "momentum": a_double(0.1),
             "affine": a_bool(True), **{k: a_null_tensor() for k in ("initWeight", "initBias", "initGradWeight",
                                                                      "initGradBias")}}  # fmt: skip
    if rank == 4:
        attrs["dataFormat"] = a_format()
    stats = {"runningMean": mean, "runningVar": var, "saveMean": np.zeros(c, np.float32),
             "saveStd": np.ones(c, np.float32)}  # fmt: skip
    return [Mod("SpatialBatchNormalization" if rank == 4 else "BatchNormalization", attrs, [scale, bias],
                tensor_attrs=stats)]  # fmt: skip


@emits("Relu")
def _relu(ctx: Ctx) -> list[Mod]:
    return [Mod("ReLU", {"ip": a_bool(False)})]


@emits("Clip")
def _clip(ctx: Ctx) -> list[Mod]:
    lo = ctx.const(1) if len(ctx.node.inputs) > 1 else None
    hi = ctx.const(2) if len(ctx.node.inputs) > 2 else None
    mn = float(lo) if lo is not None else float(ctx.attrs.get("min", -np.inf))
    mx = float(hi) if hi is not None else float(ctx.attrs.get("max", np.inf))
    if (mn, mx) == (0.0, 6.0):
        return [Mod("ReLU6", {"inplace": a_bool(False)})]
    if not (np.isfinite(mn) and np.isfinite(mx)):
        raise NotExpressible(f"Clip to [{mn}, {mx}] (finite bounds only)")
    return [Mod("HardTanh", {"minValue": a_double(mn), "maxValue": a_double(mx), "inplace": a_bool(False)})]


@emits("Tanh", "Sigmoid")
def _plain(ctx: Ctx) -> list[Mod]:
    return [Mod(ctx.node.op_type)]


@emits("Identity", "Dropout")
def _identity(ctx: Ctx) -> list[Mod]:
    return [Mod("Identity")]


@emits("LeakyRelu")
def _leaky(ctx: Ctx) -> list[Mod]:
    return [Mod("LeakyReLU", {"negval": a_double(ctx.attrs.get("alpha", 0.01)), "inplace": a_bool(False)})]


@emits("PRelu")
def _prelu(ctx: Ctx) -> list[Mod]:
    slope = ctx.need_const(1, "the slope").astype(np.float32)
    rank = len(ctx.shape(0))
    if slope.size == 1:
        return [Mod("PReLU", {"nOutputPlane": a_int(0)}, [slope.reshape(1)])]
    c = ctx.static(0)[0]
    ok = slope.size == c and (slope.ndim <= 1 or slope.shape[-(rank - 1) :][0] == c)
    if rank < 2 or not ok:
        raise NotExpressible(f"slope of shape {list(slope.shape)} (one per channel only)")
    return [Mod("PReLU", {"nOutputPlane": a_int(c)}, [slope.reshape(c)])]


@emits("Softmax", "LogSoftmax")
def _softmax(ctx: Ctx) -> list[Mod]:
    rank = len(ctx.shape(0))
    axis = int(ctx.attrs.get("axis", -1)) % rank
    log = ctx.node.op_type == "LogSoftmax"
    if rank == 2 and axis == 1:
        return [Mod("LogSoftMax" if log else "SoftMax")]
    if not log and rank in (3, 4) and axis == 1:  # BigDL's SoftMax of a 3-D/4-D input runs over dim 2
        return [Mod("SoftMax")]
    raise NotExpressible(f"axis {axis} of a rank-{rank} input")


def _pool_common(ctx: Ctx) -> tuple[list[int], list[int], list[int]]:
    k, s, p, _ = spatial(ctx, "pooling")
    if list(ctx.attrs.get("dilations") or (1, 1)) != [1, 1]:
        raise NotExpressible("dilated pooling")
    return k, s, p


@emits("MaxPool")
def _maxpool(ctx: Ctx) -> list[Mod]:
    k, s, p = _pool_common(ctx)
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        raise NotExpressible("the Indices output")
    attrs = {"kW": a_int(k[1]), "kH": a_int(k[0]), "dW": a_int(s[1]), "dH": a_int(s[0]), "padW": a_int(p[1]),
             "padH": a_int(p[0]), "format": a_format(), "ceil_mode": a_bool(bool(ctx.attrs.get("ceil_mode", 0)))}  # fmt: skip
    return [Mod("SpatialMaxPooling", attrs)]


def avgpool(k: list[int], s: list[int], p: list[int], ceil: bool, include_pad: bool, glob: bool) -> Mod:
    attrs = {"kW": a_int(k[1]), "kH": a_int(k[0]), "dW": a_int(s[1]), "dH": a_int(s[0]), "padW": a_int(p[1]),
             "padH": a_int(p[0]), "globalPooling": a_bool(glob), "ceilMode": a_bool(ceil),
             "countIncludePad": a_bool(include_pad), "divide": a_bool(True), "format": a_format()}  # fmt: skip
    return Mod("SpatialAveragePooling", attrs)


@emits("AveragePool")
def _avgpool(ctx: Ctx) -> list[Mod]:
    k, s, p = _pool_common(ctx)
    a = ctx.attrs
    return [avgpool(k, s, p, bool(a.get("ceil_mode", 0)), bool(a.get("count_include_pad", 0)), False)]


@emits("GlobalAveragePool", "GlobalMaxPool")
def _global(ctx: Ctx) -> list[Mod]:
    st = ctx.static(0)
    if len(st) != 3:
        raise NotExpressible(f"input of rank {len(st) + 1}")
    h, w = st[1], st[2]
    if ctx.node.op_type == "GlobalAveragePool":
        return [avgpool([h, w], [1, 1], [0, 0], False, True, True)]
    attrs = {"kW": a_int(w), "kH": a_int(h), "dW": a_int(1), "dH": a_int(1), "padW": a_int(0), "padH": a_int(0),
             "format": a_format(), "ceil_mode": a_bool(False)}  # fmt: skip
    return [Mod("SpatialMaxPooling", attrs)]


@emits("LRN")
def _lrn(ctx: Ctx) -> list[Mod]:
    a = ctx.attrs
    attrs = {"size": a_int(a["size"]), "alpha": a_double(a.get("alpha", 1e-4)), "beta": a_double(a.get("beta", 0.75)),
             "k": a_double(a.get("bias", 1.0)), "format": a_format()}  # fmt: skip
    return [Mod("SpatialCrossMapLRN", attrs)]
