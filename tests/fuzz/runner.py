"""Run fuzz cases in worker subprocesses: a memory cap (RLIMIT_AS), a per-case watchdog, outcomes counted.

Each worker (``python -m tests.fuzz.worker``) runs many cases, one at a time, so process start-up
(numpy, onnx, protobuf imports) is paid once per worker, not per case. The parent sends a
``family seed`` line and waits at most ``timeout`` seconds for the one-line JSON answer; a worker
that does not answer in time is killed (SIGKILL) and the case counted as a hang; a worker that
dies (a signal such as SIGSEGV/SIGFPE, or the kernel's OOM) is counted as a crash. Either way a
fresh worker takes the next case. A case is deterministic in ``(family, seed)``: rerun one with
``python scripts/fuzz.py --replay FAMILY:SEED``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Outcomes that are failures of convertmodel (the target is 0 of each).
FAILURES = ("untyped", "crash", "hang", "memory")
#: Every outcome: success, a documented ConvertModelError, the failures, a bug in a generator.
OUTCOMES = ("ok", "typed", *FAILURES, "generator")

DEFAULT_RLIMIT_AS = 3 << 30
DEFAULT_TIMEOUT = 10.0
_READY_TIMEOUT = 120.0


@dataclass
class Outcome:
    family: str
    seed: int
    kind: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Summary:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Outcome] = field(default_factory=list)
    typed: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, o: Outcome) -> None:
        self.counts.setdefault(o.family, Counter())[o.kind] += 1
        if o.kind in FAILURES or o.kind == "generator":
            self.failures.append(o)
        if o.kind == "typed":
            self.typed.setdefault(o.family, Counter())[o.detail.split(":", 1)[0]] += 1

    def total(self, kind: str | None = None) -> int:
        return sum(sum(c.values()) if kind is None else c[kind] for c in self.counts.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "counts": {f: {k: c[k] for k in OUTCOMES} for f, c in sorted(self.counts.items())},
            "typed_errors": {f: dict(c.most_common()) for f, c in sorted(self.typed.items())},
            "failures": [o.__dict__ for o in self.failures],
        }


class Worker:
    """One worker subprocess with the memory cap applied before it imports anything heavy."""

    def __init__(self, rlimit_as: int, env: dict[str, str] | None = None) -> None:
        e = dict(os.environ)
        e.update(
            {
                "CM_FUZZ_RLIMIT_AS": str(rlimit_as),
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "PYTHONHASHSEED": "0",
                "PYTHONPATH": ROOT + os.pathsep + e.get("PYTHONPATH", ""),
            }
        )
        e.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=e,
        )
        line = self._read(_READY_TIMEOUT)
        if line is None or json.loads(line).get("ready") is not True:
            self.kill()
            raise RuntimeError(f"fuzz worker did not start: {line!r}")

    def _read(self, timeout: float) -> str | None:
        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return None
        raw = self.proc.stdout.readline()
        return raw.decode("utf-8", "replace") if raw else ""

    def run(self, family: str, seed: int, timeout: float) -> Outcome:
        assert self.proc.stdin is not None
        t0 = time.monotonic()
        try:
            self.proc.stdin.write(f"{family} {seed}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read(timeout)
        dt = time.monotonic() - t0
        if line is None:
            self.kill()
            return Outcome(family, seed, "hang", f"no answer within {timeout:.0f} s", dt)
        if line == "":
            rc = self.proc.wait()
            if rc < 0:
                name = signal.Signals(-rc).name if -rc in signal.Signals.__members__.values() else str(-rc)
                return Outcome(family, seed, "crash", f"killed by {name}", dt)
            return Outcome(family, seed, "crash", f"worker exited with status {rc}", dt)
        res = json.loads(line)
        return Outcome(family, seed, res["kind"], res.get("detail", ""), dt)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


def run_cases(
    cases: Iterable[tuple[str, int]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    rlimit_as: int = DEFAULT_RLIMIT_AS,
    env: dict[str, str] | None = None,
    deadline: float | None = None,
    recycle: int = 2000,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Summary:
    """Run ``(family, seed)`` cases in one worker at a time (respawned after a hang, crash or
    ``recycle`` cases); stop early at ``deadline`` (``time.monotonic()``)."""
    summary = Summary()
    worker: Worker | None = None
    done = 0
    try:
        for family, seed in cases:
            if deadline is not None and time.monotonic() > deadline:
                break
            if worker is None or not worker.alive or done >= recycle:
                if worker is not None:
                    worker.close()
                worker, done = Worker(rlimit_as, env), 0
            o = worker.run(family, seed, timeout)
            done += 1
            summary.add(o)
            if on_outcome is not None:
                on_outcome(o)
    finally:
        if worker is not None:
            worker.close()
    return summary
