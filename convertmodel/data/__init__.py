"""Datasets and preprocessing for ``verify`` (streamed in batches; images decode with Pillow)."""

from convertmodel.data.datasets import Batch, Box, Dataset, open_dataset
from convertmodel.data.preprocess import PRESETS, Preprocess, preset

__all__ = ["PRESETS", "Batch", "Box", "Dataset", "Preprocess", "open_dataset", "preset"]
