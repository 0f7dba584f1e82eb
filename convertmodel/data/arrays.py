""".npy (memory-mapped) and .npz data sets for ``verify`` (see :func:`convertmodel.data.open_dataset`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from convertmodel.data.checks import check_inputs, check_labels, load_numpy
from convertmodel.data.datasets import Batch, Dataset, row_digests
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import FormatError

_X_KEYS = ("x", "images", "data", "inputs", "x_test")
_Y_KEYS = ("y", "labels", "targets", "y_test")


def _pick(npz: Any, keys: Sequence[str], path: str, what: str, required: bool) -> np.ndarray | None:
    for k in keys:
        if k in npz.files:
            return npz[k]  # type: ignore[no-any-return]
    if len(npz.files) == 1 and what == "inputs":
        return npz[npz.files[0]]  # type: ignore[no-any-return]
    if required:
        raise FormatError(path, f"no {what} array: expected one of {', '.join(keys)}; found {', '.join(npz.files)}")
    return None


class ArrayDataset(Dataset):
    """``.npy`` (memory-mapped) or ``.npz`` inputs, optional labels.

    uint8 arrays are images (N, H, W[, C], channels last) and go through the preprocessing;
    float arrays are taken as model-ready input and passed through unchanged.
    """

    is_array = True

    def __init__(self, path: str, labels: str | None = None) -> None:
        super().__init__(path)
        y: np.ndarray | None = None
        if path.endswith(".npz"):
            z = load_numpy(path, "an .npz archive")
            try:
                with z:
                    x = _pick(z, _X_KEYS, path, "inputs", True)
                    y = _pick(z, _Y_KEYS, path, "labels", False)
            except FormatError:
                raise
            except Exception as e:  # zipfile/zlib/numpy errors of a corrupt member: a parse boundary
                raise FormatError(path, f"cannot read the .npz archive: {type(e).__name__}: {e}") from e
        else:
            x = load_numpy(path, "a .npy array", mmap=True)
        if labels:
            y = load_numpy(labels, "labels (.npy)")
        assert x is not None  # _pick(required=True) raised otherwise
        check_inputs(x, path)
        self.x = x
        if y is not None:
            y = check_labels(y, labels or path, len(x))
            self.kind = "classification"
        self.y = y
        if x.dtype == np.uint8 and (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 1)):
            self.default_preprocess = Preprocess(color="gray", scale=1 / 255)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def _raw_batches(self, batch_size: int, limit: int, pre: Preprocess, start: int = 0) -> Iterator[Batch]:
        for s in range(start, limit, batch_size):
            arr = np.asarray(self.x[s : min(s + batch_size, limit)])
            lab = None if self.y is None else self.y[s : s + len(arr)]
            x = pre.apply_array(arr) if arr.dtype == np.uint8 else np.ascontiguousarray(arr, dtype=np.float32)
            yield Batch(x, lab, None, [str(i) for i in range(s, s + len(arr))], row_digests(arr))
