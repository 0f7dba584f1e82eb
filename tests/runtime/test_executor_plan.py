"""The executor's compiled plan (constants bound, reshape-like nodes memoised, buffers reused) against its
per-node loop (the hook path), on the trained Fashion-MNIST fixtures in fp32 and int8."""

from __future__ import annotations

import numpy as np
import pytest

import convertmodel
from convertmodel.errors import DataError, InvalidModelError
from convertmodel.ir import GraphBuilder, check_graph
from convertmodel.runtime.executor import Executor
from tests.helpers import fixture_model

NETS = ["lenet5", "mobilenet", "vgg"]


@pytest.fixture(scope="module", params=NETS)
def models(request: pytest.FixtureRequest) -> tuple[str, convertmodel.Model, convertmodel.Model]:
    m = convertmodel.load(fixture_model(request.param))
    return request.param, m, m.quantize()


def _per_node(ex: Executor, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plain per-node loop: a hook makes run() take it (every node, nothing fused)."""
    return ex.run(feeds, hook=lambda node, outs, secs: None)


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_compiled_plan_equals_per_node_loop(models, kind: str) -> None:
    _name, m, q = models
    ex = Executor((m if kind == "fp32" else q).graph, threads=1)
    name = ex.graph.inputs[0].name
    rng = np.random.default_rng(7)
    held = []
    for batch in (1, 3, 1, 5):  # shapes change and come back: memoised reshapes and reused buffers
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        got = ex.run({name: x})
        ref = _per_node(ex, {name: x})
        assert got.keys() == ref.keys()
        for k in got:
            # fusion changes nothing in int8 (no fused nodes there); fp32 epilogues round like numpy's ops
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)
        held.append((x, {k: v.copy() for k, v in got.items()}, got))
    # outputs a caller holds are never overwritten by a later run (output buffers are only reused when free)
    for x, copy, got in held:
        for k in got:
            np.testing.assert_array_equal(got[k], copy[k])
        again = ex.run({name: x})
        for k in again:
            np.testing.assert_array_equal(again[k], copy[k])


def test_output_buffers_are_reused_when_free() -> None:
    """A run after the first takes its native outputs from earlier runs: it allocates (numpy, traced) a small
    part of what its nodes output, not fresh pages per node."""
    import tracemalloc

    m = convertmodel.load(fixture_model("mobilenet"))
    for g in (m.graph, m.quantize().graph):
        ex = Executor(g, threads=1)
        feeds = {g.inputs[0].name: np.random.default_rng(1).random((16, 1, 28, 28), dtype=np.float32)}
        sizes: list[int] = []
        ex.run(feeds, hook=lambda node, outs, secs, sizes=sizes: sizes.extend(o.nbytes for o in outs))
        ex.run(feeds)
        ex.run(feeds)
        tracemalloc.start()
        ex.run(feeds)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 0.1 * sum(sizes), (peak, sum(sizes))


def _reshape_graph() -> tuple[Executor, str]:
    b = GraphBuilder("reshape")
    x = b.add_input("x", "float32", ["N", 4])
    shape = b.add_const("shape", np.array([-1, 8], np.int64))
    (y,) = b.add_node("Reshape", [x, shape], 1, name="r")
    (z,) = b.add_node("Relu", [y], 1, name="relu")
    b.mark_output(z)
    g = b.build()
    check_graph(g)
    return Executor(g, threads=1), z


def test_memoised_reshape_still_checks_every_new_shape() -> None:
    ex, z = _reshape_graph()
    for n in (2, 4, 2, 6):
        x = np.arange(n * 4, dtype=np.float32).reshape(n, 4) - 5
        np.testing.assert_array_equal(ex.run({"x": x})[z], np.maximum(x.reshape(-1, 8), 0))
    with pytest.raises(InvalidModelError):
        ex.run({"x": np.zeros((3, 4), np.float32)})  # 12 values do not make rows of 8
    np.testing.assert_array_equal(ex.run({"x": np.ones((2, 4), np.float32)})[z], np.ones((1, 8), np.float32))


def test_feed_errors_on_the_compiled_path() -> None:
    ex, _ = _reshape_graph()
    with pytest.raises(DataError, match="missing input 'x'"):
        ex.run({})
    with pytest.raises(DataError, match="expected shape"):
        ex.run({"x": np.zeros((2, 5), np.float32)})
    y = ex.run({"x": [[1, 2, 3, 4], [5, 6, 7, 8]]})  # a list of ints: converted to the input's float32
    assert next(iter(y.values())).dtype == np.float32


def test_feed_errors_on_the_per_node_path() -> None:
    """The hook path checks its feeds with the same code as the compiled plan: the same errors, the same casts."""
    ex, z = _reshape_graph()

    def hook(node: object, outs: object, secs: float) -> None:
        return None

    with pytest.raises(DataError, match="missing input 'x'"):
        ex.run({}, hook=hook)
    with pytest.raises(DataError, match="expected shape"):
        ex.run({"x": np.zeros((2, 5), np.float32)}, hook=hook)
    y = ex.run({"x": [[1, 2, 3, 4], [5, 6, 7, 8]]}, hook=hook)
    assert y[z].dtype == np.float32
    np.testing.assert_array_equal(y[z], np.arange(1, 9, dtype=np.float32).reshape(1, 8))


def test_named_graph_outputs_take_the_compiled_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify asks for its graph output by name (``outputs=[name]``): that still runs the compiled plan, with the
    same values as the plain call; an intermediate name takes the per-node loop."""
    m = convertmodel.load(fixture_model("lenet5"))
    ex = Executor(m.graph, threads=1)
    name, out = ex.graph.inputs[0].name, ex.graph.outputs[0].name
    x = np.random.default_rng(3).random((2, 1, 28, 28), dtype=np.float32)
    want = ex.run({name: x})[out].copy()
    calls: list[int] = []
    compiled = ex._run_compiled

    def counted(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(1)
        return compiled(feeds)

    monkeypatch.setattr(ex, "_run_compiled", counted)
    got = ex.run({name: x}, outputs=[out])
    assert list(got) == [out] and calls == [1]
    np.testing.assert_array_equal(got[out], want)
    inner = ex.graph.nodes[0].outputs[0]
    assert inner in ex.run({name: x}, outputs=[inner, out]) and calls == [1]


def test_executors_in_two_threads_never_share_an_output_buffer() -> None:
    """The native fp32 output pool is process-wide: two executors running at once in two threads (their kernels
    release the GIL) must each get their own buffers, so every result equals the one-thread run."""
    import threading

    m = convertmodel.load(fixture_model("mobilenet"))
    name = m.graph.inputs[0].name
    rng = np.random.default_rng(5)
    xs = [rng.random((4, 1, 28, 28), dtype=np.float32) for _ in range(2)]
    serial = Executor(m.graph, threads=1)
    want = [{k: v.copy() for k, v in serial.run({name: x}).items()} for x in xs]
    bad: list[str] = []

    def loop(i: int) -> None:
        ex = Executor(m.graph, threads=1)
        for _ in range(40):
            got = ex.run({name: xs[i]})
            if any(not np.array_equal(got[k], want[i][k]) for k in got):
                bad.append(f"thread {i}")
                return

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
