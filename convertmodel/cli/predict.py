"""``convertmodel predict``: run a model on an .npy array or an image file."""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from convertmodel.cli.common import console, finish, load_model, threads_option
from convertmodel.errors import FormatError, InvalidModelError

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _load_input(path: str, model: Any, preset: str | None, strict: bool = False) -> np.ndarray:
    from convertmodel.data.checks import NonFinite, check_data_path, load_numpy

    check_data_path(path, "an input file (.npy or image)", allow_dir=False)  # a FIFO or device would block
    if path.lower().endswith(".npy"):
        x = load_numpy(path, "an .npy input")
        if x.dtype.kind not in "biuf":
            raise FormatError(path, f"the input must be a numeric array, found dtype {x.dtype}")
        nonfinite = NonFinite(path, strict)
        nonfinite.check(x.reshape(1, -1) if x.ndim == 0 else x, 0)
        nonfinite.warn()
        return x  # type: ignore[no-any-return]
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
        return pre.apply_array(arr[None])
    raise InvalidModelError(f"{path}: input must be .npy or an image ({', '.join(IMAGE_EXT)})")


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
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="An .npy array shaped like the model input, or an image file.",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write the first output to this .npy.")
@click.option("--prototxt", type=click.Path(dir_okay=False), help="Caffe deploy .prototxt (if not beside MODEL).")
@click.option(
    "--preset",
    help="Image preprocessing preset (see `convertmodel verify --help`); default: the preprocessing stored "
    "in a .q8, else the image resized to the input size with raw 0..255 pixel values.",
)
@click.option("--top", default=5, show_default=True, help="Classes to show for a classifier output.")
@click.option("--strict", is_flag=True, help="Refuse an input with NaN/Inf values (default: a warning with counts).")
@threads_option
def command(
    model_path: str,
    input_path: str,
    out_path: str | None,
    prototxt: str | None,
    preset: str | None,
    top: int,
    strict: bool,
    threads: int,
) -> None:
    """Run MODEL (.q8 or any source format) on one input and print or save the output."""
    from convertmodel.fsutil import refuse_overwrite
    from convertmodel.runtime.threads import limit_threads

    if out_path:  # before any work: --out naming the model or the input would destroy it
        refuse_overwrite(out_path, [model_path, input_path, prototxt], ".npy output")
    model = load_model(model_path, prototxt)
    x = _load_input(input_path, model, preset, strict)
    with limit_threads(threads):
        outs = model.predict({model.graph.inputs[0].name: x}, threads=threads)
    first = outs[model.graph.outputs[0].name]
    if out_path:
        from convertmodel.fsutil import atomic_open

        with atomic_open(out_path, "wb", [model_path, input_path, prototxt], what=".npy output") as f:
            np.save(f, first)
    summary: dict[str, Any] = {name: {"shape": list(v.shape), "dtype": str(v.dtype)} for name, v in outs.items()}
    if first.ndim == 2 and first.shape[1] > 1:
        k = min(top, first.shape[1])
        idx = np.argsort(-first, axis=1)[:, :k]
        summary["top"] = [[{"class": int(c), "score": float(first[i, c])} for c in row] for i, row in enumerate(idx)]

    def table(_: dict[str, Any]) -> None:
        c = console()
        for name, v in outs.items():
            c.print(f"{name}: {v.dtype}{list(v.shape)}")
        for i, row in enumerate(summary.get("top", [])):
            c.print(f"sample {i}: " + ", ".join(f"{r['class']} ({r['score']:.4f})" for r in row))
        if out_path:
            c.print(f"wrote {out_path}")

    finish(summary, table)
