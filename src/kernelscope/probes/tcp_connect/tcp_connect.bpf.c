// SPDX-License-Identifier: GPL-2.0
/* tcp_connect: TCP active opens with their outcome (tcpconnect) and passive opens
 * as the accepting process takes them (tcpaccept). No kprobes: the connecting
 * process is current when connect() moves the socket to SYN_SENT; the outcome is
 * the SYN_SENT -> ESTABLISHED/CLOSE transition (softirq), with sk_err set by the
 * kernel before it closes (ECONNREFUSED on RST, ETIMEDOUT, ICMP errors). The
 * accepting process is current at accept()/accept4() exit; the new socket is
 * found through the returned file descriptor. */
#include "vmlinux.h"
#include "ks.bpf.h"
#define KS_WANT_FLOW_FILTER
#include "ks_net.bpf.h"

#define TCP_CONNECT_ACTIVE 0
#define TCP_CONNECT_PASSIVE 1

#define OUTCOME_ESTABLISHED 0
#define OUTCOME_ERROR 1      /* err says why */
#define OUTCOME_CLOSED 2     /* closed (by its owner) before the handshake ended */

struct tcp_connect_event {
	ks_boot_ns_t ts;
	ks_duration_ns_t latency_ns;   /* active: connect() to outcome; passive: established to accept() */
	ks_cgroup_id_t cgroup_id;
	ks_pid_t pid;
	ks_pid_t tid;
	ks_uid_t uid;
	ks_errno_t err;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 direction;
	__u8 outcome;
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[KS_COMM_LEN];
};

struct tcp_connect_pending {
	ks_boot_ns_t ts;
	ks_cgroup_id_t cgroup_id;
	ks_pid_t pid;
	ks_pid_t tid;
	ks_uid_t uid;
	char comm[KS_COMM_LEN];
};

const volatile __u8 cfg_active = 1;
const volatile __u8 cfg_passive = 1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* sock -> connect() in progress */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_NET_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct tcp_connect_pending);
} pending SEC(".maps");

/* child sock -> when its handshake completed (to time the accept queue) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_NET_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u64);
} established SEC(".maps");

static __always_inline int on_state(struct sock *s, int old, int new)
{
	__u64 sk = (__u64)s;

	if (BPF_CORE_READ(s, sk_protocol) != KS_IPPROTO_TCP)
		return 0;

	if (cfg_active && new == TCP_SYN_SENT) {
		struct tcp_connect_pending p = {};
		p.ts = bpf_ktime_get_boot_ns();
		p.pid = ks_tgid();
		p.tid = (__u32)bpf_get_current_pid_tgid();
		p.uid = (__u32)bpf_get_current_uid_gid();
		p.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(p.comm, sizeof(p.comm));
		bpf_map_update_elem(&pending, &sk, &p, BPF_ANY);
		return 0;
	}
	if (cfg_active && old == TCP_SYN_SENT) {
		struct tcp_connect_pending *p = bpf_map_lookup_elem(&pending, &sk);
		struct tcp_connect_event *e;
		struct ks_flow f;
		if (!p)
			return 0;   /* the connect began before we attached */
		ks_sock_flow(s, &f);
		if (!ks_flow_wanted(f.family, f.lport, f.rport)) {
			bpf_map_delete_elem(&pending, &sk);
			return 0;
		}
		e = KS_RESERVE(events, struct tcp_connect_event);
		if (e) {
			__u64 now = bpf_ktime_get_boot_ns();
			e->ts = now;
			e->latency_ns = now - p->ts;
			e->cgroup_id = p->cgroup_id;
			e->pid = p->pid;
			e->tid = p->tid;
			e->uid = p->uid;
			__builtin_memcpy(e->comm, p->comm, sizeof(e->comm));
			e->family = f.family;
			e->lport = f.lport;
			e->rport = f.rport;
			__builtin_memcpy(e->laddr, f.laddr, 16);
			__builtin_memcpy(e->raddr, f.raddr, 16);
			e->direction = TCP_CONNECT_ACTIVE;
			if (new == TCP_ESTABLISHED) {
				e->outcome = OUTCOME_ESTABLISHED;
				e->err = 0;
			} else {
				/* set before the kernel closes: tcp_done_with_error(), tcp_v4_err() */
				int err = BPF_CORE_READ(s, sk_err);
				if (!err)
					err = BPF_CORE_READ(s, sk_err_soft);
				e->err = err;
				e->outcome = err ? OUTCOME_ERROR : OUTCOME_CLOSED;
			}
			bpf_ringbuf_submit(e, 0);
		}
		bpf_map_delete_elem(&pending, &sk);
		return 0;
	}
	if (cfg_passive && old == TCP_SYN_RECV && new == TCP_ESTABLISHED) {
		__u64 now = bpf_ktime_get_boot_ns();
		bpf_map_update_elem(&established, &sk, &now, BPF_ANY);
		return 0;
	}
	if (new == TCP_CLOSE)
		bpf_map_delete_elem(&established, &sk);
	return 0;
}

KS_INET_SOCK_SET_STATE(on_state)

static __always_inline int on_accept_exit(long ret)
{
	struct tcp_connect_event *e;
	struct ks_flow f;
	struct sock *sk;
	__u64 key, *est;

	if (!cfg_passive || ret < 0)
		return 0;
	sk = ks_fd_sock(ret);
	if (!sk || !ks_sock_is_tcp(sk))
		return 0;
	ks_sock_flow(sk, &f);
	if (!ks_flow_wanted(f.family, f.lport, f.rport))
		return 0;
	e = KS_RESERVE(events, struct tcp_connect_event);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_boot_ns();
	key = (__u64)sk;
	est = bpf_map_lookup_elem(&established, &key);
	e->latency_ns = est ? e->ts - *est : 0;
	if (est)
		bpf_map_delete_elem(&established, &key);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = ks_tgid();
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->err = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->family = f.family;
	e->lport = f.lport;
	e->rport = f.rport;
	__builtin_memcpy(e->laddr, f.laddr, 16);
	__builtin_memcpy(e->raddr, f.raddr, 16);
	e->direction = TCP_CONNECT_PASSIVE;
	e->outcome = OUTCOME_ESTABLISHED;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

KS_ACCEPT_EXIT(on_accept_exit)

KS_EXPORT_TYPE(tcp_connect_event);
