"""The data and preprocessing verify runs on, resolved once for every command that measures accuracy.

Preprocessing comes from, first to last: a ``--preset`` and explicit flags, the model's stored
``metadata["preprocessing"]``, the data set's default, plain pixels. A spec nobody fixed is then
fitted to the model input (channels, layout, image size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convertmodel.data.datasets import Dataset, open_dataset
from convertmodel.data.preprocess import Preprocess, parse_floats, parse_size, preset
from convertmodel.verify.runner import fit_preprocess

#: ``graph.metadata`` key of a model's stored preprocessing (a Preprocess as JSON).
PREPROCESS_KEY = "preprocessing"


def resolve_preprocess(
    preset_name: str | None, flags: Mapping[str, Any], model_meta: Mapping[str, str], dataset: Dataset
) -> tuple[Preprocess, bool]:
    """--preset and flags > the model's stored preprocessing > the data's default > plain.

    Returns (spec, explicit) where explicit tells whether the user or the model fixed it.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    if preset_name:
        base, explicit = preset(preset_name), True
    elif model_meta.get(PREPROCESS_KEY):
        base, explicit = Preprocess.from_json(model_meta[PREPROCESS_KEY]), True
    else:
        base, explicit = (dataset.default_preprocess or Preprocess()), False
    changes: dict[str, Any] = {}
    if "resize" in given:
        changes["resize"] = parse_size(given["resize"], "--resize")
    if "crop" in given:
        changes["crop"] = parse_size(given["crop"], "--crop")
    for k in ("mean", "std"):
        if k in given:
            changes[k] = parse_floats(given[k], f"--{k}")
    for k in ("scale", "color", "layout"):
        if k in given:
            changes[k] = given[k]
    if changes:
        explicit = True
    return (base.with_(**changes) if changes else base), explicit


def open_verify_data(
    data: str,
    fp32: Any,
    *,
    labels: str | None = None,
    images: str | None = None,
    preset_name: str | None = None,
    flags: Mapping[str, Any] | None = None,
    model_meta: Mapping[str, str] | None = None,
    strict: bool = False,
) -> tuple[Dataset, Preprocess]:
    """The data set and the preprocessing to run ``fp32`` (and its int8 copy) on (``strict``: NaN/Inf
    inputs are an error, see :func:`convertmodel.data.open_dataset`)."""
    ds = open_dataset(data, labels=labels, images=images, strict=strict)
    meta = fp32.metadata if model_meta is None else model_meta
    pre, explicit = resolve_preprocess(preset_name, flags or {}, meta, ds)
    if not explicit:
        pre = fit_preprocess(pre, fp32.graph.inputs[0].type.shape if fp32.graph.inputs else None, ds)
    return ds, pre
