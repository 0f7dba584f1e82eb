"""convertmodel: convert, quantize to int8, verify and benchmark pretrained CNNs on CPU.

Only light modules are imported here so ``convertmodel --help`` starts instantly.
"""

from convertmodel.errors import (
    AccuracyGateError,
    ConvertModelError,
    FormatError,
    InvalidModelError,
    UnsupportedOpError,
)
from convertmodel.model import Model, load

__version__ = "0.1.0"

__all__ = [
    "AccuracyGateError",
    "ConvertModelError",
    "FormatError",
    "InvalidModelError",
    "Model",
    "UnsupportedOpError",
    "__version__",
    "load",
]
