"""Datasets on tiny real files written in tmp dirs: IDX (raw and gzip), .npy/.npz, image folders, list files."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
from PIL import Image

from convertmodel.data.arrays import ArrayDataset
from convertmodel.data.datasets import IdxDataset, open_dataset, read_idx, read_idx_header, write_idx
from convertmodel.data.images import ImageFolderDataset, ImageListDataset
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import FormatError


def _idx_bytes(arr: np.ndarray) -> bytes:
    # Written here independently of write_idx: magic 0,0,0x08 (ubyte), ndim, big-endian dims, data.
    return struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.fixture
def idx_files(tmp_path, rng):
    imgs = rng.integers(0, 256, size=(23, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=23).astype(np.uint8)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "t-images-idx3-ubyte").write_bytes(_idx_bytes(imgs))
    (raw / "t-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "t-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
    (gz / "t-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    return imgs, labels, raw, gz


@pytest.mark.parametrize("kind", ["raw", "gz"])
def test_idx_batches_match_the_file(idx_files, kind):
    imgs, labels, raw, gz = idx_files
    d = raw if kind == "raw" else gz
    name = "t-images-idx3-ubyte" + ("" if kind == "raw" else ".gz")
    ds = open_dataset(str(d / name))
    assert isinstance(ds, IdxDataset) and ds.kind == "classification" and len(ds) == 23
    batches = list(ds.batches(batch_size=10))
    assert [len(b.x) for b in batches] == [10, 10, 3]
    x = np.concatenate([b.x for b in batches])
    y = np.concatenate([b.labels for b in batches])
    np.testing.assert_array_equal(y, labels.astype(np.int64))
    # The IDX default: grey, pixels / 255, NCHW.
    np.testing.assert_allclose(x, (imgs.astype(np.float32) / np.float32(255))[:, None], rtol=1e-6)
    assert ds.samples_seen == 23


def test_idx_limit_and_data_hash(idx_files):
    _imgs, _labels, raw, gz = idx_files
    a = open_dataset(str(raw / "t-images-idx3-ubyte"))
    b = open_dataset(str(gz / "t-images-idx3-ubyte.gz"))
    xa = np.concatenate([bt.x for bt in a.batches(4, limit=7)])
    list(b.batches(7, limit=7))
    assert xa.shape == (7, 1, 5, 4)
    # Same samples, different files and batching -> same data hash; more samples -> another hash.
    assert a.data_hash == b.data_hash
    list(b.batches(7, limit=8))
    assert a.data_hash != b.data_hash


def test_idx_round_trip_and_header(tmp_path, rng):
    arr = rng.integers(0, 256, size=(3, 2, 2), dtype=np.uint8)
    p = str(tmp_path / "x-images-idx3-ubyte.gz")
    write_idx(p, arr)
    h = read_idx_header(p)
    assert h.shape == (3, 2, 2) and h.offset == 16
    np.testing.assert_array_equal(read_idx(p), arr)
    with open(p, "rb") as f:
        first = f.read()
    write_idx(p, arr)
    with open(p, "rb") as f:
        assert f.read() == first  # deterministic bytes (gzip mtime 0)


def test_idx_truncated_and_bad_magic(tmp_path, rng):
    arr = rng.integers(0, 256, size=(4, 3, 3), dtype=np.uint8)
    p = tmp_path / "a-images-idx3-ubyte"
    p.write_bytes(_idx_bytes(arr)[:-5])
    with pytest.raises(FormatError, match="truncated"):
        IdxDataset(str(p))
    q = tmp_path / "b-images-idx3-ubyte"
    q.write_bytes(b"\x01\x02\x03\x04" + bytes(20))
    with pytest.raises(FormatError, match="not an IDX file"):
        IdxDataset(str(q))
    g = tmp_path / "c-images-idx3-ubyte.gz"
    g.write_bytes(gzip.compress(_idx_bytes(arr)[:-5]))
    with pytest.raises(FormatError, match="truncated"):
        list(IdxDataset(str(g)).batches(2))


def test_npz_and_npy(tmp_path, rng):
    x = rng.integers(0, 256, size=(9, 6, 6, 3), dtype=np.uint8)
    y = rng.integers(0, 5, size=9)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    ds = open_dataset(str(tmp_path / "d.npz"))
    assert isinstance(ds, ArrayDataset) and ds.kind == "classification"
    pre = Preprocess(color="bgr", mean=(1.0, 2.0, 3.0))
    got = np.concatenate([b.x for b in ds.batches(4, pre)])
    expect = (x[..., ::-1].astype(np.float32) - np.array([1, 2, 3], np.float32)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expect)
    # float .npy is model-ready input: passed through untouched; labels from a second .npy.
    xf = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", xf)
    np.save(tmp_path / "fy.npy", np.arange(5))
    ds2 = open_dataset(str(tmp_path / "f.npy"), labels=str(tmp_path / "fy.npy"))
    b = next(ds2.batches(8))
    np.testing.assert_array_equal(b.x, xf)
    np.testing.assert_array_equal(b.labels, np.arange(5))
    np.save(tmp_path / "bad.npy", np.arange(4))
    with pytest.raises(FormatError, match="expected 5 labels"):
        open_dataset(str(tmp_path / "f.npy"), labels=str(tmp_path / "bad.npy"))


def _png(path, arr):
    Image.fromarray(arr).save(path)


def test_image_folder_classes_sorted(tmp_path, rng):
    arrs = {}
    for cls in ("dog", "cat"):
        os.makedirs(tmp_path / cls)
        for k in range(2):
            a = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
            _png(tmp_path / cls / f"{k}.png", a)
            arrs[(cls, k)] = a
    ds = open_dataset(str(tmp_path))
    assert isinstance(ds, ImageFolderDataset) and ds.class_names == ["cat", "dog"]
    b = next(ds.batches(8, Preprocess(scale=0.5)))
    np.testing.assert_array_equal(b.labels, [0, 0, 1, 1])
    order = [("cat", 0), ("cat", 1), ("dog", 0), ("dog", 1)]
    expect = np.stack([arrs[k] for k in order]).astype(np.float32).transpose(0, 3, 1, 2) * np.float32(0.5)
    np.testing.assert_allclose(b.x, expect)  # PNG is lossless: exact pixels
    # A labels file fixes the class order (e.g. a model's synset list).
    (tmp_path / "classes.txt").write_text("dog a dog\ncat a cat\n")
    ds2 = ImageFolderDataset(str(tmp_path), labels=str(tmp_path / "classes.txt"))
    np.testing.assert_array_equal(next(ds2.batches(8)).labels, [1, 1, 0, 0])


def test_image_list_file(tmp_path, rng):
    a = rng.integers(0, 256, size=(3, 3), dtype=np.uint8)
    _png(tmp_path / "my img.png", a)
    _png(tmp_path / "b.png", a[::-1])
    (tmp_path / "list.txt").write_text("# comment\nmy img.png 7\nb.png 2\n")
    ds = open_dataset(str(tmp_path / "list.txt"))
    assert isinstance(ds, ImageListDataset) and ds.kind == "classification"
    b = next(ds.batches(2, Preprocess(color="gray")))
    np.testing.assert_array_equal(b.labels, [7, 2])
    np.testing.assert_array_equal(b.x[:, 0], np.stack([a, a[::-1]]).astype(np.float32))
    (tmp_path / "mixed.txt").write_text("my img.png 7\nb.png\n")
    with pytest.raises(FormatError, match="some lines have a label"):
        ImageListDataset(str(tmp_path / "mixed.txt"))


def test_unknown_data_is_a_format_error(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"hello world, not data")
    with pytest.raises(FormatError, match="unrecognised data"):
        open_dataset(str(p))


def test_images_decode_lazily_per_batch(tmp_path, rng, monkeypatch):
    import convertmodel.data.images as images

    for k in range(10):
        _png(tmp_path / f"{k}.png", rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8))
    calls = []
    real = images.load_image
    monkeypatch.setattr(images, "load_image", lambda p, pre: calls.append(p) or real(p, pre))
    it = open_dataset(str(tmp_path)).batches(3)
    first = next(it)
    assert len(first.x) == 3 and len(calls) == 3  # only the first batch was read and decoded
    assert sum(len(b.x) for b in it) == 7 and len(calls) == 10


def test_gzip_idx_is_streamed(tmp_path, rng, monkeypatch):
    arr = rng.integers(0, 256, size=(50, 2, 2), dtype=np.uint8)
    p = str(tmp_path / "s-images-idx3-ubyte.gz")
    write_idx(p, arr)
    reads = []
    real_read = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, n=-1: reads.append(n) or real_read(self, n))
    ds = IdxDataset(p)
    reads.clear()
    b = next(ds.batches(5))
    assert len(b.x) == 5 and -1 not in reads and max(reads) <= 5 * 4  # never "read everything"
