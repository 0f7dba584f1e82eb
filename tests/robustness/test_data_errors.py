"""Hostile data for verify/predict: one FormatError naming the file (and the sample where there is one)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from convertmodel.data import open_dataset
from convertmodel.data.checks import DataWarning, NonFiniteInputError
from convertmodel.errors import FormatError


def _run(path: str, **kw: object) -> int:
    ds = open_dataset(path, **kw)  # type: ignore[arg-type]
    return sum(len(b.x) for b in ds.batches(batch_size=2))


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((0, 1, 28, 28), np.float32), "the data set is empty"),
        (np.array(["a", "bc"]), "numeric array, found dtype <U2"),
        (np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]), "numeric array, found dtype"),
        (np.array(3.0), "found a scalar"),
        (np.zeros((2, 0, 3), np.float32), "every sample is empty"),
    ],
)
def test_bad_npy(tmp_path, array, match) -> None:
    p = str(tmp_path / "x.npy")
    np.save(p, array)
    with pytest.raises(FormatError, match=match) as ei:
        _run(p)
    assert p in str(ei.value)


def test_object_npy_and_lying_header(tmp_path) -> None:
    p = str(tmp_path / "o.npy")
    np.save(p, np.array([1, None], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match=r"cannot read a \.npy array"):
        _run(p)
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 1, 28, 28), np.float32))
    q = tmp_path / "big.npy"
    q.write_bytes(buf.getvalue().replace(b"(2, 1, 28, 28)", b"(99999999999,)"))
    with pytest.raises(FormatError, match=re.escape(str(q))):
        _run(str(q))


def test_labels_must_fit(tmp_path) -> None:
    x, y = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    np.save(x, np.zeros((3, 4), np.float32))
    np.save(y, np.arange(2))
    with pytest.raises(FormatError, match="expected 3 labels"):
        _run(x, labels=y)
    np.save(y, np.array(["a", "b", "c"]))
    with pytest.raises(FormatError, match="labels must be integer class indices"):
        _run(x, labels=y)


def _idx(n: int = 4) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", n, 5, 5) + bytes(25 * n)


def test_truncated_gzip_is_format_error_not_eof(tmp_path) -> None:
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx(40), mtime=0)[:-30])
    with pytest.raises(FormatError, match="truncated or corrupt compressed data") as ei:
        _run(str(p))
    assert str(p) in str(ei.value) and not isinstance(ei.value, EOFError)
    p.write_bytes(gzip.compress(_idx(0), mtime=0))
    with pytest.raises(FormatError, match="empty"):
        _run(str(p))


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3)).save(buf, "PNG")
    raw = buf.getvalue()
    ihdr = b"IHDR" + struct.pack(">II", w, h) + raw[24:29]
    return raw[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + raw[33:]


def test_decompression_bomb_and_truncated_images(tmp_path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png(60000, 60000))
    with pytest.raises(FormatError, match="exceeds the cap of 178956970 pixels") as ei:
        _run(str(bomb))
    assert str(bomb) in str(ei.value)
    cut = tmp_path / "cut.png"
    cut.write_bytes(_png(4, 3)[:40])
    with pytest.raises(FormatError, match="cannot decode image") as ei:
        _run(str(cut))
    assert str(cut) in str(ei.value)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["images"][0].pop("width"), r"images\[0\] \(id 1\): missing 'width'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), r"annotations\[0\]: 'bbox' must be"),
        (lambda d: d["images"][0].update(height=0), r"'height' = 0.0 is outside"),
        (lambda d: d.update(categories=[{"id": 2**70}]), r"categories\[0\]: 'id'"),
        (lambda d: d["annotations"][0].update(image_id=7), r"unknown image_id 7"),
    ],
)
def test_coco_fields(tmp_path, edit, match) -> None:
    (tmp_path / "0.png").write_bytes(_png(4, 3))
    doc = {
        "images": [{"id": 1, "file_name": "0.png", "width": 4, "height": 3}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}],
        "categories": [{"id": 1, "name": "x"}],
    }
    edit(doc)
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=match) as ei:
        _run(str(p))
    assert str(p) in str(ei.value)


def test_nan_inputs_warn_with_counts_and_strict_refuses(tmp_path) -> None:
    x = np.zeros((5, 3), np.float32)
    x[1, 0] = np.nan
    x[3, :2] = np.inf
    p = str(tmp_path / "x.npy")
    np.save(p, x)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert _run(p) == 5
    msgs = [str(m.message) for m in w if issubclass(m.category, DataWarning)]
    assert msgs == [
        f"{p}: 2 sample(s) have NaN/Inf input values (3 values, first at sample 1); results on them are "
        "meaningless (use --strict to refuse such data)"
    ]
    with pytest.raises(NonFiniteInputError, match=r"sample 1 has 1 NaN/Inf input values \(strict: refused\)"):
        _run(p, strict=True)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_data_is_refused(tmp_path) -> None:
    f = tmp_path / "x.npy"
    os.mkfifo(f)
    with pytest.raises(FormatError, match="FIFO"):
        open_dataset(str(f))


def test_coco_integer_beyond_float_range_is_typed(tmp_path) -> None:
    """A COCO field holding 10**400 (JSON integers are unbounded) made float() raise OverflowError."""
    from convertmodel.data.detection import CocoDataset

    ann = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10**400, "height": 4}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(ann))
    with pytest.raises(FormatError, match="bits"):
        CocoDataset(str(p))
