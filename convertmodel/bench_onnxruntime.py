"""``bench --against onnxruntime``: the same model in onnxruntime fp32 and static int8, as extra sides of a bench.

The fp32 side is the source file itself when it is ONNX, else the imported graph written as ONNX (BatchNorm
and Caffe Scale folded first, so the graph is plain ONNX ops). The int8 side is onnxruntime's own static
quantization of that model: QDQ, u8 activations, s8 weights per channel (per tensor if its quantizer
refuses per channel), calibrated on random inputs shaped like the bench input (onnxruntime needs
calibration data; ours does not). Each side is a runner with ``run(feeds)`` so :func:`convertmodel.bench.run_bench`
alternates it with ours in the same loop. onnxruntime and onnx are imported only here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from convertmodel.errors import UnsupportedOpError, UsageError
from convertmodel.ir.graph import Graph

PEERS = ("onnxruntime",)


def ort_session(path: str, threads: int) -> Any:
    """An onnxruntime CPU session for an alternating benchmark: ``threads`` intra-op threads that do not
    spin-wait after a run. With spinning (onnxruntime's default) its idle pool keeps the other cores busy while
    the next runner in the round runs: at 2 threads on 2 cores that halved our speed and onnxruntime's own int8
    session's (measured with scripts/bench_peers.py, docs/performance.md)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class _OrtRunner:
    """An onnxruntime session with the executor's ``run(feeds)`` shape."""

    def __init__(self, path: str, threads: int) -> None:
        self.session = ort_session(path, threads)

    def run(self, feeds: dict[str, np.ndarray]) -> Any:
        return self.session.run(None, feeds)


def export_onnx(g: Graph, path: str) -> None:
    """Write a graph of standard ONNX ops as an ONNX model (constants as initializers); scripts/bench_peers.py
    uses it too."""
    import onnx
    from onnx import helper, numpy_helper

    foreign: dict[str, list[str]] = {}
    for n in g.nodes:
        if n.domain:
            foreign.setdefault(f"{n.domain}.{n.op_type}", []).append(n.name)
    if foreign:
        raise UnsupportedOpError(g.name, foreign, what="op for onnxruntime (not a standard ONNX op)")

    def vi(v: Any, shape: bool = True) -> Any:
        dims = [d if isinstance(d, int) else str(d) for d in v.type.shape] if shape and v.type.shape else None
        return helper.make_tensor_value_info(v.name, helper.np_dtype_to_tensor_dtype(np.dtype(v.type.dtype)), dims)

    nodes = []
    for n in g.nodes:
        attrs: dict[str, Any] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in n.attrs.items()}
        nodes.append(helper.make_node(n.op_type, list(n.inputs), list(n.outputs), name=n.name, **attrs))
    inits = [numpy_helper.from_array(np.asarray(a), name) for name, a in g.constants.items()]
    graph = helper.make_graph(nodes, g.name, [vi(v) for v in g.inputs], [vi(v, False) for v in g.outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def quantize_int8(
    src: str, dst: str, feeds: dict[str, np.ndarray], calib: int, check: Callable[[str], None] | None = None
) -> str:
    """onnxruntime static int8 (QDQ, u8 activations x s8 weights) of ``src`` into ``dst``, calibrated on ``calib``
    random inputs shaped like ``feeds``; per-channel, else per-tensor when per-channel fails (also when
    ``check(dst)`` raises: some failures only show when the model runs). Returns the mode used; RuntimeError
    with both modes' reasons when neither works. scripts/bench_peers.py uses it too."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rng = np.random.default_rng(1)
            self.left = calib

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.left == 0:
                return None
            self.left -= 1
            return {k: self.rng.standard_normal(v.shape).astype(v.dtype) for k, v in feeds.items()}

    errors = []
    for per_channel in (True, False):
        try:
            quantize_static(
                src,
                dst,
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            if check is not None:
                check(dst)
            return "QDQ u8s8 per-channel" if per_channel else "QDQ u8s8 per-tensor"
        except Exception as e:  # the quantizer's failures are many and untyped: report, try the next mode
            errors.append(str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
    raise RuntimeError("; ".join(errors))


def peer_sides(
    against: str, model: str, graph: Graph, feeds: dict[str, np.ndarray], tmp: str, calib: int = 8
) -> tuple[dict[str, Callable[[int], Any]], dict[str, Any]]:
    """Runner factories (threads -> runner) named ``ort_fp32`` / ``ort_int8``, and notes for the report."""
    if against not in PEERS:
        raise UsageError(f"--against {against}: unknown peer runtime; expected one of {', '.join(PEERS)}")
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("--against onnxruntime needs onnxruntime: pip install onnxruntime") from None
    if model.lower().endswith(".onnx") and os.path.isfile(model):
        fp32 = model
    else:
        fp32 = os.path.join(tmp, "fp32.onnx")
        from convertmodel.passes.fold_bn import fold_bn

        export_onnx(fold_bn(graph), fp32)
    notes: dict[str, Any] = {
        "runtime": "onnxruntime",
        "version": onnxruntime.__version__,
        "fp32_model": model if fp32 == model else "the imported graph as ONNX (BatchNorm / Scale folded)",
    }
    sides: dict[str, Callable[[int], Any]] = {"ort_fp32": lambda t: _OrtRunner(fp32, t)}
    int8 = os.path.join(tmp, "int8.onnx")
    try:
        notes["int8_scheme"] = quantize_int8(fp32, int8, feeds, calib) + f", {calib} random calibration inputs"
        sides["ort_int8"] = lambda t: _OrtRunner(int8, t)
    except Exception as e:
        notes["int8_error"] = f"onnxruntime static quantization failed: {e}"
    return sides, notes


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="convertmodel-bench-")
