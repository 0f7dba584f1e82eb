"""Quantization below the graph passes: BigDL 0.3's local-window int8 arithmetic (scheme.py), the typed
options and recorded decisions (options.py), which ops are int8 (ops.py), error measures (error.py).

The graph pass that applies it is :func:`convertmodel.passes.quantize.quantize_graph` (rules registered
with ``@quant_rule``); the normative op contract is in docs/quantization.md.
"""

from convertmodel.quant.scheme import (
    BIGDL_INPUT_LEVELS,
    BIGDL_WEIGHT_LEVELS,
    DEFAULT_INPUT_LEVELS,
    WEIGHT_LEVELS,
    QuantizedWeight,
    Windows,
    bigdl_compat_requantize,
    quantize_weight_rows,
    quantize_windows,
)

__all__ = [
    "BIGDL_INPUT_LEVELS",
    "BIGDL_WEIGHT_LEVELS",
    "DEFAULT_INPUT_LEVELS",
    "WEIGHT_LEVELS",
    "QuantizedWeight",
    "Windows",
    "bigdl_compat_requantize",
    "quantize_weight_rows",
    "quantize_windows",
]
