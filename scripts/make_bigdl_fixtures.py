"""Regenerate fixtures/bigdl/ with real BigDL 2.4 and BigDL 0.3.0 (see ../shared/bigdl-notes.md for the facts).

    python scripts/make_bigdl_fixtures.py [--gen 2.4,0.3] [--nets lenet,vgg_bn,...]

Needs Java (openjdk-17-jre-headless) and, for 0.3.0, Debian's `scala` (2.11).  The BigDL environments are created
outside the repository by scripts/bigdl/bigdl_env.py (cache ~/.cache/convertmodel/bigdl).

Inputs (fixtures/bigdl/inputs/NAME.npy): the first 4 Fashion-MNIST test images of fixtures/fmnist/data (pixels/255,
(4, 1, 28, 28)) or seeded normal data.  The LeNet carries the trained weights of fixtures/fmnist/lenet5.onnx; the
other nets BigDL's own seeded initialisation.  BigDL 2.4 runs first (scripts/bigdl/make24.py, nets in nets24.py)
and dumps its flat parameters, which the 0.3.0 program (scripts/bigdl/Make.scala) loads, so both generations hold
the same numbers.  Every saved file is reloaded by BigDL and its output on the input recorded next to it
(FILE.out.npy); fixtures/bigdl/manifest.json lists the files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "bigdl"))
import bigdl_env  # noqa: E402

ROOT = os.path.join(REPO, "fixtures", "bigdl")
WORK = os.path.join(bigdl_env.CACHE, "work")
FMNIST = os.path.join(REPO, "fixtures", "fmnist", "data", "t10k-1000-images-idx3-ubyte.gz")
ALL_NETS = ["lenet", "vgg_bn", "inception", "resnet", "grouped_dilated", "activations", "upsample", "graph", "nhwc",
            "tables", "ssd", "conv3x3", "conv1x1"]  # fmt: skip
ONLY_24 = {"ssd"}  # BigDL 0.3.0 has no PriorBox, NormalizeScale or DetectionOutputSSD
SEEDED_NETS = ("activations", "upsample", "nhwc", "ssd", "conv3x3", "conv1x1")
SOURCE = {n: "seeded" if n in SEEDED_NETS else "fmnist" for n in ALL_NETS}
DOCS: dict[str, str] = {}  # filled from the 2.4 manifest (same nets)
SEEDED = {"activations": [4, 32], "upsample": [2, 3, 11, 13], "nhwc": [2, 16, 16, 3], "ssd": [2, 3, 32, 32],
          "conv3x3": [2, 3, 7, 6], "conv1x1": [2, 16, 5, 5]}  # fmt: skip


def fmnist_images(n: int) -> np.ndarray:
    with gzip.open(FMNIST, "rb") as f:
        raw = f.read()
    pix = np.frombuffer(raw, np.uint8, offset=16)[: n * 784]
    return (pix.astype(np.float32) / 255.0).reshape(n, 1, 28, 28)


def write_inputs(nets: list[str]) -> None:
    os.makedirs(os.path.join(ROOT, "inputs"), exist_ok=True)
    for i, name in enumerate(ALL_NETS):
        if name not in nets:
            continue
        if name in SEEDED:
            x = np.random.default_rng(20261201 + i).standard_normal(SEEDED[name]).astype(np.float32)
        else:
            x = fmnist_images(4)
        np.save(os.path.join(ROOT, "inputs", name + ".npy"), x)
        # the same tensor for the Scala program: int32 LE ndim, dims, float32 LE data
        with open(os.path.join(WORK, "inputs", name + ".t"), "wb") as f:
            f.write(np.array([x.ndim, *x.shape], "<i4").tobytes() + x.astype("<f4").tobytes())


def lenet_weights() -> None:
    """The trained Keras LeNet-5 (fixtures/fmnist/lenet5.onnx) in BigDL's parameters() order and layout."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(os.path.join(REPO, "fixtures", "fmnist", "lenet5.onnx"))
    t = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    fc1 = t["fc1/Cast/ReadVariableOp:0"]  # (400, 120) over Keras' NHWC flatten (h, w, c)
    fc1 = fc1.reshape(5, 5, 16, 120).transpose(3, 2, 0, 1).reshape(120, 400)  # -> NCHW flatten (c, h, w)
    ws = [
        t["conv1/convolution/ReadVariableOp:0"], t["conv1/Squeeze:0"],
        t["conv2/convolution/ReadVariableOp:0"], t["conv2/Squeeze:0"],
        fc1, t["fc1/BiasAdd/ReadVariableOp:0"],
        t["fc2/Cast/ReadVariableOp:0"].T, t["fc2/BiasAdd/ReadVariableOp:0"],
        t["predictions/Cast/ReadVariableOp:0"].T, t["predictions/BiasAdd/ReadVariableOp:0"],
    ]  # fmt: skip
    os.makedirs(os.path.join(WORK, "weights"), exist_ok=True)
    np.savez(os.path.join(WORK, "weights", "lenet.npz"), **{f"w{i}": np.ascontiguousarray(w) for i, w in enumerate(ws)})


