#!/usr/bin/env python3
"""Write VGG16 and VGG19 deploy .prototxt + .caffemodel files (exact topologies, random weights).

No VGG caffemodel ships in any PyPI package, so the size and speed work builds them from the
IR topologies in :mod:`convertmodel.zoo` through the Caffe writer:

    python scripts/make_vgg_caffe.py OUT_DIR            # vgg16 and vgg19
    python scripts/make_vgg_caffe.py OUT_DIR --depth 16

Each model lands as ``OUT_DIR/vgg<depth>.caffemodel`` with ``OUT_DIR/vgg<depth>.prototxt`` beside it
(the name the Caffe reader finds on its own). Layer names follow the Caffe model zoo deploy files
(conv1_1 ... fc8, prob) and so does the layer sequence: ReLUs in place, drop6/drop7 Dropout layers
after relu6/relu7, InnerProduct reading pool5 directly; the input is ``data`` (1, 3, 224, 224).
Weights are He-scaled normal with a fixed seed, so the files are reproducible byte for byte.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def with_dropout(graph: Any) -> Any:
    """The zoo graph plus the deploy net's drop6/drop7 (identity at inference) after relu6/relu7."""
    from convertmodel.ir.graph import Node

    nodes: list[Node] = []
    rename: dict[str, str] = {}
    for n in graph.nodes:
        n = n.with_(inputs=tuple(rename.get(i, i) for i in n.inputs))
        nodes.append(n)
        if n.name in ("relu6", "relu7"):
            drop = "drop" + n.name[-1]
            nodes.append(Node("Identity", drop, (n.outputs[0],), (drop,)))
            rename[n.outputs[0]] = drop
    return graph.replace(nodes=tuple(nodes))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="directory to write vgg16/vgg19 .caffemodel + .prototxt into")
    ap.add_argument("--depth", type=int, choices=(16, 19), action="append", help="default: both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=224, help="input side (224 = the real models; smaller for tests)")
    ap.add_argument("--num-classes", type=int, default=1000)
    args = ap.parse_args(argv)

    from convertmodel.writers.caffe import write_caffe
    from convertmodel.zoo import vgg

    os.makedirs(args.out_dir, exist_ok=True)
    for depth in args.depth or (16, 19):
        graph = with_dropout(
            vgg(depth, batch=1, seed=args.seed, image_size=args.image_size, num_classes=args.num_classes)
        )
        path = os.path.join(args.out_dir, f"vgg{depth}.caffemodel")
        proto = write_caffe(graph, path)
        print(f"{path} ({os.path.getsize(path) / 2**20:.1f} MiB), {proto}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
