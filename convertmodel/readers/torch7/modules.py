"""Torch7 ``nn`` module handlers: a module's serialized table -> IR nodes (through the emitters of
:mod:`convertmodel.readers.torchnn`, Torch ``nn`` semantics, shared with the BigDL reader).

Field names are those of Torch's Lua modules (``nInputPlane``, ``kW``, ``dW``, ``padW``, ``weight`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.builder import TypedBuilder
from convertmodel.readers.torch7.t7file import T7Tensor, TorchObject
from convertmodel.readers.torchnn import emit
from convertmodel.readers.torchnn.activity import Act
from convertmodel.readers.torchnn.tensors import view
from convertmodel.registry import Registry

_REQUIRED = object()


@dataclass
class T7Context:
    path: str
    obj: TorchObject
    cls: str  # without the "nn." prefix
    name: str
    x: Act
    b: TypedBuilder
    run: Callable[[Any, Act], Act]

    def fail(self, msg: str) -> InvalidModelError:
        return InvalidModelError(f"{self.path}: module {self.name!r} (nn.{self.cls}): {msg}")

    def f(self, key: str, default: Any = _REQUIRED) -> Any:
        v = self.obj.fields.get(key)
        if v is None:
            if default is _REQUIRED:
                raise self.fail(f"field {key!r} is missing")
            return default
        return v

    def i(self, key: str, default: Any = _REQUIRED) -> int:
        v = self.f(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise self.fail(f"field {key!r} should be a number, got {v!r}")
        return int(v)

    def num(self, key: str, default: Any = _REQUIRED) -> float:
        v = self.f(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(f"field {key!r} should be a number, got {v!r}")
        return float(v)

    def tensor(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        t = self.obj.fields.get(key)
        if t is None:
            return None
        if not isinstance(t, T7Tensor):
            raise self.fail(f"field {key!r} is not a tensor")
        if t.storage is None:
            if any(s != 0 for s in t.sizes):
                raise self.fail(f"tensor {key!r} of size {t.sizes} has no storage")
            return None
        arr = view(
            self.path,
            f"module {self.name!r} (nn.{self.cls}) tensor {key!r}",
            t.storage,
            t.sizes,
            t.strides,
            t.offset,
            False,
        )
        arr = arr.astype(np.float32)
        if shape is not None:
            if arr.size != int(np.prod(shape)):
                raise self.fail(f"tensor {key!r} has shape {list(arr.shape)}, expected {list(shape)}")
            arr = arr.reshape(shape)
        return arr

    def tensor_in(self) -> str:
        if not isinstance(self.x, str):
            raise self.fail(f"expects one tensor input, got a table of {len(self.x)}")
        return self.x

    def table_in(self) -> list[str]:
        if isinstance(self.x, str) or not all(isinstance(a, str) for a in self.x):
            raise self.fail("expects a table of tensors")
        return list(self.x)  # type: ignore[arg-type]

    def children(self) -> list[Any]:
        mods = self.obj.fields.get("modules")
        if mods is None:
            return []
        if not isinstance(mods, dict):
            raise self.fail("field 'modules' is not a table")
        keys = sorted(k for k in mods if isinstance(k, int))
        if keys != list(range(1, len(keys) + 1)):
            raise self.fail(f"field 'modules' is not a list 1..n (keys {keys[:5]})")
        return [mods[k] for k in keys]

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        return emit.node(self.b, self.name, op, inputs, **attrs)


class T7Key(NamedTuple):
    """Key of Torch7 module handlers: the class name without ``nn.``."""

    cls: str


Handler = Callable[[T7Context], Act]
T7_HANDLERS: Registry[T7Key, Handler] = Registry("Torch7 module handler")


def handler(*classes: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for c in classes:
            T7_HANDLERS.add(T7Key(c), fn)
        return fn

    return deco


def _unsupported(ctx: T7Context, variant: str) -> UnsupportedOpError:
    return UnsupportedOpError(ctx.path, {f"nn.{ctx.cls}({variant})": [ctx.name]}, what="Torch7 module")


@handler("Sequential")
def sequential(ctx: T7Context) -> Act:
    x = ctx.x
    for m in ctx.children():
        x = ctx.run(m, x)
    return x


@handler("ConcatTable")
def concat_table(ctx: T7Context) -> Act:
    return [ctx.run(m, ctx.x) for m in ctx.children()]


@handler("ParallelTable")
def parallel_table(ctx: T7Context) -> Act:
    xs = ctx.x
    kids = ctx.children()
    if isinstance(xs, str) or len(xs) < len(kids):
        raise ctx.fail("input table is shorter than the number of branches")
    return [ctx.run(m, xs[i]) for i, m in enumerate(kids)]


def _axis(ctx: T7Context, dim: int, n_input_dims: int, rank: int) -> int:
    axis = dim - 1 if dim > 0 else rank + dim
    if n_input_dims > 0 and rank == n_input_dims + 1:
        axis += 1
    if not 0 <= axis < rank:
        raise ctx.fail(f"dimension {dim} is outside an input of rank {rank}")
    return axis


@handler("Concat", "DepthConcat")
def concat(ctx: T7Context) -> Act:
    outs = [ctx.run(m, ctx.x) for m in ctx.children()]
    if not outs or not all(isinstance(o, str) for o in outs):
        raise ctx.fail("every branch must output one tensor")
    vals = [str(o) for o in outs]
    rank = ctx.b.rank(vals[0])
    return ctx.node("Concat", vals, axis=_axis(ctx, ctx.i("dimension"), 0, rank))


@handler("JoinTable")
def join_table(ctx: T7Context) -> Act:
    xs = ctx.table_in()
    rank = ctx.b.rank(xs[0])
    return ctx.node("Concat", xs, axis=_axis(ctx, ctx.i("dimension"), ctx.i("nInputDims", 0), rank))


@handler("CAddTable")
def cadd_table(ctx: T7Context) -> Act:
    xs = ctx.table_in()
    return xs[0] if len(xs) == 1 else ctx.node("Sum", xs)


@handler("SpatialConvolution", "SpatialConvolutionMM")
def conv(ctx: T7Context) -> Act:
    cin, cout = ctx.i("nInputPlane"), ctx.i("nOutputPlane")
    kw, kh = ctx.i("kW"), ctx.i("kH")
    g = ctx.i("groups", 1)
    if g < 1 or cin % g or cout % g:
        raise ctx.fail(f"groups {g} must divide nInputPlane {cin} and nOutputPlane {cout}")
    w = ctx.tensor("weight", (cout, cin // g, kh, kw))
    if w is None:
        raise ctx.fail("weight is missing")
    bias = ctx.tensor("bias", (cout,))
    pad_w, pad_h = ctx.i("padW", ctx.i("padding", 0)), ctx.i("padH", ctx.i("padding", 0))
    return emit.conv(
        ctx.b, ctx.name, ctx.tensor_in(), w, bias, (kh, kw), (ctx.i("dH", 1), ctx.i("dW", 1)), (pad_h, pad_w), (1, 1), g
    )


@handler("SpatialMaxPooling")
def max_pool(ctx: T7Context) -> Act:
    k, s = (ctx.i("kH"), ctx.i("kW")), (ctx.i("dH"), ctx.i("dW"))
    pads = (ctx.i("padH", 0), ctx.i("padW", 0))
    return emit.pool(ctx.b, ctx.name, ctx.tensor_in(), "max", k, s, pads, bool(ctx.f("ceil_mode", False)))


@handler("SpatialAveragePooling")
def avg_pool(ctx: T7Context) -> Act:
    if not bool(ctx.f("divide", True)):
        raise _unsupported(ctx, "divide=false")
    k, s = (ctx.i("kH"), ctx.i("kW")), (ctx.i("dH", 1), ctx.i("dW", 1))
    pads = (ctx.i("padH", 0), ctx.i("padW", 0))
    cip = bool(ctx.f("count_include_pad", True))
    return emit.pool(ctx.b, ctx.name, ctx.tensor_in(), "avg", k, s, pads, bool(ctx.f("ceil_mode", False)), cip)


@handler("SpatialBatchNormalization", "BatchNormalization")
def batch_norm(ctx: T7Context) -> Act:
    mean = ctx.tensor("running_mean")
    if mean is None:
        raise ctx.fail("running_mean is missing")
    c = mean.size
    eps = ctx.num("eps", 1e-5)
    var = ctx.tensor("running_var", (c,))
    if var is None:
        std = ctx.tensor("running_std", (c,))  # older nn: running_std holds 1 / sqrt(var + eps)
        if std is None:
            raise ctx.fail("running_var (or running_std) is missing")
        var = (1.0 / np.square(std.astype(np.float64)) - eps).astype(np.float32)
    scale, bias = ctx.tensor("weight", (c,)), ctx.tensor("bias", (c,))
    return emit.batchnorm(ctx.b, ctx.name, ctx.tensor_in(), mean, var, scale, bias, eps)


@handler("Linear")
def linear(ctx: T7Context) -> Act:
    w = ctx.tensor("weight")
    if w is None or w.ndim != 2:
        raise ctx.fail("weight must be a 2-D (outputSize, inputSize) tensor")
    return emit.linear(ctx.b, ctx.name, ctx.tensor_in(), w, ctx.tensor("bias", (w.shape[0],)))


@handler("ReLU", "Threshold")
def threshold(ctx: T7Context) -> Act:
    return emit.threshold(ctx.b, ctx.name, ctx.tensor_in(), ctx.num("threshold", 0.0), ctx.num("val", 0.0))


@handler("Tanh")
def tanh(ctx: T7Context) -> Act:
    return ctx.node("Tanh", [ctx.tensor_in()])


@handler("Sigmoid")
def sigmoid(ctx: T7Context) -> Act:
    return ctx.node("Sigmoid", [ctx.tensor_in()])


@handler("Identity", "SpatialDropout")
def identity(ctx: T7Context) -> Act:
    return ctx.x


@handler("Dropout")
def dropout(ctx: T7Context) -> Act:
    """Identity at test time, except Torch's v1 Dropout (``v2 == false``), which scales by ``1 - p``.

    BigDL's saveTorch writes no ``v2`` field and means the identity, so a missing field is v2."""
    if ctx.f("v2", True) is False:
        return ctx.node(
            "Mul", [ctx.tensor_in(), ctx.b.add_const(f"{ctx.name}/keep", np.float32(1.0 - ctx.num("p", 0.5)))]
        )
    return ctx.x


