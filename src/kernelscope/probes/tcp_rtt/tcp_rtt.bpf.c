// SPDX-License-Identifier: GPL-2.0
/* tcp_rtt: log2 histograms of the smoothed RTT of TCP connections (tcprtt), from
 * tcp:tcp_probe, which fires on each segment an established socket receives and
 * carries srtt in microseconds. One histogram in all, per remote address, per
 * local address, or per flow (cfg_by), in the kernel map `hists`. */
#include "vmlinux.h"
#include "ks.bpf.h"
#include "ks_net.bpf.h"

#define BY_ALL 0
#define BY_RADDR 1
#define BY_LADDR 2
#define BY_FLOW 3

const volatile __u8 cfg_by = BY_ALL;
const volatile __u8 cfg_ms = 0;
const volatile __u16 cfg_lport = 0;
const volatile __u16 cfg_rport = 0;
const volatile __u16 cfg_family = 0;        /* 0: both */
const volatile __u16 cfg_raddr_family = 0;  /* 0: any remote address */
const volatile __u8 cfg_raddr[16] = {};
const volatile __u16 cfg_laddr_family = 0;
const volatile __u8 cfg_laddr[16] = {};

static const struct ks_hist zero_hist;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct ks_flow);
	__type(value, struct ks_hist);
} hists SEC(".maps");

static __always_inline int addr_match(const volatile __u8 *want, __u8 *have)
{
	for (int i = 0; i < 16; i++)
		if (want[i] != have[i])
			return 0;
	return 1;
}

SEC("tp/tcp/tcp_probe")
int tcp_probe__tracepoint(struct trace_event_raw_tcp_probe *ctx)
{
	struct ks_flow k = {};
	struct ks_hist *h;
	__u8 l[16] = {}, r[16] = {};
	__u64 v = ctx->srtt;
	__u16 fam = ctx->family;

	if (!v)
		return 0;
	if (cfg_family && fam != cfg_family)
		return 0;
	if (cfg_lport && ctx->sport != cfg_lport)
		return 0;
	if (cfg_rport && ctx->dport != cfg_rport)
		return 0;
	/* saddr/daddr are struct sockaddr_in / sockaddr_in6 */
	if (fam == KS_AF_INET) {
		bpf_probe_read_kernel(l, 4, (__u8 *)ctx->saddr + 4);
		bpf_probe_read_kernel(r, 4, (__u8 *)ctx->daddr + 4);
	} else if (fam == KS_AF_INET6) {
		bpf_probe_read_kernel(l, 16, (__u8 *)ctx->saddr + 8);
		bpf_probe_read_kernel(r, 16, (__u8 *)ctx->daddr + 8);
	} else {
		return 0;
	}
	if (cfg_raddr_family && (fam != cfg_raddr_family || !addr_match(cfg_raddr, r)))
		return 0;
	if (cfg_laddr_family && (fam != cfg_laddr_family || !addr_match(cfg_laddr, l)))
		return 0;

	if (cfg_by != BY_ALL)
		k.family = fam;
	if (cfg_by == BY_RADDR || cfg_by == BY_FLOW)
		__builtin_memcpy(k.raddr, r, 16);
	if (cfg_by == BY_LADDR || cfg_by == BY_FLOW)
		__builtin_memcpy(k.laddr, l, 16);
	if (cfg_by == BY_FLOW) {
		k.lport = ctx->sport;
		k.rport = ctx->dport;
	}
	if (cfg_ms)
		v /= 1000;
	h = bpf_map_lookup_elem(&hists, &k);
	if (!h) {
		bpf_map_update_elem(&hists, &k, &zero_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &k);
		if (!h)
			return 0;
	}
	ks_hist_add(h, v);
	return 0;
}

KS_EXPORT_TYPE(ks_flow);
