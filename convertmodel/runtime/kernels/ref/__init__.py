"""numpy reference kernels, one module per op family. Importing registers them."""

from convertmodel.runtime.kernels.ref import (  # noqa: F401
    activation,
    conv,
    detection,
    elementwise,
    linalg,
    norm,
    pool,
    quantized,
    resize,
    shape,
)
