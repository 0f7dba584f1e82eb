"""The memory cap: how many bytes a model's *declared* sizes may make convertmodel allocate.

A few hundred bytes of ONNX can declare ``ConstantOfShape((100000, 100000, 10))``, a Tile by 2**40
or a Resize to 2**31 pixels. Shape inference, constant folding and the reference kernels check
every tensor they are about to create from a declared size against one cap, and raise
:class:`~convertmodel.errors.InvalidModelError` naming the node, the shape and the cap instead of
trying to allocate it (docs/robustness.md).

The cap is ``max(1 GiB, 8 x the size of the largest model file read in this process)``; the
environment variable ``CONVERTMODEL_MAX_ALLOC`` (bytes, or with a K/M/G/T suffix: ``16G``) or
:func:`set_max_alloc` overrides it. Constant folding also charges everything it creates for one
graph to a :class:`Budget` of the same size, so many medium tensors cannot add up either.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

from convertmodel.errors import InvalidModelError

__all__ = [
    "ENV_VAR",
    "Budget",
    "check_alloc",
    "check_growth",
    "max_alloc_bytes",
    "note_model_file",
    "set_max_alloc",
    "tensor_bytes",
]

#: Environment variable that overrides the cap (bytes; K/M/G/T suffixes, powers of 1024).
ENV_VAR = "CONVERTMODEL_MAX_ALLOC"
#: The cap never goes below this (a VGG-16 activation at batch 64 is ~0.8 GiB).
FLOOR_BYTES = 1 << 30
#: ... and grows to this multiple of the largest model file read.
MODEL_MULTIPLE = 8

#: Largest single dimension accepted (numpy indexes with int64).
MAX_DIM = 1 << 62

_override: int | None = None
_largest_model = 0
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str, what: str = ENV_VAR) -> int:
    """``"123"``, ``"64M"``, ``"16G"``, ``"1.5T"`` -> bytes (K/M/G/T are powers of 1024; a trailing B/iB is allowed)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if m is None:
        raise InvalidModelError(f"{what}={text!r}: expected a byte count such as 4294967296, 512M or 16G")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def set_max_alloc(nbytes: int | None) -> None:
    """Set the cap for this process (``None``: back to the default rule)."""
    global _override
    _override = None if nbytes is None else int(nbytes)


def note_model_file(path: str) -> None:
    """Let the default cap grow with a model file just read (8 x its size; directories: their files)."""
    global _largest_model
    try:
        if os.path.isdir(path):
            size = sum(
                os.path.getsize(os.path.join(d, f))
                for d, _, files in os.walk(path)
                for f in files
                if not f.startswith(".")
            )
        else:
            size = os.path.getsize(path)
    except OSError:
        return
    _largest_model = max(_largest_model, size)


def max_alloc_bytes() -> int:
    """The current cap in bytes."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR)
    if env:
        return parse_bytes(env)
    return max(FLOOR_BYTES, MODEL_MULTIPLE * _largest_model)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def tensor_bytes(shape: Iterable[int], itemsize: int, what: str) -> int:
    """Bytes of a tensor of ``shape`` (exact, Python ints: no overflow); negative dims are an error."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise InvalidModelError(f"{what}: negative dimension in shape {dims}")
    return math.prod(dims) * int(itemsize)


def _check_numpy_shape(dims: list[int], itemsize: int, what: str) -> None:
    """numpy refuses a shape whose nonzero dims multiply past 2**63 bytes even when another dim is 0."""
    if any(d > MAX_DIM for d in dims) or math.prod(d for d in dims if d) * max(int(itemsize), 1) >= 1 << 63:
        raise InvalidModelError(f"{what}: shape {dims} is too large for any array (a dimension or their product)")


def _too_big(what: str, shape: list[int] | None, nbytes: int, cap: int, extra: str = "") -> InvalidModelError:
    s = f"shape {shape} " if shape is not None else ""
    return InvalidModelError(
        f"{what}: {extra}{s}needs {_human(nbytes)}, above the memory cap of {_human(cap)} "
        f"(set {ENV_VAR}, e.g. {ENV_VAR}=64G, to allow it)"
    )


def check_alloc(shape: Iterable[int], itemsize: int, what: str) -> int:
    """Raise :class:`InvalidModelError` when a tensor of ``shape`` would exceed the cap; returns its bytes."""
    dims = [int(d) for d in shape]
    n = tensor_bytes(dims, itemsize, what)
    _check_numpy_shape(dims, itemsize, what)
    cap = max_alloc_bytes()
    if n > cap:
        raise _too_big(what, dims, n, cap)
    return n


#: A run-time op may grow its input this much beyond the cap (big batches through Pad/Tile/Expand).
GROWTH = 16


def check_growth(shape: Iterable[int], itemsize: int, input_bytes: int, what: str) -> int:
    """:func:`check_alloc` for an op whose output scales with run-time data (Pad, Tile, Expand): the
    output may exceed the cap when it is at most :data:`GROWTH` times the input it is made from."""
    dims = [int(d) for d in shape]
    n = tensor_bytes(dims, itemsize, what)
    _check_numpy_shape(dims, itemsize, what)
    if n > max(max_alloc_bytes(), GROWTH * int(input_bytes)):
        return check_alloc(dims, itemsize, what)
    return n


class Budget:
    """Bytes one pass may create in total (constant folding of one graph)."""

    def __init__(self, what: str, cap: int | None = None) -> None:
        self.what = what
        self.cap = max_alloc_bytes() if cap is None else cap
        self.used = 0

    def charge(self, nbytes: int, where: str) -> None:
        self.used += int(nbytes)
        if self.used > self.cap:
            raise _too_big(where, None, self.used, self.cap, extra=f"{self.what} so far ")
