// SPDX-License-Identifier: GPL-2.0
/* proc_exec: every execve/execveat, successful or failed, with argv (execsnoop). */
#include "vmlinux.h"
#include "ks.bpf.h"

#define PROC_EXEC_ARGS_BUF 4096   /* all arguments, NUL-separated */
#define PROC_EXEC_ARG_MAX 256     /* one argument, NUL included */
#define PROC_EXEC_MAX_ARGS 64

struct proc_exec_event {
	ks_boot_ns_t ts;
	ks_pid_t pid;
	ks_pid_t tid;
	ks_pid_t ppid;
	ks_uid_t uid;
	ks_retval_t retval;
	__u32 args_count;
	__u32 args_size;
	__u8 args_truncated;
	__u8 pad[3];
	ks_cgroup_id_t cgroup_id;
	char comm[KS_COMM_LEN];
	char filename[PROC_EXEC_ARG_MAX];
	char args[PROC_EXEC_ARGS_BUF];
};

const volatile __u32 cfg_uid = (__u32)-1;   /* only this uid, -1 for all */
const volatile __u32 cfg_max_args = PROC_EXEC_MAX_ARGS;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20);   /* variable-size records: ~5,000 typical execs */
} events SEC(".maps");

/* Exec in progress, by thread id: filled at entry, sent at exit with retval. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct proc_exec_event);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct proc_exec_event);
} scratch SEC(".maps");

/* Completed execs by command name and outcome, counted in the kernel so that
 * metrics need no per-event work in user space (read at scrape time). */
struct proc_exec_count_key {
	char comm[KS_COMM_LEN];
	__u32 failed;        /* 1 when the exec returned an error */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct proc_exec_count_key);
	__type(value, __u64);
} exec_count SEC(".maps");

/* Execs not counted in exec_count because it was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} exec_count_full SEC(".maps");

static __always_inline void count_exec(long ret)
{
	struct proc_exec_count_key key = {};
	__u64 one = 1, *n;
	__u32 zero = 0;

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.failed = ret < 0;
	n = bpf_map_lookup_elem(&exec_count, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	if (bpf_map_update_elem(&exec_count, &key, &one, BPF_NOEXIST) == 0)
		return;
	n = bpf_map_lookup_elem(&exec_count, &key);   /* lost a race to insert it */
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	n = bpf_map_lookup_elem(&exec_count_full, &zero);
	if (n)
		*n += 1;
}

static __always_inline int on_enter(const char *filename, const char *const *argv)
{
	__u32 zero = 0, tid = (__u32)bpf_get_current_pid_tgid();
	__u64 uid = (__u32)bpf_get_current_uid_gid();
	struct proc_exec_event *e;

	if (cfg_uid != (__u32)-1 && uid != cfg_uid)
		return 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_boot_ns();
	e->pid = ks_tgid();
	e->tid = tid;
	e->ppid = ks_ppid();
	e->uid = uid;
	e->retval = 0;
	e->args_count = 0;
	e->args_size = 0;
	e->args_truncated = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);

	for (int i = 0; i < PROC_EXEC_MAX_ARGS; i++) {
		const char *argp = NULL;
		if (i >= cfg_max_args) {
			bpf_probe_read_user(&argp, sizeof(argp), &argv[i]);
			if (argp)
				e->args_truncated = 1;
			break;
		}
		bpf_probe_read_user(&argp, sizeof(argp), &argv[i]);
		if (!argp)
			break;
		__u32 off = e->args_size;
		if (off > PROC_EXEC_ARGS_BUF - PROC_EXEC_ARG_MAX) {
			e->args_truncated = 1;
			break;
		}
		long n = bpf_probe_read_user_str(&e->args[off & (PROC_EXEC_ARGS_BUF - 1)],
						 PROC_EXEC_ARG_MAX, argp);
		if (n <= 0)
			break;
		if (n == PROC_EXEC_ARG_MAX) {
			/* the argument filled the slot: it may be longer */
			char next = 0;
			bpf_probe_read_user(&next, 1, argp + PROC_EXEC_ARG_MAX - 1);
			if (next)
				e->args_truncated = 1;
		}
		e->args_size += n;
		e->args_count++;
		if (i == PROC_EXEC_MAX_ARGS - 1) {
			bpf_probe_read_user(&argp, sizeof(argp), &argv[i + 1]);
			if (argp)
				e->args_truncated = 1;
		}
	}
	bpf_map_update_elem(&inflight, &tid, e, BPF_ANY);
	return 0;
}

static __always_inline int on_exit(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct proc_exec_event *e = bpf_map_lookup_elem(&inflight, &tid);
	__u64 size;

	if (!e)
		return 0;
	count_exec(ret);
	e->retval = ret;
	/* after a successful exec the pid is the thread group leader's */
	e->pid = ks_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* send only the argument bytes used: a typical exec takes a few hundred bytes
	 * of the ring instead of the whole 4 KiB buffer */
	size = __builtin_offsetof(struct proc_exec_event, args) + e->args_size;
	if (size > sizeof(*e))
		size = sizeof(*e);
	if (bpf_ringbuf_output(&events, e, size, 0))
		ks_count_lost();
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_execve")
int execve_enter__tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tp/syscalls/sys_enter_execveat")
int execveat_enter__tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tp/syscalls/sys_exit_execve")
int execve_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

SEC("tp/syscalls/sys_exit_execveat")
int execveat_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

KS_EXPORT_TYPE(proc_exec_event);
