"""The native int8 wrappers' per-node call plans: they follow $CONVERTMODEL_ISA, new weights and input shapes
between calls on one executor, keep node-named errors, and never overwrite an output the caller holds."""

from __future__ import annotations

import os
import weakref
from typing import Any
from unittest import mock

import numpy as np
import pytest

import convertmodel
from convertmodel.errors import InvalidModelError
from convertmodel.runtime import Executor, native
from convertmodel.runtime.registry import KernelContext
from tests.native._util import needs_native, q_params, run_q_node

pytestmark = [pytest.mark.native, needs_native]


def native_ctxs(ex: Executor) -> list[KernelContext]:
    return [s.ctx for s in ex.steps if s.backend == "native" and s.node.op_type in ("QConv", "QGemm")]


def test_env_reader_follows_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.ISA_ENV, raising=False)
    assert native._env_isa() is None
    for value in ("avx2", "portable", "auto"):
        monkeypatch.setenv(native.ISA_ENV, value)
        raw = native._env_isa()
        assert raw is not None and os.fsdecode(raw) == os.environ.get(native.ISA_ENV) == value
    with mock.patch.dict(os.environ, {native.ISA_ENV: "avx2"}):
        assert os.fsdecode(native._env_isa()) == "avx2" and native.isa() == "avx2"
    assert os.fsdecode(native._env_isa()) == "auto"
    monkeypatch.delenv(native.ISA_ENV)
    assert native._env_isa() is None and native.isa() == native.available_isas()[0]


def test_cached_executor_follows_isa_changes(lenet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # One executor, the ISA switched between runs: every int8 node re-packs for the new ISA and gives what a
    # fresh executor under that ISA gives, bit for bit.
    model = convertmodel.load(lenet).quantize()
    x = np.random.default_rng(3).random((1, 1, 28, 28), dtype=np.float32)
    ex = Executor(model.graph, threads=1)
    ctxs = native_ctxs(ex)
    assert len(ctxs) == 5
    for name in [*native.available_isas(), native.available_isas()[-1], native.available_isas()[0]]:
        monkeypatch.setenv(native.ISA_ENV, name)
        got = ex.run({"image": x})
        assert [c.cache["native"][2].isa for c in ctxs] == [name] * len(ctxs)
        want = Executor(model.graph, threads=1).run({"image": x})
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{k} on {name}")


def test_bad_isa_on_a_cached_plan_names_the_node(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 30)).astype(np.float32)
    wq = rng.integers(-127, 128, (5, 30), dtype=np.int8)
    p = q_params(rng, 5, 30, bias=True)
    ex, feeds = one_node("QGemm", x, wq, p, input_levels=255)
    first = ex.run(feeds)["Y"].copy()
    monkeypatch.setenv(native.ISA_ENV, "sse9")
    with pytest.raises(InvalidModelError, match=r"^node \(QGemm\): CONVERTMODEL_ISA=sse9: unknown ISA"):
        ex.run(feeds)
    monkeypatch.delenv(native.ISA_ENV)
    np.testing.assert_array_equal(ex.run(feeds)["Y"], first)


def one_node(op: str, x: np.ndarray, wq: np.ndarray, p: dict[str, Any], **attrs: Any) -> tuple[Executor, Any]:
    from convertmodel.ir import GraphBuilder
    from convertmodel.ir.schema import CM_DOMAIN

    b = GraphBuilder("q")
    ins = [b.add_input("X", "float32", x.shape), b.add_const("Wq", wq)]
    ins += [b.add_const("w_scale", p["w_scale"]), b.add_const("w_sum", p["w_sum"]), b.add_const("B", p["B"])]
    (y,) = b.add_node(op, ins, ["Y"], name="node", domain=CM_DOMAIN, **attrs)
    b.mark_output(y)
    return Executor(b.build(), ("native",), threads=1), {"X": x}


