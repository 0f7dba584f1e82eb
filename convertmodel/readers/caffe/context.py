"""What a Caffe layer handler sees: the layer, its weight blobs, and a graph builder that infers
types as nodes are added (handlers need input shapes: Reshape, Crop, InnerProduct's axis ...).

Handlers register with :func:`layer_handler`, keyed by :class:`LayerKey` (the Caffe type string).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, GraphBuilder, TensorType
from convertmodel.ir.schema import InferContext, get_schema, resolve_attrs
from convertmodel.registry import Registry


class LayerKey(NamedTuple):
    """Key of Caffe layer handlers: the layer's ``type`` string as written in the prototxt."""

    type: str


Handler = Callable[["LayerContext"], list[str]]

HANDLERS: Registry[LayerKey, Handler] = Registry("Caffe layer handler")


def layer_handler(*types: str) -> Callable[[Handler], Handler]:
    """Register one handler function for one or more Caffe layer types."""

    def deco(fn: Handler) -> Handler:
        for t in types:
            HANDLERS.add(LayerKey(t), fn)
        return fn

    return deco


class TypedBuilder(GraphBuilder):
    """A GraphBuilder that runs each node's shape inference as it is added."""

    def __init__(self, name: str, metadata: dict[str, str]) -> None:
        super().__init__(name, metadata)
        self.types: dict[str, TensorType] = {}

    def add_input(self, name: str, dtype: str, shape: Sequence[Dim] | None) -> str:
        out = super().add_input(name, dtype, shape)
        self.types[out] = self.inputs[-1].type
        return out

    def add_const(self, name: str, value: Any, dtype: str | None = None) -> str:
        out = super().add_const(name, value, dtype)
        arr = self.constants[out]
        self.types[out] = TensorType(str(arr.dtype), tuple(int(d) for d in arr.shape))
        return out

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int = 1,
        name: str | None = None,
        domain: str = "",
        **attrs: object,
    ) -> list[str]:
        outs = super().add_node(op_type, inputs, outputs, name, domain, **attrs)
        node = self.nodes[-1]
        schema = get_schema(op_type, domain)
        ctx = InferContext(
            node,
            resolve_attrs(node, schema),
            [self.types.get(i) if i else None for i in node.inputs],
            [self.constants.get(i) if i else None for i in node.inputs],
        )
        for o, t in zip(node.outputs, schema.infer(ctx), strict=False):
            if o:
                self.types[o] = t
        return outs

    def shape(self, value: str) -> tuple[Dim, ...]:
        t = self.types.get(value)
        if t is None or t.shape is None:
            raise InvalidModelError(f"value {value!r} has no known shape")
        return t.shape


@dataclass
class LayerContext:
    """One layer being converted."""

    path: str
    name: str
    type: str
    layer: Any  # caffe_pb2.LayerParameter
    inputs: list[str]
    tops: list[str]
    blobs: list[tuple[np.ndarray, bool]]  # (data in the blob's own shape, shape came from legacy N/C/H/W)
    b: TypedBuilder
    extra: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.path}: layer {self.name!r} ({self.type}): {message}")

    def shape(self, i: int = 0) -> tuple[int, ...]:
        s = self.b.shape(self.inputs[i])
        if not all(isinstance(d, int) for d in s):
            raise self.fail(f"input {i} ({self.inputs[i]!r}) needs a static shape, got {list(s)}")
        return tuple(int(d) for d in s)  # type: ignore[arg-type]

    def shape_of(self, value: str) -> tuple[int, ...]:
        s = self.b.shape(value)
        if not all(isinstance(d, int) for d in s):
            raise self.fail(f"value {value!r} needs a static shape, got {list(s)}")
        return tuple(int(d) for d in s)  # type: ignore[arg-type]

    def need_blobs(self, *counts: int) -> None:
        if len(self.blobs) not in counts:
            want = " or ".join(str(c) for c in counts)
            raise self.fail(f"expected {want} weight blobs, found {len(self.blobs)}")

    def blob(self, i: int, shape: Sequence[int]) -> np.ndarray:
        """Blob ``i`` checked against ``shape`` (Caffe's ShapeEquals: a legacy 4-D blob matches when
        its N/C/H/W equal the wanted shape left-padded with 1s) and reshaped to it."""
        if i >= len(self.blobs):
            raise self.fail(f"blob {i} is missing: expected shape {tuple(shape)}, found {len(self.blobs)} blobs")
        arr, legacy = self.blobs[i]
        want = tuple(int(d) for d in shape)
        ok = arr.shape == want
        if legacy and not ok and len(want) <= 4:
            ok = arr.shape == (1,) * (4 - len(want)) + want
        if not ok:
            raise self.fail(f"blob {i} has shape {arr.shape} but the prototxt needs {want}")
        return arr.reshape(want)

    def const(self, suffix: str, value: Any, dtype: str | None = None) -> str:
        return self.b.add_const(f"{self.name}/{suffix}", value, dtype)

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        out: str | None = None,
        domain: str = "",
        suffix: str = "",
        **attrs: object,
    ) -> str:
        """Add one node; its output is named ``out`` (a top's SSA name) or gets a fresh derived name."""
        name = self.name + (f"/{suffix}" if suffix else "")
        (res,) = self.b.add_node(op_type, inputs, [out] if out is not None else 1, name=name, domain=domain, **attrs)
        return res

    def top(self, k: int = 0) -> str:
        """The SSA value name for top ``k``: the blob name, or a name derived from the layer for in-place layers."""
        return self.tops[k]
