"""Build script for the optional native extension (int8 kernels); see convertmodel/runtime/native.

Everything else is declared in pyproject.toml. The extension is optional: if it cannot be
built, the package still installs and runs on the numpy reference kernels.
"""

from setuptools import setup

setup()
