"""Schemas of elementwise activations and other unary ops (shape passes through).

Also PRelu (slope broadcasting), Clip (opset-11 form: min/max as optional inputs), Dropout
(inference form) and Cast (``to`` is an ONNX ``TensorProto.DataType`` code).
"""

from __future__ import annotations

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import TensorType
from convertmodel.ir.ops._util import broadcast_shapes, same_as
from convertmodel.ir.schema import Attr, AttrType, InferContext, op_schema

#: ONNX ``TensorProto.DataType`` codes (onnx/onnx.proto) of the element types the IR knows.
ONNX_DTYPE_CODES: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}

#: The inverse of :data:`ONNX_DTYPE_CODES`.
IR_DTYPE_TO_ONNX: dict[str, int] = {v: k for k, v in ONNX_DTYPE_CODES.items()}


def onnx_dtype_name(code: int) -> str:
    """IR dtype name of an ONNX ``TensorProto.DataType`` code; raises for types the IR lacks."""
    name = ONNX_DTYPE_CODES.get(int(code))
    if name is None:
        known = ", ".join(f"{k}={v}" for k, v in sorted(ONNX_DTYPE_CODES.items()))
        raise InvalidModelError(f"ONNX data type {code} is not supported by the IR; supported: {known}")
    return name


def _same(ctx: InferContext) -> list[TensorType]:
    return same_as(ctx.input_type(0))


# Unary ops whose output has the input's shape and dtype, with their attributes (ONNX defaults).
_UNARY: dict[str, tuple[list[Attr], str]] = {
    "Relu": ([], "max(x, 0)."),
    "LeakyRelu": ([Attr("alpha", AttrType.FLOAT, 0.01)], "x if x >= 0 else alpha * x."),
    "Sigmoid": ([], "1 / (1 + exp(-x))."),
    "Tanh": ([], "tanh(x)."),
    "HardSigmoid": (
        [Attr("alpha", AttrType.FLOAT, 0.2), Attr("beta", AttrType.FLOAT, 0.5)],
        "max(0, min(1, alpha * x + beta)).",
    ),
    "HardSwish": ([], "x * max(0, min(1, x / 6 + 1 / 2))."),
    "Elu": ([Attr("alpha", AttrType.FLOAT, 1.0)], "x if x > 0 else alpha * (exp(x) - 1)."),
    "Selu": (
        # Defaults from the ONNX spec (Selu-6), the constants of Klambauer et al. 2017.
        [
            Attr("alpha", AttrType.FLOAT, 1.67326319217681884765625),
            Attr("gamma", AttrType.FLOAT, 1.05070102214813232421875),
        ],
        "gamma * (x if x > 0 else alpha * (exp(x) - 1)).",
    ),
    "Softplus": ([], "log(1 + exp(x))."),
    "Softsign": ([], "x / (1 + |x|)."),
    "Abs": ([], "|x|."),
    "Neg": ([], "-x."),
    "Exp": ([], "exp(x)."),
    "Log": ([], "natural log of x."),
    "Sqrt": ([], "square root of x."),
    "Reciprocal": ([], "1 / x."),
    "Erf": ([], "Gauss error function of x."),
    "Floor": ([], "round towards -inf."),
    "Ceil": ([], "round towards +inf."),
    "Sign": ([], "-1, 0 or 1."),
    "Identity": ([], "x unchanged."),
}

for _op, (_attrs, _doc) in _UNARY.items():
    op_schema(_op, inputs=["X"], outputs=["Y"], attrs=_attrs, doc=_doc)(_same)


@op_schema("PRelu", inputs=["X", "slope"], outputs=["Y"])
def _prelu(ctx: InferContext) -> list[TensorType]:
    """x if x >= 0 else slope * x; slope broadcasts to X (ONNX unidirectional broadcasting).

    A 1-D slope of length C that does not broadcast against X's last axis but matches the
    channel axis 1 is taken per channel (Caffe's PReLU layout; some converters emit it).
    """
    x = ctx.input_type(0)
    s = ctx.input_type(1).shape
    if x.shape is None or s is None or prelu_per_channel(x.shape, s):
        return same_as(x)
    try:
        out = broadcast_shapes(x.shape, s)
    except InvalidModelError as e:
        raise ctx.fail(f"slope shape {list(s)} does not broadcast to input shape {list(x.shape)}") from e
    if len(out) != len(x.shape) or any(
        isinstance(o, int) and isinstance(d, int) and o != d for o, d in zip(out, x.shape, strict=True)
    ):
        raise ctx.fail(f"slope shape {list(s)} does not broadcast one-way to input shape {list(x.shape)}")
    # Unidirectional broadcasting: the output always has X's shape, whichever reading of the slope applies.
    return same_as(x)


def prelu_per_channel(x_shape: tuple, slope_shape: tuple) -> bool:
    """True when a 1-D slope is meant per channel (axis 1) rather than numpy-broadcast on the last axis."""
    if len(slope_shape) != 1 or len(x_shape) < 3:
        return False
    c, last, ch = slope_shape[0], x_shape[-1], x_shape[1]
    if not isinstance(c, int) or c == 1:
        return False
    return isinstance(last, int) and last != c and last != 1 and ch == c


@op_schema("Clip", inputs=["input", "min?", "max?"], outputs=["output"])
def _clip(ctx: InferContext) -> list[TensorType]:
    """min(max(x, min), max); min and max are optional scalar inputs (ONNX Clip-11+)."""
    for i in (1, 2):
        if ctx.has_input(i):
            t = ctx.input_types[i]
            if t is not None and t.shape is not None and t.shape not in ((), (1,)):
                raise ctx.fail(f"{'min' if i == 1 else 'max'} must be a scalar, got shape {list(t.shape)}")
    return same_as(ctx.input_type(0))


@op_schema(
    "Dropout",
    inputs=["data", "ratio?", "training_mode?"],
    outputs=["output", "mask?"],
    attrs=[Attr("seed", AttrType.INT, 0)],
)
def _dropout(ctx: InferContext) -> list[TensorType]:
    """Identity at inference; the optional mask output is all true."""
    x = ctx.input_type(0)
    return [TensorType(x.dtype, x.shape), TensorType("bool", x.shape)]


@op_schema(
    "Cast", inputs=["input"], outputs=["output"], attrs=[Attr("to", AttrType.INT), Attr("saturate", AttrType.INT, 1)]
)
def _cast(ctx: InferContext) -> list[TensorType]:
    """Convert the element type; ``to`` is an ONNX TensorProto data type code (1=float32, 7=int64 ...)."""
    try:
        dtype = onnx_dtype_name(ctx.attrs["to"])
    except InvalidModelError as e:
        raise ctx.fail(str(e)) from e
    return [TensorType(dtype, ctx.input_type(0).shape)]
