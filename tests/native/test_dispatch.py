"""Run-time ISA dispatch of the native kernels: detection, the environment override, errors, registration."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from convertmodel.runtime import native
from tests.native._util import needs_native, q_params, run_q_node

pytestmark = [pytest.mark.native, needs_native]


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (Linux), the independent source of truth here."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    pytest.skip("/proc/cpuinfo not readable")
    return set()


def test_portable_always_available() -> None:
    assert "portable" in native.compiled_isas()
    assert native.available_isas()[-1] == "portable"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-only ISA paths")
def test_x86_build_has_every_path() -> None:
    assert native.compiled_isas() == ["avx512vnni", "avxvnni", "avx2", "portable"]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-only ISA paths")
def test_detection_agrees_with_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = cpu_flags()
    expect = {
        "avx512vnni": {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= flags,
        "avxvnni": {"avx2", "fma", "avx_vnni"} <= flags,
        "avx2": {"avx2", "fma"} <= flags,
    }
    avail = native.available_isas()
    for name, has in expect.items():
        assert (name in avail) == has, f"{name}: cpuinfo says {has}, dispatch says {name in avail}"
    monkeypatch.delenv(native.ISA_ENV, raising=False)
    best = next(n for n in ("avx512vnni", "avxvnni", "avx2", "portable") if n in avail)
    assert native.isa() == best


def test_env_override_selects_each_available_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in native.available_isas():
        monkeypatch.setenv(native.ISA_ENV, name)
        assert native.isa() == name
    monkeypatch.setenv(native.ISA_ENV, "auto")
    assert native.isa() == native.available_isas()[0]


def test_unknown_isa_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.ISA_ENV, "sse9")
    with pytest.raises(native.IsaError, match=r"CONVERTMODEL_ISA=sse9: unknown ISA; expected one of"):
        native.isa()


def test_missing_isa_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [n for n in native.compiled_isas() if n not in native.available_isas()]
    if not missing:
        pytest.skip("this CPU supports every compiled path")
    monkeypatch.setenv(native.ISA_ENV, missing[0])
    with pytest.raises(native.IsaError, match=rf"this CPU does not support {missing[0]}"):
        native.isa()
    with pytest.raises(native.IsaError, match="does not support"):
        native.accumulate(np.zeros((2, 3), np.uint8), np.zeros((4, 3), np.int8))


def test_kernels_follow_the_override(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    # The packed weights are cached per node and ISA: switching the ISA re-packs, results stay equal.
    x = rng.standard_normal((2, 50)).astype(np.float32)
    wq = rng.integers(-127, 128, (9, 50), dtype=np.int8)
    params = q_params(rng, 9, 50, bias=True)
    outs = {}
    for name in native.available_isas():
        monkeypatch.setenv(native.ISA_ENV, name)
        outs[name], counts = run_q_node("QGemm", x, wq, params, ("native", "ref"), 1, input_levels=255)
        assert counts == {"native": 1}
    first = next(iter(outs.values()))
    for name, y in outs.items():
        np.testing.assert_array_equal(y, first, err_msg=f"{name} differs from {next(iter(outs))}")


def test_non_2d_conv_falls_back_to_reference(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 2, 9)).astype(np.float32)
    wq = rng.integers(-127, 128, (3, 2, 3), dtype=np.int8)
    params = q_params(rng, 3, 6, bias=False)
    got, _ = run_q_node("QConv", x, wq, params, ("native",), 1, kernel_shape=[3])
    want, _ = run_q_node("QConv", x, wq, params, ("ref",), 1, kernel_shape=[3])
    np.testing.assert_array_equal(got, want)


def test_output_buffers_reused_only_when_released(rng: np.random.Generator) -> None:
    # The kernels write into last run's output buffer when nothing references it any more; a result
    # the caller still holds must never be overwritten by the next run.
    from convertmodel.ir import GraphBuilder
    from convertmodel.ir.schema import CM_DOMAIN
    from convertmodel.runtime import Executor

    wq = rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8)
    params = q_params(rng, 4, 27, bias=True)
    b = GraphBuilder("reuse")
    x = b.add_input("X", "float32", (1, 3, 6, 6))
    ins = [x, b.add_const("Wq", wq), b.add_const("s", params["w_scale"]), b.add_const("u", params["w_sum"])]
    (c1,) = b.add_node("QConv", [*ins, b.add_const("B", params["B"])], 1, name="c1", domain=CM_DOMAIN, pads=[1] * 4)
    (r,) = b.add_node("Relu", [c1], name="r")
    b.mark_output(r)
    (c2,) = b.add_node("QConv", ins, 1, name="c2", domain=CM_DOMAIN)
    b.mark_output(c2)
    g = b.build()
    ex = Executor(g, ("native", "ref"), threads=1)
    ref = Executor(g, ("ref",), threads=1)
    x1, x2 = (rng.standard_normal((1, 3, 6, 6)).astype(np.float32) for _ in range(2))
    first = ex.run({"X": x1})
    kept = {k: v.copy() for k, v in first.items()}
    second = ex.run({"X": x2})
    for k in first:
        np.testing.assert_array_equal(first[k], kept[k], err_msg=f"{k} of run 1 was overwritten by run 2")
        np.testing.assert_array_equal(second[k], ref.run({"X": x2})[k])
    del first, second
    third = ex.run({"X": x1})  # buffers released: reused, still correct
    for k in kept:
        np.testing.assert_array_equal(third[k], kept[k])
