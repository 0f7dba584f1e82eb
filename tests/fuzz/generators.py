"""The fuzz families and what each case exercises.

A family is a generator ``generate(rng, directory) -> Case``; :func:`generate` seeds it from
``(family, seed)`` so every case can be replayed. A model case is loaded with
``convertmodel.load`` and, when that succeeds, run on a random input of its declared shape,
quantized, saved as .q8, reloaded and run again; a data case is opened with ``open_dataset`` and
every batch is read. Only success or a ConvertModelError is allowed (tests/fuzz/worker.py).

Readers added later (TensorFlow, BigDL, Torch7) are covered without new code by the ``bytes:FORMAT``
families: :func:`reader_families` finds every registered reader format that has no structure-aware
generator here and a sample file under fixtures/ (matched by the reader's extensions), and mutates its
bytes. A structure-aware generator for such a format is added by writing ``gen_<format>.py`` with
``warm_up(work)`` and ``generate(rng, d)`` and listing it in ``STRUCTURED``.
"""

from __future__ import annotations

import glob
import importlib
import math
import os
import random
import tempfile
from typing import Any

import numpy as np

from tests.fuzz.common import FIXTURES, Case, mutate_bytes, write

#: family -> module with warm_up(work) and generate(rng, d).
STRUCTURED = {
    "q8": "tests.fuzz.gen_q8",
    "onnx": "tests.fuzz.gen_onnx",
    "caffe": "tests.fuzz.gen_caffe",
    "data": "tests.fuzz.gen_data",
}
_COVERED_FORMATS = {"q8", "onnx", "caffe"}
_MAX_INPUT_ELEMENTS = 1 << 18
_SAMPLES: dict[str, list[str]] = {}


def reader_families() -> list[str]:
    """``bytes:FORMAT`` for each registered reader without a structured generator but with a sample file."""
    try:
        from convertmodel.readers import READERS
    except ImportError:
        return []
    out = []
    for key, info in READERS.items():
        fmt = key.format
        if fmt in _COVERED_FORMATS or getattr(info, "directory", False):
            continue
        files = sorted(
            f for ext in info.extensions for f in glob.glob(os.path.join(FIXTURES, "**", f"*{ext}"), recursive=True)
        )
        files = [f for f in files if os.path.isfile(f) and os.path.getsize(f) < (8 << 20)]
        if files:
            _SAMPLES[fmt] = files
            out.append(f"bytes:{fmt}")
    return out


def families() -> list[str]:
    return [*STRUCTURED, *reader_families()]


def warm_up() -> None:
    work = tempfile.mkdtemp(prefix="cm-fuzz-base-")
    for mod in STRUCTURED.values():
        importlib.import_module(mod).warm_up(work)  # type: ignore[attr-defined]
    reader_families()


def generate(family: str, seed: int, d: str) -> Case:
    rng = random.Random(f"{family}:{seed}")
    if family in STRUCTURED:
        case: Case = importlib.import_module(STRUCTURED[family]).generate(rng, d)
        case.seed = seed
        return case
    if family.startswith("selftest:"):  # cases that must be caught as failures (tests of the harness itself)
        return Case("selftest", family.split(":", 1)[1], d)
    if family.startswith("bytes:"):
        fmt = family.split(":", 1)[1]
        if fmt not in _SAMPLES:
            reader_families()
        src = rng.choice(_SAMPLES[fmt])
        with open(src, "rb") as f:
            data = mutate_bytes(rng, f.read())
        return Case("model", write(os.path.join(d, "m" + os.path.splitext(src)[1]), data), d)
    raise KeyError(f"unknown fuzz family {family!r}; known: {', '.join(families())}")


def _feeds(graph: Any, seed: int) -> dict[str, np.ndarray] | None:
    g = np.random.default_rng(seed)
    feeds = {}
    for vi in graph.inputs:
        shape = vi.type.shape
        if shape is None:
            return None
        # a symbolic batch runs as 1 sample, and as an empty batch (0) in one case of eight
        empty = seed % 8 == 7
        dims = [d if isinstance(d, int) else (0 if k == 0 and empty else 1) for k, d in enumerate(shape)]
        if any(d < 0 or d > _MAX_INPUT_ELEMENTS for d in dims) or math.prod(dims) > _MAX_INPUT_ELEMENTS:
            return None
        dt = np.dtype(vi.type.dtype)
        feeds[vi.name] = (g.standard_normal(dims) * 3).astype(dt) if dt.kind == "f" else np.ones(dims, dt)
    return feeds


def exercise(case: Case) -> None:
    """Everything a user could do with the case; raises what convertmodel raises."""
    if case.kind == "selftest":
        _selftest(case.path)
        return
    if case.kind == "data":
        from convertmodel.data import open_dataset

        ds = open_dataset(case.path, **case.options)
        for _ in ds.batches(batch_size=2):
            pass
        return
    import convertmodel

    m = convertmodel.load(case.path, **case.options)
    feeds = _feeds(m.graph, case.seed)
    if case.run and feeds is not None:
        m.predict(feeds)
    if case.quantize and not m.is_quantized:
        q = m.quantize()
        out = os.path.join(case.directory, "fuzz-out.q8")
        q.save(out)
        q2 = convertmodel.load(out)
        if case.run and feeds is not None:
            q2.predict(feeds)


def _selftest(what: str) -> None:
    import signal
    import time

    if what == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif what == "hang":
        time.sleep(3600)
    elif what == "memory":
        np.ones(1 << 40, np.uint8)  # 1 TiB: far above the worker's RLIMIT_AS
    elif what == "untyped":
        raise ValueError("an untyped exception")
    elif what == "typed":
        from convertmodel.errors import InvalidModelError

        raise InvalidModelError("a typed error")
