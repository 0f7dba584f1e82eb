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
from tests.helpers import single_node_graph

__all__ = ["CM_DOMAIN", "infer_node", "run_and_infer", "run_onnx_reference"]


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
