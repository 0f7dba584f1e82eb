"""BigDL 2.4 fixture driver: runs INSIDE the BigDL 2.4 venv (pyspark 3.4.4 + bigdl-dllib-spark3), driven by
scripts/make_bigdl_fixtures.py.  Usage: python make24.py ROOT WORK_DIR NET[,NET...]

ROOT is fixtures/bigdl: inputs/NAME.npy are read from it, the files go to ROOT/v2.4/.  WORK_DIR holds optional
trained weights (weights/NAME.npz, arrays w0, w1, ... in BigDL's parameters() order).  For each net it builds the BigDL model, runs it, saves every variant BigDL can
write (single-file protobuf, definition + .weights pair, saveTorch .t7, quantize() + both protobuf forms),
reloads each saved file with BigDL, runs the reloaded model on the same input and records that output as the
file's reference (.npy).  It also dumps the flat fp32 parameters (params/NAME.f32) (BatchNorm nets: after the same
three training-mode passes the 0.3.0 program repeats) so the BigDL 0.3.0 Scala program builds the same net with the same numbers.  A JSON list of manifest entries is
written to WORK_DIR/manifest-2.4.json (paths relative to ROOT).
"""

import json
import os
import sys
import traceback

import nets24
import numpy as np
from bigdl.dllib.nn.layer import Model
from bigdl.dllib.nncontext import init_nncontext
from bigdl.dllib.utils.common import callBigDlFunc

GEN = "2.4.0"


def modules_of(jm, acc):
    name = jm.getClass().getName()
    acc.append(name)
    if "Graph" in name or hasattr(jm, "modules"):
        try:
            subs = jm.modules()
            for i in range(subs.size()):
                modules_of(subs.apply(i), acc)
        except Exception:
            pass
    return acc


def class_list(model):
    seen = []
    for n in modules_of(model.value, []):
        short = n.split(".nn.", 1)[-1]  # e.g. SpatialConvolution, quantized.Linear, keras.Dense
        if short not in seen:
            seen.append(short)
    return seen


def run(model, x):
    y = model.forward(x)
    return np.asarray(y, dtype=np.float32)


def save_variants(name, model, x, root, qualifier, entries, skipped, meta):
    """Save `model` in every protobuf form (+ t7 for fp32); reload each with BigDL; record its output."""
    kind = "quantized" if qualifier == "_q" else "fp32"
    out = root
    y_mem = run(model, x)
    base = os.path.join(root, "v2.4", name + qualifier)
    forms = [("protobuf", base + ".bigdl", None), ("protobuf+weights", base + "_split.bigdl", base + "_split.weights")]
    if kind == "fp32":
        forms.append(("t7", base + ".t7", None))
    for fmt, path, wpath in forms:
        entry = dict(meta, generation=GEN, kind=kind, format=fmt, file=os.path.relpath(path, out))
        if wpath:
            entry["weights"] = os.path.relpath(wpath, out)
        try:
            if fmt == "t7":
                model.value.saveTorch(path, True)
                loaded = Model.load_torch(path)
            else:
                model.saveModel(path, wpath, over_write=True)
                loaded = Model.loadModel(path, wpath)
            loaded.evaluate()
            y = run(loaded, x)
        except Exception as e:
            for p in (path, wpath):
                if p and os.path.exists(p):
                    os.remove(p)
            msg = str(e).strip().splitlines()
            why = next((m for m in msg if "Exception" in m or "Error" in m), msg[0] if msg else repr(e))
            print(f"  {name}{qualifier} {fmt}: not written: {why[:200]}", flush=True)
            entry["unsupported"] = why[:300]
            skipped.append(entry)
            continue
        for p in (path, wpath):  # Hadoop's checksum side files
            crc = p and os.path.join(os.path.dirname(p), "." + os.path.basename(p) + ".crc")
            if crc and os.path.exists(crc):
                os.remove(crc)
        opath = path + ".out.npy"
        np.save(opath, y)
        entry["max_abs_diff_vs_unsaved_model"] = float(np.abs(y - y_mem).max())
        entry["output"] = os.path.relpath(opath, out)
        entry["output_shape"] = list(y.shape)
        entry["modules"] = class_list(loaded)
        entries.append(entry)
        print(f"  {entry['file']}: {fmt} {kind} out {y.shape}", flush=True)


def main():
    root, work, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    out = os.path.join(root, "v2.4")
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.join(work, "params"), exist_ok=True)
    init_nncontext("local[2]")
    entries = []
    failed = []
    for name in names:
        print(f"[2.4] {name}", flush=True)
        try:
            callBigDlFunc("float", "setModelSeed", 1234)
            spec = nets24.NETS[name]
            model = spec["build"]()
            x = np.load(os.path.join(root, "inputs", name + ".npy"))
            wfile = os.path.join(work, "weights", name + ".npz")
            if os.path.exists(wfile):
                z = np.load(wfile)
                shapes = [np.shape(w) for w in model.get_weights()]
                model.set_weights([z[f"w{i}"].reshape(shp) for i, shp in enumerate(shapes)])
            if spec.get("bn_warmup"):  # real running statistics: a few training-mode passes over the input
                model.training()
                for _ in range(3):
                    model.forward(x)
            model.evaluate()
            y_mem = run(model, x)
            ws = model.get_weights() or []
            flat = np.concatenate([np.asarray(w, np.float32).ravel() for w in ws]) if ws else np.zeros(0, np.float32)
            flat.astype("<f4").tofile(os.path.join(work, "params", name + ".f32"))
            np.save(os.path.join(work, "params", name + ".mem24.npy"), y_mem)
            meta = {
                "net": name,
                "description": spec["doc"],
                "layout": spec.get("layout", "NCHW"),
                "input": f"inputs/{name}.npy",
                "input_shape": list(x.shape),
                "input_source": spec["input"],
            }
            skipped = []
            save_variants(name, model, x, root, "", entries, skipped, meta)
            if spec.get("quantize", True):
                q = model.quantize()
                q.evaluate()
                save_variants(name, q, x, root, "_q", entries, skipped, meta)
            entries += skipped
        except Exception:
            traceback.print_exc()
            failed.append(name)
    with open(os.path.join(work, "manifest-2.4.json"), "w") as f:
        json.dump(entries, f, indent=1)
    if failed:
        print("FAILED nets:", failed, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
