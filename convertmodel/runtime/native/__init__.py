"""Native (C++) int8 kernels for QConv / QGemm with run-time ISA dispatch.

The extension ``_native`` is built by setup.py when a C++17 compiler is present (it is optional:
without it this module registers nothing and the numpy reference kernels run). Each ISA path
(``avx512vnni``, ``avxvnni``, ``avx2``, ``portable``) is its own translation unit compiled with its
own flags; the best one the CPU supports is picked from cpuid at run time, and the environment
variable ``CONVERTMODEL_ISA`` forces one (asking for a path the CPU lacks raises :class:`IsaError`).

The kernels implement the int8 op contract (docs/quantization.md) with the integer accumulators
equal to ``q @ Wq.T`` bit for bit on every path; one fused pass per tile does im2col, per-window
min/max, quantization and packing; weights are packed once per executor into ``ctx.cache``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from convertmodel.errors import EXIT_USAGE, ConvertModelError, InvalidModelError
from convertmodel.ir.schema import CM_DOMAIN
from convertmodel.runtime.registry import KernelContext, kernel

#: Environment variable naming another build of the extension to load instead (the ASan/UBSan build of
#: scripts/build_sanitized.sh, run by .ci/run over tests/native).
LIB_ENV = "CONVERTMODEL_NATIVE_LIB"


def _load_extension() -> Any:
    path = os.environ.get(LIB_ENV)
    if path:
        import importlib.machinery
        import importlib.util

        name = "convertmodel.runtime.native._native"
        loader = importlib.machinery.ExtensionFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        if spec is None:
            raise ImportError(f"{LIB_ENV}={path}: not an extension module")
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        sys.modules[name] = mod
        return mod
    from convertmodel.runtime.native import _native  # type: ignore[attr-defined]

    return _native


try:
    _ext = _load_extension()
except ImportError:  # not built (no compiler, or a non-editable install without the extension)
    if os.environ.get(LIB_ENV):
        raise
    _ext = None

#: Environment variable that forces an ISA path (auto = the best the CPU supports).
ISA_ENV = "CONVERTMODEL_ISA"
#: All ISA paths, best first.
ALL_ISAS = ("avx512vnni", "avxvnni", "avx2", "portable")


class IsaError(ConvertModelError, ValueError):
    """An ISA path was requested that this build or this CPU does not have."""

    exit_code = EXIT_USAGE


def available() -> bool:
    """Whether the native extension is built and importable."""
    return _ext is not None


def _need() -> Any:
    if _ext is None:
        raise IsaError("convertmodel native extension is not built (reinstall with a C++17 compiler: pip install -e .)")
    return _ext


_isa_cache: dict[str, str] = {}


def isa(name: str | None = None) -> str:
    """The ISA path the kernels use: ``name``, else ``$CONVERTMODEL_ISA``, else the best the CPU supports."""
    ext = _need()
    key = name or "env:" + os.environ.get(ISA_ENV, "")
    hit = _isa_cache.get(key)  # resolved once per request (kernels ask on every call)
    if hit is not None:
        return hit
    try:
        got = _isa_cache[key] = str(ext.isa(name or ""))
    except ValueError as e:
        raise IsaError(str(e)) from None
    return got


def compiled_isas() -> list[str]:
    """ISA paths compiled into the extension (best first); empty when it is not built."""
    return list(_ext.compiled_isas()) if _ext is not None else []


def available_isas() -> list[str]:
    """Compiled ISA paths this CPU can execute (best first)."""
    return list(_ext.available_isas()) if _ext is not None else []


def accumulate(
    q: np.ndarray, wq: np.ndarray, isa_name: str | None = None, threads: int = 1, levels: int = 255
) -> np.ndarray:
    """Integer accumulators ``q (R, K) uint8 @ wq (M, K).T int8`` as int32 (R, M) through an ISA's GEMM.

    ``levels`` (q <= levels) picks the kernel as for a QConv/QGemm node: on AVX2 the u8 x s8 kernels
    where ``levels`` and max |wq| make them exact (see :func:`kernel_name`).
    """
    ext = _need()
    try:
        return np.asarray(
            ext.accumulate(np.asarray(q, np.uint8), np.asarray(wq, np.int8), isa_name or "", threads, float(levels))
        )
    except ValueError as e:
        raise IsaError(str(e)) from None


def kernel_name(wq: np.ndarray, levels: int = 255, isa_name: str | None = None) -> str:
    """The GEMM kernel the native path uses for weights ``wq`` (M, K) and inputs of ``levels`` levels.

    ``avx512vnni-vpdpbusd``, ``avxvnni-vpdpbusd``, ``portable-int16``; on AVX2 ``avx2-pair`` (two
    ``vpmaddubsw`` summed: 4 * levels * max|wq| <= 32767, e.g. 127 x 64), ``avx2-u8s8`` (2 * levels *
    max|wq| <= 32767: 127 x 127, 255 x 64) or ``avx2-int16`` (any levels).
    """
    ext = _need()
    w2 = np.ascontiguousarray(wq, dtype=np.int8).reshape(wq.shape[0], -1)
    try:
        return str(ext.pack_weights(w2, 1, isa_name or "", float(levels)).kernel)
    except ValueError as e:
        raise IsaError(str(e)) from None


def quantize_rows(x: np.ndarray, levels: int, isa_name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window-quantize each row of ``x`` (R, K) with an ISA's code: ``(q uint8, mn, r_x)``."""
    ext = _need()
    try:
        q, mn, rx = ext.quantize_rows(np.asarray(x, np.float32), float(levels), isa_name or "")
    except ValueError as e:
        raise IsaError(str(e)) from None
    return np.asarray(q), np.asarray(mn), np.asarray(rx)


