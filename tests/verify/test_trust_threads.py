"""Issue 15 item 4: --threads caps BLAS for verify's fp32 side (threadpoolctl), through the CLI and when the
Python API runs the batches itself; the report says what BLAS ran with (threads.blas)."""

from __future__ import annotations

import json

import pytest

import convertmodel
from convertmodel.data.datasets import open_dataset
from convertmodel.data.preprocess import preset
from convertmodel.runtime.threads import blas_threads
from convertmodel.verify.runner import VerifyOptions, run_verify
from tests.cli import run_cli
from tests.helpers import SUBSET_IMAGES, SUBSET_LABELS, fixture_model


def test_run_verify_caps_blas_itself() -> None:
    pytest.importorskip("threadpoolctl")
    fp32 = convertmodel.load(fixture_model("lenet5"))
    ds = open_dataset(SUBSET_IMAGES, labels=SUBSET_LABELS)
    before = blas_threads()
    res = run_verify(fp32, fp32.quantize(), ds, preset("fmnist"), VerifyOptions(batch_size=16, limit=32, threads=1))
    assert res.blas_threads == 1
    assert blas_threads() == before  # restored after the run


@pytest.mark.parametrize("threads", [1, 2])
def test_verify_cli_threads_reach_blas(threads: int, capsys) -> None:
    args = ["--json", "verify", fixture_model("lenet5"), "--data", SUBSET_IMAGES, "--limit", "32"]
    code, out, err = run_cli([*args, "--threads", str(threads)], capsys)
    assert code == 0, err
    rep = json.JSONDecoder().raw_decode(out)[0]
    assert rep["threads"]["blas"] == threads
