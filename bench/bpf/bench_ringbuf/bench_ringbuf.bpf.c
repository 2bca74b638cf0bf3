// SPDX-License-Identifier: GPL-2.0
/* bench_ringbuf: emits cfg_burst fixed 64-byte records per getppid() of cfg_pid,
 * as fast as the kernel can, for the ring-buffer reader benchmark. */
#include "vmlinux.h"
#include "ks.bpf.h"

struct bench_ringbuf_event {
	__u64 seq;
	__u64 ts;
	__u32 pid;
	__u32 cpu;
	__u64 payload[5];
};

const volatile __u32 cfg_pid = 0;
const volatile __u32 cfg_burst = 1000;
__u64 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static long emit_one(__u32 i, void *ctx)
{
	struct bench_ringbuf_event *e = KS_RESERVE(events, struct bench_ringbuf_event);
	if (!e)
		return 0;
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->ts = 0;
	e->pid = cfg_pid;
	e->cpu = bpf_get_smp_processor_id();
	e->payload[0] = i;
	bpf_ringbuf_submit(e, 0);  /* adaptive wakeup, as probes do */
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int getppid_enter__tracepoint(void *ctx)
{
	if (ks_tgid() != cfg_pid)
		return 0;
	bpf_loop(cfg_burst, emit_one, NULL, 0);
	return 0;
}

KS_EXPORT_TYPE(bench_ringbuf_event);
