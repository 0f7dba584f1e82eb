"""The Spark engine: batches split by sample index into partitions, one task per partition.

The driver cuts ``[0, total)`` into the same batches as the local engine and groups consecutive
batches into partitions. Each task opens the models itself (engines/task.py): a .q8 path every
executor can read is memory-mapped where it is; otherwise (a model in memory, or a source file
that is not a .q8) the driver writes a .q8 into a temporary folder, and ships it with
``SparkContext.addFile`` when the master is not local. Tasks return per-sample results; the driver
checks that every batch came back exactly once (failed attempts are retried by Spark and their
results discarded), counts samples done with an accumulator for the progress bar, and returns the
results in sample order.

pyspark is imported here only, when a job starts (``pip install 'convertmodel[spark]'``, Java 17).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from convertmodel.engines.base import BatchResult, Job, ProgressFn, batch_starts, split_batches
from convertmodel.engines.task import TaskSpec, blas_threads, raise_task_error, rebuild_error, run_partition
from convertmodel.errors import ConvertModelError, InvalidModelError, ModelIOError, UsageError

#: Spark master URLs accepted by --master (https://spark.apache.org/docs/latest/submitting-applications.html).
_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\s*\d+)?\])?|local-cluster\[.+\]|spark://.+|yarn|k8s://.+|mesos://.+)$")

#: Our own settings, passed as --conf too: a partition whose first attempt fails (retry tests).
FAIL_KEY = "spark.convertmodel.failFirstAttempt"
#: "true"/"false": ship .q8 files with addFile (default: when the master is not local).
SHIP_KEY = "spark.convertmodel.shipModels"


class SparkJobError(ModelIOError):
    """A Spark job failed (tasks exhausted their retries, the JVM could not start, executors lost)."""


def parse_conf(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["spark.executor.memory=4g", ...]`` -> dict; a missing '=' is a usage error."""
    out: dict[str, str] = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--conf {it!r}: expected KEY=VALUE, e.g. spark.executor.memory=4g")
        out[key.strip()] = value
    return out


