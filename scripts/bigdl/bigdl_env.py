"""Create (or reuse) the environments that run real BigDL on this machine, outside the repository.

* BigDL 2.4: a venv with pyspark 3.4.4, numpy<1.24, six, and the bigdl-dllib-spark3 2.4.0 + bigdl-core 2.4.0.dev0
  wheels installed --no-deps (their pinned pyspark 3.1.3 breaks on Python 3.11 / Java 17).
* BigDL 0.3.0: the BigDL 0.3.0 wheel's jar-with-dependencies plus pyspark 2.4.8's jars (scala-library,
  spark-core, hadoop), for the Scala 2.11 program in scripts/bigdl/Make.scala (Debian's scala package).

Wheels are fetched with `pip download --no-deps` into the cache (CONVERTMODEL_BIGDL_CACHE, default
$CONVERTMODEL_CACHE/bigdl, default ~/.cache/convertmodel/bigdl) and checked against the sha256 pins below.  Used by scripts/make_bigdl_fixtures.py and
by tests/writers/test_bigdl_writer.py (through importlib; this file imports nothing outside the standard library).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

CACHE = os.environ.get("CONVERTMODEL_BIGDL_CACHE") or os.path.join(
    os.environ.get("CONVERTMODEL_CACHE") or os.path.expanduser("~/.cache/convertmodel"), "bigdl"
)
VENV24 = os.path.join(CACHE, "venv24")
WHEELS24 = {
    "bigdl_dllib_spark3-2.4.0-py3-none-manylinux1_x86_64.whl": (
        "bigdl-dllib-spark3==2.4.0",
        "ecaf501707b0546bccfb6066570396630ec6b9698ad2d385a48a47354a5ceea6",
    ),
    "bigdl_core-2.4.0.dev0-py3-none-manylinux2010_x86_64.whl": (
        "bigdl-core==2.4.0.dev0",
        "d7ad922d9b99c6625507029769acdb00e633553a952429425d0d6cc490ec9684",
    ),
}
VENV24_DEPS = ["pyspark==3.4.4", "numpy<1.24", "six"]
WHEEL03 = (
    "BigDL-0.3.0-py2.py3-none-manylinux1_x86_64.whl",
    "BigDL==0.3.0",
    "f03ece156ed7c3eee6b1c2d9a1ca72c717b39c6ea63ef70adb84235e5a33f160",
)
PYSPARK248 = (
    "pyspark-2.4.8.tar.gz",
    "pyspark==2.4.8",
    "3a19b71b8dc8dd91ebc943604a05e1ab01bce052456d42937035632d852d78dc",
)
OPENS = (
    "java.lang java.lang.invoke java.lang.reflect java.io java.net java.nio java.util java.util.concurrent "
    "java.util.concurrent.atomic sun.nio.ch sun.nio.cs sun.security.action sun.util.calendar"
).split()
JAVA_OPTS = " ".join(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in OPENS)


class BigDLEnvError(RuntimeError):
    pass


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(fname: str, req: str, sha: str | None, extra: tuple[str, ...] = ()) -> str:
    path = os.path.join(CACHE, fname)
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *extra, req, "-d", CACHE]
        subprocess.run(cmd, check=True)
    if not os.path.exists(path):
        raise BigDLEnvError(f"pip download {req} did not produce {fname}")
    if sha is not None and _sha256(path) != sha:
        raise BigDLEnvError(f"{path}: sha256 mismatch (expected {sha})")
    return path


def java_available() -> str | None:
    """The `java` executable, or None when Java is not installed."""
    return shutil.which("java")


def java_env(python: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env["JDK_JAVA_OPTIONS"] = JAVA_OPTS
    if python:
        env["PYSPARK_PYTHON"] = python
        env["PYSPARK_DRIVER_PYTHON"] = python
    # another pyspark's SPARK_HOME (the project's Spark engine uses pyspark 4) would replace the venv's jars
    for k in ("OPENBLAS_CORETYPE", "PYTHONPATH", "SPARK_HOME", "PYSPARK_SUBMIT_ARGS", "SPARK_CONF_DIR"):
        env.pop(k, None)
    return env


def venv24() -> str:
    """Path of the BigDL 2.4 venv's python, creating the venv on first use."""
    py = os.path.join(VENV24, "bin", "python")
    stamp = os.path.join(VENV24, ".complete")
    if os.path.exists(stamp):
        return py
    wheels = [_download(f, req, sha) for f, (req, sha) in WHEELS24.items()]
    if os.path.exists(VENV24):
        shutil.rmtree(VENV24)
    subprocess.run([sys.executable, "-m", "venv", VENV24], check=True)
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *VENV24_DEPS], check=True)
    subprocess.run([*pip, "--no-deps", *wheels], check=True)
    with open(stamp, "w") as f:
        f.write("ok\n")
    return py


def bigdl03_classpath() -> str:
    """Classpath for BigDL 0.3.0 in local mode: its jar-with-dependencies + pyspark 2.4.8's jars."""
    root = os.path.join(CACHE, "bigdl-0.3.0")
    stamp = os.path.join(root, ".complete")
    if not os.path.exists(stamp):
        wheel = _download(*WHEEL03)
        os.makedirs(root, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            jar = next(n for n in z.namelist() if n.endswith("jar-with-dependencies.jar"))
            with z.open(jar) as src, open(os.path.join(root, "bigdl-0.3.0-jar-with-dependencies.jar"), "wb") as dst:
                shutil.copyfileobj(src, dst)
        # the sdist only for its deps/jars; without --no-build-isolation (and setuptools<70) pypandoc breaks it
        sdist = _download(*PYSPARK248, extra=("--no-build-isolation",))
        with tarfile.open(sdist) as t:
            members = [m for m in t.getmembers() if "/deps/jars/" in m.name and m.name.endswith(".jar")]
            for m in members:
                m.name = os.path.join("jars", os.path.basename(m.name))
                t.extract(m, root)
        with open(stamp, "w") as f:
            f.write("ok\n")
    jars = [os.path.join(root, "bigdl-0.3.0-jar-with-dependencies.jar"), *sorted(glob.glob(f"{root}/jars/*.jar"))]
    return ":".join(jars)
