/* Shared by the TCP probes (tcp_connect, tcp_state, tcp_retrans, tcp_drop, tcp_rtt):
 * reading a socket's flow with CO-RE, and remembering which process owns a socket
 * (tcp_flow uses the hook macros and fd/sock helpers).
 * Include after ks.bpf.h. Addresses are 16 raw bytes (IPv4 in the first 4), ports
 * in host byte order; Python formats them with kernelscope.enrich.net. */
#ifndef KS_NET_BPF_H
#define KS_NET_BPF_H

#include <bpf/bpf_endian.h>

#define KS_AF_INET 2
#define KS_AF_INET6 10
#define KS_IPPROTO_TCP 6
#define KS_SOCK_STREAM 1

/* Per-socket and per-flow maps are plain hashes whose entries the probes delete when
 * the socket closes (tp_btf/raw_tp see every CLOSE): an LRU map would evict live
 * sockets' entries whenever a busy host opens more sockets than it holds. */
#define KS_NET_MAP_ENTRIES 65536

/* Socket-level flow: local and remote ends. Also the key of per-flow maps. */
struct ks_flow {
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 pad;
	__u8 laddr[16];
	__u8 raddr[16];
};

/* The process behind a socket: whoever called connect/listen/accept, or last
 * sent or received on it (tracepoints that run in that process's context). */
struct ks_owner {
	ks_pid_t pid;
	ks_uid_t uid;
	char comm[KS_COMM_LEN];
};

static __always_inline void ks_owner_current(struct ks_owner *o)
{
	o->pid = ks_tgid();
	o->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/* Copy an owner (or zeros when unknown) into an event's pid, uid and comm fields. */
#define KS_OWNER_INTO(e, o)                                                  \
	do {                                                                 \
		if (o) {                                                     \
			(e)->pid = (o)->pid;                                 \
			(e)->uid = (o)->uid;                                 \
			__builtin_memcpy((e)->comm, (o)->comm, KS_COMM_LEN); \
		} else {                                                     \
			(e)->pid = 0;                                        \
			(e)->uid = 0;                                        \
			__builtin_memset((e)->comm, 0, KS_COMM_LEN);         \
		}                                                            \
	} while (0)

static __always_inline int ks_sock_is_tcp(const struct sock *sk)
{
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (fam != KS_AF_INET && fam != KS_AF_INET6)
		return 0;
	/* sk_protocol was a bitfield before 5.6: the probed read serves both */
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == KS_IPPROTO_TCP &&
	       BPF_CORE_READ(sk, sk_type) == KS_SOCK_STREAM;
}

/* Fill `f` from a full socket (struct sock). */
static __always_inline void ks_sock_flow(struct sock *sk, struct ks_flow *f)
{
	f->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* inet_sport, not skc_num: closing a socket zeroes skc_num before the CLOSE
	 * transition is traced (inet_put_port) */
	f->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	f->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	f->pad = 0;
	if (f->family == KS_AF_INET) {
		__builtin_memset(f->laddr, 0, sizeof(f->laddr));
		__builtin_memset(f->raddr, 0, sizeof(f->raddr));
		BPF_CORE_READ_INTO((__u32 *)f->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)f->raddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)f->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)f->raddr, sk, __sk_common.skc_v6_daddr);
	}
}

/* Copy the address pair of a sock/tcp tracepoint (saddr[4]/saddr_v6[16] layout).
 * Through bpf_probe_read_kernel: the verifier refuses memcpy from a moved ctx pointer. */
#define KS_TP_ADDRS(dst_l, dst_r, ctx)                                          \
	do {                                                                    \
		if ((ctx)->family == KS_AF_INET) {                              \
			__builtin_memset(dst_l, 0, 16);                         \
			__builtin_memset(dst_r, 0, 16);                         \
			bpf_probe_read_kernel(dst_l, 4, (ctx)->saddr);          \
			bpf_probe_read_kernel(dst_r, 4, (ctx)->daddr);          \
		} else {                                                        \
			bpf_probe_read_kernel(dst_l, 16, (ctx)->saddr_v6);      \
			bpf_probe_read_kernel(dst_r, 16, (ctx)->daddr_v6);      \
		}                                                               \
	} while (0)

/* Programs for sock:inet_sock_set_state calling handler(struct sock *, old, new), in
 * the order the loader prefers: tp_btf, raw_tp, then the classic tracepoint. Most
 * transitions run in softirq context, where a classic tracepoint program is skipped
 * if it interrupted any other tracing BPF program (the global bpf_prog_active guard);
 * raw tracepoints only guard a program against itself. */
