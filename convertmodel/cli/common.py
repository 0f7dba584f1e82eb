"""Helpers shared by the CLI commands: options several commands take, and the one way a command ends.

Every command builds a report dict and calls :func:`finish`: ``--json`` prints it, ``--quiet`` prints
nothing, otherwise the command's table function draws it. Options that several commands share are
defined once here (``threads_option``, ``quantize_options``) so they read and behave the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convertmodel.cli.progress import LogProgress, progress  # noqa: F401  (the commands import them from here)

F = TypeVar("F", bound=Callable[..., Any])


class Budget(click.ParamType):
    """An accuracy budget (``--max-drop``): a finite number; ``nan`` and ``inf`` are usage errors (a NaN budget
    makes every comparison false, so a gate could never pass or never fail). A negative budget is allowed: it
    asks int8 to beat fp32 by that much."""

    name = "budget"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if x != x or x in (float("inf"), float("-inf")):
            self.fail(f"{value!r} must be a finite number", param, ctx)
        return x


BUDGET = Budget()


def state(ctx: click.Context | None = None) -> Any:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    return root.obj


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=_default)
    sys.stdout.write("\n")


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def finish(report: dict[str, Any], table: Callable[[dict[str, Any]], None] | None = None) -> None:
    """The end of every command: the report as JSON (``--json``), nothing (``--quiet``), or ``table(report)``;
    with ``--report FILE`` the JSON also goes to FILE, atomically. The JSON is the report in the one schema
    family (:func:`convertmodel.cli.reports.envelope`)."""
    from convertmodel.cli.reports import envelope, write_report

    st = state()
    doc = envelope(report)
    if getattr(st, "report", None):
        write_report(st.report, doc)
    if st.json:
        emit_json(doc)
        st.emitted = True
    elif not st.quiet and table is not None:
        table(report)


def shows_progress() -> bool:
    """Progress bars and tables only for a person: not with --json or --quiet."""
    st = state()
    return not (st.json or st.quiet)


def warn_reference_int8() -> None:
    """One line on stderr, once per run, when int8 runs on the numpy reference kernels (no native extension)."""
    from convertmodel.runtime import native

    st = state()
    if native.available() or getattr(st, "warned_reference", False):
        return
    st.warned_reference = True
    click.echo(
        "warning: int8 runs on the numpy reference kernels (the native extension is not built; reinstall with a "
        "C++17 compiler: pip install -e .); results are exact but slow",
        err=True,
    )


def threads_option(fn: F) -> F:
    """``--threads N``: threads for the native kernels and BLAS; 0 = all CPUs this process may use.

    The value is resolved here (runtime/threads.py), so every command passes a real count down.
    """

    def resolve(ctx: click.Context, param: click.Parameter, value: int) -> int:
        from convertmodel.runtime.threads import resolve_threads

        if ctx.command.name in ("verify", "bench"):  # they always run int8
            warn_reference_int8()
        return resolve_threads(value)

    return click.option(
        "--threads",
        type=click.IntRange(0),
        default=0,
        show_default=True,
        callback=resolve,
        help="Threads for the native kernels and BLAS (0 = all CPUs this process may use).",
    )(fn)


def quantize_options(fn: F) -> F:
    """``--exclude``, ``--compat``, ``--input-levels``, ``--quantize-depthwise``: what :class:`QuantizeOptions` holds."""
    fn = click.option(  # not a command parameter: kept in ctx.meta for make_quantize_options
        "--quantize-depthwise/--no-quantize-depthwise",
        default=None,
        expose_value=False,
        callback=lambda ctx, _param, value: ctx.meta.__setitem__("quantize_depthwise", value),
        help="Quantize depthwise convolutions (C/G = 1) too; by default they stay fp32, where they run faster "
        "(quantized with --compat bigdl).",
    )(fn)
    fn = click.option(
        "--input-levels",
        type=click.IntRange(1, 255),
        default=None,
        help="Levels of the per-patch input windows (default 255; 127 with --compat bigdl).",
    )(fn)
    fn = click.option(
        "--compat",
        type=click.Choice(["bigdl"]),
        default=None,
        help="Reproduce BigDL 0.3's numerics: 127 input levels, weights re-quantized to 64 levels.",
    )(fn)
    return click.option(
        "--exclude",
        multiple=True,
        metavar="PATTERN",
        help="Keep these layers fp32: layer names or op types, glob patterns (fnmatch); "
        "repeatable and/or comma-separated, e.g. --exclude 'fc8,conv1_*'.",
    )(fn)


def make_quantize_options(exclude: tuple[str, ...], compat: str | None, input_levels: int | None) -> Any:
    """The command's :class:`QuantizeOptions` (``--quantize-depthwise`` comes from the click context)."""
    from convertmodel.quant.options import QuantizeOptions

    ctx = click.get_current_context(silent=True)
    depthwise = ctx.meta.get("quantize_depthwise") if ctx is not None else None
    return QuantizeOptions(exclude=exclude, compat=compat, input_levels=input_levels, quantize_depthwise=depthwise)


