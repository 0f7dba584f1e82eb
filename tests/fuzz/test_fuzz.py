"""The CI fuzz budget: a few thousand structure-aware cases over every reader, the .q8 loader and the data
loaders, each in a worker subprocess under a 3 GiB address-space cap and a 10 s per-case watchdog. Only
success or a documented ConvertModelError is allowed: no untyped exception, crash, hang or MemoryError.
A failure prints ``python scripts/fuzz.py --replay FAMILY:SEED`` for each case (docs/robustness.md)."""

from __future__ import annotations

import time

import pytest

from tests.fuzz.generators import families
from tests.fuzz.runner import FAILURES, run_cases

#: Cases per family in CI, and the seed range they start at (a long campaign uses other seeds).
STRUCTURED_CASES = 1000
BYTES_CASES = 300
SEED0 = 10_000_000


def _budget(family: str) -> int:
    return BYTES_CASES if family.startswith("bytes:") else STRUCTURED_CASES


@pytest.mark.slow
@pytest.mark.parametrize("family", families())
def test_fuzz_family_gives_only_typed_errors(family: str) -> None:
    t0 = time.monotonic()
    s = run_cases(((family, SEED0 + i) for i in range(_budget(family))), deadline=t0 + 60)
    counts: dict[str, int] = dict(s.counts.get(family, {}))
    assert sum(counts.values()) >= min(_budget(family), 50), f"too few cases ran: {dict(counts)}"
    bad = [o for o in s.failures if o.kind in FAILURES or o.kind == "generator"]
    assert not bad, f"{family}: {dict(counts)}\n" + "\n".join(
        f"  {o.kind}: {o.detail[:200]}  (python scripts/fuzz.py --replay {o.family}:{o.seed})" for o in bad[:20]
    )
    assert counts.get("typed", 0) + counts.get("ok", 0) == sum(counts.values())


def test_harness_counts_every_kind_of_failure() -> None:
    cases = [(f"selftest:{k}", 0) for k in ("typed", "untyped", "memory", "crash", "hang", "typed")]
    s = run_cases(cases, timeout=5)
    got = [(o.family.split(":")[1], o.kind) for o in s.failures]
    assert got == [("untyped", "untyped"), ("memory", "memory"), ("crash", "crash"), ("hang", "hang")]
    assert "SIGSEGV" in s.failures[2].detail
    # the worker was replaced after the crash and the hang: the last case still ran
    assert s.total("typed") == 2 and s.total() == 6
