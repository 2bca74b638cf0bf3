// SPDX-License-Identifier: GPL-2.0
/* tcp_state: every TCP state transition with the time spent in the previous state
 * (tcpstates). The owning process is remembered per socket from the hooks that run
 * in its context (connect/listen, accept, send, receive): most transitions run in
 * softirq context, where the current task is unrelated. */
#include "vmlinux.h"
#include "ks.bpf.h"
#define KS_WANT_SOCK_OWNER
#define KS_WANT_FLOW_FILTER
#include "ks_net.bpf.h"

struct tcp_state_event {
	ks_boot_ns_t ts;
	ks_duration_ns_t prev_state_ns;   /* time in oldstate; 0 if entered before tracing */
	__u64 skaddr;                     /* groups the transitions of one socket */
	ks_pid_t pid;                     /* owner, 0 when not known yet */
	ks_uid_t uid;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 oldstate;
	__u8 newstate;
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[KS_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* sock -> when it entered its current state */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_NET_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u64);
} last_change SEC(".maps");

static __always_inline int on_state(struct sock *s, int old, int new)
{
	__u64 sk = (__u64)s, now = bpf_ktime_get_boot_ns(), *prev;
	struct tcp_state_event *e;
	struct ks_owner *o;
	struct ks_flow f;

	if (BPF_CORE_READ(s, sk_protocol) != KS_IPPROTO_TCP)
		return 0;
	ks_owner_on_state(s, new);

	ks_sock_flow(s, &f);
	e = ks_flow_wanted(f.family, f.lport, f.rport) ?
		KS_RESERVE(events, struct tcp_state_event) : NULL;
	if (e) {
		prev = bpf_map_lookup_elem(&last_change, &sk);
		e->ts = now;
		e->prev_state_ns = prev ? now - *prev : 0;
		e->skaddr = sk;
		o = ks_owner_get(s);
		KS_OWNER_INTO(e, o);
		e->family = f.family;
		e->lport = f.lport;
		e->rport = f.rport;
		__builtin_memcpy(e->laddr, f.laddr, 16);
		__builtin_memcpy(e->raddr, f.raddr, 16);
		e->oldstate = old;
		e->newstate = new;
		bpf_ringbuf_submit(e, 0);
	}
	if (new == TCP_CLOSE) {
		bpf_map_delete_elem(&last_change, &sk);
		ks_owner_forget(s);
	} else {
		bpf_map_update_elem(&last_change, &sk, &now, BPF_ANY);
	}
	return 0;
}

KS_INET_SOCK_SET_STATE(on_state)

static __always_inline int on_accept(long ret)
{
	ks_owner_on_accept(ret);
	return 0;
}

KS_ACCEPT_EXIT(on_accept)

static __always_inline int on_msg(struct trace_event_raw_sock_msg_length *ctx)
{
	struct sock *sk = ctx->sk;
	/* a socket in CLOSE would never reach the CLOSE transition that forgets it */
	if (ctx->protocol == KS_IPPROTO_TCP && ctx->ret >= 0 &&
	    (ctx->family == KS_AF_INET || ctx->family == KS_AF_INET6) &&
	    BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_CLOSE)
		ks_owner_fill_current(sk);
	return 0;
}

KS_SOCK_MSG_LENGTH(on_msg)

KS_EXPORT_TYPE(tcp_state_event);
