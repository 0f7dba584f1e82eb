"""Graph -> Graph passes: BN folding, int8 quantization, and a manager that logs op counts per pass."""

from convertmodel.passes.fold_bn import fold_bn
from convertmodel.passes.manager import PassRecord, run_passes

__all__ = ["PassRecord", "fold_bn", "run_passes"]
