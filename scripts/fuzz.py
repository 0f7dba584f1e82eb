"""Fuzz campaign over the readers, the .q8 loader and the data loaders (tests/fuzz/, docs/robustness.md).

    python scripts/fuzz.py --cases 50000 --out fuzz-counts.json        # a long campaign (run it under nice)
    python scripts/fuzz.py --families onnx,caffe --seconds 600
    python scripts/fuzz.py --replay onnx:1234                           # rerun one case in this process

Cases are spread round-robin over the families (default: every structured family plus one
``bytes:FORMAT`` family per registered reader that has a sample file under fixtures/). Each case
runs in a worker subprocess under an address-space cap (RLIMIT_AS) with a per-case watchdog; the
counts per family and outcome, the most frequent typed errors and every failure (with its seed, to
replay) are written as JSON. Exit status 1 when any failure (untyped exception, crash, hang,
MemoryError) was seen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.fuzz import generators  # noqa: E402
from tests.fuzz.runner import DEFAULT_RLIMIT_AS, DEFAULT_TIMEOUT, FAILURES, OUTCOMES, Summary, run_cases  # noqa: E402


def _replay(spec: str) -> int:
    import tempfile

    from convertmodel.errors import ConvertModelError

    family, seed = spec.rsplit(":", 1)
    generators.warm_up()
    d = tempfile.mkdtemp(prefix="cm-fuzz-replay-")
    case = generators.generate(family, int(seed), d)
    print(f"case files in {d}: {sorted(os.listdir(d))}")
    try:
        generators.exercise(case)
    except ConvertModelError as e:
        print(f"typed: {type(e).__name__}: {e}")
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    print("ok")
    return 0


def _table(s: Summary) -> str:
    head = "| family | cases | " + " | ".join(OUTCOMES) + " |"
    rows = [head, "|" + "---|" * (len(OUTCOMES) + 2)]
    for fam, c in sorted(s.counts.items()):
        rows.append(f"| {fam} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in OUTCOMES) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="total cases (spread over the families)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    ap.add_argument("--families", default=None, help="comma-separated (default: all)")
    ap.add_argument("--start-seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per-case watchdog, seconds")
    ap.add_argument("--rlimit-gib", type=float, default=DEFAULT_RLIMIT_AS / (1 << 30), help="RLIMIT_AS per worker")
    ap.add_argument("--out", default=None, help="write the counts and failures as JSON here")
    ap.add_argument("--replay", default=None, metavar="FAMILY:SEED", help="run one case in this process")
    args = ap.parse_args(argv)
    if args.replay:
        return _replay(args.replay)
    fams = args.families.split(",") if args.families else generators.families()
    seeds = range(args.start_seed, args.start_seed + (args.cases + len(fams) - 1) // len(fams))
    cases = itertools.islice(((f, s) for s in seeds for f in fams), args.cases)
    t0 = time.monotonic()
    deadline = None if args.seconds is None else t0 + args.seconds
    done = [0]

    def tick(o: object) -> None:
        done[0] += 1
        if done[0] % 1000 == 0:
            print(f"{done[0]} cases, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    s = run_cases(
        cases, timeout=args.timeout, rlimit_as=int(args.rlimit_gib * (1 << 30)), deadline=deadline, on_outcome=tick
    )
    elapsed = time.monotonic() - t0
    print(_table(s))
    print(f"{s.total()} cases in {elapsed:.0f} s; failures: {sum(s.total(k) for k in FAILURES)}")
    for o in s.failures[:50]:
        print(f"  {o.kind} {o.family}:{o.seed} {o.detail[:200]}")
    if args.out:
        doc = {
            "cases": s.total(),
            "seconds": round(elapsed, 1),
            "timeout_s": args.timeout,
            "rlimit_as_gib": args.rlimit_gib,
            "families": fams,
            "start_seed": args.start_seed,
            **s.as_dict(),
        }
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
    return 1 if any(s.total(k) for k in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
