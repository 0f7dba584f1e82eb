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

import math
import os
import sys
from collections.abc import Callable
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


def _env_reader() -> Callable[[], Any]:
    """A reader of ``$CONVERTMODEL_ISA`` as ``os.environ`` holds it (None when unset), cheap enough per call:
    ``os.environ.get`` costs 0.5 us (encoding, decoding), the mapping's own dict 40 ns; assignments, ``del``,
    ``monkeypatch.setenv`` and ``mock.patch.dict`` all update that dict. Without it: ``os.environ.get``."""
    environ = os.environ
    data, encode = getattr(environ, "_data", None), getattr(environ, "encodekey", None)
    if not isinstance(data, dict) or encode is None:
        return lambda: os.environ.get(ISA_ENV)
    key, get = encode(ISA_ENV), data.get

    def read() -> Any:
        return get(key) if os.environ is environ else os.environ.get(ISA_ENV)

    return read


#: ``_env_isa()``: the raw ``$CONVERTMODEL_ISA`` value (None when unset); equal values resolve equally.
_env_isa = _env_reader()
_isa_cache: dict[Any, str] = {}


def isa(name: str | None = None) -> str:
    """The ISA path the kernels use: ``name``, else ``$CONVERTMODEL_ISA``, else the best the CPU supports."""
    ext = _need()
    key = name or (None, _env_isa())  # the extension reads the environment itself for ""
    hit = _isa_cache.get(key)  # resolved once per request (kernels ask whenever a node's plan is built)
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


def _packed(ctx: KernelContext, name: str, wq: np.ndarray, group: int, levels: int) -> Any:
    """Weights packed for ISA ``name`` and the node's levels, cached per node (re-packed if either changes)."""
    hit = ctx.cache.get("native")
    if hit is None or hit[0] != (name, group, levels) or hit[1] is not wq:  # holds wq: its id stays unique
        w2 = np.ascontiguousarray(wq, dtype=np.int8).reshape(wq.shape[0], -1)
        hit = ctx.cache["native"] = ((name, group, levels), wq, _ext.pack_weights(w2, group, name, float(levels)))
    return hit[2]


def _f32(params: tuple[np.ndarray | None, ...]) -> tuple[np.ndarray | None, ...]:
    return tuple(None if p is None else np.ascontiguousarray(p, dtype=np.float32).reshape(-1) for p in params)


def _probe(cache: dict[str, Any]) -> int:
    out = cache.get("native_out")  # the kernels' own pattern: a local, then getrefcount
    return sys.getrefcount(out)


#: References to ``ctx.cache["native_out"]`` that the kernels see when nobody else holds the buffer (the cache
#: entry, their local, getrefcount's argument; measured, as the count differs between Python versions). More
#: means the caller kept it (a graph output, or a view of it): never reused. A reused buffer saves the OS's
#: zeroing of fresh mmap pages (about 15% of an int8 VGG16 run).
_ALONE = _probe({"native_out": np.empty(0, np.float32)})
_F32 = np.dtype(np.float32)
_NONE: dict[Any, Any] = {}
_MAX_PLANS = 16  # call plans kept per node (one per input shape); more distinct shapes start a new set


def _keep(ctx: KernelContext, shape: tuple[int, ...], plan: tuple[Any, ...]) -> tuple[Any, ...]:
    plans = ctx.cache.setdefault("native_plans", {})
    if len(plans) >= _MAX_PLANS:
        plans.clear()
    plans[shape] = plan
    return plan


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


def _conv_plan(
    ctx: KernelContext, x: np.ndarray, wq: np.ndarray, params: tuple[np.ndarray | None, ...], env: Any
) -> tuple[Any, ...] | None:
    """Everything a native QConv call needs but X, for X's shape and the ISA of ``env``: ``(env, wq, w_scale,
    w_sum, b, the native arguments before X, output shape)``; None when the numpy reference runs the node."""
    if x.ndim != 4 or wq.ndim != 4 or declines(ctx.attrs):
        return None
    from convertmodel.runtime.kernels.ref.im2col import ConvGeometry

    try:
        levels = _levels(ctx)
        geo = ConvGeometry.from_attrs(ctx.attrs, x.shape, wq.shape)
        kernel_shape = _ints(ctx, "kernel_shape", geo.kernel, 2)
        strides = _ints(ctx, "strides", geo.strides, 2)
        pads = _ints(ctx, "pads", geo.pads, 4)
        dilations = _ints(ctx, "dilations", geo.dilations, 2)
        out_sp = tuple(
            (x.shape[2 + i] + pads[i] + pads[i + 2] - dilations[i] * (kernel_shape[i] - 1) - 1) // max(strides[i], 1)
            + 1
            for i in range(2)
        )
        packed = _packed(ctx, isa(), wq, geo.group, levels)
    except (ValueError, TypeError, ZeroDivisionError) as e:
        if isinstance(e, InvalidModelError):
            raise
        raise _invalid(ctx, e) from None
    relu = ctx.attrs["activation"] == "Relu"
    args = (packed, *_f32(params), kernel_shape, strides, pads, dilations, float(levels), relu, ctx.threads)
    oshape = (x.shape[0], wq.shape[0], *out_sp) if min(out_sp) > 0 else None
    return _keep(ctx, x.shape, (env, wq, *params, args, oshape))


