"""Reference kernels of activations and other unary ops.

Every kernel keeps the input dtype: Python floats from attributes are turned into scalars
of ``x.dtype`` first (``_s``), so float32 never silently becomes float64.
"""

from __future__ import annotations

import math

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.ops.activation import onnx_dtype_name, prelu_per_channel
from convertmodel.runtime.registry import KernelContext, kernel


def _s(value: float, x: np.ndarray) -> np.ndarray:
    """``value`` as a 0-d array of ``x``'s dtype (keeps float32 arithmetic float32)."""
    return np.asarray(value, dtype=x.dtype)


@kernel("Relu")
def relu(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), x.dtype))


@kernel("LeakyRelu")
def leaky_relu(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, x * _s(ctx.attrs["alpha"], x))


@kernel("PRelu")
def prelu(ctx: KernelContext, x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    slope = slope.astype(x.dtype, copy=False)
    if prelu_per_channel(x.shape, slope.shape):
        slope = slope.reshape(slope.shape[0], *([1] * (x.ndim - 2)))
    return np.where(x >= 0, x, x * slope)


@kernel("Clip")
def clip(ctx: KernelContext, x: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo).astype(x.dtype).reshape(()))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi).astype(x.dtype).reshape(()))
    return y if y is not x else x.copy()


@kernel("Sigmoid")
def sigmoid(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    # exp of -|x| never overflows; pick the matching form for each sign.
    e = np.exp(-np.abs(x))
    one = _s(1, x)
    return np.where(x >= 0, one / (one + e), e / (one + e))


@kernel("Tanh")
def tanh(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


@kernel("HardSigmoid")
def hard_sigmoid(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    y = x * _s(ctx.attrs["alpha"], x) + _s(ctx.attrs["beta"], x)
    return np.clip(y, _s(0, x), _s(1, x))


@kernel("HardSwish")
def hard_swish(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    # ONNX HardSwish = x * HardSigmoid(x) with alpha = 1/6, beta = 0.5.
    return x * np.clip(x * _s(1 / 6, x) + _s(0.5, x), _s(0, x), _s(1, x))


@kernel("Elu")
def elu(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, _s(ctx.attrs["alpha"], x) * np.expm1(np.minimum(x, _s(0, x))))


@kernel("Selu")
def selu(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    a, g = _s(ctx.attrs["alpha"], x), _s(ctx.attrs["gamma"], x)
    return g * np.where(x > 0, x, a * np.expm1(np.minimum(x, _s(0, x))))


@kernel("Softplus")
def softplus(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|.
    return np.maximum(x, _s(0, x)) + np.log1p(np.exp(-np.abs(x)))


@kernel("Softsign")
def softsign(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return x / (_s(1, x) + np.abs(x))


def _unary(op_type: str, fn: np.ufunc) -> None:
    def run(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
        return fn(x)

    run.__name__ = op_type.lower()
    kernel(op_type)(run)


for _op, _fn in {
    "Abs": np.abs,
    "Neg": np.negative,
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": np.sqrt,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Sign": np.sign,
}.items():
    _unary(_op, _fn)


@kernel("Reciprocal")
def reciprocal(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return _s(1, x) / x


_erf_exact = np.vectorize(math.erf, otypes=[np.float64])
# Abramowitz & Stegun 7.1.26: erf(x) = 1 - (a1 t + ... + a5 t^5) exp(-x^2), t = 1 / (1 + p x),
# absolute error <= 1.5e-7 for x >= 0 (a few float32 ulps where |erf| >= 0.5).
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def erf_approx(x: np.ndarray) -> np.ndarray:
    """Vectorized erf in float64, accurate to float32 precision.

    Small |x| uses the Maclaurin series (good relative accuracy near 0, where A&S 7.1.26 is
    only absolutely accurate); larger |x| uses A&S 7.1.26.
    """
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    t = 1.0 / (1.0 + _AS_P * ax)
    poly = t * (_AS_A[0] + t * (_AS_A[1] + t * (_AS_A[2] + t * (_AS_A[3] + t * _AS_A[4]))))
    out = np.sign(x) * (1.0 - poly * np.exp(-ax * ax))
    near0 = ax < 0.5
    if near0.any():
        # Series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)); 12 terms reach 1e-16 for |x| < 0.5.
        xs = x[near0]
        x2 = xs * xs
        term = xs.copy()
        acc = xs.copy()
        for n in range(1, 12):
            term *= -x2 / n
            acc += term / (2 * n + 1)
        out[near0] = _TWO_OVER_SQRT_PI * acc
    return out


@kernel("Erf")
def erf(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    # numpy has no erf. float64 gets the exact math.erf per element (slow, but float64 models are
    # rare); every other dtype gets the vectorized approximation, exact to its precision.
    if x.dtype == np.float64:
        return _erf_exact(x)
    return erf_approx(x).astype(x.dtype, copy=False)


@kernel("Identity")
def identity(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return x


@kernel("Dropout")
def dropout(
    ctx: KernelContext, x: np.ndarray, ratio: np.ndarray | None = None, training_mode: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if training_mode is not None and bool(np.asarray(training_mode)):
        raise InvalidModelError(f"Dropout {ctx.node.name!r}: training_mode=true is not supported (inference only)")
    return x, np.ones(x.shape, dtype=bool)


@kernel("Cast")
def cast(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return x.astype(onnx_dtype_name(ctx.attrs["to"]))
