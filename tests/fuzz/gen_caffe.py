"""Structure-aware Caffe cases: random nets written as prototxt text (every supported layer type, edge-case
parameters, missing/extra bottoms and tops, in-place layers) with a caffemodel whose blobs mostly fit, edits
of the LeNet-5 prototxt text, and raw caffemodel bytes."""

from __future__ import annotations

import os
import random
import re
from typing import Any

import numpy as np

from tests.fuzz.common import FIXTURES, Case, mutate_bytes, pick_float, pick_int, write

_BASES: dict[str, Any] = {}


def warm_up(work: str) -> None:
    from convertmodel.readers.caffe.proto import pb  # noqa: F401  (protobuf schema loaded once per worker)

    for name in ("lenet5.prototxt", "lenet5.caffemodel"):
        with open(os.path.join(FIXTURES, "fmnist", name), "rb") as f:
            _BASES[name] = f.read()


def _v(rng: random.Random, usual: int) -> int:
    return usual if rng.random() < 0.7 else pick_int(rng, rng.random() < 0.7)


def _params(rng: random.Random, t: str, c: int) -> tuple[str, list[list[int]]]:
    """(the layer's parameter text, shapes of the blobs it needs) for input channels ``c``."""
    if t in ("Convolution", "Deconvolution"):
        n, k = _v(rng, rng.choice((2, 4))), _v(rng, rng.choice((1, 3)))
        g = _v(rng, 1)
        txt = f"convolution_param {{ num_output: {n} kernel_size: {k} stride: {_v(rng, 1)} pad: {_v(rng, 0)} group: {g}"
        if rng.random() < 0.2:
            txt += f" dilation: {_v(rng, 1)}"
        gg = max(g, 1)
        w = [n, max(c // gg, 0), k, k] if t == "Convolution" else [c, max(n // gg, 0), k, k]
        return txt + " }", [w, [n]]
    if t == "Pooling":
        pool = rng.choice(("MAX", "AVE"))
        glob = " global_pooling: true" if rng.random() < 0.15 else ""
        return (
            f"pooling_param {{ pool: {pool} kernel_size: {_v(rng, 2)} stride: {_v(rng, 2)} pad: {_v(rng, 0)}{glob} }}",
            [],
        )
    if t == "InnerProduct":
        n = _v(rng, 3)
        return f"inner_product_param {{ num_output: {n} }}", [[n, -1], [n]]
    if t == "PReLU":
        return "", [[c]]
    if t == "BatchNorm":
        return f"batch_norm_param {{ eps: {abs(pick_float(rng))} }}", [[c], [c], [1]]
    if t == "Scale":
        return "scale_param { bias_term: true }", [[c], [c]]
    if t == "LRN":
        return f"lrn_param {{ local_size: {_v(rng, 5)} alpha: {pick_float(rng)} beta: {pick_float(rng)} }}", []
    if t == "Power":
        return f"power_param {{ power: {pick_float(rng)} scale: {pick_float(rng)} shift: {pick_float(rng)} }}", []
    if t == "Softmax":
        return f"softmax_param {{ axis: {_v(rng, 1)} }}", []
    if t == "Flatten":
        return f"flatten_param {{ axis: {_v(rng, 1)} }}", []
    if t == "Reshape":
        dims = " ".join(f"dim: {rng.choice((0, -1, 1, 2, 3, -2))}" for _ in range(rng.randint(0, 4)))
        return f"reshape_param {{ shape {{ {dims} }} }}", []
    if t == "Permute":
        order = list(range(4))
        rng.shuffle(order)
        if rng.random() < 0.3:
            order[rng.randrange(4)] = rng.choice((0, 4, -1))
        return "permute_param { " + " ".join(f"order: {o}" for o in order) + " }", []
    if t in ("Concat", "Slice"):
        key = "concat_param" if t == "Concat" else "slice_param"
        extra = f" slice_point: {_v(rng, 1)}" if t == "Slice" and rng.random() < 0.6 else ""
        return f"{key} {{ axis: {_v(rng, 1)}{extra} }}", []
    if t == "Eltwise":
        return f"eltwise_param {{ operation: {rng.choice(('SUM', 'PROD', 'MAX'))} }}", []
    if t == "Crop":
        return f"crop_param {{ axis: {_v(rng, 2)} offset: {_v(rng, 0)} }}", []
    if t == "Normalize":
        return f"norm_param {{ across_spatial: {rng.choice(('true', 'false'))} }}", [[c]]
    if t == "PriorBox":
        ar = rng.choice((2.0, 3.0, 0.0, -1.0, 1e-30, float("inf")))
        return (
            f"prior_box_param {{ min_size: {_v(rng, 30)} max_size: {_v(rng, 60)} aspect_ratio: {ar} "
            f"flip: true clip: false variance: 0.1 step: {_v(rng, 8)} }}",
            [],
        )
    if t == "DetectionOutput":
        return (
            f"detection_output_param {{ num_classes: {_v(rng, 2)} share_location: true background_label_id: 0 "
            f"nms_param {{ nms_threshold: 0.45 top_k: {_v(rng, 10)} }} keep_top_k: {_v(rng, 5)} "
            f"confidence_threshold: 0.01 code_type: CENTER_SIZE }}",
            [],
        )
    if t == "ArgMax":
        return f"argmax_param {{ top_k: {_v(rng, 1)} axis: {_v(rng, 1)} }}", []
    if t == "ELU":
        return f"elu_param {{ alpha: {pick_float(rng)} }}", []
    return "", []


TYPES = (
    "Convolution Deconvolution Pooling InnerProduct ReLU PReLU Sigmoid TanH AbsVal BNLL ELU Power BatchNorm Scale "
    "Bias LRN Softmax Dropout Eltwise Concat Slice Split Flatten Reshape Permute Crop Normalize PriorBox "
    "DetectionOutput ArgMax Silence"
).split()

_MULTI_IN = {"Eltwise": 2, "Concat": 2, "Crop": 2, "PriorBox": 2, "DetectionOutput": 3}


def _random_net(rng: random.Random) -> tuple[str, list[tuple[str, list[list[int]]]]]:
    c = rng.choice((1, 3, 2, 0))
    dims = [rng.choice((1, 1, 2, 0)), c, _v(rng, rng.choice((5, 8, 28))), _v(rng, rng.choice((5, 8)))]
    lines = [
        'name: "fuzz"',
        'layer { name: "data" type: "Input" top: "data" input_param { shape { '
        + " ".join(f"dim: {d}" for d in dims)
        + " } } }",
    ]
    blobs: list[tuple[str, list[list[int]]]] = []
    tops = ["data"]
    for k in range(rng.randint(1, 5)):
        t = rng.choice(TYPES)
        name = f"l{k}"
        text, shapes = _params(rng, t, c)
        nb = _MULTI_IN.get(t, 1)
        bottoms = [tops[-1]] + [rng.choice(tops) for _ in range(nb - 1)]
        r = rng.random()
        if r < 0.06:
            bottoms = []
        elif r < 0.1:
            bottoms.append(rng.choice((*tops, "ghost")))
        ntop = 2 if t in ("Slice", "Split") else 1
        if rng.random() < 0.06:
            ntop = rng.choice((0, ntop + 1))
        my_tops = (
            [bottoms[0]] if (t in ("ReLU", "Sigmoid", "Dropout", "Scale") and bottoms and rng.random() < 0.4) else []
        )
        my_tops = my_tops or [f"{name}_t{j}" for j in range(ntop)]
        lines.append(
            f'layer {{ name: "{name}" type: "{t}" '
            + " ".join(f'bottom: "{b}"' for b in bottoms)
            + " "
            + " ".join(f'top: "{x}"' for x in my_tops)
            + f" {text} }}"
        )
        blobs.append((name, shapes))
        tops += my_tops
        if t in ("Convolution", "Deconvolution", "InnerProduct") and shapes:
            c = max(shapes[-1][0], 0)
    return "\n".join(lines) + "\n", blobs


def _caffemodel(rng: random.Random, blobs: list[tuple[str, list[list[int]]]]) -> bytes:
    from convertmodel.readers.caffe.proto import pb

    net = pb.NetParameter()
    for name, shapes in blobs:
        if rng.random() < 0.1:
            continue  # weights missing
        layer = net.layer.add()
        layer.name = name
        for s in shapes:
            s = [max(0, d) if d >= 0 else rng.choice((1, 2, 4, 8, 16, 25)) for d in s]
            if rng.random() < 0.1:
                s = [pick_int(rng, True) for _ in s]
            s = [min(max(d, 0), 64) for d in s]
            blob = layer.blobs.add()
            blob.shape.dim.extend(s)
            n = int(np.prod(s)) if s else 1
            if rng.random() < 0.05:
                n += rng.choice((-1, 1))
            blob.data.extend(np.random.default_rng(rng.randrange(2**32)).standard_normal(max(n, 0)).astype(np.float32))
    return bytes(net.SerializeToString())


_NUM = re.compile(rb"(?<=: )-?\d+(\.\d+)?")


def _edit_text(rng: random.Random, text: bytes) -> bytes:
    lines = text.split(b"\n")
    for _ in range(rng.choice((1, 1, 2, 3))):
        i = rng.randrange(len(lines))
        r = rng.random()
        if r < 0.5 and _NUM.search(lines[i]):
            lines[i] = _NUM.sub(str(pick_int(rng)).encode(), lines[i], count=1)
        elif r < 0.7:
            del lines[i]
        elif r < 0.85:
            lines.insert(i, lines[rng.randrange(len(lines))])
        else:
            lines[i] = mutate_bytes(rng, lines[i])
    return b"\n".join(lines)


def generate(rng: random.Random, d: str) -> Case:
    proto = os.path.join(d, "m.prototxt")
    model = os.path.join(d, "m.caffemodel")
    r = rng.random()
    if r < 0.55:
        text, blobs = _random_net(rng)
        write(proto, text)
        write(model, _caffemodel(rng, blobs))
    elif r < 0.85:
        write(proto, _edit_text(rng, _BASES["lenet5.prototxt"]))
        write(model, _BASES["lenet5.caffemodel"])
    else:
        write(proto, _BASES["lenet5.prototxt"])
        write(model, mutate_bytes(rng, _BASES["lenet5.caffemodel"]))
    return Case("model", model, d, options={"prototxt": proto})
