"""Reference kernels: Gemm, MatMul (numpy matmul, i.e. BLAS; transposes stay views)."""

from __future__ import annotations

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.runtime.registry import KernelContext, kernel


@kernel("Gemm")
def gemm(ctx: KernelContext, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """alpha * A' @ B' + beta * C in A's dtype."""
    at = a.T if ctx.attrs["transA"] else a
    bt = b.T if ctx.attrs["transB"] else b
    y = at @ bt  # BLAS takes the transposed views without a copy
    alpha, beta = ctx.attrs["alpha"], ctx.attrs["beta"]
    if alpha != 1.0:
        y *= y.dtype.type(alpha)
    if c is not None and beta != 0.0:
        c = c.astype(y.dtype, copy=False)
        if beta != 1.0:
            c = c * y.dtype.type(beta)
        y += c  # in place; C broadcasts unidirectionally to (M, N)
    return y


@kernel("MatMul")
def matmul(ctx: KernelContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy.matmul; two 1-D operands give a 0-d array (not a numpy scalar)."""
    try:
        return np.asarray(np.matmul(a, b))
    except ValueError as e:  # run-time shapes that shape inference could not check (symbolic dims)
        raise InvalidModelError(f"MatMul {ctx.node.name!r}: operands {list(a.shape)} and {list(b.shape)}: {e}") from e
