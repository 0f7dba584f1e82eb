"""Native fp32 kernels: Conv (dense, grouped, depthwise), Gemm/MatMul, MaxPool/AveragePool/GlobalAveragePool.

They live in the same extension and thread pool as the int8 kernels (``src/fp32_*.cpp``): a packed-panel
GEMM with FMA micro-kernels (AVX-512 8x32, AVX2 4x24, portable 4x8); convolutions take one of three paths
per layer (``CONVERTMODEL_FP32_CONV=direct|packed|cvec`` forces one): *direct* reads B in place from the
padded (or, for strides 2-4, phase-split) input, *packed* copies im2col panels (columns over sample x output
position, so small images batch together), *cvec* vectorizes over output channels for narrow maps; a
direct depthwise kernel and window pooling. Outputs come from a pool of buffers nobody references any more.  The ISA unit is chosen
at run time like the int8 one (``CONVERTMODEL_ISA``: ``avx512vnni`` selects ``avx512``, ``avxvnni``
``avx2``; ``avx512``, ``avx2`` and ``portable`` name the fp32 units directly).

Each kernel exposes ``fuse``: the executor asks it whether a following per-channel ``Mul``/``Add``
by a constant and one ``Relu``/``Clip`` can run in the kernel's epilogue (``y = clip(acc * scale +
shift)``), and passes the accepted ops in ``ctx.cache["post"]``.  Inputs the native code does not
cover (other ranks or dtypes, a non-constant Gemm C) go to the numpy reference kernels, which stay
the reference the tests compare against.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError
from convertmodel.ir.graph import Graph, Node

# The extension the package loaded ($CONVERTMODEL_NATIVE_LIB, e.g. a sanitizer build, or the built-in one);
# None when it is not built: nothing registers and the numpy kernels run.
from convertmodel.runtime.native import _ext
from convertmodel.runtime.registry import KernelContext, kernel

#: fp32 ISA units, best first.
ALL_ISAS = ("avx512", "avx2", "portable")
_INF = float("inf")

#: A fused epilogue op: ("mul" | "add", per-channel values), ("residual", value name) or ("clip", lo, hi).
PostOp = tuple[Any, ...]


def available() -> bool:
    return _ext is not None


def compiled_isas() -> list[str]:
    return list(_ext.fp32_compiled_isas()) if _ext is not None else []


def available_isas() -> list[str]:
    return list(_ext.fp32_available_isas()) if _ext is not None else []


def isa(name: str | None = None) -> str:
    """The fp32 unit used: ``name``, else ``$CONVERTMODEL_ISA`` (mapped), else the best the CPU runs."""
    from convertmodel.runtime.native import IsaError

    if _ext is None:
        raise IsaError("convertmodel native extension is not built (reinstall with a C++17 compiler: pip install -e .)")
    try:
        return str(_ext.fp32_isa(name or ""))
    except ValueError as e:
        raise IsaError(str(e)) from None


def _call(ctx: KernelContext, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a native entry point; its argument checks (ValueError) become one typed, node-named error."""
    try:
        return fn(*args)
    except ValueError as e:
        msg = str(e)
        if "CONVERTMODEL_ISA" in msg or "isa argument" in msg:
            from convertmodel.runtime.native import IsaError

            raise IsaError(msg) from None
        raise InvalidModelError(f"{ctx.node.op_type} {ctx.node.name!r}: {msg}") from None
    except TypeError as e:
        # pybind11 refuses an argument it cannot convert, e.g. a stride above 2**63 from a hostile file.
        if "incompatible function arguments" not in str(e):
            raise
        raise InvalidModelError(
            f"{ctx.node.op_type} {ctx.node.name!r}: a size, stride, pad or dilation does not fit in a 64-bit integer"
        ) from None


