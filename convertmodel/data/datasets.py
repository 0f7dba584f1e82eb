"""Datasets for ``verify``: streamed in batches, never loaded whole.

Every dataset yields :class:`Batch` objects of at most ``batch_size`` samples. Images are
decoded per batch (Pillow); IDX files are read sample-range by sample-range (``np.memmap`` on
raw files, a sequential gzip stream on ``.gz``); ``.npy`` files are memory-mapped. Any index range
``[start, limit)`` can be read on its own (``batches(..., start=)``), so engines split a data set by
sample index. Each sample carries the SHA-256 of its raw bytes (``Batch.digests``); the report's data
hash (:func:`data_hash`) combines them in sample order with the labels, so two reports agree on their
data hash only when they saw the same samples, however the data was batched or partitioned.

Formats (see :func:`open_dataset`):

* IDX (MNIST / Fashion-MNIST): ``train-images-idx3-ubyte[.gz]``; labels from ``--labels`` or the
  sibling ``...labels-idx1-ubyte[.gz]`` file.
* ``.npy`` (labels from a second ``.npy`` via ``--labels``) and ``.npz`` (arrays ``x``/``images``/
  ``data`` and ``y``/``labels``).
* Image folders with one subfolder per class, a ``path label`` list file (convertmodel.data.images).
* VOC- and COCO-style detection annotations (convertmodel.data.detection).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertmodel.data.checks import (
    NonFinite,
    check_data_path,
    stream_errors,
)
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import FormatError, ModelIOError
from convertmodel.fsutil import open_regular
from convertmodel.limits import max_alloc_bytes

# IDX element types (yann.lecun.com/exdb/mnist, "THE IDX FILE FORMAT"): the third magic byte.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Box:
    """One ground-truth object: class index, corners normalised to [0, 1], VOC 'difficult' flag."""

    label: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False


@dataclass
class Batch:
    """A preprocessed batch: model input ``x``, optional class labels or detection targets."""

    x: np.ndarray
    labels: np.ndarray | None = None
    boxes: list[list[Box]] | None = None
    ids: list[str] = field(default_factory=list)
    #: SHA-256 of each sample's raw bytes (file bytes, or the array row; detection: plus its boxes).
    digests: list[bytes] = field(default_factory=list)


def sample_digest(*chunks: bytes | np.ndarray) -> bytes:
    """The digest of one sample: SHA-256 over its raw chunks (arrays as their C-order bytes)."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(np.ascontiguousarray(c).tobytes() if isinstance(c, np.ndarray) else c)
    return h.digest()


def row_digests(arr: np.ndarray) -> list[bytes]:
    """One digest per sample (row along axis 0) of an array."""
    return [sample_digest(a) for a in arr]


def data_hash(digests: Iterable[bytes], labels: Iterable[np.ndarray | None] = ()) -> str:
    """The report's data hash: sha256(sha256(sample digests, in order) + sha256(labels as int64 LE))."""
    h, lh = hashlib.sha256(), hashlib.sha256()
    for d in digests:
        h.update(d)
    for lab in labels:
        if lab is not None:
            lh.update(np.ascontiguousarray(lab, dtype="<i8").tobytes())
    return hashlib.sha256(h.digest() + lh.digest()).hexdigest()


