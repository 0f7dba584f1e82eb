"""What every engine shares: the job it runs, the per-batch results it returns, and how a range is read.

A :class:`Job` names the models (:class:`ModelRef`), a way to open the data set, the preprocessing,
the batch size and the number of samples, and a per-batch function ``fn(models, batch) -> (columns,
stats)``: ``columns`` are per-sample values (one entry per sample of the batch), ``stats`` per-batch
values (timings, per-layer sums). The samples ``[0, total)`` are cut into batches at multiples of the
batch size, the same cut for every engine, so each batch holds the same samples whatever ran it (fp32
BLAS results depend on the batch's size) and the caller reduces identical results to identical numbers.

A sample that cannot be read (a corrupt image, a truncated file) does not stop the run: its batch is
re-read sample by sample, the readable ones run as one batch, and the others come back in
:attr:`BatchResult.errors` with their index, id and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from convertmodel.errors import FormatError, ModelIOError

#: Called with (samples done, samples total).
ProgressFn = Callable[[int, int], None]

#: ``fn(models, batch) -> (per-sample columns, per-batch stats)``; must pickle for distributed engines.
BatchFn = Callable[[Mapping[str, Any], Any], tuple[dict[str, Any], dict[str, Any]]]

#: Errors that mean "this sample cannot be read" (reported per sample), not "the run is misconfigured".
UNREADABLE = (FormatError, ModelIOError)


@dataclass
class ModelRef:
    """A model for a job: the object loaded in this process and, when known, a .q8 file holding exactly it.

    ``path`` lets a distributed engine memory-map the file in its tasks instead of writing a copy.
    """

    model: Any
    path: str | None = None


@dataclass
class Job:
    models: Mapping[str, ModelRef]
    #: Opens the data set; must pickle for distributed engines (e.g. a functools.partial of open_dataset).
    open_data: Callable[[], Any]
    preprocess: Any
    batch_size: int
    #: Samples ``[0, total)`` are processed.
    total: int
    fn: BatchFn
    #: The data set already opened in this process (the local engine uses it instead of ``open_data``).
    dataset: Any = None
    #: Runtime threads per task (0: the default); distributed tasks also limit BLAS threads to it.
    threads: int = 0


@dataclass
class BatchResult:
    #: First sample index of the batch's range; batches are ``[start, start + batch_size)``.
    start: int
    #: Indices of the samples that were read, in order; ``columns`` have one entry per index.
    indices: list[int]
    ids: list[str]
    digests: list[bytes]
    labels: Any
    columns: dict[str, Any]
    stats: dict[str, Any]
    #: (index, id, message) of each sample of the range that could not be read.
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    read_seconds: float = 0.0


class Engine(Protocol):
    name: str

    def run(self, job: Job, progress: ProgressFn | None = None) -> list[BatchResult]:
        """Run ``job.fn`` on every batch; results sorted by ``start``, each batch exactly once."""
        ...


def batch_starts(total: int, batch_size: int) -> list[int]:
    return list(range(0, total, batch_size))


def split_batches(n_batches: int, partitions: int) -> list[tuple[int, int]]:
    """Contiguous runs of batch numbers ``[b0, b1)``, as even as possible, none empty."""
    p = max(1, min(partitions, n_batches))
    q, r = divmod(n_batches, p)
    out, b = [], 0
    for k in range(p):
        n = q + (1 if k < r else 0)
        out.append((b, b + n))
        b += n
    return out


def _merge(parts: list[Any]) -> Any:
    """Concatenate single-sample batches into one batch (the readable samples of a failed range)."""
    import numpy as np

    from convertmodel.data.datasets import Batch

    labels = None if parts[0].labels is None else np.concatenate([p.labels for p in parts])
    boxes = None if parts[0].boxes is None else [bx for p in parts for bx in p.boxes]
    return Batch(
        np.concatenate([p.x for p in parts]),
        labels,
        boxes,
        [i for p in parts for i in p.ids],
        [d for p in parts for d in p.digests],
    )


def read_batches(
    dataset: Any, pre: Any, start: int, stop: int, batch_size: int
) -> Iterator[tuple[int, list[int], Any, list[tuple[int, str, str]], float]]:
    """Yield (batch start, sample indices, batch or None, unreadable samples, read seconds) over
    ``[start, stop)``, one batch in memory at a time."""
    pos = start
    while pos < stop:
        it = dataset.batches(batch_size, pre, stop, pos)
        while pos < stop:
            t0 = time.perf_counter()
            end = min(pos + batch_size, stop)
            try:
                b = next(it)
            except UNREADABLE:
                yield (pos, *_read_singly(dataset, pre, pos, end), time.perf_counter() - t0)
                pos = end
                break  # the generator is spent: open a new one at the next batch
            yield pos, list(range(pos, end)), b, [], time.perf_counter() - t0
            pos = end


def _read_singly(dataset: Any, pre: Any, start: int, end: int) -> tuple[list[int], Any, list[tuple[int, str, str]]]:
    good, parts, errors = [], [], []
    for i in range(start, end):
        try:
            parts.append(next(dataset.batches(1, pre, i + 1, i)))
            good.append(i)
        except UNREADABLE as e:
            errors.append((i, dataset.sample_id(i), str(e)))
    return good, (_merge(parts) if parts else None), errors


def run_range(models: Mapping[str, Any], dataset: Any, job: Job, start: int, stop: int) -> Iterator[BatchResult]:
    """Run ``job.fn`` on the batches of ``[start, stop)`` (``start`` a multiple of the batch size)."""
    for pos, indices, batch, errors, seconds in read_batches(dataset, job.preprocess, start, stop, job.batch_size):
        if batch is None:
            yield BatchResult(pos, [], [], [], None, {}, {}, errors, seconds)
            continue
        columns, stats = job.fn(models, batch)
        yield BatchResult(pos, indices, batch.ids, batch.digests, batch.labels, columns, stats, errors, seconds)
