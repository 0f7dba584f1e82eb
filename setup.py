"""Build script for the optional native extension (int8 kernels); see convertmodel/runtime/native.

Everything else is declared in pyproject.toml. The extension is optional: if it cannot be
built, the package still installs and runs on the numpy reference kernels.

Each ISA's kernels live in their own translation unit, compiled with their own ``-m`` flags
(setuptools has no per-file flags, hence the small ``build_ext`` below); ``module.cpp`` is
compiled for the baseline CPU and picks a unit at run time from cpuid. On non-x86 machines
(ARM) or compilers without GCC-style flags only the portable unit is built.
"""

from __future__ import annotations

import os
import platform
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from pybind11.setup_helpers import ParallelCompile, Pybind11Extension

    ParallelCompile("CONVERTMODEL_BUILD_JOBS", default=2).install()
    HAVE_PYBIND11 = True
except ImportError:  # no pybind11: no extension, the numpy kernels still work
    HAVE_PYBIND11 = False

SRC = "convertmodel/runtime/native/src"
BASE_FLAGS = ["-O3", "-ffp-contract=off", "-fvisibility=hidden"]
# Translation unit -> (flags, macro telling module.cpp the unit exists).
ISA_UNITS = {
    "isa_avx2": (["-mavx2", "-mfma"], "CM_HAVE_AVX2"),
    "isa_avxvnni": (["-mavx2", "-mfma", "-mavxvnni"], "CM_HAVE_AVXVNNI"),
    "isa_avx512vnni": (["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mfma"], "CM_HAVE_AVX512VNNI"),
    "fp32_avx2": (["-mavx2", "-mfma"], "CM_HAVE_FP32_AVX2"),
    "fp32_avx512": (["-mavx512f", "-mfma"], "CM_HAVE_FP32_AVX512"),
}
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


class BuildExt(build_ext):
    """build_ext with per-file compiler flags, dropping ISA units the compiler cannot build."""

    def _flags_ok(self, flags: list[str]) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.cpp")
            with open(src, "w") as f:
                f.write("int main() { return 0; }\n")
            try:
                self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            except Exception:
                return False
        return True

    def build_extensions(self) -> None:
        gcc_like = self.compiler.compiler_type == "unix"
        for ext in self.extensions:
            keep = []
            for src in ext.sources:
                unit = os.path.splitext(os.path.basename(src))[0]
                if unit in ISA_UNITS:
                    flags, macro = ISA_UNITS[unit]
                    if not (IS_X86 and gcc_like and self._flags_ok(flags)):
                        continue
                    ext.define_macros.append((macro, "1"))
                keep.append(src)
            ext.sources = keep
            if gcc_like:
                ext.extra_compile_args = [*ext.extra_compile_args, *BASE_FLAGS]
        original = self.compiler._compile

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):  # type: ignore[no-untyped-def]
            unit = os.path.splitext(os.path.basename(src))[0]
            extra = list(extra_postargs) + (ISA_UNITS[unit][0] if unit in ISA_UNITS else [])
            return original(obj, src, ext, cc_args, extra, pp_opts)

        self.compiler._compile = _compile
        super().build_extensions()


ext_modules = []
if HAVE_PYBIND11:
    ext_modules.append(
        Pybind11Extension(
            "convertmodel.runtime.native._native",
            sources=[
                f"{SRC}/module.cpp",
                f"{SRC}/isa_portable.cpp",
                f"{SRC}/fp32_module.cpp",
                f"{SRC}/fp32_conv.cpp",
                f"{SRC}/fp32_portable.cpp",
                *(f"{SRC}/{u}.cpp" for u in ISA_UNITS),
            ],
            depends=[
                f"{SRC}/common.h",
                f"{SRC}/generic.h",
                f"{SRC}/avx_quant.h",
                f"{SRC}/pad_rows.h",
                f"{SRC}/conv_bands.h",
                f"{SRC}/depthwise.h",
                f"{SRC}/fp32.h",
                f"{SRC}/fp32_impl.h",
                f"{SRC}/fp32_direct_impl.h",
                f"{SRC}/fp32_dw_impl.h",
                f"{SRC}/fp32_bind.h",
            ],
            cxx_std=17,
            optional=True,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
