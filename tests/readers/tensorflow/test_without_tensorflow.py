"""Frozen .pb and Keras .h5/.keras files read with TensorFlow and Keras unimportable (a subprocess blocks them).

The subprocess's outputs are compared with the same reader in this process (whose results the
TensorFlow-checked tests pin down), so a reader that silently needed TensorFlow would fail here.
A SavedModel there gets the one-line install hint instead (exit code 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import convertmodel
from tests.readers.tensorflow.tfhelp import FMNIST, fmnist_images

BLOCK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorflow_cpu"):
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, _Block())
"""

CHILD = (
    BLOCK
    + """
import json, numpy as np, convertmodel
x = np.load(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    m = convertmodel.load(path)
    out[path] = m.predict(x).tolist()
assert not any(k.split(".")[0] in ("tensorflow", "keras") for k in sys.modules), "TensorFlow got imported"
print(json.dumps(out))
"""
)

FILES = ["lenet5_frozen.pb", "lenet5.h5", "lenet5.keras", "mobilenet.h5", "vgg.keras"]


def test_pb_and_keras_read_without_tensorflow(tmp_path) -> None:
    x, _ = fmnist_images(50)
    np.save(tmp_path / "x.npy", x)
    paths = [os.path.join(FMNIST, f) for f in FILES]
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "x.npy"), *paths], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for p in paths:
        np.testing.assert_array_equal(np.asarray(got[p], np.float32), convertmodel.load(p).predict(x), err_msg=p)


def test_savedmodel_without_tensorflow_gives_the_install_hint() -> None:
    code = BLOCK + "from convertmodel.cli.main import main\nmain(['inspect', sys.argv[1]])\n"
    r = subprocess.run(
        [sys.executable, "-c", code, os.path.join(FMNIST, "lenet5_savedmodel")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "convertmodel[tensorflow]" in lines[0] and "lenet5_savedmodel" in lines[0], r.stderr
