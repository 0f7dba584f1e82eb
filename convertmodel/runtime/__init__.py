"""The CPU runtime: executor, numpy reference kernels, native int8 kernels."""

from convertmodel.runtime.executor import Executor, run_graph
from convertmodel.runtime.registry import KERNELS, KernelContext, kernel

__all__ = ["KERNELS", "Executor", "KernelContext", "kernel", "run_graph"]
