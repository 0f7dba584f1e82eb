"""Shared pieces of the fuzz generators: the case description, interesting values, byte mutations."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures")

#: Integers that break size arithmetic: zero, negatives, off-by-ones, int32/int64 edges.
INTS = (
    0,
    1,
    -1,
    2,
    3,
    7,
    -2,
    255,
    256,
    65535,
    65536,
    65537,
    100000,
    2**31 - 1,
    2**31,
    2**32,
    2**62,
    2**63 - 1,
    -(2**31),
)
SMALL_INTS = (0, 1, -1, 2, 3, 4, 5)
FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e-30, 1e30, 3.4e38, float("inf"), float("-inf"), float("nan"), 1e300)


@dataclass
class Case:
    """One generated input: a model file to load (and quantize, run, save, reload) or a data set."""

    kind: str  # "model" or "data"
    path: str
    directory: str
    options: dict[str, Any] = field(default_factory=dict)
    quantize: bool = True
    run: bool = True
    seed: int = 0


def pick_int(rng: random.Random, small: bool = False) -> int:
    if rng.random() < 0.5:
        return rng.choice(SMALL_INTS if small else INTS)
    return rng.randint(-3, 9) if small else rng.randint(-5, 300)


def pick_float(rng: random.Random) -> float:
    return rng.choice(FLOATS) if rng.random() < 0.6 else rng.uniform(-10, 10)


def mutate_bytes(rng: random.Random, data: bytes, protect: int = 0) -> bytes:
    """Byte flips, runs of 0x00/0xFF, truncation, insertion, deletion or duplication of a slice."""
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.random()
        n = len(b)
        if n <= protect + 1:
            b += bytes(rng.randrange(256) for _ in range(8))
            continue
        i = rng.randrange(protect, n)
        if op < 0.4:
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.55:
            b[i] = rng.choice((0x00, 0xFF, 0x7F, 0x80))
        elif op < 0.65:
            del b[rng.randrange(protect, n) :]
        elif op < 0.75:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 16))))
        elif op < 0.85:
            j = min(n, i + rng.choice((1, 4, 64, 1024)))
            del b[i:j]
        else:
            j = min(n, i + rng.choice((4, 64, 512)))
            b[i:i] = b[i:j]
    return bytes(b)


def write(path: str, data: bytes | str) -> str:
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)
    return path
