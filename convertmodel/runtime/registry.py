"""Kernel registry: one kernel per (domain, op_type, backend).

A kernel is a plain function ``fn(ctx: KernelContext, *inputs) -> array | tuple[array, ...]``;
omitted optional inputs arrive as ``None``. ``ctx.attrs`` holds the resolved attributes
(schema defaults filled in); ``ctx.cache`` is a per-node dict that lives as long as the
executor, for work done once (weights packed for a native kernel)::

    @kernel("Relu")
    def relu(ctx, x):
        return np.maximum(x, 0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from convertmodel.ir.graph import Node
from convertmodel.registry import Registry

#: Backends in order of preference. ``native`` kernels live in convertmodel/runtime/native.
BACKENDS = ("native", "ref")


class KernelKey(NamedTuple):
    domain: str
    op_type: str
    backend: str


@dataclass
class KernelContext:
    node: Node
    attrs: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict)
    threads: int = 0  # 0 = runtime default


KernelFn = Callable[..., Any]

KERNELS: Registry[KernelKey, KernelFn] = Registry("kernel")


def kernel(op_type: str, domain: str = "", backend: str = "ref") -> Callable[[KernelFn], KernelFn]:
    """Register ``fn`` as the ``backend`` kernel of ``op_type``."""
    return KERNELS.register(KernelKey(domain, op_type, backend))


_loaded: set[str] = set()


def load_backend(backend: str) -> None:
    """Import the kernel modules of a backend (registers them)."""
    if backend in _loaded:
        return
    _loaded.add(backend)
    if backend == "ref":
        import convertmodel.runtime.kernels.ref
    elif backend == "native":
        import convertmodel.runtime.native  # noqa: F401


def find_kernel(op_type: str, domain: str, backends: tuple[str, ...]) -> tuple[str, KernelFn] | None:
    for b in backends:
        load_backend(b)
        fn = KERNELS.get(KernelKey(domain, op_type, b))
        if fn is not None:
            return b, fn
    return None