def _packed(
    ctx: KernelContext, wq: np.ndarray, group: int, levels: int, params: tuple[np.ndarray | None, ...]
) -> tuple[Any, ...]:
    """Weights packed for the current ISA and the node's levels, cached per node (re-packed if either changes)."""
    name = isa()
    key = (name, id(wq), wq.shape, group, levels)
    hit = ctx.cache.get("native")
    if hit is None or hit[0] != key:
        w2 = np.ascontiguousarray(wq, dtype=np.int8).reshape(wq.shape[0], -1)
        packed = _ext.pack_weights(w2, group, name, float(levels))
        f32 = tuple(None if p is None else np.ascontiguousarray(p, dtype=np.float32).reshape(-1) for p in params)
        hit = ctx.cache["native"] = (key, packed, *f32)
    return hit[1:]


def _output(ctx: KernelContext, shape: tuple[int, ...]) -> np.ndarray:
    """The node's output buffer of the previous run when nothing else references it any more, else a new one.

    Large fresh arrays come from mmap, so the OS zeroes every page before the kernel overwrites it
    (about 15% of an int8 VGG16 run); reusing the buffer avoids that. A buffer the caller still
    holds (a graph output, or a view of it) has more references and is never reused.
    """
    cache = ctx.cache
    # References: the cache entry and getrefcount's argument; a third means someone kept it.
    if "native_out" in cache and cache["native_out"].shape == shape and sys.getrefcount(cache["native_out"]) == 2:
        return np.asarray(cache["native_out"])
    buf = cache["native_out"] = np.empty(shape, dtype=np.float32)
    return buf


def _invalid(ctx: KernelContext, e: Exception) -> InvalidModelError:
    """A native argument error as the one-line typed error of the node."""
    return InvalidModelError(f"{ctx.node.name} ({ctx.node.op_type}): {str(e).splitlines()[0]}")


def _levels(ctx: KernelContext) -> int:
    levels = ctx.attrs["input_levels"]
    if not isinstance(levels, (int, np.integer)) or not 1 <= int(levels) <= 255:
        raise InvalidModelError(f"{ctx.node.name} ({ctx.node.op_type}): input_levels must be 1..255, got {levels!r}")
    return int(levels)


def _ints(ctx: KernelContext, what: str, values: Any, n: int) -> list[int]:
    """Geometry values as Python ints within int64 (the extension range-checks them further)."""
    out = [int(v) for v in values]
    if len(out) != n or any(not -(2**62) < v < 2**62 for v in out):
        raise InvalidModelError(f"{ctx.node.name} ({ctx.node.op_type}): {what} {values!r} out of range")
    return out


def _ref(op_type: str) -> Any:
    from convertmodel.runtime.kernels.ref import quantized

    return quantized.qconv if op_type == "QConv" else quantized.qgemm


def _qconv_fuse(
    graph: Any, producer: Any, consumer: Any, post: list[tuple[Any, ...]], src: str
) -> tuple[Any, ...] | None:
    """The executor's fusion hook: a QConv's epilogue absorbs a residual ``Add`` of another tensor of its output's
    (static float32) type, then a ``Relu`` after it; the sums are the Add node's float32 ``y + r``."""
    t = graph.type_of(producer.outputs[0])
    if t is None or t.dtype != "float32" or not t.is_static:
        return None
    if consumer.op_type == "Relu" and len(post) == 1 and post[0][0] == "residual":
        return ("clip", 0.0, float("inf"))
    if consumer.op_type == "Add" and not post and len(consumer.inputs) == 2:
        other = consumer.inputs[1] if consumer.inputs[0] == src else consumer.inputs[0]
        if other and other != src and other not in graph.constants and graph.type_of(other) == t:
            return ("residual", other)
    return None


