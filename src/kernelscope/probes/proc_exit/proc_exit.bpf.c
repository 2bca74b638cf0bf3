// SPDX-License-Identifier: GPL-2.0
/* proc_exit: every process exit (and with cfg_threads every thread exit) with
 * exit code or terminating signal and lifetime (exitsnoop). */
#include "vmlinux.h"
#include "ks.bpf.h"

struct proc_exit_event {
	ks_boot_ns_t ts;
	ks_duration_ns_t lifetime_ns;   /* now - task start_time */
	ks_pid_t pid;
	ks_pid_t tid;
	ks_pid_t ppid;
	ks_uid_t uid;
	__s32 exit_code;                /* the status byte of exit(), when not signalled */
	ks_signal_t sig;                /* terminating signal, 0 for a normal exit */
	__u8 core_dumped;
	__u8 pad[7];
	ks_cgroup_id_t cgroup_id;
	char comm[KS_COMM_LEN];
};

const volatile __u8 cfg_threads = 0;     /* also non-leader threads */
const volatile __u32 cfg_pid = 0;        /* only this tgid, 0 for all */
const volatile __u32 cfg_uid = (__u32)-1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline int on_exit(struct task_struct *task)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	struct proc_exit_event *e;
	int code;

	if (!cfg_threads && tgid != tid)
		return 0;
	if (cfg_pid && tgid != cfg_pid)
		return 0;
	if (cfg_uid != (__u32)-1 && uid != cfg_uid)
		return 0;
	e = KS_RESERVE(events, struct proc_exit_event);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_boot_ns();
	e->lifetime_ns = bpf_ktime_get_ns() - BPF_CORE_READ(task, start_time);
	e->pid = tgid;
	e->tid = tid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = uid;
	code = BPF_CORE_READ(task, exit_code);
	e->sig = code & 0x7f;
	e->exit_code = e->sig ? 0 : (code >> 8) & 0xff;
	e->core_dumped = (code & 0x80) ? 1 : 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* sched_process_exit runs in the exiting task, after exit_code is set */
SEC("tp_btf/sched_process_exit")
int sched_process_exit__tp_btf(u64 *ctx)
{
	return on_exit(bpf_get_current_task_btf());
}

SEC("tp/sched/sched_process_exit")
int sched_process_exit__tracepoint(void *ctx)
{
	return on_exit((struct task_struct *)bpf_get_current_task());
}

KS_EXPORT_TYPE(proc_exit_event);
