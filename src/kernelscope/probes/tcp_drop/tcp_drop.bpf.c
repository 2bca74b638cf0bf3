// SPDX-License-Identifier: GPL-2.0
/* tcp_drop: TCP packets the kernel dropped (skb:kfree_skb) with the drop reason,
 * the flow parsed from the packet's IPv4/IPv6 and TCP headers, the socket state,
 * and the owning process when known (tcpdrop). The owner comes from the socket
 * the packet belongs to (skb->sk, or rx_sk) or, when the packet has none yet
 * (dropped before socket lookup, e.g. by netfilter), from its flow: both are
 * remembered at connect/listen, accept, and send/receive. */
#include "vmlinux.h"
#include "ks.bpf.h"
#define KS_WANT_SOCK_OWNER
#define KS_WANT_FLOW_FILTER
#include "ks_net.bpf.h"

struct tcp_drop_event {
	ks_boot_ns_t ts;
	__u64 location;      /* kernel address of the code that dropped it */
	__u64 skaddr;        /* the packet's socket, 0 if none */
	ks_drop_reason_t reason;
	ks_pid_t pid;        /* owner, 0 when unknown */
	ks_uid_t uid;
	__u32 seq;
	__u32 ack;
	__u16 family;
	__u16 sport;         /* packet source/destination, as on the wire */
	__u16 dport;
	__u16 ip_len;        /* IP packet length (0 for IPv6 jumbo/GSO) */
	__u8 tcp_flags;
	__u8 state;          /* TCP state of the socket, 0 if none */
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[KS_COMM_LEN];
};

const volatile __u8 cfg_all = 0;   /* include NOT_SPECIFIED (and consumed) frees */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* A flow in one network namespace: containers reuse the same addresses, and both
 * ends of a connection between two namespaces of this host are in the map. */
struct tcp_drop_flow_key {
	struct ks_flow flow;
	__u32 netns;         /* namespace inode number */
	__u32 pad;
};

/* flow -> owning process, for packets that carry no full socket */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_NET_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tcp_drop_flow_key);
	__type(value, struct ks_owner);
} flow_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_drop_flow_key);
} scratch SEC(".maps");

static __always_inline __u32 sock_netns(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline struct tcp_drop_flow_key *sock_flow_key(struct sock *sk)
{
	__u32 zero = 0;
	struct tcp_drop_flow_key *k = bpf_map_lookup_elem(&scratch, &zero);
	if (!k)
		return NULL;
	ks_sock_flow(sk, &k->flow);
	k->netns = sock_netns(sk);
	k->pad = 0;
	return k;
}

static __always_inline void remember_flow(struct sock *sk, struct ks_owner *o)
{
	struct tcp_drop_flow_key *k;
	if (!o)
		return;
	k = sock_flow_key(sk);
	if (k)
		bpf_map_update_elem(&flow_owner, k, o, BPF_ANY);
}

static __always_inline int skip_reason(__u32 reason)
{
	if (cfg_all)
		return 0;
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return 1;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return 1;
	return reason == 0;   /* SKB_NOT_DROPPED_YET */
}

static __always_inline int on_drop(struct sk_buff *skb, void *location, __u32 reason,
				   struct sock *rx_sk)
{
	struct tcp_drop_event *e;
	unsigned char *head, *nh;
	__u16 nhoff, thoff;
	__u8 vb = 0, family;
	struct sock *sk;
	struct ks_owner *o = NULL;
	__u32 zero = 0;
	struct tcp_drop_flow_key *k;
	struct ks_flow *f;

	if (skip_reason(reason))
		return 0;
	head = BPF_CORE_READ(skb, head);
	nhoff = BPF_CORE_READ(skb, network_header);
	if (nhoff == (__u16)~0U || !head)
		return 0;
	nh = head + nhoff;
	if (bpf_probe_read_kernel(&vb, 1, nh))
		return 0;
	k = bpf_map_lookup_elem(&scratch, &zero);
	if (!k)
		return 0;
	__builtin_memset(k, 0, sizeof(*k));
	f = &k->flow;

	__u16 ip_len = 0;
	if ((vb >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh) || ip.protocol != KS_IPPROTO_TCP)
			return 0;
		if (bpf_ntohs(ip.frag_off) & 0x1fff)
			return 0;   /* a later fragment: no TCP header */
		family = KS_AF_INET;
		thoff = ip.ihl * 4;
		ip_len = bpf_ntohs(ip.tot_len);
		__builtin_memcpy(f->laddr, &ip.saddr, 4);
		__builtin_memcpy(f->raddr, &ip.daddr, 4);
	} else if ((vb >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh) || ip6.nexthdr != KS_IPPROTO_TCP)
			return 0;
		family = KS_AF_INET6;
		thoff = sizeof(ip6);
		ip_len = bpf_ntohs(ip6.payload_len) ? bpf_ntohs(ip6.payload_len) + 40 : 0;
		__builtin_memcpy(f->laddr, &ip6.saddr, 16);
		__builtin_memcpy(f->raddr, &ip6.daddr, 16);
	} else {
		return 0;
	}
	struct tcphdr th;
	if (thoff < 20 || bpf_probe_read_kernel(&th, sizeof(th), nh + thoff))
		return 0;
	/* packet source/destination stand in for local/remote: -P matches either */
	if (!ks_flow_wanted(family, bpf_ntohs(th.source), bpf_ntohs(th.dest)))
		return 0;

	e = KS_RESERVE(events, struct tcp_drop_event);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_boot_ns();
	e->location = (__u64)location;
	e->reason = reason;
	e->family = family;
	e->sport = bpf_ntohs(th.source);
	e->dport = bpf_ntohs(th.dest);
	e->seq = bpf_ntohl(th.seq);
	e->ack = bpf_ntohl(th.ack_seq);
	e->ip_len = ip_len;
	bpf_probe_read_kernel(&e->tcp_flags, 1, (__u8 *)nh + thoff + 13);
	__builtin_memcpy(e->saddr, f->laddr, 16);
	__builtin_memcpy(e->daddr, f->raddr, 16);

	sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		sk = rx_sk;
	e->skaddr = (__u64)sk;
	e->state = sk ? BPF_CORE_READ(sk, __sk_common.skc_state) : 0;
	/* request and timewait socks are not full sockets: only their flow can tell */
	if (sk && e->state != TCP_NEW_SYN_RECV && e->state != TCP_TIME_WAIT)
		o = ks_owner_get(sk);
	if (!o) {
		/* Which end is local: a packet without a socket is being received (the
		 * kernel's own RSTs and ACKs go out on a control socket); with one, the
		 * end whose port is the socket's local port. */
		int rx = !sk || BPF_CORE_READ(sk, __sk_common.skc_num) == e->dport;
		f->family = family;
		if (rx) {
			f->lport = e->dport;
			f->rport = e->sport;
			__builtin_memcpy(f->laddr, e->daddr, 16);
			__builtin_memcpy(f->raddr, e->saddr, 16);
		} else {
			f->lport = e->sport;
			f->rport = e->dport;
		}
		if (sk)
			k->netns = sock_netns(sk);
		else
			k->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
		o = bpf_map_lookup_elem(&flow_owner, k);
	}
	KS_OWNER_INTO(e, o);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Variants: tp_btf and raw_tp first. A classic tracepoint program is skipped when it
 * fires while any other tracing BPF program runs on that CPU (the global
 * bpf_prog_active guard), so a drop in a softirq interrupting one would go unseen;
 * raw tracepoints only guard each program against itself. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb__tp_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_drop(skb, location, reason, NULL);
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(kfree_skb__raw_tp, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_drop(skb, location, reason, NULL);
}

