// SPDX-License-Identifier: GPL-2.0
/* sched_runq_latency: run-queue latency (wakeup or preemption -> on CPU) as in-kernel
 * log2 histograms, overall, per process or per thread (runqlat). */
#include "vmlinux.h"
#include "ks.bpf.h"

#define TASK_RUNNING 0

struct sched_runq_latency_key {
	ks_pid_t pid;   /* tgid (-P), tid (-L, and -P with the tracepoint variant), else 0 */
	__u32 pad;
	char comm[KS_COMM_LEN];
};

const volatile __u8 cfg_per_process = 0;
const volatile __u8 cfg_per_thread = 0;
const volatile __u8 cfg_ms = 0;
const volatile __u32 cfg_tgid = 0;   /* only this process; the tracepoint variant uses `tids` */

/* When the task became runnable, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct sched_runq_latency_key);
	__type(value, struct ks_hist);
} hists SEC(".maps");

/* Thread ids of cfg_tgid, filled by Python for the tracepoint variant (no tgid there). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} tids SEC(".maps");

static struct ks_hist zero_hist;

static __always_inline void enqueue(__u32 tgid, __u32 tid)
{
	__u64 ts;

	if (!tid)
		return;
	if (cfg_tgid && tgid != cfg_tgid)
		return;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
}

static __always_inline void tp_enqueue(__u32 tid)
{
	__u64 ts;

	if (!tid)
		return;
	if (cfg_tgid && !bpf_map_lookup_elem(&tids, &tid))
		return;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
}

/* `next` is going on CPU: account its wait. comm is read only when keyed by pid. */
static __always_inline void on_cpu(__u32 tgid, __u32 tid, const char *comm)
{
	struct sched_runq_latency_key k = {};
	struct ks_hist *h;
	__u64 *tsp, delta;

	tsp = bpf_map_lookup_elem(&start, &tid);
	if (!tsp)
		return;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &tid);
	if ((__s64)delta < 0)
		return;
	if (cfg_per_thread || cfg_per_process) {
		k.pid = cfg_per_thread ? tid : tgid;
		bpf_probe_read_kernel_str(k.comm, sizeof(k.comm), comm);
	}
	h = bpf_map_lookup_elem(&hists, &k);
	if (!h) {
		bpf_map_update_elem(&hists, &k, &zero_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &k);
		if (!h)
			return;
	}
	ks_hist_add(h, cfg_ms ? delta / 1000000 : delta / 1000);
}

static __always_inline int wakeup(struct task_struct *p)
{
	enqueue(BPF_CORE_READ(p, tgid), BPF_CORE_READ(p, pid));
	return 0;
}

static __always_inline int do_switch(struct task_struct *prev, struct task_struct *next)
{
	if (ks_task_state(prev) == TASK_RUNNING)  /* preempted: runnable again from now */
		enqueue(BPF_CORE_READ(prev, tgid), BPF_CORE_READ(prev, pid));
	on_cpu(BPF_CORE_READ(next, tgid), BPF_CORE_READ(next, pid), next->comm);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup__tp_btf, struct task_struct *p)
{
	return wakeup(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new__tp_btf, struct task_struct *p)
{
	return wakeup(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch__tp_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return do_switch(prev, next);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(sched_wakeup__raw_tp, struct task_struct *p)
{
	return wakeup(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new__raw_tp, struct task_struct *p)
{
	return wakeup(p);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(sched_switch__raw_tp, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return do_switch(prev, next);
}

/* Plain tracepoints carry thread ids only: per-process keys are tids (Python maps
 * them to processes) and the pid filter uses the `tids` map. */
SEC("tp/sched/sched_wakeup")
int sched_wakeup__tracepoint(struct trace_event_raw_sched_wakeup_template *ctx)
{
	tp_enqueue(ctx->pid);
	return 0;
}

SEC("tp/sched/sched_wakeup_new")
int sched_wakeup_new__tracepoint(struct trace_event_raw_sched_wakeup_template *ctx)
{
	tp_enqueue(ctx->pid);
	return 0;
}

SEC("tp/sched/sched_switch")
int sched_switch__tracepoint(struct trace_event_raw_sched_switch *ctx)
{
	char comm[KS_COMM_LEN];

	if (ctx->prev_state == TASK_RUNNING)
		tp_enqueue(ctx->prev_pid);
	bpf_probe_read_kernel(comm, sizeof(comm), ctx->next_comm);
	on_cpu(ctx->next_pid, ctx->next_pid, comm);
	return 0;
}
