"""Per-op tests: one module per op family, expected values from onnxruntime or numpy formulas.

Helpers shared by the modules live here: building a one-node graph with symbolic dims
(shape inference only) and checking that inference agrees with the kernel's real output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convertmodel.ir import CM_DOMAIN, GraphBuilder, TensorType
from convertmodel.ir.graph import Dim
from convertmodel.runtime import run_graph
from tests.helpers import assert_close, run_onnx_node, single_node_graph

__all__ = [
    "CM_DOMAIN",
    "check_against_ort",
    "check_both",
    "honest",
    "i64",
    "infer_node",
    "run_and_infer",
    "run_onnx_reference",
]


def infer_node(
    op_type: str,
    inputs: Mapping[str, tuple[Dim, ...] | np.ndarray | None],
    n_outputs: int = 1,
    domain: str = "",
    dtype: str = "float32",
    **attrs: Any,
) -> list[TensorType]:
    """Inferred output types of one node; a tuple is a graph input of that (maybe symbolic) shape,
    an array a constant, ``None`` an omitted optional input."""
    b = GraphBuilder("infer")
    names = []
    for name, val in inputs.items():
        if val is None:
            names.append("")
        elif isinstance(val, np.ndarray):
            names.append(b.add_const(name, val))
        else:
            names.append(b.add_input(name, dtype, val))
    outs = b.add_node(op_type, names, n_outputs, name="node", domain=domain, **attrs)
    for o in outs:
        b.mark_output(o)
    g = b.build()
    return [g.value_types[o] for o in outs]


def run_and_infer(
    op_type: str,
    inputs: Mapping[str, np.ndarray | None],
    const_inputs: Sequence[str] = (),
    n_outputs: int = 1,
    domain: str = "",
    **attrs: Any,
) -> tuple[list[np.ndarray], list[TensorType]]:
    """Run one node with the reference kernels; return outputs and the inferred output types."""
    g, feeds, outs = single_node_graph(op_type, inputs, const_inputs, n_outputs, domain, **attrs)
    res = run_graph(g, feeds, ("ref",))
    return [res[o] for o in outs], [g.value_types[o] for o in outs]


def run_onnx_reference(
    op_type: str, inputs: Mapping[str, np.ndarray | None], opset: int = 17, **attrs: Any
) -> list[np.ndarray]:
    """One node through ``onnx.reference``: the independent source for cases onnxruntime rejects
    (e.g. its Conv refuses dilations together with auto_pad SAME_*)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    names = [n if v is not None else "" for n, v in inputs.items()]
    feeds = {n: v for n, v in inputs.items() if v is not None}
    node = helper.make_node(op_type, names, ["y"], **attrs)
    vis = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()
    ]
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return list(ReferenceEvaluator(model).run(None, feeds))


def check_against_ort(
    op: str,
    inputs: Mapping[str, Any],
    consts: Sequence[str] = (),
    *,
    opset: int = 17,
    n_outputs: int = 1,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    **attrs: Any,
) -> list[np.ndarray]:
    """Run ``op`` in onnxruntime and in our runtime; outputs, dtypes and inferred shapes must agree."""
    expected = run_onnx_node(op, inputs, consts, n_outputs=n_outputs, opset=opset, **attrs)
    got, types = run_and_infer(op, inputs, consts, n_outputs=n_outputs, **attrs)
    for k, (g, e, t) in enumerate(zip(got, expected, types, strict=True)):
        assert t.shape == g.shape, f"{op} output {k}: inferred {t} but the kernel made {g.shape}"
        assert g.dtype == e.dtype, f"{op} output {k}: dtype {g.dtype}, onnxruntime gives {e.dtype}"
        assert t.dtype == str(g.dtype)
        assert_close(g, e, rtol=rtol, atol=atol, what=f"{op} output {k}")
    return got


def i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def honest(t: TensorType, actual: tuple[int, ...]) -> bool:
    """An inferred type is honest when every dim it claims matches the real output."""
    if t.shape is None:
        return True
    return len(t.shape) == len(actual) and all(
        not isinstance(d, int) or d == a for d, a in zip(t.shape, actual, strict=True)
    )


def check_both(
    op: str,
    inputs: Mapping[str, Any],
    shape_inputs: Sequence[str],
    *,
    opset: int = 18,
    n_outputs: int = 1,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    **attrs: Any,
) -> list[np.ndarray]:
    """Constant shape inputs: equal to onnxruntime with exact inferred shapes. Run-time shape inputs:
    the same outputs, and inference that never claims a wrong dim."""
    want = check_against_ort(op, inputs, shape_inputs, opset=opset, n_outputs=n_outputs, rtol=rtol, atol=atol, **attrs)
    got, types = run_and_infer(op, inputs, [], n_outputs=n_outputs, **attrs)
    for g, w, t in zip(got, want, types, strict=True):
        assert_close(g, w, rtol=0, atol=0, what=f"{op} with run-time shape inputs")
        assert honest(t, g.shape), f"{op}: inferred {t} for an actual {g.shape}"
    return want
