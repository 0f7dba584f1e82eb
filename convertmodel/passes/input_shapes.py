"""Input shapes set by the user (``--input-shape NAME:1,3,224,224``, ``--batch N``) and ``-1`` dims read as symbolic.

Many Caffe deploy files and ONNX exports declare batch 1; a dynamic model may need fixing for a
format that wants static shapes; some exports (Paddle) declare a symbolic dimension as ``-1``.
:func:`apply_input_shapes` rewrites the graph inputs' declared shapes and re-runs shape inference
(the declared output shapes are dropped so the inferred ones hold). It runs after the reader and
before the import pipeline, so constant folding sees the new shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from convertmodel.errors import UsageError
from convertmodel.ir.graph import Dim, Graph, TensorType, ValueInfo

#: What a dimension written as N (or ?, or -1) becomes.
SYMBOLIC_BATCH = "N"


def parse_input_shape(text: str) -> tuple[str, tuple[Dim, ...]]:
    """``NAME:1,3,224,224`` or ``1,3,224,224`` (a model with one input) -> (name or "", dims); a dim of
    ``N``, ``?`` or ``-1`` is symbolic."""
    name, sep, dims_text = text.rpartition(":")
    if not sep:
        name, dims_text = "", text
    dims: list[Dim] = []
    for part in dims_text.replace("x", ",").split(","):
        p = part.strip()
        if p in ("N", "n", "?", "-1"):
            dims.append(SYMBOLIC_BATCH if not dims else f"{name or 'input'}_{len(dims)}")
            continue
        try:
            d = int(p)
        except ValueError:
            raise UsageError(
                f"--input-shape {text!r}: expected NAME:D0,D1,... with integers (N or -1 for a symbolic dimension)"
            ) from None
        if d < 1:
            raise UsageError(f"--input-shape {text!r}: dimension {d} must be at least 1 (or N / -1 for symbolic)")
        dims.append(d)
    if not dims_text.strip():
        raise UsageError(f"--input-shape {text!r}: no dimensions given")
    return name, tuple(dims)


def parse_input_shapes(texts: Iterable[str]) -> dict[str, tuple[Dim, ...]]:
    out: dict[str, tuple[Dim, ...]] = {}
    for t in texts:
        name, dims = parse_input_shape(t)
        if name in out:
            raise UsageError(f"--input-shape given twice for {name or 'the input'!r}")
        out[name] = dims
    return out


def _symbolic(vi: ValueInfo) -> tuple[Dim, ...] | None:
    shape = vi.type.shape
    if shape is None:
        return None
    return tuple(
        (SYMBOLIC_BATCH if i == 0 else f"{vi.name}_{i}") if isinstance(d, int) and d < 0 else d
        for i, d in enumerate(shape)
    )


def apply_input_shapes(
    graph: Graph, shapes: Mapping[str, Sequence[Dim]] | None = None, batch: int | None = None
) -> Graph:
    """``graph`` with its inputs' shapes replaced (``shapes`` by input name; "" = the only input), the batch
    dimension set to ``batch``, and negative dims made symbolic. Unchanged graphs are returned as they are."""
    shapes = dict(shapes or {})
    names = [vi.name for vi in graph.inputs]
    if "" in shapes:
        if len(names) != 1:
            raise UsageError(f"the model has inputs {names}: name the input, --input-shape NAME:D0,D1,...")
        shapes[names[0]] = shapes.pop("")
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UsageError(f"--input-shape names {unknown}, but the model's inputs are {names}")
    if batch is not None and batch < 1:
        raise UsageError(f"--batch {batch}: must be at least 1")
    new_inputs = []
    for vi in graph.inputs:
        dims = _symbolic(vi)
        if vi.name in shapes:
            want = tuple(shapes[vi.name])
            if dims is not None and len(dims) != len(want):
                raise UsageError(
                    f"--input-shape {vi.name}: the model declares {len(dims)} dims ({vi.type}), {len(want)} given"
                )
            dims = want
        if batch is not None and dims:
            dims = (batch, *dims[1:])
        new_inputs.append(ValueInfo(vi.name, TensorType(vi.type.dtype, dims)) if dims != vi.type.shape else vi)
    if all(a is b for a, b in zip(new_inputs, graph.inputs, strict=True)):
        return graph
    outputs = tuple(ValueInfo(o.name, TensorType(o.type.dtype, None)) for o in graph.outputs)
    return dataclasses.replace(graph, inputs=tuple(new_inputs), outputs=outputs).replace(infer=True)