def model_bytes(path: str) -> int:
    """Size of a model file, or of all files in a model directory (a TensorFlow SavedModel)."""
    import os

    if path.startswith(ZOO_PREFIX):
        return 0  # built in memory, no file
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def remember_model(path: str) -> None:
    """Record the command's model (the JSON header and error object name it); check --report early."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta.setdefault("model_path", path)
    st = state(ctx) if ctx is not None else None
    if st is not None and getattr(st, "model_path", None) is None:
        st.model_path = path
    if st is not None and getattr(st, "report", None):
        from convertmodel.cli.reports import report_inputs
        from convertmodel.fsutil import refuse_overwrite

        refuse_overwrite(st.report, report_inputs(), "JSON report")  # before any work


def model_argument(name: str = "model_path", in_alias: bool = False) -> Callable[[F], F]:
    """The model, the same way on every command: a positional MODEL (a file, a SavedModel directory or
    ``zoo:NAME``); ``in_alias`` also accepts the older ``--in MODEL`` (convert, quantize)."""
    import functools

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            alias = kwargs.pop("model_in", None)
            pos = kwargs.get(name)
            if pos and alias and pos != alias:
                raise click.UsageError(f"two models given ({pos} and --in {alias}); give MODEL once")
            path = pos or alias
            if not path:
                raise click.UsageError("Missing argument 'MODEL'.")
            kwargs[name] = path
            remember_model(path)
            return f(*args, **kwargs)

        cmd: Any = wrapper
        if in_alias:
            cmd = click.option(
                "--in",
                "model_in",
                metavar="MODEL",
                type=click.Path(),
                help="Same as the positional MODEL (older form).",
            )(cmd)
        return click.argument(name, metavar="MODEL", type=click.Path(), required=not in_alias)(cmd)  # type: ignore[no-any-return]

    return deco


#: --tf-inputs/--tf-outputs/--signature -> the TensorFlow/Keras readers' options.
_READER_FLAGS = {"tf_inputs": "inputs", "tf_outputs": "outputs", "tf_signature": "signature"}


def reader_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --tf-inputs/--tf-outputs/--signature; load_model passes them to readers that take them."""
    import functools

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        meta = click.get_current_context().meta
        for flag in _READER_FLAGS:
            value = kwargs.pop(flag, None)
            if value:
                meta[flag] = value
        shapes = kwargs.pop("input_shape", ())
        if shapes:
            from convertmodel.passes.input_shapes import parse_input_shapes

            meta["input_shapes"] = parse_input_shapes(shapes)
        return f(*args, **kwargs)

    wrapper = click.option(
        "--input-shape",
        "input_shape",
        multiple=True,
        metavar="[NAME:]D0,D1,...",
        help="Replace an input's declared shape, e.g. data:8,3,224,224 (N or -1: symbolic), so a model declared "
        "with batch 1 runs batched; repeatable, one per input.",
    )(wrapper)
    wrapper = click.option(
        "--signature", "tf_signature", metavar="NAME", help="SavedModel signature (default serving_default)."
    )(wrapper)
    wrapper = click.option(
        "--tf-outputs", "tf_outputs", metavar="NAMES", help="TensorFlow/Keras: stop at these nodes or layers."
    )(wrapper)
    return click.option(
        "--tf-inputs",
        "tf_inputs",
        metavar="NAME[:SHAPE];...",
        help="TensorFlow/Keras: start at these tensors, optionally with a shape (e.g. input:1,224,224,3).",
    )(wrapper)