def run_24(nets: list[str]) -> list[dict]:
    py = bigdl_env.venv24()
    cmd = [py, os.path.join(HERE, "bigdl", "make24.py"), ROOT, WORK, ",".join(nets)]
    subprocess.run(cmd, check=True, env=bigdl_env.java_env(py), cwd=WORK)
    with open(os.path.join(WORK, "manifest-2.4.json")) as f:
        return json.load(f)


def run_03(nets: list[str]) -> list[dict]:
    cp = bigdl_env.bigdl03_classpath()
    classes = os.path.join(WORK, "classes03")
    src = os.path.join(HERE, "bigdl", "Make.scala")
    stamp = os.path.join(classes, ".src")
    if not os.path.exists(stamp) or open(stamp).read() != open(src).read():
        shutil.rmtree(classes, ignore_errors=True)
        os.makedirs(classes)
        scalac = shutil.which("scalac")
        if scalac is None and shutil.which("apt-get") and os.geteuid() == 0:
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "scala"], check=True)
            scalac = shutil.which("scalac")
        if scalac is None:
            raise SystemExit("scalac not found: apt-get install -y --no-install-recommends scala (Scala 2.11)")
        r = subprocess.run([scalac, "-nowarn", "-cp", cp, "-d", classes, src], env=bigdl_env.java_env())
        if r.returncode:
            raise SystemExit(f"scalac {src} failed (exit {r.returncode})")
        shutil.copy(src, stamp)
    cmd = ["java", "-Xmx2g", "-cp", f"{classes}:{cp}", "Make", ROOT, WORK, ",".join(nets)]
    subprocess.run(cmd, check=True, env=bigdl_env.java_env(), cwd=WORK)
    return read_tsv03()


def read_tsv03() -> list[dict]:
    """Manifest entries from the Scala program's TSV; its FILE.out.t tensors become FILE.out.npy."""
    entries = []
    with open(os.path.join(WORK, "manifest-0.3.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for row in rows:
        rel, fmt, kind, mods, diff, weights = row[:6]
        net = os.path.basename(rel).split(".")[0].removesuffix("_q")
        x = np.load(os.path.join(ROOT, "inputs", net + ".npy"))
        e = {"net": net, "description": DOCS.get(net, ""), "layout": "NHWC" if net == "nhwc" else "NCHW",
             "input": f"inputs/{net}.npy", "input_shape": list(x.shape), "input_source": SOURCE[net],
             "generation": "0.3.0", "kind": kind, "format": fmt, "file": rel, "weights_from": weights}  # fmt: skip
        if len(row) > 6 and row[6]:
            e["reference"] = row[6]
        if len(row) > 7:
            e["unsupported"] = row[7]
            entries.append(e)
            continue
        tpath = os.path.join(ROOT, rel + ".out.t")
        raw = open(tpath, "rb").read()
        nd = int(np.frombuffer(raw, "<i4", 1)[0])
        dims = np.frombuffer(raw, "<i4", nd, 4)
        y = np.frombuffer(raw, "<f4", offset=4 + 4 * nd).reshape(dims).astype(np.float32)
        os.remove(tpath)
        np.save(os.path.join(ROOT, rel + ".out.npy"), y)
        e.update(output=rel + ".out.npy", output_shape=list(y.shape), modules=mods.split(" "))
        e["max_abs_diff_vs_unsaved_model"] = float(diff)
        entries.append(e)
    return entries


def main() -> None:
    global ROOT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen", default="2.4,0.3", help="generations to (re)build: 2.4, 0.3 or both")
    ap.add_argument("--nets", default=",".join(ALL_NETS))
    ap.add_argument("--root", default=ROOT, help="output directory (default fixtures/bigdl)")
    a = ap.parse_args()
    ROOT = os.path.abspath(a.root)
    nets = a.nets.split(",")
    gens = a.gen.split(",")
    for d in ("inputs", "weights", "params"):
        os.makedirs(os.path.join(WORK, d), exist_ok=True)
    write_inputs(nets)
    if "lenet" in nets:
        lenet_weights()
    mpath = os.path.join(ROOT, "manifest.json")
    old = json.load(open(mpath))["files"] if os.path.exists(mpath) else []
    new: list[dict] = []
    if "2.4" in gens:
        new += run_24(nets)
    DOCS.update({e["net"]: e["description"] for e in old + new if e.get("description")})
    nets03 = [n for n in nets if n not in ONLY_24]
    if "0.3" in gens and nets03:
        new += run_03(nets03)
    rebuilt = {(e["generation"][:3], e["net"]) for e in new}
    keep = [e for e in old if (e["generation"][:3], e["net"]) not in rebuilt]
    files = sorted(keep + new, key=lambda e: (e["generation"], ALL_NETS.index(e["net"]), e["kind"], e["file"]))
    doc = {
        "about": "Real BigDL files made by scripts/make_bigdl_fixtures.py; paths relative to this directory. "
        "output: BigDL's own output after reloading that file, on input. Entries with 'unsupported' record a "
        "form BigDL could not write (no file).",
        "files": files,
    }
    with open(mpath, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{mpath}: {sum('unsupported' not in e for e in files)} files")


if __name__ == "__main__":
    main()