@handler("SoftMax")
def softmax(ctx: T7Context) -> Act:
    return emit.softmax(ctx.b, ctx.name, ctx.tensor_in())


@handler("LogSoftMax")
def log_softmax(ctx: T7Context) -> Act:
    return emit.softmax(ctx.b, ctx.name, ctx.tensor_in(), log=True)


@handler("SpatialCrossMapLRN")
def lrn(ctx: T7Context) -> Act:
    return emit.lrn(
        ctx.b,
        ctx.name,
        ctx.tensor_in(),
        ctx.i("size", 5),
        ctx.num("alpha", 1.0),
        ctx.num("beta", 0.75),
        ctx.num("k", 1.0),
    )


def _sizes(ctx: T7Context, key: str) -> list[int]:
    v = ctx.f(key)
    if isinstance(v, np.ndarray):
        return [int(d) for d in v.reshape(-1)]
    if isinstance(v, dict):
        return [int(v[k]) for k in sorted(k for k in v if isinstance(k, int))]
    raise ctx.fail(f"field {key!r} is not a size")


@handler("View")
def view_(ctx: T7Context) -> Act:
    sizes = _sizes(ctx, "size")
    x = ctx.tensor_in()
    n_in = ctx.i("numInputDims", 0)
    if -1 in sizes or (n_in > 0 and ctx.b.rank(x) <= n_in):
        return emit.reshape(ctx.b, ctx.name, x, sizes)
    return emit.reshape(ctx.b, ctx.name, x, [-1, *sizes])


@handler("Reshape")
def reshape(ctx: T7Context) -> Act:
    sizes = _sizes(ctx, "size")
    x = ctx.tensor_in()
    mode = ctx.f("batchMode", None)
    if mode is False:
        return emit.reshape(ctx.b, ctx.name, x, sizes)
    if mode is True:
        return emit.reshape(ctx.b, ctx.name, x, [-1, *sizes])
    shp = ctx.b.shape(x)
    n = int(np.prod(sizes))
    if all(isinstance(d, int) for d in shp) and int(np.prod([int(d) for d in shp])) == n:  # type: ignore[arg-type]
        return emit.reshape(ctx.b, ctx.name, x, sizes)
    return emit.reshape(ctx.b, ctx.name, x, [-1, *sizes])
