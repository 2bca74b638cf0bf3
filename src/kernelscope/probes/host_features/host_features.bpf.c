// SPDX-License-Identifier: GPL-2.0
/* host_features: one minimal program per hook mechanism. kernelscope.host
 * loads and attaches each alone to learn what this kernel really allows. */
#include "vmlinux.h"
#include "ks.bpf.h"

__u64 hits = 0;

SEC("tp/syscalls/sys_enter_getppid")
int probe__tracepoint(void *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }

SEC("raw_tp/sys_enter")
int probe__raw_tp(void *ctx) { return 0; }

SEC("tp_btf/sched_switch")
int probe__tp_btf(void *ctx) { return 0; }

SEC("kprobe/do_sys_openat2")
int probe__kprobe(void *ctx) { return 0; }

SEC("fentry/do_sys_openat2")
int probe__fentry(void *ctx) { return 0; }

SEC("uprobe")
int probe__uprobe(void *ctx) { return 0; }

SEC("perf_event")
int probe__perf_event(void *ctx) { return 0; }

SEC("iter/task")
int probe__iter(void *ctx) { return 0; }

SEC("lsm/file_open")
int probe__lsm(void *ctx) { return 0; }
