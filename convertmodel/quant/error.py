"""Error measures between fp32 and int8 outputs: cosine, SQNR, top-1 agreement, per-layer comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from convertmodel.ir.graph import Graph


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (flattened, in float64); 1.0 when both are all zero."""
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(x @ y / (nx * ny))


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(|ref|^2 / |ref - approx|^2)``; inf if equal."""
    r = np.asarray(reference, np.float64).ravel()
    e = r - np.asarray(approx, np.float64).ravel()
    noise = float(e @ e)
    if noise == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(float(r @ r), 1e-300) / noise))


def top1_agreement(reference: np.ndarray, approx: np.ndarray) -> float:
    """Fraction of rows (last axis = classes) whose argmax agrees."""
    r = np.asarray(reference).reshape(-1, np.asarray(reference).shape[-1])
    a = np.asarray(approx).reshape(-1, np.asarray(approx).shape[-1])
    return float(np.mean(r.argmax(axis=1) == a.argmax(axis=1)))


def layer_errors(
    fp32: Graph, int8: Graph, feeds: Mapping[str, np.ndarray], backends: tuple[str, ...] = ("ref",)
) -> list[dict[str, Any]]:
    """Cosine and SQNR of every output the two graphs share (per node, in fp32 node order).

    Both graphs are run with the executor's node hook, so no intermediate is kept beyond its use
    except the ones compared. Quantized nodes keep their fp32 node's name (the quantize pass
    preserves names), and a fused ReLU's output keeps the ReLU's value name.
    """
    from convertmodel.runtime.executor import Executor

    got: dict[str, dict[str, np.ndarray]] = {"f": {}, "q": {}}

    def hook(key: str) -> Any:
        def fn(node: Any, outs: list[np.ndarray], dt: float) -> None:
            for name, val in zip(node.outputs, outs, strict=False):
                if name and isinstance(val, np.ndarray) and val.dtype.kind == "f":
                    got[key][name] = np.array(val, copy=True)

        return fn

    Executor(fp32, backends).run(feeds, hook=hook("f"))
    Executor(int8, backends).run(feeds, hook=hook("q"))
    rows = []
    for n in fp32.nodes:
        for o in n.outputs:
            if o in got["f"] and o in got["q"] and got["f"][o].shape == got["q"][o].shape:
                rows.append(
                    {
                        "node": n.name,
                        "op": n.op_type,
                        "value": o,
                        "cosine": cosine(got["f"][o], got["q"][o]),
                        "sqnr_db": sqnr_db(got["f"][o], got["q"][o]),
                    }
                )
    return rows
