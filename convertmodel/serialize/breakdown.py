"""Where the bytes of a quantized model's .q8 file go: ``size_breakdown(graph)`` for ``convertmodel inspect``.

Parts: int8 weights, fp32 biases of quantized ops, window parameters (``w_scale``, ``w_sum``:
8 bytes per output channel), the .q8 preamble and header, 64-byte alignment padding, and fp32
tensors left unquantized -- each with the reason its consumer stayed fp32 (from the graph's
:class:`~convertmodel.quant.options.QuantizationInfo`). The header and padding are the exact
figures of the file the .q8 writer would write (:func:`plan_file`, from the writer's own header),
so the parts add up to the file size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convertmodel.ir.graph import Graph
from convertmodel.quant.ops import is_quantized_node
from convertmodel.quant.options import QuantizationInfo
from convertmodel.serialize.format import PREAMBLE_SIZE, align
from convertmodel.serialize.writer import build_header, encode_header


@dataclass(frozen=True)
class FilePlan:
    """The layout :func:`~convertmodel.serialize.writer.write_q8` gives a graph (docs/format.md)."""

    head_bytes: int  # preamble + JSON header
    data_size: int  # the data section: tensors at 64-byte aligned offsets
    tensor_bytes: int  # the tensors themselves

    @property
    def total_bytes(self) -> int:
        return align(self.head_bytes) + self.data_size

    @property
    def padding_bytes(self) -> int:
        """Zero bytes before the data section and between tensors."""
        return self.total_bytes - self.head_bytes - self.tensor_bytes


def plan_file(graph: Graph) -> FilePlan:
    """The sizes of the .q8 file of ``graph``, from the writer's own header (nothing is written)."""
    header, arrays = build_header(graph)
    head = PREAMBLE_SIZE + len(encode_header(header))
    return FilePlan(head, int(header["data_size"]), sum(int(a.nbytes) for a in arrays))


def _reason_for(kept: Any, consumers: list[Any]) -> str:
    reasons = []
    for n in consumers:
        if n.name in kept:
            reasons.append(f"{n.op_type} {n.name!r}: {kept[n.name].reason}")
        elif is_quantized_node(n):
            continue
        else:
            op = n.op_type if n.domain == "" else f"{n.domain}.{n.op_type}"
            reasons.append(f"{op} {n.name!r}: no int8 rule for {op}")
    return "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "") or "not used by a quantized op"


def size_breakdown(graph: Graph) -> dict[str, Any]:
    """Bytes per part of the .q8 file of ``graph`` and the fp32 tensors kept, with reasons.

    Returns ``{"parts": {part: bytes}, "fp32_kept": [{"name", "bytes", "reason"}],
    "total_bytes", "header_exact", "fp32_weight_bytes", "ratio"}`` where ``fp32_weight_bytes``
    is what the same constants take as fp32 (int8 weights x 4, no window parameters) and
    ``ratio`` is that over ``total_bytes``.
    """
    info = QuantizationInfo.of(graph.metadata)
    kept = info.kept if info is not None else {}
    role: dict[str, str] = {}
    for n in graph.nodes:
        if is_quantized_node(n):
            ins = list(n.inputs) + [""] * 5
            role[ins[1]] = "int8 weights"
            role[ins[2]] = role[ins[3]] = "window parameters"
            if ins[4]:
                role.setdefault(ins[4], "fp32 biases")
    consumers = graph.consumers()
    parts = {
        "int8 weights": 0,
        "fp32 biases": 0,
        "window parameters": 0,
        "fp32 tensors kept": 0,
        "integer constants (shapes, indices)": 0,
        "graph header": 0,
        "alignment padding": 0,
    }
    kept_rows: list[dict[str, Any]] = []
    fp32_equiv = 0
    for name, arr in graph.constants.items():
        nbytes = int(arr.nbytes)
        r = role.get(name)
        if r is not None and all(is_quantized_node(c) for c in consumers.get(name, [])):
            parts[r] += nbytes
            fp32_equiv += nbytes * 4 if r == "int8 weights" else (nbytes if r == "fp32 biases" else 0)
            continue
        fp32_equiv += nbytes
        if arr.dtype.kind != "f":  # int64 shape tensors and indices are not weights left unquantized
            parts["integer constants (shapes, indices)"] += nbytes
            continue
        parts["fp32 tensors kept"] += nbytes
        kept_rows.append(
            {
                "name": name,
                "bytes": nbytes,
                "dtype": str(arr.dtype),
                "shape": list(arr.shape),
                "reason": _reason_for(kept, consumers.get(name, [])),
            }
        )
    plan = plan_file(graph)
    parts["graph header"] = plan.head_bytes
    parts["alignment padding"] = plan.padding_bytes
    total = sum(parts.values())
    kept_rows.sort(key=lambda r: (-r["bytes"], r["name"]))
    return {
        "parts": parts,
        "fp32_kept": kept_rows,
        "total_bytes": total,
        "header_exact": True,  # always, since the figures come from the writer (kept for JSON readers)
        "fp32_weight_bytes": fp32_equiv,
        "ratio": fp32_equiv / total if total else 0.0,
    }
