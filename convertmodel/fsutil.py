"""Files that are safe to open and outputs that are never partial.

Three rules every reader, data loader and writer of convertmodel follows (docs/robustness.md):

* **Only regular files are opened.** A FIFO, a character device or a socket would block or never
  end; :func:`open_regular` opens with ``O_NONBLOCK`` and checks ``fstat`` on the open descriptor
  (no race between the check and the open), :func:`check_regular_file` checks a path.
* **An output never replaces an input.** :func:`refuse_overwrite` compares resolved paths and
  inodes (hard links and symlinks included) of the output with every input of the command.
* **An output appears whole or not at all.** :func:`atomic_output` writes to
  ``.NAME.cm-tmp-PID`` in the destination's directory, fsyncs and renames it over the destination;
  on any exception, ``KeyboardInterrupt`` or SIGTERM/SIGHUP the temporary file is removed. A
  temporary file left by a killed process (SIGKILL, power loss) is recognised by its name and
  removed by the next write to the same destination once its process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import threading
from collections.abc import Iterable, Iterator
from typing import IO, Any

from convertmodel.errors import FormatError, ModelIOError

__all__ = [
    "TMP_TAG",
    "Terminated",
    "atomic_open",
    "atomic_output",
    "check_regular_file",
    "clean_stale_temps",
    "file_sha256",
    "open_regular",
    "read_head",
    "read_regular",
    "refuse_overwrite",
    "temp_path",
]

#: Marker in the name of every temporary output file: ``.NAME.cm-tmp-PID[-N]``.
TMP_TAG = ".cm-tmp-"

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _check_mode(path: str, mode: int, what: str, allow_dir: bool) -> None:
    if stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode)):
        return
    if stat.S_ISDIR(mode):
        raise FormatError(path, f"is a directory; expected {what}")
    raise FormatError(path, f"is {_kind(mode)}, not a regular file; expected {what}")


def check_regular_file(path: str | os.PathLike[str], what: str = "a file", allow_dir: bool = False) -> os.stat_result:
    """``os.stat(path)`` after checking it is a regular file (or a directory when ``allow_dir``).

    Raises :class:`ModelIOError` when it does not exist or cannot be accessed and
    :class:`FormatError` for a directory, FIFO, device or socket. Never opens the file.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise ModelIOError(f"{p}: no such file or directory") from None
    except OSError as e:
        raise ModelIOError(f"{p}: cannot access: {e.strerror or e}") from e
    _check_mode(p, st.st_mode, what, allow_dir)
    return st


def open_regular(path: str | os.PathLike[str], what: str = "a file") -> IO[bytes]:
    """Open ``path`` for binary reading, refusing anything but a regular file without blocking.

    The file is opened with ``O_NONBLOCK`` (so a FIFO without a writer does not hang the open)
    and checked with ``fstat`` on the open descriptor.
    """
    p = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise ModelIOError(f"{p}: no such file or directory") from None
    except IsADirectoryError:
        raise FormatError(p, f"is a directory; expected {what}") from None
    except OSError as e:
        raise ModelIOError(f"{p}: cannot open: {e.strerror or e}") from e
    try:
        _check_mode(p, os.fstat(fd).st_mode, what, allow_dir=False)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_head(path: str | os.PathLike[str], n: int = 64, what: str = "a model file") -> bytes:
    """The first ``n`` bytes of a regular file (format sniffing), never blocking on a FIFO."""
    try:
        with open_regular(path, what) as f:
            return f.read(n)
    except OSError as e:
        raise ModelIOError(f"{os.fspath(path)}: cannot read: {e.strerror or e}") from e


def read_regular(path: str | os.PathLike[str], what: str = "a model file") -> bytes:
    """The whole content of a regular file, never blocking on a FIFO: the one way a reader slurps a file
    (missing or unreadable: ModelIOError; directory, FIFO, device: FormatError naming ``what``)."""
    try:
        with open_regular(path, what) as f:
            return f.read()
    except OSError as e:
        raise ModelIOError(f"{os.fspath(path)}: cannot read: {e.strerror or e}") from e


# -- outputs ----------------------------------------------------------------------------------


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(
    output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None], what: str = "output"
) -> None:
    """Raise :class:`ModelIOError` when ``output`` is (or links to) one of ``inputs``."""
    out = os.fspath(output)
    for inp in inputs:
        if inp is None:
            continue
        i = os.fspath(inp)
        if _same_file(out, i):
            raise ModelIOError(f"{out}: refusing to write the {what} over the input file {i}; choose another path")


