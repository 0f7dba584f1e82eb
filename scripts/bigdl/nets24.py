"""The fixture nets, built with BigDL 2.4's Python API (mirrored for BigDL 0.3.0 in Make.scala).

Each entry: build() -> BigDL model; doc; input ("fmnist": first images of the Fashion-MNIST test set, pixels/255,
(N, 1, 28, 28); "seeded": numpy seeded normal data of `shape`); optional bn_warmup (three training-mode passes
give real running statistics), layout, quantize (False where BigDL's quantize() has nothing to do).
"""

from bigdl.dllib.nn.layer import (
    BatchNormalization,
    CAdd,
    CAddTable,
    CMul,
    CMulTable,
    Concat,
    ConcatTable,
    DetectionOutputSSD,
    Dropout,
    Identity,
    InferReshape,
    Input,
    JoinTable,
    LeakyReLU,
    Linear,
    LogSoftMax,
    Model,
    Normalize,
    NormalizeScale,
    ParallelTable,
    PReLU,
    PriorBox,
    ReLU,
    ReLU6,
    Reshape,
    ResizeBilinear,
    Scale,
    Sequential,
    Sigmoid,
    SoftMax,
    SpatialAveragePooling,
    SpatialBatchNormalization,
    SpatialConvolution,
    SpatialCrossMapLRN,
    SpatialDilatedConvolution,
    SpatialFullConvolution,
    SpatialMaxPooling,
    SpatialShareConvolution,
    SpatialZeroPadding,
    Squeeze,
    Tanh,
    Threshold,
    Transpose,
    Unsqueeze,
    UpSampling2D,
    View,
)


def seq(*layers):
    s = Sequential()
    for layer in layers:
        s.add(layer)
    return s


def conv(i, o, k, s=1, p=0, g=1):
    return SpatialConvolution(i, o, k, k, s, s, p, p, n_group=g)


def lenet():
    # the trained Fashion-MNIST LeNet-5 of fixtures/fmnist (weights from lenet5.onnx), LogSoftMax head
    return seq(
        conv(1, 6, 5, p=2), ReLU(), SpatialMaxPooling(2, 2, 2, 2),
        conv(6, 16, 5), ReLU(), SpatialMaxPooling(2, 2, 2, 2),
        View([400], num_input_dims=3),
        Linear(400, 120), ReLU(), Linear(120, 84), ReLU(), Linear(84, 10), LogSoftMax(),
    )  # fmt: skip


def vgg_bn():
    def block(i, o):
        return [conv(i, o, 3, p=1), SpatialBatchNormalization(o), ReLU()]

    return seq(
        *block(1, 8), *block(8, 8), SpatialMaxPooling(2, 2, 2, 2),
        *block(8, 16), *block(16, 16), SpatialMaxPooling(3, 3, 2, 2, to_ceil=True),
        View([16 * 7 * 7], num_input_dims=3),
        Linear(16 * 7 * 7, 32), BatchNormalization(32), ReLU(), Dropout(0.3), Linear(32, 10), SoftMax(),
    )  # fmt: skip


def inception():
    branches = Concat(2)
    branches.add(seq(conv(8, 4, 1), ReLU()))
    branches.add(seq(conv(8, 4, 1), ReLU(), conv(4, 6, 3, p=1), ReLU()))
    branches.add(seq(conv(8, 2, 1), Threshold(0.05, 0.0), conv(2, 4, 5, p=2), ReLU()))
    branches.add(seq(SpatialMaxPooling(3, 3, 1, 1, 1, 1), conv(8, 4, 1), ReLU()))
    return seq(
        conv(1, 8, 3, s=2, p=1), ReLU(), SpatialCrossMapLRN(5, 1e-4, 0.75, 1.0),
        branches, SpatialMaxPooling(2, 2, 2, 2),
        View([18 * 7 * 7], num_input_dims=3), Dropout(0.5), Linear(18 * 7 * 7, 10), LogSoftMax(),
    )  # fmt: skip


def resnet():
    def unit(c):
        body = seq(conv(c, c, 3, p=1), SpatialBatchNormalization(c), ReLU(),
                   conv(c, c, 3, p=1), SpatialBatchNormalization(c))  # fmt: skip
        return [ConcatTable().add(body).add(Identity()), CAddTable(), ReLU()]

    return seq(
        conv(1, 8, 3, p=1), SpatialBatchNormalization(8), ReLU(),
        *unit(8), SpatialMaxPooling(2, 2, 2, 2), *unit(8),
        SpatialAveragePooling(14, 14, global_pooling=True), View([8], num_input_dims=3), Linear(8, 10), SoftMax(),
    )  # fmt: skip


