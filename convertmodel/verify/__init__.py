"""verify: fp32 vs int8 on the same data, metrics, per-layer report, accuracy-aware fallback."""

from convertmodel.verify.runner import METRICS, VerifyOptions, VerifyResult, run_verify

__all__ = ["METRICS", "VerifyOptions", "VerifyResult", "run_verify"]
