// SPDX-License-Identifier: GPL-2.0
/* tcp_flow: the TCP flow table, kept in the kernel (tcplife, tcptop, the service map).
 *
 * One record per connection in an LRU hash keyed by the kernel's struct sock
 * address. Created when a connection starts (connect: CLOSE->SYN_SENT; server:
 * SYN_RECV->ESTABLISHED or accept(), whichever comes first; or the first
 * send/recv of a connection older than the probe), refreshed from struct
 * tcp_sock, and sent through the `events` ring buffer when the kernel destroys
 * the socket. Live records are read from the `flows` map by user space.
 *
 * Bytes are the kernel's own per-connection counters, so they are exact and
 * include traffic from before the probe started:
 *   tx_bytes = bytes_sent - bytes_retrans   (payload sent once; no SYN/FIN)
 *   rx_bytes = bytes_received - 1 if a FIN was received (SOCK_DONE)
 */
#include "vmlinux.h"
#include "ks.bpf.h"
#include "ks_net.bpf.h"

enum {
	TCP_FLOW_UNKNOWN = 0,
	TCP_FLOW_CLIENT = 1,
	TCP_FLOW_SERVER = 2,
};

/* tcp states (include/net/tcp_states.h) */
#define ST_ESTABLISHED 1
#define ST_SYN_SENT 2
#define ST_SYN_RECV 3
#define ST_CLOSE 7
#define ST_LISTEN 10
#define ST_NEW_SYN_RECV 12

/* The map value and the ring-buffer event: one layout for live and closed flows. */
struct tcp_flow_event {
	__u64 sk_id;                  /* kernel socket address: identity while alive */
	ks_boot_ns_t start_ts;
	ks_boot_ns_t end_ts;          /* 0 while open */
	ks_cgroup_id_t cgroup_id;
	__u64 tx_bytes;
	__u64 rx_bytes;
	__u64 refresh_ns;             /* last refresh from tcp_sock (CLOCK_MONOTONIC ns) */
	__u32 netns;                  /* network namespace inode */
	ks_pid_t pid;                 /* owning process: connecting or accepting tgid */
	__u32 srtt_us;
	__u32 min_rtt_us;
	__u32 retransmits;            /* tcp_sock total_retrans (segments) */
	__u32 resets_sent;
	__u32 resets_received;
	__u32 drops;                  /* skbs of this socket freed as drops */
	ks_drop_reason_t last_drop_reason;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 direction;               /* 1 client, 2 server, 0 unknown (older than the probe) */
	__u8 state;                   /* last tcp state seen */
	__u8 close_from_state;        /* state before CLOSE, 0 if not closed */
	__u8 established;             /* reached ESTABLISHED */
	__u8 fin_received;
	__u8 pad[3];
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[KS_COMM_LEN];
};

/* Kernel counters about the table itself; evicted = inserted - removed - live. */
struct tcp_flow_stats {
	__u64 inserted;
	__u64 removed;
	__u64 insert_failed;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tcp_flow_event);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_flow_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_flow_event);
} scratch SEC(".maps");

static __always_inline struct tcp_flow_stats *get_stats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&stats, &zero);
}