def _gemm_plan(
    ctx: KernelContext, x: np.ndarray, wq: np.ndarray, params: tuple[np.ndarray | None, ...], env: Any
) -> tuple[Any, ...] | None:
    """As :func:`_conv_plan`, then X's 2-D shape and Y's shape (None when X is 2-D already)."""
    if declines(ctx.attrs):
        return None
    levels = _levels(ctx)
    if x.ndim < 2 or wq.ndim != 2:
        raise InvalidModelError(
            f"{ctx.node.name} (QGemm): X must have rank >= 2 and Wq rank 2, got {list(x.shape)} and {list(wq.shape)}"
        )
    lead, k = x.shape[:-1], x.shape[-1]
    rows = math.prod(lead)
    try:
        packed = _packed(ctx, isa(), wq, 1, levels)
    except (ValueError, TypeError) as e:
        if isinstance(e, InvalidModelError):
            raise
        raise _invalid(ctx, e) from None
    args = (packed, *_f32(params), float(levels), ctx.attrs["activation"] == "Relu", ctx.threads)
    final = None if x.ndim == 2 else (*lead, wq.shape[0])
    return _keep(ctx, x.shape, (env, wq, *params, args, (rows, wq.shape[0]), (rows, k), final))


if _ext is not None:
    # Per call only what depends on X: the node's plan for X's shape (checked against the ISA variable and the
    # weights it was made for), the output buffer, one native call. The native side checks X itself.

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
        cache = ctx.cache
        env = _env_isa()
        plan = cache.get("native_plans", _NONE).get(x.shape)
        if plan is None or plan[0] != env or plan[1] is not wq or plan[2] is not w_scale or plan[3] is not w_sum:
            plan = _conv_plan(ctx, x, wq, (w_scale, w_sum, b), env)
        elif plan[4] is not b:
            plan = _conv_plan(ctx, x, wq, (w_scale, w_sum, b), env)
        if plan is None:
            return _post_ref(ctx, _ref("QConv")(ctx, x, wq, w_scale, w_sum, b), residual)
        oshape = plan[6]
        out = cache.get("native_out")
        if oshape is None:
            out = None
        elif out is None or out.shape != oshape or sys.getrefcount(out) != _ALONE:
            out = cache["native_out"] = np.empty(oshape, dtype=np.float32)
        if x.dtype is not _F32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            if residual is None:
                return _ext.qconv(x, *plan[5], out)  # type: ignore[no-any-return]
            relu_after = len(cache.get("post", ())) > 1
            return _ext.qconv(x, *plan[5], out, residual, relu_after)  # type: ignore[no-any-return]
        except (ValueError, TypeError, ZeroDivisionError) as e:
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
        cache = ctx.cache
        env = _env_isa()
        plan = cache.get("native_plans", _NONE).get(x.shape)
        if plan is None or plan[0] != env or plan[1] is not wq or plan[2] is not w_scale or plan[3] is not w_sum:
            plan = _gemm_plan(ctx, x, wq, (w_scale, w_sum, b), env)
        elif plan[4] is not b:
            plan = _gemm_plan(ctx, x, wq, (w_scale, w_sum, b), env)
        if plan is None:
            return _ref("QGemm")(ctx, x, wq, w_scale, w_sum, b)  # type: ignore[no-any-return]
        oshape, final = plan[6], plan[8]
        out = cache.get("native_out")
        if out is None or out.shape != oshape or sys.getrefcount(out) != _ALONE:
            out = cache["native_out"] = np.empty(oshape, dtype=np.float32)
        if final is not None or x.dtype is not _F32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32).reshape(plan[7])
        try:
            y = _ext.qgemm(x, *plan[5], out)
        except (ValueError, TypeError) as e:
            raise _invalid(ctx, e) from None
        return y if final is None else y.reshape(final)  # type: ignore[no-any-return]

    qconv.declines = qgemm.declines = declines  # type: ignore[attr-defined]
    qconv.fuse = _qconv_fuse  # type: ignore[attr-defined]


def cpu_threads() -> int:
    """Threads the runtime uses for ``threads=0``: the CPUs this process may run on (runtime/threads.py)."""
    from convertmodel.runtime.threads import cpu_count

    return cpu_count()


# The fp32 kernels register themselves on import (same extension, same thread pool).
from convertmodel.runtime.native import fp32 as fp32  # noqa: E402
