"""Shared helpers of the native kernel tests: ISA parametrization and one-node graphs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.ir import GraphBuilder, check_graph
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.runtime import Executor, native

needs_native = pytest.mark.skipif(not native.available(), reason="native extension not built (pip install -e .)")


def isa_params() -> list[Any]:
    """One pytest param per ISA path; paths this build or CPU lacks are skipped with the reason."""
    out = []
    for name in native.ALL_ISAS:
        marks = [pytest.mark.native]
        if not native.available():
            marks.append(pytest.mark.skip(reason="native extension not built"))
        elif name not in native.compiled_isas():
            marks.append(
                pytest.mark.skip(reason=f"{name} kernels not compiled into this build (compiler lacks the flags)")
            )
        elif name not in native.available_isas():
            marks.append(pytest.mark.skip(reason=f"this CPU does not support {name} (only {native.available_isas()})"))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def q_params(rng: np.random.Generator, m: int, k_row: int, bias: bool) -> dict[str, Any]:
    """Random int8 weights with per-channel scale, sum and bias (kernels need no consistency between them)."""
    return {
        "w_scale": (rng.random(m, dtype=np.float32) * 0.02 + 1e-3).astype(np.float32),
        "w_sum": rng.standard_normal(m, dtype=np.float32),
        "B": rng.standard_normal(m, dtype=np.float32) if bias else None,
    }


def run_q_node(
    op_type: str,
    x: np.ndarray,
    wq: np.ndarray,
    params: dict[str, Any],
    backends: tuple[str, ...],
    threads: int = 1,
    **attrs: Any,
) -> tuple[np.ndarray, dict[str, int]]:
    """Run one QConv/QGemm node (weights as constants) through the executor; returns (Y, backend counts)."""
    b = GraphBuilder("q")
    xi = b.add_input("X", "float32", x.shape)
    names = [
        xi,
        b.add_const("Wq", wq),
        b.add_const("w_scale", params["w_scale"]),
        b.add_const("w_sum", params["w_sum"]),
    ]
    if params.get("B") is not None:
        names.append(b.add_const("B", params["B"]))
    (y,) = b.add_node(op_type, names, 1, name="node", domain=CM_DOMAIN, **attrs)
    b.mark_output(y)
    g = b.build()
    check_graph(g)
    ex = Executor(g, backends, threads=threads)
    return ex.run({"X": x})[y], ex.backend_counts()
