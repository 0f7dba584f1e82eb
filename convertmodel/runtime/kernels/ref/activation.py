"""Reference kernels of elementwise activations."""

from __future__ import annotations

import numpy as np

from convertmodel.runtime.registry import KernelContext, kernel


@kernel("Relu")
def relu(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), x.dtype))


@kernel("LeakyRelu")
def leaky_relu(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, x * np.asarray(ctx.attrs["alpha"], x.dtype))
