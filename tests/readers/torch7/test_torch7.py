"""Torch7 .t7 reader: BigDL's saveTorch files against BigDL's outputs and the torchfile parser; ascii
files; hostile files (cycles, huge lengths, truncation, code, unknown classes)."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from typing import Any

import numpy as np
import pytest

import convertmodel
from convertmodel.errors import FormatError, InvalidModelError, UnsupportedOpError
from convertmodel.readers.torch7 import read
from convertmodel.readers.torch7.t7file import T7Tensor, TorchObject, parse
from tests.helpers import FIXTURES
from tests.readers.torch7.t7_util import dumps, module, seq, tensor

ROOT = os.path.join(FIXTURES, "bigdl")


def _t7_entries() -> list[Any]:
    with open(os.path.join(ROOT, "manifest.json")) as f:
        files = json.load(f)["files"]
    return [pytest.param(e, id=e["file"]) for e in files if e["format"] == "t7" and "unsupported" not in e]


@pytest.mark.parametrize("e", _t7_entries())
def test_bigdl_written_t7_matches_bigdl(e: dict[str, Any]) -> None:
    m = convertmodel.load(os.path.join(ROOT, e["file"]))
    x = np.load(os.path.join(ROOT, e["input"]))
    ref = np.load(os.path.join(ROOT, e["output"]))
    y = np.asarray(m.predict(x))
    assert y.size == ref.size
    err = float(np.abs(y.reshape(ref.shape) - ref).max())
    assert err <= 1e-5 * float(np.abs(ref).max())


def _walk(o: Any, seen: set[int]) -> list[TorchObject]:
    if not isinstance(o, TorchObject) or id(o) in seen:
        return []
    seen.add(id(o))
    out = [o]
    mods = o.fields.get("modules") or {}
    for k in sorted(mods):
        out += _walk(mods[k], seen)
    return out


@pytest.mark.parametrize("e", _t7_entries())
def test_parser_agrees_with_torchfile(e: dict[str, Any]) -> None:
    torchfile = pytest.importorskip("torchfile")
    path = os.path.join(ROOT, e["file"])
    ours = _walk(parse(path, open(path, "rb").read()), set())
    theirs: list[Any] = []

    def walk_tf(o: Any) -> None:
        theirs.append(o)
        mods = o._obj.get(b"modules") if hasattr(o, "_obj") else None
        for m in mods or []:
            walk_tf(m)

    walk_tf(torchfile.load(path))
    assert [o.cls for o in ours] == [t._typename.decode() for t in theirs]
    for a, t in zip(ours, theirs, strict=True):
        for key in ("weight", "bias", "running_mean", "running_var"):
            ta = a.fields.get(key)
            tb = t._obj.get(key.encode())
            if isinstance(ta, T7Tensor) and ta.storage is not None:
                arr = np.lib.stride_tricks.as_strided(
                    ta.storage[ta.offset - 1 :], ta.sizes, [s * 4 for s in ta.strides]
                )
                np.testing.assert_array_equal(arr, tb)


def _small_net() -> tuple[TorchObject, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2 * 9)).astype(np.float32)
    fc = rng.standard_normal((3, 4 * 3 * 3)).astype(np.float32)
    net = seq(
        module(
            "nn.SpatialConvolutionMM",
            nInputPlane=2,
            nOutputPlane=4,
            kW=3,
            kH=3,
            dW=1,
            dH=1,
            padW=1,
            padH=1,
            weight=tensor(w),
            bias=tensor(np.arange(4, dtype=np.float32)),
        ),
        module("nn.ReLU", threshold=0.0, val=0.0),
        module("nn.SpatialMaxPooling", kW=2, kH=2, dW=2, dH=2, padW=0, padH=0, ceil_mode=False),
        module("nn.View", size=np.asarray([36], np.int64), numInputDims=3),
        module("nn.Linear", weight=tensor(fc), bias=tensor(np.zeros(3, np.float32))),
        module("nn.SoftMax"),
    )
    return net, rng.standard_normal((2, 2, 6, 6)).astype(np.float32)


def test_ascii_and_binary_give_the_same_model(tmp_path: object) -> None:
    net, x = _small_net()
    d = str(tmp_path)
    pb, pa = os.path.join(d, "net.t7"), os.path.join(d, "net_ascii.t7")
    open(pb, "wb").write(dumps(net))
    open(pa, "wb").write(dumps(net, ascii=True))
    yb = convertmodel.load(pb).predict(x)
    ya = convertmodel.load(pa).predict(x)
    np.testing.assert_array_equal(yb, ya)
    assert yb.shape == (2, 3)
    np.testing.assert_allclose(yb.sum(axis=1), 1.0, rtol=1e-6)


def test_shared_storage_is_memoized(tmp_path: object) -> None:
    """Two tensors in one storage (the second at a 1-based offset) and a module used twice."""
    storage = np.arange(12, dtype=np.float32)
    w = T7Tensor("torch.FloatTensor", [2, 4], [4, 1], 1, storage)
    b = T7Tensor("torch.FloatTensor", [2], [1], 9, storage)
    relu = module("nn.ReLU", threshold=0.0, val=0.0)
    net = seq(module("nn.Linear", weight=w, bias=b), relu, relu)
    p = os.path.join(str(tmp_path), "shared.t7")
    open(p, "wb").write(dumps(net))
    top = parse(p, open(p, "rb").read())
    mods = top.fields["modules"]
    assert mods[2] is mods[3]
    assert mods[1].fields["weight"].storage is mods[1].fields["bias"].storage
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(convertmodel.load(p).predict(x), [[6 + 8, 22 + 9]])


def test_cycle_of_references(tmp_path: object) -> None:
    net = seq(module("nn.ReLU", threshold=0.0, val=0.0))
    net.fields["modules"][2] = net  # the Sequential contains itself
    p = os.path.join(str(tmp_path), "cycle.t7")
    open(p, "wb").write(dumps(net))
    with pytest.raises(InvalidModelError, match=r"cycle\.t7: module nn.Sequential contains itself"):
        read(p, input_shape=[1, 4])


def _hostile(tmp: object, name: str, data: bytes) -> str:
    p = os.path.join(str(tmp), name)
    open(p, "wb").write(data)
    return p


def test_huge_declared_string_length(tmp_path: object) -> None:
    data = struct.pack("<ii", 2, 0x7FFFFFFF) + b"abc"
    with pytest.raises(FormatError, match="declares 2147483647 bytes"):
        read(_hostile(tmp_path, "s.t7", data))


def test_huge_declared_storage_and_table_bounded_memory(tmp_path: object) -> None:
    net, _ = _small_net()
    data = bytearray(dumps(net))
    marker = b"torch.FloatStorage"
    i = data.index(marker) + len(marker)
    struct.pack_into("<q", data, i, 10**15)  # the first storage's element count
    p = _hostile(tmp_path, "big.t7", bytes(data))
    tracemalloc.start()
    with pytest.raises(FormatError, match="declares 1000000000000000 elements"):
        read(p)
    table = struct.pack("<iii", 3, 1, 2**30)
    with pytest.raises(FormatError, match="table declares"):
        read(_hostile(tmp_path, "t.t7", table))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def test_truncated_file(tmp_path: object) -> None:
    data = open(os.path.join(ROOT, "v2.4", "lenet.t7"), "rb").read()
    for cut in (3, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError, match=r"cut\.t7 at byte \d+"):
            read(_hostile(tmp_path, "cut.t7", data[:cut]))


def test_function_is_refused(tmp_path: object) -> None:
    with pytest.raises(FormatError, match="Lua function"):
        read(_hostile(tmp_path, "f.t7", struct.pack("<iii", 6, 1, 10) + b"\x1bLua" + b"\0" * 10))


def test_unknown_module_class(tmp_path: object) -> None:
    net, _ = _small_net()
    net.fields["modules"][2] = module("nn.FancyModule")
    p = _hostile(tmp_path, "fancy.t7", dumps(net))
    with pytest.raises(UnsupportedOpError, match=r"fancy\.t7: unsupported Torch7 module types: nn.FancyModule x1"):
        read(p)


def test_dropout_v1_scales_and_v2_is_identity(tmp_path: object) -> None:
    lin = module("nn.Linear", weight=tensor(np.eye(2, dtype=np.float32)), bias=tensor(np.zeros(2, np.float32)))
    x = np.asarray([[1.0, -2.0]], np.float32)
    for v2, want in ((None, x), (True, x), (False, x * 0.75)):
        drop = module("nn.Dropout", p=0.25) if v2 is None else module("nn.Dropout", p=0.25, v2=v2)
        p = os.path.join(str(tmp_path), f"d{v2}.t7")
        open(p, "wb").write(dumps(seq(lin, drop)))
        np.testing.assert_allclose(convertmodel.load(p).predict(x), want, rtol=1e-6)


def test_missing_field_is_typed(tmp_path: object) -> None:
    """Fuzz case bytes:torch7:1525: a conv without nInputPlane (the input-shape guess needs it)."""
    conv = module("nn.SpatialConvolutionMM", nOutputPlane=2, kW=1, kH=1, weight=tensor(np.ones((2, 1), np.float32)))
    p = _hostile(tmp_path, "noin.t7", dumps(seq(conv)))
    with pytest.raises(InvalidModelError, match=r"noin\.t7: module 'spatialconvolutionmm'.*'nInputPlane' is missing"):
        read(p)
