"""im2col shared by the fp32 Conv kernel and the int8 reference kernels.

The patch layout is ``(N, *out_spatial, G, C/G, *kernel)`` flattened to
``(N * P, G, K)`` with ``P = prod(out_spatial)`` and ``K = C/G * prod(kernel)``: one row per
output position and group, exactly BigDL's per-patch window.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]  # begins then ends
    group: int

    @classmethod
    def from_attrs(cls, attrs: dict, x_shape: Sequence[int], w_shape: Sequence[int]) -> ConvGeometry:
        from convertmodel.ir.ops._util import conv_pads

        n = len(x_shape) - 2
        kernel = tuple(attrs.get("kernel_shape") or w_shape[2:])
        strides = tuple(attrs.get("strides") or (1,) * n)
        dil = tuple(attrs.get("dilations") or (1,) * n)
        pads = conv_pads(attrs, list(x_shape[2:]), kernel, strides, dil)
        return cls(kernel, strides, dil, tuple(pads), int(attrs.get("group", 1)))

    def out_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        n = len(self.kernel)
        return tuple(
            (spatial[i] + self.pads[i] + self.pads[n + i] - self.dilations[i] * (self.kernel[i] - 1) - 1)
            // self.strides[i]
            + 1
            for i in range(n)
        )


def im2col(x: np.ndarray, geo: ConvGeometry, pad_value: float = 0.0) -> tuple[np.ndarray, tuple[int, ...]]:
    """Patches of ``x`` (N, C, *spatial) as a (N*P, G, K) array, and the output spatial shape."""
    n_sp = len(geo.kernel)
    N, C = x.shape[:2]
    G = geo.group
    pad = [(0, 0), (0, 0)] + [(geo.pads[i], geo.pads[n_sp + i]) for i in range(n_sp)]
    if any(p != (0, 0) for p in pad):
        x = np.pad(x, pad, constant_values=pad_value)
    out_sp = geo.out_spatial([d - geo.pads[i] - geo.pads[n_sp + i] for i, d in enumerate(x.shape[2:])])
    # View (N, C, *out_sp, *kernel) without copying, then one copy into the patch layout.
    st = x.strides
    shape = (N, C, *out_sp, *geo.kernel)
    strides = (
        st[0],
        st[1],
        *[st[2 + i] * geo.strides[i] for i in range(n_sp)],
        *[st[2 + i] * geo.dilations[i] for i in range(n_sp)],
    )
    view = as_strided(x, shape=shape, strides=strides, writeable=False)
    view = view.reshape(N, G, C // G, *out_sp, *geo.kernel)
    # -> (N, *out_sp, G, C/G, *kernel)
    order = (0, *range(3, 3 + n_sp), 1, 2, *range(3 + n_sp, 3 + 2 * n_sp))
    cols = np.ascontiguousarray(view.transpose(order))
    P = int(np.prod(out_sp)) if out_sp else 1
    return cols.reshape(N * P, G, -1), out_sp


def im2col_kp(x: np.ndarray, geo: ConvGeometry) -> tuple[np.ndarray, tuple[int, ...]]:
    """Patches of ``x`` (N, C, *spatial) in Caffe's column layout (N, G, K, P), and the output spatial shape.

    K is ordered (C/G, *kernel) like the weight's rows, so ``W.reshape(G, M/G, K) @ cols`` gives
    (N, G, M/G, P), already NCHW. The fp32 Conv uses this layout: it is filled by one strided copy
    per kernel tap whose inner loop runs along contiguous output rows (much faster than :func:`im2col`'s
    transpose for large images), and a 1x1 stride-1 unpadded convolution needs no copy at all.
    """
    n_sp = len(geo.kernel)
    N, C = x.shape[:2]
    G = geo.group
    pads = geo.pads
    out_sp = geo.out_spatial(x.shape[2:])
    P = int(np.prod(out_sp)) if out_sp else 1
    K = C // G * int(np.prod(geo.kernel))
    if all(k == 1 for k in geo.kernel) and all(s == 1 for s in geo.strides) and not any(pads):
        return x.reshape(N, G, K, P), out_sp
    if any(pads):
        x = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[n_sp + i]) for i in range(n_sp)])
    cols = np.empty((N, C, *geo.kernel, *out_sp), dtype=x.dtype)
    for tap in itertools.product(*[range(k) for k in geo.kernel]):
        src = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, geo.dilations, out_sp, geo.strides, strict=True)
        )
        dst: tuple[slice | int, ...] = (slice(None), slice(None), *tap)
        cols[dst] = x[(slice(None), slice(None), *src)]
    return cols.reshape(N, G, K, P), out_sp