class Dataset:
    """Base class: subclasses implement ``__len__`` and ``_raw_batches``."""

    #: "classification" (labels), "detection" (boxes) or "unlabelled".
    kind: str = "unlabelled"
    #: Class names when known (folder names, a labels file, COCO categories).
    class_names: list[str] | None = None
    #: Preprocessing suggested by the format itself (e.g. IDX grey images); used when none is given.
    default_preprocess: Preprocess | None = None
    #: True when samples come as decoded arrays (IDX, .npy): no per-file resizing is implied.
    is_array: bool = False
    #: Refuse samples whose model input has NaN/Inf values (else they are counted and warned about).
    strict: bool = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._hash = hashlib.sha256()
        self._label_hash = hashlib.sha256()
        self.samples_seen = 0

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def data_hash(self) -> str:
        """:func:`data_hash` of the samples yielded by the last ``batches`` call (batching-independent)."""
        return hashlib.sha256(self._hash.digest() + self._label_hash.digest()).hexdigest()

    def sample_id(self, index: int) -> str:
        """How reports name sample ``index``: its file path, or the index for array data."""
        return str(index)

    def _raw_batches(self, batch_size: int, limit: int, pre: Preprocess, start: int = 0) -> Iterator[Batch]:
        raise NotImplementedError

    def batches(
        self, batch_size: int = 32, preprocess: Preprocess | None = None, limit: int | None = None, start: int = 0
    ) -> Iterator[Batch]:
        """Yield preprocessed batches of at most ``batch_size`` samples of the index range ``[start, limit)``
        (``limit`` None: to the end), batch k covering ``start + k * batch_size`` onwards."""
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if len(self) == 0:
            raise FormatError(self.path, "the data set is empty: no samples to run")
        n = len(self) if limit is None else min(limit, len(self))
        pre = preprocess or self.default_preprocess or Preprocess()
        self._hash = hashlib.sha256()
        self._label_hash = hashlib.sha256()
        self.samples_seen = 0
        self.nonfinite = NonFinite(self.path, self.strict)
        for b in self._raw_batches(batch_size, n, pre, max(start, 0)):
            self.nonfinite.check(b.x, max(start, 0) + self.samples_seen, b.ids)
            self.samples_seen += len(b.x)
            for d in b.digests:
                self._hash.update(d)
            if b.labels is not None:
                self._label_hash.update(np.ascontiguousarray(b.labels, dtype="<i8").tobytes())
            yield b
        self.nonfinite.warn()


# -- IDX --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdxHeader:
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int


def _open_maybe_gzip(path: str) -> Any:
    f = open_regular(path, "an IDX file")
    head = f.read(2)
    f.seek(0)
    if head == b"\x1f\x8b":  # gzip magic (RFC 1952)
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


def read_idx_header(path: str, f: Any | None = None) -> IdxHeader:
    """Parse an IDX header: magic 0x0000 + type byte + ndim byte, then ndim big-endian uint32 dims."""
    own = f is None
    fh: Any = _open_maybe_gzip(path) if f is None else f
    try:
        with stream_errors(path, " in the IDX header"):
            magic = fh.read(4)
            dims_raw = fh.read(4 * magic[3]) if len(magic) == 4 else b""
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
            raise FormatError(path, f"not an IDX file: magic {magic.hex()!r}, expected 0000 + type byte + ndim", 0)
        ndim = magic[3]
        if len(dims_raw) < 4 * ndim:
            raise FormatError(path, f"IDX header truncated: expected {ndim} dimensions", 4)
        shape = struct.unpack(f">{ndim}I", dims_raw)
    finally:
        if own:
            fh.close()
    return IdxHeader(np.dtype(_IDX_DTYPES[magic[2]]), tuple(int(d) for d in shape), 4 + 4 * ndim)


