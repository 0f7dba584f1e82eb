"""Issue 15 item 9: a flipped byte in tensor data is found: ``inspect --check`` checks every tensor's
CRC-32; ``convert`` and ``verify`` check them by default; exit 5 naming the tensor."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.cli import run_cli
from tests.helpers import SUBSET_IMAGES, fixture_model


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory) -> tuple[str, str, str]:
    """(good int8 .q8, the same file with one byte of one weight tensor flipped, that tensor's name)."""
    from convertmodel.serialize.reader import read_layout

    d = tmp_path_factory.mktemp("crc")
    src = shutil.copy(fixture_model("lenet5"), d / "lenet5.onnx")
    good = str(d / "lenet5.q8")
    assert run_cli(["quantize", str(src), "--out", good])[0] == 0
    layout = read_layout(good)
    name, t = max(layout.decoded.tensors.items(), key=lambda kv: kv[1].nbytes)
    bad = str(d / "bad" / "lenet5.q8")
    os.makedirs(os.path.dirname(bad))
    shutil.copy(src, os.path.join(os.path.dirname(bad), "lenet5.onnx"))
    data = bytearray(open(good, "rb").read())
    data[layout.data_start + t.offset + t.nbytes // 2] ^= 0x10
    with open(bad, "wb") as f:
        f.write(data)
    return good, bad, name


def test_inspect_check_finds_the_flipped_tensor(corrupt, capsys) -> None:
    good, bad, name = corrupt
    code, out, err = run_cli(["--json", "inspect", good, "--check"], capsys)
    assert code == 0, err
    assert '"crc_checked"' in out
    code, _, err = run_cli(["inspect", bad, "--check"], capsys)
    assert code == 5 and repr(name) in err and "checksum mismatch" in err
    assert len(err.strip().splitlines()) == 1


def test_inspect_check_refuses_a_format_without_checksums(capsys) -> None:
    code, _, err = run_cli(["inspect", fixture_model("lenet5"), "--check"], capsys)
    assert code == 2 and "checksums" in err


def test_convert_from_a_corrupt_q8_exits_5_and_writes_nothing(corrupt, tmp_path, capsys) -> None:
    _, bad, name = corrupt
    out = tmp_path / "o.q8"
    code, _, err = run_cli(["convert", bad, "--out", str(out)], capsys)
    assert code == 5 and repr(name) in err
    assert not out.exists()


def test_verify_of_a_corrupt_q8_exits_5(corrupt, capsys) -> None:
    _, bad, name = corrupt
    code, _, err = run_cli(["verify", bad, "--data", SUBSET_IMAGES, "--limit", "8"], capsys)
    assert code == 5 and repr(name) in err
