"""The local engine: every batch in this process, in order (today's behaviour, the default)."""

from __future__ import annotations

from convertmodel.engines.base import BatchResult, Job, ProgressFn, run_range


class LocalEngine:
    name = "local"

    def run(self, job: Job, progress: ProgressFn | None = None) -> list[BatchResult]:
        models = {k: ref.model for k, ref in job.models.items()}
        dataset = job.dataset if job.dataset is not None else job.open_data()
        out: list[BatchResult] = []
        done = 0
        for r in run_range(models, dataset, job, 0, job.total):
            out.append(r)
            done += len(r.indices) + len(r.errors)
            if progress:
                progress(done, job.total)
        return out
