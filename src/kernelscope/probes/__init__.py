"""Kernel probes, one folder each: <name>.bpf.c, probe.py, optional decode."""
