"""The executor side of the Spark engine: what one task does with its range of batches.

A task opens each model itself from a .q8 path (memory-mapped; a shipped file is found with
``SparkFiles.get``), opens the data set with the job's picklable opener, and runs the per-batch
function on its batches one at a time, so its memory is bounded by the batch size. Models and data
sets are cached per Python worker process (Spark reuses workers), keyed by file identity.

Errors: a :class:`~convertmodel.errors.ConvertModelError` (bad input, the same in every attempt) is
sent back as a result and raised again on the driver with its type and message, instead of being
retried; anything else fails the task and Spark retries it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from convertmodel.engines.base import BatchFn, Job, run_range
from convertmodel.errors import ConvertModelError

_MODELS: dict[tuple[str, int, int, int], Any] = {}
_DATA: dict[int, Any] = {}


class InjectedFailure(RuntimeError):
    """Raised on purpose (``spark.convertmodel.failFirstAttempt``) to exercise Spark's task retry."""


@dataclass
class TaskSpec:
    #: name -> (path, shipped): a shipped file is looked up with SparkFiles.get(basename).
    models: dict[str, tuple[str, bool]]
    open_data: Callable[[], Any]
    preprocess: Any
    batch_size: int
    total: int
    fn: BatchFn
    #: (start, stop) sample range of each partition.
    ranges: list[tuple[int, int]]
    threads: int = 0
    #: Partition whose first attempt raises InjectedFailure (tests of the retry path); None: never.
    fail_first_attempt: int | None = None
    #: Data-set identity for the per-worker cache (a new job gets a new key).
    data_key: int = 0
    #: BLAS threads in the task (0: the worker's default). fp32 sums depend on it, so a local master
    #: gets the driver's count: the same machine then gives the same bits.
    blas_threads: int = 0


class TaskModel:
    """A model as a task sees it: the graph read from a .q8 (tensors memory-mapped) and its executors."""

    def __init__(self, path: str, default_threads: int = 0) -> None:
        from convertmodel.serialize import read_q8

        self.source = path
        self.graph = read_q8(path)
        #: Runtime threads when the job asks for 0 (the driver's cores shared by the tasks of a local master).
        self.default_threads = default_threads
        self._executors: dict[tuple[tuple[str, ...] | None, int], Any] = {}

    def executor(self, backends: tuple[str, ...] | None = None, threads: int = 0) -> Any:
        from convertmodel.runtime.executor import Executor
        from convertmodel.runtime.registry import BACKENDS

        threads = threads or self.default_threads
        key = (backends, threads)
        if key not in self._executors:
            self._executors[key] = Executor(self.graph, backends or BACKENDS, threads)
        return self._executors[key]


def open_model(path: str, default_threads: int = 0) -> TaskModel:
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, default_threads)
    if key not in _MODELS:
        if len(_MODELS) > 8:
            _MODELS.clear()
        _MODELS[key] = TaskModel(path, default_threads)
    return _MODELS[key]  # type: ignore[no-any-return]


def _dataset(spec: TaskSpec) -> Any:
    ds = _DATA.get(spec.data_key)
    if ds is None:
        _DATA.clear()
        ds = _DATA[spec.data_key] = spec.open_data()
    return ds


def _resolve(path: str, shipped: bool) -> str:
    if not shipped:
        return path
    from pyspark import SparkFiles

    return SparkFiles.get(os.path.basename(path))


def run_partition(
    spec: TaskSpec, counters: tuple[Any, Any], part: int, _rows: Iterator[Any]
) -> Iterator[tuple[str, Any]]:
    """``mapPartitionsWithIndex`` body: yields ("batch", BatchResult) per batch, or one ("error", ...).
    ``counters``: accumulators of samples done and of samples that could not be read."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if spec.fail_first_attempt == part and ctx is not None and ctx.attemptNumber() == 0:
        raise InjectedFailure(f"injected failure of partition {part}, attempt 0")
    start, stop = spec.ranges[part]
    try:
        models = {k: open_model(_resolve(p, shipped), spec.threads) for k, (p, shipped) in spec.models.items()}
        dataset = _dataset(spec)
        job = Job({}, spec.open_data, spec.preprocess, spec.batch_size, spec.total, spec.fn)
        with _thread_limit(spec.blas_threads):
            for r in run_range(models, dataset, job, start, stop):
                counters[0].add(len(r.indices) + len(r.errors))
                counters[1].add(len(r.errors))
                yield "batch", r
    except ConvertModelError as e:
        yield "error", (type(e), str(e))


class _thread_limit:
    """Limit BLAS threads in the task to ``threads`` (0: the worker's default)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.ctl: Any = None

    def __enter__(self) -> None:
        if self.threads > 0:
            from threadpoolctl import threadpool_limits

            self.ctl = threadpool_limits(self.threads, user_api="blas")

    def __exit__(self, *exc: Any) -> None:
        if self.ctl is not None:
            self.ctl.unregister()


def rebuild_error(cls: type[ConvertModelError], msg: str) -> ConvertModelError:
    """A ConvertModelError of type ``cls`` whose str() is ``msg`` (subclasses' own __init__ args differ)."""
    e = cls.__new__(cls)
    Exception.__init__(e, msg)
    return e


def raise_task_error(err: tuple[type[ConvertModelError], str]) -> None:
    """Raise a task's ConvertModelError again on the driver, same type and message."""
    raise rebuild_error(*err)


def blas_threads() -> int:
    """The BLAS thread count of this process (0 when no BLAS library is loaded)."""
    from threadpoolctl import threadpool_info

    return max((int(i.get("num_threads", 0)) for i in threadpool_info() if i.get("user_api") == "blas"), default=0)
