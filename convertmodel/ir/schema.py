"""Op schemas: inputs, typed attributes with defaults, and shape inference, one per op.

Schemas live in ``convertmodel/ir/ops/*.py`` (one module per op family) and register with
:func:`op_schema`::

    @op_schema("Relu", inputs=["X"], outputs=["Y"])
    def _relu(ctx: InferContext) -> list[TensorType]:
        return [ctx.input_type(0)]

The key is :class:`OpKey` ``(domain, op_type, version)``. IR ops use
ONNX names and ONNX semantics in the default domain ``""``; ops ONNX lacks (Caffe's SSD
layers, quantized ops) live in the domain ``"convertmodel"``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convertmodel.errors import InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import AttrValue, Dim, Node, TensorType
from convertmodel.registry import Registry

CM_DOMAIN = "convertmodel"


class OpKey(NamedTuple):
    """Key of op schemas: (domain, op_type, version)."""

    domain: str
    op_type: str
    version: int = 1


class AttrType(enum.Enum):
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    INTS = "ints"
    FLOATS = "floats"
    STRINGS = "strings"
    TENSOR = "tensor"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Attr:
    name: str
    type: AttrType
    default: Any = REQUIRED
    doc: str = ""


@dataclass(frozen=True)
class Port:
    """An input or output. ``variadic`` takes all remaining positions (Concat's inputs)."""

    name: str
    optional: bool = False
    variadic: bool = False


@dataclass
class InferContext:
    """What a shape-inference function sees."""

    node: Node
    attrs: Mapping[str, Any]
    input_types: list[TensorType | None]
    #: Values of inputs that are constants (Reshape's shape, Slice's starts ...), else None.
    input_values: list[np.ndarray | None]

    def input_type(self, i: int) -> TensorType:
        t = self.input_types[i] if i < len(self.input_types) else None
        if t is None:
            raise InvalidModelError(f"{self.node}: input {i} has no known type")
        return t

    def shape(self, i: int) -> tuple[Dim, ...]:
        s = self.input_type(i).shape
        if s is None:
            raise InvalidModelError(f"{self.node}: input {i} has unknown rank")
        return s

    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and bool(self.node.inputs[i])

    def value(self, i: int) -> np.ndarray | None:
        return self.input_values[i] if i < len(self.input_values) else None

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.node.op_type} {self.node.name!r}: {message}")


InferFn = Callable[[InferContext], list[TensorType]]


@dataclass(frozen=True)
class OpSchema:
    op_type: str
    domain: str
    version: int
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    attrs: tuple[Attr, ...]
    infer: InferFn
    doc: str = ""
    attr_map: Mapping[str, Attr] = field(default_factory=dict)

    def min_inputs(self) -> int:
        return sum(1 for p in self.inputs if not p.optional and not p.variadic) + (
            1 if any(p.variadic and not p.optional for p in self.inputs) else 0
        )

    def max_inputs(self) -> int | None:
        return None if any(p.variadic for p in self.inputs) else len(self.inputs)


SCHEMAS: Registry[OpKey, OpSchema] = Registry("op schema")


def _ports(spec: Sequence[str | Port]) -> tuple[Port, ...]:
    out = []
    for p in spec:
        if isinstance(p, Port):
            out.append(p)
        elif p.endswith("?"):
            out.append(Port(p[:-1], optional=True))
        elif p.endswith("*"):
            out.append(Port(p[:-1], variadic=True))
        else:
            out.append(Port(p))
    return tuple(out)


def op_schema(
    op_type: str,
    *,
    inputs: Sequence[str | Port],
    outputs: Sequence[str | Port],
    attrs: Sequence[Attr] = (),
    domain: str = "",
    version: int = 1,
    doc: str = "",
) -> Callable[[InferFn], InferFn]:
    """Register a schema. Port names ending in ``?`` are optional, in ``*`` variadic."""

    def deco(fn: InferFn) -> InferFn:
        schema = OpSchema(
            op_type,
            domain,
            version,
            _ports(inputs),
            _ports(outputs),
            tuple(attrs),
            fn,
            doc or (fn.__doc__ or "").strip(),
            {a.name: a for a in attrs},
        )
        SCHEMAS.add(OpKey(domain, op_type, version), schema)
        return fn

    return deco


_loaded = False


def _load_schemas() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import convertmodel.ir.ops  # noqa: F401  (registers every schema)


def find_schema(op_type: str, domain: str = "") -> OpSchema | None:
    _load_schemas()
    return SCHEMAS.lookup(OpKey(domain, op_type, 10**6))


def get_schema(op_type: str, domain: str = "") -> OpSchema:
    s = find_schema(op_type, domain)
    if s is None:
        raise UnsupportedOpError("IR", {f"{domain + '.' if domain else ''}{op_type}": []}, supported_ops())
    return s


def supported_ops() -> list[str]:
    _load_schemas()
    return sorted({(k.domain + "." if k.domain else "") + k.op_type for k in SCHEMAS})


def _check_type(node: Node, a: Attr, v: AttrValue) -> Any:
    t = a.type
    ok = (
        (t is AttrType.INT and isinstance(v, int))
        or (t is AttrType.FLOAT and isinstance(v, (int, float)))
        or (t is AttrType.STRING and isinstance(v, str))
        or (t is AttrType.INTS and isinstance(v, tuple) and all(isinstance(x, int) for x in v))
        or (t is AttrType.FLOATS and isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v))
        or (t is AttrType.STRINGS and isinstance(v, tuple) and all(isinstance(x, str) for x in v))
        or (t is AttrType.TENSOR and isinstance(v, np.ndarray))
    )
    if not ok:
        raise InvalidModelError(f"{node.op_type} {node.name!r}: attribute {a.name!r} must be {t.value}, got {v!r}")
    if t is AttrType.FLOAT:
        return float(v)  # type: ignore[arg-type]
    if t is AttrType.FLOATS:
        return tuple(float(x) for x in v)  # type: ignore[union-attr]
    return v


def resolve_attrs(node: Node, schema: OpSchema | None = None) -> dict[str, Any]:
    """Attributes of ``node`` with schema defaults filled in and types checked."""
    schema = schema or get_schema(node.op_type, node.domain)
    out: dict[str, Any] = {}
    for k, v in node.attrs.items():
        a = schema.attr_map.get(k)
        if a is None:
            raise InvalidModelError(
                f"{node.op_type} {node.name!r}: unknown attribute {k!r}; "
                f"known: {', '.join(sorted(schema.attr_map)) or 'none'}"
            )
        out[k] = _check_type(node, a, v)
    for a in schema.attrs:
        if a.name not in out:
            if a.default is REQUIRED:
                raise InvalidModelError(f"{node.op_type} {node.name!r}: required attribute {a.name!r} is missing")
            out[a.name] = a.default
    return out
