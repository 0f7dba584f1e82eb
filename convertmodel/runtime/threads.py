"""The one rule for thread counts: ``0`` means every CPU this process may run on.

Python resolves the count (:func:`resolve_threads`, from the CPU affinity mask, so a container's or
``taskset``'s limit is respected) and hands the resolved number to the native kernels, which
therefore never apply a rule of their own. :func:`limit_threads` also caps the BLAS library numpy
uses for the fp32 ops (threadpoolctl), so ``--threads N`` means N threads for the whole model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from convertmodel.errors import UsageError


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads: int) -> int:
    """``threads`` itself when positive; :func:`cpu_count` for 0."""
    n = int(threads)
    if n < 0:
        raise UsageError(f"threads must be >= 0 (0 = all {cpu_count()} CPUs), got {n}")
    return n or cpu_count()


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[int]:
    """Resolve ``threads`` and cap BLAS (numpy's fp32 matmuls) to it while the block runs; yields the count."""
    from threadpoolctl import threadpool_limits

    n = resolve_threads(threads)
    with threadpool_limits(limits=n):
        yield n


def blas_threads() -> int | None:
    """The thread count the BLAS library numpy uses has now (threadpoolctl), or None when none is loaded."""
    from threadpoolctl import threadpool_info

    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None
