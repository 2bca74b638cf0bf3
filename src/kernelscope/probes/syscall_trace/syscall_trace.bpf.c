// SPDX-License-Identifier: GPL-2.0
/* syscall_trace: every syscall of a set of traced processes (and their children)
 * with raw arguments, up to two string arguments, return value and duration (trace). */
#include "vmlinux.h"
#include "ks.bpf.h"

#define TRACE_STR_MAX 256
#define TRACE_MAX_NR 1024

enum { TRACE_WAIT_EXEC = 1, TRACE_ON = 2 };

struct syscall_trace_event {
	ks_boot_ns_t ts;               /* entry */
	ks_duration_ns_t duration_ns;  /* 0 when the call did not return */
	__s64 ret;                     /* raw return value (-4095..-1 is -errno) */
	__u64 args[6];
	ks_pid_t pid;
	ks_pid_t tid;
	__s32 nr;
	__u8 returned;                 /* 0: the thread ended inside the call (exit, exit_group, killed) */
	__u8 pad[3];
	__s32 str_len[2];              /* bytes read for string slots 0 and 1 (NUL included); <=0: none */
	char comm[KS_COMM_LEN];
	char str0[TRACE_STR_MAX];
	char str1[TRACE_STR_MAX];
};

const volatile __u8 cfg_filter = 0;     /* only numbers set in `wanted` */
const volatile __u8 cfg_strings = 1;    /* copy string arguments */
const volatile __s32 cfg_execve_nr = 59;
const volatile __s32 cfg_execveat_nr = 322;

#define TRACE_ARGV_MAX 16      /* execve argv entries packed into str1 */
#define TRACE_ARGV_ARG 64      /* bytes per argv entry, NUL included */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* tgid -> TRACE_WAIT_EXEC (a started command before its exec) or TRACE_ON */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} traced SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRACE_MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} wanted SEC(".maps");

/* per syscall number: bit i set when argument i is an input string */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRACE_MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} str_args SEC(".maps");

/* the call in progress, by thread id */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct syscall_trace_event);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syscall_trace_event);
} scratch SEC(".maps");

/* Copy the call's string arguments into slots 0 and 1. At entry a string in a page
 * not yet faulted in reads as -EFAULT; `retry` (at exit, after the kernel touched
 * it) reads only those slots again. */
static __always_inline void read_strings(struct syscall_trace_event *e, bool retry)
{
	__u32 k = e->nr;
	__u8 *mask = bpf_map_lookup_elem(&str_args, &k);
	int slot = 0;

	if (!cfg_strings || !mask || !*mask)
		return;
	for (int i = 0; i < 6; i++) {
		if (!(*mask & (1 << i)))
			continue;
		const char *p = (const char *)e->args[i];
		if (slot == 0) {
			if (!retry || e->str_len[0] < 0)
				e->str_len[0] = bpf_probe_read_user_str(e->str0, TRACE_STR_MAX, p);
		} else {
			if (!retry || e->str_len[1] < 0)
				e->str_len[1] = bpf_probe_read_user_str(e->str1, TRACE_STR_MAX, p);
		}
		if (++slot == 2)
			break;
	}
}

/* execve/execveat: argv packed NUL-separated into str1 (each entry cut at 63 bytes,
 * at most 16 entries); str_len[1] is the packed size, + TRACE_STR_MAX when cut. */
static __always_inline void read_argv(struct syscall_trace_event *e, const char *const *argv)
{
	__u32 off = 0;
	int cut = 0;

	for (int i = 0; i < TRACE_ARGV_MAX; i++) {
		const char *p = NULL;
		if (bpf_probe_read_user(&p, sizeof(p), &argv[i]) || !p)
			goto done;
		if (off > TRACE_STR_MAX - TRACE_ARGV_ARG) {
			cut = 1;
			goto done;
		}
		long n = bpf_probe_read_user_str(&e->str1[off & (TRACE_STR_MAX - 1)], TRACE_ARGV_ARG, p);
		if (n <= 0)
			goto done;
		if (n == TRACE_ARGV_ARG)
			cut = 1;
		off += n;
	}
	{
		const char *p = NULL;
		bpf_probe_read_user(&p, sizeof(p), &argv[TRACE_ARGV_MAX]);
		if (p)
			cut = 1;
	}
done:
	e->str_len[1] = off + (cut ? TRACE_STR_MAX : 0);
}