def grouped_dilated():
    return seq(
        conv(1, 8, 3, p=1), ReLU6(),
        conv(8, 16, 3, p=1, g=4), ReLU(),
        SpatialDilatedConvolution(16, 16, 3, 3, 1, 1, 2, 2, 2, 2), Tanh(),
        SpatialShareConvolution(16, 8, 3, 3, 2, 2, 1, 1, n_group=2), Sigmoid(),
        SpatialAveragePooling(3, 3, 2, 2, 1, 1, ceil_mode=True, count_include_pad=False),
        View([8 * 8 * 8], num_input_dims=3), Linear(8 * 8 * 8, 10), LogSoftMax(),
    )  # fmt: skip


def activations():
    return seq(
        Linear(32, 24), LeakyReLU(0.1), Linear(24, 24), PReLU(24), Threshold(0.2, -0.5),
        Scale([24]), CMul([24]), CAdd([24]), Tanh(), Linear(24, 16), ReLU6(), Normalize(2.0),
        Linear(16, 8), Sigmoid(), Linear(8, 5), SoftMax(),
    )  # fmt: skip


def upsample():
    return seq(
        SpatialZeroPadding(1, 2, 0, 1), conv(3, 8, 3), ReLU(),
        SpatialMaxPooling(3, 3, 2, 2, to_ceil=True), SpatialCrossMapLRN(3, 1e-3, 0.75, 2.0),
        SpatialFullConvolution(8, 6, 4, 4, 2, 2, 1, 1), PReLU(6),
        UpSampling2D([2, 2]), conv(6, 4, 3, s=2, p=1), ResizeBilinear(9, 11),
        ConcatTable().add(conv(4, 4, 1)).add(seq(conv(4, 2, 3, p=1), Sigmoid())), JoinTable(1, 3),
        Transpose([(2, 3)]), Reshape([11, 54], batch_mode=True), Unsqueeze(2), Squeeze(2),
    )  # fmt: skip


def graph():
    x = Input()
    c1 = SpatialConvolution(1, 8, 3, 3, 1, 1, 1, 1)(x)
    b1 = SpatialBatchNormalization(8)(c1)
    r1 = ReLU()(b1)
    a = SpatialConvolution(8, 8, 3, 3, 1, 1, 1, 1)(r1)
    b = SpatialConvolution(8, 8, 1, 1)(r1)
    s = CAddTable()([a, b])
    m = CMulTable()([s, Sigmoid()(b)])
    j = JoinTable(2, 0)([m, r1])
    p = SpatialMaxPooling(2, 2, 2, 2)(ReLU()(j))
    v = View([16 * 14 * 14], num_input_dims=3)(p)
    out = SoftMax()(Linear(16 * 14 * 14, 10)(v))
    return Model([x], [out])


def conv3x3():
    """One 3x3 convolution with padding: int8 input-quantization probe (3 channels: SIMD and scalar codes mix)."""
    return seq(SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1))


def conv1x1():
    """One 1x1 convolution over 16 channels (per-pixel SIMD chunks) with stride 2: int8 probe."""
    return seq(SpatialConvolution(16, 8, 1, 1, 2, 2))


def tables():
    """ConcatTable of two convolutions, ParallelTable of two activations, CMulTable."""
    return seq(
        conv(1, 8, 3, p=1), ReLU(),
        ConcatTable().add(conv(8, 4, 1)).add(conv(8, 4, 3, p=1)),
        ParallelTable().add(ReLU()).add(Tanh()), CMulTable(),
        SpatialMaxPooling(2, 2, 2, 2), View([4 * 14 * 14], num_input_dims=3), Linear(4 * 14 * 14, 10), LogSoftMax(),
    )  # fmt: skip


