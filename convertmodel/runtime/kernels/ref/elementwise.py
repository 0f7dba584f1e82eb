"""Reference kernels of broadcasting elementwise ops, logic, reductions and ArgMax/ArgMin."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.runtime.registry import KernelContext, kernel


def _binary(op_type: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    def run(ctx: KernelContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(fn(a, b))
        except ValueError as e:  # numpy's broadcasting error
            raise InvalidModelError(
                f"{op_type} {ctx.node.name!r}: shapes {list(a.shape)} and {list(b.shape)} do not broadcast"
            ) from e

    run.__name__ = op_type.lower()
    kernel(op_type)(run)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        # ONNX (and onnxruntime) integer Div truncates towards zero like C, numpy floors.
        q = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return (q + fix.astype(q.dtype)).astype(a.dtype, copy=False)
    return np.divide(a, b)


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.floating):
        return np.power(a, b.astype(a.dtype, copy=False))
    # Integer base: negative or fractional exponents need float math, the result keeps T.
    return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)


def _mod(fmod: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return np.fmod if fmod else np.mod  # type: ignore[return-value]


for _op, _fn in {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": _div,
    "Pow": _pow,
    "Equal": np.equal,
    "Greater": np.greater,
    "Less": np.less,
    "GreaterOrEqual": np.greater_equal,
    "LessOrEqual": np.less_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Xor": np.logical_xor,
}.items():
    _binary(_op, _fn)  # type: ignore[arg-type]


@kernel("Mod")
def mod(ctx: KernelContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _mod(bool(ctx.attrs["fmod"]))(a, b)


@kernel("Not")
def logical_not(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
    return np.logical_not(x)


@kernel("Where")
def where(ctx: KernelContext, cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    try:
        return np.where(cond.astype(bool, copy=False), x, y)
    except ValueError as e:  # numpy's broadcasting error: run-time shapes inference could not check
        raise InvalidModelError(
            f"Where {ctx.node.name!r}: shapes {list(cond.shape)}, {list(x.shape)}, {list(y.shape)} do not broadcast"
        ) from e


@kernel("Max")
def vmax(ctx: KernelContext, *xs: np.ndarray) -> np.ndarray:
    return np.asarray(reduce(np.maximum, xs))


@kernel("Min")
def vmin(ctx: KernelContext, *xs: np.ndarray) -> np.ndarray:
    return np.asarray(reduce(np.minimum, xs))


@kernel("Sum")
def vsum(ctx: KernelContext, *xs: np.ndarray) -> np.ndarray:
    return np.asarray(reduce(np.add, xs)) if len(xs) > 1 else xs[0].copy()


@kernel("Mean")
def vmean(ctx: KernelContext, *xs: np.ndarray) -> np.ndarray:
    total = np.asarray(reduce(np.add, xs)) if len(xs) > 1 else xs[0]
    return (total / np.asarray(len(xs), dtype=total.dtype)).astype(total.dtype, copy=False)


def reduce_axes(ctx: KernelContext, x: np.ndarray, axes: np.ndarray | None) -> tuple[int, ...]:
    """Axes to reduce per the opset-18 rules; ``()`` for noop_with_empty_axes.

    With ``()`` numpy reduces nothing but the elementwise part still applies (ReduceSumSquare
    squares, ReduceL2 gives |x|), as in onnxruntime and onnx.reference.
    """
    if axes is not None and axes.size:
        out = []
        for a in axes.reshape(-1).tolist():
            if not -x.ndim <= a < x.ndim:
                raise InvalidModelError(
                    f"{ctx.node.op_type} {ctx.node.name!r}: axis {a} out of range for rank {x.ndim}"
                )
            out.append(a % x.ndim if x.ndim else 0)
        return tuple(out)
    if ctx.attrs["noop_with_empty_axes"]:
        return ()
    return tuple(range(x.ndim))


def _reduction(op_type: str, fn: Callable[..., np.ndarray]) -> None:
    def run(ctx: KernelContext, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
        ax = reduce_axes(ctx, x, axes)
        return np.asarray(fn(x, axis=ax, keepdims=bool(ctx.attrs["keepdims"]))).astype(x.dtype, copy=False)

    run.__name__ = op_type.lower()
    kernel(op_type)(run)


def _l2(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


def _sum_square(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.sum(x * x, axis=axis, keepdims=keepdims)


for _op, _red in {
    "ReduceMean": np.mean,
    "ReduceMax": np.max,
    "ReduceMin": np.min,
    "ReduceSum": np.sum,
    "ReduceProd": np.prod,
    "ReduceL2": _l2,
    "ReduceSumSquare": _sum_square,
}.items():
    _reduction(_op, _red)  # type: ignore[arg-type]


def _arg(op_type: str, fn: Callable[..., np.ndarray]) -> None:
    def run(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
        axis = int(ctx.attrs["axis"])
        if not -x.ndim <= axis < x.ndim:
            raise InvalidModelError(f"{op_type} {ctx.node.name!r}: axis {axis} out of range for rank {x.ndim}")
        axis %= x.ndim
        if x.shape[axis] == 0:  # e.g. along an empty batch: there is no index to return
            raise InvalidModelError(f"{op_type} {ctx.node.name!r}: axis {axis} of the input {list(x.shape)} is empty")
        if ctx.attrs["select_last_index"]:
            # Ties resolve to the last index: search the reversed axis, map the index back.
            idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis)
        else:
            idx = fn(x, axis=axis)
        if ctx.attrs["keepdims"]:
            idx = np.expand_dims(idx, axis)
        return np.asarray(idx, dtype=np.int64)

    run.__name__ = op_type.lower()
    kernel(op_type)(run)


_arg("ArgMax", np.argmax)
_arg("ArgMin", np.argmin)
