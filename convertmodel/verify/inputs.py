"""The data and preprocessing verify runs on, resolved once for every command that measures accuracy.

Preprocessing comes from, first to last: a ``--preset`` and explicit flags, the model's stored
``metadata["preprocessing"]``, the data format's own convention (IDX and MNIST-style arrays:
grey, x/255). Image files have no convention: with ``require_known`` (verify, quantize --calib)
the caller must say (``--preset``), so the same images never give two answers depending on their
container. A spec nobody fixed is then fitted to the model input (channels, layout, image size);
a preset's layout always follows the model input (an NHWC model gets NHWC) unless ``--layout`` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convertmodel.data.datasets import Dataset, open_dataset
from convertmodel.data.preprocess import PRESETS, Preprocess, parse_floats, parse_size, preset
from convertmodel.errors import UsageError
from convertmodel.verify.runner import fit_preprocess

#: ``graph.metadata`` key of a model's stored preprocessing (a Preprocess as JSON).
PREPROCESS_KEY = "preprocessing"


def resolve_preprocess(
    preset_name: str | None, flags: Mapping[str, Any], model_meta: Mapping[str, str], dataset: Dataset
) -> tuple[Preprocess, bool]:
    """--preset and flags > the model's stored preprocessing > the data's default > plain.

    Returns (spec, explicit) where explicit tells whether the user or the model fixed it.
    """
    pre, explicit, _ = resolve_preprocess_from(preset_name, flags, model_meta, dataset)
    return pre, explicit


def resolve_preprocess_from(
    preset_name: str | None, flags: Mapping[str, Any], model_meta: Mapping[str, str], dataset: Dataset
) -> tuple[Preprocess, bool, str]:
    """:func:`resolve_preprocess` plus where the spec came from (printed in the report header):
    "preset NAME", "the model's stored preprocessing", "the data format's convention" or "none"
    (", with --flags" appended when flags changed it)."""
    given = {k: v for k, v in flags.items() if v is not None}
    if preset_name:
        base, explicit, origin = preset(preset_name), True, f"preset {preset_name}"
    elif model_meta.get(PREPROCESS_KEY):
        base, explicit = Preprocess.from_json(model_meta[PREPROCESS_KEY]), True
        origin = "the model's stored preprocessing"
    elif dataset.default_preprocess is not None:
        base, explicit, origin = dataset.default_preprocess, False, "the data format's convention"
    else:
        base, explicit, origin = Preprocess(), False, "none"
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
        flagged = ", ".join(f"--{k}" for k in changes)
        origin = f"{flagged}" if origin == "none" else f"{origin}, with {flagged}"
    return (base.with_(**changes) if changes else base), explicit, origin


def fit_layout(pre: Preprocess, input_shape: tuple[Any, ...] | None) -> Preprocess:
    """``pre`` with the layout of a 4-D model input whose channel axis is clear (1 or 3 channels on one side)."""
    if input_shape is None or len(input_shape) != 4:
        return pre
    dims = list(input_shape)
    c_first, c_last = dims[1] in (1, 3), dims[3] in (1, 3)
    layout = "NHWC" if c_last and not c_first else "NCHW" if c_first and not c_last else pre.layout
    return pre if layout == pre.layout else pre.with_(layout=layout)


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
    require_known: bool = False,
    origin: list[str] | None = None,
) -> tuple[Dataset, Preprocess]:
    """The data set and the preprocessing to run ``fp32`` (and its int8 copy) on (``strict``: NaN/Inf
    inputs are an error, see :func:`convertmodel.data.open_dataset`). ``require_known``: image files
    with no preset, flags or stored preprocessing are a UsageError naming the presets. ``origin``: a
    list that receives where the preprocessing came from."""
    ds = open_dataset(data, labels=labels, images=images, strict=strict)
    meta = fp32.metadata if model_meta is None else model_meta
    pre, explicit, came_from = resolve_preprocess_from(preset_name, flags or {}, meta, ds)
    if require_known and came_from == "none" and not ds.is_array:
        raise UsageError(
            f"{data}: image files have no preprocessing convention (pixel scale, mean, channel order); pass "
            f"--preset ({', '.join(sorted(PRESETS))}) or --scale/--mean/--std/--color, or store one in the .q8 "
            "with --save-preprocessing"
        )
    shape = fp32.graph.inputs[0].type.shape if fp32.graph.inputs else None
    if not explicit:
        pre = fit_preprocess(pre, shape, ds)
    elif not (flags or {}).get("layout"):
        pre = fit_layout(pre, shape)  # a preset names no model: its layout follows the model input
    if origin is not None:
        origin.append(came_from)
    return ds, pre