static __always_inline int on_enter(struct pt_regs *regs, long nr)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id, zero = 0, k = nr;
	struct syscall_trace_event *e;
	__u8 *state = bpf_map_lookup_elem(&traced, &tgid);

	if (!state)
		return 0;
	if (*state == TRACE_WAIT_EXEC) {
		if (nr != cfg_execve_nr && nr != cfg_execveat_nr)
			return 0;
		*state = TRACE_ON;
	}
	if (cfg_filter) {
		__u8 *w = bpf_map_lookup_elem(&wanted, &k);
		if (!w || !*w)
			return 0;
	}
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_boot_ns();
	e->duration_ns = 0;
	e->ret = 0;
	e->pid = tgid;
	e->tid = tid;
	e->nr = nr;
	e->returned = 0;
	e->args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	e->args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	e->args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	e->args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	e->args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
#if defined(__TARGET_ARCH_x86)
	e->args[5] = BPF_CORE_READ(regs, r9);   /* this libbpf has no PARM6 macro */
#else
	e->args[5] = 0;
#endif
	e->str_len[0] = 0;
	e->str_len[1] = 0;
	e->str0[0] = 0;
	e->str1[0] = 0;
	read_strings(e, false);
	if (cfg_strings && nr == cfg_execve_nr)
		read_argv(e, (const char *const *)e->args[1]);
	else if (cfg_strings && nr == cfg_execveat_nr)
		read_argv(e, (const char *const *)e->args[2]);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_map_update_elem(&inflight, &tid, e, BPF_ANY);
	return 0;
}

static __always_inline void emit(struct syscall_trace_event *in, long ret, __u8 returned)
{
	struct syscall_trace_event *out = KS_RESERVE(events, struct syscall_trace_event);

	if (!out)
		return;
	bpf_probe_read_kernel(out, sizeof(*out), in);
	out->ret = ret;
	out->returned = returned;
	if (returned)
		out->duration_ns = bpf_ktime_get_boot_ns() - in->ts;
	/* after exec the comm is the new program's */
	bpf_get_current_comm(out->comm, sizeof(out->comm));
	bpf_ringbuf_submit(out, 0);
}

static __always_inline int on_exit(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct syscall_trace_event *e = bpf_map_lookup_elem(&inflight, &tid);

	if (!e)
		return 0;
	if (e->str_len[0] < 0 || e->str_len[1] < 0)
		read_strings(e, true);
	emit(e, ret, 1);
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid), ctgid = BPF_CORE_READ(child, tgid);
	__u8 *state, on = TRACE_ON;

	if (ptgid == ctgid)
		return 0;   /* a new thread: its process is traced already */
	state = bpf_map_lookup_elem(&traced, &ptgid);
	if (state && *state == TRACE_ON)
		bpf_map_update_elem(&traced, &ctgid, &on, BPF_ANY);
	return 0;
}

static __always_inline int on_task_exit(struct task_struct *task)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct syscall_trace_event *e = bpf_map_lookup_elem(&inflight, &tid);

	if (e) {
		emit(e, 0, 0);
		bpf_map_delete_elem(&inflight, &tid);
	}
	/* the last thread of the group: the process is gone */
	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		bpf_map_delete_elem(&traced, &tgid);
	return 0;
}

SEC("tp_btf/sys_enter")
int sys_enter__tp_btf(u64 *ctx)
{
	return on_enter((struct pt_regs *)ctx[0], (long)ctx[1]);
}

SEC("tp_btf/sys_exit")
int sys_exit__tp_btf(u64 *ctx)
{
	return on_exit((long)ctx[1]);
}

SEC("raw_tp/sys_enter")
int sys_enter__raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return on_enter((struct pt_regs *)ctx->args[0], (long)ctx->args[1]);
}

SEC("raw_tp/sys_exit")
int sys_exit__raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return on_exit((long)ctx->args[1]);
}

SEC("tp_btf/sched_process_fork")
int sched_process_fork__tp_btf(u64 *ctx)
{
	return on_fork((struct task_struct *)ctx[0], (struct task_struct *)ctx[1]);
}

SEC("raw_tp/sched_process_fork")
int sched_process_fork__raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return on_fork((struct task_struct *)ctx->args[0], (struct task_struct *)ctx->args[1]);
}

SEC("tp_btf/sched_process_exit")
int sched_process_exit__tp_btf(u64 *ctx)
{
	return on_task_exit(bpf_get_current_task_btf());
}

SEC("raw_tp/sched_process_exit")
int sched_process_exit__raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return on_task_exit((struct task_struct *)bpf_get_current_task());
}

KS_EXPORT_TYPE(syscall_trace_event);
