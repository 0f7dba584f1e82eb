"""Op schemas, one module per op family. Importing this package registers them all."""

from convertmodel.ir.ops import (  # noqa: F401
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
    shape_data,
)
