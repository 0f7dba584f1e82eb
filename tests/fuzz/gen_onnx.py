"""Structure-aware ONNX cases: hostile graphs built with ``onnx.helper`` (random op chains with edge-case
attributes and initializers), field edits of a real model, non-UTF-8 names, and raw protobuf bytes."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.fuzz.common import FIXTURES, Case, mutate_bytes, pick_float, pick_int, write

_BASES: dict[str, bytes] = {}


def warm_up(work: str) -> None:
    import onnx  # noqa: F401  (imported once per worker, not per case)

    for name in ("lenet5.onnx", "mobilenet.onnx"):
        with open(os.path.join(FIXTURES, "fmnist", name), "rb") as f:
            _BASES[name] = f.read()


def _ints(rng: random.Random, n: int, small: bool = True) -> list[int]:
    return [pick_int(rng, small) for _ in range(n)]


def _arr(rng: random.Random, shape: list[int], dtype: Any = np.float32) -> np.ndarray:
    shape = [max(0, min(d, 64)) for d in shape]
    g = np.random.default_rng(rng.randrange(2**32))
    if np.dtype(dtype).kind == "f":
        a = g.standard_normal(shape).astype(dtype)
        if a.size and rng.random() < 0.1:
            a.reshape(-1)[0] = rng.choice((np.nan, np.inf, 0.0))
        return a
    return g.integers(-3, 8, shape).astype(dtype)


Spec = tuple[dict[str, Any], list[Any]]


def _window(rng: random.Random, rank: int, pool: bool) -> dict[str, Any]:
    n = max(1, rank - 2) if rng.random() < 0.9 else rng.randint(1, 3)
    a: dict[str, Any] = {"kernel_shape": [rng.choice((1, 2, 3, 5, 0, -1, 65536)) for _ in range(n)]}
    if rng.random() < 0.7:
        a["strides"] = _ints(rng, n if rng.random() < 0.9 else n + 1)
    if rng.random() < 0.5:
        a["pads"] = _ints(rng, 2 * n if rng.random() < 0.9 else n)
    if rng.random() < 0.3:
        a["dilations"] = _ints(rng, n)
    if rng.random() < 0.2:
        a["auto_pad"] = rng.choice(("SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", "BOGUS"))
    if pool and rng.random() < 0.3:
        a["ceil_mode"] = rng.choice((0, 1, 2))
    return a


def _conv(rng: random.Random, rank: int) -> Spec:
    a = _window(rng, rank, False)
    k = [max(1, min(abs(v), 5)) for v in a["kernel_shape"]] if rng.random() < 0.8 else a["kernel_shape"]
    g = rng.choice((1, 1, 2, 3, 0, -1))
    a["group"] = g
    c_out, c_in = rng.choice((1, 2, 4, 0, 3)), rng.choice((1, 2, 3, 0))
    w = _arr(rng, [c_out, c_in, *k])
    return a, [w] + ([_arr(rng, [c_out])] if rng.random() < 0.5 else [])


def _pad(rng: random.Random, rank: int) -> Spec:
    pads = np.array([rng.choice((0, 1, 2, -1, -5, 100000, 2**31)) for _ in range(2 * rank)], np.int64)
    return {"mode": rng.choice(("constant", "reflect", "edge", "wrap"))}, [pads]


def _tile(rng: random.Random, rank: int) -> Spec:
    return {}, [np.array([rng.choice((1, 2, 0, -1, 100000, 2**40)) for _ in range(rank)], np.int64)]


def _resize(rng: random.Random, rank: int) -> Spec:
    attrs = {"mode": rng.choice(("nearest", "linear", "cubic", "bogus"))}
    if rng.random() < 0.5:
        scales = np.array(
            [rng.choice((1.0, 2.0, 0.0, -1.0, 1e5, float("nan"), float("inf"))) for _ in range(rank)], np.float32
        )
        return attrs, [None, scales]
    sizes = np.array([rng.choice((1, 2, 0, -1, 100000, 2**31)) for _ in range(rank)], np.int64)
    return attrs, [None, np.zeros(0, np.float32), sizes]


def _cos(rng: random.Random, rank: int) -> Spec:
    shape = [rng.choice((1, 2, 0, -1, 100000, 2**31, 2**40)) for _ in range(rng.randint(0, 4))]
    return {}, [np.array(shape, np.int64)]


def _reshape(rng: random.Random, rank: int) -> Spec:
    shape = [rng.choice((0, -1, 1, 2, 3, -2, 2**40)) for _ in range(rng.randint(0, 5))]
    return ({"allowzero": 1} if rng.random() < 0.2 else {}), [np.array(shape, np.int64)]


def _transpose(rng: random.Random, rank: int) -> Spec:
    perm = list(range(max(rank, 1)))
    rng.shuffle(perm)
    if rng.random() < 0.4:
        perm[rng.randrange(len(perm))] = rng.choice((0, rank, -1, 99))
    return {"perm": perm}, []


def _slice(rng: random.Random, rank: int) -> Spec:
    n = rng.randint(1, max(1, rank))
    vals = [np.array([pick_int(rng) for _ in range(n)], np.int64) for _ in range(2)]
    axes = np.array([rng.choice((0, 1, -1, rank, 2)) for _ in range(n)], np.int64)
    steps = np.array([rng.choice((1, 2, -1, 0)) for _ in range(n)], np.int64)
    return {}, [*vals, axes, steps][: rng.choice((2, 3, 4))]


def _gemm(rng: random.Random, rank: int) -> Spec:
    k, n = rng.choice((0, 1, 2, 5)), rng.choice((0, 1, 3))
    a = {"transB": rng.choice((0, 1)), "alpha": pick_float(rng)}
    return a, [_arr(rng, [k, n]), _arr(rng, [n])]


def _concat(rng: random.Random, rank: int) -> Spec:
    return {"axis": rng.choice((0, 1, -1, rank, -rank - 1))}, [_arr(rng, [rng.choice((1, 2, 0))] * max(rank, 1))]


def _reduce(rng: random.Random, rank: int) -> Spec:
    return {
        "axes": [rng.choice((0, 1, -1, rank, 1)) for _ in range(rng.randint(1, 3))],
        "keepdims": rng.choice((0, 1)),
    }, []


def _axis(name: str) -> Callable[[random.Random, int], Spec]:
    return lambda rng, rank: ({name: rng.choice((0, 1, -1, rank, -rank - 1, 2**31))}, [])


OPS: dict[str, Callable[[random.Random, int], Spec]] = {
    "Conv": _conv,
    "MaxPool": lambda rng, r: (_window(rng, r, True), []),
    "AveragePool": lambda rng, r: ({**_window(rng, r, True), "count_include_pad": rng.choice((0, 1))}, []),
    "Pad": _pad,
    "Tile": _tile,
    "Resize": _resize,
    "ConstantOfShape": _cos,
    "Expand": _cos,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Slice": _slice,
    "Gemm": _gemm,
    "Concat": _concat,
    "ReduceMean": _reduce,
    "ReduceSum": _reduce,
    "Softmax": _axis("axis"),
    "Flatten": _axis("axis"),
    "Gather": lambda rng, r: ({"axis": rng.choice((0, 1, -1, r))}, [np.array(_ints(rng, 2, False), np.int64)]),
    "Split": lambda rng, r: ({"axis": rng.choice((0, 1, -1, r))}, []),
    "Squeeze": lambda rng, r: ({"axes": _ints(rng, rng.randint(1, 2))}, []),
    "Unsqueeze": lambda rng, r: ({"axes": _ints(rng, rng.randint(1, 2))}, []),
    "BatchNormalization": lambda rng, r: (
        {"epsilon": pick_float(rng)},
        [_arr(rng, [c]) for c in [rng.choice((1, 2, 3, 0))] * 4],
    ),
    "LRN": lambda rng, r: ({"size": pick_int(rng, True), "alpha": pick_float(rng), "beta": pick_float(rng)}, []),
    "Relu": lambda rng, r: ({}, []),
    "Add": lambda rng, r: ({}, [_arr(rng, [rng.choice((1, 2, 3, 0))] * rng.randint(0, r + 1))]),
    "MatMul": lambda rng, r: ({}, [_arr(rng, [rng.choice((1, 2, 5, 0)), rng.choice((1, 3))])]),
    "GlobalAveragePool": lambda rng, r: ({}, []),
    "Range": lambda rng, r: ({}, [np.array(pick_float(rng), np.float32), np.array(pick_float(rng), np.float32)]),
    "DepthToSpace": lambda rng, r: ({"blocksize": pick_int(rng, True)}, []),
    "SpaceToDepth": lambda rng, r: ({"blocksize": pick_int(rng, True)}, []),
    "Upsample": lambda rng, r: ({}, [np.array([rng.choice((1.0, 2.0, 0.0, 1e6)) for _ in range(r)], np.float32)]),
    "Clip": lambda rng, r: ({}, [np.array(pick_float(rng), np.float32), np.array(pick_float(rng), np.float32)]),
    "Cast": lambda rng, r: ({"to": rng.choice((1, 6, 7, 9, 10, 11, 8, 0, 99))}, []),
    "Where": lambda rng, r: ({}, [_arr(rng, [2], np.float32), _arr(rng, [1], np.float32)]),
    "ArgMax": lambda rng, r: ({"axis": rng.choice((0, 1, -1, r)), "keepdims": rng.choice((0, 1))}, []),
}


def _hostile_graph(rng: random.Random) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rank = rng.choice((4, 4, 4, 2, 3, 1, 0, 5))
    dims: list[Any] = [rng.choice((1, 2, 3, 5, 8, 28, 0)) for _ in range(rank)]
    if dims and rng.random() < 0.3:
        dims[0] = "N"
    nodes, inits = [], []
    cur = "x"
    for k in range(rng.randint(1, 4)):
        op = rng.choice(list(OPS))
        attrs, extra = OPS[op](rng, rank)
        ins = [cur]
        if op == "Range":
            ins = []
        for j, arr in enumerate(extra):
            if arr is None:
                ins.append("")
                continue
            name = f"c{k}_{j}"
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
            ins.append(name)
        if op == "Range":
            inits.append(numpy_helper.from_array(np.array(1.0, np.float32), f"c{k}_d"))
            ins.append(f"c{k}_d")
        out = f"y{k}"
        nodes.append(helper.make_node(op, ins, [out], name=f"n{k}_{op}", **attrs))
        cur = out
    opset = rng.choice((7, 9, 11, 13, 13, 17))
    graph = helper.make_graph(
        nodes,
        "fuzz",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _field_edit(rng: random.Random, data: bytes) -> bytes:
    import onnx

    m = onnx.ModelProto.FromString(data)
    g = m.graph
    for _ in range(rng.choice((1, 1, 2))):
        r = rng.random()
        if r < 0.3 and g.node:
            n = rng.choice(g.node)
            if n.attribute:
                a = rng.choice(n.attribute)
                if a.ints:
                    a.ints[rng.randrange(len(a.ints))] = pick_int(rng)
                elif a.type == onnx.AttributeProto.INT:
                    a.i = pick_int(rng)
                elif a.type == onnx.AttributeProto.FLOAT:
                    a.f = pick_float(rng)
                else:
                    a.type = rng.randint(0, 14)
        elif r < 0.5 and g.initializer:
            t = rng.choice(g.initializer)
            if t.dims:
                t.dims[rng.randrange(len(t.dims))] = pick_int(rng)
        elif r < 0.6 and g.node:
            n = rng.choice(g.node)
            if n.input:
                n.input[rng.randrange(len(n.input))] = rng.choice(("", "nope", n.output[0] if n.output else "x"))
        elif r < 0.7 and g.node:
            del g.node[rng.randrange(len(g.node))]
        elif r < 0.8:
            for vi in g.input:
                for d in vi.type.tensor_type.shape.dim:
                    d.dim_value = rng.choice((0, 1, 2, 100000))
        elif r < 0.9 and g.initializer:
            t = rng.choice(g.initializer)
            t.data_type = rng.randint(0, 20)
        else:
            m.opset_import[0].version = rng.choice((1, 6, 7, 99, 0))
    return bytes(m.SerializeToString())


def _non_utf8_names(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for word in (b"kernel_shape", b"strides", b"pads", b"Conv", b"Relu", b"group", b"axis", b"perm"):
        i = b.find(word)
        if i >= 0 and rng.random() < 0.5:
            b[i + rng.randrange(len(word))] = rng.choice((0xFF, 0xC3, 0x80, 0xED))
    return bytes(b)


def generate(rng: random.Random, d: str) -> Case:
    r = rng.random()
    base = _BASES["lenet5.onnx" if rng.random() < 0.8 else "mobilenet.onnx"]
    if r < 0.45:
        data = bytes(_hostile_graph(rng).SerializeToString())
        if rng.random() < 0.1:
            data = _non_utf8_names(rng, data)
    elif r < 0.7:
        data = _field_edit(rng, base)
    elif r < 0.8:
        data = _non_utf8_names(rng, base)
    else:
        data = mutate_bytes(rng, base)
    return Case("model", write(os.path.join(d, "m.onnx"), data), d)
