"""convertmodel.fsutil: regular files only, outputs atomic, inputs never overwritten, stale temps cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from convertmodel.errors import FormatError, ModelIOError
from convertmodel.fsutil import (
    TMP_TAG,
    atomic_open,
    atomic_output,
    check_regular_file,
    clean_stale_temps,
    open_regular,
    read_head,
    refuse_overwrite,
)


def _temps(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if TMP_TAG in n)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.q8"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(FormatError, match=r"named pipe \(FIFO\), not a regular file"):
        open_regular(fifo)
    with pytest.raises(FormatError, match="FIFO"):
        read_head(fifo)
    with pytest.raises(FormatError, match="FIFO"):
        check_regular_file(fifo)
    assert time.monotonic() - t0 < 5


def test_device_directory_and_missing(tmp_path):
    with pytest.raises(FormatError, match="character device"):
        open_regular("/dev/null")
    with pytest.raises(FormatError, match="is a directory"):
        open_regular(tmp_path)
    with pytest.raises(FormatError, match="is a directory"):
        check_regular_file(tmp_path)
    assert check_regular_file(tmp_path, allow_dir=True)
    with pytest.raises(ModelIOError, match="no such file"):
        open_regular(tmp_path / "nope")
    f = tmp_path / "ok.bin"
    f.write_bytes(b"abc")
    assert read_head(f, 2) == b"ab"


def test_refuse_overwrite_resolves_links(tmp_path):
    a = tmp_path / "model.q8"
    a.write_bytes(b"model")
    (tmp_path / "link.q8").symlink_to(a)
    os.link(a, tmp_path / "hard.q8")
    for out in (a, tmp_path / "link.q8", tmp_path / "hard.q8", tmp_path / "sub" / ".." / "model.q8"):
        with pytest.raises(ModelIOError, match="refusing to write"):
            refuse_overwrite(out, [None, a])
    refuse_overwrite(tmp_path / "other.q8", [a])  # a new name is fine


def test_atomic_output_success_and_failure(tmp_path):
    dest = tmp_path / "r.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_open(dest, "w") as f:
        f.write("half")
        raise RuntimeError("disk on fire")
    assert dest.read_text() == "old" and _temps(tmp_path) == []
    with atomic_open(dest, "w") as f:
        f.write("new")
    assert dest.read_text() == "new" and _temps(tmp_path) == []
    assert oct(dest.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_atomic_output_refuses_input_before_writing(tmp_path):
    inp = tmp_path / "x.npy"
    inp.write_bytes(b"input")
    with pytest.raises(ModelIOError, match="refusing"), atomic_output(inp, inputs=[inp]) as tmp:
        open(tmp, "wb").write(b"clobber")
    assert inp.read_bytes() == b"input" and _temps(tmp_path) == []


def test_atomic_output_oserror_is_model_io_error(tmp_path):
    with pytest.raises(ModelIOError, match="does not exist"), atomic_output(tmp_path / "no" / "x.npy"):
        pass
    with pytest.raises(ModelIOError, match="did not create"), atomic_output(tmp_path / "x.npy"):
        pass  # the writer never wrote the temp file
    assert _temps(tmp_path) == []


def test_stale_temps_of_dead_processes_are_cleaned(tmp_path):
    dest = tmp_path / "out.q8"
    dead = tmp_path / f".out.q8{TMP_TAG}{_dead_pid()}"
    dead.write_bytes(b"x" * 100)
    mine = tmp_path / f".out.q8{TMP_TAG}{os.getpid()}-3"
    mine.write_bytes(b"y")  # a live process's (ours) temp is left alone
    other = tmp_path / f".other.q8{TMP_TAG}{_dead_pid()}"
    other.write_bytes(b"z")  # another destination's
    with atomic_open(dest) as f:
        f.write(b"new")
    assert not dead.exists() and mine.exists() and other.exists()
    assert clean_stale_temps(tmp_path / "other.q8") == [str(other)]


_WRITER = textwrap.dedent(
    """
    import sys, time
    from convertmodel.fsutil import atomic_open
    with atomic_open(sys.argv[1]) as f:
        f.write(b"partial")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signal_mid_write_leaves_no_partial_file(tmp_path, sig):
    dest = tmp_path / "y.npy"
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(dest)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == b"writing\n"
    p.send_signal(sig)
    p.wait(timeout=20)
    assert not dest.exists()
    if sig == signal.SIGKILL:  # nothing can clean up after SIGKILL: the next write does
        assert len(_temps(tmp_path)) == 1
        with atomic_open(dest) as f:
            f.write(b"ok")
        assert dest.read_bytes() == b"ok"
    elif sig == signal.SIGTERM:
        assert p.returncode == 128 + sig  # the shell's status for a signal, after cleaning up
    else:
        assert p.returncode != 0  # KeyboardInterrupt
    assert _temps(tmp_path) == []