def temp_path(path: str | os.PathLike[str]) -> str:
    """A fresh temporary name for ``path``: ``.NAME.cm-tmp-PID`` (``-N`` appended when taken)."""
    p = os.fspath(path)
    d, base = os.path.split(os.path.abspath(p))
    stem = os.path.join(d, f".{base}{TMP_TAG}{os.getpid()}")
    cand, k = stem, 0
    while os.path.lexists(cand):
        k += 1
        cand = f"{stem}-{k}"
    return cand


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # a concurrent write of this process (another thread) may own it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


def clean_stale_temps(path: str | os.PathLike[str], dirs: bool = False) -> list[str]:
    """Remove temporary files of ``path`` (``dirs``: temporary folders, e.g. a Parquet output's) left by
    processes that no longer run; returns their names."""
    d, base = os.path.split(os.path.abspath(os.fspath(path)))
    pat = re.compile(r"^\." + re.escape(base) + re.escape(TMP_TAG) + r"(\d+)(?:-\d+)?$")
    removed: list[str] = []
    try:
        names = os.listdir(d)
    except OSError:
        return removed
    for name in names:
        m = pat.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        full = os.path.join(d, name)
        with contextlib.suppress(OSError):
            mode = os.lstat(full).st_mode
            if dirs and stat.S_ISDIR(mode):
                import shutil

                shutil.rmtree(full, ignore_errors=True)
                removed.append(full)
            elif not dirs and stat.S_ISREG(mode):
                os.unlink(full)
                removed.append(full)
    return removed


class Terminated(SystemExit):
    """SIGTERM/SIGHUP arrived during an atomic write: unwinds (running ``finally`` blocks, so the
    temporary file goes) and exits with the shell's status for a signal, 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception while an output is being written (main thread only,
    only where the default action would kill the process without running ``finally`` blocks)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) == signal.SIG_DFL:
                old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, h)


def _fsync_dir(directory: str) -> None:
    """Make the rename durable; not every platform/filesystem supports fsync on a directory."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _io_error(path: str, e: OSError) -> ModelIOError:
    return ModelIOError(f"{path}: cannot write: {e.strerror or e}")


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    *,
    what: str = "output",
    mode: int = 0o644,
    fsync: bool = True,
) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over ``path``.

    ``inputs`` are the files the command read: writing over one of them is refused before
    anything is written. On any exception (and on SIGTERM/SIGHUP) the temporary file is removed
    and an existing ``path`` is left untouched. OSErrors become :class:`ModelIOError` naming
    ``path``. The caller must write exactly the yielded path (``np.save`` appends ``.npy`` to a
    name without it: give it an open file, see :func:`atomic_open`).
    """
    dest = os.fspath(path)
    refuse_overwrite(dest, inputs, what)
    if os.path.isdir(dest):
        raise ModelIOError(f"{dest}: is a directory; expected an output file path")
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise ModelIOError(f"{dest}: cannot write: directory {directory} does not exist")
    clean_stale_temps(dest)
    tmp = temp_path(dest)
    try:
        with _signals_unwind():
            try:
                yield tmp
                if not os.path.lexists(tmp):
                    raise ModelIOError(f"{dest}: internal error: the writer did not create {tmp}")
                if fsync:
                    fd = os.open(tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                os.chmod(tmp, mode & ~_umask())
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    except OSError as e:
        if isinstance(e, ModelIOError):
            raise
        raise _io_error(dest, e) from e
    if fsync:
        _fsync_dir(directory)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "wb",
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    *,
    what: str = "output",
    encoding: str | None = None,
) -> Iterator[IO[Any]]:
    """:func:`atomic_output` as an open file (``"wb"`` or ``"w"``, UTF-8 for text by default)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    enc = None if mode == "wb" else (encoding or "utf-8")
    with atomic_output(path, inputs, what=what) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        with os.fdopen(fd, mode, encoding=enc) as f:
            yield f
            f.flush()


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        cur = os.umask(0)
        os.umask(cur)
        _UMASK = cur
    return _UMASK


#: file_sha256 results by (real path, device, inode, size, mtime): one command hashes its model once even
#: though the reader (source_sha256), verify's reference check and the report header all ask.
_SHA256_MEMO: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a regular file, read in 1 MiB chunks (memoised while the file is unchanged)."""
    import hashlib

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _SHA256_MEMO.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    _SHA256_MEMO[key] = digest = h.hexdigest()
    return digest
