"""``convertmodel bench``: fp32 against int8 side by side in one process, alternating iterations.

Alternating the two (fp32, int8, fp32, int8, ...) in one process exposes both to the same machine
state (other load, clock, caches), so their ratio is meaningful even on a shared CPU; medians and
percentiles are quoted, never a single run. numpy's BLAS threads (the fp32 path) are limited to
the same count as the native kernels' pool with threadpoolctl.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import click
import numpy as np

from convertmodel.cli.common import console, emit_json, human_bytes, load_model, state
from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Graph

#: Backends both sides run with: the int8 ops get the native kernels, everything else numpy.
BACKENDS = ("native", "ref")


def zoo_graph(spec: str, batch: int, image_size: int) -> Graph:
    """``zoo:vgg16`` / ``zoo:vgg19``: the exact VGG topologies with random weights (no weights ship)."""
    from convertmodel import zoo

    name = spec.split(":", 1)[1].lower()
    depths = {"vgg16": 16, "vgg19": 19}
    if name not in depths:
        raise InvalidModelError(f"{spec}: unknown zoo model; available: {', '.join('zoo:' + k for k in depths)}")
    return zoo.vgg(depths[name], image_size=image_size, batch=batch)


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
) -> dict[str, Any]:
    """Time each graph of ``sides`` (name -> graph) on the same random input, alternating iterations."""
    from threadpoolctl import threadpool_limits

    from convertmodel.runtime import Executor, native

    n_threads = threads or native.cpu_threads()
    say = progress or (lambda _msg: None)
    first = next(iter(sides.values()))
    feeds = make_input(first, batch)
    actual_batch = next(iter(feeds.values())).shape[0]
    execs = {k: Executor(g, BACKENDS, threads=n_threads) for k, g in sides.items()}
    times: dict[str, list[float]] = {k: [] for k in sides}
    layers: dict[str, dict[str, list[float]]] = {k: {} for k in sides}
    with threadpool_limits(limits=n_threads):
        for i in range(warmup):
            for k, ex in execs.items():
                say(f"warmup {i + 1}/{warmup}: {k}")
                ex.run(feeds)
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
        if per_layer:
            reps = max(1, min(3, len(times[next(iter(sides))])))
            for r in range(reps):
                for k, ex in execs.items():
                    say(f"per-layer {r + 1}/{reps}: {k}")
                    rec = layers[k]

                    def hook(node: Any, _outs: Any, dt: float, rec: dict[str, list[float]] = rec) -> None:
                        rec.setdefault(f"{node.name}\t{node.op_type}", []).append(dt)

                    ex.run(feeds, hook=hook)
    report: dict[str, Any] = {
        "batch": int(actual_batch),
        "threads": n_threads,
        "isa": native.isa() if native.available() else "none (native extension not built; numpy kernels)",
        "backends": {k: ex.backend_counts() for k, ex in execs.items()},
        "results": {k: percentiles(v, actual_batch) for k, v in times.items()},
        "param_bytes": {k: param_bytes(g) for k, g in sides.items()},
    }
    if "fp32" in sides and "int8" in sides:
        r = report["results"]
        report["speedup"] = r["fp32"]["p50_ms"] / r["int8"]["p50_ms"]
        report["size_ratio"] = report["param_bytes"]["fp32"] / max(1, report["param_bytes"]["int8"])
    if per_layer:
        report["per_layer"] = {
            k: [
                {"node": key.split("\t")[0], "op": key.split("\t")[1], "ms": float(np.median(v)) * 1e3}
                for key, v in rec.items()
            ]
            for k, rec in layers.items()
        }
    return report


def _print(report: dict[str, Any], model: str) -> None:
    from rich.table import Table

    c = console()
    t = Table(title=f"{model}: batch {report['batch']}, {report['threads']} threads, int8 ISA {report['isa']}")
    for col in ("", "img/s", "p50 ms", "p90 ms", "p99 ms", "iterations", "weights"):
        t.add_column(col, justify="right" if col else "left")
    for k, r in report["results"].items():
        t.add_row(
            k,
            f"{r['img_per_s']:.2f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            str(r["iterations"]),
            human_bytes(report["param_bytes"][k]),
        )
    c.print(t)
    if "speedup" in report:
        c.print(f"int8 speedup {report['speedup']:.2f}x (median latency); weights {report['size_ratio']:.2f}x smaller")
    for k, rows in report.get("per_layer", {}).items():
        lt = Table(title=f"per layer: {k} (median ms)")
        for col in ("node", "op", "ms", "%"):
            lt.add_column(col, justify="right" if col in ("ms", "%") else "left")
        total = sum(r["ms"] for r in rows) or 1.0
        for r in rows:
            lt.add_row(r["node"], r["op"], f"{r['ms']:.2f}", f"{100 * r['ms'] / total:.1f}")
        c.print(lt)


@click.command("bench")
@click.argument("model_path", metavar="MODEL")
@click.option(
    "--threads", default=0, show_default=True, help="Threads for the native kernels and BLAS (0 = all cores)."
)
@click.option("--batch", default=1, show_default=True, help="Batch size (the model's symbolic batch dimension).")
@click.option("--warmup", default=2, show_default=True, help="Untimed iterations of each side first.")
@click.option("--iterations", type=int, help="Timed iterations of each side (default 10, or use --seconds).")
@click.option("--seconds", type=float, help="Time budget for the timed iterations instead of --iterations.")
@click.option("--per-layer", is_flag=True, help="Also time every node of both sides (a few extra runs).")
@click.option(
    "--reference",
    "reference",
    type=click.Path(),
    help="fp32 source model to compare an int8 .q8 MODEL against.",
)
@click.option("--image-size", default=224, show_default=True, help="Input size of zoo: models.")
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside MODEL).")
@click.option("--json", "json_out", is_flag=True, help="Print the JSON report on stdout.")
def command(
    model_path: str,
    threads: int,
    batch: int,
    warmup: int,
    iterations: int | None,
    seconds: float | None,
    per_layer: bool,
    reference: str | None,
    image_size: int,
    prototxt: str | None,
    json_out: bool,
) -> None:
    """Benchmark MODEL in fp32 and int8 side by side (alternating runs, same input).

    MODEL is any readable source model (quantized on the fly, BigDL local-window scheme), a .q8
    file, or a zoo topology with random weights (zoo:vgg16, zoo:vgg19). An int8 .q8 file is
    benchmarked int8-only unless --reference gives its fp32 source. Reports throughput (img/s),
    latency p50/p90/p99, the int8 speedup, the weight size ratio, the ISA path and threads.
    """
    st = state()
    as_json = json_out or st.json
    if iterations is not None and seconds is not None:
        raise click.UsageError("give --iterations or --seconds, not both")
    if iterations is None and seconds is None:
        iterations = 10
    if batch < 1 or warmup < 0 or (iterations is not None and iterations < 1) or threads < 0:
        raise click.UsageError("--batch and --iterations must be >= 1, --warmup and --threads >= 0")
    from convertmodel.passes.quantize import quantize_graph

    if model_path.startswith("zoo:"):
        graph = zoo_graph(model_path, batch, image_size)
    else:
        if not os.path.exists(model_path):
            raise click.UsageError(f"{model_path}: no such file")
        graph = load_model(model_path, prototxt).graph
    quantized = any(n.domain == "convertmodel" and n.op_type.startswith("Q") for n in graph.nodes)
    sides: dict[str, Graph] = {}
    if quantized:
        if reference:
            sides["fp32"] = load_model(reference).graph
        sides["int8"] = graph
    else:
        sides["fp32"] = graph
        sides["int8"] = quantize_graph(graph)
    show = not (st.quiet or as_json)
    err = console(stderr=True)

    def say(msg: str) -> None:
        if show:
            err.print(f"[bench] {msg}", end="\r" if err.is_terminal else "\n", markup=False)

    report = run_bench(
        sides,
        batch=batch,
        threads=threads,
        warmup=warmup,
        iterations=iterations,
        seconds=seconds,
        per_layer=per_layer,
        progress=say,
    )
    report["model"] = model_path
    if quantized and not reference:
        report["note"] = "int8 .q8 input: fp32 side skipped (give --reference SOURCE to compare)"
    if as_json:
        emit_json(report)
    elif not st.quiet:
        _print(report, model_path)
        if "note" in report:
            console().print(report["note"])
