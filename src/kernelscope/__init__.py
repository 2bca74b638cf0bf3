"""kernelscope: zero-instrumentation observability for Linux, built on eBPF, driven from Python."""

__version__ = "0.1.0"