ZOO_PREFIX = "zoo:"


def zoo_model(spec: str, shapes: Any = None) -> Any:
    """``zoo:vgg16`` / ``zoo:vgg19`` in every command: the exact topology with random weights (224 x 224, or
    the image size of ``--input-shape``)."""
    from convertmodel.bench import zoo_graph, zoo_image_size
    from convertmodel.model import Model
    from convertmodel.passes.input_shapes import apply_input_shapes

    return Model(apply_input_shapes(zoo_graph(spec, 1, zoo_image_size(shapes)), shapes), spec)


def reader_kwargs(path: str, prototxt: str | None = None) -> dict[str, Any]:
    """The load options of ``path`` that @reader_options collected (``input_shapes``, the TensorFlow flags
    its reader takes) and ``prototxt``: what convertmodel.load (and bench) get."""
    meta = ctx.meta if (ctx := click.get_current_context(silent=True)) else {}
    opts: dict[str, Any] = {}
    if prototxt:
        opts["prototxt"] = prototxt
    if meta.get("input_shapes"):
        opts["input_shapes"] = meta["input_shapes"]
    flags = {_READER_FLAGS[k]: v for k, v in meta.items() if k in _READER_FLAGS}
    if flags and not path.startswith(ZOO_PREFIX):
        from convertmodel.readers import detect_format, reader_info

        accepted = reader_info(detect_format(path)).options
        opts.update({k: v for k, v in flags.items() if k in accepted})  # a .q8 or reference model ignores them
    return opts


def load_model(path: str, prototxt: str | None = None) -> Any:
    """convertmodel.load with the reader options the CLI exposes."""
    from convertmodel.model import load

    remember_model(path)
    opts = reader_kwargs(path, prototxt)
    if path.startswith(ZOO_PREFIX):
        return zoo_model(path, opts.get("input_shapes"))
    model = load(path, **opts)
    if model.is_quantized:
        warn_reference_int8()
    return model


def ops_rows(graph: Any) -> list[tuple[str, int, int]]:
    """(op type, count, parameters) per op type, most parameters first."""
    params: dict[str, int] = {}
    counts: dict[str, int] = {}
    for n in graph.nodes:
        key = f"{n.domain}.{n.op_type}" if n.domain else n.op_type
        counts[key] = counts.get(key, 0) + 1
        params[key] = params.get(key, 0) + sum(int(graph.constants[i].size) for i in n.inputs if i in graph.constants)
    return sorted(((k, counts[k], params[k]) for k in counts), key=lambda r: (-r[2], -r[1], r[0]))


def type_text(t: Any) -> str:
    """A value's type as the CLI shows it: a symbolic batch dimension is N (``float32[N,3,224,224]``)."""
    if t.shape is None:
        return str(t)
    dims = ["N" if i == 0 and isinstance(d, str) else ("?" if d is None else str(d)) for i, d in enumerate(t.shape)]
    return f"{t.dtype}[{','.join(dims)}]"


def io_rows(graph: Any) -> list[tuple[str, str, str]]:
    rows = [("input", vi.name, type_text(vi.type)) for vi in graph.inputs]
    rows += [("output", vi.name, type_text(vi.type)) for vi in graph.outputs]
    return rows