#: Output buffers of the native kernels by shape, most recently used shapes last. A kernel takes one that
#: nobody else references any more (the executor dropped the value after its last consumer), so a run's
#: working set is its live activations, not one buffer per node (ResNet-50: 24 MB of outputs, beyond what
#: stays in L3), and no run faults in fresh pages. Views, graph outputs the caller kept and inputs of the
#: running kernel all hold references: never reused while alive.
_POOL: OrderedDict[tuple[int, ...], list[np.ndarray]] = OrderedDict()
_POOL_PER_SHAPE = 6
_POOL_MAX_BYTES = 512 << 20
_pool_bytes = 0


def _refs(bufs: list[np.ndarray], i: int) -> int:
    """References to ``bufs[i]`` as seen from here (the list, this frame's local, the argument)."""
    buf = bufs[i]
    return sys.getrefcount(buf)


#: ``_refs`` of a buffer only the pool holds, measured through the same code (Python versions differ).
_ALONE = _refs([np.empty(0, np.float32)], 0)


#: The pool is process-wide: executors in other threads take buffers too. Under the lock a buffer found free
#: is returned (its new reference held) before another thread can find it free as well.
_POOL_LOCK = threading.Lock()


def _output(shape: tuple[int, ...]) -> np.ndarray | None:
    """A free float32 buffer of ``shape`` (the native code writes every element), or None (the native code
    allocates, or refuses a hostile shape with its typed error)."""
    with _POOL_LOCK:
        return _take(shape)


def _take(shape: tuple[int, ...]) -> np.ndarray | None:
    bufs = _POOL.get(shape)
    if bufs is not None:
        for i in range(len(bufs) - 1, -1, -1):  # the latest first: likeliest still in cache
            if _refs(bufs, i) <= _ALONE:
                return bufs[i]
    # A smaller batch (a data set's last one) writes the front of a free larger one: a view, which keeps
    # that buffer referenced while it lives.
    if shape:
        for key, bufs in reversed(_POOL.items()):
            if len(key) == len(shape) and key[1:] == shape[1:] and key[0] > shape[0]:
                for i in range(len(bufs) - 1, -1, -1):
                    if _refs(bufs, i) <= _ALONE:
                        return bufs[i][: shape[0]]
    return _new_output(shape)


def _new_output(shape: tuple[int, ...]) -> np.ndarray | None:
    global _pool_bytes
    if any(d < 0 for d in shape) or math.prod(shape) > 1 << 31:  # hostile or huge: the native side decides
        return None
    buf = np.empty(shape, np.float32)
    bufs = _POOL.setdefault(shape, [])
    if len(bufs) < _POOL_PER_SHAPE:
        bufs.append(buf)
        _pool_bytes += buf.nbytes
        _POOL.move_to_end(shape)
        while _pool_bytes > _POOL_MAX_BYTES and len(_POOL) > 1:  # drop the least recently grown shapes
            _, old = _POOL.popitem(last=False)
            _pool_bytes -= sum(b.nbytes for b in old)
    return buf


def _epilogue(ctx: KernelContext, bias: np.ndarray | None, n: int) -> tuple[Any, Any, float, float]:
    """(scale, shift, lo, hi) of the fused epilogue over ``n`` channels, cached per bias object."""
    key = (id(bias), n)
    hit = ctx.cache.get("fp32_post")
    if hit is not None and hit[0] == key:
        return hit[1]
    scale = np.ones(n, np.float32)
    shift = np.zeros(n, np.float32) if bias is None else np.broadcast_to(bias.astype(np.float32), (n,)).copy()
    lo, hi = -_INF, _INF
    for op in ctx.cache.get("post", ()):
        if op[0] == "mul":
            scale = (scale * op[1]).astype(np.float32)
            shift = (shift * op[1]).astype(np.float32)
        elif op[0] == "add":
            shift = (shift + op[1]).astype(np.float32)
        elif op[0] == "clip":
            lo, hi = op[1], op[2]
    plain = not ctx.cache.get("post") and bias is None
    res = (None if plain else scale, None if plain else shift, lo, hi)
    ctx.cache["fp32_post"] = (key, res)
    return res