def ssd():
    """A two-scale SSD head: NormalizeScale, PriorBox per feature map, loc/conf convs flattened NHWC-wise
    (Transpose + InferReshape), JoinTable, DetectionOutputSSD (softmax + decode + NMS)."""
    x = Input()
    c1 = ReLU()(SpatialConvolution(3, 8, 3, 3, 2, 2, 1, 1)(x))  # 16 x 16
    n1 = NormalizeScale(2.0, 1.0, [1, 8, 1, 1])(c1)
    c2 = ReLU()(SpatialConvolution(8, 8, 3, 3, 2, 2, 1, 1)(c1))  # 8 x 8
    locs, confs, priors = [], [], []
    for f, (mn, mx, step) in ((n1, (6.0, 12.0, 2.0)), (c2, (12.0, 24.0, 4.0))):
        # 1 + 1 (max size) + 2 (aspect ratio 2 and its flip) = 4 priors per position
        for conv_out, lst in ((4 * 4, locs), (3 * 4, confs)):
            t = Transpose([(2, 3), (3, 4)])(SpatialConvolution(8, conv_out, 3, 3, 1, 1, 1, 1)(f))
            lst.append(InferReshape([0, -1])(t))
        priors.append(PriorBox([mn], [mx], [2.0], is_flip=True, is_clip=False, variances=[0.1, 0.1, 0.2, 0.2],
                               img_h=32, img_w=32, step_h=step, step_w=step)(f))  # fmt: skip
    loc = JoinTable(2, 2)(locs)
    conf = JoinTable(2, 2)(confs)
    prior = JoinTable(3, 3)(priors)
    det = DetectionOutputSSD(n_classes=3, share_location=True, bg_label=0, nms_thresh=0.45, nms_topk=100,
                             keep_top_k=20, conf_thresh=0.01)([loc, conf, prior])  # fmt: skip
    return Model([x], [det])


def nhwc():
    return seq(
        SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1, data_format="NHWC"), ReLU(),
        SpatialMaxPooling(2, 2, 2, 2, format="NHWC"),
        SpatialConvolution(8, 8, 3, 3, 1, 1, 1, 1, data_format="NHWC"),
        SpatialBatchNormalization(8, data_format="NHWC"), ReLU(),
        SpatialAveragePooling(2, 2, 2, 2, format="NHWC"),
        View([4 * 4 * 8], num_input_dims=3), Linear(4 * 4 * 8, 6), LogSoftMax(),
    )  # fmt: skip


NETS = {
    "lenet": {"build": lenet, "doc": "trained Fashion-MNIST LeNet-5, ReLU, max pooling, LogSoftMax", "input": "fmnist"},
    "vgg_bn": {
        "build": vgg_bn,
        "doc": "VGG-like: 4 conv3x3+SpatialBN+ReLU, ceil max pooling, Linear+BN1d, Dropout, SoftMax",
        "input": "fmnist",
        "bn_warmup": True,
    },
    "inception": {
        "build": inception,
        "doc": "stride-2 conv, LRN, Inception block (Concat of 1x1/3x3/5x5/pool branches), Threshold, Dropout",
        "input": "fmnist",
    },
    "resnet": {
        "build": resnet,
        "doc": "two residual units (ConcatTable + Identity + CAddTable), global avg pool",
        "input": "fmnist",
        "bn_warmup": True,
    },
    "grouped_dilated": {
        "build": grouped_dilated,
        "input": "fmnist",
        "doc": "grouped conv, dilated conv, SpatialShareConvolution, ReLU6/Tanh/Sigmoid, "
        "ceil avg pool without pad counting",
    },
    "activations": {
        "build": activations,
        "input": "seeded",
        "shape": [4, 32],
        "doc": "MLP: LeakyReLU, PReLU, Threshold, Scale, CMul, CAdd, Tanh, ReLU6, Normalize, Sigmoid",
    },
    "upsample": {
        "build": upsample,
        "input": "seeded",
        "shape": [2, 3, 11, 13],
        "doc": "zero padding, ceil max pool, LRN, SpatialFullConvolution, PReLU, UpSampling2D, "
        "ResizeBilinear, JoinTable, Transpose, Reshape, Unsqueeze/Squeeze",
    },
    "graph": {
        "build": graph,
        "input": "fmnist",
        "bn_warmup": True,
        "doc": "functional Graph model: BN, two branches, CAddTable, CMulTable, JoinTable, SoftMax",
    },
    "conv3x3": {"build": conv3x3, "input": "seeded", "shape": [2, 3, 7, 6], "doc": "one 3x3 conv, pad 1 (int8 probe)"},
    "conv1x1": {
        "build": conv1x1,
        "input": "seeded",
        "shape": [2, 16, 5, 5],
        "doc": "one 1x1 conv, stride 2 (int8 probe)",
    },
    "tables": {"build": tables, "input": "fmnist", "doc": "ConcatTable, ParallelTable, CMulTable"},
    "ssd": {
        "build": ssd,
        "input": "seeded",
        "shape": [2, 3, 32, 32],
        "quantize": False,
        "doc": "SSD head: NormalizeScale, PriorBox, Transpose + InferReshape, JoinTable, DetectionOutputSSD",
    },
    "nhwc": {
        "build": nhwc,
        "input": "seeded",
        "shape": [2, 16, 16, 3],
        "layout": "NHWC",
        "bn_warmup": True,
        "doc": "NHWC SpatialConvolution, max/avg pooling and SpatialBatchNormalization",
    },
}