def test_errors_after_a_cached_call_still_name_the_node(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 4, 7, 7)).astype(np.float32)
    wq = rng.integers(-127, 128, (6, 4, 3, 3), dtype=np.int8)
    p = q_params(rng, 6, 36, bias=True)
    ex, feeds = one_node("QConv", x, wq, p, kernel_shape=[3, 3], input_levels=255, activation="")
    ctx = native_ctxs(ex)[0]
    first = ex.run(feeds)["Y"].copy()
    args = (wq, p["w_scale"], p["w_sum"], p["B"])
    with pytest.raises(InvalidModelError, match=r"^node \(QConv\): qconv: X has 3 channels"):
        native.qconv(ctx, np.ones((1, 3, 7, 7), np.float32), *args)
    with pytest.raises(InvalidModelError, match=r"^node \(QConv\): qconv: the dilated kernel"):
        native.qconv(ctx, np.ones((1, 4, 2, 2), np.float32), *args)
    np.testing.assert_array_equal(ex.run(feeds)["Y"], first)  # the node's plan is intact

    xg = rng.standard_normal((3, 20)).astype(np.float32)
    wg = rng.integers(-127, 128, (4, 20), dtype=np.int8)
    pg = q_params(rng, 4, 20, bias=True)
    exg, feeds_g = one_node("QGemm", xg, wg, pg, input_levels=255, activation="Relu")
    exg.run(feeds_g)
    with pytest.raises(InvalidModelError, match=r"^node \(QGemm\): qgemm: X must be \(R, K\) with K = 20"):
        native.qgemm(native_ctxs(exg)[0], np.ones((3, 21), np.float32), wg, pg["w_scale"], pg["w_sum"], pg["B"])
    ctx.attrs["input_levels"] = 0  # a plan built from now on checks the attribute again
    with pytest.raises(InvalidModelError, match=r"^node \(QConv\): input_levels must be 1\.\.255, got 0"):
        native.qconv(ctx, np.ones((2, 4, 7, 7), np.float32), *args)


def test_plans_follow_new_weights_and_shapes(rng: np.random.Generator) -> None:
    # One context called with other weights and other input shapes: each result is the fresh node's.
    wq = rng.integers(-127, 128, (6, 24), dtype=np.int8)
    p = q_params(rng, 6, 24, bias=True)
    ctx = KernelContext(_node(), {"input_levels": 255, "activation": "", "arith": "contract"}, threads=1)
    for shape in [(2, 24), (3, 2, 24), (2, 24), (1, 24)]:
        for w in (wq, -wq, wq):
            x = rng.standard_normal(shape).astype(np.float32)
            got = native.qgemm(ctx, x, w, p["w_scale"], p["w_sum"], p["B"]).copy()
            want, _ = run_q_node("QGemm", x, w, p, ("native",), 1, input_levels=255, activation="")
            np.testing.assert_array_equal(got, want, err_msg=f"{shape}")
            x2 = np.asfortranarray(x)  # the same values in another layout
            np.testing.assert_array_equal(native.qgemm(ctx, x2, w, p["w_scale"], p["w_sum"], p["B"]), want)


def _node() -> Any:
    from convertmodel.ir.graph import Node
    from convertmodel.ir.schema import CM_DOMAIN

    return Node("QGemm", "node", ("X", "Wq", "w_scale", "w_sum", "B"), ("Y",), domain=CM_DOMAIN)


def test_kept_outputs_are_never_overwritten(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    wq = rng.integers(-127, 128, (5, 3, 3, 3), dtype=np.int8)
    p = q_params(rng, 5, 27, bias=True)
    ex, _ = one_node("QConv", x, wq, p, kernel_shape=[3, 3], input_levels=255, activation="Relu")
    kept = [ex.run({"X": x * s})["Y"] for s in (1.0, 2.0, -1.0)]
    copies = [ex.run({"X": x * s})["Y"].copy() for s in (1.0, 2.0, -1.0)]
    assert len({id(k) for k in kept}) == 3
    for k, c in zip(kept, copies, strict=True):
        np.testing.assert_array_equal(k, c)
    ctx = native_ctxs(ex)[0]
    args = (wq, p["w_scale"], p["w_sum"], p["B"])
    native.qconv(ctx, x, *args)  # dropped: its buffer is reused by the next call
    buf = weakref.ref(ctx.cache["native_out"])
    assert native.qconv(ctx, x, *args) is buf()