def _channel_values(value: np.ndarray, n: int, rank: int, axis: int) -> np.ndarray | None:
    """``value`` as (n,) float32 when it broadcasts along ``axis`` only of a rank-``rank`` output."""
    if value.dtype != np.float32 or value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    ax = axis % rank
    if any(d != 1 for i, d in enumerate(shape) if i != ax) or shape[ax] not in (1, n):
        return None
    return np.broadcast_to(value.reshape(-1), (n,)).astype(np.float32)


def _make_fuse(axis: int, channels: Callable[[Node, Graph], int | None]) -> Callable[..., PostOp | None]:
    """A ``fuse(graph, producer, consumer, post, src)`` for kernels whose output channels lie on ``axis``:
    the epilogue op that computes ``consumer`` of ``src`` (the chain's current value), or None."""

    def fuse(graph: Graph, producer: Node, consumer: Node, post: list[PostOp], src: str) -> PostOp | None:
        if post and post[-1][0] == "clip":
            return None  # the clip must stay last
        n = channels(producer, graph)
        t = graph.type_of(producer.outputs[0])
        if n is None or t is None or t.rank is None or t.dtype != "float32":
            return None
        if consumer.op_type == "Relu":
            return ("clip", 0.0, _INF)
        if consumer.op_type == "Clip":
            if consumer.inputs[0] != src:
                return None
            bounds = [-_INF, _INF]
            for i, name in enumerate(consumer.inputs[1:3]):
                if name:
                    v = graph.constants.get(name)
                    if v is None or v.size != 1:
                        return None
                    bounds[i] = float(v.reshape(-1)[0])
            return ("clip", bounds[0], bounds[1]) if bounds[0] <= bounds[1] else None
        if consumer.op_type in ("Mul", "Add") and len(consumer.inputs) == 2:
            other = consumer.inputs[1] if consumer.inputs[0] == src else consumer.inputs[0]
            if other == src or any(op[0] == "residual" for op in post):
                return None  # after a residual only the clip may follow
            if other not in graph.constants:
                # A residual Add of a tensor of the output's own (static) type: conv's GEMM path only.
                ot = graph.type_of(other)
                w = graph.constants.get(producer.inputs[1]) if producer.op_type == "Conv" else None
                same = ot is not None and ot == t and t.is_static
                if consumer.op_type == "Add" and same and w is not None and w.shape[1] > 1:
                    return ("residual", other)
                return None
            vals = _channel_values(graph.constants[other], n, t.rank, axis)
            if vals is None:
                return None
            return (consumer.op_type.lower(), vals)
        return None

    return fuse


def _const(graph: Graph, name: str) -> np.ndarray | None:
    return graph.constants.get(name) if name else None


def _conv_channels(node: Node, graph: Graph) -> int | None:
    w = _const(graph, node.inputs[1])
    return int(w.shape[0]) if w is not None and w.ndim == 4 else None


def _dense_channels(node: Node, graph: Graph) -> int | None:
    b = _const(graph, node.inputs[1])
    if b is None or b.ndim != 2:
        return None
    if node.op_type == "Gemm":  # the epilogue adds beta * C before the fused ops, as the graph does
        return int(b.shape[0] if node.attrs.get("transB", 0) else b.shape[1])
    return int(b.shape[1])


