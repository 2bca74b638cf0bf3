"""Thin binding to the system libbpf.so.1: objects, programs, maps, ring buffers, links."""

from kernelscope.libbpf._lib import LibbpfError, version
from kernelscope.libbpf.maps import Map, possible_cpus, stack_ips
from kernelscope.libbpf.object import BpfObject, Link, Program, section_mechanism
from kernelscope.libbpf.ringbuf import CallbackRingBuffer, RingBuffer

__all__ = ["BpfObject", "CallbackRingBuffer", "LibbpfError", "Link", "Map", "Program",
           "RingBuffer", "possible_cpus", "section_mechanism", "stack_ips", "version"]
