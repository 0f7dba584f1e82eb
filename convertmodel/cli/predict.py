"""``convertmodel predict``: run a model on an .npy array or an image file, or score a data set (``--data``)."""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from convertmodel.cli.common import (
    console,
    finish,
    load_model,
    model_argument,
    progress,
    reader_options,
    shows_progress,
    threads_option,
)
from convertmodel.cli.engine_options import engine_options, make_engine, stopping
from convertmodel.errors import DataError, FormatError, UsageError

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _load_input(path: str, model: Any, preset: str | None, strict: bool = False) -> tuple[np.ndarray, list[str]]:
    """The batch to run: an .npy array, one image, or every image of a folder (sorted by name); and the
    sample ids (file names of images)."""
    import os

    from convertmodel.data.checks import NonFinite, check_data_path, load_numpy

    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXT))
        if not files:
            raise DataError(f"{path}: no images in this folder ({', '.join(IMAGE_EXT)})")
        parts = [_load_input(os.path.join(path, f), model, preset, strict)[0] for f in files]
        if len({a.shape for a in parts}) > 1:
            raise DataError(f"{path}: images preprocess to different sizes; pass --preset so all match the input")
        return np.concatenate(parts), files
    check_data_path(path, "an input file (.npy or image)", allow_dir=False)  # a FIFO or device would block
    if path.lower().endswith(".npy"):
        x = load_numpy(path, "an .npy input")
        if x.dtype.kind not in "biuf":
            raise FormatError(path, f"the input must be a numeric array, found dtype {x.dtype}")
        nonfinite = NonFinite(path, strict)
        nonfinite.check(x.reshape(1, -1) if x.ndim == 0 else x, 0)
        nonfinite.warn()
        return x, []
    if path.lower().endswith(IMAGE_EXT):
        from convertmodel.data.images import load_image
        from convertmodel.data.preprocess import Preprocess
        from convertmodel.data.preprocess import preset as named_preset

        if preset:
            pre = named_preset(preset)
        elif model.metadata.get("preprocessing"):
            pre = Preprocess.from_json(model.metadata["preprocessing"])
        else:
            pre = _default_preprocess(model.graph.inputs[0].type.shape)
        arr, _ = load_image(path, pre)  # pixel cap; an undecodable image is a FormatError naming the file
        return pre.apply_array(arr[None]), [os.path.basename(path)]
    raise UsageError(f"{path}: input must be .npy or an image ({', '.join(IMAGE_EXT)})")


def _default_preprocess(shape: Any) -> Any:
    """No preset and no stored preprocessing: resize to the input's H x W, RGB (or grey) pixels 0..255."""
    from convertmodel.data.preprocess import Preprocess

    dims = list(shape or [])
    nhwc = len(dims) == 4 and dims[-1] in (1, 3) and dims[1] not in (1, 3)
    hw = dims[1:3] if nhwc else dims[2:4]
    ch = dims[-1] if nhwc else (dims[1] if len(dims) == 4 else 3)
    size = (int(hw[0]), int(hw[1])) if len(hw) == 2 and all(isinstance(d, int) for d in hw) else None
    return Preprocess(resize=size, color="gray" if ch == 1 else "rgb", layout="NHWC" if nhwc else "NCHW")


