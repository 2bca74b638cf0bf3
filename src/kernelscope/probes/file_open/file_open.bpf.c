// SPDX-License-Identifier: GPL-2.0
/* file_open: open, openat and openat2 with path, flags, mode and result (opensnoop). */
#include "vmlinux.h"
#include "ks.bpf.h"

#define FILE_OPEN_PATH_MAX 256

enum file_open_call { FILE_OPEN_OPEN = 0, FILE_OPEN_OPENAT = 1, FILE_OPEN_OPENAT2 = 2 };

struct file_open_event {
	ks_boot_ns_t ts;
	ks_duration_ns_t duration_ns;
	ks_pid_t pid;
	ks_pid_t tid;
	ks_uid_t uid;
	ks_retval_t retval;           /* fd, or -errno */
	__s32 dfd;                    /* directory fd of openat/openat2 (-100: AT_FDCWD) */
	__u32 call;                   /* enum file_open_call */
	__u64 flags;                  /* O_* flags as passed */
	__u64 mode;                   /* creation mode as passed */
	ks_cgroup_id_t cgroup_id;
	char comm[KS_COMM_LEN];
	char path[FILE_OPEN_PATH_MAX];
};

struct file_open_args {
	__u64 ts;
	const char *path;
	__u64 flags;
	__u64 mode;
	__s32 dfd;
	__u32 call;
};

const volatile __u32 cfg_pid = 0;          /* only this tgid, 0 for all */
const volatile __u32 cfg_uid = (__u32)-1;
const volatile __u8 cfg_failed = 0;        /* only failed opens */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct file_open_args);
} inflight SEC(".maps");

static __always_inline bool wanted(void)
{
	if (cfg_pid && ks_tgid() != cfg_pid)
		return false;
	if (cfg_uid != (__u32)-1 && (__u32)bpf_get_current_uid_gid() != cfg_uid)
		return false;
	return true;
}

static __always_inline int on_enter(__u32 call, long dfd, const char *path, __u64 flags, __u64 mode)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct file_open_args a = {};

	if (!wanted())
		return 0;
	a.ts = bpf_ktime_get_ns();
	a.path = path;
	a.flags = flags;
	a.mode = mode;
	a.dfd = dfd;
	a.call = call;
	bpf_map_update_elem(&inflight, &tid, &a, BPF_ANY);
	return 0;
}

static __always_inline int on_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct file_open_args *a = bpf_map_lookup_elem(&inflight, &tid);
	struct file_open_event *e;

	if (!a)
		return 0;
	if (cfg_failed && ret >= 0)
		goto done;
	e = KS_RESERVE(events, struct file_open_event);
	if (!e)
		goto done;
	e->ts = bpf_ktime_get_boot_ns();
	e->duration_ns = bpf_ktime_get_ns() - a->ts;
	e->pid = id >> 32;
	e->tid = tid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->retval = ret;
	e->dfd = a->dfd;
	e->call = a->call;
	e->flags = a->flags;
	e->mode = a->mode;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* read at exit: the kernel has just faulted the path in */
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), a->path) < 0)
		e->path[0] = 0;
	bpf_ringbuf_submit(e, 0);
done:
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_open")
int open_enter__tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(FILE_OPEN_OPEN, -100, (const char *)ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tp/syscalls/sys_enter_openat")
int openat_enter__tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(FILE_OPEN_OPENAT, (int)ctx->args[0], (const char *)ctx->args[1],
			ctx->args[2], ctx->args[3]);
}

SEC("tp/syscalls/sys_enter_openat2")
int openat2_enter__tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	if (!wanted())
		return 0;
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return on_enter(FILE_OPEN_OPENAT2, (int)ctx->args[0], (const char *)ctx->args[1],
			how.flags, how.mode);
}

SEC("tp/syscalls/sys_exit_open")
int open_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

SEC("tp/syscalls/sys_exit_openat")
int openat_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

SEC("tp/syscalls/sys_exit_openat2")
int openat2_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

KS_EXPORT_TYPE(file_open_event);