def _post_ref(ctx: KernelContext, y: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
    """A fused residual Add (and Relu) applied in numpy, after a reference kernel, as the graph's nodes do."""
    for op in ctx.cache.get("post", ()):
        y = y + residual if op[0] == "residual" else np.maximum(y, np.float32(0))
    return y


def declines(attrs: dict[str, Any]) -> bool:
    """Nodes the native int8 kernels leave to the numpy reference: any arithmetic but the contract."""
    return attrs.get("arith", "contract") != "contract"


if _ext is not None:

    @kernel("QConv", domain=CM_DOMAIN, backend="native")
    def qconv(
        ctx: KernelContext,
        x: np.ndarray,
        wq: np.ndarray,
        w_scale: np.ndarray,
        w_sum: np.ndarray,
        b: np.ndarray | None = None,
        residual: np.ndarray | None = None,
    ) -> np.ndarray:
        """QConv on the native path (2-D convolutions; other ranks use the numpy reference). ``residual``: the
        other input of a fused residual Add (the executor passes it when the epilogue holds one)."""
        if x.ndim != 4 or wq.ndim != 4 or declines(ctx.attrs):
            return _post_ref(ctx, _ref("QConv")(ctx, x, wq, w_scale, w_sum, b), residual)
        from convertmodel.runtime.kernels.ref.im2col import ConvGeometry

        try:
            # Everything but the input is fixed per node and input shape: resolved once, then one call.
            plan = ctx.cache.get("native_plan")
            if plan is None or plan[0] != x.shape[1:]:
                levels = _levels(ctx)
                geo = ConvGeometry.from_attrs(ctx.attrs, x.shape, wq.shape)
                kernel_shape = _ints(ctx, "kernel_shape", geo.kernel, 2)
                strides = _ints(ctx, "strides", geo.strides, 2)
                pads = _ints(ctx, "pads", geo.pads, 4)
                dilations = _ints(ctx, "dilations", geo.dilations, 2)
                out_sp = tuple(
                    (x.shape[2 + i] + pads[i] + pads[i + 2] - dilations[i] * (kernel_shape[i] - 1) - 1)
                    // max(strides[i], 1)
                    + 1
                    for i in range(2)
                )
                geom = (kernel_shape, strides, pads, dilations, float(levels), ctx.attrs["activation"] == "Relu")
                plan = ctx.cache["native_plan"] = (x.shape[1:], geo.group, levels, out_sp, geom)
            _, group, levels, out_sp, geom = plan
            packed, ws, wsum, bias = _packed(ctx, wq, group, levels, (w_scale, w_sum, b))
            out = _output(ctx, (x.shape[0], wq.shape[0], *out_sp)) if min(out_sp) > 0 else None
            if x.dtype != np.float32 or not x.flags.c_contiguous:
                x = np.ascontiguousarray(x, dtype=np.float32)
            if residual is None:
                return _ext.qconv(x, packed, ws, wsum, bias, *geom, ctx.threads, out)
            relu_after = len(ctx.cache.get("post", ())) > 1
            return _ext.qconv(x, packed, ws, wsum, bias, *geom, ctx.threads, out, residual, relu_after)
        except (ValueError, TypeError, ZeroDivisionError) as e:
            if isinstance(e, InvalidModelError):
                raise
            raise _invalid(ctx, e) from None

    @kernel("QGemm", domain=CM_DOMAIN, backend="native")
    def qgemm(
        ctx: KernelContext,
        x: np.ndarray,
        wq: np.ndarray,
        w_scale: np.ndarray,
        w_sum: np.ndarray,
        b: np.ndarray | None = None,
    ) -> np.ndarray:
        """QGemm on the native path: one window per row of X (..., K)."""
        if declines(ctx.attrs):
            return _ref("QGemm")(ctx, x, wq, w_scale, w_sum, b)
        levels = _levels(ctx)
        if x.ndim < 2 or wq.ndim != 2:
            raise InvalidModelError(
                f"{ctx.node.name} (QGemm): X must have rank >= 2 and Wq rank 2, got {list(x.shape)} and {list(wq.shape)}"
            )
        lead, k = x.shape[:-1], x.shape[-1]
        rows = int(np.prod(lead, dtype=np.int64))
        try:
            packed, ws, wsum, bias = _packed(ctx, wq, 1, levels, (w_scale, w_sum, b))
            y = _ext.qgemm(
                np.ascontiguousarray(x, dtype=np.float32).reshape(rows, k),
                packed,
                ws,
                wsum,
                bias,
                float(levels),
                ctx.attrs["activation"] == "Relu",
                ctx.threads,
                _output(ctx, (rows, wq.shape[0])),
            )
        except (ValueError, TypeError) as e:
            if isinstance(e, InvalidModelError):
                raise
            raise _invalid(ctx, e) from None
        return np.asarray(y).reshape(*lead, wq.shape[0])

    qconv.declines = qgemm.declines = declines  # type: ignore[attr-defined]
    qconv.fuse = _qconv_fuse  # type: ignore[attr-defined]


def cpu_threads() -> int:
    """Threads the runtime uses for ``threads=0``: the CPUs this process may run on (runtime/threads.py)."""
    from convertmodel.runtime.threads import cpu_count

    return cpu_count()


# The fp32 kernels register themselves on import (same extension, same thread pool).
from convertmodel.runtime.native import fp32 as fp32  # noqa: E402