@click.command("predict")
@model_argument("model_path")
@click.option(
    "--input",
    "input_path",
    type=click.Path(),
    help="Run the model once on: an .npy array (a batch) shaped like the model input, an image file, or a "
    "folder of images (one batch, sorted by name).",
)
@click.option(
    "--data",
    "data",
    type=click.Path(),
    help="Score a data set instead (as verify --data: image folder, list, IDX, .npy, VOC, COCO), one row per sample.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(),
    help="--input: OUT.npz holds every output keyed by name, OUT.npy the only output. "
    "--data: OUT.parquet (--engine spark) or OUT.jsonl.",
)
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside MODEL).")
@click.option(
    "--preset",
    help="Image preprocessing preset (see `convertmodel verify --help`); default: the preprocessing stored "
    "in a .q8, else the image resized to the input size with raw 0..255 pixel values.",
)
@click.option("--top", default=5, show_default=True, help="Classes to show for a classifier output.")
@click.option("--strict", is_flag=True, help="Refuse an input with NaN/Inf values (default: a warning with counts).")
@click.option("--raw", is_flag=True, help="--data: each row holds the whole output (flattened), not the top classes.")
@click.option("--images", type=click.Path(file_okay=False), help="--data: image root for a list file or COCO .json.")
@click.option(
    "--batch",
    "--batch-size",
    "batch_size",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="--data: samples per run (--batch-size: the older name).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="--data: only the first N samples.")
@threads_option
@engine_options
@reader_options
def command(
    model_path: str,
    input_path: str,
    out_path: str | None,
    prototxt: str | None,
    preset: str | None,
    top: int,
    strict: bool,
    threads: int,
    raw: bool = False,
    images: str | None = None,
    batch_size: int = 64,
    limit: int | None = None,
    data: str | None = None,
    engine: str = "local",
    master: str | None = None,
    partitions: int | None = None,
    spark_conf: tuple[str, ...] = (),
) -> None:
    """Run MODEL (.q8 or any source format) on one input and print or save the output.

    With --data, score every sample of a data set on the local engine or on Spark:

    \b
    convertmodel predict lenet5.q8 --data images/ --out scores.jsonl
    convertmodel predict lenet5.q8 --data images/ --engine spark --master yarn --out scores.parquet
    """
    from convertmodel.fsutil import refuse_overwrite
    from convertmodel.runtime.threads import limit_threads

    if (input_path is None) == (data is None):
        raise UsageError("give one of --input FILE (one input) or --data DATA (a data set)")
    eng = make_engine(engine, master, partitions, spark_conf)
    if data is not None:
        _predict_data(
            model_path, prototxt, eng, data, images, out_path, preset, top, raw, batch_size, limit, threads, strict
        )
        return
    if eng.name != "local":
        raise UsageError("--engine spark scores a data set: use --data DATA")
    assert input_path is not None
    if out_path:  # before any work: --out naming the model or the input would destroy it
        refuse_overwrite(out_path, [model_path, input_path, prototxt], _what(out_path))
    model = load_model(model_path, prototxt)
    names = [o.name for o in model.graph.outputs]
    _check_out(out_path, names)
    x, ids = _load_input(input_path, model, preset, strict)
    with limit_threads(threads):
        outs = model.predict({model.graph.inputs[0].name: x}, threads=threads)
    first = outs[names[0]]
    if out_path:
        _save_outputs(out_path, outs, names, [model_path, input_path, prototxt])
    summary: dict[str, Any] = {
        "input": input_path,
        "samples": int(x.shape[0]) if x.ndim else 1,
        "outputs": {name: {"shape": list(v.shape), "dtype": str(v.dtype)} for name, v in outs.items()},
        "out": out_path,
    }
    if ids:
        summary["ids"] = ids
    if first.ndim == 2 and first.shape[1] > 1:
        k = min(top, first.shape[1])
        idx = np.argsort(-first, axis=1)[:, :k]
        summary["top"] = [[{"class": int(c), "score": float(first[i, c])} for c in row] for i, row in enumerate(idx)]

    def table(_: dict[str, Any]) -> None:
        c = console()
        for name, v in outs.items():
            c.print(f"{name}: {v.dtype}{list(v.shape)}")
        for i, row in enumerate(summary.get("top", [])):
            who = ids[i] if i < len(ids) else f"sample {i}"
            c.print(f"{who}: " + ", ".join(f"{r['class']} ({r['score']:.4f})" for r in row))
        if out_path:
            c.print(f"wrote {out_path}")

    finish(summary, table)


def _what(out: str) -> str:
    return ".npz output" if out.lower().endswith(".npz") else ".npy output"


def _check_out(out: str | None, names: list[str]) -> None:
    """--out FILE.npz (every output, keyed by name) or FILE.npy (a model with one output); before any work."""
    if out is None:
        return
    low = out.lower()
    if low.endswith(".npy") and len(names) > 1:
        raise UsageError(f"{out}: the model has {len(names)} outputs {names}; use --out FILE.npz to save them all")
    if not low.endswith((".npy", ".npz")):
        raise UsageError(f"{out}: --out with --input is FILE.npz (every output) or FILE.npy (the only output)")


def _save_outputs(out: str, outs: dict[str, np.ndarray], names: list[str], inputs: list[Any]) -> None:
    from convertmodel.fsutil import atomic_open

    with atomic_open(out, "wb", inputs, what=_what(out)) as f:
        if out.lower().endswith(".npz"):
            arrays: dict[str, Any] = {n: outs[n] for n in names}
            np.savez(f, **arrays)
        else:
            np.save(f, outs[names[0]])


def _predict_data(
    model_path: str,
    prototxt: str | None,
    eng: Any,
    data: str,
    images: str | None,
    out: str | None,
    preset: str | None,
    top: int,
    raw: bool,
    batch_size: int,
    limit: int | None,
    threads: int,
    strict: bool,
) -> None:
    from convertmodel.cli.predict_data import check_unreadable, predict_data, print_rows
    from convertmodel.fsutil import refuse_overwrite
    from convertmodel.runtime.threads import limit_threads

    if out:
        refuse_overwrite(out, [model_path, data, prototxt], "predictions")
    model = load_model(model_path, prototxt)
    with limit_threads(threads), progress(shows_progress()) as bar, stopping(eng):
        task = bar.add_task(f"predict ({eng.name})", total=None)
        summary = predict_data(
            model_path,
            model,
            eng,
            data=data,
            images=images,
            out=out,
            preset_name=preset,
            top=top,
            raw=raw,
            batch_size=batch_size,
            limit=limit,
            threads=threads,
            progress=lambda done, n: bar.update(task, completed=done, total=n),
            strict=strict,
        )
    finish(summary, lambda s: print_rows(s, console()))
    check_unreadable(summary)
