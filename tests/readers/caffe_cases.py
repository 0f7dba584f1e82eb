"""Hand-written Caffe layer cases shared by the reader and writer tests: (id, input shape, layers text,
blobs, output blob), each run against OpenCV's dnn Caffe importer."""

from __future__ import annotations

import numpy as np

R = np.random.default_rng(7)


def rand_w(*shape: int, scale: float = 0.3) -> np.ndarray:
    return (R.standard_normal(shape) * scale).astype(np.float32)


def layer_text(name: str, type_: str, bottoms: list[str], params: str = "", tops: list[str] | None = None) -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in (tops or [name]))
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} {params} }}\n'


# (id, input shape, layers text, blobs, output blob)
CASES = [
    (
        "conv_group_dilation",
        (1, 4, 9, 8),
        layer_text(
            "c",
            "Convolution",
            ["data"],
            "convolution_param { num_output: 6 group: 2 kernel_size: 3 dilation: 2 "
            "pad_h: 2 pad_w: 1 stride_h: 1 stride_w: 2 }",
        ),
        {"c": [rand_w(6, 2, 3, 3), rand_w(6)]},
        "c",
    ),
    (
        "conv_hw_kernel_nobias",
        (1, 3, 8, 8),
        layer_text(
            "c",
            "Convolution",
            ["data"],
            "convolution_param { num_output: 4 kernel_h: 3 kernel_w: 1 pad: 1 stride: 2 bias_term: false }",
        ),
        {"c": [rand_w(4, 3, 3, 1)]},
        "c",
    ),
    (
        "deconv",
        (1, 4, 5, 5),
        layer_text(
            "d",
            "Deconvolution",
            ["data"],
            "convolution_param { num_output: 6 group: 2 kernel_size: 4 stride: 2 pad: 1 }",
        ),
        {"d": [rand_w(4, 3, 4, 4), rand_w(6)]},
        "d",
    ),
    (
        "maxpool_ceil",
        (1, 3, 8, 8),
        layer_text("p", "Pooling", ["data"], "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
        {},
        "p",
    ),
    (
        "avepool_pad_clip",
        (1, 3, 6, 7),
        layer_text("p", "Pooling", ["data"], "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }"),
        {},
        "p",
    ),
    (
        "maxpool_hw",
        (1, 2, 7, 9),
        layer_text(
            "p",
            "Pooling",
            ["data"],
            "pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 }",
        ),
        {},
        "p",
    ),
    (
        "maxpool_floor",
        (1, 2, 7, 7),
        layer_text("p", "Pooling", ["data"], "pooling_param { pool: MAX kernel_size: 2 stride: 2 ceil_mode: false }"),
        {},
        "p",
    ),
    (
        "global_ave",
        (1, 3, 5, 4),
        layer_text("p", "Pooling", ["data"], "pooling_param { pool: AVE global_pooling: true }"),
        {},
        "p",
    ),
    (
        "global_max",
        (1, 3, 5, 4),
        layer_text("p", "Pooling", ["data"], "pooling_param { pool: MAX global_pooling: true }"),
        {},
        "p",
    ),
    (
        "inner_product_4d",
        (2, 3, 2, 2),
        layer_text("fc", "InnerProduct", ["data"], "inner_product_param { num_output: 5 }"),
        {"fc": [rand_w(5, 12), rand_w(5)]},
        "fc",
    ),
    ("leaky_relu", (1, 3, 4, 4), layer_text("r", "ReLU", ["data"], "relu_param { negative_slope: 0.1 }"), {}, "r"),
    ("prelu", (1, 3, 4, 4), layer_text("r", "PReLU", ["data"]), {"r": [rand_w(3)]}, "r"),
    (
        "prelu_shared",
        (1, 3, 4, 4),
        layer_text("r", "PReLU", ["data"], "prelu_param { channel_shared: true }"),
        {"r": [rand_w(1)]},
        "r",
    ),
    ("elu", (1, 3, 4, 4), layer_text("e", "ELU", ["data"], "elu_param { alpha: 0.7 }"), {}, "e"),
    ("sigmoid", (1, 3, 4, 4), layer_text("s", "Sigmoid", ["data"]), {}, "s"),
    ("tanh", (1, 3, 4, 4), layer_text("s", "TanH", ["data"]), {}, "s"),
    ("absval", (1, 3, 4, 4), layer_text("s", "AbsVal", ["data"]), {}, "s"),
    ("bnll", (1, 3, 4, 4), layer_text("s", "BNLL", ["data"]), {}, "s"),
    (
        "power",
        (1, 3, 4, 4),
        layer_text("s", "Power", ["data"], "power_param { power: 2 scale: 0.5 shift: 1.5 }"),
        {},
        "s",
    ),
    (
        "batchnorm_scale",
        (1, 3, 4, 4),
        layer_text("bn", "BatchNorm", ["data"], "batch_norm_param { use_global_stats: true eps: 0.001 }")
        + layer_text("sc", "Scale", ["bn"], "scale_param { bias_term: true }"),
        {"bn": [rand_w(3), np.abs(rand_w(3)) + 0.5, np.array([2.0], np.float32)], "sc": [rand_w(3), rand_w(3)]},
        "sc",
    ),
    (
        "scale_axis2",
        (1, 3, 4, 5),
        layer_text("s", "Scale", ["data"], "scale_param { axis: 2 num_axes: 2 }"),
        {"s": [rand_w(4, 5)]},
        "s",
    ),
    (
        "scale_second_bottom",
        (2, 3, 4, 4),
        layer_text("gp", "Pooling", ["data"], "pooling_param { pool: AVE global_pooling: true }")
        + layer_text("fl", "Flatten", ["gp"])
        + layer_text("sg", "Sigmoid", ["fl"])
        + layer_text("s", "Scale", ["data", "sg"], "scale_param { axis: 0 }"),
        {},
        "s",
    ),
    (
        "eltwise_sum_coeff",
        (1, 3, 4, 4),
        layer_text("a", "ReLU", ["data"])
        + layer_text("e", "Eltwise", ["data", "a"], "eltwise_param { coeff: 0.5 coeff: -2 }"),
        {},
        "e",
    ),
    (
        "eltwise_prod",
        (1, 3, 4, 4),
        layer_text("a", "TanH", ["data"])
        + layer_text("e", "Eltwise", ["data", "a"], "eltwise_param { operation: PROD }"),
        {},
        "e",
    ),
    (
        "eltwise_max3",
        (1, 3, 4, 4),
        layer_text("a", "TanH", ["data"])
        + layer_text("b", "Sigmoid", ["data"])
        + layer_text("e", "Eltwise", ["data", "a", "b"], "eltwise_param { operation: MAX }"),
        {},
        "e",
    ),
    (
        "concat_slice",
        (1, 6, 4, 4),
        layer_text("sl", "Slice", ["data"], "slice_param { axis: 1 slice_point: 1 slice_point: 4 }", ["s0", "s1", "s2"])
        + layer_text("cc", "Concat", ["s2", "s0"], "concat_param { axis: 1 }"),
        {},
        "cc",
    ),
    (
        "split_flatten",
        (2, 3, 4, 4),
        layer_text("sp", "Split", ["data"], "", ["a", "b"])
        + layer_text("e", "Eltwise", ["a", "b"])
        + layer_text("f", "Flatten", ["e"]),
        {},
        "f",
    ),
    (
        "reshape_permute",
        (1, 6, 4, 2),
        layer_text("p", "Permute", ["data"], "permute_param { order: 0 order: 2 order: 3 order: 1 }")
        + layer_text("r", "Reshape", ["p"], "reshape_param { shape { dim: 0 dim: -1 dim: 3 } }"),
        {},
        "r",
    ),
    ("softmax_axis2", (1, 3, 5, 2), layer_text("s", "Softmax", ["data"], "softmax_param { axis: 2 }"), {}, "s"),
    (
        "lrn_across",
        (1, 7, 4, 4),
        layer_text("n", "LRN", ["data"], "lrn_param { local_size: 5 alpha: 0.01 beta: 0.75 }"),
        {},
        "n",
    ),
    (
        "lrn_within",
        (1, 3, 6, 6),
        layer_text(
            "n", "LRN", ["data"], "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }"
        ),
        {},
        "n",
    ),
    ("dropout", (1, 3, 4, 4), layer_text("d", "Dropout", ["data"], "dropout_param { dropout_ratio: 0.3 }"), {}, "d"),
]
