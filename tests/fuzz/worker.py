"""Fuzz worker process: ``family seed`` lines in on stdin, one JSON outcome line each out.

The address-space cap (RLIMIT_AS, from CM_FUZZ_RLIMIT_AS) is set before anything heavy is
imported. Outcomes: ``ok``; ``typed`` (a documented ConvertModelError: the message is kept);
``untyped`` (any other exception: the exception type, message and innermost convertmodel frame);
``memory`` (MemoryError: an allocation the memory cap should have refused); ``generator`` (a bug
in the fuzz generator itself, not counted against convertmodel). Anything the code under test
prints goes to /dev/null; answers go to the original stdout.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import traceback
import warnings


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if "convertmodel" in f.filename] or frames
    if not mine:
        return "?"
    f = mine[-1]
    return f"{os.path.relpath(f.filename)}:{f.lineno}"


def main() -> None:
    cap = int(os.environ.get("CM_FUZZ_RLIMIT_AS", "0"))
    if cap > 0:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")

    from convertmodel.errors import ConvertModelError
    from tests.fuzz import generators

    generators.warm_up()
    work = tempfile.mkdtemp(prefix="cm-fuzz-")
    out.write(json.dumps({"ready": True}) + "\n")
    try:
        for line in sys.stdin:
            family, seed = line.split()
            d = os.path.join(work, "case")
            shutil.rmtree(d, ignore_errors=True)
            os.mkdir(d)
            try:
                case = generators.generate(family, int(seed), d)
            except Exception as e:  # a bug in the generator: reported apart
                out.write(json.dumps({"kind": "generator", "detail": f"{type(e).__name__}: {e} @ {_where(e)}"}) + "\n")
                continue
            try:
                generators.exercise(case)
                res = {"kind": "ok"}
            except ConvertModelError as e:
                res = {"kind": "typed", "detail": f"{type(e).__name__}: {str(e)[:300]}"}
            except MemoryError as e:
                res = {"kind": "memory", "detail": f"MemoryError {str(e)[:200]} @ {_where(e)}"}
            except RecursionError as e:
                res = {"kind": "untyped", "detail": f"RecursionError @ {_where(e)}"}
            except Exception as e:
                res = {"kind": "untyped", "detail": f"{type(e).__name__}: {str(e)[:300]} @ {_where(e)}"}
            out.write(json.dumps(res) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
