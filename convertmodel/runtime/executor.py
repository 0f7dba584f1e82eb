"""Executes an IR graph with registered kernels (native first, numpy reference otherwise)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.errors import DataError, InvalidModelError, UnsupportedOpError
from convertmodel.ir.graph import Graph, Node
from convertmodel.ir.schema import resolve_attrs
from convertmodel.runtime.registry import BACKENDS, KernelContext, KernelFn, find_kernel
from convertmodel.runtime.threads import resolve_threads

#: Called after each node with (node, outputs, seconds); used by per-layer reports.
NodeHook = Callable[[Node, list[np.ndarray], float], None]

#: Ops whose output is their first input reshaped (a view where numpy can): with the other inputs constant,
#: the output shape depends on the input shape only, so it is computed (and checked) once per input shape.
_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
_VIEW_MEMO = 16  # input shapes remembered per node (batch sizes seen)


@dataclass
class _Step:
    node: Node
    fn: KernelFn
    backend: str
    ctx: KernelContext
    free_after: tuple[str, ...]
    outputs: tuple[str, ...] = ()  # the node's outputs, or the last fused consumer's
    extra: tuple[tuple[str, str], ...] = ()  # (keyword, value) inputs of fused ops, e.g. a residual


def _set_frees(steps: list[_Step], keep: set[str]) -> None:
    """Free each intermediate right after its last use so peak memory stays near one layer."""
    last_use: dict[str, int] = {}
    for k, s in enumerate(steps):
        for v in (*s.node.inputs, *(e[1] for e in s.extra)):
            if v:
                last_use[v] = k
    frees: dict[int, list[str]] = {}
    for v, k in last_use.items():
        if v not in keep:
            frees.setdefault(k, []).append(v)
    for k, s in enumerate(steps):
        s.free_after = tuple(frees.get(k, ()))


def _fuse(graph: Graph, steps: list[_Step], threads: int) -> tuple[list[_Step], set[str]]:
    """Steps with epilogues fused: a kernel exposing ``fn.fuse(graph, producer, consumer, post, src)`` absorbs
    the chain of single consumers it accepts (per-channel Mul/Add, Relu/Clip); returns the steps and the
    values the fused plan no longer produces."""
    uses: dict[str, int] = {}
    for n in graph.nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    outs = {o.name for o in graph.outputs}
    consumer = {v: k for k, s in enumerate(steps) for v in s.node.inputs if v and uses.get(v) == 1}
    made_at = {v: k for k, s in enumerate(steps) for v in s.node.outputs if v}
    absorbed: set[int] = set()
    away: set[str] = set()
    fused: list[_Step] = []
    for k, s in enumerate(steps):
        if k in absorbed:
            continue
        fuse = getattr(s.fn, "fuse", None)
        post: list[tuple] = []
        out = s.node.outputs[0] if len(s.node.outputs) == 1 else ""
        while fuse is not None and out and out not in outs and uses.get(out) == 1 and out in consumer:
            j = consumer[out]
            nxt = steps[j].node
            if j <= k or j in absorbed or len(nxt.outputs) != 1:
                break
            op = fuse(graph, s.node, nxt, post, out)
            if op is None or (op[0] == "residual" and made_at.get(op[1], -1) > k):
                break  # (a residual must exist when the fused kernel runs)
            post.append(op)
            absorbed.add(j)
            away.add(out)
            out = nxt.outputs[0]
        if post:
            ctx = KernelContext(s.node, s.ctx.attrs, threads=threads)
            ctx.cache["post"] = post
            extra = tuple((op[0], op[1]) for op in post if op[0] == "residual")
            s = _Step(s.node, s.fn, s.backend, ctx, (), (out,), extra)
        fused.append(s)
    return fused, away


def _view_kernel(fn: KernelFn) -> KernelFn:
    """``fn`` (a reshape-like kernel, constant extra inputs) with its output shape memoised per input shape:
    the first call per shape runs ``fn`` (its checks and errors included), later ones only ``x.reshape``."""
    memo: dict[tuple[int, ...], tuple[int, ...]] = {}

    def run(ctx: KernelContext, x: np.ndarray, *rest: Any) -> Any:
        shape = memo.get(x.shape)
        if shape is not None:
            return x.reshape(shape)
        y = fn(ctx, x, *rest)
        if isinstance(y, np.ndarray) and y.size == x.size and len(memo) < _VIEW_MEMO:
            memo[x.shape] = y.shape
        return y

    return run


#: One step of the compiled plan: (kernel, context, the one non-constant input when it is the first and the
#: others are constants, else None; the arguments with constants bound and None for the rest; (position,
#: value) of the non-constant ones; fused keyword inputs; output names; values to drop after the step).
_Compiled = tuple[
    KernelFn,
    KernelContext,
    "str | None",
    tuple[Any, ...],
    tuple[tuple[int, str], ...],
    tuple[tuple[str, str], ...],
    tuple[str, ...],
    tuple[str, ...],
]


def _compile(graph: Graph, steps: list[_Step]) -> list[_Compiled]:
    """The fast plan as flat tuples: constant inputs bound once, reshape-like nodes memoised, frees final."""
    fed = {i.name for i in graph.inputs}  # a graph input overrides a constant of the same name
    consts = {k: v for k, v in graph.constants.items() if k not in fed}
    out: list[_Compiled] = []
    for s in steps:
        args = tuple(consts.get(i) if i else None for i in s.node.inputs)
        dyn = tuple((k, i) for k, i in enumerate(s.node.inputs) if i and i not in consts)
        fn = s.fn
        first = dyn[0][1] if len(dyn) == 1 and dyn[0][0] == 0 and not s.extra else None
        if first is not None and s.node.op_type in _VIEW_OPS and s.node.domain == "" and len(s.outputs) == 1:
            fn = _view_kernel(fn)
        out.append((fn, s.ctx, first, args[1:] if first is not None else args, dyn, s.extra, s.outputs, s.free_after))
    return out


class Executor:
    """Plans a graph once (kernel choice, attribute resolution, buffer lifetimes), then runs it."""

    def __init__(self, graph: Graph, backends: tuple[str, ...] = BACKENDS, threads: int = 0) -> None:
        self.graph = graph
        # Kernels get the resolved count (0 = all CPUs, runtime/threads.py), never 0.
        self.threads = threads = resolve_threads(threads)
        missing: dict[str, list[str]] = {}
        steps: list[_Step] = []
        for n in graph.nodes:
            found = find_kernel(n.op_type, n.domain, backends)
            if found is None:
                missing.setdefault(n.op_type, []).append(n.name)
                continue
            backend, fn = found
            attrs = resolve_attrs(n)
            declines = getattr(fn, "declines", None)  # a kernel may leave some nodes to the next backend
            if declines is not None and declines(attrs):
                later = backends[backends.index(backend) + 1 :]
                found = find_kernel(n.op_type, n.domain, later) if later else None
                if found is not None:
                    backend, fn = found
            ctx = KernelContext(n, attrs, threads=threads)
            steps.append(_Step(n, fn, backend, ctx, (), n.outputs))
        if missing:
            raise UnsupportedOpError(graph.name, missing, what=f"op (no kernel in backends {list(backends)})")
        keep = {o.name for o in graph.outputs} | set(graph.constants) | {i.name for i in graph.inputs}
        _set_frees(steps, keep)
        self.steps = steps
        # The plan run() uses when no hook watches every node and no fused-away value is asked for.
        self._fast, self._fused_away = _fuse(graph, steps, threads)
        _set_frees(self._fast, keep)
        self._defined = {i.name for i in graph.inputs} | set(graph.constants)
        self._defined.update(o for s in steps for o in s.node.outputs if o)
        # run() without a hook or named outputs: flat tuples, constants bound, graph outputs never freed.
        self._compiled = _compile(graph, self._fast)
        self._feeds = [(vi.name, np.dtype(vi.type.dtype), vi.type.shape) for vi in graph.inputs]
        self._outputs = [o.name for o in graph.outputs]

    def backend_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.backend] = out.get(s.backend, 0) + 1
        return out

    def run(
        self, feeds: Mapping[str, np.ndarray], hook: NodeHook | None = None, outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the graph; ``outputs`` may name any values, intermediates included (kept, not freed)."""
        if hook is None and (not outputs or set(outputs) <= set(self._outputs)):
            res = self._run_compiled(feeds)  # graph outputs only: the compiled plan, then the ones asked for
            return res if not outputs else {k: res[k] for k in outputs}
        wanted = outputs or [o.name for o in self.graph.outputs]
        unknown = [w for w in wanted if w not in self._defined]
        if unknown:
            raise InvalidModelError(f"graph {self.graph.name!r} has no values named {', '.join(map(repr, unknown))}")
        keep = set(wanted)
        env: dict[str, np.ndarray] = dict(self.graph.constants)
        env.update(self._check_feeds(feeds))  # a graph input overrides a constant of the same name
        steps = self.steps if hook is not None or not keep.isdisjoint(self._fused_away) else self._fast
        for s in steps:
            args = [env[i] if i else None for i in s.node.inputs]
            t0 = time.perf_counter() if hook else 0.0
            res = s.fn(s.ctx, *args, **{k: env[v] for k, v in s.extra}) if s.extra else s.fn(s.ctx, *args)
            if isinstance(res, (tuple, list)):
                for name, val in zip(s.outputs, res, strict=False):
                    if name:
                        env[name] = val
            elif s.outputs[0]:
                env[s.outputs[0]] = res
            if hook:
                hook(s.node, list(res) if isinstance(res, (tuple, list)) else [res], time.perf_counter() - t0)
            for v in s.free_after:
                if v not in keep:
                    env.pop(v, None)
        return {k: env[k] for k in wanted}

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph inputs from ``feeds``, converted to their dtype; DataError for a missing one or a shape
        that does not fit its declared one (both run paths)."""
        env: dict[str, np.ndarray] = {}
        for name, dtype, shape in self._feeds:
            if name not in feeds:
                vi = next(v for v in self.graph.inputs if v.name == name)
                raise DataError(f"missing input {name!r} ({vi.type})")
            arr = feeds[name]
            if type(arr) is not np.ndarray:
                arr = np.asarray(arr)
            if arr.dtype != dtype:
                arr = arr.astype(dtype)
            if shape is not None and (
                arr.ndim != len(shape)
                or any(isinstance(d, int) and d != a for d, a in zip(shape, arr.shape, strict=True))
            ):
                vi = next(v for v in self.graph.inputs if v.name == name)
                raise DataError(f"input {name!r}: expected shape {vi.type}, got {arr.dtype}{list(arr.shape)}")
            env[name] = arr
        return env

    def _run_compiled(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The plan of :meth:`run` for the graph outputs with no hook: per node one kernel call."""
        env = self._check_feeds(feeds)
        for fn, ctx, first, args, dyn, extra, outs, frees in self._compiled:
            if first is not None:
                res = fn(ctx, env[first], *args)
            else:
                call = list(args)
                for k, name in dyn:
                    call[k] = env[name]
                res = fn(ctx, *call, **{k: env[v] for k, v in extra}) if extra else fn(ctx, *call)
            if isinstance(res, (tuple, list)):
                for name, val in zip(outs, res, strict=False):
                    if name:
                        env[name] = val
            elif outs[0]:
                env[outs[0]] = res
            for v in frees:
                env.pop(v, None)
        constants = self.graph.constants
        return {k: env[k] if k in env else constants[k] for k in self._outputs}


def run_graph(
    graph: Graph, feeds: Mapping[str, np.ndarray], backends: tuple[str, ...] = BACKENDS
) -> dict[str, np.ndarray]:
    """One-shot convenience wrapper around :class:`Executor`."""
    return Executor(graph, backends).run(feeds)
