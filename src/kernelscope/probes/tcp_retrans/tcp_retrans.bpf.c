// SPDX-License-Identifier: GPL-2.0
/* tcp_retrans: retransmitted TCP segments (tcp:tcp_retransmit_skb) and SYN-ACKs
 * (tcp:tcp_retransmit_synack), with flow and socket state (tcpretrans). With
 * cfg_count set, only a per-flow counter map is kept (tcpretrans -c). */
#include "vmlinux.h"
#include "ks.bpf.h"
#define KS_WANT_FLOW_FILTER
#include "ks_net.bpf.h"

#define RETRANS_SEGMENT 0
#define RETRANS_SYNACK 1

struct tcp_retrans_event {
	ks_boot_ns_t ts;
	__u64 skaddr;
	ks_retval_t err;     /* 0, or why the retransmission failed (-errno) */
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 state;
	__u8 kind;
	__u8 laddr[16];
	__u8 raddr[16];
};

const volatile __u8 cfg_count = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* flow -> retransmissions (segments and SYN-ACKs) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ks_flow);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void count(struct ks_flow *k)
{
	static const __u64 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&counts, k);
	if (!n) {
		bpf_map_update_elem(&counts, k, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&counts, k);
	}
	if (n)
		__sync_fetch_and_add(n, 1);
}

#define HANDLE(ctx, st, knd, errval)                                            \
	do {                                                                    \
		if (!ks_flow_wanted((ctx)->family, (ctx)->sport, (ctx)->dport)) \
			return 0;                                               \
		if (cfg_count) {                                                \
			struct ks_flow k = {};                                  \
			k.family = (ctx)->family;                               \
			k.lport = (ctx)->sport;                                 \
			k.rport = (ctx)->dport;                                 \
			KS_TP_ADDRS(k.laddr, k.raddr, ctx);                     \
			count(&k);                                              \
			return 0;                                               \
		}                                                               \
		struct tcp_retrans_event *e = KS_RESERVE(events, struct tcp_retrans_event); \
		if (!e)                                                         \
			return 0;                                               \
		e->ts = bpf_ktime_get_boot_ns();                                \
		e->skaddr = (__u64)(ctx)->skaddr;                               \
		e->err = (errval);                                              \
		e->family = (ctx)->family;                                      \
		e->lport = (ctx)->sport;                                        \
		e->rport = (ctx)->dport;                                        \
		e->state = (st);                                                \
		e->kind = (knd);                                                \
		KS_TP_ADDRS(e->laddr, e->raddr, ctx);                           \
		bpf_ringbuf_submit(e, 0);                                       \
	} while (0)

SEC("tp/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb__tracepoint(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	int err = 0;
	if (bpf_core_field_exists(ctx->err))
		err = BPF_CORE_READ(ctx, err);
	HANDLE(ctx, ctx->state, RETRANS_SEGMENT, err);
	return 0;
}

SEC("tp/tcp/tcp_retransmit_synack")
int tcp_retransmit_synack__tracepoint(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
	HANDLE(ctx, TCP_SYN_RECV, RETRANS_SYNACK, 0);
	return 0;
}

KS_EXPORT_TYPE(tcp_retrans_event);
