"""One SparkSession for the whole module that asks for it (``local[2,2]``: two worker threads, and a failed task
is retried once, which plain ``local[2]`` never does). pyspark and Java are the ``spark`` extra: a machine
without them skips, CI (CONVERTMODEL_REQUIRE_MODELS=1) fails instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

MASTER = "local[2,2]"


def _missing(msg: str) -> None:
    if os.environ.get("CONVERTMODEL_REQUIRE_MODELS"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        _missing("pyspark missing: pip install 'convertmodel[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _missing("java missing: apt-get install openjdk-17-jre-headless")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import sys

    s = (
        SparkSession.builder.master(MASTER)
        .appName("convertmodel-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()
