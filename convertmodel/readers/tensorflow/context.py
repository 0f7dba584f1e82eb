"""What the TensorFlow and Keras translators share: values with their layout, the handler registry.

TensorFlow and Keras keep images NHWC; the IR is NCHW. Rather than wrapping each op in a pair of
transposes and hoping a later pass cancels them (tf2onnx's way), the translator tracks for every
TF tensor whether its IR value holds it as is or transposed to NCHW (``Val.nchw``). Layout-bound
ops (Conv, pooling, BatchNorm, Resize) ask for the NCHW form, layout-free ones (activations,
elementwise with constants re-laid out, Concat/Mean/Pad with their axes remapped) keep whichever
form they get, and anything else asks for the TF form. A Transpose is emitted only where the two
forms meet, once per value (cached), so a NHWC CNN becomes a plain NCHW graph with one Transpose
after the input and one before each 4-D output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convertmodel.errors import ConvertModelError, InvalidModelError
from convertmodel.ir.builder import TypedBuilder
from convertmodel.ir.graph import TensorType
from convertmodel.registry import Registry

#: IR axis j of an NCHW-held 4-D TF tensor holds TF (NHWC) axis TO_NCHW[j].
TO_NCHW = (0, 3, 1, 2)
#: TF axis a of an NHWC tensor sits at IR axis TO_NHWC[a] of its NCHW form.
TO_NHWC = (0, 2, 3, 1)


def tf_axis_to_ir(axis: int, rank: int = 4) -> int:
    """IR axis of TF axis ``axis`` (negative allowed) of a 4-D NCHW-held tensor."""
    return TO_NHWC[axis + rank if axis < 0 else axis]


@dataclass
class Val:
    """A TF tensor in the IR: the value name and whether it holds the tensor transposed to NCHW."""

    ir: str
    nchw: bool = False
    #: The value in the other layout, once a Transpose has produced it.
    other: str | None = None


class Translator:
    """The graph being built: TF tensor name -> :class:`Val`, and types inferred as nodes are added."""

    def __init__(self, source: str, name: str, metadata: dict[str, str]) -> None:
        self.source = source
        self.builder = TypedBuilder(name, metadata=metadata)
        self.vals: dict[str, Val] = {}
        #: IR value -> type, inferred as nodes are added (the builder's own table).
        self.types: dict[str, TensorType] = self.builder.types

    # -- values ---------------------------------------------------------------------------------
    def define(self, tf_name: str, val: Val) -> None:
        self.vals[tf_name] = val

    def val(self, tf_name: str, where: str) -> Val:
        v = self.vals.get(tf_name)
        if v is None:
            raise InvalidModelError(f"{self.source}: {where}: input {tf_name!r} is not defined by any node")
        return v

    def type_of(self, ir: str) -> TensorType | None:
        return self.types.get(ir)

    def ir_rank(self, ir: str) -> int | None:
        t = self.types.get(ir)
        return None if t is None else t.rank

    def const_value(self, ir: str) -> np.ndarray | None:
        return self.builder.constants.get(ir)

    def add_const(self, name: str, value: Any, dtype: str | None = None) -> str:
        return self.builder.add_const(name, value, dtype)

    def add_input(self, name: str, dtype: str, shape: Sequence[int | str | None] | None) -> str:
        return self.builder.add_input(name, dtype, shape)

    def emit(
        self, op: str, inputs: Sequence[str], name: str, outputs: Sequence[str] | int = 1, **attrs: Any
    ) -> list[str]:
        """Append an IR node and infer its output types (the translator needs ranks and static shapes)."""
        try:
            return self.builder.add_node(op, list(inputs), outputs, name=name, **attrs)
        except ConvertModelError as e:
            raise InvalidModelError(f"{self.source}: node {name!r}: {e}") from e
        except Exception as e:  # shapes that do not fit the op: name the node
            raise InvalidModelError(f"{self.source}: node {name!r}: {op}: {type(e).__name__}: {e}") from e

    def transpose(self, ir: str, perm: Sequence[int], name: str) -> str:
        c = self.const_value(ir)
        if c is not None:  # a constant is re-laid out once here, not at run time
            return self.add_const(f"{name}", np.ascontiguousarray(np.transpose(c, perm)))
        t = self.types.get(ir)
        batch_free = t is not None and t.shape is not None and len(perm) > 0 and perm[0] == 0
        if batch_free and t is not None and t.shape is not None and all(isinstance(d, int) for d in t.shape[1:]):
            # A permutation that only moves unit axes (a (N, 1, 1, C) vector) keeps the memory
            # order: it is a Reshape, which quantized and folded graphs handle for free. A
            # dynamic batch stays in place (0 = copy that dim, ONNX Reshape).
            moved = [p for p in perm if t.shape[p] != 1]
            if moved == sorted(moved):
                shape = [0] + [int(t.shape[p]) for p in perm[1:]]  # type: ignore[arg-type]
                return self.emit("Reshape", [ir, self.add_const(f"{name}/shape", np.asarray(shape, np.int64))], name)[0]
        return self.emit("Transpose", [ir], name, perm=tuple(perm))[0]

    # -- layouts --------------------------------------------------------------------------------
    def as_tf(self, v: Val) -> str:
        """The IR value holding ``v`` in TF's own layout."""
        if not v.nchw:
            return v.ir
        if v.other is None:
            v.other = self.transpose(v.ir, TO_NHWC, f"{v.ir}/to_nhwc")
        return v.other

    def as_nchw(self, v: Val, where: str) -> str:
        """The IR value holding the 4-D NHWC tensor ``v`` as NCHW."""
        if v.nchw:
            return v.ir
        r = self.ir_rank(v.ir)
        if r is not None and r != 4:
            raise InvalidModelError(f"{self.source}: {where}: expected a 4-D NHWC tensor, got rank {r}")
        if v.other is None:
            v.other = self.transpose(v.ir, TO_NCHW, f"{v.ir}/to_nchw")
        return v.other

    def tf_rank(self, v: Val) -> int | None:
        return self.ir_rank(v.ir)

    def tf_shape(self, v: Val) -> tuple[int | str | None, ...] | None:
        """The static TF-layout shape of ``v`` when known."""
        t = self.types.get(v.ir)
        if t is None or t.shape is None:
            return None
        return tuple(t.shape[i] for i in TO_NHWC) if v.nchw else t.shape


