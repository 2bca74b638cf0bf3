"""Compile the BPF probes as part of building the package (see kernelscope/build.py)."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithProbes(build_py):
    def run(self):
        sys.path.insert(0, str(Path(__file__).parent / "src"))
        from kernelscope.build import build
        build()
        super().run()


setup(cmdclass={"build_py": BuildWithProbes})
