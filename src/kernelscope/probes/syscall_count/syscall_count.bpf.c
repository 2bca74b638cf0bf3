// SPDX-License-Identifier: GPL-2.0
/* syscall_count: calls, errors and total latency per syscall or per process,
 * aggregated in per-CPU hash maps (syscount). */
#include "vmlinux.h"
#include "ks.bpf.h"

#define SYSCALL_COUNT_MAX_NR 1024

struct syscall_count_key {
	__u32 id;                  /* syscall number, or tgid with cfg_per_process */
};

struct syscall_count_value {
	__u64 count;
	__u64 errors;              /* calls that returned -4095..-1 */
	ks_duration_ns_t total_ns;
	char comm[KS_COMM_LEN];    /* per-process mode: the first comm seen on this CPU */
};

struct syscall_count_start {
	__u64 ts;
	__s64 nr;
};

const volatile __u32 cfg_pid = 0;          /* only this tgid, 0 for all */
const volatile __u8 cfg_per_process = 0;
const volatile __u8 cfg_filter = 0;        /* count only numbers set in `wanted` */
const volatile __u32 cfg_uid = (__u32)-1;
const volatile char cfg_comm[KS_COMM_LEN] = {};   /* only this command name, "" for all */

/* per process (cfg_per_process): keyed by tgid */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct syscall_count_key);
	__type(value, struct syscall_count_value);
} counts SEC(".maps");

/* per syscall: indexed by number, an array lookup is cheaper than a hash on this hot path */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSCALL_COUNT_MAX_NR);
	__type(key, __u32);
	__type(value, struct syscall_count_value);
} counts_by_nr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSCALL_COUNT_MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} wanted SEC(".maps");

/* entry time of the syscall in progress, per thread; freed with the task */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_count_start);
} start SEC(".maps");

static __always_inline int on_enter(struct task_struct *task, long nr)
{
	struct syscall_count_start *s;

	if (cfg_pid && ks_tgid() != cfg_pid)
		return 0;
	if (cfg_uid != (__u32)-1 && (__u32)bpf_get_current_uid_gid() != cfg_uid)
		return 0;
	if (cfg_comm[0]) {
		char comm[KS_COMM_LEN];
		bpf_get_current_comm(comm, sizeof(comm));
		for (int i = 0; i < KS_COMM_LEN; i++) {
			if (comm[i] != cfg_comm[i])
				return 0;
			if (!comm[i])
				break;
		}
	}
	if (cfg_filter) {
		__u32 k = nr;
		__u8 *w = bpf_map_lookup_elem(&wanted, &k);
		if (!w || !*w)
			return 0;
	}
	s = bpf_task_storage_get(&start, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->ts = bpf_ktime_get_ns();
	s->nr = nr;
	return 0;
}

static __always_inline int on_exit(struct task_struct *task, long ret)
{
	struct syscall_count_start *s;
	struct syscall_count_key key;
	struct syscall_count_value *v;
	__u64 dur;

	if (cfg_pid && ks_tgid() != cfg_pid)
		return 0;
	s = bpf_task_storage_get(&start, task, 0, 0);
	if (!s || !s->ts)
		return 0;
	dur = bpf_ktime_get_ns() - s->ts;
	s->ts = 0;
	if (!cfg_per_process) {
		__u32 nr = s->nr;
		v = bpf_map_lookup_elem(&counts_by_nr, &nr);
		if (!v)
			return 0;
		goto add;
	}
	key.id = ks_tgid();
	v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		struct syscall_count_value zero = {};
		if (cfg_per_process)
			bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&counts, &key);
		if (!v)
			return 0;
	}
add:
	v->count++;
	v->total_ns += dur;
	if (ret < 0 && ret >= -4095)
		v->errors++;
	return 0;
}

SEC("tp_btf/sys_enter")
int sys_enter__tp_btf(u64 *ctx)
{
	return on_enter(bpf_get_current_task_btf(), (long)ctx[1]);
}

SEC("tp_btf/sys_exit")
int sys_exit__tp_btf(u64 *ctx)
{
	return on_exit(bpf_get_current_task_btf(), (long)ctx[1]);
}

SEC("tp/raw_syscalls/sys_enter")
int sys_enter__tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(bpf_get_current_task_btf(), ctx->id);
}

SEC("tp/raw_syscalls/sys_exit")
int sys_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(bpf_get_current_task_btf(), ctx->ret);
}
