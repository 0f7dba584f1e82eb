"""A GraphBuilder that infers each node's output types as it is added (the readers that translate layer by
layer need a value's shape while they emit the next layer: Caffe, BigDL, Torch7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convertmodel.errors import ConvertModelError, InvalidModelError
from convertmodel.ir.graph import Dim, GraphBuilder, TensorType
from convertmodel.ir.infer import check_output_size
from convertmodel.ir.schema import InferContext, get_schema, resolve_attrs

__all__ = ["TypedBuilder"]


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
        n_in, lo, hi = len(node.inputs), schema.min_inputs(), schema.max_inputs()
        if n_in < lo or (hi is not None and n_in > hi):
            raise InvalidModelError(
                f"{op_type} {node.name!r}: has {n_in} inputs, expected {lo}..{hi if hi is not None else 'many'}"
            )
        ctx = InferContext(
            node,
            resolve_attrs(node, schema),
            [self.types.get(i) if i else None for i in node.inputs],
            [self.constants.get(i) if i else None for i in node.inputs],
        )
        try:
            inferred = schema.infer(ctx)
        except ConvertModelError:
            raise
        except (ArithmeticError, ValueError, TypeError, IndexError, KeyError) as e:
            # Same rule as convertmodel.ir.infer: a schema that trips on a value names the node.
            raise InvalidModelError(f"{op_type} {node.name!r}: shape inference failed: {type(e).__name__}: {e}") from e
        for o, t in zip(node.outputs, inferred, strict=False):
            if o:
                check_output_size(f"{op_type} {node.name!r}", o, t)
                self.types[o] = t
        return outs

    def rename_value(self, old: str, new: str) -> None:
        super().rename_value(old, new)
        if old in self.types:
            self.types[new] = self.types.pop(old)

    def shape(self, value: str) -> tuple[Dim, ...]:
        t = self.types.get(value)
        if t is None or t.shape is None:
            raise InvalidModelError(f"value {value!r} has no known shape")
        return t.shape

    def rank(self, value: str) -> int:
        return len(self.shape(value))
