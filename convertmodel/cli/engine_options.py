"""``--engine``, ``--master``, ``--partitions``, ``--conf``: where verify and predict run (docs/engines.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def engine_options(fn: F) -> F:
    """The four engine options, in this order in ``--help``."""
    fn = click.option(
        "--conf",
        "spark_conf",
        multiple=True,
        metavar="KEY=VALUE",
        help="A Spark setting, passed to the session as is (repeatable), e.g. --conf spark.executor.memory=4g.",
    )(fn)
    fn = click.option(
        "--partitions",
        type=click.IntRange(1),
        default=None,
        help="Spark partitions (whole batches each; default 2 x the cluster's default parallelism).",
    )(fn)
    fn = click.option(
        "--master",
        default=None,
        metavar="URL",
        help="Spark master: local[*] (default), local[N], local[N,RETRIES], spark://HOST:PORT, yarn, k8s://URL.",
    )(fn)
    return click.option(
        "--engine",
        type=click.Choice(["local", "spark"]),
        default="local",
        show_default=True,
        help="Run in this process, or on Apache Spark (pip install 'convertmodel[spark]'; Java 17).",
    )(fn)


def make_engine(engine: str, master: str | None, partitions: int | None, spark_conf: tuple[str, ...]) -> Any:
    """The engine object the options ask for; Spark-only options without ``--engine spark`` are an error."""
    from convertmodel.engines import get_engine
    from convertmodel.errors import UsageError

    if engine != "spark":
        given = [n for n, v in (("--master", master), ("--partitions", partitions), ("--conf", spark_conf)) if v]
        if given:
            raise UsageError(f"{', '.join(given)} need --engine spark")
        return get_engine("local")
    from convertmodel.engines.spark import parse_conf

    return get_engine("spark", master=master or "local[*]", partitions=partitions, conf=parse_conf(spark_conf))


def engine_progress(bar: Any, task: Any) -> Callable[[int, int], None]:
    def step(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return step


@contextlib.contextmanager
def stopping(engine: Any) -> Iterator[Any]:
    """Stop the engine's session (if it started one) when the command is done."""
    try:
        yield engine
    finally:
        stop = getattr(engine, "stop", None)
        if stop is not None:
            stop()


def model_refs(fp32: Any, fp32_path: str | None, int8: Any, int8_path: str | None) -> tuple[Any, Any]:
    """ModelRefs naming the .q8 files the models were loaded from, so Spark tasks map them in place."""
    from convertmodel.engines import ModelRef

    def ref(m: Any, p: str | None) -> Any:
        return ModelRef(m, p if p and p.lower().endswith(".q8") else None)

    return ref(fp32, fp32_path), ref(int8, int8_path)


def fail_on_unreadable(unreadable: list[dict[str, Any]], total: int, data: str) -> None:
    """After the report: samples that could not be read make the command fail (exit 5), naming the first."""
    if unreadable:
        from convertmodel.errors import FormatError

        first = unreadable[0]
        raise FormatError(
            data,
            f"{len(unreadable)} of {total} samples could not be read (the report lists them); first: {first['error']}",
        )
