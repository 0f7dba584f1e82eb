"""Handlers of elementwise ops: activations, arithmetic, Clip, variadic Sum/Max/Min/Mean, Dropout."""

from __future__ import annotations

from convertmodel.readers.onnx.context import NodeContext, onnx_op

#: Unary ops whose attributes and semantics are unchanged from the given opset to the newest
#: (later versions only widened the accepted element types).
_UNARY_SINCE = {
    "Relu": 6,
    "LeakyRelu": 6,
    "Sigmoid": 6,
    "Tanh": 6,
    "HardSigmoid": 6,
    "Elu": 6,
    "Selu": 6,
    "Softplus": 1,
    "Softsign": 1,
    "Abs": 6,
    "Neg": 6,
    "Exp": 6,
    "Log": 6,
    "Sqrt": 6,
    "Reciprocal": 6,
    "Erf": 9,
    "Floor": 6,
    "Ceil": 6,
    "Sign": 9,
    "HardSwish": 14,
    "Not": 1,
    "Sin": 7,
    "Cos": 7,
}
# Binary ops with numpy (multidirectional) broadcasting since opset 7, the IR's rule.
_BINARY_SINCE = {
    "Add": 7,
    "Sub": 7,
    "Mul": 7,
    "Div": 7,
    "Pow": 7,
    "Equal": 7,
    "Less": 7,
    "Greater": 7,
    "And": 7,
    "Or": 7,
    "Xor": 7,
    "LessOrEqual": 12,
    "GreaterOrEqual": 12,
    "Mod": 10,
    "PRelu": 7,
    "Where": 9,
}


def _copy_handler(op: str):  # type: ignore[no-untyped-def]
    def fn(ctx: NodeContext) -> None:
        ctx.emit(op, ctx.inputs, ctx.outputs[:1], **ctx.attrs)

    fn.__name__ = f"onnx_{op}"
    return fn


for _op, _since in {**_UNARY_SINCE, **_BINARY_SINCE}.items():
    onnx_op(_op, _since, emits=(_op,), copy_attrs=True)(_copy_handler(_op))


# -- Clip: min/max attributes (Clip-6) became optional inputs (Clip-11) ---------------------------
@onnx_op("Clip", 6, emits=("Clip",))
def clip_6(ctx: NodeContext) -> None:
    dtype = "float32"
    lo = ctx.attr("min")
    hi = ctx.attr("max")
    ins = [ctx.input(0)]
    ins.append(ctx.const_input("min", lo, dtype) if lo is not None else "")
    ins.append(ctx.const_input("max", hi, dtype) if hi is not None else "")
    while ins and not ins[-1]:
        ins.pop()
    ctx.emit("Clip", ins, ctx.outputs[:1])


@onnx_op("Clip", 11, emits=("Clip",))
def clip_11(ctx: NodeContext) -> None:
    ctx.emit("Clip", ctx.inputs, ctx.outputs[:1])


# -- variadic ops --------------------------------------------------------------------------------
@onnx_op("Sum", 6, emits=("Add", "Identity"))
def sum_(ctx: NodeContext) -> None:
    """Sum of N inputs as a chain of binary Adds (what the int8 passes and kernels know)."""
    _chain("Add", ctx, ctx.outputs[0])


def _chain(op: str, ctx: NodeContext, final: str | None = None) -> str:
    """Left fold of ``op`` over the inputs; the last node writes ``final`` (a fresh name when None)."""
    ins = [i for i in ctx.inputs if i]
    if not ins:
        raise ctx.fail("needs at least one input")
    if len(ins) == 1:
        ctx.alias(ins[0])
        return ctx.outputs[0]
    acc = ins[0]
    for k, v in enumerate(ins[1:], start=1):
        last = k == len(ins) - 1 and final is not None
        acc = ctx.emit(
            op,
            [acc, v],
            [final] if last else 1,  # type: ignore[list-item]
            name=ctx.name if last else f"{ctx.name}/{op.lower()}{k}",
        )[0]
    return acc


@onnx_op("Max", 6, emits=("Max",))
def max_(ctx: NodeContext) -> None:
    ctx.emit("Max", [i for i in ctx.inputs if i], ctx.outputs[:1])


@onnx_op("Min", 6, emits=("Min",))
def min_(ctx: NodeContext) -> None:
    ctx.emit("Min", [i for i in ctx.inputs if i], ctx.outputs[:1])


@onnx_op("Mean", 6, emits=("Mean",))
def mean(ctx: NodeContext) -> None:
    ctx.emit("Mean", [i for i in ctx.inputs if i], ctx.outputs[:1])


# -- inference no-ops ----------------------------------------------------------------------------
def _check_dropout(ctx: NodeContext) -> str | None:
    if len(ctx.outputs) > 1 and ctx.outputs[1] in ctx.used_outputs:
        return "mask output used"
    return None


@onnx_op("Dropout", 7, emits=("Identity",), check=_check_dropout)
def dropout(ctx: NodeContext) -> None:
    # Dropout is the identity at inference (ONNX Dropout-7+, training_mode false); simplify removes it.
    ctx.alias(ctx.input(0))


@onnx_op("Identity", 1, emits=("Identity",))
def identity(ctx: NodeContext) -> None:
    ctx.alias(ctx.input(0))
