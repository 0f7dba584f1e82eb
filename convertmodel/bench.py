"""Benchmarks: fp32 against int8 side by side in one process, alternating iterations.

Alternating the two (fp32, int8, fp32, int8, ...) in one process exposes both to the same machine
state (other load, clock, caches), so their ratio is meaningful even on a shared CPU; medians and
percentiles are quoted, never a single run. numpy's BLAS threads (the fp32 path) are limited to
the same count as the native kernels' pool (runtime/threads.py)::

    from convertmodel import bench
    report = bench.bench("zoo:vgg16", batch=1, iterations=5)
    report["speedup"]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError, UsageError
from convertmodel.ir.graph import Dim, Graph

ZOO_PREFIX = "zoo:"
ZOO_DEPTHS = {"vgg16": 16, "vgg19": 19}
ZOO_MIN_IMAGE_SIZE = 32


def zoo_graph(spec: str, batch: int, image_size: int) -> Graph:
    """``zoo:vgg16`` / ``zoo:vgg19``: the exact VGG topologies with random weights (no weights ship)."""
    from convertmodel import zoo

    name = spec.split(":", 1)[1].lower()
    if name not in ZOO_DEPTHS:
        raise InvalidModelError(
            f"{spec}: unknown zoo model; available: {', '.join(ZOO_PREFIX + k for k in ZOO_DEPTHS)}"
        )
    if image_size < ZOO_MIN_IMAGE_SIZE:  # smaller maps pool to nothing: fc6 would have no inputs
        raise UsageError(
            f"{spec}: image size {image_size} is too small; VGG's five 2x2/2 max pools need at least "
            f"{ZOO_MIN_IMAGE_SIZE} (--image-size or the H, W of --input-shape)"
        )
    return zoo.vgg(ZOO_DEPTHS[name], image_size=image_size, batch=batch)


def zoo_image_size(shapes: Mapping[str, Sequence[Dim]] | None, default: int = 224) -> int:
    """The image size of a ``zoo:`` model: that of a 4-D ``--input-shape`` (1,3,32,32: a small VGG), else ``default``."""
    dims = tuple(next(iter(shapes.values()))) if shapes and len(shapes) == 1 else ()
    return dims[2] if len(dims) == 4 and isinstance(dims[2], int) else default


def param_bytes(g: Graph) -> int:
    """Bytes of the constants (weights) of a graph: what the model stores."""
    return int(sum(np.asarray(v).nbytes for v in g.constants.values()))


def make_input(g: Graph, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs shaped like the graph's, the leading symbolic dimension set to ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in g.inputs:
        shape = vi.type.shape
        if shape is None:
            raise InvalidModelError(f"{g.name}: input {vi.name!r} has no shape; bench needs a static input shape")
        dims = []
        for i, d in enumerate(shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)  # a fixed dimension (also a fixed batch) wins
            elif i == 0:
                dims.append(batch)
            else:
                raise InvalidModelError(f"{g.name}: input {vi.name!r} has a symbolic dimension {d!r} at axis {i}")
        dtype = np.dtype(vi.type.dtype)
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 10, dims).astype(dtype)
    return feeds


def percentiles(times: list[float], batch: int) -> dict[str, float]:
    t = np.asarray(times, dtype=np.float64)
    p50, p90, p99 = (float(np.percentile(t, q)) for q in (50, 90, 99))
    return {
        "iterations": len(times),
        "p50_ms": p50 * 1e3,
        "p90_ms": p90 * 1e3,
        "p99_ms": p99 * 1e3,
        "mean_ms": float(t.mean()) * 1e3,
        "img_per_s": batch / p50 if p50 > 0 else float("inf"),
    }


def _timed(execs: dict[str, Any], feeds: Any, iterations: int | None, seconds: float | None, say: Any) -> Any:
    times: dict[str, list[float]] = {k: [] for k in execs}
    t_start = time.perf_counter()
    i = 0
    while True:
        if iterations is not None and i >= iterations:
            break
        if iterations is None and i > 0 and time.perf_counter() - t_start >= (seconds or 0):
            break
        for k, ex in execs.items():
            say(f"iteration {i + 1}{'/' + str(iterations) if iterations else ''}: {k}")
            t0 = time.perf_counter()
            ex.run(feeds)
            times[k].append(time.perf_counter() - t0)
        i += 1
    return times


def _per_layer(execs: dict[str, Any], feeds: Any, reps: int, say: Any) -> dict[str, list[dict[str, Any]]]:
    layers: dict[str, dict[str, list[float]]] = {k: {} for k in execs}
    for r in range(reps):
        for k, ex in execs.items():
            say(f"per-layer {r + 1}/{reps}: {k}")
            rec = layers[k]

            def hook(node: Any, _outs: Any, dt: float, rec: dict[str, list[float]] = rec) -> None:
                rec.setdefault(f"{node.name}\t{node.op_type}", []).append(dt)

            ex.run(feeds, hook=hook)
    return {
        k: [
            {"node": key.split("\t")[0], "op": key.split("\t")[1], "ms": float(np.median(v)) * 1e3}
            for key, v in rec.items()
        ]
        for k, rec in layers.items()
    }


def run_bench(
    sides: dict[str, Graph],
    *,
    batch: int,
    threads: int,
    warmup: int,
    iterations: int | None,
    seconds: float | None,
    per_layer: bool = False,
    progress: Callable[[str], None] | None = None,
    peers: dict[str, Callable[[int], Any]] | None = None,
) -> dict[str, Any]:
    """Time each graph of ``sides`` (name -> graph) on the same random input, alternating iterations;
    ``peers`` (name -> factory(threads) of an object with ``run(feeds)``, e.g. onnxruntime) alternate too."""
    from convertmodel.runtime import Executor, native
    from convertmodel.runtime.registry import BACKENDS
    from convertmodel.runtime.threads import limit_threads

    say = progress or (lambda _msg: None)
    feeds = make_input(next(iter(sides.values())), batch)
    actual_batch = next(iter(feeds.values())).shape[0]
    with limit_threads(threads) as n_threads:
        execs = {k: Executor(g, BACKENDS, threads=n_threads) for k, g in sides.items()}
        ours = dict(execs)  # per-layer timing and backend counts are ours only
        execs.update({k: make(n_threads) for k, make in (peers or {}).items()})
        for i in range(warmup):
            for k, ex in execs.items():
                say(f"warmup {i + 1}/{warmup}: {k}")
                ex.run(feeds)
        times = _timed(execs, feeds, iterations, seconds, say)
        layers = _per_layer(ours, feeds, max(1, min(3, len(times[next(iter(sides))]))), say) if per_layer else None
    report: dict[str, Any] = {
        "batch": int(actual_batch),
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "threads": n_threads,
        "isa": native.isa() if native.available() else "none (native extension not built; numpy kernels)",
        "backends": {k: ex.backend_counts() for k, ex in ours.items()},
        "results": {k: percentiles(v, actual_batch) for k, v in times.items()},
        "param_bytes": {k: param_bytes(g) for k, g in sides.items()},
    }
    if "fp32" in sides and "int8" in sides:
        r = report["results"]
        report["speedup"] = r["fp32"]["p50_ms"] / r["int8"]["p50_ms"]
        report["size_ratio"] = report["param_bytes"]["fp32"] / max(1, report["param_bytes"]["int8"])
    r = report["results"]
    vs = {k: r[f"ort_{k}"]["p50_ms"] / r[k]["p50_ms"] for k in ("fp32", "int8") if k in r and f"ort_{k}" in r}
    if vs:  # ours / onnxruntime throughput, same precision (> 1: ours faster)
        report["vs_onnxruntime"] = vs
    if layers is not None:
        report["per_layer"] = layers
    return report


def bench_sides(
    model: str,
    *,
    reference: str | None = None,
    batch: int = 1,
    image_size: int = 224,
    input_shapes: Mapping[str, Sequence[Dim]] | None = None,
    reference_options: Mapping[str, Any] | None = None,
    **read_options: Any,
) -> dict[str, Graph]:
    """The graphs to compare for ``model``: a source model and its int8 copy (quantized here), a
    ``zoo:`` topology likewise, or an int8 .q8 alone (with its fp32 ``reference`` when given).
    ``input_shapes`` replace the declared input shapes of every side (``--input-shape``);
    ``read_options`` go to ``model``'s reader, ``reference_options`` to the reference's."""
    import os

    from convertmodel.passes.input_shapes import apply_input_shapes
    from convertmodel.passes.quantize import quantize_graph
    from convertmodel.quant.ops import is_quantized
    from convertmodel.readers import load_graph

    if model.startswith(ZOO_PREFIX):
        graph = apply_input_shapes(zoo_graph(model, batch, zoo_image_size(input_shapes, image_size)), input_shapes)
    else:
        if not os.path.exists(model):
            raise UsageError(f"{model}: no such file")
        graph = load_graph(model, input_shapes=input_shapes, **read_options)
    if not is_quantized(graph):
        return {"fp32": graph, "int8": quantize_graph(graph)}
    ref = load_graph(reference, input_shapes=input_shapes, **(reference_options or {})) if reference else None
    return ({"fp32": ref} if ref is not None else {}) | {"int8": graph}


def bench(
    model: str,
    *,
    reference: str | None = None,
    batch: int = 1,
    threads: int = 0,
    warmup: int = 2,
    iterations: int | None = None,
    seconds: float | None = None,
    per_layer: bool = False,
    image_size: int = 224,
    progress: Callable[[str], None] | None = None,
    against: str | None = None,
    reference_options: Mapping[str, Any] | None = None,
    **read_options: Any,
) -> dict[str, Any]:
    """Benchmark ``model`` (a file or ``zoo:vgg16``) in fp32 and int8; the report ``convertmodel bench`` prints.
    ``against="onnxruntime"`` adds onnxruntime fp32 and static int8 of the same model to the same run."""
    if iterations is not None and seconds is not None:
        raise UsageError("give iterations or seconds, not both")
    if iterations is None and seconds is None:
        iterations = 10
    if batch < 1 or warmup < 0 or (iterations is not None and iterations < 1) or threads < 0:
        raise UsageError("batch and iterations must be >= 1, warmup and threads >= 0")
    sides = bench_sides(
        model,
        reference=reference,
        batch=batch,
        image_size=image_size,
        reference_options=reference_options,
        **read_options,
    )
    import contextlib

    with contextlib.ExitStack() as stack:
        peers, notes = None, None
        if against is not None:
            from convertmodel import bench_onnxruntime as peer

            if "fp32" not in sides:
                raise UsageError("--against needs the fp32 model: give --reference SOURCE for a .q8")
            tmp = stack.enter_context(peer.temp_dir())
            feeds = make_input(sides["fp32"], batch)
            peers, notes = peer.peer_sides(against, reference or model, sides["fp32"], feeds, tmp)
        report = run_bench(
            sides,
            batch=batch,
            threads=threads,
            warmup=warmup,
            iterations=iterations,
            seconds=seconds,
            per_layer=per_layer,
            progress=progress,
            peers=peers,
        )
    if notes is not None:
        report["against"] = notes
    report["model"] = model
    if "fp32" not in sides:
        report["note"] = "int8 .q8 input: fp32 side skipped (give --reference SOURCE to compare)"
    return report
