"""The non-terminal progress lines: rate and ETA count from the first update, not from a slow start-up."""

from __future__ import annotations

import pytest

from convertmodel.cli.progress import LogProgress


def test_rate_and_eta_exclude_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    lp = LogProgress()
    now = [0.0]
    lp._clock = lambda: now[0]  # type: ignore[method-assign]
    task = lp.add_task("verify fp32 vs int8 (spark)", total=100)
    now[0] = 15.0  # a Spark session took 15 s to start: the engine's first poll reports 0 done
    lp.update(task, completed=0)
    now[0] = 16.0
    lp.update(task, completed=25)
    now[0] = 19.0
    with lp:
        lp.update(task, completed=100)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "verify fp32 vs int8 (spark): 25/100 in 16.0 s (25.0/s, ETA 3 s)"
    assert lines[-1] == "verify fp32 vs int8 (spark): 100/100 in 19.0 s (25.0/s)"


def test_single_update_uses_elapsed_time(capsys: pytest.CaptureFixture[str]) -> None:
    lp = LogProgress()
    now = [0.0]
    lp._clock = lambda: now[0]  # type: ignore[method-assign]
    task = lp.add_task("predict", total=10)
    now[0] = 2.0
    lp.update(task, advance=10)
    assert capsys.readouterr().err.strip() == "predict: 10/10 in 2.0 s (5.0/s)"
