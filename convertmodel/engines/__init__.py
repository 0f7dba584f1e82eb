"""Engines run verify's and predict's per-batch work: ``local`` (this process, the default) or ``spark``.

An engine takes a :class:`Job` (models, a data set split by sample index into batches, a per-batch
function) and returns :class:`BatchResult` objects, per-sample results of every batch, in sample
order. Metrics and reports are computed from those results the same way whatever engine ran them.
pyspark is imported only when the Spark engine starts a job (the ``spark`` extra).
"""

from __future__ import annotations

from typing import Any

from convertmodel.engines.base import BatchResult, Engine, Job, ModelRef, ProgressFn
from convertmodel.errors import UsageError

ENGINES = ("local", "spark")

__all__ = ["ENGINES", "BatchResult", "Engine", "Job", "ModelRef", "ProgressFn", "SparkEngine", "get_engine"]


def get_engine(engine: Any = None, **options: Any) -> Any:
    """An engine object from a name ("local", "spark" with SparkEngine's options) or an engine itself."""
    if engine is None or engine == "local":
        from convertmodel.engines.local import LocalEngine

        if options:
            raise UsageError(f"the local engine takes no options; got {', '.join(sorted(options))}")
        return LocalEngine()
    if engine == "spark":
        from convertmodel.engines.spark import SparkEngine

        return SparkEngine(**options)
    if isinstance(engine, str):
        raise UsageError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return engine


def __getattr__(name: str) -> Any:
    if name == "SparkEngine":
        from convertmodel.engines.spark import SparkEngine

        return SparkEngine
    raise AttributeError(f"module 'convertmodel.engines' has no attribute {name!r}")
