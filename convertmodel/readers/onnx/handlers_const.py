"""Handlers that make constants: Constant, ConstantOfShape (with a constant shape), and Cast."""

from __future__ import annotations

import numpy as np

from convertmodel.errors import UnsupportedOpError
from convertmodel.ir.schema import find_schema
from convertmodel.limits import check_alloc
from convertmodel.readers.onnx.attributes import onnx_dtype
from convertmodel.readers.onnx.context import NodeContext, onnx_op

# Constant-1 has only ``value``; Constant-12 added value_float(s)/value_int(s)/value_string(s),
# Constant-11 sparse_value (onnx/defs/generator/defs.cc).
_DENSE_KEYS = {
    "value": None,
    "value_float": "float32",
    "value_floats": "float32",
    "value_int": "int64",
    "value_ints": "int64",
}


def _check_constant(ctx: NodeContext) -> str | None:
    keys = [k for k in ctx.attrs if k in _DENSE_KEYS]
    if not keys:
        others = sorted(ctx.attrs) or ["none"]
        return f"value attribute {'/'.join(others)}"
    return None


@onnx_op("Constant", 1, check=_check_constant)
def constant(ctx: NodeContext) -> None:
    """A Constant node used as a weight becomes an IR constant named after its output."""
    keys = [k for k in ctx.attrs if k in _DENSE_KEYS]
    if len(keys) != 1:
        raise ctx.fail(f"needs exactly one value attribute, got {sorted(ctx.attrs) or 'none'}")
    key = keys[0]
    dtype = _DENSE_KEYS[key]
    value = np.asarray(ctx.attrs[key]) if dtype is None else np.asarray(ctx.attrs[key], dtype=dtype)
    _define(ctx, value)


def _define(ctx: NodeContext, value: np.ndarray) -> None:
    out = ctx.outputs[0]
    final = ctx.builder.add_const(out, value)
    if final != out:
        raise ctx.fail(f"output {out!r} is already defined")


@onnx_op("ConstantOfShape", 9)
def constant_of_shape(ctx: NodeContext) -> None:
    """Filled tensor; the shape must be constant (it is in every exporter we know: weight stubs, zeros)."""
    value = ctx.attr("value")
    fill = np.zeros((1,), np.float32) if value is None else np.asarray(value).reshape(-1)
    if fill.size != 1:
        raise ctx.fail(f"value must hold one element, got shape {list(np.asarray(value).shape)}")
    shape = ctx.const(0)
    if shape is None:
        if find_schema("ConstantOfShape") is not None:
            ctx.emit("ConstantOfShape", ctx.inputs[:1], ctx.outputs[:1], value=fill)
            return
        raise UnsupportedOpError(ctx.source, {"ConstantOfShape with a computed shape": [ctx.name]})
    dims = [int(d) for d in np.asarray(shape).reshape(-1)]
    if any(d < 0 for d in dims):
        raise ctx.fail(f"shape {dims} has negative dims")
    check_alloc(dims, fill.dtype.itemsize, f"{ctx.source}: node {ctx.name!r} (ConstantOfShape)")
    _define(ctx, np.full(dims, fill[0], dtype=fill.dtype))


@onnx_op("Cast", 6, emits=("Cast",))
def cast(ctx: NodeContext) -> None:
    to = int(ctx.require_attr("to"))
    value = ctx.const(0)
    if value is not None:
        # Casting a constant is done here so weights stored as fp16/fp64 arrive as plain constants.
        _define(ctx, value.astype(onnx_dtype(to, f"{ctx.source}: node {ctx.name!r} (Cast)")))
        return
    ctx.emit("Cast", ctx.inputs[:1], ctx.outputs[:1], **ctx.attrs)