# -- handler registry --------------------------------------------------------------------------


class TFOpKey(NamedTuple):
    """Key of TensorFlow op handlers and Keras layer handlers: (kind, op or layer class name)."""

    kind: str  # "tf" or "keras"
    name: str


@dataclass(frozen=True)
class OpHandler:
    fn: Callable[..., None]
    #: Returns why this particular node cannot be converted (attributes), or None.
    check: Callable[..., str | None] | None = None


HANDLERS: Registry[TFOpKey, OpHandler] = Registry("TensorFlow handler")


def tf_op(*names: str, check: Callable[..., str | None] | None = None) -> Callable[[Callable[..., None]], Any]:
    """Register a handler for the TensorFlow ops ``names``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        for n in names:
            HANDLERS.add(TFOpKey("tf", n), OpHandler(fn, check))
        return fn

    return deco


def keras_layer(*names: str, check: Callable[..., str | None] | None = None) -> Callable[[Callable[..., None]], Any]:
    """Register a handler for the Keras layer classes ``names``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        for n in names:
            HANDLERS.add(TFOpKey("keras", n), OpHandler(fn, check))
        return fn

    return deco


def supported(kind: str) -> list[str]:
    return sorted(k.name for k in HANDLERS if k.kind == kind and not k.name.startswith("__"))


@dataclass
class Node:
    """One TF node (or Keras layer call) being translated."""

    tr: Translator
    op: str
    name: str
    inputs: list[str]
    attrs: dict[str, Any]
    n_outputs: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"node {self.name!r} ({self.op})"

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.tr.source}: {self.where}: {message}")

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def x(self, i: int) -> Val:
        if i >= len(self.inputs):
            raise self.fail(f"has {len(self.inputs)} inputs, expected at least {i + 1}")
        return self.tr.val(self.inputs[i], self.where)

    def tf(self, i: int) -> str:
        return self.tr.as_tf(self.x(i))

    def nchw(self, i: int) -> str:
        return self.tr.as_nchw(self.x(i), self.where)

    def const(self, i: int) -> np.ndarray | None:
        """The value of input ``i`` in TF layout when it is a constant."""
        v = self.x(i)
        return None if v.nchw else self.tr.const_value(v.ir)

    def require_const(self, i: int, what: str) -> np.ndarray:
        c = self.const(i)
        if c is None:
            raise self.fail(f"{what} (input {i}) must be a constant")
        return c

    def out_name(self, k: int = 0) -> str:
        return self.name if k == 0 else f"{self.name}:{k}"

    def set_out(self, ir: str, nchw: bool = False, k: int = 0) -> None:
        self.tr.define(self.out_name(k), Val(ir, nchw))

    def alias(self, v: Val, k: int = 0) -> None:
        self.tr.define(self.out_name(k), v)

    def emit(self, op: str, inputs: Sequence[str], suffix: str = "", **attrs: Any) -> str:
        """Emit a single-output IR node named after this node (plus ``suffix``)."""
        return self.tr.emit(op, inputs, self.name + suffix, **attrs)[0]

    def ints(self, suffix: str, values: Any) -> str:
        return self.tr.add_const(f"{self.name}/{suffix}", np.asarray(values, dtype=np.int64))

    def floats(self, suffix: str, values: Any) -> str:
        return self.tr.add_const(f"{self.name}/{suffix}", np.asarray(values, dtype=np.float32))
