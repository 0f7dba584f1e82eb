#!/usr/bin/env python3
"""Export the trained Fashion-MNIST nets (fixtures/fmnist/*.onnx) to Caffe with the project's writer.

The ONNX graphs from tf2onnx need two pure rewrites before Caffe can express them:

* the batch dimension is fixed to 1 (Caffe deploy nets have a static input shape, and the writer
  needs static shapes to emit Flatten/Reshape and pooling);
* ``MatMul(x, W) + Add(b)`` with constant W and b becomes ``Gemm(x, W^T, b, transB=1)`` (Caffe's InnerProduct
  in its canonical (M, K) weight layout).

Each .caffemodel + .prototxt is checked twice on the first 1,000 test images: read back by
convertmodel, and run by OpenCV's dnn module (an independent Caffe implementation), both against the
ONNX model in onnxruntime.

    python scripts/export_fmnist_caffe.py            # every net in fixtures/fmnist/models.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import convertmodel  # noqa: E402
from convertmodel.data.datasets import read_idx  # noqa: E402
from convertmodel.errors import UnsupportedOpError  # noqa: E402
from convertmodel.ir.graph import Graph, Node, TensorType, ValueInfo  # noqa: E402

FIX = os.path.join(REPO, "fixtures", "fmnist")


def fix_batch(g: Graph, batch: int = 1) -> Graph:
    """The same graph with a static batch dimension (re-inferring every shape)."""
    ins = tuple(
        ValueInfo(vi.name, TensorType(vi.type.dtype, (batch, *vi.type.shape[1:]) if vi.type.shape else None))
        for vi in g.inputs
    )
    return g.replace(inputs=ins, value_types={})


def matmul_add_to_gemm(g: Graph) -> Graph:
    """Fuse MatMul(x, const W (K, M)) followed only by Add(const b (M,)) into Gemm(x, W^T, b, transB=1)."""
    consumers = g.consumers()
    outputs = {o.name for o in g.outputs}
    drop: set[str] = set()
    new: dict[str, Node] = {}
    consts = dict(g.constants)
    for n in g.nodes:
        if n.op_type != "MatMul" or n.domain or n.inputs[1] not in g.constants:
            continue
        w = g.constants[n.inputs[1]]
        cons = consumers.get(n.outputs[0], [])
        if w.ndim != 2 or n.outputs[0] in outputs or len(cons) != 1 or cons[0].op_type != "Add":
            continue
        add = cons[0]
        other = add.inputs[1] if add.inputs[0] == n.outputs[0] else add.inputs[0]
        b = g.constants.get(other)
        if b is None or b.size != w.shape[1]:
            continue
        # Caffe's canonical InnerProduct weight is (M, K) (transpose: false); OpenCV 4.x dnn ignores
        # inner_product_param.transpose, so store W^T and use transB=1 to get the canonical layout.
        wt = f"{n.inputs[1]}_t"
        consts[wt] = np.ascontiguousarray(w.T)
        new[n.name] = Node("Gemm", n.name, (n.inputs[0], wt, other), add.outputs, {"transB": 1})
        drop.add(add.name)
    nodes = tuple(new.get(n.name, n) for n in g.nodes if n.name not in drop)
    return g.replace(nodes=nodes, constants=consts)


def prepare(path: str) -> Graph:
    from convertmodel.passes.fold_constants import fold_constants
    from convertmodel.passes.simplify import simplify

    g = fix_batch(convertmodel.load(path).graph)
    g = fold_constants(g)
    g = simplify(g)
    return matmul_add_to_gemm(g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default=None)
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    import cv2
    import onnxruntime as ort

    from convertmodel.writers.caffe import write_caffe

    meta_path = os.path.join(FIX, "models.json")
    with open(meta_path) as f:
        meta = json.load(f)
    nets = args.nets.split(",") if args.nets else sorted(meta)
    x = (
        read_idx(os.path.join(FIX, "data", "t10k-1000-images-idx3-ubyte.gz"), args.samples).astype(np.float32)
        / np.float32(255)
    )[:, None]
    y = read_idx(os.path.join(FIX, "data", "t10k-1000-labels-idx1-ubyte.gz"), args.samples).astype(np.int64)
    for name in nets:
        onnx_path = os.path.join(FIX, f"{name}.onnx")
        g = prepare(onnx_path)
        model_path = os.path.join(FIX, f"{name}.caffemodel")
        try:
            proto = write_caffe(g, model_path, os.path.join(FIX, f"{name}.prototxt"))
        except UnsupportedOpError as e:
            # e.g. TF "same" padding of a stride-2 conv is asymmetric; BVLC Caffe pads symmetrically only.
            print(f"{name}: not exportable to Caffe: {e}", flush=True)
            _record(meta_path, name, {"error": str(e)})
            continue
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        back = convertmodel.load(model_path)
        ours = np.concatenate([np.asarray(back.predict(x[i : i + 1])).reshape(1, -1) for i in range(len(x))])
        net = cv2.dnn.readNetFromCaffe(proto, model_path)
        cv = []
        for i in range(len(x)):
            net.setInput(x[i : i + 1])
            cv.append(net.forward().reshape(1, -1))
        cvo = np.concatenate(cv)
        rec = {
            "caffemodel": os.path.basename(model_path),
            "prototxt": os.path.basename(proto),
            "caffe_vs_onnx_max_abs_diff": float(np.abs(ours - ref).max()),
            "opencv_vs_onnx_max_abs_diff": float(np.abs(cvo - ref).max()),
            "opencv_top1_first_n": float(100.0 * (cvo.argmax(1) == y).mean()),
            "checked_samples": len(x),
        }
        print(name, rec, flush=True)
        _record(meta_path, name, rec)


def _record(meta_path: str, name: str, rec: dict[str, object]) -> None:
    with open(meta_path) as f:
        meta = json.load(f)
    meta[name]["caffe"] = rec
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
