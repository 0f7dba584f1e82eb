"""Checks every data loader applies: regular files only, numeric non-empty arrays, labels that fit,
compressed streams that end where they should, and NaN/Inf inputs counted (warned, or refused with
``strict``). Every failure is a :class:`~convertmodel.errors.FormatError` naming the file and, where
there is one, the sample index (docs/robustness.md)."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.errors import EXIT_CORRUPT_FILE, ConvertModelError, FormatError
from convertmodel.fsutil import check_regular_file

__all__ = [
    "DataWarning",
    "NonFinite",
    "NonFiniteInputError",
    "check_data_path",
    "check_inputs",
    "check_labels",
    "load_numpy",
    "stream_errors",
]


class NonFiniteInputError(ConvertModelError, ValueError):
    """``strict``: a sample's model input has NaN/Inf values. Not a FormatError on purpose: engines skip
    unreadable samples (FormatError) and go on, while strict mode must stop the run (exit 5)."""

    exit_code = EXIT_CORRUPT_FILE


class DataWarning(UserWarning):
    """Data that can be used but probably is not what was meant (NaN/Inf inputs)."""


_format_warning = warnings.formatwarning


def _format(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    # A DataWarning is about the user's data, not about a line of convertmodel: one plain line on stderr.
    if issubclass(category, DataWarning):
        return f"warning: {message}\n"
    return _format_warning(message, category, filename, lineno, line)


warnings.formatwarning = _format


def check_data_path(path: str, what: str = "a data file or folder", allow_dir: bool = True) -> None:
    """The path exists and is a regular file (or a directory): a FIFO or device would block or never end."""
    check_regular_file(path, what, allow_dir=allow_dir)


def load_numpy(path: str, what: str = "numpy data", mmap: bool = False) -> Any:
    """``np.load`` of a regular file without pickles; any parse failure is a FormatError naming the file.

    numpy's header parser raises ValueError, SyntaxError, tokenize errors, EOFError or OSError for a
    malformed file depending on where it breaks; all of them mean the same thing here.
    """
    check_data_path(path, what, allow_dir=False)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except MemoryError as e:
        raise FormatError(path, f"cannot read {what}: its header declares more data than fits in memory") from e
    except Exception as e:  # third-party parse boundary: see the docstring
        raise FormatError(path, f"cannot read {what}: {type(e).__name__}: {e}") from e


def check_inputs(x: Any, path: str) -> None:
    """Inputs must be a numeric array (N, ...) with N >= 1 (not strings, records, objects or a scalar)."""
    arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if arr.dtype.kind not in "biuf":
        raise FormatError(path, f"inputs must be a numeric array, found dtype {arr.dtype}")
    if arr.ndim == 0:
        raise FormatError(path, f"inputs must be an array (N, ...), found a scalar {arr.item()!r}")
    if arr.shape[0] == 0:
        raise FormatError(path, f"the data set is empty: inputs of shape {list(arr.shape)} hold no samples")
    if 0 in arr.shape[1:]:
        raise FormatError(path, f"every sample is empty: inputs of shape {list(arr.shape)}")


def check_labels(y: Any, path: str, n: int) -> np.ndarray:
    """Integer class labels, one per sample; returned as int64 (N,)."""
    arr = np.asarray(y)
    if arr.dtype.kind not in "biu" and not (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    ):
        raise FormatError(path, f"labels must be integer class indices, found dtype {arr.dtype}")
    flat = arr.reshape(-1).astype(np.int64)
    if len(flat) != n:
        raise FormatError(path, f"expected {n} labels (one per sample), found {len(flat)}")
    return flat


@contextmanager
def stream_errors(path: str, where: str = "") -> Iterator[None]:
    """Map the errors of a truncated or corrupt compressed stream (gzip's EOFError, zlib.error,
    BadGzipFile) to a FormatError. An EOFError must never escape: click reads it as Ctrl-D and the
    CLI would report "interrupted" (exit 130)."""
    try:
        yield
    except (EOFError, zlib.error) as e:
        raise FormatError(path, f"truncated or corrupt compressed data{where}: {e}") from e
    except OSError as e:
        if type(e).__name__ == "BadGzipFile" or "gzip" in str(e).lower():
            raise FormatError(path, f"corrupt gzip data{where}: {e}") from e
        raise


@dataclass
class NonFinite:
    """Running count of samples with NaN or Inf values in the model inputs of one pass over a data set."""

    path: str
    strict: bool = False
    samples: int = 0
    values: int = 0
    first: int | None = None

    def check(self, x: np.ndarray, start: int, ids: list[str] | None = None) -> None:
        """Count the non-finite values of batch ``x`` whose first sample is index ``start``."""
        if x.dtype.kind != "f" or x.size == 0:
            return
        bad = ~np.isfinite(x.reshape(len(x), -1))
        per = bad.sum(axis=1)
        if not per.any():
            return
        idx = np.flatnonzero(per)
        k = int(idx[0])
        name = f" ({ids[k]})" if ids and k < len(ids) and ids[k] != str(start + k) else ""
        if self.strict:
            raise NonFiniteInputError(
                f"{self.path}: sample {start + k}{name} has {int(per[k])} NaN/Inf input values (strict: refused)"
            )
        self.samples += len(idx)
        self.values += int(per.sum())
        if self.first is None:
            self.first = start + k

    def warn(self) -> None:
        if self.samples:
            warnings.warn(
                f"{self.path}: {self.samples} sample(s) have NaN/Inf input values ({self.values} values, first at "
                f"sample {self.first}); results on them are meaningless (use --strict to refuse such data)",
                DataWarning,
                stacklevel=2,
            )

    def as_dict(self) -> dict[str, int | None]:
        return {"samples": self.samples, "values": self.values, "first": self.first}
