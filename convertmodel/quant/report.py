"""Where the bytes of a quantized model go: ``size_breakdown(graph)`` for ``convertmodel inspect``.

Parts: int8 weights, fp32 biases of quantized ops, window parameters (``w_scale``, ``w_sum``:
8 bytes per output channel), the .q8 graph header (exact when the .q8 writer is importable, else
an estimate), 64-byte alignment padding, and fp32 tensors left unquantized -- each with the
reason its consumer stayed fp32 (from ``graph.metadata["quantization"]``).
"""

from __future__ import annotations

import json
from typing import Any

from convertmodel.ir.graph import Graph
from convertmodel.ir.schema import CM_DOMAIN

Q_OPS = ("QConv", "QGemm")
#: .q8 aligns every tensor to 64 bytes (docs/format.md).
ALIGN = 64


def quantization_info(graph: Graph) -> dict[str, Any]:
    """The decoded ``metadata["quantization"]`` (empty dict when absent or unreadable)."""
    raw = graph.metadata.get("quantization")
    if not raw:
        return {}
    try:
        info = json.loads(raw)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _header_bytes(graph: Graph) -> tuple[int, int | None, bool]:
    """(preamble + header bytes, padding bytes or None, exact?) of the .q8 file of ``graph``.

    Exact figures come from the .q8 writer's own header (docs/format.md: the data section starts
    at ``align64(preamble + header)`` and every tensor offset is 64-byte aligned).
    """
    try:
        from convertmodel.serialize.format import PREAMBLE_SIZE, align
        from convertmodel.serialize.writer import build_header, encode_header

        header, arrays = build_header(graph)
        head = PREAMBLE_SIZE + len(encode_header(header))
        padding = align(head) - head + int(header["data_size"]) - sum(int(a.nbytes) for a in arrays)
        return head, padding, True
    except Exception:  # the writer is absent or changed: fall back to an estimate
        nodes = [
            {
                "op": n.op_type,
                "domain": n.domain,
                "name": n.name,
                "inputs": list(n.inputs),
                "outputs": list(n.outputs),
                "attrs": {k: str(v) for k, v in n.attrs.items()},
            }
            for n in graph.nodes
        ]
        tensors = [
            {
                "name": k,
                "dtype": str(v.dtype),
                "shape": list(v.shape),
                "offset": 0,
                "nbytes": v.nbytes,
                "crc32": "00000000",
            }
            for k, v in graph.constants.items()
        ]
        body = json.dumps({"nodes": nodes, "tensors": tensors, "metadata": dict(graph.metadata)})
        return 64 + len(body), None, False


def _reason_for(graph: Graph, info: dict[str, Any], consumers: list[Any]) -> str:
    kept = info.get("kept", {})
    reasons = []
    for n in consumers:
        if n.name in kept:
            reasons.append(f"{n.op_type} {n.name!r}: {kept[n.name].get('reason', 'kept fp32')}")
        elif n.domain == CM_DOMAIN and n.op_type in Q_OPS:
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
    info = quantization_info(graph)
    role: dict[str, str] = {}
    for n in graph.nodes:
        if n.domain == CM_DOMAIN and n.op_type in Q_OPS:
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
        "graph header": 0,
        "alignment padding": 0,
    }
    kept_rows: list[dict[str, Any]] = []
    fp32_equiv = 0
    for name, arr in graph.constants.items():
        nbytes = int(arr.nbytes)
        parts["alignment padding"] += (-nbytes) % ALIGN
        r = role.get(name)
        if r is not None and all(c.domain == CM_DOMAIN and c.op_type in Q_OPS for c in consumers.get(name, [])):
            parts[r] += nbytes
            fp32_equiv += nbytes * 4 if r == "int8 weights" else (nbytes if r == "fp32 biases" else 0)
            continue
        parts["fp32 tensors kept"] += nbytes
        fp32_equiv += nbytes
        kept_rows.append(
            {
                "name": name,
                "bytes": nbytes,
                "dtype": str(arr.dtype),
                "shape": list(arr.shape),
                "reason": _reason_for(graph, info, consumers.get(name, [])),
            }
        )
    header, padding, exact = _header_bytes(graph)
    parts["graph header"] = header
    if padding is not None:
        parts["alignment padding"] = padding
    total = sum(parts.values())
    kept_rows.sort(key=lambda r: (-r["bytes"], r["name"]))
    return {
        "parts": parts,
        "fp32_kept": kept_rows,
        "total_bytes": total,
        "header_exact": exact,
        "fp32_weight_bytes": fp32_equiv,
        "ratio": fp32_equiv / total if total else 0.0,
    }
