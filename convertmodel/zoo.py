"""Known topologies built directly in the IR, for benchmarks and size work without weight files.

``vgg(16)`` and ``vgg(19)`` are the exact ImageNet VGG topologies (Simonyan & Zisserman,
configurations D and E: 3x3 convs with pad 1, 2x2/2 max pools, fc 4096-4096-1000, softmax).
Weights are random (He-scaled normal, seeded); the speed and size of int8 vs fp32 do not
depend on their values. Real trained weights come from real model files instead.
"""

from __future__ import annotations

import numpy as np

from convertmodel.ir.graph import Dim, Graph, GraphBuilder

VGG_CONFIGS = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def vgg(
    depth: int = 16,
    *,
    image_size: int = 224,
    num_classes: int = 1000,
    batch: Dim = "N",
    seed: int = 0,
    softmax: bool = True,
) -> Graph:
    """VGG16 or VGG19 (layer names as in the Caffe model zoo deploy prototxt: conv1_1 ... fc8)."""
    if depth not in VGG_CONFIGS:
        raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, got {depth}")
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"vgg{depth}", {"producer": "convertmodel.zoo", "weights": f"random(seed={seed})"})
    x = b.add_input("data", "float32", (batch, 3, image_size, image_size))
    c_in, block, idx, size = 3, 1, 1, image_size
    for item in VGG_CONFIGS[depth]:
        if item == "M":
            (x,) = b.add_node("MaxPool", [x], name=f"pool{block}", kernel_shape=[2, 2], strides=[2, 2])
            block, idx, size = block + 1, 1, size // 2
            continue
        c_out = int(item)
        name = f"conv{block}_{idx}"
        w = (rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32) * np.sqrt(2.0 / (c_in * 9))).astype(np.float32)
        bias = (rng.standard_normal(c_out, dtype=np.float32) * 0.01).astype(np.float32)
        wn, bn = b.add_const(f"{name}_w", w), b.add_const(f"{name}_b", bias)
        (x,) = b.add_node("Conv", [x, wn, bn], name=name, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        (x,) = b.add_node("Relu", [x], name=f"relu{block}_{idx}")
        c_in, idx = c_out, idx + 1
    (x,) = b.add_node("Flatten", [x], name="flatten", axis=1)
    dims = [c_in * size * size, 4096, 4096, num_classes]
    for k in range(3):
        name = f"fc{6 + k}"
        w = (rng.standard_normal((dims[k + 1], dims[k]), dtype=np.float32) * np.sqrt(2.0 / dims[k])).astype(np.float32)
        bias = np.zeros(dims[k + 1], np.float32)
        wn, bn = b.add_const(f"{name}_w", w), b.add_const(f"{name}_b", bias)
        (x,) = b.add_node("Gemm", [x, wn, bn], name=name, transB=1)
        if k < 2:
            (x,) = b.add_node("Relu", [x], name=f"relu{6 + k}")
    if softmax:
        (x,) = b.add_node("Softmax", [x], name="prob", axis=1)
    b.mark_output(x)
    return b.build()
