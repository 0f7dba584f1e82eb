"""Shape helpers shared by the op schemas (and by kernels, which must agree with them)."""

from __future__ import annotations

from collections.abc import Sequence

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Dim, TensorType


def broadcast_shapes(*shapes: Sequence[Dim]) -> tuple[Dim, ...]:
    """Numpy/ONNX multidirectional broadcasting with symbolic dims."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for k in range(rank):
        dims = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]
        known = {d for d in dims if isinstance(d, int) and d != 1}
        if len(known) > 1:
            raise InvalidModelError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        if known:
            out.append(known.pop())
        elif any(isinstance(d, str) for d in dims):
            out.append(next(d for d in dims if isinstance(d, str)))
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def same_as(t: TensorType) -> list[TensorType]:
    return [TensorType(t.dtype, t.shape)]


def pool_out_dim(
    size: Dim, k: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1, ceil_mode: bool = False
) -> Dim:
    """Output size of a sliding window over one axis (Conv, pools).

    floor mode: ``(size + pads - eff) // stride + 1`` with ``eff = dilation * (k - 1) + 1``.
    ceil mode: ``ceil((size + pads - eff) / stride) + 1``, minus one when that last window would start
    at or after ``size + pad_begin``, i.e. inside the end padding. This is what onnxruntime's pool
    kernels and Caffe's pooling_layer.cpp compute (checked case by case in tests/ops/test_pool.py);
    ONNX's own shape inference omits the drop and so can report one more than onnxruntime produces.
    """
    eff = dilation * (k - 1) + 1
    if not isinstance(size, int):
        # A symbolic size survives only a window that maps every size to itself ("same" conv, stride 1).
        same = stride == 1 and pad_begin + pad_end == eff - 1
        return size if isinstance(size, str) and same else None
    span = size + pad_begin + pad_end - eff
    if span < 0:
        raise InvalidModelError(f"window {eff} is larger than the padded input {size + pad_begin + pad_end}")
    if ceil_mode:
        out = -(-span // stride) + 1
        # The last window must start inside the input or the begin padding (Caffe/onnxruntime rule).
        if (out - 1) * stride >= size + pad_begin:
            out -= 1
        return out
    return span // stride + 1


def same_out_dim(size: Dim, stride: int) -> Dim:
    """Output size under ``auto_pad`` SAME_UPPER / SAME_LOWER: ``ceil(size / stride)`` whatever the window (ONNX)."""
    if isinstance(size, int):
        return -(-size // stride)
    return size if isinstance(size, str) and stride == 1 else None


def conv_pads(
    attrs: dict, spatial: Sequence[Dim], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> tuple[int, ...]:
    """Explicit pads ``(b1, b2, ..., e1, e2, ...)`` resolving ONNX ``auto_pad``."""
    n = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    pads = tuple(attrs.get("pads") or (0,) * (2 * n))
    if auto in ("NOTSET", "VALID"):
        return pads if auto == "NOTSET" else (0,) * (2 * n)
    begin, end = [], []
    for i in range(n):
        s = spatial[i]
        if not isinstance(s, int):
            raise InvalidModelError(f"auto_pad={auto} needs static spatial dims, got {s!r}")
        out = -(-s // strides[i])
        total = max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - s)
        small, big = total // 2, total - total // 2
        if auto == "SAME_UPPER":
            begin.append(small)
            end.append(big)
        else:
            begin.append(big)
            end.append(small)
    return tuple(begin + end)
