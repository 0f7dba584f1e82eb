"""The CLI never hangs on a FIFO, never writes an output over an input, never leaves a partial file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from convertmodel.errors import EXIT_CORRUPT_FILE, EXIT_IO, EXIT_USAGE
from convertmodel.fsutil import TMP_TAG
from tests.cli import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENET = os.path.join(ROOT, "fixtures", "fmnist", "lenet5.onnx")
DATA = os.path.join(ROOT, "fixtures", "fmnist", "data", "t10k-1000-images-idx3-ubyte.gz")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_inspect_fifo_does_not_block(tmp_path) -> None:
    fifo = tmp_path / "x.q8"
    os.mkfifo(fifo)
    p = subprocess.run(
        [sys.executable, "-m", "convertmodel", "inspect", str(fifo)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == EXIT_CORRUPT_FILE, p.stderr
    assert p.stderr.strip() == f"error: {fifo}: is a named pipe (FIFO), not a regular file; expected a model file"


@pytest.fixture
def work(tmp_path):
    m = tmp_path / "m.onnx"
    shutil.copy(LENET, m)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    return tmp_path, str(m), str(x)


def _intact(m: str, x: str) -> None:
    with open(m, "rb") as a, open(LENET, "rb") as b:
        assert a.read() == b.read()
    assert np.load(x).shape == (1, 1, 28, 28)


def test_predict_out_over_model_or_input_is_refused(work, capsys) -> None:
    d, m, x = work
    (d / "link.npy").symlink_to(x)
    for out in (m, x, str(d / "link.npy")):
        code, _, err = run_cli(["predict", m, "--input", x, "--out", out], capsys)
        assert code == EXIT_IO and "refusing to write the .npy output over the input file" in err, err
    _intact(m, x)
    code, _, _ = run_cli(["-q", "predict", m, "--input", x, "--out", str(d / "y.npy")], capsys)
    assert code == 0 and np.load(d / "y.npy").shape == (1, 10)
    assert [n for n in os.listdir(d) if TMP_TAG in n or n.endswith(".tmp.npy")] == []


def test_verify_and_convert_outputs_over_inputs_are_refused(work, capsys) -> None:
    _, m, x = work
    for args in (
        ["verify", m, "--data", x, "--json", x],
        ["verify", m, "--data", x, "--json", m],
        ["convert", "--in", m, "--out", m],
    ):
        code, _, err = run_cli(args, capsys)
        assert code == EXIT_IO and "refusing to write" in err, (args, err)
    _intact(m, x)


def test_max_drop_nan_is_a_usage_error(work, capsys) -> None:
    _, m, _ = work
    code, _, err = run_cli(["verify", m, "--data", DATA, "--max-drop", "nan"], capsys)
    assert code == EXIT_USAGE and "'nan' must be a finite number" in err


def test_empty_and_truncated_data_are_not_interrupted(work, capsys) -> None:
    d, m, _ = work
    e = d / "e.npy"
    np.save(e, np.zeros((0, 1, 28, 28), np.float32))
    code, _, err = run_cli(["verify", m, "--data", str(e)], capsys)
    assert code == EXIT_CORRUPT_FILE and "the data set is empty" in err, err
    t = d / "t10k-images-idx3-ubyte.gz"
    with open(DATA, "rb") as f:
        t.write_bytes(f.read()[:60])
    code, _, err = run_cli(["verify", m, "--data", str(t)], capsys)
    assert code == EXIT_CORRUPT_FILE and "truncated or corrupt compressed data" in err, err
