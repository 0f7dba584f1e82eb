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
from convertmodel.ir.builder import TypedBuilder
from convertmodel.registry import Registry


class LayerKey(NamedTuple):
    """Key of Caffe layer handlers: the layer's ``type`` string as written in the prototxt."""

    type: str


Handler = Callable[["LayerContext"], list[str]]

HANDLERS: Registry[LayerKey, Handler] = Registry("Caffe layer handler")


def _count(n: int, lo: int, hi: int | None) -> bool:
    return n >= lo and (hi is None or n <= hi)


def _want(lo: int, hi: int | None, what: str) -> str:
    if hi == lo:
        return f"{lo} {what}{'s' if lo != 1 else ''}"
    return f"at least {lo} {what}s" if hi is None else f"{lo} to {hi} {what}s"


def layer_handler(
    *types: str, bottoms: tuple[int, int | None] = (1, 1), tops: tuple[int, int | None] = (1, 1)
) -> Callable[[Handler], Handler]:
    """Register one handler function for one or more Caffe layer types.

    ``bottoms`` and ``tops`` are the (min, max) blob counts the layer takes, as Caffe's own
    ``Layer::CheckBlobCounts`` enforces them (max None: any number); they are checked before the
    handler runs, and the handler's result is checked to define exactly one value per top, so a
    prototxt with a missing or extra ``bottom:``/``top:`` fails with a message naming the layer.
    """

    def deco(fn: Handler) -> Handler:
        def checked(ctx: LayerContext) -> list[str]:
            if not _count(len(ctx.inputs), *bottoms):
                raise ctx.fail(f"expected {_want(*bottoms, 'bottom')}, found {len(ctx.inputs)}")
            if not _count(len(ctx.tops), *tops):
                raise ctx.fail(f"expected {_want(*tops, 'top')}, found {len(ctx.tops)}")
            outs = fn(ctx)
            if len(outs) != len(ctx.tops):
                raise ctx.fail(f"defines {len(outs)} outputs for {len(ctx.tops)} tops")
            return outs

        checked.__name__ = fn.__name__
        checked.__doc__ = fn.__doc__
        for t in types:
            HANDLERS.add(LayerKey(t), checked)
        return fn

    return deco


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
        if i >= len(self.inputs):
            raise self.fail(f"needs bottom {i}, but the layer has {len(self.inputs)} bottom(s)")
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
        try:
            (res,) = self.b.add_node(
                op_type, inputs, [out] if out is not None else 1, name=name, domain=domain, **attrs
            )
        except InvalidModelError as e:
            raise self.fail(str(e)) from e
        return res

    def top(self, k: int = 0) -> str:
        """The SSA value name for top ``k``: the blob name, or a name derived from the layer for in-place layers."""
        if k >= len(self.tops):
            raise self.fail(f"needs top {k}, but the layer has {len(self.tops)} top(s)")
        return self.tops[k]