SEC("tp/skb/kfree_skb")
int kfree_skb__tracepoint(struct trace_event_raw_kfree_skb *ctx)
{
	struct sock *rx_sk = NULL;
	if (bpf_core_field_exists(ctx->rx_sk))
		rx_sk = BPF_CORE_READ(ctx, rx_sk);
	return on_drop(ctx->skbaddr, ctx->location, ctx->reason, rx_sk);
}

/* --- keeping the owner maps current --- */

static __always_inline int on_state(struct sock *sk, int old, int new)
{
	if (BPF_CORE_READ(sk, sk_protocol) != KS_IPPROTO_TCP)
		return 0;
	ks_owner_on_state(sk, new);
	if (old == TCP_SYN_SENT && new == TCP_ESTABLISHED) {
		/* the local port is known only now */
		remember_flow(sk, ks_owner_get(sk));
	} else if (new == TCP_CLOSE) {
		struct tcp_drop_flow_key *k = sock_flow_key(sk);
		if (k)
			bpf_map_delete_elem(&flow_owner, k);
		ks_owner_forget(sk);
	}
	return 0;
}

KS_INET_SOCK_SET_STATE(on_state)

static __always_inline int on_accept(long ret)
{
	struct sock *sk = ks_owner_on_accept(ret);
	if (sk)
		remember_flow(sk, ks_owner_get(sk));
	return 0;
}

KS_ACCEPT_EXIT(on_accept)

static __always_inline int on_msg(struct trace_event_raw_sock_msg_length *ctx)
{
	struct sock *sk = ctx->sk;
	if (ctx->protocol != KS_IPPROTO_TCP ||
	    (ctx->family != KS_AF_INET && ctx->family != KS_AF_INET6))
		return 0;
	if (ctx->ret < 0 || ks_owner_get(sk))
		return 0;
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
		return 0;   /* not connected: no CLOSE transition would forget it */
	/* first sight of this socket (opened before tracing began) */
	ks_owner_set_current(sk);
	remember_flow(sk, ks_owner_get(sk));
	return 0;
}

KS_SOCK_MSG_LENGTH(on_msg)

KS_EXPORT_TYPE(tcp_drop_event);
