"""Structure-aware .q8 cases: preamble and header bytes, header JSON edited with the CRC recomputed
(so the reader's semantic checks are reached, not just the CRC), tensor bytes rewritten with CRCs fixed."""

from __future__ import annotations

import copy
import json
import os
import random
import struct
import zlib
from typing import Any

import numpy as np

from tests.fuzz.common import Case, mutate_bytes, pick_float, pick_int, write

_BASES: dict[str, bytes] = {}


def warm_up(work: str) -> None:
    """Build the base files once per worker: LeNet-5 as fp32 and int8 .q8, the tiny v1 fixture."""
    import convertmodel
    from tests.fuzz.common import FIXTURES

    m = convertmodel.load(os.path.join(FIXTURES, "fmnist", "lenet5.onnx"))
    for name, model in (("fp32", m), ("int8", m.quantize())):
        p = os.path.join(work, f"base-{name}.q8")
        model.save(p)
        with open(p, "rb") as f:
            _BASES[name] = f.read()
    with open(os.path.join(FIXTURES, "q8", "tiny_conv_v1.q8"), "rb") as f:
        _BASES["tiny"] = f.read()


def split(data: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """(preamble, header object, data section) of a well-formed .q8."""
    n = struct.unpack("<Q", data[16:24])[0]
    start = (24 + n + 63) // 64 * 64
    return data[:24], json.loads(data[24 : 24 + n]), data[start:]


def assemble(header: dict[str, Any] | bytes, body: bytes, major: int = 1, minor: int = 0) -> bytes:
    from convertmodel.serialize.format import pack_preamble

    raw = header if isinstance(header, bytes) else json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    pad = b"\0" * ((-(24 + len(raw))) % 64)
    return pack_preamble(raw, major, minor) + raw + pad + body


_ODD_VALUES: tuple[Any, ...] = (None, True, "", "x", [], {}, "nan", "inf", [0], [-1], [2**40, 2**40], "\udcff")


def _odd(rng: random.Random, old: Any) -> Any:
    return copy.deepcopy(_odd_shared(rng, old))  # never share a list/dict between two places (no cycles)


def _odd_shared(rng: random.Random, old: Any) -> Any:
    r = rng.random()
    if isinstance(old, bool) or r < 0.2:
        return rng.choice(_ODD_VALUES)
    if isinstance(old, int):
        return pick_int(rng) if r < 0.8 else old + rng.choice((-1, 1, 64, -64))
    if isinstance(old, float):
        return pick_float(rng)
    if isinstance(old, str):
        return rng.choice(("", old + "_", "Conv", "QConv", "QGemm", "float64", "int8", "bool", "N", "0" * 9, "../x"))
    if isinstance(old, list):
        if old and r < 0.5:
            return old[: rng.randrange(len(old))]
        return [*old, rng.choice(old) if old else 0] if r < 0.75 else [pick_int(rng) for _ in range(rng.randint(0, 6))]
    return rng.choice(_ODD_VALUES)


def _slots(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _slots(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _slots(v, (*path, i))
    return out


def _edit(obj: Any, path: tuple[Any, ...], rng: random.Random) -> Any:
    if not path:
        return _odd(rng, obj)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if isinstance(parent, dict) and rng.random() < 0.15:
        del parent[last]
    else:
        parent[last] = _odd(rng, parent[last])
    return obj


def _edit_tensor(rng: random.Random, header: dict[str, Any], body: bytes) -> bytes:
    tensors = header.get("tensors") or []
    if not tensors:
        return body
    t = rng.choice(tensors)
    dt = np.dtype(t["dtype"]).newbyteorder("<")
    n = t["nbytes"] // dt.itemsize
    kind = rng.choice(("special", "random", "zero", "extreme"))
    if dt.kind == "f":
        vals = {
            "special": rng.choice((np.nan, np.inf, -np.inf, 0.0, 1e-45)),
            "zero": 0.0,
            "extreme": rng.choice((3.4e38, -3.4e38, 1e-38)),
        }
        arr = (
            np.random.default_rng(rng.randrange(2**32)).standard_normal(n) * 10.0 ** rng.randint(-3, 6)
            if kind == "random"
            else np.full(n, vals[kind])
        )
    else:
        info = np.iinfo(dt)
        arr = np.random.default_rng(rng.randrange(2**32)).integers(info.min, info.max, n, endpoint=True)
        if kind in ("special", "extreme"):
            arr[:] = rng.choice((info.min, info.max, 0, -1 if info.min < 0 else 0))
    raw = arr.astype(dt).tobytes()
    b = bytearray(body)
    b[t["offset"] : t["offset"] + len(raw)] = raw
    t["crc32"] = f"{zlib.crc32(raw):08x}"
    return bytes(b)


def generate(rng: random.Random, d: str) -> Case:
    base = _BASES[rng.choice(("int8", "int8", "fp32", "tiny"))]
    r = rng.random()
    if r < 0.25:  # raw bytes anywhere (the CRC catches most of these in the header)
        data = mutate_bytes(rng, base)
    elif r < 0.35:  # preamble fields with the CRC recomputed: version, byte order, reserved, length
        _, header, body = split(base)
        raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if rng.random() < 0.5:
            data = assemble(raw, body, rng.choice((0, 1, 2, 65535)), rng.choice((0, 1, 9, 65535)))
        else:
            buf = bytearray(assemble(raw, body))
            buf[rng.choice((8, 9, 10, 11, 16, 17, 20, 23))] = rng.randrange(256)
            data = bytes(buf)
    elif r < 0.8:  # header JSON edits, CRC recomputed
        _, header, body = split(base)
        for _ in range(rng.choice((1, 1, 2, 3))):
            header = _edit(header, rng.choice(_slots(header)), rng)
        data = assemble(header if isinstance(header, dict) else json.dumps(header).encode(), body)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
    else:  # tensor data rewritten (NaN/Inf/extremes), CRCs fixed so verify_crc passes too
        _, header, body = split(base)
        for _ in range(rng.choice((1, 2))):
            body = _edit_tensor(rng, header, body)
        data = assemble(header, body)
    return Case("model", write(os.path.join(d, "m.q8"), data), d, quantize=False)
