"""The Python API documents itself, and docs/format.md's reserved metadata keys match what is written."""

from __future__ import annotations

import inspect
import os
import pydoc
import re

import numpy as np

import convertmodel
from tests.helpers import REPO, fixture_model


def test_help_lists_load_model_and_the_error_types() -> None:
    text = pydoc.render_doc(convertmodel, renderer=pydoc.plaintext)
    for name in ("load(", "class Model", "ConvertModelError", "DataError", "FormatError", "UsageError", "ModelIOError"):
        assert name in text, name


def test_load_and_predict_signatures_are_real() -> None:
    params = inspect.signature(convertmodel.load).parameters
    assert {"format", "fold_constants", "simplify", "input_shapes", "batch"} <= set(params)
    doc = convertmodel.Model.predict.__doc__ or ""
    assert "Returns" in doc and "dict" in doc


def _doc_keys() -> tuple[set[str], set[str]]:
    text = open(os.path.join(REPO, "docs", "format.md"), encoding="utf-8").read()
    section = text.split("Reserved metadata keys", 1)[1].split("\n## ", 1)[0]
    table, _, prose = section.partition("Provenance keys")
    reserved = set(re.findall(r"^\| `([a-z_.0-9]+)`", table, flags=re.M))
    provenance = set(re.findall(r"`([a-z_0-9]+)`", prose))
    return reserved, provenance


def test_reserved_metadata_keys_match_what_the_writer_writes(tmp_path) -> None:
    from convertmodel.data.preprocess import preset

    reserved, provenance = _doc_keys()
    src = fixture_model("lenet5")
    q = convertmodel.load(src).quantize().with_metadata({"preprocessing": preset("fmnist").to_json()})
    out = str(tmp_path / "m.q8")
    q.save(out)
    back = convertmodel.load(out)
    written = set(back.metadata)
    assert reserved <= written, f"documented but never written: {sorted(reserved - written)}"
    assert written <= reserved | provenance, f"written but not in docs/format.md: {sorted(written - reserved)}"
    assert "producer" not in written and "source.sha256" not in reserved
    assert back.quantization is not None and np.isfinite(back.predict(np.zeros((1, 1, 28, 28), np.float32))).all()
    caffe = convertmodel.load(os.path.join(REPO, "fixtures", "fmnist", "lenet5.caffemodel"))
    assert set(caffe.metadata) <= reserved | provenance
