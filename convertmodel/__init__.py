"""convertmodel: convert, quantize to int8, verify and benchmark pretrained CNNs on CPU.

``import convertmodel`` is light: numpy and the IR load only when ``load``/``Model`` are first
used, so ``convertmodel --help`` starts instantly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convertmodel.errors import (
    AccuracyGateError,
    ConvertModelError,
    FormatError,
    InvalidModelError,
    UnsupportedOpError,
)

if TYPE_CHECKING:
    from convertmodel.model import Model, load
    from convertmodel.quant.options import QuantizeOptions

__version__ = "0.1.0"

__all__ = [
    "AccuracyGateError",
    "ConvertModelError",
    "FormatError",
    "InvalidModelError",
    "Model",
    "QuantizeOptions",
    "UnsupportedOpError",
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