if _ext is not None:
    from convertmodel.runtime.kernels.ref import conv as _ref_conv
    from convertmodel.runtime.kernels.ref import linalg as _ref_linalg
    from convertmodel.runtime.kernels.ref import pool as _ref_pool
    from convertmodel.runtime.kernels.ref.im2col import ConvGeometry

    def _apply_post_ref(ctx: KernelContext, y: np.ndarray, axis: int, res: np.ndarray | None = None) -> np.ndarray:
        """The fused ops applied in numpy after a reference kernel (when the native path declines)."""
        for op in ctx.cache.get("post", ()):
            if op[0] == "residual":
                y = y + res
            elif op[0] == "clip":
                y = np.minimum(np.maximum(y, np.float32(op[1])), np.float32(op[2]))
            else:
                shape = [1] * y.ndim
                shape[axis % y.ndim] = -1
                v = op[1].reshape(shape)
                y = y * v if op[0] == "mul" else y + v
        return y

    def _conv_plan(ctx: KernelContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> tuple[Any, ...]:
        """Everything a Conv call needs but the input, computed once per (W, B, input shape)."""
        geo = ConvGeometry.from_attrs(ctx.attrs, x.shape, w.shape)
        if geo.kernel != tuple(w.shape[2:]):
            raise InvalidModelError(f"Conv {ctx.node.name!r}: kernel_shape {list(geo.kernel)} != W {list(w.shape)}")
        name = isa()
        scale, shift, lo, hi = _epilogue(ctx, b, int(w.shape[0]))
        p = geo.pads
        args = (list(geo.strides), [p[0], p[1], p[2], p[3]], list(geo.dilations), ctx.threads)
        extra: tuple[str, ...]
        if w.shape[1] == 1 and geo.group == x.shape[1]:  # depthwise, or one input channel (first layers)
            fn, weights, extra = _ext.fp32_depthwise, np.ascontiguousarray(w), (name,)
        else:
            fn, weights, extra = (
                _ext.fp32_conv,
                _call(ctx, _ext.fp32_pack_conv, np.ascontiguousarray(w), geo.group, name),
                (),
            )
        try:  # the output's shape after N; a hostile geometry is left to the native checks (typed errors)
            ctx.cache["fp32_tail"] = (int(w.shape[0]), *geo.out_spatial(x.shape[2:]))
        except (ZeroDivisionError, OverflowError, ValueError):
            ctx.cache["fp32_tail"] = (-1,)
        return (w, b, x.shape[1:], fn, weights, scale, shift, lo, hi, *args, *extra)

    @kernel("Conv", backend="native")
    def conv(
        ctx: KernelContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, residual: Any = None
    ) -> np.ndarray:
        """2-D float32 Conv; other ranks and dtypes use the numpy reference. ``residual``: the other input
        of a fused residual Add (the executor passes it when the epilogue holds one)."""
        if x.ndim != 4 or w.ndim != 4 or x.dtype != np.float32 or w.dtype != np.float32:
            return _apply_post_ref(ctx, _ref_conv.conv(ctx, x, w, b), 1, residual)
        plan = ctx.cache.get("fp32_plan")
        if plan is None or plan[0] is not w or plan[1] is not b or plan[2] != x.shape[1:]:
            plan = ctx.cache["fp32_plan"] = _conv_plan(ctx, x, w, b)  # holds W and B: their ids stay unique
        if residual is not None:
            if plan[3] is not _ext.fp32_conv or residual.dtype != np.float32:
                return _apply_post_ref(ctx, _ref_conv.conv(ctx, x, w, b), 1, residual)
        out = _output((x.shape[0], *ctx.cache["fp32_tail"]))
        if residual is not None:
            return _call(ctx, plan[3], np.ascontiguousarray(x), *plan[4:], out, residual)  # type: ignore[no-any-return]
        return _call(ctx, plan[3], np.ascontiguousarray(x), *plan[4:], out)  # type: ignore[no-any-return]

    conv.fuse = _make_fuse(1, _conv_channels)  # type: ignore[attr-defined]

    def _dense(ctx: KernelContext, a: np.ndarray, b: np.ndarray, trans: bool, alpha: float, c: Any) -> np.ndarray:
        hit = ctx.cache.get("fp32_w")
        if hit is None or hit[2] is not b or hit[0] != (trans, alpha):  # packed once per B (the ISA of then)
            packed = _call(ctx, _ext.fp32_pack_dense, np.ascontiguousarray(b), trans, alpha, isa())
            hit = ctx.cache["fp32_w"] = ((trans, alpha), packed, b)
        n = int(b.shape[0] if trans else b.shape[1])
        scale, shift, lo, hi = _epilogue(ctx, c, n)
        lead, k = a.shape[:-1], a.shape[-1]
        x2 = np.ascontiguousarray(a).reshape(-1, k)
        out = _output((x2.shape[0], n))
        y = _call(ctx, _ext.fp32_dense, x2, hit[1], scale, shift, lo, hi, ctx.threads, out)
        return y.reshape(*lead, n)

    @kernel("Gemm", backend="native")
    def gemm(ctx: KernelContext, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """Gemm with a 2-D float32 B and a C that is a per-column vector (or absent)."""
        at = ctx.attrs
        beta = float(at["beta"])
        bias = None
        if c is not None and beta != 0.0:
            n = b.shape[0] if at["transB"] else b.shape[1]
            ok = c.dtype == np.float32 and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1) and c.size in (1, n)
            if not ok:
                return _apply_post_ref(ctx, _ref_linalg.gemm(ctx, a, b, c), -1)
            # The cache keys on id(bias): keep one object per C (and scale it once, not per call).
            hit = ctx.cache.get("fp32_bias")
            if hit is not None and hit[0] is c and hit[1] == beta:
                bias = hit[2]
            else:
                bias = (np.broadcast_to(c.reshape(-1), (n,)) * np.float32(beta)).astype(np.float32)
                ctx.cache["fp32_bias"] = (c, beta, bias)
        if a.ndim != 2 or b.ndim != 2 or a.dtype != np.float32 or b.dtype != np.float32:
            return _apply_post_ref(ctx, _ref_linalg.gemm(ctx, a, b, c), -1)
        if at["transA"]:
            a = a.T
        return _dense(ctx, a, b, bool(at["transB"]), float(at["alpha"]), bias)

    gemm.fuse = _make_fuse(-1, _dense_channels)  # type: ignore[attr-defined]

    @kernel("MatMul", backend="native")
    def matmul(ctx: KernelContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """MatMul of an (..., K) float32 A by a 2-D B (a batch of rows); other shapes use numpy."""
        if a.ndim < 2 or b.ndim != 2 or a.dtype != np.float32 or b.dtype != np.float32:
            return _apply_post_ref(ctx, _ref_linalg.matmul(ctx, a, b), -1)
        return _dense(ctx, a, b, False, 1.0, None)

    matmul.fuse = _make_fuse(-1, _dense_channels)  # type: ignore[attr-defined]

    def _pool(ctx: KernelContext, x: np.ndarray, kind: int) -> np.ndarray | None:
        if x.ndim != 4 or x.dtype != np.float32 or len(ctx.node.outputs) > 1:
            return None
        x = np.ascontiguousarray(x)
        if kind == 2:
            out = _output((x.shape[0], x.shape[1], 1, 1))
            return _call(ctx, _ext.fp32_pool, x, 2, [], [], [], [], [], False, ctx.threads, "", out)  # type: ignore[no-any-return]
        geo, out_sp = _ref_pool._geometry(ctx, x)
        include = bool(ctx.attrs.get("count_include_pad", 0))
        y = _call(
            ctx,
            _ext.fp32_pool,
            x,
            kind,
            list(geo.kernel),
            list(geo.strides),
            list(geo.pads),
            list(geo.dilations),
            list(out_sp),
            include,
            ctx.threads,
            "",
            _output((x.shape[0], x.shape[1], *out_sp)),
        )
        return y  # type: ignore[no-any-return]

    @kernel("MaxPool", backend="native")
    def max_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
        y = _pool(ctx, x, 0)
        return _ref_pool.max_pool(ctx, x) if y is None else y

    @kernel("AveragePool", backend="native")
    def average_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
        y = _pool(ctx, x, 1)
        return _ref_pool.average_pool(ctx, x) if y is None else y

    @kernel("GlobalAveragePool", backend="native")
    def global_average_pool(ctx: KernelContext, x: np.ndarray) -> np.ndarray:
        y = _pool(ctx, x, 2)
        return _ref_pool.global_average_pool(ctx, x) if y is None else y