static __always_inline void fill_tuple(struct tcp_flow_event *f, const struct sock *sk)
{
	f->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	f->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!f->lport)   /* released at CLOSE (a refused connect); inet_sport stays */
		f->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	f->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (f->family == KS_AF_INET) {
		bpf_core_read(f->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(f->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(f->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(f->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	f->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline void attribute(struct tcp_flow_event *f)
{
	f->pid = ks_tgid();
	f->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(f->comm, sizeof(f->comm));
}

/* Read the kernel's per-connection counters into the record. */
static __always_inline void refresh(struct tcp_flow_event *f, const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 sent = BPF_CORE_READ(tp, bytes_sent);
	__u64 retrans = BPF_CORE_READ(tp, bytes_retrans);
	__u64 rcvd = BPF_CORE_READ(tp, bytes_received);
	unsigned long flags = BPF_CORE_READ(sk, __sk_common.skc_flags);

	f->fin_received = (flags >> bpf_core_enum_value(enum sock_flags, SOCK_DONE)) & 1;
	f->tx_bytes = sent >= retrans ? sent - retrans : 0;
	f->rx_bytes = (rcvd && f->fin_received) ? rcvd - 1 : rcvd;
	f->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	f->min_rtt_us = BPF_CORE_READ(tp, rtt_min.s[0].v);
	f->retransmits = BPF_CORE_READ(tp, total_retrans);
	f->refresh_ns = bpf_ktime_get_ns();
	if (!f->lport)
		fill_tuple(f, sk);
}

/* The record of `sk`, created when missing. `fresh` starts a new connection:
 * a stale record at the same address (a socket whose destroy was missed) is
 * reset rather than continued. */
static __always_inline struct tcp_flow_event *
get_or_create(const struct sock *sk, __u8 direction, int fresh, int in_process)
{
	__u64 key = (__u64)sk;
	struct tcp_flow_event *f = bpf_map_lookup_elem(&flows, &key);
	struct tcp_flow_stats *st;
	__u32 zero = 0;
	long err;

	if (f && !fresh)
		return f;
	struct tcp_flow_event *n = bpf_map_lookup_elem(&scratch, &zero);
	if (!n)
		return f;
	__builtin_memset(n, 0, sizeof(*n));
	n->sk_id = key;
	n->start_ts = bpf_ktime_get_boot_ns();
	n->direction = direction;
	n->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	fill_tuple(n, sk);
	if (in_process)
		attribute(n);
	if (f) {
		__builtin_memcpy(f, n, sizeof(*n));
		return f;
	}
	err = bpf_map_update_elem(&flows, &key, n, BPF_NOEXIST);
	st = get_stats();
	if (err == 0) {
		if (st)
			__sync_fetch_and_add(&st->inserted, 1);
	} else if (err != -17 /* EEXIST: another CPU was first */) {
		if (st)
			__sync_fetch_and_add(&st->insert_failed, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&flows, &key);
}

static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate)
{
	struct tcp_flow_event *f;
	__u64 key = (__u64)sk;

	if (!ks_sock_is_tcp(sk))
		return 0;
	if (oldstate == ST_CLOSE && newstate == ST_SYN_SENT) {
		/* connect(): process context, the connecting process owns it */
		get_or_create(sk, TCP_FLOW_CLIENT, 1, 1);
		return 0;
	}
	if (newstate == ST_ESTABLISHED) {
		if (oldstate == ST_SYN_RECV)
			f = get_or_create(sk, TCP_FLOW_SERVER, 0, 0);
		else
			f = bpf_map_lookup_elem(&flows, &key);
		if (!f)
			return 0;
		f->established = 1;
		f->state = newstate;
		fill_tuple(f, sk);   /* the client's port is chosen after SYN_SENT */
		return 0;
	}
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return 0;
	f->state = newstate;
	if (newstate == ST_CLOSE) {
		f->close_from_state = oldstate;
		f->end_ts = bpf_ktime_get_boot_ns();
		refresh(f, sk);
	}
	return 0;
}

static __always_inline int on_destroy(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcp_flow_event *f = bpf_map_lookup_elem(&flows, &key);
	struct tcp_flow_event *e;
	struct tcp_flow_stats *st;

	if (!f)
		return 0;
	refresh(f, sk);
	if (!f->end_ts)
		f->end_ts = bpf_ktime_get_boot_ns();
	e = KS_RESERVE(events, struct tcp_flow_event);
	if (e) {
		__builtin_memcpy(e, f, sizeof(*e));
		bpf_ringbuf_submit(e, 0);
	}
	if (bpf_map_delete_elem(&flows, &key) == 0) {
		st = get_stats();
		if (st)
			__sync_fetch_and_add(&st->removed, 1);
	}
	return 0;
}

/* sendmsg/recvmsg in process context: attribute flows created in softirq that no
 * accept() claimed, and adopt connections that started before the probe. Counters
 * are not read here: user space refreshes live records on demand (refresh_flows). */
static __always_inline int on_io(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcp_flow_event *f = bpf_map_lookup_elem(&flows, &key);

	if (!f) {
		if (!ks_sock_is_tcp(sk))
			return 0;
		__u8 st = BPF_CORE_READ(sk, __sk_common.skc_state);
		if (st == ST_CLOSE || st == ST_LISTEN || st >= ST_NEW_SYN_RECV || st == 0)
			return 0;
		f = get_or_create(sk, TCP_FLOW_UNKNOWN, 0, 1);
		if (!f)
			return 0;
		f->established = st != ST_SYN_SENT;
		refresh(f, sk);
		return 0;
	}
	if (!f->pid)
		attribute(f);
	return 0;
}

static __always_inline int on_retransmit(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcp_flow_event *f = bpf_map_lookup_elem(&flows, &key);
	if (f)
		refresh(f, sk);
	return 0;
}

static __always_inline int on_reset(const struct sock *sk, int sent)
{
	__u64 key = (__u64)sk;
	struct tcp_flow_event *f;

	if (!sk)
		return 0;
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return 0;
	if (sent)
		__sync_fetch_and_add(&f->resets_sent, 1);
	else
		__sync_fetch_and_add(&f->resets_received, 1);
	return 0;
}

static __always_inline int on_drop(struct sk_buff *skb, __u32 reason, struct sock *rx_sk)
{
	struct sock *sk = rx_sk ? rx_sk : BPF_CORE_READ(skb, sk);
	__u64 key = (__u64)sk;
	struct tcp_flow_event *f;

	if (!sk)
		return 0;
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return 0;
	__sync_fetch_and_add(&f->drops, 1);
	f->last_drop_reason = reason;
	return 0;
}

/* accept(): the fd it returned -> struct sock, so the accepting process owns the flow. */
static __always_inline int on_accept(long fd)
{
	struct sock *sk = ks_fd_sock(fd);
	struct tcp_flow_event *f;

	if (!sk || !ks_sock_is_tcp(sk))
		return 0;
	f = get_or_create(sk, TCP_FLOW_SERVER, 0, 0);
	if (!f)
		return 0;
	/* accept() returns established connections; the accepting process owns it */
	f->direction = TCP_FLOW_SERVER;
	f->established = 1;
	attribute(f);
	return 0;
}

/* Run on demand by user space (BPF_PROG_TEST_RUN) before it reads the table: every
 * live record is refreshed from its socket, so idle connections read exact too. */
static long refresh_one(struct bpf_map *map, __u64 *key, struct tcp_flow_event *f, void *ctx)
{
	const struct sock *sk = (const struct sock *)*key;

	if (f->end_ts)   /* closed: final counters already taken */
		return 0;
	f->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	refresh(f, sk);
	return 0;
}

SEC("raw_tp")
int refresh_flows__raw_tp(void *ctx)
{
	bpf_for_each_map_elem(&flows, refresh_one, NULL, 0);
	return 0;
}

/* Each hook as tp_btf and raw_tp; the loader picks the first this kernel has. */
#define HOOK(hook, tp, call, args...)                                            \
	SEC("tp_btf/" #tp) int BPF_PROG(hook##__tp_btf, args) { return call; }   \
	SEC("raw_tp/" #tp) int BPF_PROG(hook##__raw_tp, args) { return call; }

HOOK(inet_sock_set_state, inet_sock_set_state, on_state(sk, oldstate, newstate),
     const struct sock *sk, const int oldstate, const int newstate)
HOOK(tcp_destroy_sock, tcp_destroy_sock, on_destroy(sk), struct sock *sk)
HOOK(sock_send_length, sock_send_length, on_io(sk), struct sock *sk, int ret, int flags)
HOOK(sock_recv_length, sock_recv_length, on_io(sk), struct sock *sk, int ret, int flags)
HOOK(tcp_retransmit_skb, tcp_retransmit_skb, on_retransmit(sk),
     const struct sock *sk, const struct sk_buff *skb, int err)
HOOK(tcp_send_reset, tcp_send_reset, on_reset(sk, 1),
     const struct sock *sk, const struct sk_buff *skb, int reason)
HOOK(tcp_receive_reset, tcp_receive_reset, on_reset(sk, 0), struct sock *sk)
HOOK(kfree_skb, kfree_skb, on_drop(skb, reason, rx_sk),
     struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)

KS_ACCEPT_EXIT(on_accept)

KS_EXPORT_TYPE(tcp_flow_event);
KS_EXPORT_TYPE(tcp_flow_stats);
