"""Source-format readers. Each format is a subpackage exposing ``read(path, **options) -> Graph``.

A reader only translates: source file -> IR ops (ONNX semantics, NCHW), with
``graph.metadata["source_format"]`` set. Constant folding and simplification run afterwards, once,
for every format (:mod:`convertmodel.passes.pipeline`, called by :func:`convertmodel.load`).

Formats are registered in :data:`BUILTIN` below as light descriptors (the reader's module is
imported only when that format is read), so detecting a file's format never imports a heavy
library. A new format is a subpackage plus one ``ReaderInfo`` entry here (and its sniffer in
:mod:`convertmodel.readers.sniff`); :func:`read_model` checks the options against the entry, so
readers never see an option they did not declare.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from convertmodel.errors import FormatError, ModelIOError, UsageError
from convertmodel.fsutil import read_head
from convertmodel.ir.graph import Dim, Graph
from convertmodel.limits import note_model_file
from convertmodel.readers import sniff
from convertmodel.registry import Registry, check_options


class ReaderKey(NamedTuple):
    format: str


@dataclass(frozen=True)
class ReaderInfo:
    """One source format: how to recognise it and where its ``read`` lives."""

    format: str
    extensions: tuple[str, ...]
    #: Module exposing ``read(path, **options) -> Graph``; imported on first use.
    module: str
    #: ``sniff(path, head) -> bool``: ``head`` is the file's first bytes (empty for a directory).
    sniff: Callable[[str, bytes], bool]
    description: str
    #: Keyword options ``read`` accepts; anything else is rejected by :func:`read_model`.
    options: tuple[str, ...] = ()
    #: The format is a directory (a TensorFlow SavedModel), not a file.
    directory: bool = False
    #: Run the import pipeline (fold constants, simplify) after reading. False for convertmodel's
    #: own .q8, which stores a graph exactly as it was saved.
    pipeline: bool = True


#: The formats convertmodel reads, in detection order. New readers add one entry each.
BUILTIN: tuple[ReaderInfo, ...] = (
    ReaderInfo(
        "q8",
        (".q8",),
        "convertmodel.serialize",
        sniff.q8,
        "convertmodel's own model file (fp32 or int8)",
        options=("verify_crc",),
        pipeline=False,
    ),
    ReaderInfo("onnx", (".onnx",), "convertmodel.readers.onnx", sniff.onnx, "ONNX ModelProto, opsets 7 and newer"),
    ReaderInfo(
        "caffe",
        (".caffemodel", ".prototxt"),
        "convertmodel.readers.caffe",
        sniff.caffe,
        "Caffe (BVLC and SSD fork) .caffemodel + .prototxt",
        options=("prototxt", "caffemodel"),
    ),
    ReaderInfo(
        "tensorflow",
        (".pb", ".pbtxt"),
        "convertmodel.readers.tensorflow",
        sniff.tensorflow,
        "TensorFlow frozen GraphDef (.pb binary, .pbtxt text), TF1 and TF2",
        options=("inputs", "outputs"),
    ),
    ReaderInfo(
        "savedmodel",
        (),
        "convertmodel.readers.tensorflow.savedmodel",
        sniff.savedmodel,
        "TensorFlow SavedModel directory (needs the tensorflow extra)",
        options=("signature", "inputs", "outputs"),
        directory=True,
    ),
    ReaderInfo(
        "keras",
        (".h5", ".hdf5", ".keras"),
        "convertmodel.readers.tensorflow.keras",
        sniff.keras,
        "Keras model: HDF5 .h5 (Keras 2 and 3) and the Keras 3 .keras zip",
        options=("inputs", "outputs"),
    ),
    ReaderInfo(
        "bigdl",
        (".bigdl",),
        "convertmodel.readers.bigdl",
        sniff.bigdl,
        "BigDL 0.3.x / 2.x protobuf model (saveModule/saveModel), optional .weights file, BigDL-quantized",
        options=("weights", "input_shape"),
    ),
    ReaderInfo(
        "torch7",
        (".t7",),
        "convertmodel.readers.torch7",
        sniff.torch7,
        "Torch7 .t7 serialized nn module (binary or ascii)",
        options=("input_shape",),
    ),
)

READERS: Registry[ReaderKey, ReaderInfo] = Registry("reader")
for _info in BUILTIN:
    READERS.add(ReaderKey(_info.format), _info)


def reader_info(format: str, path: str = "") -> ReaderInfo:
    """The registered reader of ``format``; UsageError naming the known ones otherwise."""
    info = READERS.get(ReaderKey(format))
    if info is None:
        where = f"{path}: " if path else ""
        raise UsageError(f"{where}unknown format {format!r}; known: {', '.join(k.format for k in READERS)}")
    return info


def _known() -> str:
    return ", ".join(f"{i.format} ({' '.join(i.extensions) or 'directory'})" for _, i in READERS.items())


def detect_format(path: str) -> str:
    """The format of ``path``: by content first (magic bytes, directory layout), then by extension."""
    if not os.path.exists(path):
        raise ModelIOError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        for key, info in READERS.items():
            if info.directory and info.sniff(path, b""):
                return key.format
        dirs = [i.format for _, i in READERS.items() if i.directory]
        expected = f"a model file or a {' / '.join(dirs)} directory" if dirs else "a model file"
        raise FormatError(path, f"is a directory; expected {expected}")
    head = read_head(path, sniff.HEAD_BYTES)
    files = [(key, info) for key, info in READERS.items() if not info.directory]
    for key, info in files:
        if info.sniff(path, head):
            return key.format
    low = path.lower()
    for key, info in files:
        if low.endswith(info.extensions):
            return key.format
    hint = next((msg for ext, msg in UNSUPPORTED_FORMATS.items() if low.endswith(ext)), None)
    raise FormatError(path, hint or f"unrecognised model format; known formats: {_known()}")


#: Formats convertmodel has no reader for, by extension: what the file is and how to get a readable model.
UNSUPPORTED_FORMATS = {
    ".pt": "a PyTorch file (TorchScript or a pickled state_dict), which convertmodel does not read; export it to "
    "ONNX with torch.onnx.export(model, example_input, 'model.onnx') and use the .onnx",
    ".pth": "a PyTorch checkpoint (a pickled state_dict), which convertmodel does not read; load it into its "
    "nn.Module and export with torch.onnx.export(model, example_input, 'model.onnx'), then use the .onnx",
    ".tflite": "a TensorFlow Lite flatbuffer, which convertmodel does not read; convert the SavedModel or Keras "
    "model it was made from instead (or export to ONNX with tf2onnx --tflite)",
    ".mlmodel": "a Core ML model, which convertmodel does not read; convert the source model instead",
    ".pdmodel": "a PaddlePaddle model, which convertmodel does not read; export to ONNX with paddle2onnx",
    ".params": "an MXNet parameter file, which convertmodel does not read; export to ONNX with mx.onnx.export_model",
}


def read_model(path: str, format: str | None = None, **options: object) -> Graph:
    """Read a model of any registered format into the IR, exactly as the reader translates it."""
    fmt = format or detect_format(path)
    info = reader_info(fmt, path)
    check_options(f"{fmt} reader", path, options, info.options)
    mod = importlib.import_module(info.module)
    note_model_file(path)  # the memory cap grows with the model's own size, whatever its format
    try:
        return mod.read(path, **options)  # type: ignore[no-any-return]
    except FileNotFoundError as e:
        raise ModelIOError(f"{e.filename or path}: no such file") from e


def load_graph(
    path: str,
    format: str | None = None,
    *,
    fold_constants: bool = True,
    simplify: bool = True,
    input_shapes: Mapping[str, Sequence[Dim]] | None = None,
    batch: int | None = None,
    **options: object,
) -> Graph:
    """What :func:`convertmodel.load` returns the graph of: the reader's translation, the user's
    ``input_shapes`` / ``batch`` (:func:`convertmodel.passes.input_shapes.apply_input_shapes`), then the
    import pipeline (:mod:`convertmodel.passes.pipeline`) unless the format stores a finished graph (.q8)."""
    from convertmodel.passes.input_shapes import apply_input_shapes
    from convertmodel.passes.pipeline import import_pipeline

    fmt = format or detect_format(path)
    shapes = dict(input_shapes or {})
    if shapes and "input_shape" in reader_info(fmt).options and "input_shape" not in options and len(shapes) == 1:
        dims = next(iter(shapes.values()))
        if all(isinstance(d, int) for d in dims):  # readers that need the shape to translate get it directly
            options["input_shape"] = tuple(dims)
    graph = apply_input_shapes(read_model(path, fmt, **options), shapes, batch)
    if reader_info(fmt).pipeline:
        graph = import_pipeline(graph, fold_constants=fold_constants, simplify=simplify)
        graph = _record_source(graph, path)
    return graph


def _record_source(graph: Graph, path: str) -> Graph:
    """``source_file`` and ``source_sha256`` of a source model file in its metadata (a .q8 made from it keeps
    them, so ``verify`` can check that the fp32 file it finds is the one the .q8 was made from)."""
    from convertmodel.fsutil import file_sha256

    meta = dict(graph.metadata)
    if not os.path.isfile(path) or ("source_sha256" in meta and "source_file" in meta):
        return graph
    meta.setdefault("source_file", os.path.basename(path))
    meta.setdefault("source_sha256", file_sha256(path))
    return graph.replace(metadata=meta, infer=False)
