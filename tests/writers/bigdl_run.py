"""Runs INSIDE the BigDL 2.4 venv (see scripts/bigdl/bigdl_env.py): load each model with real BigDL, run it.

    python bigdl_run.py JOBS.json

JOBS.json: a list of {"model": PATH, "input": NPY, "output": NPY, "quantize": BOOL}. Every job's model is loaded
with ``Model.loadModel`` (what a BigDL-on-Spark pipeline calls), quantized with BigDL's own ``quantize()`` when
"quantize" is true, switched to inference mode and run on the input; its output goes to "output", or the BigDL
error to JOBS.json.results ("error"). One JVM for all jobs.
"""

import json
import sys

import numpy as np
from bigdl.dllib.nn.layer import Model
from bigdl.dllib.nncontext import init_nncontext


def main():
    jobs_path = sys.argv[1]
    with open(jobs_path) as f:
        jobs = json.load(f)
    init_nncontext("local[1]")
    results = []
    for job in jobs:
        try:
            m = Model.loadModel(job["model"])
            if job.get("quantize"):
                m = m.quantize()
            m.evaluate()
            y = m.forward(np.load(job["input"]))
            np.save(job["output"], np.asarray(y, dtype=np.float32))
            results.append({"model": job["model"], "ok": True})
        except Exception as e:  # report BigDL's error for this model and go on with the others
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            why = [ln for ln in lines if "Exception" in ln or "Error" in ln or "Caused by" in ln][-3:]
            results.append({"model": job["model"], "ok": False, "error": " / ".join(why or lines[:1])[:800]})
    with open(jobs_path + ".results", "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
