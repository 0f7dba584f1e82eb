"""TensorFlow SavedModel directories: one signature (default ``serving_default``) into the IR.

The directory's ``saved_model.pb`` is parsed with convertmodel's own schema (signatures listed and
checked, corrupt files reported, no TensorFlow needed for that). The graph itself is then frozen
by TensorFlow, imported lazily (the ``tensorflow`` extra): a TF2 SavedModel keeps its computation
in a function library called through ``StatefulPartitionedCall`` and its weights in a TensorBundle
checkpoint (an SSTable index plus raw shards) that the graph reads through resource variables.
Reading that without TensorFlow means re-implementing function inlining, resource-variable
resolution and the bundle format, a second TensorFlow runtime; ``convert_variables_to_constants_v2``
is TensorFlow's own, tested path to exactly the frozen GraphDef the GraphDef reader takes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from convertmodel.errors import FormatError, InvalidModelError, UsageError
from convertmodel.ir.graph import Graph

OPTIONS = ("signature", "inputs", "outputs")
DEFAULT_SIGNATURE = "serving_default"


def _proto_path(path: str) -> str:
    for f in ("saved_model.pb", "saved_model.pbtxt"):
        p = os.path.join(path, f)
        if os.path.isfile(p):
            return p
    raise FormatError(path, "is not a SavedModel directory: it has no saved_model.pb")


def signatures(path: str) -> dict[str, Any]:
    """The SignatureDefs of a SavedModel (from saved_model.pb, without TensorFlow)."""
    from convertmodel.fsutil import read_regular
    from convertmodel.readers.tensorflow.protos import parse, pb2

    p = _proto_path(path)
    sm = parse(read_regular(p), pb2().SavedModel(), p, "SavedModel")
    if not len(sm.meta_graphs):
        raise FormatError(p, "is not a SavedModel: it holds no MetaGraphDef")
    out: dict[str, Any] = {}
    for mg in sm.meta_graphs:
        for k, v in mg.signature_def.items():
            out.setdefault(k, v)
    return out


def _digest(path: str) -> str:
    """sha256 over saved_model.pb and the variables files, in name order."""
    h = hashlib.sha256()
    files = [_proto_path(path)]
    var = os.path.join(path, "variables")
    if os.path.isdir(var):
        files += [os.path.join(var, f) for f in sorted(os.listdir(var))]
    for f in files:
        h.update(os.path.basename(f).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence TensorFlow's C++ logging (absl/oneDNN banners written to fd 2 whatever TF_CPP_MIN_LOG_LEVEL
    says) so that the CLI's output stays its own: an error is still one line."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _freeze(path: str, signature: str) -> tuple[bytes, list[str], list[str], str]:
    """Frozen GraphDef bytes, input placeholder names, output node names (TensorFlow, lazily)."""
    with _quiet_stderr():
        return _freeze_loud(path, signature)


def _freeze_loud(path: str, signature: str) -> tuple[bytes, list[str], list[str], str]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    except ImportError as e:
        raise UsageError(
            f"{path}: reading a SavedModel needs TensorFlow (pip install 'convertmodel[tensorflow]'); "
            "frozen GraphDefs (.pb) and Keras files (.h5, .keras) are read without it"
        ) from e
    try:
        loaded = None
        try:
            loaded = tf.saved_model.load(path)  # kept alive: the signature reads its variables
            fn = loaded.signatures[signature]
        except Exception as first:  # e.g. a Keras 2 optimizer in the object graph that TF 2.21 cannot revive
            fn = _v1_signature(tf, path, signature, first)
        frozen = convert_variables_to_constants_v2(fn)
        del loaded
    except Exception as e:  # TensorFlow raises many types for broken checkpoints/graphs
        why = " ".join(str(e).split())[:400]  # TensorFlow's messages span lines; ours is one
        raise InvalidModelError(
            f"{path}: TensorFlow cannot load signature {signature!r}: {type(e).__name__}: {why}"
        ) from e
    gd = frozen.graph.as_graph_def()
    ins = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outs = [t.name for t in frozen.outputs]
    return gd.SerializeToString(), ins, outs, str(tf.__version__)


def _v1_signature(tf: Any, path: str, signature: str, first: Exception) -> Any:
    """The signature as a concrete function via the TF1 loader, which restores only the variables.

    The session graph is frozen with its function library kept; wrapping it and pruning to the
    signature's tensors gives a function that convert_variables_to_constants_v2 inlines.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_from_session_graph

    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as sess:
        mg = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        if signature not in mg.signature_def:
            raise first
        sig = mg.signature_def[signature]
        ins = [sig.inputs[k].name for k in sorted(sig.inputs)]
        outs = [sig.outputs[k].name for k in sorted(sig.outputs)]
        nodes = sorted({o.split(":")[0] for o in outs})
        gd = convert_variables_to_constants_from_session_graph(sess, g.as_graph_def(), nodes)
    w = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(gd, name=""), [])
    get = w.graph.get_tensor_by_name
    return w.prune(feeds=[get(i) for i in ins], fetches=[get(o) for o in outs])


def read(
    path: str,
    *,
    signature: str | None = None,
    inputs: str | Sequence[str] | None = None,
    outputs: str | Sequence[str] | None = None,
) -> Graph:
    """Read one signature of a SavedModel directory into the IR (graph outputs named by the signature keys)."""
    from convertmodel.readers.tensorflow.graphdef import convert_graphdef, tensor_key
    from convertmodel.readers.tensorflow.protos import pb2

    path = path.rstrip("/") or path
    sigs = signatures(path)
    sig = signature or DEFAULT_SIGNATURE
    if sig not in sigs:
        raise UsageError(f"{path}: no signature {sig!r}; the SavedModel has: {', '.join(sorted(sigs)) or 'none'}")
    data, ins, outs, version = _freeze(path, sig)
    gd = pb2().GraphDef()
    gd.ParseFromString(data)
    # The frozen outputs are Identity nodes in the order of the signature's sorted output keys.
    keys = sorted(sigs[sig].outputs)
    rename = {}
    if outputs is None and len(keys) == len(outs):
        rename = {tensor_key(o): k for o, k in zip(outs, keys, strict=True)}
    meta = {"signature": sig, "tensorflow_version": version, "source_sha256": _digest(path)}
    return convert_graphdef(
        gd,
        path,
        inputs=inputs if inputs is not None else [tensor_key(i) for i in ins],
        outputs=outputs if outputs is not None else [tensor_key(o) for o in outs],
        source_format="savedmodel",
        metadata=meta,
        rename=rename,
    )
