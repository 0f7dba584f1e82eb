"""convertmodel: convert, quantize to int8, verify and benchmark pretrained CNNs on CPU.

The Python API: ``convertmodel.load(path, ...) -> Model``; a :class:`Model` runs (``predict``),
quantizes (``quantize``) and saves (``save``). Bad input raises one of the error types below, all
subclasses of :class:`ConvertModelError` (their ``exit_code`` is the CLI's).

``import convertmodel`` is light: numpy and the IR load only when ``load``/``Model`` are first
used, so ``convertmodel --help`` starts instantly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convertmodel.errors import (
    AccuracyGateError,
    ConvertModelError,
    DataError,
    FormatError,
    InvalidModelError,
    ModelIOError,
    UnsupportedOpError,
    UsageError,
)

if TYPE_CHECKING:
    from convertmodel.model import Model, load
    from convertmodel.quant.options import QuantizeOptions

__version__ = "0.1.0"

__all__ = [
    "AccuracyGateError",
    "ConvertModelError",
    "DataError",
    "FormatError",
    "InvalidModelError",
    "Model",
    "ModelIOError",
    "QuantizeOptions",
    "UnsupportedOpError",
    "UsageError",
    "__version__",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in ("Model", "load"):
        from convertmodel import model

        return getattr(model, name)
    if name == "QuantizeOptions":
        from convertmodel.quant import options

        return options.QuantizeOptions
    raise AttributeError(f"module 'convertmodel' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, so ``help(convertmodel)`` lists ``load``, ``Model`` and ``QuantizeOptions``."""
    return sorted(set(globals()) | set(__all__))