class IdxReader:
    """Reads consecutive sample ranges of an IDX file without loading all of it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.header = read_idx_header(path)
        self.gz = _is_gzip(path)
        #: (decompressed bytes, error kind) the gzip stream was shown not to reach; see _note_unreachable.
        self._unreachable: tuple[int, tuple[type[BaseException], tuple[Any, ...]] | None] | None = None
        if not self.header.shape:
            raise FormatError(path, "IDX file has 0 dimensions; expected (N, ...) samples", 3)
        self.sample_shape = self.header.shape[1:]
        if 0 in self.sample_shape:
            raise FormatError(path, f"IDX samples are empty: shape {list(self.header.shape)}", 4)
        self.sample_bytes = math.prod(self.sample_shape) * self.header.dtype.itemsize
        if self.sample_bytes > max_alloc_bytes():
            raise FormatError(
                path,
                f"IDX header declares samples of {list(self.sample_shape)} ({self.sample_bytes} bytes each), "
                f"above the memory cap of {max_alloc_bytes()} bytes",
                4,
            )
        if not self.gz:
            need = self.header.offset + self.sample_bytes * self.header.shape[0]
            size = os.path.getsize(path)
            if size < need:
                raise FormatError(path, f"IDX data truncated: header says {need} bytes, file has {size}", size)

    def __len__(self) -> int:
        return self.header.shape[0]

    def chunks(self, chunk: int, limit: int, start: int = 0) -> Iterator[np.ndarray]:
        """Yield arrays of ``chunk`` consecutive samples (native byte order) of the range ``[start, limit)``."""
        if not self.gz:
            mm = np.memmap(
                self.path, dtype=self.header.dtype, mode="r", offset=self.header.offset, shape=self.header.shape
            )
            for s in range(start, limit, chunk):
                yield np.asarray(mm[s : min(s + chunk, limit)]).astype(self.header.dtype.newbyteorder("="))
            return
        with _open_maybe_gzip(self.path) as f, stream_errors(self.path, f" (IDX samples {start}..{limit - 1})"):
            skip = self.header.offset + min(start, limit) * self.sample_bytes
            target = skip
            try:
                if self._unreachable is not None and skip >= self._unreachable[0]:
                    # the stream was shown to end (or break) before this point: fail as the skip would
                    self._raise_stream_end(start)
                while skip > 0:  # a gzip stream is sequential: decompress up to the range's first sample
                    got = len(f.read(min(skip, 1 << 22)))
                    if got == 0:
                        raise FormatError(self.path, f"IDX data truncated before sample {start}")
                    skip -= got
                for s in range(start, limit, chunk):
                    k = min(chunk, limit - s)
                    target += k * self.sample_bytes
                    raw = f.read(k * self.sample_bytes)
                    if len(raw) < k * self.sample_bytes:
                        raise FormatError(
                            self.path, f"IDX data truncated at sample {s + len(raw) // self.sample_bytes}"
                        )
                    arr = np.frombuffer(raw, dtype=self.header.dtype).reshape((k, *self.sample_shape))
                    yield arr.astype(self.header.dtype.newbyteorder("="))
            except (FormatError, EOFError, zlib.error, gzip.BadGzipFile) as e:
                self._note_unreachable(target, e)
                raise

    def _note_unreachable(self, target: int, e: BaseException) -> None:
        """Remember that the stream cannot be decompressed up to byte ``target`` (keeping the smallest such
        target): later ranges starting there fail at once instead of decompressing the stream again (the
        engines read a failed batch sample by sample)."""
        if self._unreachable is None or target < self._unreachable[0]:
            self._unreachable = (target, None if isinstance(e, FormatError) else (type(e), e.args))

    def _raise_stream_end(self, start: int) -> None:
        """Raise what decompressing to sample ``start`` raises (inside stream_errors, which maps it)."""
        assert self._unreachable is not None
        cause = self._unreachable[1]
        if cause is None:  # the stream ended cleanly before the target
            raise FormatError(self.path, f"IDX data truncated before sample {start}")
        raise cause[0](*cause[1])


def _is_gzip(path: str) -> bool:
    with open_regular(path, "an IDX file") as f:
        return f.read(2) == b"\x1f\x8b"


def read_idx(path: str, limit: int | None = None) -> np.ndarray:
    """Read a whole IDX file (or its first ``limit`` samples) into an array. For small files and tests."""
    r = IdxReader(path)
    n = len(r) if limit is None else min(limit, len(r))
    parts = list(r.chunks(max(n, 1), n))
    return np.concatenate(parts) if parts else np.zeros((0, *r.sample_shape), r.header.dtype)


def write_idx(path: str, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"{path}: IDX cannot store dtype {arr.dtype}")
    data = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.astype(np.dtype(_IDX_DTYPES[code])).tobytes()
    if path.endswith(".gz"):
        # mtime=0 keeps the file byte-identical from run to run.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def guess_idx_labels(images_path: str) -> str | None:
    """The labels file beside an images file: ``*images-idx3-ubyte*`` -> ``*labels-idx1-ubyte*``."""
    d, base = os.path.split(images_path)
    if "images-idx3" not in base:
        return None
    cand = os.path.join(d, base.replace("images-idx3", "labels-idx1"))
    return cand if os.path.exists(cand) else None


class IdxDataset(Dataset):
    """An IDX images file (N, H, W) or (N, H, W, C) with an optional IDX labels file (N,)."""

    kind = "unlabelled"
    is_array = True

    def __init__(self, path: str, labels: str | None = None) -> None:
        super().__init__(path)
        self.images = IdxReader(path)
        if self.images.header.dtype != np.dtype(">u1") or len(self.images.sample_shape) not in (2, 3):
            raise FormatError(
                path,
                f"expected uint8 images (N,H,W[,C]), found {self.images.header.dtype} {list(self.images.header.shape)}",
            )
        labels = labels or guess_idx_labels(path)
        self.labels = read_idx(labels).astype(np.int64) if labels else None
        if self.labels is not None:
            if self.labels.ndim != 1 or len(self.labels) != len(self.images):
                raise FormatError(
                    labels or "", f"expected {len(self.images)} labels, found shape {list(self.labels.shape)}"
                )
            self.kind = "classification"
        if len(self.images.sample_shape) == 2 or self.images.sample_shape[-1] == 1:
            self.default_preprocess = Preprocess(color="gray", scale=1 / 255)

    def __len__(self) -> int:
        return len(self.images)

    def _raw_batches(self, batch_size: int, limit: int, pre: Preprocess, start: int = 0) -> Iterator[Batch]:
        for arr in self.images.chunks(batch_size, limit, start):
            lab = None if self.labels is None else self.labels[start : start + len(arr)]
            ids = [str(i) for i in range(start, start + len(arr))]
            start += len(arr)
            yield Batch(pre.apply_array(arr), lab, None, ids, row_digests(arr))


# -- dispatch ---------------------------------------------------------------------------------


def open_dataset(path: str, labels: str | None = None, images: str | None = None, strict: bool = False) -> Dataset:
    """Open ``path`` as the right dataset type (by extension, content and directory layout).

    ``strict``: a sample whose model input has NaN/Inf values is an error (else counted and warned about).
    The result's ``reopen`` opens the same data again (a picklable partial: engines' tasks call it)."""
    check_data_path(path)
    if labels:
        check_data_path(labels, "a labels file")
    ds = _open_dataset(path, labels, images)
    ds.strict = strict
    ds.reopen = functools.partial(open_dataset, path, labels, images, strict)  # type: ignore[attr-defined]
    return ds


def _open_dataset(path: str, labels: str | None, images: str | None) -> Dataset:
    from convertmodel.data import detection
    from convertmodel.data import images as imgs

    if not os.path.exists(path):
        raise ModelIOError(f"{path}: no such file or directory")
    low = path.lower()
    if os.path.isdir(path):
        if os.path.isdir(os.path.join(path, "Annotations")):
            return detection.VocDataset(path, labels=labels)
        return imgs.ImageFolderDataset(path, labels=labels)
    if low.endswith((".npy", ".npz")):
        from convertmodel.data.arrays import ArrayDataset

        return ArrayDataset(path, labels)
    if low.endswith(".json"):
        return detection.CocoDataset(path, images=images)
    if "idx" in os.path.basename(low) or low.endswith((".ubyte", ".ubyte.gz")):
        return IdxDataset(path, labels)
    if low.endswith((".txt", ".lst", ".list", ".csv")):
        return imgs.ImageListDataset(path, root=images)
    if low.endswith(imgs.IMAGE_EXTENSIONS):
        return imgs.ImageListDataset.single(path)
    try:
        read_idx_header(path)
        return IdxDataset(path, labels)
    except FormatError:
        pass
    raise FormatError(
        path,
        "unrecognised data: expected an image folder, a 'path label' list (.txt), IDX, "
        ".npy/.npz, a VOC folder (Annotations/) or a COCO .json",
    )
