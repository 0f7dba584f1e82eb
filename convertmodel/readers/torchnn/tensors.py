"""Torch-style tensors shared by the BigDL and Torch7 readers: reading the file, and a
``Tensor(storage, offset, sizes, strides)`` view, bounds-checked before any byte is trusted."""

from __future__ import annotations

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.fsutil import read_regular

#: Largest element count a tensor view may declare (BigDL's sizes are Java ints).
MAX_ELEMENTS = 1 << 31


def read_bytes(path: str) -> bytes:
    """A BigDL definition, ``.weights`` or Torch7 file, read whole (FIFOs and devices refused, never read)."""
    return read_regular(path, "a BigDL or Torch7 model file")


def view(
    path: str, where: str, data: np.ndarray, sizes: list[int], strides: list[int], offset: int, scalar: bool
) -> np.ndarray:
    """``Tensor(storage, offset, sizes, strides)`` as a new contiguous array, bounds-checked."""

    def fail(msg: str) -> InvalidModelError:
        return InvalidModelError(f"{path}: {where}: {msg}")

    n_store = int(data.size)
    off = offset - 1  # BigDL offsets are 1-based
    if scalar and not sizes:
        if not 0 <= off < n_store:
            raise fail(f"scalar offset {offset} is outside its storage of {n_store} elements")
        return np.asarray(data[off]).astype(np.float32) if data.dtype.kind == "f" else np.asarray(data[off])
    if any(s < 0 for s in sizes):
        raise fail(f"negative size in {sizes}")
    if not strides:
        strides = [1] * len(sizes)
        for i in range(len(sizes) - 2, -1, -1):
            strides[i] = strides[i + 1] * max(sizes[i + 1], 1)
    if len(strides) != len(sizes):
        raise fail(f"{len(sizes)} sizes {sizes} but {len(strides)} strides {strides}")
    if any(s < 0 for s in strides):
        raise fail(f"negative stride in {strides}")
    total = 1
    for s in sizes:
        total *= s
    if total > MAX_ELEMENTS:
        raise fail(f"size {sizes} declares {total} elements, more than BigDL can hold (2^31)")
    if total == 0:
        return np.zeros(sizes, np.float32 if data.dtype.kind == "f" else data.dtype)
    last = off + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True))
    if off < 0 or last >= n_store:
        raise fail(
            f"offset {offset} with size {sizes} and stride {strides} reaches element {last + 1} "
            f"of a storage of {n_store} elements"
        )
    item = data.itemsize
    arr = np.lib.stride_tricks.as_strided(
        data[off:], shape=tuple(sizes), strides=tuple(st * item for st in strides), writeable=False
    )
    out = np.ascontiguousarray(arr)
    return out.astype(np.float32) if out.dtype == np.float64 else out