#define KS_INET_SOCK_SET_STATE(handler)                                                 \
	SEC("tp_btf/inet_sock_set_state")                                               \
	int BPF_PROG(inet_sock_set_state__tp_btf, struct sock *sk, int old, int new)    \
	{                                                                               \
		return handler(sk, old, new);                                           \
	}                                                                               \
	SEC("raw_tp/inet_sock_set_state")                                               \
	int BPF_PROG(inet_sock_set_state__raw_tp, struct sock *sk, int old, int new)    \
	{                                                                               \
		return handler(sk, old, new);                                           \
	}                                                                               \
	SEC("tp/sock/inet_sock_set_state")                                              \
	int inet_sock_set_state__tracepoint(struct trace_event_raw_inet_sock_set_state *ctx) \
	{                                                                               \
		return handler((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate); \
	}

/* accept() and accept4() returning: handler(long ret), ret the new fd or -errno. */
#define KS_ACCEPT_EXIT(handler)                                                         \
	SEC("tp/syscalls/sys_exit_accept4")                                             \
	int accept4_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)              \
	{                                                                               \
		return handler(ctx->ret);                                               \
	}                                                                               \
	SEC("tp/syscalls/sys_exit_accept")                                              \
	int accept_exit__tracepoint(struct trace_event_raw_sys_exit *ctx)               \
	{                                                                               \
		return handler(ctx->ret);                                               \
	}

/* Every sendmsg/recvmsg on a socket: handler(struct trace_event_raw_sock_msg_length *). */
#define KS_SOCK_MSG_LENGTH(handler)                                                     \
	SEC("tp/sock/sock_send_length")                                                 \
	int sock_send_length__tracepoint(struct trace_event_raw_sock_msg_length *ctx)   \
	{                                                                               \
		return handler(ctx);                                                    \
	}                                                                               \
	SEC("tp/sock/sock_recv_length")                                                 \
	int sock_recv_length__tracepoint(struct trace_event_raw_sock_msg_length *ctx)   \
	{                                                                               \
		return handler(ctx);                                                    \
	}

/* The socket behind file descriptor `fd` of the current process (NULL if none). */
static __always_inline struct sock *ks_fd_sock(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;
	struct socket *so;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	if (!so)
		return NULL;
	return BPF_CORE_READ(so, sk);
}

#ifdef KS_WANT_FLOW_FILTER
/* In-kernel flow filter (set by the tools' -4/-6 and port flags), so that busy
 * unrelated traffic never reaches the ring buffer. 0 = no filter; a port set
 * holds up to KS_FILTER_PORTS ports, 0 meaning an empty slot. */
#define KS_FILTER_PORTS 8
const volatile __u16 cfg_family = 0;
const volatile __u16 cfg_lports[KS_FILTER_PORTS] = {};   /* local port one of these */
const volatile __u16 cfg_rports[KS_FILTER_PORTS] = {};   /* remote port one of these */
const volatile __u16 cfg_ports[KS_FILTER_PORTS] = {};    /* either port one of these */

static __always_inline int ks_port_in(const volatile __u16 *set, __u16 port)
{
	if (!set[0])
		return 1;   /* no filter */
	for (int i = 0; i < KS_FILTER_PORTS; i++)
		if (set[i] && set[i] == port)
			return 1;
	return 0;
}

static __always_inline int ks_flow_wanted(__u16 family, __u16 lport, __u16 rport)
{
	if (cfg_family && family != cfg_family)
		return 0;
	if (!ks_port_in(cfg_lports, lport) || !ks_port_in(cfg_rports, rport))
		return 0;
	if (cfg_ports[0] && !ks_port_in(cfg_ports, lport) && !ks_port_in(cfg_ports, rport))
		return 0;
	return 1;
}
#endif /* KS_WANT_FLOW_FILTER */

#ifdef KS_WANT_SOCK_OWNER
/* sock address -> owning process; deleted at the socket's CLOSE transition. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_NET_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct ks_owner);
} ks_sock_owner SEC(".maps");

static __always_inline void ks_owner_set_current(const void *sk)
{
	__u64 key = (__u64)sk;
	struct ks_owner o = {};
	ks_owner_current(&o);
	bpf_map_update_elem(&ks_sock_owner, &key, &o, BPF_ANY);
}

/* Only when unknown: a sender in a forked child must not replace the connector. */
static __always_inline struct ks_owner *ks_owner_fill_current(const void *sk)
{
	__u64 key = (__u64)sk;
	struct ks_owner *o = bpf_map_lookup_elem(&ks_sock_owner, &key);
	if (o)
		return o;
	ks_owner_set_current(sk);
	return bpf_map_lookup_elem(&ks_sock_owner, &key);
}

static __always_inline struct ks_owner *ks_owner_get(const void *sk)
{
	__u64 key = (__u64)sk;
	return bpf_map_lookup_elem(&ks_sock_owner, &key);
}

static __always_inline void ks_owner_forget(const void *sk)
{
	__u64 key = (__u64)sk;
	bpf_map_delete_elem(&ks_sock_owner, &key);
}

/* Bodies shared by the programs that keep ks_sock_owner current. */
static __always_inline void ks_owner_on_state(const void *sk, int newstate)
{
	if (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN)
		ks_owner_set_current(sk);   /* connect() / listen(): process context */
}

static __always_inline struct sock *ks_owner_on_accept(long ret)
{
	struct sock *sk;
	if (ret < 0)
		return NULL;
	sk = ks_fd_sock(ret);
	if (!sk || !ks_sock_is_tcp(sk))
		return NULL;
	ks_owner_set_current(sk);
	return sk;
}
#endif /* KS_WANT_SOCK_OWNER */

#endif
