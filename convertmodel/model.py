"""The Python API: ``convertmodel.load(path) -> Model``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from convertmodel.errors import InvalidModelError, UsageError
from convertmodel.ir.graph import Graph

if TYPE_CHECKING:
    from convertmodel.quant.options import QuantizationInfo, QuantizeOptions


class Model:
    """A model in the IR, ready to run, quantize or save."""

    def __init__(self, graph: Graph, source: str | None = None) -> None:
        self._graph = graph
        self.source = source
        self._executors: dict[tuple[tuple[str, ...], int], Any] = {}

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def metadata(self) -> Mapping[str, str]:
        return self._graph.metadata

    @property
    def is_quantized(self) -> bool:
        from convertmodel.quant.ops import is_quantized

        return is_quantized(self._graph)

    @property
    def quantization(self) -> QuantizationInfo | None:
        """What the quantize pass decided (None for an fp32 model)."""
        from convertmodel.quant.options import QuantizationInfo

        return QuantizationInfo.of(self._graph.metadata)

    def executor(self, backends: tuple[str, ...] | None = None, threads: int = 0) -> Any:
        from convertmodel.runtime.executor import Executor
        from convertmodel.runtime.registry import BACKENDS

        key = (backends or BACKENDS, threads)
        ex = self._executors.get(key)
        if ex is None:
            ex = self._executors[key] = Executor(self._graph, key[0], threads)
        return ex

    def predict(
        self, x: np.ndarray | Mapping[str, np.ndarray], *, backends: tuple[str, ...] | None = None, threads: int = 0
    ) -> Any:
        """Run the model on a batch.

        ``x`` is one array (a model with one input) or a dict {input name: array}. Returns: for one
        array, the output array (numpy, float32 for a classifier: shape (batch, classes)) when the
        model has one output, else a dict {output name: array}; for a dict, always the dict of all
        outputs. Raises :class:`~convertmodel.errors.DataError` when an array does not fit its input.
        ``threads`` (0 = all CPUs) and ``backends`` pick how the kernels run.
        """
        if isinstance(x, Mapping):
            return self.executor(backends, threads).run(x)
        if len(self._graph.inputs) != 1:
            names = [i.name for i in self._graph.inputs]
            raise InvalidModelError(f"model has {len(names)} inputs {names}; pass a dict")
        out = self.executor(backends, threads).run({self._graph.inputs[0].name: np.asarray(x)})
        return out[self._graph.outputs[0].name] if len(out) == 1 else out

    def with_metadata(self, items: Mapping[str, str]) -> Model:
        """A copy with ``items`` added to (or replacing entries of) the graph's metadata."""
        meta = {**self._graph.metadata, **items}
        return Model(self._graph.replace(metadata=meta, infer=False), self.source)

    def save(self, path: str | os.PathLike[str], format: str | None = None, **options: Any) -> None:
        """Write the model; the format follows the extension unless given (see convertmodel.writers)."""
        from convertmodel.writers import write_model

        write_model(self._graph, os.fspath(path), format, **options)

    def quantize(
        self,
        options: QuantizeOptions | None = None,
        *,
        exclude: str | Iterable[str] = (),
        fp32_layers: Iterable[str] = (),
        compat: str | None = None,
        input_levels: int | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        quantize_depthwise: bool | None = None,
    ) -> Model:
        """An int8 copy of this model (see :func:`convertmodel.passes.quantize.quantize_graph`).

        Give a :class:`~convertmodel.quant.options.QuantizeOptions`, or its fields as keywords.
        ``progress(done, total, layer)`` is called after each quantized layer.
        """
        from convertmodel.passes.quantize import check_quantizable, quantize_graph
        from convertmodel.quant.options import QuantizeOptions

        fields = QuantizeOptions(
            tuple(exclude) if not isinstance(exclude, str) else (exclude,),
            tuple(fp32_layers),
            compat,
            input_levels,
            quantize_depthwise=quantize_depthwise,
        )
        if options is None:
            options = fields
        elif fields != QuantizeOptions():
            raise UsageError("quantize: give a QuantizeOptions or keyword options, not both")
        check_quantizable(self._graph, options, self.source)  # names the file, not only the graph
        return Model(quantize_graph(self._graph, options, progress=progress), self.source)

    def __repr__(self) -> str:
        kind = "int8" if self.is_quantized else "fp32"
        return f"<Model {self._graph.name!r} {kind} {len(self._graph.nodes)} nodes from {self.source!r}>"


def load(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    fold_constants: bool = True,
    simplify: bool = True,
    input_shapes: Mapping[str, Sequence[int | str | None]] | None = None,
    batch: int | None = None,
    **options: Any,
) -> Model:
    """Read a model of any supported format (detected by content, then extension, unless given).

    The reader translates the file; then the import pipeline folds constants and simplifies
    (:mod:`convertmodel.passes.pipeline`; either can be switched off for the literal translation).
    ``input_shapes`` ({input name: dims}, "" for a model's only input; a str dim is symbolic) and
    ``batch`` (the first dimension of every input) replace the declared input shapes before the
    pipeline runs, so a model declared with batch 1 can run batched; a dimension declared as -1 is
    read as symbolic. ``options`` go to the format's reader (e.g. ``prototxt=`` for Caffe, ``inputs=``
    for TensorFlow); unknown ones raise UsageError. Returns a :class:`Model`.
    """
    from convertmodel.readers import load_graph

    p = os.fspath(path)
    graph = load_graph(
        p, format, fold_constants=fold_constants, simplify=simplify, input_shapes=input_shapes, batch=batch, **options
    )
    return Model(graph, p)
