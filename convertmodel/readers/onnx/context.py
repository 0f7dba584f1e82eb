"""Handler registry of the ONNX reader and the context a handler sees.

A handler translates one ONNX node into IR nodes. It registers with :func:`onnx_op`, keyed by
:class:`HandlerKey` ``(domain, op_type, version)`` where ``version`` is the ONNX *since_version*
of the form it handles; :meth:`~convertmodel.registry.Registry.lookup` then picks, for a model of
opset N, the handler with the newest since_version <= N (ONNX's own rule)::

    @onnx_op("Clip", 7, emits=("Clip",))
    def clip_7(ctx: NodeContext) -> None:   # min/max attributes become constant inputs
        ...

    @onnx_op("Clip", 11, emits=("Clip",))
    def clip_11(ctx: NodeContext) -> None:  # already the IR form
        ...

``emits`` lists the IR ops a handler may produce, so the up-front scan can report ops whose IR
schema is missing before anything is converted. ``check`` optionally returns a reason why a
particular node (attributes, used outputs) cannot be converted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import GraphBuilder
from convertmodel.registry import Registry


class HandlerKey(NamedTuple):
    """Key of ONNX handlers; ``version`` is the ONNX since_version of the op form handled."""

    domain: str
    op_type: str
    version: int


HandlerFn = Callable[["NodeContext"], None]
CheckFn = Callable[["NodeContext"], "str | None"]


@dataclass(frozen=True)
class Handler:
    fn: HandlerFn
    emits: tuple[str, ...]
    check: CheckFn | None = None
    #: The handler copies the node's attributes unchanged onto ``emits[0]``: the scan checks them
    #: against that IR schema, so an attribute the IR lacks is reported before converting.
    copy_attrs: bool = False


HANDLERS: Registry[HandlerKey, Handler] = Registry("ONNX handler")


def onnx_op(
    op_type: str,
    since: int,
    *,
    emits: Sequence[str] = (),
    domain: str = "",
    check: CheckFn | None = None,
    copy_attrs: bool = False,
) -> Callable[[HandlerFn], HandlerFn]:
    """Register ``fn`` as the handler of ``op_type`` from opset ``since`` on."""

    def deco(fn: HandlerFn) -> HandlerFn:
        HANDLERS.add(HandlerKey(domain, op_type, since), Handler(fn, tuple(emits), check, copy_attrs))
        return fn

    return deco


_found: dict[tuple[int, HandlerKey], Handler | None] = {}


def find_handler(op_type: str, domain: str, opset: int) -> Handler | None:
    """The handler for ``op_type`` at ``opset`` (newest since_version <= opset), memoised per registry size."""
    key = HandlerKey(domain, op_type, opset)
    memo = (len(HANDLERS), key)  # a registration changes the size and so invalidates the memo
    if memo not in _found:
        _found[memo] = HANDLERS.lookup(key)
    return _found[memo]


@dataclass
class NodeContext:
    """One ONNX node being converted, plus the graph being built."""

    builder: GraphBuilder
    op_type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    opset: int
    source: str
    #: Rank of values known from the model (declared value_info and ONNX shape inference).
    ranks: dict[str, int] = field(default_factory=dict)
    #: Which outputs of this node are used by another node or are graph outputs.
    used_outputs: set[str] = field(default_factory=set)

    # -- inputs and attributes -------------------------------------------------------------
    def input(self, i: int) -> str:
        """Name of input ``i`` ('' when omitted)."""
        return self.inputs[i] if i < len(self.inputs) else ""

    def const(self, i: int) -> np.ndarray | None:
        """Value of input ``i`` when it is a constant (initializer, Constant node, folded)."""
        name = self.input(i)
        return self.builder.constants.get(name) if name else None

    def rank(self, value: str) -> int | None:
        return self.ranks.get(value)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def require_attr(self, name: str) -> Any:
        if name not in self.attrs:
            raise self.fail(f"required attribute {name!r} is missing")
        return self.attrs[name]

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.source}: node {self.name!r} ({self.op_type}): {message}")

    # -- emitting IR -----------------------------------------------------------------------
    def const_input(self, suffix: str, value: Any, dtype: str) -> str:
        """A new constant (an attribute of an older opset turned into an input)."""
        return self.builder.add_const(f"{self.name}/{suffix}", np.asarray(value, dtype=dtype))

    def emit(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int | None = None,
        name: str | None = None,
        **attrs: Any,
    ) -> list[str]:
        """Append an IR node (default: this node's outputs and name). Returns its output names.

        ``outputs`` as a count makes fresh intermediate names derived from the node name.
        """
        outs: list[str] | int = (
            list(self.outputs) if outputs is None else (outputs if isinstance(outputs, int) else list(outputs))
        )
        return self.builder.add_node(op_type, list(inputs), outs, name=name or self.name, **attrs)

    def alias(self, value: str) -> None:
        """Make this node's single output a copy of ``value`` (Identity; the simplify pass removes it)."""
        self.emit("Identity", [value], self.outputs[:1])