class SparkEngine:
    """Runs jobs on Spark. ``session``: an existing SparkSession to use (it is not stopped)."""

    name = "spark"

    def __init__(
        self,
        master: str = "local[*]",
        partitions: int | None = None,
        conf: Mapping[str, str] | None = None,
        *,
        session: Any = None,
        app_name: str = "convertmodel",
        fail_first_attempt: int | None = None,
    ) -> None:
        if session is None and not _MASTER.match(master):
            raise UsageError(
                f"--master {master!r}: not a Spark master URL (local[*], local[N], local[N,F], spark://HOST:PORT, "
                "yarn, k8s://https://HOST:PORT)"
            )
        if partitions is not None and partitions < 1:
            raise UsageError(f"--partitions must be >= 1, got {partitions}")
        self.master = master
        self.partitions = partitions
        self.conf = dict(conf or {})
        self.app_name = app_name
        self.fail_first_attempt = fail_first_attempt
        self._spark = session
        self._own = session is None
        self.last_timing: dict[str, float] = {}
        #: The last job: master, partitions, task attempts that failed (and were retried).
        self.last_job: dict[str, Any] = {}
        self._last_partitions = 0

    # -- session ----------------------------------------------------------------------------
    def session(self) -> Any:
        if self._spark is not None:
            return self._spark
        t0 = time.perf_counter()
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:
            raise UsageError(
                f"the spark engine needs pyspark and Java 17: pip install 'convertmodel[spark]' ({e})"
            ) from e
        b = SparkSession.builder.master(self.master).appName(self.app_name)
        b = b.config("spark.ui.showConsoleProgress", "false")
        if self.master.startswith("local") and "spark.pyspark.python" not in self.conf:
            b = b.config("spark.pyspark.python", sys.executable)  # the workers run this interpreter
        for k, v in self.conf.items():
            b = b.config(k, v)
        existing = SparkSession.getActiveSession()
        try:
            self._spark = b.getOrCreate()
            self._own = existing is None  # a session someone else started is theirs to stop
        except Exception as e:  # the JVM did not start: no Java, a bad setting
            raise SparkJobError(f"spark: cannot start a session on {self.master}: {_first_line(e)}") from e
        self._spark.sparkContext.setLogLevel(self.conf.get("spark.convertmodel.logLevel", "ERROR"))
        self.last_timing = {"session_seconds": time.perf_counter() - t0}
        return self._spark

    def stop(self) -> None:
        if self._spark is not None and self._own:
            self._spark.stop()
        self._spark = None

    def _setting(self, key: str) -> str | None:
        if key in self.conf:
            return self.conf[key]
        return self.session().sparkContext.getConf().get(key, None)  # type: ignore[no-any-return]

    # -- running a job ------------------------------------------------------------------------
    def plan(self, job: Job) -> list[tuple[int, int]]:
        """The (start, stop) sample range of each partition; starts on batch boundaries."""
        n_batches = math.ceil(job.total / job.batch_size)
        parts = self.partitions or 2 * self.session().sparkContext.defaultParallelism
        runs = split_batches(n_batches, parts)
        return [(b0 * job.batch_size, min(b1 * job.batch_size, job.total)) for b0, b1 in runs]

    def run(self, job: Job, progress: ProgressFn | None = None) -> list[BatchResult]:
        if job.total <= 0:
            return []
        with self._prepared(job) as (sc, rdd, counter):
            items = self._wait(sc, rdd.collect, counter, progress, job.total)
        errors = [v for kind, v in items if kind == "error"]
        if errors:
            raise_task_error(errors[0])
        results = sorted((v for kind, v in items if kind == "batch"), key=lambda r: r.start)
        _check_complete(results, job)
        return results

    def write_parquet(self, job: Job, out: str, schema: str, to_rows: Any, progress: ProgressFn | None = None) -> None:
        """Run ``job`` and write ``to_rows(batch result)`` of every batch as Parquet at ``out``, from the
        tasks. A local path is written to a temporary folder beside it and renamed when the job succeeded;
        a URI (hdfs://, s3a://) is written in place by Spark's committer (which publishes only on success)."""
        from convertmodel.engines.predict import atomic_dir

        spark = self.session()
        with self._prepared(job) as (sc, rdd, counter):
            df = spark.createDataFrame(rdd.flatMap(functools.partial(_rows_or_raise, to_rows)), schema)
            if "://" in out:
                self._wait(sc, lambda: df.write.mode("errorifexists").parquet(out), counter, progress, job.total)
                return
            with atomic_dir(out) as tmp:
                self._wait(sc, lambda: df.write.parquet(tmp), counter, progress, job.total)

    @contextlib.contextmanager
    def _prepared(self, job: Job) -> Iterator[tuple[Any, Any, Any]]:
        """The job's task spec (models placed, ranges planned) as an RDD of per-batch items."""
        sc = self.session().sparkContext
        fail = self.fail_first_attempt
        if fail is None and self._setting(FAIL_KEY) is not None:
            fail = int(self._setting(FAIL_KEY))  # type: ignore[arg-type]
        ranges = self.plan(job)
        self._last_partitions = len(ranges)
        local = _is_local(self.session())
        blas = job.threads or (blas_threads() if local else 0)
        # Runtime threads for a job that asks for 0: on a local master the tasks share the driver's cores.
        share = max(1, (os.cpu_count() or 1) // max(1, sc.defaultParallelism)) if local else 0
        tmp = tempfile.mkdtemp(prefix="convertmodel-spark-")
        try:
            spec = TaskSpec(
                self._place_models(job, tmp, sc),
                job.open_data,
                job.preprocess,
                job.batch_size,
                job.total,
                job.fn,
                ranges,
                job.threads or share,
                fail,
                uuid.uuid4().int & 0x7FFFFFFF,
                blas,
            )
            counter, unreadable = sc.accumulator(0), sc.accumulator(0)
            n = len(ranges)
            body = functools.partial(run_partition, spec, (counter, unreadable))
            rdd = sc.parallelize(range(n), n).mapPartitionsWithIndex(body)
            yield sc, rdd, counter
            self.last_job["unreadable"] = int(unreadable.value)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _ship(self) -> bool:
        v = self._setting(SHIP_KEY)
        if v is None:
            return not _is_local(self.session())
        return v.strip().lower() in ("1", "true", "yes")

    def _place_models(self, job: Job, tmp: str, sc: Any) -> dict[str, tuple[str, bool]]:
        ship = self._ship()
        out: dict[str, tuple[str, bool]] = {}
        for name, ref in job.models.items():
            path = ref.path
            if path is None or not path.lower().endswith(".q8"):
                path = os.path.join(tmp, f"{name}.q8")
                ref.model.save(path)
            if not ship:
                out[name] = (os.path.abspath(path), False)
                continue
            unique = os.path.join(tmp, f"{uuid.uuid4().hex[:12]}-{os.path.basename(path)}")
            try:
                os.link(path, unique)
            except OSError:
                shutil.copyfile(path, unique)
            sc.addFile(unique)
            out[name] = (unique, True)
        return out

    def _wait(self, sc: Any, action: Any, counter: Any, progress: ProgressFn | None, total: int) -> Any:
        """Run the Spark action in a thread; show samples done from the accumulator meanwhile."""
        box: dict[str, Any] = {}
        group = f"convertmodel-{uuid.uuid4().hex[:8]}"

        def work() -> None:
            try:
                sc.setJobGroup(group, "convertmodel", interruptOnCancel=True)
                box["value"] = action()
            except BaseException as e:  # handed to the driver thread below
                box["error"] = e

        th = threading.Thread(target=work, daemon=True)
        th.start()
        try:
            while th.is_alive():
                th.join(0.2)
                if progress:
                    progress(min(int(counter.value), total), total)
        except KeyboardInterrupt:
            sc.cancelJobGroup(group)
            raise
        self.last_job = {"master": str(sc.master), "partitions": self._last_partitions, **_task_counts(sc, group)}
        if "error" in box:
            e = box["error"]
            if isinstance(e, ConvertModelError):
                raise e
            typed = _typed_task_error(str(e))
            if typed is not None:
                raise typed from e
            raise SparkJobError(f"spark: job failed: {_root_cause(e)}") from e
        if progress:
            progress(total, total)
        return box.get("value")


#: How a task's ConvertModelError crosses a Spark write job (which has no result channel): in the message.
_TAG = "convertmodel-error"


def _rows_or_raise(to_rows: Any, item: tuple[str, Any]) -> Any:
    kind, v = item
    if kind == "error":
        cls, msg = v
        raise RuntimeError(f"{_TAG} {cls.__name__}: {msg}")
    return to_rows(v)


def _typed_task_error(text: str) -> ConvertModelError | None:
    import convertmodel.errors as errors

    m = re.search(_TAG + r" (\w+): (.+)$", text, flags=re.M)
    cls = getattr(errors, m.group(1), None) if m else None
    if m is None or not (isinstance(cls, type) and issubclass(cls, ConvertModelError)):
        return None
    return rebuild_error(cls, m.group(2))


def _task_counts(sc: Any, group: str) -> dict[str, int]:
    """Task attempts of the job group's stages: completed, and failed (each failure was retried or fatal)."""
    tr = sc.statusTracker()
    done = failed = 0
    for j in tr.getJobIdsForGroup(group):
        info = tr.getJobInfo(j)
        for sid in info.stageIds if info else ():
            st = tr.getStageInfo(sid)
            if st:
                done += st.numCompletedTasks
                failed += st.numFailedTasks
    return {"tasks_completed": done, "task_attempts_failed": failed}


def _is_local(spark: Any) -> bool:
    return str(spark.sparkContext.master).startswith("local")


def _check_complete(results: list[BatchResult], job: Job) -> None:
    """Every batch exactly once, and every sample of it either read or reported unreadable."""
    starts = [r.start for r in results]
    want = batch_starts(job.total, job.batch_size)
    if starts != want:
        raise InvalidModelError(f"spark: {len(starts)} batches came back for {len(want)} (starts {starts[:6]}...)")
    for r in results:
        end = min(r.start + job.batch_size, job.total)
        seen = sorted(r.indices + [i for i, _, _ in r.errors])
        if seen != list(range(r.start, end)):
            raise InvalidModelError(f"spark: batch at sample {r.start} covers {len(seen)} of {end - r.start} samples")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _root_cause(e: BaseException) -> str:
    """The Python exception line a failed task printed, else the first line of the Java error."""
    text = str(e)
    found = re.findall(r"^(\w+(?:\.\w+)*(?:Error|Exception|Failure): .+)$", text, flags=re.M)
    py = [f for f in found if not f.startswith(("org.", "java.", "py4j."))]
    return (py[-1] if py else _first_line(e))[:300]
