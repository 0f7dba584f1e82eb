"""The engine interface without Spark: batch cuts, index ranges, unreadable samples, partitioned == whole."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convertmodel
from convertmodel.data.datasets import open_dataset
from convertmodel.data.preprocess import preset
from convertmodel.engines import ModelRef, get_engine
from convertmodel.engines.base import Job, read_batches, run_range, split_batches
from convertmodel.errors import UsageError
from convertmodel.verify.batch import VerifyBatch
from convertmodel.verify.runner import VerifyOptions, reduce_results, run_verify
from tests.helpers import FIXTURES

LENET = os.path.join(FIXTURES, "fmnist", "lenet5.onnx")
IMAGES = os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-images-idx3-ubyte.gz")


def test_split_batches_even_and_complete():
    assert split_batches(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split_batches(2, 8) == [(0, 1), (1, 2)]
    assert split_batches(1, 1) == [(0, 1)]


def test_any_index_range_reads_the_same_samples():
    ds = open_dataset(IMAGES)
    whole = np.concatenate([b.x for b in ds.batches(64, limit=300)])
    part = np.concatenate([b.x for b in ds.batches(64, limit=300, start=128)])
    np.testing.assert_array_equal(part, whole[128:])
    b = next(ds.batches(5, limit=300, start=290))
    assert b.ids == [str(i) for i in range(290, 295)] and len(b.digests) == 5


def _image_folder(tmp_path, n=12, corrupt=(4,)):
    from PIL import Image

    from convertmodel.data.datasets import read_idx

    x = read_idx(IMAGES, n)
    labels = read_idx(os.path.join(FIXTURES, "fmnist", "data", "t10k-1000-labels-idx1-ubyte.gz"), n)
    for i in range(n):
        d = tmp_path / "imgs" / f"c{labels[i]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(d / f"{i:03d}.png")
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    for k in corrupt:
        files[k].write_bytes(b"not a png")
    return str(tmp_path / "imgs"), [str(f) for f in files]


def test_unreadable_sample_is_reported_and_the_rest_run(tmp_path):
    root, files = _image_folder(tmp_path)
    ds = open_dataset(root)
    got = list(read_batches(ds, preset("fmnist"), 0, len(ds), 5))
    assert [g[0] for g in got] == [0, 5, 10]
    _start, indices, batch, errors, _ = got[0]
    assert indices == [0, 1, 2, 3] and len(batch.x) == 4 and batch.ids == files[:4]
    assert [(i, sid) for i, sid, _ in errors] == [(4, files[4])] and "cannot decode image" in errors[0][2]
    assert got[1][3] == [] and len(got[1][2].x) == 5


def test_partitioned_ranges_give_the_whole_run_bit_for_bit():
    """What a distributed engine does (ranges on batch boundaries, reduced in order) equals one pass."""
    fp32 = convertmodel.load(LENET)
    int8 = fp32.quantize()
    ds = open_dataset(IMAGES)
    opts = VerifyOptions(batch_size=50, limit=430)
    whole = run_verify(fp32, int8, ds, preset("fmnist"), opts)
    fn = VerifyBatch("top1")
    job = Job({}, ds.reopen, preset("fmnist"), 50, 430, fn)
    models = {"fp32": fp32, "int8": int8}
    results = []
    for start, stop in [(0, 150), (150, 400), (400, 430)]:  # three "tasks", each opening the data itself
        results += list(run_range(models, ds.reopen(), job, start, stop))
    parts = reduce_results("top1", results, ds.kind)
    assert whole.samples == parts.samples == 430
    assert (whole.fp32, whole.int8, whole.agreement, whole.data_hash) == (
        parts.fp32,
        parts.int8,
        parts.agreement,
        parts.data_hash,
    )
    assert sum(v["total"] for v in whole.fp32["per_class"].values()) == 430


def test_engine_names():
    assert get_engine().name == "local" and get_engine("local").name == "local"
    with pytest.raises(UsageError, match="unknown engine"):
        get_engine("dask")
    with pytest.raises(UsageError, match="not a Spark master URL"):
        get_engine("spark", master="localhost:7077")
    ref = ModelRef(None, "m.q8")
    assert ref.path == "m.q8"


def test_cli_engine_options_are_checked(capsys):
    from tests.cli import run_cli

    args = ["verify", LENET, "--data", IMAGES, "--limit", "10"]
    code, _, err = run_cli([*args, "--master", "yarn"], capsys)
    assert code == 2 and "--master need --engine spark" in err
    code, _, err = run_cli([*args, "--engine", "spark", "--conf", "spark.executor.memory"], capsys)
    assert code == 2 and "expected KEY=VALUE" in err
    code, _, err = run_cli([*args, "--engine", "spark", "--master", "localhost"], capsys)
    assert code == 2 and "not a Spark master URL" in err
    code, _, err = run_cli(["predict", LENET, "--data", IMAGES, "--out", "x.parquet"], capsys)
    assert code == 2 and "add --engine spark" in err


def test_help_and_import_do_not_load_pyspark():
    import subprocess
    import sys

    code = (
        "import sys, convertmodel, convertmodel.engines\n"
        "from convertmodel.cli.main import main\n"
        "try:\n    main(['verify', '--help'])\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['predict', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED' if any(m.split('.')[0] in ('pyspark', 'py4j') for m in sys.modules) else 'CLEAN')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().endswith("CLEAN") and "--engine" in r.stdout and "--partitions" in r.stdout


def test_task_memory_is_bounded_by_the_batch_not_the_range():
    """What one task runs (run_range) holds one batch at a time: 8x the samples, about the same peak."""
    import tracemalloc

    fp32 = convertmodel.load(LENET)
    models = {"fp32": fp32, "int8": fp32.quantize()}
    ds = open_dataset(IMAGES)
    job = Job({}, ds.reopen, preset("fmnist"), 64, 1000, VerifyBatch("top1"))
    list(run_range(models, ds, job, 0, 64))  # executors warm: weights packed, plans cached

    def peak(stop: int) -> int:
        tracemalloc.start()
        done = sum(len(r.indices) for r in run_range(models, ds, job, 0, stop))  # results not kept here
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert done == stop
        return p

    # Whole batches only: the layers' output buffers are reused from run to run (allocated in the warm-up,
    # before tracing), and a shorter last batch (1000 = 15 x 64 + 40) would allocate them once more: one batch.
    small, large = peak(128), peak(960)
    assert large < 1.5 * small, (small, large)  # one 960-sample batch would be ~7.5x
