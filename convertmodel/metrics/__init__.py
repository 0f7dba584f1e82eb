"""Metrics for verify: classification (top-k), fp32-vs-int8 agreement (cosine, SQNR), detection mAP."""

from convertmodel.metrics.agreement import agreement_columns, cosine, sqnr_db, summarize_agreement
from convertmodel.metrics.classification import check_labels, summarize_topk, top_classes
from convertmodel.metrics.detection import DetectionMAP, parse_ssd_output

__all__ = [
    "DetectionMAP",
    "agreement_columns",
    "check_labels",
    "cosine",
    "parse_ssd_output",
    "sqnr_db",
    "summarize_agreement",
    "summarize_topk",
    "top_classes",
]
