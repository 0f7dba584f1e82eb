"""Metrics for verify: classification (top-k), fp32-vs-int8 agreement (cosine, SQNR), detection mAP."""

from convertmodel.metrics.agreement import Agreement, cosine, sqnr_db
from convertmodel.metrics.classification import TopK, topk_correct
from convertmodel.metrics.detection import DetectionMAP, parse_ssd_output

__all__ = ["Agreement", "DetectionMAP", "TopK", "cosine", "parse_ssd_output", "sqnr_db", "topk_correct"]
