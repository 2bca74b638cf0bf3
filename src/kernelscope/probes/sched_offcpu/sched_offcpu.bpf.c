// SPDX-License-Identifier: GPL-2.0
/* sched_offcpu: time threads spend off CPU (switched out -> switched back in), summed
 * in the kernel by (process, thread, comm, user stack, kernel stack) (offcputime).
 * Stacks are taken at switch-out, when the thread leaving is still `current`. */
#include "vmlinux.h"
#include "ks.bpf.h"

#define PERF_MAX_STACK_DEPTH 127

struct sched_offcpu_key {
	ks_pid_t pid;            /* tgid */
	ks_pid_t tid;
	__s32 user_stack_id;     /* negative: -errno from bpf_get_stackid */
	__s32 kern_stack_id;
	char comm[KS_COMM_LEN];
};

struct sched_offcpu_value {
	ks_duration_ns_t total_ns;
	__u64 count;
};

struct sched_offcpu_start {
	__u64 ts;
	struct sched_offcpu_key key;
};

const volatile __u32 cfg_tgid = 0;          /* only this process, 0 for all */
const volatile __u32 cfg_tid = 0;           /* only this thread, 0 for all */
const volatile __u8 cfg_user_threads_only = 0;
const volatile __u8 cfg_kernel_threads_only = 0;
const volatile __u8 cfg_user_stacks = 1;
const volatile __u8 cfg_kernel_stacks = 1;
const volatile __s64 cfg_state = -1;        /* only this prev task state, -1 for any */
const volatile __u64 cfg_min_ns = 1000;
const volatile __u64 cfg_max_ns = (__u64)-1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct sched_offcpu_start);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PERF_MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sched_offcpu_key);
	__type(value, struct sched_offcpu_value);
} offcpu SEC(".maps");

static __always_inline bool wanted(__u32 tgid, __u32 tid, __u32 flags, long state)
{
	if (!tid)
		return false;  /* idle */
	if (cfg_tgid && tgid != cfg_tgid)
		return false;
	if (cfg_tid && tid != cfg_tid)
		return false;
	if (cfg_user_threads_only && (flags & 0x00200000 /* PF_KTHREAD */))
		return false;
	if (cfg_kernel_threads_only && !(flags & 0x00200000))
		return false;
	if (cfg_state != -1 && state != cfg_state)
		return false;
	return true;
}

/* The thread leaving the CPU is current: remember when, and its stacks. */
static __always_inline void switch_out(void *ctx, __u32 tgid, __u32 tid, __u32 flags, long state)
{
	struct sched_offcpu_start s = {};

	if (!wanted(tgid, tid, flags, state))
		return;
	s.ts = bpf_ktime_get_ns();
	s.key.pid = tgid;
	s.key.tid = tid;
	s.key.user_stack_id = cfg_user_stacks ?
		bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) : -1;
	s.key.kern_stack_id = cfg_kernel_stacks ? bpf_get_stackid(ctx, &stacks, 0) : -1;
	bpf_get_current_comm(s.key.comm, sizeof(s.key.comm));
	bpf_map_update_elem(&start, &tid, &s, BPF_ANY);
}

static __always_inline void switch_in(__u32 tid)
{
	struct sched_offcpu_start *s;
	struct sched_offcpu_value *v, zero = {};
	__u64 delta;

	s = bpf_map_lookup_elem(&start, &tid);
	if (!s)
		return;
	delta = bpf_ktime_get_ns() - s->ts;
	if ((__s64)delta >= 0 && delta >= cfg_min_ns && delta <= cfg_max_ns) {
		v = bpf_map_lookup_elem(&offcpu, &s->key);
		if (!v) {
			bpf_map_update_elem(&offcpu, &s->key, &zero, BPF_NOEXIST);
			v = bpf_map_lookup_elem(&offcpu, &s->key);
		}
		if (v) {
			__sync_fetch_and_add(&v->total_ns, delta);
			__sync_fetch_and_add(&v->count, 1);
		}
	}
	bpf_map_delete_elem(&start, &tid);
}

static __always_inline int do_switch(void *ctx, struct task_struct *prev, struct task_struct *next)
{
	switch_out(ctx, BPF_CORE_READ(prev, tgid), BPF_CORE_READ(prev, pid),
		   BPF_CORE_READ(prev, flags), ks_task_state(prev));
	switch_in(BPF_CORE_READ(next, pid));
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch__tp_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return do_switch(ctx, prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(sched_switch__raw_tp, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return do_switch(ctx, prev, next);
}

/* The tracepoint has thread ids only; prev is current, so its tgid and flags are ours. */
SEC("tp/sched/sched_switch")
int sched_switch__tracepoint(struct trace_event_raw_sched_switch *ctx)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();

	switch_out(ctx, ks_tgid(), ctx->prev_pid, BPF_CORE_READ(cur, flags), ctx->prev_state);
	switch_in(ctx->next_pid);
	return 0;
}
