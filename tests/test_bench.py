"""The benchmark library (convertmodel.bench) from Python, and the one thread rule it shares with every command."""

from __future__ import annotations

import pytest

from convertmodel import bench
from convertmodel.errors import UsageError
from convertmodel.runtime.executor import Executor
from convertmodel.runtime.threads import cpu_count, limit_threads, resolve_threads
from convertmodel.zoo import vgg


def test_bench_is_a_library_call() -> None:
    rep = bench.bench("zoo:vgg16", image_size=32, iterations=2, warmup=0, threads=1)
    assert set(rep["results"]) == {"fp32", "int8"} and rep["results"]["int8"]["iterations"] == 2
    assert rep["threads"] == 1 and rep["model"] == "zoo:vgg16"
    assert rep["speedup"] == rep["results"]["fp32"]["p50_ms"] / rep["results"]["int8"]["p50_ms"]
    assert rep["size_ratio"] > 3.5  # int8 weights plus per-channel scales: just under 4x
    with pytest.raises(UsageError, match="not both"):
        bench.bench("zoo:vgg16", iterations=1, seconds=1.0)


def test_make_input_and_percentiles() -> None:
    g = vgg(16, image_size=32, batch="N")
    feeds = bench.make_input(g, 3)
    assert feeds["data"].shape == (3, 3, 32, 32) and feeds["data"].dtype.name == "float32"
    p = bench.percentiles([0.010, 0.020, 0.030], batch=2)
    assert p["p50_ms"] == pytest.approx(20.0) and p["img_per_s"] == pytest.approx(100.0)


def test_zero_threads_is_every_allowed_cpu() -> None:
    import os

    assert cpu_count() == len(os.sched_getaffinity(0))
    assert resolve_threads(0) == cpu_count() and resolve_threads(3) == 3
    with pytest.raises(UsageError):
        resolve_threads(-1)
    # The executor hands kernels the resolved count, so the C++ side never sees 0.
    ex = Executor(vgg(16, image_size=32, batch=1), threads=0)
    assert ex.threads == cpu_count() and all(s.ctx.threads == cpu_count() for s in ex.steps)


def test_limit_threads_caps_blas() -> None:
    from threadpoolctl import threadpool_info

    with limit_threads(1) as n:
        assert n == 1
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)
