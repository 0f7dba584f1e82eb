"""Hostile data sets for verify/predict: .npy/.npz (empty, string, structured, object, NaN/Inf, lying
headers), IDX (raw and gzip, truncated), images (lying sizes, truncated, garbage), COCO json, list files."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import struct

import numpy as np

from tests.fuzz.common import Case, mutate_bytes, pick_int, write


def _npy(rng: random.Random, d: str) -> str:
    p = os.path.join(d, "x.npy")
    g = np.random.default_rng(rng.randrange(2**32))
    kind = rng.choice(("empty", "str", "struct", "object", "nan", "u8", "f64", "scalar", "header", "bytes", "bool"))
    if kind == "empty":
        arr = np.zeros((0, *rng.choice(((1, 28, 28), (28, 28), (3, 8, 8)))), rng.choice((np.float32, np.uint8)))
    elif kind == "str":
        arr = np.array(["a", "bc"])
    elif kind == "struct":
        arr = np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])
    elif kind == "object":
        with open(p, "wb") as f:
            np.save(f, np.array([1, None], dtype=object), allow_pickle=True)
        return p
    elif kind == "nan":
        arr = g.standard_normal((2, 1, 28, 28)).astype(np.float32)
        arr.reshape(-1)[g.integers(0, arr.size, 5)] = rng.choice((np.nan, np.inf, -np.inf))
    elif kind == "u8":
        arr = g.integers(
            0, 255, (rng.choice((1, 3)), *rng.choice(((28, 28), (28, 28, 1), (5, 5, 3), (0, 0)))), endpoint=True
        ).astype(np.uint8)
    elif kind == "f64":
        arr = g.standard_normal((2, 1, 28, 28))
    elif kind == "scalar":
        arr = np.array(pick_int(rng), np.int64)
    elif kind == "bool":
        arr = np.ones((2, 1, 28, 28), bool)
    else:
        buf = io.BytesIO()
        np.save(buf, g.standard_normal((2, 1, 28, 28)).astype(np.float32))
        raw = buf.getvalue()
        if kind == "header":  # a header that claims a huge or odd shape over the same bytes
            shape = rng.choice(("(100000, 100000, 10)", "(2, 1, 28, 28, 1)", "()", "(-1,)", "(2**40,)", "(0,)"))
            raw = raw.replace(b"(2, 1, 28, 28)", shape.encode().ljust(14)[:14] if len(shape) <= 14 else shape.encode())
        else:
            raw = mutate_bytes(rng, raw)
        return write(p, raw)
    with open(p, "wb") as f:
        np.save(f, arr)
    return p


def _idx(rng: random.Random, d: str) -> str:
    n = rng.choice((0, 1, 3))
    arr = np.random.default_rng(rng.randrange(2**32)).integers(0, 255, (n, 28, 28), endpoint=True).astype(np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", *arr.shape) + arr.tobytes()
    r = rng.random()
    if r < 0.3:
        raw = raw[: rng.randrange(len(raw) + 1)]
    elif r < 0.5:
        raw = raw[:4] + struct.pack(">I", rng.choice((0, 2**32 - 1, 100000))) + raw[8:]
    elif r < 0.6:
        raw = mutate_bytes(rng, raw)
    gz = rng.random() < 0.6
    p = os.path.join(d, "t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    data = gzip.compress(raw, mtime=0) if gz else raw
    if gz and rng.random() < 0.5:
        data = data[: rng.randrange(10, max(11, len(data)))]  # truncated gzip stream
    return write(p, data)


def _image_bytes(rng: random.Random) -> bytes:
    from PIL import Image

    fmt = rng.choice(("PNG", "BMP", "GIF", "PPM"))
    buf = io.BytesIO()
    Image.new(rng.choice(("RGB", "L", "RGBA", "P", "I;16")) if fmt == "PNG" else "RGB", (9, 7)).save(buf, fmt)
    raw = buf.getvalue()
    r = rng.random()
    if r < 0.3 and fmt == "PNG":  # IHDR claims a huge size (a decompression bomb), CRC fixed
        import zlib

        w, h = rng.choice(((60000, 60000), (1, 10**7), (2**31 - 1, 1), (0, 0)))
        ihdr = b"IHDR" + struct.pack(">II", w, h) + raw[24:29]
        raw = raw[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + raw[33:]
    elif r < 0.6:
        raw = raw[: rng.randrange(len(raw))]
    elif r < 0.8:
        raw = mutate_bytes(rng, raw)
    return raw


def _images(rng: random.Random, d: str) -> str:
    root = os.path.join(d, "imgs")
    for cls in ("a", "b")[: rng.randint(0, 2)]:
        os.makedirs(os.path.join(root, cls))
        for k in range(rng.randint(0, 2)):
            write(os.path.join(root, cls, f"{k}.png"), _image_bytes(rng))
    os.makedirs(root, exist_ok=True)
    if rng.random() < 0.3:
        write(os.path.join(d, "list.txt"), "".join(f"imgs/{c}/0.png {pick_int(rng, True)}\n" for c in "ab"))
        return os.path.join(d, "list.txt")
    return root


def _coco(rng: random.Random, d: str) -> str:
    write(os.path.join(d, "0.png"), _image_bytes(rng))
    im = {"id": 1, "file_name": "0.png", "width": 9, "height": 7}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]}
    doc: dict = {"images": [im], "annotations": [ann], "categories": [{"id": 1, "name": "x"}]}
    for _ in range(rng.randint(1, 3)):
        target = rng.choice((im, ann, doc))
        key = rng.choice(list(target))
        if rng.random() < 0.5:
            del target[key]
        else:
            target[key] = rng.choice((0, -1, None, "x", [], {}, 2**70, [0, 0, 0], float("nan")))
    text = json.dumps(doc)
    if rng.random() < 0.15:
        text = text[: rng.randrange(len(text))]
    return write(os.path.join(d, "ann.json"), text)


def generate(rng: random.Random, d: str) -> Case:
    kind = rng.choice(("npy", "npy", "idx", "images", "coco"))
    path = {"npy": _npy, "idx": _idx, "images": _images, "coco": _coco}[kind](rng, d)
    opts: dict = {"images": d} if kind == "coco" else {}
    if kind == "npy" and rng.random() < 0.3:
        lab = np.arange(rng.choice((0, 1, 2, 3)))
        np.save(os.path.join(d, "y.npy"), lab)
        opts["labels"] = os.path.join(d, "y.npy")
    return Case("data", path, d, options=opts)


def warm_up(work: str) -> None:
    import PIL.Image  # noqa: F401  (imported once per worker)

    import convertmodel.data  # noqa: F401
